"""HTTP clients between services: pooled httpx clients with timeouts and request-id propagation.

In the production topology a client talks to the service's URL; in embedded mode the same client
goes through ``httpx.ASGITransport`` to the service app mounted in the process.
"""

from __future__ import annotations

import functools
import ssl

import certifi
import httpx

from shared.config import HttpSection
from shared.observability import REQUEST_ID_HEADER, current_request_id


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for outgoing calls (certifi's CAs, as httpx's default): loading
    the CA bundle costs about 20 ms of CPU, once per process instead of once per client."""
    return ssl.create_default_context(cafile=certifi.where())


async def _propagate_request_id(request: httpx.Request) -> None:
    request_id = current_request_id()
    if request_id and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id


def service_client(
    base_url: str,
    limits: HttpSection | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float | None = None,
) -> httpx.AsyncClient:
    """Return a client for one service (``transport`` given: an in-process ASGI app)."""
    limits = limits or HttpSection()
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        verify=tls_context(),
        timeout=httpx.Timeout(timeout or limits.timeout_seconds, connect=limits.connect_timeout_seconds),
        limits=httpx.Limits(
            max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections
        ),
        event_hooks={"request": [_propagate_request_id]},
    )
