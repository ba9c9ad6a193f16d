"""Bulk import and export of a whole agency tree (CSV or JSON).

An import validates every row — schema, levels, parents (in the file or the registry), unique codes,
no cycles — before it writes anything; then it creates what is new and updates what changed, in
parent-before-child order, through the same rules (history, events) as the API. Re-importing the
same file changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from services.registry.agency.schemas import AgencyCreate
from services.registry.agency.service import AgencyService
from services.registry.errors import ImportInvalidError
from services.registry.models import Agency
from services.registry.transfer.repository import TransferRepository
from services.registry.transfer.schemas import (
    FIELDS,
    ImportProblem,
    ImportReport,
    TransferFormat,
    UpdatedAgency,
    problems_payload,
)

Progress = Callable[[int, int], None]
Numbered = list[tuple[int, AgencyCreate]]  # the rows that passed the schema, with their row number

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# -- the file formats -----------------------------------------------------------------------------


def parse_rows(raw: bytes, fmt: TransferFormat) -> list[dict[str, Any]]:
    """Read rows from CSV (header line; lines starting with # are comments) or JSON."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportInvalidError("The file is not UTF-8 text", errors=[]) from exc
    return _json_rows(text) if fmt == "json" else _csv_rows(text)


def _json_rows(text: str) -> list[dict[str, Any]]:
    """Read the rows of a JSON import: a list of agencies or ``{"agencies": [...]}``."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:  # not JSON, absurd numbers, absurd nesting
        raise ImportInvalidError(f"The file is not JSON an import can read: {exc}", errors=[]) from exc
    rows = body.get("agencies") if isinstance(body, dict) else body
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ImportInvalidError('JSON must be a list of agencies or {"agencies": [...]}', errors=[])
    return rows


def _csv_rows(text: str) -> list[dict[str, Any]]:
    """Read the rows of a CSV import, by the names of its header line."""
    # csv reads quoted cells across lines; rows whose first cell starts with # are comments
    try:
        records = [r for r in csv.reader(io.StringIO(text, newline="")) if r and not r[0].lstrip().startswith("#")]
    except csv.Error as exc:
        raise ImportInvalidError(f"The file is not CSV an import can read: {exc}", errors=[]) from exc
    header = [h.strip() for h in records[0]] if records else []
    missing = {"code", "name", "level"} - set(header)
    if missing:
        raise ImportInvalidError(
            f"The CSV header lacks the columns {sorted(missing)}; expected {list(FIELDS)}", errors=[]
        )
    return [dict(zip(header, (_restore(cell) for cell in record), strict=False)) for record in records[1:]]


def render_export(rows: list[dict[str, Any]], fmt: TransferFormat) -> str:
    """Write exported rows as JSON (``{"agencies": [...]}``) or CSV (the import columns, then status)."""
    if fmt == "json":
        return json.dumps({"agencies": rows}, ensure_ascii=False, indent=2)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*FIELDS, "status", "successor_code"])
    writer.writeheader()
    writer.writerows({k: _defuse(v) for k, v in row.items()} for row in rows)
    return out.getvalue()


def _defuse(value: Any) -> Any:
    """Keep a spreadsheet from running a cell as a formula (OWASP CSV injection): prefix with '."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def _restore(value: str) -> str:
    """Undo :func:`_defuse` on import, so that an export re-imports unchanged."""
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_START) else value


# -- validating an import -------------------------------------------------------------------------


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """Keep the known columns, stripped; empty CSV cells mean "not given"."""
    stripped = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k in FIELDS}
    return {k: v for k, v in stripped.items() if v not in ("", None)}


def _problem(number: int, code: str | None, field: str | None, message: str) -> ImportProblem:
    """Return what is wrong with one row."""
    return ImportProblem(row=number, code=code, field=field, message=message)


def _parse(rows: list[dict[str, Any]]) -> tuple[Numbered, list[ImportProblem]]:
    """Check each row against the schema of an agency; return those that pass and the problems."""
    parsed: Numbered = []
    problems: list[ImportProblem] = []
    for number, row in enumerate(rows, start=1):
        try:
            parsed.append((number, AgencyCreate.model_validate(_clean(row))))
        except ValidationError as exc:
            code = str(row.get("code") or "") or None
            for error in exc.errors():
                problems.append(_problem(number, code, ".".join(str(p) for p in error["loc"]) or None, error["msg"]))
    return parsed, problems


