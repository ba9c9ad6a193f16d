"""The hub double: a small FastAPI app with the national hub's operations, packets in memory.

The connector cannot tell it from the real hub: it reaches it by a base URL and HTTP Basic
credentials from its configuration, and every operation answers in the shape docs/interop.md
describes. Each client of the hub answers for one level-1 group of agency codes (``H10``: the
province whose codes end in ``.H10`` or start with ``H10.``); a packet is listed for the client of
each of its recipients until that client acknowledges it.

    POST /edocs                   sendEdoc               {"from", "to": [...], "service_type", "content"}
    GET  /edocs                   getReceivedEdocList    pending packets for the caller
    GET  /edocs/{doc_id}          getEdoc                one packet, content base64
    PUT  /edocs/{doc_id}/status   updateStatus           transport ack: done | fail (+ reason)
    GET  /directory               the national directory (code, code102, name, parent, deleted)

``/_double/...`` is the double's own (no credentials): switch it down and up, list every packet
with its acknowledgements. A down double answers 503 to every operation.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, Field

from shared.runtime import AppRuntime, attach_runtime, runtime_of

ServiceType = Literal["edoc", "status"]
MAX_PACKET_BYTES = 64 * 1024 * 1024


def group_of(code: str) -> str:
    """The level-1 group of an agency code of either form: ``000.00.00.G22`` → ``G22``, ``H52.101.114`` → ``H52``."""
    parts = code.strip().upper().split(".")
    first, last = parts[0], parts[-1]
    return first if first[:1].isalpha() else last


@dataclass
class StoredPacket:
    doc_id: str
    sender: str
    from_code: str
    to: list[str]
    service_type: ServiceType
    content: bytes
    created_at: dt.datetime
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)  # client → {"status", "reason", "at"}


@dataclass
class HubDouble:
    """The double's state: its clients (id → secret, group), its packets, its directory, up or down."""

    clients: dict[str, tuple[str, str]] = field(default_factory=dict)
    directory: list[dict[str, Any]] = field(default_factory=list)
    packets: dict[str, StoredPacket] = field(default_factory=dict)
    down: bool = False
    refused_while_down: int = 0  # calls answered 503 while down (a test's sign that the connector tried)

    def add_client(self, client_id: str, secret: str, group: str) -> None:
        """Let ``client_id`` in, answering for the agencies of ``group`` (``H10``, ``G22`` …)."""
        self.clients[client_id] = (secret, group.upper())

    def deposit(
        self, sender: str, from_code: str, to: list[str], content: bytes, service_type: ServiceType = "edoc"
    ) -> str:
        """Keep a packet for its recipients' clients; return its hub message id."""
        doc_id = str(uuid.uuid4())
        self.packets[doc_id] = StoredPacket(
            doc_id=doc_id,
            sender=sender,
            from_code=from_code,
            to=list(to),
            service_type=service_type,
            content=content,
            created_at=dt.datetime.now(dt.UTC),
        )
        return doc_id

    def pending_for(self, client_id: str) -> list[StoredPacket]:
        """Packets addressed to the client's group that it has not acknowledged, oldest first."""
        group = self.clients[client_id][1]
        return [
            p
            for p in self.packets.values()
            if client_id not in p.acks and p.sender != client_id and any(group_of(c) == group for c in p.to)
        ]


class SendEdoc(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=35)
    to: list[Annotated[str, Field(min_length=1, max_length=35)]] = Field(min_length=1, max_length=1000)
    service_type: ServiceType = "edoc"
    content: str = Field(min_length=1, description="the packet, base64")


class UpdateStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["done", "fail", "processing"]
    reason: str | None = Field(default=None, max_length=2000)


class Switch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    down: bool


def _listed(packet: StoredPacket) -> dict[str, Any]:
    return {
        "doc_id": packet.doc_id,
        "from": packet.from_code,
        "to": packet.to,
        "service_type": packet.service_type,
        "created_at": packet.created_at.isoformat(),
    }


class DoubleRuntime(AppRuntime):
    """The double's app runtime: its state, nothing else (no database, no tokens)."""

    def __init__(self, double: HubDouble) -> None:
        super().__init__("hub_double")
        self.double = double


_basic = HTTPBasic(auto_error=False)


