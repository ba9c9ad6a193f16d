"""Text out of a file: the PDF text layer (PDFium), DOCX and ODT (a ZIP of XML, read with bounded
decompression), plain text, and OCR (Tesseract, Vietnamese) for scans without a text layer.

Runs in a process of its own (``python -m services.archive.extraction CONTENT_TYPE [LANGUAGES |
--check]``: the file on
stdin, the text as JSON on stdout), started by :mod:`services.archive.extractor` with a time
limit and an address-space limit: a hostile file can make it fail, never stall or bloat the archive.
"""

from __future__ import annotations

import html
import io
import json
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from shared.blobs import read_blob

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"
IMAGES = ("image/png", "image/jpeg", "image/tiff")
PLAIN = ("text/plain", "application/xml", "text/xml")

# a ZIP is read only within these bounds (zip bombs: many entries, huge inflated sizes, ratios)
MAX_ENTRIES = 2000
MAX_INFLATED = 64 * 1024 * 1024
MAX_RATIO = 200
MAX_PDF_PAGES = 2000
MAX_OCR_PAGES = 50


class ExtractionError(Exception):
    """The file cannot be read for text: said why, in words an operator can act on."""


def extract(
    data: bytes, content_type: str, *, languages: str = "vie", max_chars: int = 200_000, pdf_engine: str = "pdfium"
) -> str:
    """The text of a file, by its (sniffed) content type; empty for kinds that carry none. A PDF's
    text layer is read by PDFium, or by pypdf with ``pdf_engine="pypdf"`` (see :func:`pdf_text`)."""
    if content_type == PDF:
        text = pdf_text(data, engine=pdf_engine)
        if not text.strip():
            text = "\n".join(ocr_image(image, languages) for image in pdf_images(data))
    elif content_type == DOCX:
        text = zip_xml_text(data, ("word/document.xml",), paragraph="w:p", run=r"w:t")
    elif content_type == ODT:
        text = zip_xml_text(data, ("content.xml",), paragraph="text:p", run=None)
    elif content_type in IMAGES:
        text = ocr_image(data, languages)
    elif content_type in PLAIN or content_type.startswith("text/"):
        text = data.decode("utf-8", "replace")
    else:
        text = ""
    return text[:max_chars]


def check(data: bytes, content_type: str) -> None:
    """Raise ExtractionError unless the scan can be read: a PDF with pages, an image Pillow decodes."""
    if content_type == PDF:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError

        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                raise ExtractionError("the PDF is encrypted")
            if len(reader.pages) == 0:
                raise ExtractionError("the PDF has no page")
        except ExtractionError:
            raise
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
            raise ExtractionError(f"not a readable PDF: {exc}") from exc
    elif content_type in IMAGES:
        from PIL import Image, UnidentifiedImageError

        Image.MAX_IMAGE_PIXELS = 200_000_000  # a page at 600 dpi is ~35 M: beyond, a decompression bomb
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ExtractionError(f"not a readable image: {exc}") from exc


def pdf_text(data: bytes, *, engine: str = "pdfium") -> str:
    """The text layer of a PDF, page by page, read by PDFium (pypdfium2: about a quarter of pypdf's
    CPU for the same page, docs/performance.md "The sixth session's changes"). PDFium is C++: it
    runs only in the extractor's bounded worker processes, and where it fails by aborting its process
    (a stream that inflates past the worker's memory limit) the extractor reads the file again with
    ``engine="pypdf"``, which bounds what it inflates and says why it stops."""
    if engine == "pypdf":
        return _pypdf_text(data)
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium.raw.FPDF_ERR_PASSWORD:
            raise ExtractionError("the PDF is encrypted") from exc
        raise ExtractionError(f"not a readable PDF: {exc}") from exc
    try:
        pages = []
        for number in range(min(len(document), MAX_PDF_PAGES)):
            page = document[number]
            try:
                text_page = page.get_textpage()
                try:
                    pages.append(text_page.get_text_range().replace("\r\n", "\n").replace("\x00", ""))
                finally:
                    text_page.close()
            finally:
                page.close()
        return "\n".join(pages)
    except pdfium.PdfiumError as exc:
        raise ExtractionError(f"not a readable PDF: {exc}") from exc
    finally:
        document.close()


def _pypdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise ExtractionError("the PDF is encrypted")
        pages = []
        for number, page in enumerate(reader.pages):
            if number >= MAX_PDF_PAGES:
                break
            pages.append(page.extract_text() or "")
        return "\n".join(pages)
    except ExtractionError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise ExtractionError(f"not a readable PDF: {exc}") from exc


