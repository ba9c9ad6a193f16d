"""The console's calls to the API: through the gateway's own routes (in this process, over an
ASGI transport), with a token the gateway issues for the signed-in user as it issues a client's
(``sub`` ``user:<name>``, the user's agency, the scopes of the user's role). Every call therefore
meets the same credential guard, rate limits and the services' own checks as any agency system's."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import ASGIApp

from gateway.runtime import GatewayRuntime


class ConsoleApiError(Exception):
    """The API refused a console call: its status, problem code and detail (shown to the user)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class ConsoleApi:
    """One user's caller of the API, for the length of one console request."""

    def __init__(
        self,
        app: ASGIApp,
        gateway: GatewayRuntime,
        *,
        client_id: str,
        agency_code: str,
        scopes: list[str],
        address: str = "127.0.0.1",
    ):
        token = gateway.issuer.issue(client_id, agency_code, scopes)
        self.http = httpx.AsyncClient(  # the user's address: the services' logs and limits see the person's
            transport=httpx.ASGITransport(app=app, client=(address, 0)),
            base_url="http://console.internal",
            headers={"Authorization": f"Bearer {token}"},
            timeout=gateway.settings.gateway.service_timeout_seconds,
        )

    async def __aenter__(self) -> ConsoleApi:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the API; raise :class:`ConsoleApiError` for any answer of 400 or more."""
        response = await self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            code, detail = "error", response.text[:500]
            if response.headers.get("content-type", "").startswith("application/problem+json"):
                body = response.json()
                code, detail = str(body.get("code", "error")), str(body.get("detail") or body.get("title") or "")
                errors = body.get("errors")
                if isinstance(errors, list) and errors:
                    detail += ": " + "; ".join(
                        f"{'.'.join(str(p) for p in e.get('loc', [])[1:])} {e.get('msg', '')}".strip()
                        for e in errors[:5]
                        if isinstance(e, dict)
                    )
            raise ConsoleApiError(response.status_code, code, detail)
        return response

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API and return its JSON answer."""
        response = await self.call(method, path, **kwargs)
        return response.json() if response.content else None

    async def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with the query ``params`` (None values left out)."""
        return await self.json("GET", path, params={k: v for k, v in params.items() if v not in (None, "")})
