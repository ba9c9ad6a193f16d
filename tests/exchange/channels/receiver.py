"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 that verifies each call's
signature, dedupes by delivery id as the docs tell receivers to, and can be down, fail or hang."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.helpers import wait_until


@dataclass
class Call:
    delivery_id: str
    event: str
    body: bytes
    signature_ok: bool
    answered: int = 0

    @property
    def entry(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class WebhookReceiver:
    """Answers ``status`` (200 by default); ``hang`` seconds before answering; records every call."""

    secret: str = ""
    status: int = 200
    hang: float = 0.0
    calls: list[Call] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def accepted(self) -> list[Call]:
        """The calls answered 2xx with a good signature, deduped by delivery id (first one kept)."""
        seen: dict[str, Call] = {}
        for call in self.calls:
            if call.signature_ok and call.delivery_id not in seen and call.answered == 200:
                seen[call.delivery_id] = call
        return list(seen.values())

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        ok = verify(
            self.secret,
            request.headers.get(TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(SIGNATURE_HEADER, ""),
        )
        call = Call(request.headers.get(DELIVERY_HEADER, ""), request.headers.get(EVENT_HEADER, ""), body, ok)
        self.calls.append(call)
        if self.hang:
            await asyncio.sleep(self.hang)
        status = self.status if ok else 401
        call.answered = status
        return Response(status_code=status)

    async def start(self) -> None:
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        await wait_until(lambda: self._server is not None and self._server.started, what="the receiver listening")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server = self._task = None
