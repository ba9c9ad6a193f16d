"""Text extraction: DOCX, ODT, PDF text layer, and the bounds a hostile file meets."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest

from services.archive.extraction import DOCX, ODT, PDF, ExtractionError, extract, run
from services.archive.extractor import TextExtractor
from services.archive.record import files
from services.demo.pdf import make_pdf
from tests.archive.corpus import docx, encrypted_pdf, odt, pdf_bomb, typeset_pdf, zip_bomb


def test_docx_odt_and_pdf_text_is_read() -> None:
    assert extract(docx(["Thị xã Đồng Xoài", "tổ chức hội nghị"]), DOCX) == "Thị xã Đồng Xoài\ntổ chức hội nghị\n"
    assert "văn bản điện tử" in extract(odt(["Triển khai văn bản điện tử"]), ODT)
    assert "Hop giao ban" in extract(make_pdf(["Hop giao ban quy IV"]), PDF)


def test_a_pdf_in_an_embedded_font_gives_its_vietnamese_text_whole() -> None:
    lines = ["Ủy ban nhân dân thị xã Đồng Xoài", "Về việc tổ chức hội nghị tổng kết năm 2026"]
    assert extract(typeset_pdf(lines), PDF).splitlines() == lines


@pytest.mark.parametrize(
    ("data", "kind", "why"),
    [
        (zip_bomb(), DOCX, "inflate"),
        (b"PK\x03\x04 not a zip at all", DOCX, "ZIP"),
        (b"%PDF-1.7\n garbage without objects", PDF, "PDF"),
        (encrypted_pdf(), PDF, "encrypted"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF", PDF, "PDF"),
    ],
)
def test_hostile_files_fail_with_a_reason(data: bytes, kind: str, why: str) -> None:
    with pytest.raises(ExtractionError, match=why):
        extract(data, kind)


def test_a_zip_of_too_many_entries_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(2001):
            archive.writestr(f"x/{i}", b"")
    with pytest.raises(ExtractionError, match="entries"):
        extract(out.getvalue(), DOCX)


async def test_the_worker_is_bounded_in_time() -> None:
    slow = TextExtractor(timeout_seconds=0, memory_mb=512, languages="vie", max_chars=1000)
    try:
        result = await slow.extract(make_pdf(["x"]), PDF)
        assert result.text == "" and result.error and "longer than" in result.error
    finally:
        await slow.shutdown()
    worker = TextExtractor(timeout_seconds=30, memory_mb=512, languages="vie", max_chars=1000)
    try:
        bomb = await worker.extract(zip_bomb(), DOCX)
        assert bomb.text == "" and bomb.error and "inflate" in bomb.error
    finally:
        await worker.shutdown()


async def test_the_workers_outlive_a_file_and_a_killed_pool_is_replaced() -> None:
    """Workers are started once and read many files; a file that overruns has the pool killed, and
    the next file is read by a fresh one."""
    extractor = TextExtractor(timeout_seconds=30, memory_mb=512, languages="vie", max_chars=1000)
    try:
        first = await extractor.extract(make_pdf(["Van ban mot"]), PDF)
        pool = extractor._executor
        second = await extractor.extract(make_pdf(["Van ban hai"]), PDF)
        assert "mot" in first.text and "hai" in second.text
        assert extractor._executor is pool  # the same workers: no process per file
        extractor.timeout_seconds = 0  # not done the moment it is handed over: overran
        overran = await extractor.extract(make_pdf(["x"]), PDF)
        assert overran.error and "longer than" in overran.error
        assert extractor._executor is None  # killed
        extractor.timeout_seconds = 30
        again = await extractor.extract(make_pdf(["Van ban ba"]), PDF)
        assert "ba" in again.text and extractor._executor is not None
    finally:
        await extractor.shutdown()


async def test_a_pdf_that_inflates_past_the_memory_limit_fails_with_a_reason_and_spares_its_neighbour() -> None:
    """PDFium aborts its process when a stream inflates past the worker's memory: the file is read
    again with pypdf, which stops at its own bound and says why; a file extracted beside it (its
    worker killed with the pool) is read again and keeps its text."""
    import asyncio
    import time

    extractor = TextExtractor(timeout_seconds=60, memory_mb=256, languages="vie", max_chars=1000)
    try:
        started = time.monotonic()
        bomb, neighbour = await asyncio.gather(
            extractor.extract(pdf_bomb(), PDF), extractor.extract(make_pdf(["Van ban ben canh"]), PDF)
        )
        assert bomb.text == ""
        assert bomb.error is not None and "decompressing" in bomb.error and "died" not in bomb.error, bomb
        assert "Van ban ben canh" in neighbour.text and neighbour.error is None, neighbour
        assert time.monotonic() - started < 30
        again = await extractor.extract(make_pdf(["Van ban sau"]), PDF)  # the pool serves on
        assert "Van ban sau" in again.text
    finally:
        await extractor.shutdown()


def test_a_kept_scan_its_name_and_its_new_directory_are_synced_to_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A digitised record's scan may be the only copy: its bytes, then its rename (the directory
    holding it) and the new directory's entry are on disk before the record commits."""
    synced: list[Path] = []
    fsync = os.fsync

    def recording(descriptor: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{descriptor}")))
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording)
    files_dir = tmp_path / "files"
    sha256 = files.store(files_dir, b"%PDF-1.7 ban sao so hoa")
    target = files_dir / sha256[:2] / sha256
    assert target.read_bytes() == b"%PDF-1.7 ban sao so hoa"
    assert target.stat().st_mode & 0o777 == 0o600  # the owner only, as the exchange keeps its blobs
    [written] = [p for p in synced if p.name.startswith(f".{sha256}.")]  # the bytes, before the rename
    assert written.parent == target.parent
    assert synced.index(target.parent) > synced.index(written)
    assert files_dir in synced and tmp_path in synced  # the new directories' entries
    synced.clear()
    assert files.store(files_dir, b"%PDF-1.7 ban sao so hoa") == sha256  # kept already: nothing written
    assert synced == []

    # a directory another upload made (and may not have synced yet): its entry synced all the same
    other = b"%PDF-1.7 ban sao khac"
    (files_dir / hashlib.sha256(other).hexdigest()[:2]).mkdir(exist_ok=True)
    files.store(files_dir, other)
    assert files_dir in synced


