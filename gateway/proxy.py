"""The reverse proxy: streams a public request to the service that owns the path, and back."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterable
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.circuit import Call
from gateway.errors import RouteNotFoundError
from gateway.headers import edge_state
from gateway.inprocess import InProcessResponse, upstream_scope
from gateway.limits import GatewayLimits, client_key, limits_of, refusal
from gateway.limits import route_class as classify
from gateway.mtls import peer_thumbprint
from gateway.routes import service_for
from gateway.runtime import GatewayRuntime
from gateway.upstream import (
    NetworkUpstream,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamURLError,
    read_answer,
    stream_answer,
)
from shared.errors import DependencyUnavailableError, UnauthorizedError
from shared.observability import current_request_id, note_client
from shared.runtime import runtime_of

log = logging.getLogger("lienthong.gateway.proxy")

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
}
_HOP_BY_HOP = frozenset(name.encode() for name in HOP_BY_HOP)
_NOT_ANSWERED = _HOP_BY_HOP | {b"x-request-id"}  # the gateway's own request id is the one answered
_NOT_FORWARDED = _NOT_ANSWERED  # and the one the service is given
DROPPED_ANSWER_HEADERS = _NOT_ANSWERED  # what an in-process service's answer leaves out too

RETRY_AFTER_SECONDS = 5  # a service unreachable or too slow: when to try again (an open circuit says its own)
BUFFERED_ANSWER_BYTES = 256 * 1024  # answers up to this size are read whole, larger ones streamed
# request bodies up to this size are read whole, larger ones streamed: a small one goes to the service
# in one write with the request's head, and a slow caller does not hold a connection to the service
BUFFERED_BODY_BYTES = 256 * 1024

_ENCODED_DELIMITERS = (b"%2f", b"%3f", b"%23", b"%5c")
_NOT_PRINTABLE = re.compile(rb"[^\x21-\x7e]")
_PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _forwardable(request: Request) -> bool:
    """Only paths that mean the same once decoded: no dot segments, no encoded delimiters
    (``%2F`` would become a new path segment), no control characters."""
    path = request.url.path
    if any(segment in (".", "..") for segment in path.split("/")):
        return False
    if _CONTROL.search(path):
        return False
    raw = bytes(request.scope.get("raw_path") or b"").lower()
    return not any(delimiter in raw for delimiter in _ENCODED_DELIMITERS)


def _target(scope: Scope) -> str:
    """The path and query as the caller sent them (the service decodes them as the gateway did),
    any byte outside printable ASCII percent-encoded."""
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
    query = scope.get("query_string") or b""
    target = bytes(raw_path + b"?" + query if query else raw_path)
    if _NOT_PRINTABLE.search(target):
        return quote(target, safe=_PRINTABLE)
    return target.decode("ascii")


PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class ProxyRoute(Route):
    """``/v1/{path:path}`` forwarded by :func:`proxy`: a plain Starlette route whose endpoint is an
    ASGI callable, not a FastAPI route. It takes no parameters FastAPI would parse or validate, and
    FastAPI's per-route work (solving the dependencies, wrapping the handler) was a fifth of the
    gateway's own CPU a proxied request (docs/performance.md, "The thirteenth session").

    It behaves as the FastAPI route did: an error it raises reaches the app's exception handlers
    (the same problem+json); a method it does not forward is a partial match, so a route of the
    same path that takes it answers first (``OPTIONS /v1/auth/token``: 405 ``Allow: POST``) and
    otherwise it answers 405 with ``Allow`` (``HEAD`` too, which Starlette adds to a ``GET``
    route); and it names itself in the scope, for the metrics' and the access log's label. It is
    added to the app's own router (:func:`install_proxy`): FastAPI rebuilds the routes of an
    included router as plain ``Route`` objects."""

    def __init__(self) -> None:
        super().__init__("/v1/{path:path}", _ProxyEndpoint(), methods=PROXY_METHODS, include_in_schema=False)
        assert self.methods is not None
        self.methods.discard("HEAD")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        if scope["method"] not in PROXY_METHODS:
            raise HTTPException(status_code=405, headers={"Allow": ", ".join(PROXY_METHODS)})
        await self.app(scope, receive, send)


class _ProxyEndpoint:
    """The endpoint as an ASGI callable (a plain function Starlette would wrap as a request handler)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        response = await proxy(request, runtime_of(request, GatewayRuntime))
        await response(scope, receive, send)


