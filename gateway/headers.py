"""What every answer of the gateway carries, and what is decided before a request reaches a route.

Security headers on every answer (docs/security.md, "Security headers"):

- ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``;
- ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`` on the API's answers (JSON:
  nothing in them may load or run anything). An answer that has a policy of its own (a download's
  ``sandbox``) keeps it as it is (``X-Frame-Options: DENY`` still denies framing). The API docs
  page (``/docs``, Swagger UI) gets a policy that lets exactly what it loads work: its script and
  stylesheet from jsDelivr, its one inline script by its SHA-256 hash (computed from the page as
  served), the OpenAPI document from this origin;
- ``Strict-Transport-Security`` when the request came over TLS (as the server saw it, or with
  ``LIENTHONG_GATEWAY__FORWARDED_PROTO_TRUSTED`` an ``X-Forwarded-Proto: https``).

Rate limits (``gateway/limits.py``): the token endpoint is counted here, per source address, before
its body is read; the proxy counts its routes once it knows the token's client and leaves the limit
headers in the request's :class:`EdgeState`, which adds them to whatever the answer is (the
service's, or an error).

An error no handler foresaw is answered here (with the app's own handler) instead of by
Starlette's outermost error middleware, so that it carries the request id and these headers too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import GatewaySection
from gateway.limits import TOKEN_PATH, GatewayLimits, client_key, refusal
from shared.errors import PROBLEM_JSON

EDGE_STATE = "lienthong.edge"
DOCS_PATHS = frozenset({"/docs"})

API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# the Swagger UI page (fastapi.openapi.docs): its bundle and stylesheet from jsDelivr, its favicon,
# the images its stylesheet inlines (data:), the OpenAPI document fetched from this origin. Its
# stylesheet and bundle set inline styles, so styles may be inline; scripts only by hash.
DOCS_CSP = (
    "default-src 'none'; script-src {script_src}; style-src https://cdn.jsdelivr.net"
    " 'unsafe-inline'; img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self';"
    " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)

_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def docs_policy(html: bytes) -> str:
    """The docs page's policy: its inline scripts allowed by their hash, nothing else inline."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    ]
    return DOCS_CSP.format(script_src=" ".join(["https://cdn.jsdelivr.net", *hashes]))


class EdgeState:
    """What a request has collected on its way in: the rate-limit headers of its answer."""

    __slots__ = ("headers",)

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []


def edge_state(scope: Scope) -> EdgeState | None:
    state = scope.get(EDGE_STATE)
    return state if isinstance(state, EdgeState) else None


class EdgeMiddleware:
    """Security headers, rate-limit headers and the token endpoint's limit (see the module's docstring)."""

    def __init__(self, app: ASGIApp, *, settings: GatewaySection, limits: GatewayLimits) -> None:
        self.app = app
        self.limits = limits
        self.hsts = f"max-age={settings.hsts_seconds}".encode() if settings.hsts_seconds else None
        self.forwarded_proto_trusted = settings.forwarded_proto_trusted

    def _over_tls(self, scope: Scope) -> bool:
        if scope.get("scheme") == "https":
            return True
        if not self.forwarded_proto_trusted:
            return False
        for name, value in scope.get("headers") or ():
            if name == b"x-forwarded-proto":
                return bytes(value).split(b",")[0].strip().lower() == b"https"
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = EdgeState()
        scope[EDGE_STATE] = state
        path: str = scope.get("path", "")
        hsts = self.hsts if self.hsts is not None and self._over_tls(scope) else None
        docs = path in DOCS_PATHS
        started = False
        held: list[Message] = []  # the docs page, held until its policy is known

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = self._headers(list(message.get("headers") or ()), state, hsts, docs)
                if docs:
                    held.append(message)
                    return
            elif docs and held:
                held.append(message)
                if message.get("more_body", False):
                    return
                await self._send_docs(held, send)
                return
            await send(message)

        if path == TOKEN_PATH:
            client = scope.get("client")
            decision = self.limits.take("token", client_key(None, client[0] if client else None))
            if decision is not None:
                state.headers = decision.headers()
                if not decision.allowed:
                    await self._refuse(scope, send_with_headers, refusal(decision, "token"))
                    return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:
                raise
            handler = _unexpected_handler(scope)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send_with_headers)
            raise  # Starlette's outermost middleware still sees it (and logs it) but sends nothing more

    def _headers(
        self, headers: list[tuple[bytes, bytes]], state: EdgeState, hsts: bytes | None, docs: bool
    ) -> list[tuple[bytes, bytes]]:
        names = {name.lower() for name, _ in headers}
        for name, value in _ALWAYS:
            if name not in names:
                headers.append((name, value))
        if not docs and b"content-security-policy" not in names:  # the docs page's follows from the page
            headers.append((b"content-security-policy", API_CSP))
        if hsts is not None:
            headers.append((b"strict-transport-security", hsts))
        headers.extend(state.headers)
        return headers

    async def _send_docs(self, held: list[Message], send: Send) -> None:
        start, *bodies = held
        html = b"".join(message.get("body", b"") for message in bodies)
        dropped = (b"content-security-policy", b"content-length")
        headers = [(k, v) for k, v in start["headers"] if k.lower() not in dropped]
        headers.append((b"content-security-policy", docs_policy(html).encode()))
        headers.append((b"content-length", str(len(html)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": html})

    async def _refuse(self, scope: Scope, send: Send, error: Any) -> None:
        body = json.dumps(error.to_problem(instance=scope.get("path")), ensure_ascii=False).encode()
        headers = [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(error.retry_after).encode()),
        ]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _unexpected_handler(scope: Scope) -> Any:
    app = scope.get("app")
    handlers = getattr(app, "exception_handlers", None) or {}
    return handlers.get(Exception) or handlers.get(500)
