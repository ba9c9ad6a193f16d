"""Forwarding to a service in the same process (embedded mode): the service sees what the network
path would send it, answers stream through unchanged, and a service's own failure stays its own."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import httpx
from fastapi import FastAPI, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.inprocess import InProcessResponse, upstream_scope
from gateway.proxy import DROPPED_ANSWER_HEADERS
from tests.helpers import Api


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    """A service that answers with what it saw, the body's digest and size, and a hop-by-hop header."""
    digest, size = hashlib.sha256(), 0
    while True:
        message = await receive()
        digest.update(message.get("body", b""))
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    seen = {
        "path": scope["path"],
        "query": scope["query_string"].decode(),
        "headers": [[k.decode(), v.decode("latin-1")] for k, v in scope["headers"]],
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]),
        "root_path": scope["root_path"],
        "keys": sorted(scope),
        "sha256": digest.hexdigest(),
        "size": size,
    }
    body = json.dumps(seen).encode()
    headers = [(b"content-type", b"application/json"), (b"connection", b"close"), (b"x-request-id", b"inner")]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    half = len(body) // 2  # in two pieces, as a streaming service sends
    await send({"type": "http.response.body", "body": body[:half], "more_body": True})
    await send({"type": "http.response.body", "body": body[half:]})


class Boom(Exception):
    pass


async def _fails_after_answering(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Internal Server Error"})
    raise Boom("the service's own error, after its answer")


def _gateway(service_app: Any) -> FastAPI:
    """A stand-in gateway whose one route forwards in-process, as ``gateway/proxy.py`` does."""
    app = FastAPI()

    @app.api_route("/v1/{path:path}", methods=["GET", "POST"])
    async def forward(path: str, request: Request) -> Response:
        headers = [(k, v) for k, v in request.headers.raw if k not in (b"host", b"connection")]
        headers.append((b"x-forwarded-for", b"203.0.113.7"))
        return InProcessResponse(service_app, upstream_scope(request, "exchange", headers), DROPPED_ANSWER_HEADERS)

    return app


async def test_the_service_sees_the_network_paths_request_and_its_answer_streams_back_unchanged() -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)  # more than one receive() of the body
    transport = httpx.ASGITransport(app=_gateway(_echo))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        response = await http.post(
            "/v1/documents?cursor=a%2Fb&limit=5", content=body, headers={"X-Custom": "giá trị".encode()}
        )
    assert response.status_code == 201
    seen = response.json()
    assert seen["path"] == "/v1/documents"
    assert seen["query"] == "cursor=a%2Fb&limit=5"  # as received, not re-encoded
    assert seen["size"] == len(body) and seen["sha256"] == hashlib.sha256(body).hexdigest()
    headers = dict(seen["headers"])
    assert headers["host"] == "exchange" and headers["x-forwarded-for"] == "203.0.113.7"
    assert headers["x-custom"].encode("latin-1") == "giá trị".encode()  # the raw bytes, not re-encoded
    assert seen["server"] == ["exchange", 80] and seen["root_path"] == ""
    # nothing of the gateway's routing state reaches the service
    assert not {"app", "router", "endpoint", "path_params", "route", "state"} & set(seen["keys"])
    # the answer's hop-by-hop header and the service's request id are left out
    assert "connection" not in response.headers or response.headers["connection"] != "close"
    assert response.headers.get("x-request-id") != "inner"


async def test_a_service_failing_after_its_answer_gives_that_answer_and_no_second_error() -> None:
    transport = httpx.ASGITransport(app=_gateway(_fails_after_answering), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        response = await http.get("/v1/anything")
    assert response.status_code == 500 and response.text == "Internal Server Error"


async def test_embedded_mode_forwards_in_process_with_one_request_id(api: Api) -> None:
    """Through the embedded system: the answer carries the gateway's request id once, as it would
    over the network, and a streamed download arrives whole."""
    admin = await api.admin()
    response = await api.http.get("/v1/agencies", headers={**admin, "X-Request-Id": "req-embedded-1"})
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == ["req-embedded-1"]
    missing = await api.http.get("/v1/agencies/000.00.99.H99", headers=admin)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert len(missing.headers.get_list("x-request-id")) == 1


async def test_a_streaming_answer_passes_through_piece_by_piece() -> None:
    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        async def pieces() -> Any:
            for n in range(50):
                yield f"{n:04d}\n".encode()

        await StreamingResponse(pieces(), media_type="text/plain")(scope, receive, send)

    transport = httpx.ASGITransport(app=_gateway(stream))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        response = await http.get("/v1/stream")
    assert response.text == "".join(f"{n:04d}\n" for n in range(50))
