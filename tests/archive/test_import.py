"""``lienthong archive import DIR``: a folder of scans and its CSV manifest, resumable, with a
report of what failed and why."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from services.archive.extractor import TextExtractor
from services.archive.record.importer import REPORT, import_folder
from services.demo.pdf import make_pdf
from shared.db import Database
from tests.archive.test_index import database  # noqa: F401 - the fixture

HEADER = "file,code_number,code_notation,type_name,subject,promulgation_date,issuer_code,retention_years\n"


async def test_a_folder_is_imported_once_and_what_failed_is_reported(
    database: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "a.pdf").write_bytes(make_pdf(["Quyet dinh so 5"]))
    (folder / "b.pdf").write_bytes(b"not a scan")
    (folder / "manifest.csv").write_text(
        HEADER
        + "a.pdf,5,QĐ-UBND,Quyết định,Quyết định về đất đai,2000-01-02,000.00.00.H41,20\n"
        + "b.pdf,6,QĐ-UBND,Quyết định,Hỏng,2000-01-02,000.00.00.H41,\n"
        + "../outside.pdf,7,QĐ-UBND,Quyết định,Ngoài,2000-01-02,000.00.00.H41,\n"
        + "a.pdf,8,QĐ-UBND,Quyết định,Ngày sai,2000-13-02,000.00.00.H41,\n",
        encoding="utf-8",
    )
    progress: list[int] = []
    (folder / "c.pdf").write_bytes(b"%PDF-1.7 broken")
    with (folder / "manifest.csv").open("a", encoding="utf-8") as manifest:
        manifest.write("c.pdf,9,QĐ-UBND,Quyết định,Hỏng bên trong,2000-01-02,000.00.00.H41,\n")
    extractor = TextExtractor(timeout_seconds=30, memory_mb=512, languages="vie", max_chars=1000)
    first = await import_folder(
        database,
        folder,
        tmp_path / "files",
        ingested_by=None,
        progress=lambda d, _t: progress.append(d),
        extractor=extractor,
    )
    assert (first.total, first.created, first.existing, progress) == (5, 1, 0, [1, 2, 3, 4, 5])
    reasons = {row: reason for row, _name, reason in first.failed}
    assert set(reasons) == {3, 4, 5, 6}
    assert "not a scan" in reasons[3] and "outside" in reasons[4] and "promulgation_date" in reasons[5]
    assert "cannot be read" in reasons[6]
    with (folder / REPORT).open(encoding="utf-8") as report:
        assert [row["row"] for row in csv.DictReader(report)] == ["3", "4", "5", "6"]

    again = await import_folder(database, folder, tmp_path / "files", ingested_by=None, extractor=extractor)
    assert (again.created, again.existing, len(again.failed)) == (0, 1, 4)  # resumed: nothing twice


def test_the_archive_commands_run_on_the_embedded_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``lienthong archive import``, ``reindex`` and ``retention`` on a var dir of their own."""
    from typer.testing import CliRunner

    from services.cli import app

    monkeypatch.setenv("LIENTHONG_VAR_DIR", str(tmp_path / "var"))
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "a.pdf").write_bytes(make_pdf(["Quyet dinh so 5"]))
    (folder / "manifest.csv").write_text(
        HEADER + "a.pdf,5,QĐ-UBND,Quyết định,Quyết định về đất đai,2000-01-02,000.00.00.H41,20\n", encoding="utf-8"
    )
    runner = CliRunner()
    imported = runner.invoke(app, ["archive", "import", str(folder)])
    assert imported.exit_code == 0, imported.output
    assert "1 imported" in imported.output
    reindexed = runner.invoke(app, ["archive", "reindex"])
    assert reindexed.exit_code == 0, reindexed.output
    assert "slot-0: 1 records indexed" in reindexed.output
    assert (tmp_path / "var" / "archive-index" / "slot-0" / "state.json").exists()
    ended = runner.invoke(app, ["archive", "retention", "--as-of", "2020-01-02"])
    assert ended.exit_code == 0 and "1 record(s) reached the end" in ended.output and "5/QĐ-UBND" in ended.output