def _blob(root: Path, data: bytes) -> str:
    sha256 = hashlib.sha256(data).hexdigest()
    path = root / sha256[:2] / sha256[2:4] / sha256
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha256


async def test_blobs_asked_together_are_read_a_batch_a_worker(tmp_path: Path) -> None:
    """The text enricher's files (asked in one turn of the event loop) go to the pool as one task a
    worker, each with its own answer: its text, its error, or None for a file the store lacks."""
    import asyncio

    extractor = TextExtractor(timeout_seconds=30, memory_mb=512, languages="vie", max_chars=1000)
    texts = [f"Van ban so {n}" for n in range(12)]
    shas = [_blob(tmp_path, make_pdf([text])) for text in texts]
    broken = _blob(tmp_path, b"%PDF-1.7\n garbage without objects")
    tasks: list[int] = []
    try:
        pool = extractor._pool()
        submit = pool.submit

        def counting(function: object, *args: object, **kwargs: object) -> object:
            tasks.append(len(args[0]) if args and isinstance(args[0], list) else 1)
            return submit(function, *args, **kwargs)  # type: ignore[arg-type]

        pool.submit = counting  # type: ignore[method-assign]
        answers = await asyncio.gather(
            *(extractor.extract_blob(tmp_path, sha, PDF, 1_000_000) for sha in [*shas, broken, "f" * 64])
        )
    finally:
        await extractor.shutdown()
    assert [a.text.strip() if a else None for a in answers[:12]] == texts
    assert answers[12] is not None and answers[12].text == "" and answers[12].error
    assert answers[13] is None  # not in the store: the caller asks the exchange
    assert len(tasks) == 2 and sum(tasks) == 14  # a batch for each of the two workers, not a task a file


