"""Attachments through the gateway, on SQLite and on PostgreSQL: the kind read from the bytes (never
from the multipart label), the allow list, the size and count limits, content-addressed storage
(one copy per sha256), safe file names, order and downloads.

The files are real: a PDF from services/demo/pdf.py, OOXML and ODF documents built with zipfile, images with
their magic bytes, a legacy OLE2 Word file, an edXML envelope, a DER-encoded signature.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from services.demo.pdf import make_pdf
from services.exchange.config import ExchangeSection
from services.exchange.document import attachments as kinds
from tests.conftest import ONE_DATABASE, running_system
from tests.helpers import Api, Client, assert_problem, metadata, received_ids, send_ok, sent_ids, upload_leftovers

SMALL_LIMIT = 64 * 1024

# --- real files ----------------------------------------------------------------------------------


def pdf(text: str = "") -> bytes:
    """A valid one-page PDF, different for each text."""
    return make_pdf(["Van ban thu nghiem", text or secrets.token_hex(8)])


def padded_pdf(size: int) -> bytes:
    """A PDF of exactly ``size`` bytes (a comment line after %%EOF, which readers ignore)."""
    base = pdf()
    assert size >= len(base) + 2
    return base + b"%" + b"0" * (size - len(base) - 2) + b"\n"


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 20, 8, 0, 0))
            # ODF wants its mimetype first and uncompressed
            info.compress_type = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def _content_types(main: str, part: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/{part}" ContentType="{main}"/>'
        "</Types>"
    ).encode()


def _rels(target: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        f'Target="{target}"/></Relationships>'
    ).encode()


def docx(text: str = "Kế hoạch") -> bytes:
    part = "word/document.xml"
    body = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"
    ).encode()
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    return _zip([("[Content_Types].xml", _content_types(main, part)), ("_rels/.rels", _rels(part)), (part, body)])


def xlsx() -> bytes:
    part = "xl/workbook.xml"
    body = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<sheets><sheet name="Sheet1" sheetId="1"/></sheets></workbook>'
    )
    main = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
    return _zip(
        [
            ("[Content_Types].xml", _content_types(main, part)),
            ("_rels/.rels", _rels(part)),
            (part, body),
            ("xl/worksheets/sheet1.xml", b"<worksheet/>"),
        ]
    )


def pptx() -> bytes:
    part = "ppt/presentation.xml"
    main = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"
    return _zip(
        [
            ("[Content_Types].xml", _content_types(main, part)),
            ("_rels/.rels", _rels(part)),
            (part, b"<p:presentation/>"),
        ]
    )


def odf(mimetype: str) -> bytes:
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mimetype}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    ).encode()
    return _zip(
        [
            ("mimetype", mimetype.encode()),
            ("content.xml", b'<?xml version="1.0" encoding="UTF-8"?><office:document-content/>'),
            ("META-INF/manifest.xml", manifest),
        ]
    )


def plain_zip() -> bytes:
    return _zip([("bao-cao/so-lieu.csv", "Đơn vị,Số lượng\nXã A,12\n".encode())])


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1×1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xda\x25\x1d")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def jpeg() -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"


def tiff(big_endian: bool = False) -> bytes:
    if big_endian:
        return b"MM\x00*" + struct.pack(">I", 8) + b"\x00\x00" + b"\x00\x00\x00\x00"
    return b"II*\x00" + struct.pack("<I", 8) + b"\x00\x00" + b"\x00\x00\x00\x00"


def ole2() -> bytes:
    """The header of a legacy Word/Excel file (Compound File Binary, 512-byte header)."""
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16 + b"\x3e\x00\x03\x00\xfe\xff\x09\x00" + b"\x00" * 480


def edxml(bom: bool = False) -> bytes:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<edXML:edXMLEnvelope xmlns:edXML="http://www.e-doc.vn/Schema/"><edXML:edXMLHeader>'
        "<edXML:MessageHeader><edXML:Subject>Kế hoạch</edXML:Subject></edXML:MessageHeader>"
        "</edXML:edXMLHeader></edXML:edXMLEnvelope>\n"
    ).encode()
    return (b"\xef\xbb\xbf" if bom else b"") + body


def p7s() -> bytes:
    """A DER SEQUENCE with a two-byte length, as a detached CMS signature starts."""
    content = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02" + bytes(range(256))[:245]
    return b"\x30\x82" + struct.pack(">H", len(content)) + content


# --- helpers -------------------------------------------------------------------------------------


@asynccontextmanager
async def running(database_url: str | None, tmp_path: Path, **exchange: Any) -> AsyncIterator[Api]:
    """The whole system in one process, like conftest's `api`, with the exchange settings given."""
    async with running_system(tmp_path / "var", database_url, exchange=ExchangeSection(**exchange)) as caller:
        yield caller


