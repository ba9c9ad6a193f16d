"""Request headers are bounded: at the server while they are read (httptools has no limit of its
own), and again in every app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from shared.httpserver import BoundedHttpToolsProtocol
from tests.conftest import free_port
from tests.helpers import Api, assert_problem, wait_until

LIMIT = 64 * 1024


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


class _Limited(BoundedHttpToolsProtocol):
    max_header_bytes = LIMIT


@contextlib.asynccontextmanager
async def _server() -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(_hello, host="127.0.0.1", port=port, http=_Limited, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, what="the server listening")
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _send_big_header(port: int, size: int) -> tuple[int, bytes]:
    """Send a request whose one header is ``size`` bytes; return how much was sent and the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(reader.read(65536))
    sent = 0
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * (256 * 1024)
        while sent < size and not answer.done():
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
        if sent >= size:
            writer.write(b"\r\n\r\n")
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    try:
        data = await asyncio.wait_for(answer, 5)
    except (ConnectionError, OSError):
        data = b""
    writer.close()
    return sent, data


async def test_a_32_mib_header_is_refused_by_the_server_which_keeps_serving() -> None:
    async with _server() as port:
        sent, answer = await _send_big_header(port, 32 * 1024 * 1024)
        assert sent < 32 * 1024 * 1024  # cut off long before the end
        if answer:  # the answer may be lost to the connection's reset
            assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
            assert b"headers_too_large" in answer
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/", headers={"X-Fine": "a" * 1000})
            assert response.status_code == 200
            for _ in range(3):  # bodies larger than the limit, on one kept-alive connection: only heads count
                response = await http.post(f"http://127.0.0.1:{port}/", content=b"x" * (4 * LIMIT))
                assert response.status_code == 200
        # just above the limit, in one piece: a 431 answer, read whole
        sent, answer = await _send_big_header(port, LIMIT + 1024)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


async def test_the_apps_refuse_oversized_headers_too(api: Api) -> None:
    response = await api.http.get("/health", headers={"X-Big": "a" * (api.settings.limits.header_max_bytes + 1)})
    assert_problem(response, 431, "headers_too_large")
    assert (await api.http.get("/health")).status_code == 200
