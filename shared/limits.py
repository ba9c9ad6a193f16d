"""Request size limits of every app (each service's and the gateway's): a pure ASGI middleware.

- The request line and headers together are limited (``LIENTHONG_LIMITS__HEADER_MAX_BYTES``):
  431 ``headers_too_large``. (The server bounds them first, while it reads them: services/cli.py.)
- The body is limited per route class (:func:`body_limit_rules`; a GET, HEAD or OPTIONS carries
  none, the token endpoint's form at most 16 KiB): a ``Content-Length`` above the
  route's limit is answered 413 ``request_too_large`` at once, before anything of the body is
  read; a body without one (chunked) is cut off when it passes the limit, the app sees the read
  fail (nothing is stored: the upload stops there), and the caller gets the same 413 whatever the
  app was about to answer.

The routes' own, finer limits (one attachment's size, an import file's size) still apply below these.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import PROBLEM_JSON, HeadersTooLargeError, LienThongError, RequestTooLargeError

log = logging.getLogger("lienthong.limits")

MIB = 1024 * 1024


TOKEN_BODY_MAX_BYTES = 16 * 1024  # a client id, a secret and scopes, form-encoded
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class BodyLimit:
    """Requests whose path is ``path`` (or starts with it, with ``prefix``; any path when ``path`` is
    empty), with one of ``methods`` (any when None), may send ``max_bytes``."""

    path: str
    max_bytes: int
    prefix: bool = False
    name: str = ""
    methods: frozenset[str] | None = None

    def matches(self, path: str, method: str = "POST") -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if not self.path:
            return True
        return path.startswith(self.path) if self.prefix else path == self.path


def body_limit_rules(settings: Any) -> list[BodyLimit]:
    """The route classes of the whole API and their total request size (documented in
    docs/security.md): uploads get what their files may add up to plus a margin for metadata and
    multipart framing; every other route is a JSON or form route (``json_body_max_bytes``)."""
    limits = settings.limits
    margin = limits.upload_margin_bytes
    # a GET carries no body: nothing is read or forwarded for one
    rules: list[BodyLimit] = [BodyLimit("", 0, name="no body", methods=BODILESS_METHODS)]
    if getattr(settings, "gateway", None) is not None:
        rules.append(BodyLimit("/v1/auth/token", TOKEN_BODY_MAX_BYTES, name="token request"))
    exchange = getattr(settings, "exchange", None)
    if exchange is not None:
        upload = exchange.max_attachments * exchange.max_attachment_bytes + margin
        rules.append(BodyLimit("/v1/documents", upload, name="document upload", methods=frozenset({"POST"})))
    registry = getattr(settings, "registry", None)
    if registry is not None:
        rules.append(BodyLimit("/v1/agencies/import", registry.max_import_bytes + margin, name="registry import"))
    signature = getattr(settings, "signature", None)
    if signature is not None:
        upload = 2 * signature.max_upload_bytes + margin  # a file and its detached signature
        rules.append(BodyLimit("/v1/signatures/", upload, prefix=True, name="signature verification"))
        rules.append(BodyLimit("/internal/v1/signatures/", upload, prefix=True, name="signature verification"))
    return rules


class _BodyCutOff(RequestTooLargeError):
    """Raised into the app from ``receive`` when the body passes its limit."""


class RequestLimitMiddleware:
    """Refuse requests whose headers or body are larger than allowed (see the module's docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rules: list[BodyLimit],
        default_max_bytes: int,
        header_max_bytes: int,
        on_refusal: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.rules = rules
        self.default_max_bytes = default_max_bytes
        self.header_max_bytes = header_max_bytes
        self.on_refusal = on_refusal

    def limit_for(self, path: str, method: str = "POST") -> int:
        for rule in self.rules:
            if rule.matches(path, method):
                return rule.max_bytes
        return self.default_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        header_bytes = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        header_bytes += sum(len(name) + len(value) + 4 for name, value in headers)
        if header_bytes > self.header_max_bytes:
            await self._refuse(
                scope,
                send,
                HeadersTooLargeError(
                    f"The request line and headers are limited to {self.header_max_bytes} bytes",
                    max_bytes=self.header_max_bytes,
                ),
            )
            return
        path: str = scope.get("path", "")
        limit = self.limit_for(path, scope.get("method", "GET"))
        length = _content_length(headers)
        if length is not None and length > limit:
            await self._refuse(scope, send, _too_large(limit))
            return

        received = 0
        cut_off = False
        answered = False  # our 413 was sent instead of the app's answer
        started = False

        async def limited_receive() -> Message:
            nonlocal received, cut_off
            if cut_off:
                raise _too_large(limit, cut=True)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut_off = True
                    raise _too_large(limit, cut=True)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered, started
            if answered:
                return  # the app's answer to a body it could not read whole: the 413 went instead
            if cut_off and message["type"] == "http.response.start" and not started:
                answered = True
                await self._refuse(scope, send, _too_large(limit))
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not cut_off or started or answered:
                raise
            await self._refuse(scope, send, _too_large(limit))

    async def _refuse(self, scope: Scope, send: Send, error: LienThongError) -> None:
        log.warning(
            "request refused with %d %s: %s %s", error.status, error.code, scope.get("method"), scope.get("path")
        )
        if self.on_refusal is not None:
            self.on_refusal(error.code)
        body = json.dumps(error.to_problem(instance=scope.get("path")), ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _too_large(limit: int, *, cut: bool = False) -> RequestTooLargeError:
    how = "cut off at" if cut else "larger than"
    error = _BodyCutOff if cut else RequestTooLargeError
    return error(f"The request body is {how} this route's limit of {limit} bytes", max_bytes=limit)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def install_request_limits(app: Any, settings: Any) -> None:
    """Add :class:`RequestLimitMiddleware` to a FastAPI app with the limits of ``settings``."""
    limits = settings.limits
    app.add_middleware(
        RequestLimitMiddleware,
        rules=body_limit_rules(settings),
        default_max_bytes=limits.json_body_max_bytes,
        header_max_bytes=limits.header_max_bytes,
    )
