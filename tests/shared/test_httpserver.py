"""The servers' HTTP protocol sends each response in one write: uvicorn writes a response's head and
its body separately, and the protocol's transport holds the head back until the body comes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from shared.httpserver import BoundedHttpToolsProtocol, _CoalescingTransport
from tests.conftest import free_port
from tests.helpers import wait_until


class _Recorder:
    """A transport that records what it is asked to send, as the socket would get it."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sends.append(bytes(data))

    def writelines(self, lines: Iterable[bytes]) -> None:
        self.sends.append(b"".join(lines))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 1)}.get(name, default)


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


async def test_a_head_goes_out_with_the_body_that_follows_it() -> None:
    real = _Recorder()
    transport = _CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(HEAD)
    assert real.sends == []
    transport.write(b"ok")
    assert real.sends == [HEAD + b"ok"]
    transport.write(b"more")  # not a head: at once
    assert real.sends == [HEAD + b"ok", b"more"]
    await asyncio.sleep(0)  # the held head's fallback flush finds nothing left
    assert real.sends == [HEAD + b"ok", b"more"]


async def test_a_head_without_a_body_goes_out_at_the_next_turn_or_at_the_close() -> None:
    real = _Recorder()
    transport = _CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # an interim answer: the client waits for it
    await asyncio.sleep(0)
    assert real.sends == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    transport.write(HEAD)
    transport.close()
    assert real.sends[-1] == HEAD and real.closed
    transport.write(HEAD)
    await asyncio.sleep(0)  # the connection is closing: nothing more is sent
    assert real.sends[-1] == HEAD and len(real.sends) == 2
    transport.abort()


async def test_the_held_head_counts_in_the_write_buffer_and_goes_before_writelines() -> None:
    real = _Recorder()
    transport = _CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(HEAD)
    assert transport.get_write_buffer_size() == len(HEAD)
    transport.writelines([b"o", b"k"])
    assert real.sends == [HEAD, b"ok"]
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 1)


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"mot ", b"hai ", b"ba"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b"xin chao" * (1 if scope["path"] == "/" else 20_000)
    length = str(len(body)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def _server(sends: list[int]) -> AsyncIterator[int]:
    """A real uvicorn server on the protocol, counting the writes each connection's transport makes."""

    class Counting(BoundedHttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:
            write, writelines = transport.write, transport.writelines
            inside = []  # asyncio's writelines calls write: one send, counted once

            def counted_write(data: bytes) -> None:
                if not inside:
                    sends.append(len(data))
                write(data)

            def counted_writelines(lines: Iterable[bytes]) -> None:
                lines = list(lines)
                sends.append(sum(map(len, lines)))
                inside.append(True)
                try:
                    writelines(lines)
                finally:
                    inside.pop()

            transport.write, transport.writelines = counted_write, counted_writelines
            super().connection_made(transport)

    port = free_port()
    config = uvicorn.Config(_app, host="127.0.0.1", port=port, http=Counting, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, what="the server listening")
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def test_a_real_server_sends_each_response_in_one_write() -> None:
    sends: list[int] = []
    async with _server(sends) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for _ in range(3):  # kept alive: three responses, three writes
            response = await http.get("/")
            assert response.status_code == 200 and response.content == b"xin chao"
        assert len(sends) == 3
        large = await http.get("/large")  # 160 KB: head and body in one writelines too
        assert large.content == b"xin chao" * 20_000 and len(sends) == 4
        streamed = await http.get("/stream")  # chunked: the head with the first chunk, then each chunk
        assert streamed.content == b"mot hai ba"
        assert len(sends) == 4 + 4