def install_proxy(app: FastAPI) -> None:
    """Add the proxy's route to the app's router, after the routes added so far (the token endpoint
    and the OpenAPI document answer their paths first)."""
    app.router.routes.append(ProxyRoute())


async def proxy(request: Request, gateway: GatewayRuntime) -> Response:
    """Forward to the owning service (it verifies the token itself): the client's rate limit of the
    route's class first, then the service's circuit, within the route class's timeout."""
    service = service_for(request.url.path) if _forwardable(request) else None
    if service is None:
        raise RouteNotFoundError(f"No API answers {request.url.path}; see /docs")
    limits = limits_of(gateway)
    route_class = classify(request.method, request.url.path)
    address = request.client.host if request.client else None
    try:
        principal = await gateway.guard.check(
            request.headers.get("authorization"), peer_thumbprint(request, gateway.settings.gateway)
        )
    except UnauthorizedError:
        if limits is not None:  # a flood of bad tokens is counted against its address
            _take(request, limits, route_class, client_key(None, address))
        raise
    if principal is not None:
        note_client(principal.client_id)
    if limits is None:
        seconds, call = gateway.settings.gateway.service_timeout_seconds, None
    else:
        _take(request, limits, route_class, client_key(principal.client_id if principal else None, address))
        seconds, call = limits.timeouts[route_class], limits.circuits[service].call()
    try:
        return await _send(request, gateway, service, seconds, call)
    except BaseException:
        if call is not None:
            call.close()
        raise


def _take(request: Request, limits: GatewayLimits, route_class: str, key: str) -> None:
    """Count the request against ``key``'s bucket of its class; its answer gets the limit headers."""
    decision = limits.take(route_class, key)
    if decision is None:
        return
    state = edge_state(request.scope)
    if state is not None:
        state.headers = decision.headers()
    if not decision.allowed:
        raise refusal(decision, route_class)


async def _send(request: Request, gateway: GatewayRuntime, service: str, seconds: float, call: Call | None) -> Response:
    headers, length, chunked = _forwarded_headers(request)
    if (app := gateway.embedded.get(service)) is not None:  # embedded mode: the service is in this process
        scope = upstream_scope(request, service, headers)
        return InProcessResponse(
            app, scope, DROPPED_ANSWER_HEADERS, timeout=seconds, call=call, timed_out=_timed_out(service)
        )
    body: bytes | AsyncIterable[bytes] | None = None
    if chunked or (length is not None and length > BUFFERED_BODY_BYTES):
        body = request.stream()  # a large upload is streamed, never held whole in memory
    elif length:
        body = await request.body()
    target = _target(request.scope)
    upstream = gateway.upstreams.get(service)
    text_headers = _as_text(headers) if upstream is not None else None
    if upstream is not None and text_headers is not None:
        return await _forward(upstream, service, request.method, target, text_headers, body, seconds, call)
    client = gateway.clients[service]
    return await _forward_httpx(client, service, request.method, target, headers, body, seconds, call)


def _timed_out(service: str) -> DependencyUnavailableError:
    return DependencyUnavailableError(
        f"The {service} service did not answer in time; retry later", retry_after=RETRY_AFTER_SECONDS
    )


def _unavailable(service: str, what: str) -> DependencyUnavailableError:
    return DependencyUnavailableError(f"The {service} service {what}; retry later", retry_after=RETRY_AFTER_SECONDS)


def _forwarded_headers(request: Request) -> tuple[list[tuple[bytes, bytes]], int | None, bool]:
    """The headers to forward (hop-by-hop ones left out, ``X-Forwarded-For`` added), the body's
    ``Content-Length`` and whether it comes chunked."""
    # forwarded as the bytes received: header values may hold any latin-1 byte, not only ASCII
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    chunked = False
    for name, value in request.headers.raw:
        name = name.lower()
        if name in _NOT_FORWARDED:
            chunked = chunked or name == b"transfer-encoding"
            continue
        if name == b"content-length" and value.isdigit():
            length = int(value)
        headers.append((name, value))
    if request.client:
        headers.append((b"x-forwarded-for", request.client.host.encode("latin-1")))
    if request_id := current_request_id():  # the gateway's id (the caller's when it was plain): one per request
        headers.append((b"x-request-id", request_id.encode("latin-1")))
    return headers, length, chunked


