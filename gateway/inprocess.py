"""Forwarding to a service mounted in the same process (embedded mode): the request is handed to the
service's ASGI app as it came, its answer streamed back as the app sends it.

Over the network the gateway proxies through a pooled HTTP client (``gateway/proxy.py``). In one
process that client would serialise the request, hand it to an in-memory transport that parses it
back, and do the same with the answer: most of the embedded mode's time per request. Here the
service gets a scope of its own (the same headers the network path forwards, the same ``Host``) and
the gateway's ``receive`` and ``send``: no copy of the body in either direction."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from gateway.circuit import Call

log = logging.getLogger(__name__)


class InProcessResponse(Response):
    """The answer of an in-process service: the service's app is called with the gateway's
    ``receive`` and ``send``; the answer's hop-by-hop headers and request id are left out, as the
    network path leaves them out (the gateway sends its own request id)."""

    def __init__(
        self,
        app: ASGIApp,
        scope: dict[str, Any],
        dropped_headers: frozenset[bytes],
        *,
        timeout: float | None = None,
        call: Call | None = None,
        timed_out: Exception | None = None,
    ) -> None:
        # no body and no headers of its own: ``__call__`` sends what the service sends
        self.app = app
        self.upstream_scope = scope
        self.dropped_headers = dropped_headers
        self.timeout = timeout  # the service must answer within it (the caller's upload not counted)
        self.call = call  # the service's circuit, told how the call went
        self.timed_out = timed_out  # raised when the service did not answer in time
        self.background = None
        self.status_code = 0
        self.raw_headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False
        loop = asyncio.get_running_loop()
        timeout = self.timeout
        deadline: asyncio.Timeout | None = None
        uploaded = False  # the caller's whole body has been handed to the service

        async def forward(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if deadline is not None:
                    deadline.reschedule(None)
                if self.call is not None:
                    self.call.succeeded()
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in self.dropped_headers]
                message = {**message, "headers": headers}
            await send(message)

        async def watched_receive() -> Message:
            # waiting for the caller's upload is not the service's time
            nonlocal uploaded
            if uploaded or deadline is None or started:
                return await receive()
            deadline.reschedule(None)
            message = await receive()
            uploaded = message["type"] != "http.request" or not message.get("more_body", False)
            if not started and timeout is not None:
                deadline.reschedule(loop.time() + timeout)
            return message

        try:
            async with asyncio.timeout(timeout) as deadline:
                await self.app(self.upstream_scope, watched_receive, forward)
        except TimeoutError:
            if started or self.timed_out is None or deadline is None or not deadline.expired():
                raise
            if self.call is not None:
                self.call.failed("timeout")
            log.warning("the in-process %s service did not answer in time", self.upstream_scope["server"][0])
            raise self.timed_out from None
        except Exception:
            if not started:
                raise
            # the service answered (its own 500) and then raised, as an app's error handler does:
            # the client has its answer; the error is the service's, logged here once
            log.exception("the in-process service failed after it answered %s", self.upstream_scope["path"])
        finally:
            if self.call is not None:
                self.call.close()


def upstream_scope(request: Request, service: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The scope a service mounted in-process sees: what a request over the network would carry
    (path, query, the forwarded headers, ``Host`` the service's name), nothing of the gateway's
    routing state."""
    outer = request.scope
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": outer.get("asgi", {}).get("spec_version", "2.3")},
        "http_version": outer.get("http_version", "1.1"),
        "method": outer["method"],
        "scheme": "http",
        "path": outer["path"],
        "raw_path": outer.get("raw_path") or outer["path"].encode(),
        "root_path": "",
        "query_string": outer.get("query_string", b""),
        "headers": [*headers, (b"host", service.encode("ascii"))],
        "client": outer.get("client"),
        "server": (service, 80),
        "extensions": {},
    }