def pdf_images(data: bytes) -> Iterator[bytes]:
    """The images of a scanned PDF's pages (one per page for a scanner's output), as files."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        for number, page in enumerate(reader.pages):
            if number >= MAX_OCR_PAGES:
                return
            for image in page.images:
                yield image.data
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OSError) as exc:
        raise ExtractionError(f"the PDF's images cannot be read: {exc}") from exc


def ocr_image(data: bytes, languages: str) -> str:
    """Recognise the text of an image with Tesseract (Debian: tesseract-ocr, tesseract-ocr-vie)."""
    try:
        done = subprocess.run(
            ["tesseract", "stdin", "stdout", "-l", languages, "--psm", "3"],
            input=data,
            capture_output=True,
            timeout=300,  # the worker's own limit, shorter, is what holds in practice
            check=False,
        )
    except FileNotFoundError as exc:
        raise ExtractionError("tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-vie)") from exc
    if done.returncode != 0:
        raise ExtractionError(f"OCR failed: {done.stderr.decode('utf-8', 'replace')[-300:].strip()}")
    return done.stdout.decode("utf-8", "replace")


def read_bounded(archive: zipfile.ZipFile, name: str, budget: int) -> bytes:
    """Inflate one entry, never past ``budget`` bytes nor ``MAX_RATIO`` times its compressed size,
    whatever its header declares."""
    info = archive.getinfo(name)
    limit = min(budget, max(info.compress_size, 1) * MAX_RATIO)
    if info.file_size > limit:
        raise ExtractionError(f"{name} would inflate to {info.file_size} bytes (limit {limit})")
    out = bytearray()
    with archive.open(info) as stream:
        while chunk := stream.read(64 * 1024):
            out += chunk
            if len(out) > limit:
                raise ExtractionError(f"{name} inflates past {limit} bytes")
    return bytes(out)


_TAG = re.compile(r"<[^>]{0,2000}>")


def zip_xml_text(data: bytes, entries: tuple[str, ...], *, paragraph: str, run: str | None) -> str:
    """The text of a DOCX or ODT: its XML read as text (no XML parser: no entity expansion)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ExtractionError(f"not a readable ZIP: {exc}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise ExtractionError(f"{len(infos)} entries in the ZIP (limit {MAX_ENTRIES})")
        if sum(i.file_size for i in infos) > MAX_INFLATED * 4:
            raise ExtractionError("the ZIP declares more inflated bytes than a document holds")
        names = set(archive.namelist())
        budget = MAX_INFLATED
        texts = []
        for name in entries:
            if name not in names:
                raise ExtractionError(f"{name} is missing: not a document of this kind")
            try:
                xml = read_bounded(archive, name, budget).decode("utf-8", "replace")
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
                raise ExtractionError(f"{name} cannot be inflated: {exc}") from exc
            budget -= len(xml)
            texts.append(xml_text(xml, paragraph=paragraph, run=run))
        return "\n".join(texts)


def xml_text(xml: str, *, paragraph: str, run: str | None) -> str:
    """Paragraphs' text out of WordprocessingML (runs ``<w:t>``) or ODF (every text node)."""
    xml = re.sub(rf"</{re.escape(paragraph)}>", "\n", xml)
    if run is not None:
        pieces = re.findall(rf"<{run}(?:\s[^>]*)?>([^<]*)</{run}>|(\n)", xml)
        text = "".join(piece or newline for piece, newline in pieces)
    else:
        xml = re.sub(r"<text:(?:s|tab|line-break)\b[^>]*/>", " ", xml)
        text = _TAG.sub("", xml)
    return html.unescape(text)


def run(data: bytes, content_type: str, mode: str, max_chars: int, pdf_engine: str = "pdfium") -> dict[str, str]:
    """One file's text (``mode``: the OCR languages) or, with ``mode`` ``--check``, whether a scan can
    be read: ``{"text": …}`` or ``{"error": …}``. What a worker of the extractor's pool runs."""
    try:
        if mode == "--check":
            check(data, content_type)
            return {"text": ""}
        return {"text": extract(data, content_type, languages=mode, max_chars=max_chars, pdf_engine=pdf_engine)}
    except ExtractionError as exc:
        return {"error": str(exc)}
    except MemoryError:
        return {"error": "the file needs more memory to read than an extraction may use"}
    except Exception as exc:  # a parser's own failure on a malformed file: this file's reason
        return {"error": f"the file could not be read ({type(exc).__name__}: {exc})"[:500]}


def run_blob(
    root: str, sha256: str, content_type: str, mode: str, max_chars: int, max_bytes: int, pdf_engine: str = "pdfium"
) -> dict[str, str]:
    """:func:`run` on a file of the blob store the worker reads itself (the parent sends its hash,
    not its bytes through the pool's pipe): ``{"missing": …}`` when it is not there whole (its hash
    checked, as when the parent reads it) or is larger than ``max_bytes``."""
    data = read_blob(Path(root), sha256, max_bytes)
    if data is None:
        return {"missing": "no such blob, or not whole"}
    return run(data, content_type, mode, max_chars, pdf_engine)


def run_blobs(
    requests: list[tuple[str, str, str, int]], mode: str, max_chars: int, timeout_seconds: float
) -> list[dict[str, str]]:
    """:func:`run_blob` for several files of the blob store (``(root, sha256, content_type,
    max_bytes)`` each), one after the other in the same worker: one task of the pool, one hand-over
    each way, for a batch of the text enricher's files. Each answered as alone: a file that took
    longer than ``timeout_seconds`` gets the overrun's error (alone it would have been stopped)."""
    answers = []
    for root, sha256, content_type, max_bytes in requests:
        started = time.monotonic()
        answer = run_blob(root, sha256, content_type, mode, max_chars, max_bytes)
        if time.monotonic() - started > timeout_seconds:
            answer = {"error": f"extraction took longer than {timeout_seconds:g} s"}
        answers.append(answer)
    return answers


def main() -> None:
    content_type = sys.argv[1]
    languages = sys.argv[2] if len(sys.argv) > 2 else "vie"
    max_chars = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000
    data = sys.stdin.buffer.read()
    try:
        if languages == "--check":
            check(data, content_type)
            json.dump({"text": ""}, sys.stdout)
            return
        text = extract(data, content_type, languages=languages, max_chars=max_chars)
    except ExtractionError as exc:
        json.dump({"error": str(exc)}, sys.stdout)
        return
    json.dump({"text": text}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
