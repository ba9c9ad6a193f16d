"""Zip bombs: every archive the services open is read with bounded decompression
(shared/safezip.py): entry count, inflated size and ratio limits, and bounded reads of entries."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from services.exchange.document.attachments import ODT, ZIP, refine_zip
from services.exchange.errors import AttachmentArchiveUnsafeError
from shared.safezip import ArchiveLimits, UnsafeArchiveError, open_archive, read_entry
from tests.helpers import Api, assert_problem, metadata

GIB = 1024**3


def deflate_zeros(size: int) -> bytes:
    """A raw deflate stream of ``size`` zero bytes (a multiple of 1 MiB), built without compressing
    them all: one fully flushed block of 1 MiB repeated."""
    block_size = 1024 * 1024
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"\0" * block_size) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # an empty final block
    return block * (size // block_size) + end


def bomb_zip(entries: dict[str, int]) -> bytes:
    """A ZIP whose entries (name → inflated size, zeros) are deflated; the CRCs are not computed
    (nothing should ever inflate these entries to the end)."""
    out = io.BytesIO()
    central = []
    for name, size in entries.items():
        data = deflate_zeros(size)
        offset = out.tell()
        encoded = name.encode()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, 0, len(data), size, len(encoded), 0))
        out.write(encoded + data)
        central.append(
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                20,
                20,
                0,
                8,
                0,
                0,
                0,
                len(data),
                size,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + encoded
        )
    start = out.tell()
    directory = b"".join(central)
    out.write(directory)
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central), len(directory), start, 0))
    return out.getvalue()


@pytest.fixture(scope="module")
def mimetype_bomb() -> bytes:
    """About 1 MB whose ``mimetype`` entry inflates to 1 GiB."""
    data = bomb_zip({"mimetype": GIB, "content.xml": 1024 * 1024})
    assert len(data) < 2 * 1024 * 1024
    return data


def test_a_mimetype_that_inflates_to_a_gibibyte_is_refused(tmp_path: Path, mimetype_bomb: bytes) -> None:
    path = tmp_path / "bomb.odt"
    path.write_bytes(mimetype_bomb)
    with pytest.raises(AttachmentArchiveUnsafeError):
        refine_zip(path)


def test_the_mimetype_is_read_bounded_even_when_the_ratio_is_allowed(tmp_path: Path, mimetype_bomb: bytes) -> None:
    path = tmp_path / "bomb.zip"
    path.write_bytes(mimetype_bomb)
    relaxed = ArchiveLimits(max_entries=10, max_total_bytes=2 * GIB, max_ratio=10**9)
    # only 100 bytes of the gibibyte are inflated: a plain ZIP, at once
    assert refine_zip(path, relaxed) == ZIP
    with open_archive(path, relaxed) as archive:
        assert read_entry(archive, "mimetype", 100, truncate=True) == b"\0" * 100
        with pytest.raises(UnsafeArchiveError):
            read_entry(archive, "mimetype", 1000)


def test_archive_limits_entries_total_and_ratio() -> None:
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as archive:
        for n in range(11):
            archive.writestr(f"f{n}", b"x")
    with pytest.raises(UnsafeArchiveError, match="entries"):
        open_archive(io.BytesIO(many.getvalue()), ArchiveLimits(max_entries=10))
    big = io.BytesIO(bomb_zip({"a": 1024 * 1024, "b": 1024 * 1024}))
    with pytest.raises(UnsafeArchiveError, match="inflates to more than"):
        open_archive(big, ArchiveLimits(max_total_bytes=1024 * 1024 + 1, max_ratio=10**6))
    with pytest.raises(UnsafeArchiveError, match="times"):
        open_archive(big, ArchiveLimits(max_ratio=200))


def test_a_real_odf_document_is_still_recognised(tmp_path: Path) -> None:
    path = tmp_path / "real.odt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", ODT, compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", "<office:document-content/>" * 1000, compress_type=zipfile.ZIP_DEFLATED)
    assert refine_zip(path) == ODT


async def test_an_upload_that_is_a_zip_bomb_is_refused_and_nothing_is_stored(api: Api, mimetype_bomb: bytes) -> None:
    sender = await api.agency_client()
    recipient = await api.agency_client()
    response = await api.http.post(
        "/v1/documents",
        data={"metadata": json.dumps(metadata([recipient.agency_code]))},
        files={"files": ("bao-cao.odt", mimetype_bomb, ODT)},
        headers=sender.auth,
    )
    body = assert_problem(response, 422, "attachment_archive_unsafe")
    assert body["file_name"] == "bao-cao.odt"
    assert (await api.http.get("/v1/inbox", headers=recipient.auth)).json()["items"] == []
