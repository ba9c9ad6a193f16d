"""The exchange's typed client to the registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from shared.errors import DependencyUnavailableError


@dataclass(frozen=True)
class AgencyInfo:
    code: str
    name: str
    status: str


class RegistryClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def lookup(self, codes: list[str], token: str) -> tuple[dict[str, AgencyInfo], list[str]]:
        """Return the agencies found among ``codes`` (by code) and the codes that name none."""
        try:
            response = await self.http.post(
                "/v1/agencies/lookup", json={"codes": codes}, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            raise DependencyUnavailableError(f"The registry does not answer ({exc}); retry later") from exc
        if response.status_code != 200:
            raise DependencyUnavailableError(
                f"The registry answered {response.status_code} to an agency lookup; retry later"
            )
        body: dict[str, Any] = response.json()
        found = {a["code"]: AgencyInfo(code=a["code"], name=a["name"], status=a["status"]) for a in body["found"]}
        return found, list(body["missing"])