def _as_text(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]] | None:
    """The headers as text aiohttp writes back as the same bytes (UTF-8); None if a value is not UTF-8."""
    try:
        return [(name.decode("latin-1"), value.decode()) for name, value in headers]
    except UnicodeDecodeError:
        return None


def _answer_headers(raw: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in raw if name.lower() not in _NOT_ANSWERED]


def _buffered(length: bytes | None) -> bool:
    """Whether an answer of this ``Content-Length`` is read whole and sent as one: a streaming
    response costs a task group and a disconnect listener per request, the most of the proxy's
    own time for a small answer."""
    return length is not None and length.isdigit() and int(length) <= BUFFERED_ANSWER_BYTES


async def _forward(
    upstream: NetworkUpstream,
    service: str,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes | AsyncIterable[bytes] | None,
    seconds: float,
    call: Call | None,
) -> Response:
    """Forward through the pooled aiohttp session of a service reached over the network."""
    try:
        answer = await upstream.send(method, target, headers, body, seconds=seconds)
    except UpstreamURLError as exc:
        raise RouteNotFoundError(f"No API answers {target!r}") from exc
    except UpstreamTimeoutError as exc:
        _failed(call, service, "timeout")
        raise _timed_out(service) from exc
    except UpstreamError as exc:
        _failed(call, service, "unreachable")
        raise _unavailable(service, f"is unavailable ({exc})") from exc
    headers_raw = _answer_headers(answer.raw_headers)
    if _buffered(next((v for k, v in answer.raw_headers if k.lower() == b"content-length"), None)):
        try:
            content = await read_answer(answer)
        except UpstreamError as exc:
            _failed(call, service, "broken")
            raise _unavailable(service, f"broke off its answer ({exc})") from exc
        except UpstreamTimeoutError as exc:
            _failed(call, service, "timeout")
            raise _timed_out(service) from exc
        response = Response(content, status_code=answer.status)
    else:

        async def release() -> None:
            answer.release()

        response = StreamingResponse(
            stream_answer(answer), status_code=answer.status, background=BackgroundTask(release)
        )
    if call is not None:
        call.succeeded()
    response.raw_headers = headers_raw  # the service's Content-Length: the body is forwarded as sent
    return response


def _failed(call: Call | None, service: str, reason: str) -> None:
    """Count a failed call to ``service`` against its circuit (and in the metrics)."""
    log.warning("proxied call to the %s service failed: %s", service, reason)
    if call is not None:
        call.failed(reason)


async def _forward_httpx(
    client: httpx.AsyncClient,
    service: str,
    method: str,
    target: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes | AsyncIterable[bytes] | None,
    seconds: float,
    call: Call | None,
) -> Response:
    """Forward through the service's httpx client (in-process services, ``https://`` URLs, header
    values that are not UTF-8)."""
    outbound = client.build_request(
        method, target, headers=headers, content=body, timeout=httpx.Timeout(seconds, connect=client.timeout.connect)
    )
    try:
        upstream = await client.send(outbound, stream=True)
    except httpx.InvalidURL as exc:
        raise RouteNotFoundError(f"No API answers {target!r}") from exc
    except httpx.TimeoutException as exc:
        _failed(call, service, "timeout")
        raise _timed_out(service) from exc
    except httpx.HTTPError as exc:
        _failed(call, service, "unreachable")
        raise _unavailable(service, f"is unavailable ({exc})") from exc
    headers_raw = _answer_headers(upstream.headers.raw)
    if _buffered(upstream.headers.get("content-length", "").encode("latin-1") or None):
        try:
            content = b"".join([chunk async for chunk in upstream.aiter_raw()])
        except httpx.HTTPError as exc:
            _failed(call, service, "broken")
            raise _unavailable(service, f"broke off its answer ({exc})") from exc
        finally:
            await upstream.aclose()
        response = Response(content, status_code=upstream.status_code)
    else:
        response = StreamingResponse(
            upstream.aiter_raw(), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
        )
    if call is not None:
        call.succeeded()
    response.raw_headers = headers_raw  # the service's Content-Length: the body is forwarded as sent
    return response