def _by_code(parsed: Numbered) -> tuple[dict[str, AgencyCreate], list[ImportProblem]]:
    """Return the file's agencies by code (the last row of a code wins) and the repeated codes."""
    in_file: dict[str, AgencyCreate] = {}
    problems: list[ImportProblem] = []
    for number, item in parsed:
        if item.code in in_file:
            problems.append(_problem(number, item.code, "code", "appears twice in the file"))
        in_file[item.code] = item
    return in_file, problems


def _name_parents_by_qcvn_code(parsed: Numbered, *, existing: dict[str, Agency]) -> None:
    """Replace a parent named by its Decision 20/2020 code with its QCVN 102 code."""
    aliases = {a.new_code: a.code for a in existing.values() if a.new_code}
    aliases.update({item.new_code: item.code for _, item in parsed if item.new_code})
    for _, item in parsed:
        if item.parent_code in aliases:
            item.parent_code = aliases[item.parent_code]


def _reference_problems(
    parsed: Numbered, *, in_file: dict[str, AgencyCreate], existing: dict[str, Agency], levels: set[str]
) -> list[ImportProblem]:
    """Return the rows naming an unknown level or parent or a taken new code, then those in a cycle."""
    problems: list[ImportProblem] = []
    new_codes: dict[str, str] = {a.new_code: a.code for a in existing.values() if a.new_code}
    by_id = {a.id: a.code for a in existing.values()}
    parent_of = {a.code: by_id.get(a.parent_id) if a.parent_id else None for a in existing.values()}
    for number, item in parsed:
        if item.level not in levels:
            problems.append(_problem(number, item.code, "level", f"unknown level; known: {sorted(levels)}"))
        if item.parent_code and item.parent_code not in in_file and item.parent_code not in existing:
            problems.append(_problem(number, item.code, "parent_code", "no such agency in the file or the registry"))
        if item.new_code:
            owner = new_codes.get(item.new_code)
            if owner is not None and owner != item.code:
                problems.append(_problem(number, item.code, "new_code", f"belongs to {owner}"))
            new_codes[item.new_code] = item.code
        parent_of[item.code] = item.parent_code
    row_of = {item.code: number for number, item in parsed}
    return problems + _cycle_problems(in_file, parent_of=parent_of, row_of=row_of)


def _cycle_problems(
    in_file: dict[str, AgencyCreate], *, parent_of: dict[str, str | None], row_of: dict[str, int]
) -> list[ImportProblem]:
    """Return a problem for each agency of the file whose chain of parents comes back to itself."""
    problems: list[ImportProblem] = []
    acyclic: set[str] = set()  # codes whose chain of parents is known to end: linear overall
    for code in in_file:
        path: list[str] = []
        on_path: set[str] = set()
        current: str | None = code
        while current is not None and current not in acyclic:
            if current in on_path:
                problems.append(_problem(row_of[code], code, "parent_code", "the hierarchy has a cycle"))
                break
            path.append(current)
            on_path.add(current)
            current = parent_of.get(current)
        else:
            acyclic.update(path)
    return problems


def _parents_first(in_file: dict[str, AgencyCreate]) -> list[AgencyCreate]:
    """Order rows so that a parent in the file comes before its children (any depth, no recursion)."""
    ordered: list[AgencyCreate] = []
    placed: set[str] = set()
    for item in in_file.values():
        chain: list[AgencyCreate] = []
        current: AgencyCreate | None = item
        while current is not None and current.code not in placed:
            chain.append(current)
            placed.add(current.code)  # the cycle check ran before: chains end
            current = in_file.get(current.parent_code or "")
        ordered.extend(reversed(chain))
    return ordered


def _differences(current: Agency, item: AgencyCreate, *, codes_by_id: dict[uuid.UUID, str]) -> list[str]:
    """Return the fields (``parent_code`` among them) a row would change in an existing agency."""
    values = item.model_dump(mode="json", exclude={"code", "parent_code"})
    changed = [field for field, value in values.items() if getattr(current, field) != value]
    current_parent = codes_by_id.get(current.parent_id) if current.parent_id else None
    if current_parent != item.parent_code:
        changed.append("parent_code")
    return sorted(changed)


# -- exporting ------------------------------------------------------------------------------------


def _depths(agencies: Sequence[Agency]) -> dict[str, int]:
    """Return each agency's depth in the tree, computed without recursion (it may be thousands deep)."""
    by_id = {a.id: a for a in agencies}
    depth: dict[str, int] = {}
    for agency in agencies:
        chain: list[Agency] = []
        current: Agency | None = agency
        while current is not None and current.code not in depth and len(chain) <= len(by_id):
            chain.append(current)
            current = by_id.get(current.parent_id) if current.parent_id else None
        base = depth.get(current.code, -1) if current is not None else -1
        for node in reversed(chain):
            base += 1
            depth[node.code] = base
    return depth


