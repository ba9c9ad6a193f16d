"""The webhook receiver docs/channels.md shows really verifies LienThong's signatures."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.webhooks import signed_headers

DOC = Path(__file__).resolve().parents[1] / "docs" / "channels.md"


def receiver_app(secret: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    text = DOC.read_text()
    [code] = re.findall(r"<!-- receiver: tested by tests/test_docs_channels.py -->\n```python\n(.*?)```", text, re.S)
    assert len([line for line in code.splitlines() if line.strip()]) <= 12, "the docs promise about ten lines"
    monkeypatch.setenv("LIENTHONG_WEBHOOK_SECRET", secret)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace["app"]


async def test_the_documented_receiver_accepts_a_signed_call_and_refuses_tampering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "s" * 43
    app = receiver_app(secret, monkeypatch)
    body = b'{"id":"e1","seq":1,"type":"delivery.received"}'
    headers = signed_headers(secret, body, delivery_id="e1", event_type="delivery.received")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as http:
        assert (await http.post("/hook", content=body, headers=headers)).status_code == 204
        assert (await http.post("/hook", content=body + b" ", headers=headers)).status_code == 401
        other = signed_headers("x" * 43, body, delivery_id="e1", event_type="delivery.received")
        assert (await http.post("/hook", content=body, headers=other)).status_code == 401
        stale = signed_headers(secret, body, delivery_id="e1", event_type="t", now=time.time() - 3600)
        assert (await http.post("/hook", content=body, headers=stale)).status_code == 401
        assert (await http.post("/hook", content=body)).status_code == 401
