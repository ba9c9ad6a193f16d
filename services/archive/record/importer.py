"""Bulk ingestion of digitised records: a folder of scans and a CSV manifest describing them.

``manifest.csv`` (UTF-8, a header row): ``file`` (relative to the folder), ``code_number``,
``code_notation``, ``type_name``, ``subject``, ``promulgation_date`` (YYYY-MM-DD), ``issuer_code``,
``retention_years`` (empty: permanent), ``urgency`` (optional). Each row is committed on its own,
and a record's id comes from its metadata and its scan's hash: a run interrupted and started again
skips what was done (resumable, idempotent). What failed, and why, goes to ``import-report.csv``.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from services.archive.errors import ArchiveFileInvalidError
from services.archive.extractor import TextExtractor
from services.archive.record import files
from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.schemas import DigitisedRecordCreate
from services.archive.record.service import RecordService, digitised_id
from shared.db import Database

MANIFEST = "manifest.csv"
REPORT = "import-report.csv"
COLUMNS = ("file", "code_number", "code_notation", "type_name", "subject", "promulgation_date", "issuer_code")
MAX_SCAN_BYTES = 100 * 1024 * 1024


@dataclass
class ImportReport:
    total: int = 0
    created: int = 0
    existing: int = 0
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (row, file, reason)


def read_manifest(directory: Path) -> list[dict[str, str]]:
    """The manifest's rows; ValueError when it is missing or lacks a column."""
    path = directory / MANIFEST
    if not path.is_file():
        raise ValueError(f"{path} not found: the folder needs a {MANIFEST} (docs/archive.md)")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{MANIFEST} lacks the column(s) {', '.join(missing)}")
    return rows


def _metadata(row: dict[str, str]) -> DigitisedRecordCreate:
    values: dict[str, object] = {k: (row.get(k) or "").strip() for k in COLUMNS if k != "file"}
    if (row.get("retention_years") or "").strip():
        values["retention_years"] = row["retention_years"].strip()
    if (row.get("urgency") or "").strip():
        values["urgency"] = row["urgency"].strip()
    return DigitisedRecordCreate.model_validate(values)


def _scan(directory: Path, name: str) -> bytes:
    path = (directory / name).resolve()
    if directory.resolve() not in path.parents:
        raise ValueError(f"{name!r} is outside the folder")
    if not path.is_file():
        raise ValueError(f"{name!r} not found")
    if path.stat().st_size > MAX_SCAN_BYTES:
        raise ValueError(f"{name!r} is larger than {MAX_SCAN_BYTES} bytes")
    return path.read_bytes()


async def import_folder(
    database: Database,
    directory: Path,
    files_dir: Path,
    *,
    ingested_by: str | None,
    progress: Callable[[int, int], None] | None = None,
    extractor: TextExtractor | None = None,
) -> ImportReport:
    """Ingest every row of the folder's manifest (each scan checked readable by ``extractor``);
    write the report of failures next to it."""
    rows = read_manifest(directory)
    report = ImportReport(total=len(rows))
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        name = (row.get("file") or "").strip()
        try:
            data = _metadata(row)
            body = await asyncio.to_thread(_scan, directory, name)
            content_type = files.sniff(body[:16])
            if extractor is not None and (problem := await extractor.check(body, content_type)) is not None:
                raise ValueError(f"the scan cannot be read: {problem}")
            sha256 = await asyncio.to_thread(files.store, files_dir, body)
            async with database.session() as session:
                _, created = await RecordService(ArchiveRecordRepository(session)).ingest_digitised(
                    document_id=digitised_id(data, sha256),
                    data=data,
                    ingested_by=ingested_by or data.issuer_code,
                    file_name=Path(name).name[:255],
                    file_sha256=sha256,
                    content_type=content_type,
                )
            if created:
                report.created += 1
            else:
                report.existing += 1
        except ValidationError as exc:
            reason = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            report.failed.append((number, name, reason))
        except (ValueError, OSError, ArchiveFileInvalidError) as exc:
            report.failed.append((number, name, str(getattr(exc, "detail", None) or exc)))
        if progress is not None:
            progress(number - 1, len(rows))
    write_report(directory / REPORT, report)
    return report


def write_report(path: Path, report: ImportReport) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "file", "reason"])
    writer.writerows(report.failed)
    path.write_text(out.getvalue(), encoding="utf-8")