@pytest.fixture
async def limited_api(database_url: str | None, tmp_path: Path) -> AsyncIterator[Api]:
    """Attachments limited to 64 KiB each."""
    async with running(database_url, tmp_path, max_attachment_bytes=SMALL_LIMIT) as api:
        yield api


@pytest.fixture
async def two_files_api(database_url: str | None, tmp_path: Path) -> AsyncIterator[Api]:
    """At most two attachments per document."""
    async with running(database_url, tmp_path, max_attachments=2) as api:
        yield api


def stored_blobs(api: Api) -> dict[str, bytes]:
    """Every stored blob by file name (its sha256), the upload tmp/ directory excluded."""
    root = api.settings.blob_dir
    return {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"}


async def state(api: Api, sender: Client, recipient: Client) -> dict[str, Any]:
    """What a refused upload must leave untouched."""
    return {
        "sent": await sent_ids(api, sender),
        "received": await received_ids(api, recipient),
        "blobs": sorted(stored_blobs(api)),
    }


async def assert_nothing_stored(api: Api, sender: Client, recipient: Client, before: dict[str, Any]) -> None:
    assert await state(api, sender, recipient) == before
    assert upload_leftovers(api) == []


async def download(api: Api, client: Client, document_id: str, attachment_id: str) -> httpx.Response:
    response = await api.http.get(f"/v1/documents/{document_id}/attachments/{attachment_id}", headers=client.auth)
    assert response.status_code == 200, response.text
    return response


def disposition(name: str) -> str:
    return f"attachment; filename*=UTF-8''{quote(name)}"


def raw_multipart(fields: dict[str, str], files: list[tuple[bytes, bytes, str]]) -> tuple[bytes, str]:
    """A multipart body written by hand, so that file names reach the server byte for byte
    (httpx percent-escapes control characters and quotes in file names)."""
    boundary = f"lt-{secrets.token_hex(12)}"
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for file_name, content, content_type in files:
        out += f"--{boundary}\r\n".encode()
        out += b'Content-Disposition: form-data; name="files"; filename="' + file_name + b'"\r\n'
        out += f"Content-Type: {content_type}\r\n\r\n".encode() + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


# --- kinds read from the bytes -------------------------------------------------------------------


@ONE_DATABASE
async def test_every_allowed_kind_is_stored_with_the_type_read_from_its_bytes(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    # (file name, bytes, what the sender declares, what the exchange must store)
    cases: list[tuple[str, bytes, str, str]] = [
        ("van-ban.pdf", pdf(), "image/png", kinds.PDF),
        ("ke-hoach.docx", docx(), "application/octet-stream", kinds.DOCX),
        ("so-lieu.xlsx", xlsx(), "application/zip", kinds.XLSX),
        ("trinh-chieu.pptx", pptx(), "application/octet-stream", kinds.PPTX),
        ("cong-van.odt", odf(kinds.ODT), "text/plain", kinds.ODT),
        ("bang-tinh.ods", odf(kinds.ODS), "application/octet-stream", kinds.ODS),
        ("trinh-bay.odp", odf(kinds.ODP), "application/octet-stream", kinds.ODP),
        ("cong-van-cu.doc", ole2(), "application/pdf", kinds.DOC),
        ("bang-tinh-cu.xls", ole2() + b"\x01", "application/octet-stream", kinds.XLS),
        ("anh.png", png(), "application/pdf", kinds.PNG),
        ("anh.jpg", jpeg(), "application/octet-stream", kinds.JPEG),
        ("ban-quet.tif", tiff(), "application/octet-stream", kinds.TIFF),
        ("ban-quet-mm.tiff", tiff(big_endian=True), "image/png", kinds.TIFF),
        ("ho-so.zip", plain_zip(), "application/x-zip-compressed", kinds.ZIP),
        ("goi-tin.xml", edxml(), "text/plain", kinds.XML),
        ("goi-tin-bom.edxml", edxml(bom=True), "application/octet-stream", kinds.XML),
        ("chu-ky.p7s", p7s(), "application/octet-stream", kinds.P7S),
    ]
    assert {expected for *_, expected in cases} == set(kinds.ALLOWED)  # every allowed kind is tried

    files = [(name, content, declared) for name, content, declared, _ in cases]
    accepted = await send_ok(api, sender, [recipient], files=files)
    assert [(a["file_name"], a["content_type"], a["size"], a["sha256"]) for a in accepted["attachments"]] == [
        (name, expected, len(content), hashlib.sha256(content).hexdigest()) for name, content, _, expected in cases
    ]
    seen = await api.http.get(f"/v1/documents/{accepted['id']}", headers=recipient.auth)
    assert seen.json()["attachments"] == accepted["attachments"]
    assert sorted(stored_blobs(api)) == sorted(hashlib.sha256(content).hexdigest() for _, content, _, _ in cases)

    for attachment, (name, content, _, expected) in zip(accepted["attachments"], cases, strict=True):
        response = await download(api, recipient, accepted["id"], attachment["id"])
        assert response.content == content, name
        assert response.headers["content-type"] == expected, name
        assert response.headers["x-content-sha256"] == hashlib.sha256(content).hexdigest()
        assert response.headers["content-length"] == str(len(content))
        assert response.headers["content-disposition"] == disposition(name)


@ONE_DATABASE
async def test_declared_type_is_ignored(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    a_pdf, a_docx = pdf("khai bao sai"), docx("Tờ trình")
    accepted = await send_ok(
        api,
        sender,
        [recipient],
        files=[("anh-chup.png", a_pdf, "image/png"), ("to-trinh.docx", a_docx, "application/octet-stream")],
    )
    assert [(a["file_name"], a["content_type"]) for a in accepted["attachments"]] == [
        ("anh-chup.png", kinds.PDF),
        ("to-trinh.docx", kinds.DOCX),
    ]
    first = await download(api, sender, accepted["id"], accepted["attachments"][0]["id"])
    assert (first.headers["content-type"], first.content) == (kinds.PDF, a_pdf)
    second = await download(api, recipient, accepted["id"], accepted["attachments"][1]["id"])
    assert (second.headers["content-type"], second.content) == (kinds.DOCX, a_docx)


async def test_refused_kinds_are_415_and_nothing_is_stored(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    before = await state(api, sender, recipient)
    exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"This program cannot be run"
    refused = [
        ("report.pdf", exe, "application/pdf"),
        ("ghi-chu.txt", "Ghi chú: họp lúc 9 giờ".encode(), "text/plain"),
        ("trang.html", b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "text/html"),
        ("trang.pdf", b"<html><body>PDF?</body></html>", "application/pdf"),
        ("chu-ky.pdf", p7s(), "application/pkcs7-signature"),  # a DER blob counts as a signature only as .p7s
        ("rong.pdf", b"", "application/pdf"),
    ]
    for name, content, declared in refused:
        response = await api.send(sender, [recipient.agency_code], files=[(name, content, declared)])
        body = assert_problem(response, 415, "attachment_type_not_allowed")
        assert body["allowed"] == list(kinds.ALLOWED), name
        assert body["file_name"] == name
        await assert_nothing_stored(api, sender, recipient, before)
    assert stored_blobs(api) == {}


async def test_a_refused_file_after_accepted_ones_leaves_nothing_behind(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    before = await state(api, sender, recipient)
    exe = b"MZ\x90\x00" + b"\x00" * 60
    response = await api.send(
        sender,
        [recipient.agency_code],
        files=[("van-ban.pdf", pdf(), "application/pdf"), ("report.pdf", exe, "application/pdf")],
    )
    assert_problem(response, 415, "attachment_type_not_allowed")
    await assert_nothing_stored(api, sender, recipient, before)


@ONE_DATABASE
async def test_a_corrupt_zip_is_refused_and_not_kept(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    before = await state(api, sender, recipient)
    corrupt = b"PK\x03\x04" + b"\x14\x00\x00\x00" + secrets.token_bytes(200)
    response = await api.send(sender, [recipient.agency_code], files=[("ho-so.docx", corrupt, kinds.DOCX)])
    assert_problem(response, 415, "attachment_type_not_allowed")
    await assert_nothing_stored(api, sender, recipient, before)


# --- size limit ----------------------------------------------------------------------------------


@ONE_DATABASE
async def test_size_limit_is_413_above_and_accepted_at_the_limit(limited_api: Api) -> None:
    api = limited_api
    sender, recipient = await api.agency_client(), await api.agency_client()
    before = await state(api, sender, recipient)
    for size in (65 * 1024, SMALL_LIMIT + 1):
        response = await api.send(sender, [recipient.agency_code], files=[("lon.pdf", padded_pdf(size), kinds.PDF)])
        body = assert_problem(response, 413, "payload_too_large")
        assert body["max_bytes"] == SMALL_LIMIT
        await assert_nothing_stored(api, sender, recipient, before)

    exact = padded_pdf(SMALL_LIMIT)
    assert len(exact) == SMALL_LIMIT
    accepted = await send_ok(api, sender, [recipient], files=[("vua-du.pdf", exact, kinds.PDF)])
    [attachment] = accepted["attachments"]
    assert (attachment["size"], attachment["content_type"]) == (SMALL_LIMIT, kinds.PDF)
    assert (await download(api, recipient, accepted["id"], attachment["id"])).content == exact
    assert stored_blobs(api) == {hashlib.sha256(exact).hexdigest(): exact}
    assert upload_leftovers(api) == []


async def test_a_too_large_file_after_a_small_one_leaves_nothing_behind(limited_api: Api) -> None:
    api = limited_api
    sender, recipient = await api.agency_client(), await api.agency_client()
    before = await state(api, sender, recipient)
    files = [("nho.pdf", pdf(), kinds.PDF), ("lon.pdf", padded_pdf(SMALL_LIMIT + 1), kinds.PDF)]
    assert_problem(await api.send(sender, [recipient.agency_code], files=files), 413, "payload_too_large")
    await assert_nothing_stored(api, sender, recipient, before)


# --- content-addressed storage -------------------------------------------------------------------


async def test_the_same_file_in_two_documents_is_stored_once(api: Api) -> None:
    sender, other_sender, recipient = await api.agency_client(), await api.agency_client(), await api.agency_client()
    shared = pdf("mot ban duy nhat")
    sha = hashlib.sha256(shared).hexdigest()
    first = await send_ok(api, sender, [recipient], files=[("ban-1.pdf", shared, kinds.PDF)])
    second = await send_ok(api, other_sender, [recipient], files=[("ban-2.pdf", shared, kinds.PDF)])
    assert first["attachments"][0]["id"] != second["attachments"][0]["id"]
    assert first["attachments"][0]["sha256"] == second["attachments"][0]["sha256"] == sha

    assert stored_blobs(api) == {sha: shared}
    root = api.settings.blob_dir
    assert [p for p in root.rglob(sha)] == [root / sha[:2] / sha[2:4] / sha]
    assert upload_leftovers(api) == []

    bodies = []
    for accepted, reader, name in ((first, sender, "ban-1.pdf"), (second, recipient, "ban-2.pdf")):
        response = await download(api, reader, accepted["id"], accepted["attachments"][0]["id"])
        assert response.headers["x-content-sha256"] == sha
        assert response.headers["etag"] == f'"{sha}"'
        assert response.headers["content-disposition"] == disposition(name)
        bodies.append(response.content)
    assert bodies == [shared, shared]


# --- file names ----------------------------------------------------------------------------------


@ONE_DATABASE
async def test_file_names_are_sanitised(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    vietnamese = "Báo cáo tháng 11 – Sở Tài chính.pdf"
    long_name = "v" * 300 + ".pdf"
    cases = [
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("C:\\Users\\Văn thư\\bao-cao.pdf", "bao-cao.pdf"),
        (unicodedata.normalize("NFD", vietnamese), vietnamese),
        ("  ..bản sao..  ", "bản sao"),
        ("...", "attachment-5"),
        ("a:b*c?<d>|e.pdf", "a_b_c_d_e.pdf"),
        (long_name, long_name[:255]),
    ]
    files = [(given, pdf(given), kinds.PDF) for given, _ in cases]
    accepted = await send_ok(api, sender, [recipient], files=files)
    names = [a["file_name"] for a in accepted["attachments"]]
    assert names == [expected for _, expected in cases]
    assert unicodedata.is_normalized("NFC", names[2])
    assert names[2].encode() == vietnamese.encode()  # stored in NFC, byte for byte

    seen = await api.http.get(f"/v1/documents/{accepted['id']}", headers=recipient.auth)
    assert [a["file_name"] for a in seen.json()["attachments"]] == names
    for attachment, (given, expected) in zip(accepted["attachments"], cases, strict=True):
        response = await download(api, recipient, accepted["id"], attachment["id"])
        header = response.headers["content-disposition"]
        assert header == disposition(expected), given
        assert header.isascii() and "filename=" not in header  # RFC 5987 form only, percent-encoded UTF-8
    header = (await download(api, recipient, accepted["id"], accepted["attachments"][2]["id"])).headers
    assert header["content-disposition"] == (
        "attachment; filename*=UTF-8''B%C3%A1o%20c%C3%A1o%20th%C3%A1ng%2011%20%E2%80%93%20S%E1%BB%9F%20T%C3%A0i"
        "%20ch%C3%ADnh.pdf"
    )


@ONE_DATABASE
async def test_control_characters_in_file_names_are_replaced(api: Api) -> None:
    """File names written byte for byte into the multipart body: control characters (NUL, tab,
    unit separator, DEL) and quotes never reach the database or a header."""
    sender, recipient = await api.agency_client(), await api.agency_client()
    cases = [
        (b"bao\x01cao\x1f\x7f thang.pdf", "bao_cao_ thang.pdf"),
        (b"to\x00trinh.pdf", "to_trinh.pdf"),
        (b"\tcong-van.pdf", "_cong-van.pdf"),
        ("Quyết\x1bđịnh.pdf".encode(), "Quyết_định.pdf"),
        (b"\x01\x02\x03", "_"),
    ]
    body, content_type = raw_multipart(
        {"metadata": json.dumps(metadata([recipient.agency_code]), ensure_ascii=False)},
        [(raw, pdf(str(n)), kinds.PDF) for n, (raw, _) in enumerate(cases)],
    )
    response = await api.http.post("/v1/documents", content=body, headers={**sender.auth, "Content-Type": content_type})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert [a["file_name"] for a in accepted["attachments"]] == [expected for _, expected in cases]
    for attachment, (_, expected) in zip(accepted["attachments"], cases, strict=True):
        header = (await download(api, recipient, accepted["id"], attachment["id"])).headers["content-disposition"]
        assert header == disposition(expected)
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in header)


# --- several files -------------------------------------------------------------------------------


@ONE_DATABASE
async def test_several_files_keep_their_order_and_each_downloads(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    files = [
        ("z-van-ban-chinh.pdf", pdf("chinh"), "application/pdf", kinds.PDF),
        ("a-phu-luc.docx", docx("Phụ lục"), "application/octet-stream", kinds.DOCX),
        ("m-so-do.png", png(), "image/png", kinds.PNG),
        ("b-goi-tin.xml", edxml(), "application/xml", kinds.XML),
        ("c-chu-ky.p7s", p7s(), "application/octet-stream", kinds.P7S),
    ]
    accepted = await send_ok(api, sender, [recipient], files=[(n, c, d) for n, c, d, _ in files])
    expected = [(n, t, len(c)) for n, c, _, t in files]
    assert [(a["file_name"], a["content_type"], a["size"]) for a in accepted["attachments"]] == expected
    for reader in (sender, recipient):
        seen = (await api.http.get(f"/v1/documents/{accepted['id']}", headers=reader.auth)).json()
        assert [(a["file_name"], a["content_type"], a["size"]) for a in seen["attachments"]] == expected
        assert [a["id"] for a in seen["attachments"]] == [a["id"] for a in accepted["attachments"]]
    for attachment, (name, content, _, content_type) in zip(accepted["attachments"], files, strict=True):
        response = await download(api, recipient, accepted["id"], attachment["id"])
        assert (response.content, response.headers["content-type"]) == (content, content_type), name
        assert response.headers["x-content-sha256"] == hashlib.sha256(content).hexdigest()


async def test_more_files_than_allowed_is_400_and_nothing_is_stored(two_files_api: Api) -> None:
    api = two_files_api
    sender, recipient = await api.agency_client(), await api.agency_client()
    before = await state(api, sender, recipient)
    three = [(f"tep-{n}.pdf", pdf(str(n)), kinds.PDF) for n in range(3)]
    body = assert_problem(await api.send(sender, [recipient.agency_code], files=three), 400, "bad_request")
    assert body["max_attachments"] == 2
    await assert_nothing_stored(api, sender, recipient, before)

    accepted = await send_ok(api, sender, [recipient], files=three[:2])
    assert [a["file_name"] for a in accepted["attachments"]] == ["tep-0.pdf", "tep-1.pdf"]
    assert await received_ids(api, recipient) == [accepted["id"]]


@ONE_DATABASE
async def test_a_document_without_files_is_refused(api: Api) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    before = await state(api, sender, recipient)
    response = await api.http.post(
        "/v1/documents",
        data={"metadata": json.dumps(metadata([recipient.agency_code]), ensure_ascii=False)},
        headers=sender.auth,
    )
    assert_problem(response, 422, "validation_failed")  # the `files` part is required
    await assert_nothing_stored(api, sender, recipient, before)


async def test_exchange_start_cleans_upload_files_a_killed_process_left(tmp_path):
    from tests.conftest import running_system

    leftover = tmp_path / "var" / "blobs" / "tmp" / "upload-left-by-a-kill"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"partial")
    async with running_system(tmp_path / "var") as api:
        assert not leftover.exists()
        assert (await api.http.get("/ready")).status_code == 200
