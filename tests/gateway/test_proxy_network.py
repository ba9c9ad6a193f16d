"""The gateway's proxy to services reached over the network (the production topology's path, through
aiohttp's pool): what reaches the service is what the caller sent, the answer comes back as the
service sent it, big bodies stream both ways, connections are reused, and a service that is down,
slow or stalled is a 503, not a hung request."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway.app import create_app
from gateway.upstream import NetworkUpstream, UpstreamTimeoutError
from tests.conftest import free_port, make_settings
from tests.helpers import assert_problem, serving

LARGE = 3 * 1024 * 1024 + 17  # above every buffered threshold: streamed both ways


class Service:
    """A service behind the gateway: records what reached it (per path) and answers as asked."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, Any]] = {}
        self.peers: list[tuple[str, int]] = []  # the client address of every request: one per connection
        self.first_piece = asyncio.Event()
        self.large_answer = os.urandom(LARGE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        path: str = scope["path"]
        self.peers.append(scope["client"])
        if path == "/v1/documents/stalled":  # never reads the body, never answers in time
            await asyncio.sleep(30)
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if body:
                self.first_piece.set()
            if not message.get("more_body", False):
                break
        self.seen[path] = {
            "method": scope["method"],
            "raw_path": scope["raw_path"],
            "query_string": scope["query_string"],
            "headers": scope["headers"],
            "body": bytes(body),
        }
        headers = [(b"link", b"</a>; rel=a"), (b"link", b"</b>; rel=b"), (b"x-request-id", b"the-services-own")]
        if path == "/v1/documents/slow":
            await asyncio.sleep(3)
        if path == "/v1/documents/large":
            content = self.large_answer
        elif path == "/v1/documents/redirect":
            content = b""
            headers.append((b"location", b"/v1/documents/elsewhere"))
        else:
            content = json.dumps({"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}).encode()
        headers.append((b"content-length", str(len(content)).encode()))
        status = 307 if path == "/v1/documents/redirect" else 200
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


@pytest.fixture
async def service() -> AsyncIterator[tuple[Service, str]]:
    found = Service()
    async with serving(found) as url:
        yield found, url


@pytest.fixture
async def gateway(service: tuple[Service, str], tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway on a port of its own, the exchange being ``service``, the registry a port nobody
    listens on; a caller over the network."""
    settings = make_settings(
        tmp_path / "var",
        exchange={"url": service[1]},
        registry={"url": f"http://127.0.0.1:{free_port()}"},
        gateway={"service_timeout_seconds": 0.5},
        # the fake routes are JSON-route class (1 MiB by default, docs/security.md): room for the large bodies
        limits={"json_body_max_bytes": 64 * 1024 * 1024},
    )
    async with (
        serving(create_app(settings), lifespan="on") as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield http


def _header(seen: dict[str, Any], name: bytes) -> list[bytes]:
    return [value for key, value in seen["headers"] if key == name]


async def test_the_service_gets_the_request_as_the_caller_sent_it(
    service: tuple[Service, str], gateway: httpx.AsyncClient
) -> None:
    found, url = service
    content = os.urandom(50_000)
    response = await gateway.post(
        "/v1/documents/echo/%41b%20c?x=1&x=2&blank&v=%C3%A9",
        content=content,
        headers={
            "X-Note": "Sở Nội vụ".encode(),
            "X-Request-ID": "the-callers-id",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Content-Type": "application/pdf",
        },
    )
    assert response.status_code == 200
    assert response.json() == {"length": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    seen = found.seen["/v1/documents/echo/Ab c"]
    assert seen["method"] == "POST"
    assert seen["raw_path"] == b"/v1/documents/echo/%41b%20c"  # the path and query as sent, not re-encoded
    assert seen["query_string"] == b"x=1&x=2&blank&v=%C3%A9"
    assert seen["body"] == content
    assert _header(seen, b"x-note") == ["Sở Nội vụ".encode()]
    assert _header(seen, b"x-request-id") == [b"the-callers-id"]
    assert _header(seen, b"x-forwarded-for") == [b"127.0.0.1"]
    assert _header(seen, b"content-type") == [b"application/pdf"]
    assert _header(seen, b"host") == [url.removeprefix("http://").encode()]
    assert not _header(seen, b"keep-alive") and not _header(seen, b"te")
    # the caller's own defaults, once each: the gateway adds none of its own
    assert _header(seen, b"user-agent") == [f"python-httpx/{httpx.__version__}".encode()]
    assert len(_header(seen, b"accept-encoding")) == 1 and len(_header(seen, b"accept")) == 1
    # the answer as the service sent it, but the gateway's request id
    assert response.headers.get_list("link") == ["</a>; rel=a", "</b>; rel=b"]
    assert response.headers["x-request-id"] == "the-callers-id"
    assert int(response.headers["content-length"]) == len(response.content)

    response = await gateway.get("/v1/documents/echo")  # no request id: the gateway's own goes on
    assert response.status_code == 200
    assert _header(found.seen["/v1/documents/echo"], b"x-request-id") == [response.headers["x-request-id"].encode()]
    assert found.seen["/v1/documents/echo"]["body"] == b""

    # a header value that is not UTF-8 still arrives as the bytes sent
    response = await gateway.get("/v1/documents/latin", headers={"X-Note": b"caf\xe9"})
    assert response.status_code == 200
    assert _header(found.seen["/v1/documents/latin"], b"x-note") == [b"caf\xe9"]


async def test_large_bodies_stream_both_ways(service: tuple[Service, str], gateway: httpx.AsyncClient) -> None:
    """The service has the first piece of an upload before the caller sends the rest: the gateway
    does not hold a large upload whole. A large answer arrives byte for byte, with its length."""
    found, _ = service
    piece = os.urandom(256 * 1024)
    upload = hashlib.sha256()

    async def pieces() -> AsyncIterator[bytes]:
        yield piece
        upload.update(piece)
        await asyncio.wait_for(found.first_piece.wait(), 10)  # stuck here if the gateway buffered
        for _ in range(12):
            chunk = os.urandom(256 * 1024)
            upload.update(chunk)
            yield chunk

    response = await gateway.post("/v1/documents/echo", content=pieces())  # chunked: no length known
    assert response.status_code == 200
    assert response.json() == {"length": 13 * len(piece), "sha256": upload.hexdigest()}

    response = await gateway.get("/v1/documents/large")
    assert response.status_code == 200 and response.content == found.large_answer
    assert int(response.headers["content-length"]) == LARGE
    assert response.headers["x-request-id"] != "the-services-own"


async def test_connections_to_a_service_are_reused_and_redirects_passed_on(
    service: tuple[Service, str], gateway: httpx.AsyncClient
) -> None:
    found, _ = service
    await gateway.get("/v1/documents/echo")
    found.peers.clear()
    for _ in range(10):
        assert (await gateway.post("/v1/documents/echo", content=b"x" * 1000)).status_code == 200
    assert len(set(found.peers)) == 1, found.peers

    response = await gateway.get("/v1/documents/redirect")
    assert response.status_code == 307 and response.headers["location"] == "/v1/documents/elsewhere"
    assert "/v1/documents/elsewhere" not in found.seen  # the caller follows it, not the gateway


async def test_a_service_down_or_too_slow_is_a_503(gateway: httpx.AsyncClient) -> None:
    body = assert_problem(await gateway.get("/v1/agencies"), 503, "dependency_unavailable")
    assert "registry" in body["detail"]
    started = time.monotonic()
    body = assert_problem(await gateway.get("/v1/documents/slow"), 503, "dependency_unavailable")
    assert "did not answer in time" in body["detail"]
    assert time.monotonic() - started < 2.5  # the service timeout (0.5 s), not the service's 3 s


async def test_the_service_timeout_counts_the_services_time_not_the_callers(service: tuple[Service, str]) -> None:
    """A service that stops taking an upload is given up after the timeout; a caller that uploads
    slowly is not the service's fault."""
    _, url = service
    upstream = NetworkUpstream(url, max_connections=4, connect_timeout=1, timeout=0.5, keepalive=4)
    try:

        async def upload(pieces: int, pause: float) -> AsyncIterator[bytes]:
            for _ in range(pieces):
                await asyncio.sleep(pause)
                yield b"x" * (1024 * 1024)

        started = time.monotonic()
        with pytest.raises(UpstreamTimeoutError):
            length = str(64 * 1024 * 1024)
            await upstream.send("POST", "/v1/documents/stalled", [("content-length", length)], upload(64, 0))
        assert time.monotonic() - started < 5

        answer = await upstream.send("POST", "/v1/documents/echo", [("content-length", str(3 << 20))], upload(3, 0.8))
        assert answer.status == 200
        assert json.loads(await answer.read())["length"] == 3 << 20
        answer.release()
    finally:
        await upstream.close()
