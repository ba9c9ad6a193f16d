"""Small Vietnamese documents for the archive's tests, and files to attach to them."""

from __future__ import annotations

import functools
import io
import zipfile
from xml.sax.saxutils import escape


def docx(paragraphs: list[str]) -> bytes:
    """A minimal DOCX holding these paragraphs."""
    body = "".join(f"<w:p><w:r><w:t>{escape(p)}</w:t></w:r></w:p>" for p in paragraphs)
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{body}</w:body></w:document>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr("word/document.xml", document)
    return out.getvalue()


def odt(paragraphs: list[str]) -> bytes:
    """A minimal ODT holding these paragraphs."""
    body = "".join(f"<text:p>{escape(p)}</text:p>" for p in paragraphs)
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0">'
        f"<office:body><office:text>{body}</office:text></office:body></office:document-content>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text", compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", content)
    return out.getvalue()


@functools.cache
def zip_bomb(inflated: int = 80 * 1024 * 1024) -> bytes:
    """A DOCX-shaped ZIP whose document inflates to ``inflated`` bytes of zeros (about 80 KB packed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as entry:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(inflated // len(chunk)):
                entry.write(chunk)
    return out.getvalue()


def scanned_pdf(lines: list[str]) -> bytes:
    """A scan: a PDF holding only a picture of ``lines`` (no text layer), as a scanner makes it."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 36)
    page = Image.new("L", (1400, 80 + 70 * len(lines)), 255)
    draw = ImageDraw.Draw(page)
    for number, line in enumerate(lines):
        draw.text((40, 40 + 70 * number), line, font=font, fill=0)
    out = io.BytesIO()
    page.convert("RGB").save(out, "PDF", resolution=150)
    return out.getvalue()


def typeset_pdf(lines: list[str], font: str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf") -> bytes:
    """A PDF whose text layer is ``lines`` in an embedded TrueType font (CID-keyed, with a ToUnicode
    map, as a word processor's export of Vietnamese text is), written by PDFium."""
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    document = pdfium.PdfDocument.new()
    page = document.new_page(595, 842)
    with open(font, "rb") as file:
        font_bytes = file.read()
    font_buffer = (ctypes.c_uint8 * len(font_bytes)).from_buffer_copy(font_bytes)
    loaded = raw.FPDFText_LoadFont(document, font_buffer, len(font_bytes), raw.FPDF_FONT_TRUETYPE, True)
    for number, line in enumerate(lines):
        text_object = raw.FPDFPageObj_CreateTextObj(document, loaded, 12.0)
        encoded = (line + "\0").encode("utf-16-le")
        assert raw.FPDFText_SetText(text_object, (ctypes.c_ushort * (len(encoded) // 2)).from_buffer_copy(encoded))
        raw.FPDFPageObj_Transform(text_object, 1, 0, 0, 1, 50, 800 - 20 * number)
        raw.FPDFPage_InsertObject(page, text_object)
    assert raw.FPDFPage_GenerateContent(page)
    raw.FPDFFont_Close(loaded)
    out = io.BytesIO()
    document.save(out)
    page.close()
    document.close()
    return out.getvalue()


def encrypted_pdf(password: str = "mat-khau") -> bytes:
    """A PDF that opens only with a password."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.encrypt(password, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_bomb(inflated: int = 400 * 1024 * 1024) -> bytes:
    """A PDF of one page whose content stream (a few hundred KB) inflates to ``inflated`` bytes."""
    import zlib

    deflate = zlib.compressobj(9)
    chunk = b" " * (1024 * 1024)
    stream = b"".join(deflate.compress(chunk) for _ in range(inflated // len(chunk))) + deflate.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
