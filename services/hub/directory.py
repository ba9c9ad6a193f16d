"""The national directory, synced into the registry through its admin API (idempotent).

Each agency of the hub's directory outside the province (its level-1 group is not the
province's) is created in the registry at the level ``national`` under its parent, with the
delivery endpoint ``hub``; a name or parent changed upstream is changed (kept in the agency's
history); an agency deleted upstream is retired with its parent as successor (documents addressed
to it go there), or suspended when it has no active parent: never removed. Run again, it changes
nothing. The registry stays the one writer of its tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.hub.client import DirectoryEntry, HubClient
from shared.auth import Scope
from shared.types import valid_code

log = logging.getLogger("lienthong.hub.directory")

LEVEL = {"code": "national", "name": "Cơ quan ngoài tỉnh (trục liên thông quốc gia)", "rank": 0}


class DirectorySyncError(Exception):
    """The registry refused or did not answer a change of the sync."""


@dataclass
class DirectoryReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)


def group_of(code: str) -> str:
    """The level-1 group of a code of either form (``000.00.00.G22`` → ``G22``, ``H52.101`` → ``H52``)."""
    parts = code.strip().upper().split(".")
    return parts[0] if parts[0][:1].isalpha() else parts[-1]


def _qcvn_code(entry: DirectoryEntry) -> str | None:
    for candidate in (entry.code102, entry.code):
        if candidate:
            try:
                return valid_code(candidate)
            except ValueError:
                continue
    return None


@dataclass
class DirectorySync:
    hub: HubClient
    registry: httpx.AsyncClient
    authorization: Callable[[str | None, list[str]], str]
    province_group: str = "H10"

    async def run(self) -> DirectoryReport:
        """Bring the registry in line with the hub's directory; return what changed."""
        report = DirectoryReport()
        entries = await self.hub.directory()
        await self._ensure_level()
        by_code = {code: e for e in entries if (code := _qcvn_code(e)) is not None}
        for entry in entries:
            if _qcvn_code(entry) is None:
                report.skipped.append(f"{entry.code}: no QCVN 102 code")
        outside = {c: e for c, e in by_code.items() if group_of(c) != self.province_group.upper()}
        for code in sorted(outside, key=lambda c: _depth(c, by_code)):
            await self._apply(code, outside[code], by_code, report)
        log.info(
            "national directory: %d created, %d updated, %d retired, %d unchanged, %d skipped",
            len(report.created),
            len(report.updated),
            len(report.retired),
            report.unchanged,
            len(report.skipped),
        )
        return report

    async def _apply(
        self, code: str, entry: DirectoryEntry, by_code: dict[str, DirectoryEntry], report: DirectoryReport
    ) -> None:
        parent = _parent_code(entry, by_code)
        current = await self._call("GET", f"/v1/agencies/{code}", expect=(200, 404))
        if current.status_code == 404:
            if entry.deleted:
                report.unchanged += 1
                return
            body: dict[str, Any] = {"code": code, "name": entry.name[:200], "level": LEVEL["code"]}
            if parent and await self._exists(parent):
                body["parent_code"] = parent
            await self._call("POST", "/v1/agencies", json=body, expect=(201,))
            await self._call("PUT", f"/v1/agencies/{code}/endpoint", json={"mode": "hub"}, expect=(200,))
            report.created.append(code)
            return
        agency = current.json()
        if entry.deleted:
            if agency.get("status") == "retired":
                report.unchanged += 1
                return
            await self._retire(code, agency.get("parent_code"))
            report.retired.append(code)
            return
        changes: dict[str, Any] = {}
        if agency.get("name") != entry.name[:200]:
            changes["name"] = entry.name[:200]
        if parent != agency.get("parent_code") and (parent is None or await self._exists(parent)):
            changes["parent_code"] = parent
        if changes:
            await self._call("PATCH", f"/v1/agencies/{code}", json=changes, expect=(200,))
            report.updated.append(code)
        else:
            report.unchanged += 1

    async def _retire(self, code: str, parent: str | None) -> None:
        reason = "deleted from the national directory"
        if parent:
            answer = await self._call(
                "POST",
                f"/v1/agencies/{code}/status",
                json={"status": "retired", "reason": reason, "successor_code": parent},
                expect=(200, 422),
            )
            if answer.status_code == 200:
                return
        await self._call(
            "POST", f"/v1/agencies/{code}/status", json={"status": "suspended", "reason": reason}, expect=(200,)
        )

    async def _ensure_level(self) -> None:
        levels = (await self._call("GET", "/v1/agency-levels", expect=(200,))).json()
        if not any(level.get("code") == LEVEL["code"] for level in levels):
            await self._call("POST", "/v1/agency-levels", json=LEVEL, expect=(201, 409))

    async def _exists(self, code: str) -> bool:
        return (await self._call("GET", f"/v1/agencies/{code}", expect=(200, 404))).status_code == 200

    async def _call(self, method: str, path: str, *, expect: tuple[int, ...], **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": self.authorization(None, [Scope.REGISTRY_ADMIN])}
        try:
            response = await self.registry.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise DirectorySyncError(f"the registry did not answer {method} {path}: {exc}") from exc
        if response.status_code not in expect:
            raise DirectorySyncError(
                f"the registry answered {response.status_code} to {method} {path}: {response.text[:300]}"
            )
        return response


def _parent_code(entry: DirectoryEntry, by_code: dict[str, DirectoryEntry]) -> str | None:
    if not entry.parent:
        return None
    try:
        return valid_code(entry.parent)
    except ValueError:
        parent = next((c for c, e in by_code.items() if e.code == entry.parent), None)
        return parent


def _depth(code: str, by_code: dict[str, DirectoryEntry]) -> int:
    depth, seen = 0, {code}
    entry = by_code.get(code)
    while entry is not None and (parent := _parent_code(entry, by_code)) and parent not in seen:
        seen.add(parent)
        depth += 1
        entry = by_code.get(parent)
    return depth
