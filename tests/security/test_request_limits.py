"""Oversized requests: a Content-Length above the route's limit is refused at once, before the body
is read; a body without one is cut off at the limit; nothing is stored either way."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.types import Message

from tests.conftest import running_system
from tests.helpers import Api, assert_problem, metadata

MIB = 1024 * 1024
SMALL_UPLOADS = {"max_attachments": 2, "max_attachment_bytes": MIB}  # 2 MiB of files + 1 MiB margin


async def _call_asgi(api: Api, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[list[Message], int]:
    """Call the gateway app directly; return what it sent and how many times it read the body."""
    assert api.app is not None
    reads = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"gateway"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("gateway", 80),
    }
    await api.app(scope, receive, send)
    return sent, reads


async def test_a_huge_content_length_is_refused_before_the_body_is_read(api: Api) -> None:
    client = await api.agency_client()
    auth = [(b"authorization", client.auth["Authorization"].encode())]
    for path, content_type, length in (
        # an upload may carry 50 files of 50 MiB by default: its limit is above 2 GiB
        ("/v1/documents", b"multipart/form-data; boundary=x", 100 * 1024**3),
        ("/v1/agencies", b"application/json", 2 * 1024**3),
        ("/v1/agencies/import", b"text/csv", 2 * 1024**3),
    ):
        headers = [*auth, (b"content-type", content_type), (b"content-length", str(length).encode())]
        sent, reads = await _call_asgi(api, path, headers)
        assert reads == 0, path
        assert sent[0]["status"] == 413, sent
        assert json.loads(sent[1]["body"])["code"] == "request_too_large"


async def _multipart(total: int, pulled: list[int]) -> AsyncIterator[bytes]:
    meta = json.dumps(metadata(["000.00.00.H41"]))
    yield (
        b'--b0undary\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n' + meta.encode() + b"\r\n"
        b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="a.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    )
    chunk = b"0" * (256 * 1024)
    while pulled[0] < total:
        pulled[0] += len(chunk)
        yield chunk
    yield b"\r\n--b0undary--\r\n"


async def test_a_chunked_upload_past_the_limit_is_cut_off_and_nothing_is_stored(
    tmp_path: Path, database_url: str | None
) -> None:
    async with running_system(tmp_path / "var", database_url, exchange=SMALL_UPLOADS) as api:
        sender = await api.agency_client()
        recipient = await api.agency_client()
        pulled = [0]
        response = await api.http.post(
            "/v1/documents",
            content=_multipart(64 * MIB, pulled),
            headers={**sender.auth, "Content-Type": "multipart/form-data; boundary=b0undary"},
        )
        assert_problem(response, 413, "request_too_large")
        assert pulled[0] <= 4 * MIB  # reading stopped at the limit (3 MiB), not at the end (64 MiB)
        blobs = tmp_path / "var" / "blobs"
        assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file()]
        assert (await api.http.get("/v1/inbox", headers=recipient.auth)).json()["items"] == []
        # a document within the limit still goes through
        ok = await api.send(sender, [recipient.agency_code])
        assert ok is not None


async def test_a_json_body_past_the_limit_is_refused(api: Api) -> None:
    admin = await api.admin()

    async def body() -> AsyncIterator[bytes]:
        yield b'{"code": "123.45.67.H89", "level": "department", "name": "'
        for _ in range(8):
            yield b"a" * (256 * 1024)
        yield b'"}'

    response = await api.http.post(
        "/v1/agencies", content=body(), headers={**admin, "Content-Type": "application/json"}
    )
    assert_problem(response, 413, "request_too_large")
    assert (await api.http.get("/v1/agencies/123.45.67.H89", headers=admin)).status_code == 404
