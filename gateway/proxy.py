"""The reverse proxy: streams a public request to the service that owns the path, and back."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from gateway.errors import RouteNotFoundError
from gateway.inprocess import InProcessResponse, upstream_scope
from gateway.routes import service_for
from gateway.runtime import GatewayDep
from shared.errors import DependencyUnavailableError

router = APIRouter()

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


DROPPED_ANSWER_HEADERS = frozenset(name.encode() for name in HOP_BY_HOP | {"x-request-id"})

BUFFERED_ANSWER_BYTES = 256 * 1024  # answers up to this size are read whole, larger ones streamed

_ENCODED_DELIMITERS = (b"%2f", b"%3f", b"%23", b"%5c")


def _forwardable(request: Request) -> bool:
    """Only paths that mean the same once decoded: no dot segments, no encoded delimiters
    (``%2F`` would become a new path segment), no control characters."""
    path = request.url.path
    if any(segment in (".", "..") for segment in path.split("/")):
        return False
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        return False
    raw = bytes(request.scope.get("raw_path") or b"").lower()
    return not any(delimiter in raw for delimiter in _ENCODED_DELIMITERS)


@router.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def proxy(path: str, request: Request, gateway: GatewayDep) -> Response:
    """Forward to the owning service (it verifies the token itself)."""
    service = service_for(request.url.path) if _forwardable(request) else None
    if service is None:
        raise RouteNotFoundError(f"No API answers {request.url.path}; see /docs")
    await gateway.guard.check(request.headers.get("authorization"))
    client = gateway.clients[service]
    # forwarded as the bytes received: header values may hold any latin-1 byte, not only ASCII
    headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP]
    if request.client:
        headers.append((b"x-forwarded-for", request.client.host.encode("latin-1")))
    if (app := gateway.embedded.get(service)) is not None:  # embedded mode: the service is in this process
        return InProcessResponse(app, upstream_scope(request, service, headers), DROPPED_ANSWER_HEADERS)
    outbound = client.build_request(
        request.method,
        request.url.path,
        params=str(request.query_params),
        headers=headers,
        content=request.stream(),
    )
    try:
        upstream = await client.send(outbound, stream=True)
    except httpx.InvalidURL as exc:
        raise RouteNotFoundError(f"No API answers {request.url.path!r}") from exc
    except httpx.TimeoutException as exc:
        raise DependencyUnavailableError(f"The {service} service did not answer in time; retry later") from exc
    except httpx.HTTPError as exc:
        raise DependencyUnavailableError(f"The {service} service is unavailable ({exc}); retry later") from exc
    response_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP | {"x-request-id"}}
    length = upstream.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) <= BUFFERED_ANSWER_BYTES:
        # a small answer (JSON, a problem) is read whole and sent as one: a streaming response costs
        # a task group and a disconnect listener per request, the most of the proxy's own time
        try:
            body = await upstream.aread()
        except httpx.HTTPError as exc:
            raise DependencyUnavailableError(
                f"The {service} service broke off its answer ({exc}); retry later"
            ) from exc
        finally:
            await upstream.aclose()
        response_headers.pop("content-length", None)
        return Response(body, status_code=upstream.status_code, headers=response_headers)
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=response_headers,
        background=BackgroundTask(upstream.aclose),
    )
