"""The send's short way through (services/exchange/document/send_route.py): a plain multipart send
is answered without FastAPI's dependency solving, and every request gets the answer FastAPI's own
handler gives it. Each case is sent twice, the short way on and off, and the answers compared."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request

from services.demo.pdf import make_pdf
from services.exchange.document import send_route
from tests.conftest import ONE_DATABASE
from tests.helpers import Api, Client, inbox_ids, metadata

PDF = make_pdf(["Van ban thu nghiem"])


class ShortWay:
    """Switches the short way on and off, and records whether it answered each request."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.enabled = True
        self.answered: list[bool] = []
        real = send_route.plain_send

        async def plain_send(request: Any, form_limits: Any = None) -> Any:
            if not self.enabled:
                return None
            try:
                answer = await real(request, form_limits)
            except Exception:
                self.answered.append(True)  # it answered: with the error the app's handlers turn into a problem
                raise
            self.answered.append(answer is not None)
            return answer

        monkeypatch.setattr(send_route, "plain_send", plain_send)


def _normalized(response: httpx.Response) -> tuple[int, str, Any]:
    """The status, the media type and the body without what differs between two requests."""
    body: Any = response.content
    if response.headers.get("content-type", "").startswith(("application/json", "application/problem+json")):
        body = response.json()
        if isinstance(body, dict):
            for varying in ("request_id", "instance", "id", "deliveries", "received_at", "created_at"):
                body.pop(varying, None)
    return response.status_code, response.headers.get("content-type", ""), body


def _multipart(*parts: tuple[str, str | None, bytes, str | None]) -> tuple[bytes, str]:
    """A multipart body of (name, filename, content, content type) parts."""
    boundary = uuid.uuid4().hex
    chunks = []
    for name, filename, content, content_type in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        chunks.append(head.encode() + b"\r\n" + content + b"\r\n")
    return b"".join(chunks) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _meta(recipient: Client, **overrides: Any) -> bytes:
    recipients = overrides.pop("recipients", [recipient.agency_code])
    return json.dumps(metadata(recipients, **overrides), ensure_ascii=False).encode()


def _request(*parts: tuple[str, str | None, bytes, str | None], auth: dict[str, str], **headers: str) -> Any:
    body, content_type = _multipart(*parts)
    return body, {**auth, "Content-Type": content_type, **headers}


def _file(name: str = "files", filename: str | None = "van-ban.pdf") -> tuple[str, str | None, bytes, str | None]:
    return (name, filename, PDF, "application/pdf")


# (case, whether the short way answers it)
CASES: dict[str, tuple[Callable[[Client, Client, Client], tuple[bytes, dict[str, str]]], bool]] = {
    "metadata not JSON": (
        lambda s, r, _n: _request(("metadata", None, b"{not json", None), _file(), auth=s.auth),
        True,
    ),
    "metadata against the schema": (
        lambda s, r, _n: _request(("metadata", None, _meta(r, urgency=9), None), _file(), auth=s.auth),
        True,
    ),
    "an unknown recipient": (
        lambda s, r, _n: _request(
            ("metadata", None, _meta(r, recipients=["000.00.00.X00"]), None), _file(), auth=s.auth
        ),
        True,
    ),
    "a token without the send scope": (
        lambda s, r, n: _request(("metadata", None, _meta(r), None), _file(), auth=n.auth),
        True,
    ),
    "no metadata": (lambda s, r, _n: _request(_file(), auth=s.auth), False),
    "no files": (lambda s, r, _n: _request(("metadata", None, _meta(r), None), auth=s.auth), False),
    "empty metadata": (lambda s, r, _n: _request(("metadata", None, b"", None), _file(), auth=s.auth), False),
    "metadata as a file": (
        lambda s, r, _n: _request(("metadata", "m.json", _meta(r), "application/json"), _file(), auth=s.auth),
        False,
    ),
    "files as a text field": (
        lambda s, r, _n: _request(("metadata", None, _meta(r), None), ("files", None, b"text", None), auth=s.auth),
        False,
    ),
    "a packet part beside the metadata": (
        lambda s, r, _n: _request(
            ("metadata", None, _meta(r), None), _file(), ("packet", "p.xml", b"<x/>", "application/xml"), auth=s.auth
        ),
        False,
    ),
    "only an empty file input": (  # what a browser sends for a file input left empty
        lambda s, r, _n: _request(("metadata", None, _meta(r), None), ("files", "", b"", None), auth=s.auth),
        False,
    ),
    "an Idempotency-Key too long": (
        lambda s, r, _n: _request(
            ("metadata", None, _meta(r), None), _file(), auth=s.auth, **{"Idempotency-Key": "k" * 201}
        ),
        False,
    ),
    "a broken multipart body": (
        lambda s, r, _n: (
            b"--x\r\nContent-Disposition: form-data\r\n\r\n",
            {**s.auth, "Content-Type": "multipart/form-data; boundary=x"},
        ),
        True,
    ),
    "a multipart body without a boundary": (
        lambda s, r, _n: (b"whatever", {**s.auth, "Content-Type": "multipart/form-data"}),
        True,
    ),
    "no token": (lambda s, r, _n: _request(("metadata", None, _meta(r), None), _file(), auth={}), False),
    "a token of another scheme": (
        lambda s, r, _n: _request(("metadata", None, _meta(r), None), _file(), auth={"Authorization": "Basic eDp5"}),
        False,
    ),
}