async def test_a_batch_whose_worker_dies_is_read_again_file_by_file(tmp_path: Path) -> None:
    """PDFium aborts its worker on a stream inflating past the memory limit: the batch it was in is
    read again one file at a time, so its neighbours keep their text and it gets its own reason."""
    import asyncio

    extractor = TextExtractor(timeout_seconds=60, memory_mb=256, languages="vie", max_chars=1000)
    bomb = _blob(tmp_path, pdf_bomb())
    neighbours = [_blob(tmp_path, make_pdf([f"Van ban ben canh {n}"])) for n in range(3)]
    try:
        answers = await asyncio.gather(
            *(extractor.extract_blob(tmp_path, sha, PDF, 10_000_000) for sha in [neighbours[0], bomb, *neighbours[1:]])
        )
    finally:
        await extractor.shutdown()
    texts = [a.text if a else "" for a in answers]
    assert all(f"Van ban ben canh {n}" in texts[i] for n, i in ((0, 0), (1, 2), (2, 3))), answers
    assert answers[1] is not None and answers[1].text == "" and answers[1].error, answers[1]
    assert "decompressing" in answers[1].error


async def test_a_batch_that_overruns_is_read_again_each_file_with_its_own_limit(tmp_path: Path) -> None:
    import asyncio

    extractor = TextExtractor(timeout_seconds=0, memory_mb=512, languages="vie", max_chars=1000)
    shas = [_blob(tmp_path, make_pdf([f"Van ban {n}"])) for n in range(3)]
    try:
        answers = await asyncio.gather(*(extractor.extract_blob(tmp_path, sha, PDF, 1_000_000) for sha in shas))
    finally:
        await extractor.shutdown()
    assert all(a is not None and a.text == "" and a.error and "longer than" in a.error for a in answers), answers


def test_a_batch_answers_each_file_as_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the worker: a file slower than the time limit gets the overrun's error (alone it would have
    been stopped), a parser's own failure is that file's reason, its neighbours keep their text."""
    import time

    from services.archive import extraction

    def fake(root: str, sha256: str, content_type: str, *_args: object) -> dict[str, str]:
        if sha256 == "slow":
            time.sleep(0.2)
        return extraction.run(b"not a zip", DOCX, "vie", 100) if sha256 == "broken" else {"text": sha256}

    monkeypatch.setattr(extraction, "run_blob", fake)
    requests = [("r", name, PDF, 100) for name in ("first", "slow", "broken", "last")]
    answers = extraction.run_blobs(requests, "vie", 100, timeout_seconds=0.1)
    assert answers[0] == {"text": "first"} and answers[3] == {"text": "last"}
    assert answers[1] == {"error": "extraction took longer than 0.1 s"}
    assert "error" in answers[2]


def test_a_parser_failing_on_its_own_gives_the_file_a_reason() -> None:
    """A DOCX whose deflate stream is corrupt makes zlib raise, not the extraction: it is this file's
    error, not an exception that fails the enricher's batch."""
    data = docx(["Van ban"])
    entry = data.index(b"word/document.xml") + len(b"word/document.xml")
    corrupt = data[:entry] + bytes(b ^ 0x5A for b in data[entry : entry + 40]) + data[entry + 40 :]
    answer = run(corrupt, DOCX, "vie", 1000)
    assert set(answer) == {"error"} and answer["error"], answer


async def test_the_shutdown_stops_the_batches_under_way_and_starts_no_pool(tmp_path: Path) -> None:
    import asyncio

    extractor = TextExtractor(timeout_seconds=30, memory_mb=512, languages="vie", max_chars=1000)
    shas = [_blob(tmp_path, make_pdf([f"Van ban {n}"] * 50)) for n in range(20)]
    callers = [asyncio.ensure_future(extractor.extract_blob(tmp_path, sha, PDF, 1_000_000)) for sha in shas]
    await asyncio.sleep(0.05)  # the batches under way
    await asyncio.wait_for(extractor.shutdown(), 30)
    await asyncio.gather(*callers, return_exceptions=True)
    assert all(caller.done() for caller in callers)
    await asyncio.sleep(0.2)
    assert extractor._executor is None and not extractor._batches  # nothing started after
    with pytest.raises(RuntimeError, match="shut down"):
        await extractor.extract(make_pdf(["sau"]), PDF)
