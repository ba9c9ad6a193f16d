"""The send benchmark's HTTP ceiling: one FastAPI route that reads the whole request body and answers
``202`` with JSON, nothing else. Served by uvicorn in its own process as the LienThong processes are
(``python -m uvicorn bench.bare_app:app``: uvloop and httptools when installed, no access log)."""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    """Answer that the server is up."""
    return {"status": "ok"}


@app.get("/v1/inbox")
async def inbox() -> dict[str, object]:
    """A small read: a few bytes of JSON (``bench gateway``'s small requests)."""
    return {"items": [], "next_cursor": None}


@app.post("/v1/documents", status_code=202)
async def accept(request: Request) -> dict[str, object]:
    """Read the body (not parsed: the framework's floor), answer 202 with ids shaped as the exchange's."""
    body = await request.body()
    return {"id": str(uuid.uuid4()), "size": len(body), "deliveries": [{"id": str(uuid.uuid4())}]}
