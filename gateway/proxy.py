"""The reverse proxy: streams a public request to the service that owns the path, and back."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from gateway.guard import CredentialGuard
from gateway.routes import service_for
from shared.errors import DependencyUnavailableError, NotFoundError

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


class RouteNotFoundError(NotFoundError):
    code, title = "route_not_found", "No API answers this path"


@router.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def proxy(path: str, request: Request) -> Response:
    """Forward to the owning service (it verifies the token itself)."""
    segments = request.url.path.split("/")
    service = None if "." in segments or ".." in segments else service_for(request.url.path)
    if service is None:  # dot segments (even percent-encoded) never reach a service
        raise RouteNotFoundError(f"No API answers {request.url.path}; see /docs")
    guard: CredentialGuard = request.app.state.guard
    await guard.check(request.headers.get("authorization"))
    client: httpx.AsyncClient = request.app.state.clients[service]
    # forwarded as the bytes received: header values may hold any latin-1 byte, not only ASCII
    headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP]
    if request.client:
        headers.append((b"x-forwarded-for", request.client.host.encode("latin-1")))
    outbound = client.build_request(
        request.method,
        request.url.path,
        params=str(request.query_params),
        headers=headers,
        content=request.stream(),
    )
    try:
        upstream = await client.send(outbound, stream=True)
    except httpx.TimeoutException as exc:
        raise DependencyUnavailableError(f"The {service} service did not answer in time; retry later") from exc
    except httpx.HTTPError as exc:
        raise DependencyUnavailableError(f"The {service} service is unavailable ({exc}); retry later") from exc
    response_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP | {"x-request-id"}}
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=response_headers,
        background=BackgroundTask(upstream.aclose),
    )