def client_of(request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> str:
    """The hub client calling (HTTP Basic); 503 while the double is down, 401 for a stranger."""
    state = runtime_of(request, DoubleRuntime).double
    if state.down:
        state.refused_while_down += 1
        raise HTTPException(503, "the hub is down (double switched off)")
    known = state.clients.get(credentials.username) if credentials else None
    if credentials is None or known is None or not secrets.compare_digest(known[0], credentials.password):
        raise HTTPException(401, "unknown hub client or wrong secret", headers={"WWW-Authenticate": "Basic"})
    return credentials.username


Client = Annotated[str, Depends(client_of)]


def create_app(double: HubDouble | None = None) -> FastAPI:
    """Build the double around ``double`` (a fresh, empty one by default)."""
    state = double or HubDouble()
    app = FastAPI(title="National hub double", description=__doc__)
    attach_runtime(app, DoubleRuntime(state))

    @app.post("/edocs")
    async def send_edoc(body: SendEdoc, client: Client) -> dict[str, Any]:
        """sendEdoc: take a packet (document or status) for its recipients; answer its hub id."""
        try:
            content = base64.b64decode(body.content, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPException(422, "content is not base64") from None
        if len(content) > MAX_PACKET_BYTES:
            raise HTTPException(413, "packet too large")
        return {"status": "OK", "doc_id": state.deposit(client, body.from_, body.to, content, body.service_type)}

    @app.get("/edocs")
    async def received_edoc_list(client: Client) -> dict[str, Any]:
        """getReceivedEdocList: the packets waiting for the caller, oldest first."""
        return {"items": [_listed(p) for p in state.pending_for(client)]}

    @app.get("/edocs/{doc_id}")
    async def get_edoc(doc_id: str, client: Client) -> dict[str, Any]:
        """getEdoc: one packet addressed to the caller (content base64)."""
        packet = state.packets.get(doc_id)
        group = state.clients[client][1]
        if packet is None or not any(group_of(c) == group for c in packet.to):
            raise HTTPException(404, f"no packet {doc_id} for this client")
        return {**_listed(packet), "content": base64.b64encode(packet.content).decode()}

    @app.put("/edocs/{doc_id}/status")
    async def update_status(doc_id: str, body: UpdateStatus, client: Client) -> dict[str, Any]:
        """updateStatus: the transport acknowledgement of a fetched packet (done, fail with a reason)."""
        packet = state.packets.get(doc_id)
        if packet is None:
            raise HTTPException(404, f"no packet {doc_id}")
        if body.status != "processing":
            packet.acks[client] = {"status": body.status, "reason": body.reason, "at": dt.datetime.now(dt.UTC)}
        return {"status": "OK"}

    @app.get("/directory")
    async def directory(_client: Client) -> dict[str, Any]:
        """The national directory of agencies (deleted ones flagged, not left out)."""
        return {"items": state.directory}

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Alive (the topology waits for it)."""
        return {"status": "ok"}

    @app.post("/_double/down")
    async def switch(body: Switch) -> dict[str, bool]:
        """The double's own: ``{"down": true}`` makes every operation answer 503 until ``false``."""
        state.down = body.down
        return {"down": state.down}

    @app.get("/_double/edocs")
    async def every_packet() -> JSONResponse:
        """The double's own: every packet, with who acknowledged it how."""
        items = [
            {**_listed(p), "sender": p.sender, "acks": {c: {**a, "at": a["at"].isoformat()} for c, a in p.acks.items()}}
            for p in state.packets.values()
        ]
        return JSONResponse({"items": items, "down": state.down})

    return app


class HubDoubleClient:
    """A hub client for tests and the demo: another agency's system talking to the double."""

    def __init__(self, http: httpx.AsyncClient, client_id: str, secret: str) -> None:
        self.http = http
        self.auth = httpx.BasicAuth(client_id, secret)

    async def send(self, from_code: str, to: list[str], content: bytes, service_type: ServiceType = "edoc") -> str:
        body = {
            "from": from_code,
            "to": to,
            "service_type": service_type,
            "content": base64.b64encode(content).decode(),
        }
        response = await self.http.post("/edocs", json=body, auth=self.auth)
        response.raise_for_status()
        return str(response.json()["doc_id"])

    async def received(self) -> list[dict[str, Any]]:
        response = await self.http.get("/edocs", auth=self.auth)
        response.raise_for_status()
        return list(response.json()["items"])

    async def fetch(self, doc_id: str) -> bytes:
        response = await self.http.get(f"/edocs/{doc_id}", auth=self.auth)
        response.raise_for_status()
        return base64.b64decode(response.json()["content"])

    async def ack(self, doc_id: str, status: str = "done", reason: str | None = None) -> None:
        response = await self.http.put(
            f"/edocs/{doc_id}/status", json={"status": status, "reason": reason}, auth=self.auth
        )
        response.raise_for_status()
