"""The exchange's typed client to the registry, with a cache the registry's events invalidate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from shared.cache import TTLCache
from shared.errors import DependencyUnavailableError
from shared.messaging import Envelope

# Events after which a cached answer may be wrong.
DIRECTORY_EVENTS = ("agency.created.v1", "agency.updated.v1", "agency.status_changed.v1", "group.updated.v1")


@dataclass(frozen=True)
class AgencyInfo:
    code: str
    name: str
    status: str


@dataclass(frozen=True)
class Resolution:
    recipients: list[dict[str, Any]]
    redirected: list[dict[str, str]]
    unknown_codes: list[str]
    unknown_groups: list[str]
    inactive: list[dict[str, str]]


class DirectoryCache:
    """Registry answers kept for ``ttl`` seconds, emptied by any directory event."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.agencies: TTLCache[str, AgencyInfo | None] = TTLCache(ttl)
        self.resolutions: TTLCache[tuple[tuple[str, ...], tuple[str, ...]], Resolution] = TTLCache(ttl, 1000)

    async def on_event(self, _envelope: Envelope) -> None:
        self.agencies.clear()
        self.resolutions.clear()


class RegistryClient:
    def __init__(self, http: httpx.AsyncClient, cache: DirectoryCache) -> None:
        self.http = http
        self.cache = cache

    async def _call(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        except httpx.HTTPError as exc:
            raise DependencyUnavailableError(f"The registry does not answer ({exc}); retry later") from exc

    async def agency(self, code: str, token: str) -> AgencyInfo | None:
        """Return an agency by code (None when unknown)."""
        if (cached := self.cache.agencies.get(code)) is not None:
            return cached
        response = await self._call("GET", f"/v1/agencies/{code}", token)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise DependencyUnavailableError(f"The registry answered {response.status_code}; retry later")
        body = response.json()
        info = AgencyInfo(code=body["code"], name=body["name"], status=body["status"])
        self.cache.agencies.set(code, info)
        return info

    async def resolve(self, codes: list[str], groups: list[str], token: str) -> Resolution:
        """Resolve addressees to active agencies (retired ones redirected, groups expanded)."""
        key = (tuple(sorted(codes)), tuple(sorted(groups)))
        if (cached := self.cache.resolutions.get(key)) is not None:
            return cached
        response = await self._call("POST", "/v1/agencies/resolve", token, json={"codes": codes, "groups": groups})
        if response.status_code != 200:
            raise DependencyUnavailableError(
                f"The registry answered {response.status_code} to a recipient resolution; retry later"
            )
        body = response.json()
        resolution = Resolution(
            recipients=body["recipients"],
            redirected=body["redirected"],
            unknown_codes=body["unknown_codes"],
            unknown_groups=body["unknown_groups"],
            inactive=body["inactive"],
        )
        self.cache.resolutions.set(key, resolution)
        return resolution