def _export_row(agency: Agency, *, codes_by_id: dict[uuid.UUID, str]) -> dict[str, Any]:
    """Return an agency in the import columns, plus its status and successor ("" when not given)."""
    return {
        "code": agency.code,
        "new_code": agency.new_code or "",
        "name": agency.name,
        "short_name": agency.short_name or "",
        "level": agency.level,
        "parent_code": codes_by_id.get(agency.parent_id, "") if agency.parent_id else "",
        "email": agency.email or "",
        "phone": agency.phone or "",
        "address": agency.address or "",
        "website": agency.website or "",
        "status": agency.status,
        "successor_code": codes_by_id.get(agency.successor_id, "") if agency.successor_id else "",
    }


DEFAULT_BATCH_SIZE = 200


class TransferService:
    def __init__(
        self, transfer: TransferRepository, agencies: AgencyService, *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        self.transfer = transfer
        self.agencies = agencies
        self.batch_size = batch_size

    async def import_file(self, raw: bytes, fmt: TransferFormat, *, dry_run: bool = False) -> ImportReport:
        """Read an import file (CSV or JSON) and import its rows."""
        return await self.import_rows(parse_rows(raw, fmt), dry_run=dry_run)

    async def import_rows(
        self, rows: list[dict[str, Any]], *, dry_run: bool = False, progress: Progress | None = None
    ) -> ImportReport:
        """Validate every row, then (unless ``dry_run``) create and update; report what changed."""
        existing = {a.code: a for a in await self.transfer.directory()}
        in_file = await self._validated(rows, existing=existing)
        return await self._write(in_file, existing=existing, dry_run=dry_run, progress=progress)

    async def _validated(self, rows: list[dict[str, Any]], *, existing: dict[str, Agency]) -> dict[str, AgencyCreate]:
        """Return the file's agencies by code, parents by QCVN 102 code; 422 listing every problem otherwise."""
        parsed, problems = _parse(rows)
        in_file, repeated = _by_code(parsed)
        _name_parents_by_qcvn_code(parsed, existing=existing)
        levels = await self.transfer.level_codes()
        problems += repeated + _reference_problems(parsed, in_file=in_file, existing=existing, levels=levels)
        if problems:
            raise ImportInvalidError(
                f"{len(problems)} problem(s) in the file; nothing was written", errors=problems_payload(problems)
            )
        return in_file

    async def _write(
        self,
        in_file: dict[str, AgencyCreate],
        *,
        existing: dict[str, Agency],
        dry_run: bool,
        progress: Progress | None,
    ) -> ImportReport:
        """Create the new agencies and update the changed ones, parents first (on a dry run: report only).

        Written in batches of ``batch_size`` agencies, each committed: a long import never holds the
        database's writer (SQLite has one) for longer than a batch, so other writes go on meanwhile.
        Parents come first, so every committed batch is a consistent tree; an import that stops
        midway is completed by importing the same file again (nothing is created twice)."""
        report = ImportReport(dry_run=dry_run, total=len(in_file), created=[], updated=[], unchanged=0)
        codes_by_id = {a.id: a.code for a in existing.values()}
        for done, item in enumerate(_parents_first(in_file), start=1):
            current = existing.get(item.code)
            if current is None:
                report.created.append(item.code)
                if not dry_run:
                    await self.agencies.create(item)
            else:
                changed = _differences(current, item, codes_by_id=codes_by_id)
                if changed and not dry_run:
                    values = item.model_dump(mode="json", exclude={"code"})
                    _read, changed = await self.agencies.apply(current, values, action="imported")
                if changed:
                    report.updated.append(UpdatedAgency(code=item.code, changed=changed))
                else:
                    report.unchanged += 1
            if not dry_run and done % self.batch_size == 0:
                await self.transfer.commit()
            if progress is not None:
                progress(done, len(in_file))
        return report

    async def export_rows(self) -> list[dict[str, Any]]:
        """Return every agency, parents before children, with its status and successor."""
        agencies = await self.transfer.directory()
        depth = _depths(agencies)
        codes_by_id = {a.id: a.code for a in agencies}
        return [
            _export_row(a, codes_by_id=codes_by_id) for a in sorted(agencies, key=lambda a: (depth[a.code], a.code))
        ]

    async def export_file(self, fmt: TransferFormat) -> str:
        """Return every agency in the import format (CSV or JSON), parents before children."""
        return render_export(await self.export_rows(), fmt)