@ONE_DATABASE  # refusals, nothing written: the short way's writes are the next test's, on both databases
@pytest.mark.parametrize("case", list(CASES))
async def test_every_answer_is_fastapis_own(api: Api, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    reader = await api.agency_client(scopes=["documents:receive"])
    make, short = CASES[case]
    way = ShortWay(monkeypatch)
    answers = []
    for enabled in (True, False):
        way.enabled = enabled
        body, headers = make(sender, recipient, reader)
        answers.append(await api.http.post("/v1/documents", content=body, headers=headers))
    assert answers[0].status_code in (400, 401, 403, 404, 409, 422), answers[0].text
    assert _normalized(answers[0]) == _normalized(answers[1])
    assert way.answered == [short]
    assert await inbox_ids(api, recipient) == []  # a refused send changes nothing


async def test_a_plain_send_goes_the_short_way_and_is_the_same_document(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender, recipient = await api.agency_client(), await api.agency_client()
    way = ShortWay(monkeypatch)
    sent = []
    for enabled in (True, False):
        way.enabled = enabled
        key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        body, headers = _request(
            ("metadata", None, _meta(recipient, code_number=f"{uuid.uuid4().int % 10**6}"), None),
            _file(),
            _file(filename="phu-luc.pdf"),
            _file(filename=""),
            ("files", "", b"", "application/octet-stream"),  # an empty file input: not a file, as FastAPI reads it
            auth=sender.auth,
            **key,
        )
        first = await api.http.post("/v1/documents", content=body, headers=headers)
        again = await api.http.post("/v1/documents", content=body, headers=headers)
        assert (first.status_code, again.status_code) == (202, 200), first.text
        assert again.json() == first.json()  # the replay: the original answer
        sent.append(first.json())
    assert way.answered == [True, True]
    short, full = sent
    assert _normalized_document(short) == _normalized_document(full)
    assert sorted(await inbox_ids(api, recipient)) == sorted([short["id"], full["id"]])
    for accepted in sent:
        read = await api.http.get(f"/v1/documents/{accepted['id']}", headers=sender.auth)
        assert read.status_code == 200, read.text
        assert [a["file_name"] for a in read.json()["attachments"]] == ["van-ban.pdf", "phu-luc.pdf", "attachment-3"]


def _normalized_document(accepted: dict[str, Any]) -> dict[str, Any]:
    """The answer without what is new each time: the ids of the document, its deliveries, its files."""
    ids = {"id", "deliveries"}
    normalized = {key: value for key, value in accepted.items() if key not in ids}
    normalized["attachments"] = [{k: v for k, v in a.items() if k != "id"} for a in accepted["attachments"]]
    return normalized


async def test_the_short_way_steps_aside_for_dependencies_fastapi_would_solve(monkeypatch: pytest.MonkeyPatch) -> None:
    """An app's ``dependency_overrides``, or ``dependencies`` an include adds, are FastAPI's to solve:
    while there are any, every request goes to FastAPI's handler."""
    asked: list[str] = []

    async def plain_send(request: Any, form_limits: Any = None) -> None:
        asked.append(request.url.path)
        return None

    async def endpoint(request: Request) -> dict[str, str]:
        return {"path": request.url.path}

    async def extra() -> None:
        return None

    monkeypatch.setattr(send_route, "plain_send", plain_send)
    app = FastAPI()
    app.router.add_api_route("/direct", endpoint, methods=["POST"], route_class_override=send_route.SendRoute)
    for prefix, dependencies in (("/included", []), ("/guarded", [Depends(extra)])):
        router = APIRouter()
        router.add_api_route("/send", endpoint, methods=["POST"], route_class_override=send_route.SendRoute)
        app.include_router(router, prefix=prefix, dependencies=dependencies)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as http:
        for path in ("/direct", "/included/send", "/guarded/send"):
            assert (await http.post(path)).json() == {"path": path}
        assert asked == ["/direct", "/included/send"]
        app.dependency_overrides[extra] = extra
        asked.clear()
        assert (await http.post("/direct")).status_code == 200
        assert asked == []
