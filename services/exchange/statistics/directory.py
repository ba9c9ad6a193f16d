"""The directory as the statistics need it: every agency's level, parent and status, and the
levels' names and ranks, read from the registry (its tree and levels) and kept until a directory
event (``agency.*``, ``group.updated.v1``) or ``ttl`` seconds say it may be stale."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.errors import DependencyUnavailableError
from shared.messaging import Envelope


@dataclass(frozen=True)
class AgencyNode:
    code: str
    name: str
    level: str
    status: str
    parent_code: str | None


@dataclass(frozen=True)
class Level:
    code: str
    name: str
    rank: int


@dataclass
class Directory:
    """Agencies by code (in tree order) and levels by rank."""

    agencies: dict[str, AgencyNode] = field(default_factory=dict)
    levels: list[Level] = field(default_factory=list)
    children: dict[str, list[str]] = field(default_factory=dict)

    def subtree(self, root: str) -> list[str]:
        """The agency and every agency below it."""
        codes, stack = [], [root]
        while stack:
            code = stack.pop()
            codes.append(code)
            stack.extend(reversed(self.children.get(code, [])))
        return codes

    def level_name(self, code: str) -> str | None:
        return next((level.name for level in self.levels if level.code == code), None)


def flatten(nodes: list[dict[str, Any]], levels: list[dict[str, Any]]) -> Directory:
    """Build the directory from the registry's nested tree and its levels."""
    directory = Directory(levels=sorted((Level(lv["code"], lv["name"], lv["rank"]) for lv in levels), key=_rank))
    stack: list[tuple[dict[str, Any], str | None]] = [(node, None) for node in reversed(nodes)]
    while stack:
        node, parent = stack.pop()
        code = node["code"]
        directory.agencies[code] = AgencyNode(code, node["name"], node["level"], node["status"], parent)
        if parent is not None:
            directory.children.setdefault(parent, []).append(code)
        stack.extend((child, code) for child in reversed(node.get("children", [])))
    return directory


def _rank(level: Level) -> tuple[int, str]:
    return (level.rank, level.code)


class DirectorySource:
    """Fetches the directory from the registry with the exchange's own (internal) token."""

    def __init__(self, http: Callable[[], httpx.AsyncClient], authorization: Callable[[], str], ttl: float) -> None:
        self.http = http
        self.authorization = authorization
        self.ttl = ttl
        self._cached: tuple[float, Directory] | None = None

    async def on_event(self, _envelope: Envelope) -> None:
        """Forget the directory (listen to the directory events)."""
        self._cached = None

    async def get(self) -> Directory:
        """The directory, fetched again when older than ``ttl`` or after a directory event."""
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        directory = flatten(await self._json("/v1/agencies/tree"), await self._json("/v1/agency-levels"))
        self._cached = (time.monotonic(), directory)
        return directory

    async def _json(self, path: str) -> Any:
        try:
            response = await self.http().get(path, headers={"Authorization": self.authorization()})
        except httpx.HTTPError as exc:
            raise DependencyUnavailableError(f"The registry does not answer ({exc}); retry later") from exc
        if response.status_code != 200:
            raise DependencyUnavailableError(f"The registry answered {response.status_code} to {path}; retry later")
        return response.json()


DirectoryGetter = Callable[[], Awaitable[Directory]]
