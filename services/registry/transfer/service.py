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
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.agency.repository import AgencyRepository
from services.registry.agency.schemas import AgencyCreate
from services.registry.agency.service import AgencyService
from services.registry.errors import ImportInvalidError
from services.registry.models import Agency
from services.registry.transfer.schemas import (
    FIELDS,
    ImportProblem,
    ImportReport,
    TransferFormat,
    UpdatedAgency,
    problems_payload,
)

Progress = Callable[[int, int], None]


def parse_rows(raw: bytes, fmt: TransferFormat) -> list[dict[str, Any]]:
    """Read rows from CSV (header line; lines starting with # are comments) or JSON."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportInvalidError("The file is not UTF-8 text", errors=[]) from exc
    if fmt == "json":
        try:
            body = json.loads(text)
        except (ValueError, RecursionError) as exc:  # not JSON, absurd numbers, absurd nesting
            raise ImportInvalidError(f"The file is not JSON an import can read: {exc}", errors=[]) from exc
        rows = body.get("agencies") if isinstance(body, dict) else body
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ImportInvalidError('JSON must be a list of agencies or {"agencies": [...]}', errors=[])
        return rows
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


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """Empty CSV cells mean "not given"."""
    stripped = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k in FIELDS}
    return {k: v for k, v in stripped.items() if v not in ("", None)}


class TransferService:
    def __init__(self, session: AsyncSession, actor: str = "system") -> None:
        self.session = session
        self.actor = actor
        self.agencies = AgencyRepository(session)
        self.service = AgencyService(session, actor)

    async def import_rows(
        self, rows: list[dict[str, Any]], *, dry_run: bool = False, progress: Progress | None = None
    ) -> ImportReport:
        """Validate every row, then (unless ``dry_run``) create and update; report what changed."""
        problems: list[ImportProblem] = []
        parsed: list[tuple[int, AgencyCreate]] = []
        for number, row in enumerate(rows, start=1):
            try:
                parsed.append((number, AgencyCreate.model_validate(_clean(row))))
            except ValidationError as exc:
                for error in exc.errors():
                    problems.append(
                        ImportProblem(
                            row=number,
                            code=str(row.get("code") or "") or None,
                            field=".".join(str(p) for p in error["loc"]) or None,
                            message=error["msg"],
                        )
                    )
        in_file: dict[str, AgencyCreate] = {}
        for number, item in parsed:
            if item.code in in_file:
                problems.append(
                    ImportProblem(row=number, code=item.code, field="code", message="appears twice in the file")
                )
            in_file[item.code] = item
        existing = {a.code: a for a in await self.agencies.all()}
        # a parent may be named by its Decision 20/2020 code: use the QCVN 102 code from here on
        aliases = {a.new_code: a.code for a in existing.values() if a.new_code}
        aliases.update({item.new_code: item.code for _, item in parsed if item.new_code})
        for _, item in parsed:
            if item.parent_code in aliases:
                item.parent_code = aliases[item.parent_code]
        problems += await self._check_references(parsed, in_file, existing)
        if problems:
            raise ImportInvalidError(
                f"{len(problems)} problem(s) in the file; nothing was written", errors=problems_payload(problems)
            )

        report = ImportReport(dry_run=dry_run, total=len(parsed), created=[], updated=[], unchanged=0)
        for done, item in enumerate(self._parents_first(in_file), start=1):
            current = existing.get(item.code)
            if current is None:
                report.created.append(item.code)
                if not dry_run:
                    await self.service.create(item)
            else:
                changed = self._differences(current, item, existing)
                if changed and not dry_run:
                    values = item.model_dump(mode="json", exclude={"code"})
                    _read, changed = await self.service.apply(current, values, action="imported")
                if changed:
                    report.updated.append(UpdatedAgency(code=item.code, changed=changed))
                else:
                    report.unchanged += 1
            if progress is not None:
                progress(done, len(in_file))
        return report

    async def _check_references(
        self, parsed: list[tuple[int, AgencyCreate]], in_file: dict[str, AgencyCreate], existing: dict[str, Agency]
    ) -> list[ImportProblem]:
        problems: list[ImportProblem] = []
        levels = {level.code for level in await self.agencies.levels()}
        new_codes: dict[str, str] = {a.new_code: a.code for a in existing.values() if a.new_code}
        parent_of: dict[str, str | None] = {}
        by_id = {a.id: a.code for a in existing.values()}
        for agency in existing.values():
            parent_of[agency.code] = by_id.get(agency.parent_id) if agency.parent_id else None
        for number, item in parsed:
            if item.level not in levels:
                problems.append(
                    ImportProblem(
                        row=number, code=item.code, field="level", message=f"unknown level; known: {sorted(levels)}"
                    )
                )
            if item.parent_code and item.parent_code not in in_file and item.parent_code not in existing:
                problems.append(
                    ImportProblem(
                        row=number,
                        code=item.code,
                        field="parent_code",
                        message="no such agency in the file or the registry",
                    )
                )
            if item.new_code:
                owner = new_codes.get(item.new_code)
                if owner is not None and owner != item.code:
                    problems.append(
                        ImportProblem(row=number, code=item.code, field="new_code", message=f"belongs to {owner}")
                    )
                new_codes[item.new_code] = item.code
            parent_of[item.code] = item.parent_code
        row_of = {item.code: number for number, item in parsed}
        acyclic: set[str] = set()  # codes whose chain of parents is known to end: linear overall
        for code in in_file:
            path: list[str] = []
            on_path: set[str] = set()
            current: str | None = code
            while current is not None and current not in acyclic:
                if current in on_path:
                    problems.append(
                        ImportProblem(
                            row=row_of[code], code=code, field="parent_code", message="the hierarchy has a cycle"
                        )
                    )
                    break
                path.append(current)
                on_path.add(current)
                current = parent_of.get(current)
            else:
                acyclic.update(path)
        return problems

    @staticmethod
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

    @staticmethod
    def _differences(current: Agency, item: AgencyCreate, existing: dict[str, Agency]) -> list[str]:
        values = item.model_dump(mode="json", exclude={"code", "parent_code"})
        changed = [field for field, value in values.items() if getattr(current, field) != value]
        by_id = {a.id: a.code for a in existing.values()}
        current_parent = by_id.get(current.parent_id) if current.parent_id else None
        if current_parent != item.parent_code:
            changed.append("parent_code")
        return sorted(changed)

    async def export_rows(self) -> list[dict[str, Any]]:
        """Every agency, parents before children, with its status and successor."""
        agencies = list(await self.agencies.all())
        by_id = {a.id: a for a in agencies}
        items = {a.code: a for a in agencies}
        depth: dict[str, int] = {}

        def level_of(agency: Agency) -> int:
            """Depth in the tree, computed without recursion (the tree may be thousands deep)."""
            chain: list[Agency] = []
            current: Agency | None = agency
            while current is not None and current.code not in depth and len(chain) <= len(by_id):
                chain.append(current)
                current = by_id.get(current.parent_id) if current.parent_id else None
            base = depth.get(current.code, -1) if current is not None else -1
            for node in reversed(chain):
                base += 1
                depth[node.code] = base
            return depth[agency.code]

        rows = []
        for agency in sorted(items.values(), key=lambda a: (level_of(a), a.code)):
            parent = by_id.get(agency.parent_id) if agency.parent_id else None
            successor = by_id.get(agency.successor_id) if agency.successor_id else None
            rows.append(
                {
                    "code": agency.code,
                    "new_code": agency.new_code or "",
                    "name": agency.name,
                    "short_name": agency.short_name or "",
                    "level": agency.level,
                    "parent_code": parent.code if parent else "",
                    "email": agency.email or "",
                    "phone": agency.phone or "",
                    "address": agency.address or "",
                    "website": agency.website or "",
                    "status": agency.status,
                    "successor_code": successor.code if successor else "",
                }
            )
        return rows


def render_export(rows: list[dict[str, Any]], fmt: TransferFormat) -> str:
    if fmt == "json":
        return json.dumps({"agencies": rows}, ensure_ascii=False, indent=2)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*FIELDS, "status", "successor_code"])
    writer.writeheader()
    writer.writerows({k: _defuse(v) for k, v in row.items()} for row in rows)
    return out.getvalue()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _defuse(value: Any) -> Any:
    """Keep a spreadsheet from running a cell as a formula (OWASP CSV injection): prefix with '."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def _restore(value: str) -> str:
    """Undo :func:`_defuse` on import, so that an export re-imports unchanged."""
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_START) else value
