"""The national hub's operations over HTTP/JSON (docs/interop.md, "The national hub").

The connector knows the hub only by its base URL and HTTP Basic credentials: the real hub and the
double (services/hub_double/) answer the same calls. A hub that cannot be reached, times out or
answers 5xx raises :class:`HubUnavailableError` (try again later); a hub that refuses a call (4xx)
raises :class:`HubRefusedError` (trying again will not help).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.messaging import describe_error

ServiceType = Literal["edoc", "status"]
TransportStatus = Literal["done", "fail", "processing"]


class HubError(Exception):
    """A call to the hub did not succeed."""


class HubUnavailableError(HubError):
    """The hub is unreachable, slow or failing (5xx): try again later."""


class HubRefusedError(HubError):
    """The hub refused the call (4xx) or answered what it should not."""


class ReceivedEdoc(BaseModel):
    """One entry of ``getReceivedEdocList``."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    doc_id: str = Field(min_length=1, max_length=200)
    from_: str = Field(alias="from", max_length=35)
    to: list[str] = Field(default_factory=list)
    service_type: ServiceType = "edoc"


class DirectoryEntry(BaseModel):
    """One agency of the national directory."""

    model_config = ConfigDict(extra="ignore")

    code: str = Field(min_length=1, max_length=35)
    code102: str | None = Field(default=None, max_length=35)
    name: str = Field(min_length=1, max_length=300)
    parent: str | None = Field(default=None, max_length=35)
    deleted: bool = False


@dataclass
class HubClient:
    """Calls to one hub account."""

    http: httpx.AsyncClient
    client_id: str
    secret: str

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self.http.request(
                method, path, auth=httpx.BasicAuth(self.client_id, self.secret), **kwargs
            )
        except httpx.HTTPError as exc:
            raise HubUnavailableError(f"the hub did not answer {method} {path}: {describe_error(exc)}") from exc
        if response.status_code >= 500:
            raise HubUnavailableError(f"the hub answered {response.status_code} to {method} {path}")
        if response.status_code >= 400:
            raise HubRefusedError(f"the hub refused {method} {path}: {response.status_code} {response.text[:300]}")
        try:
            return response.json()
        except ValueError as exc:
            raise HubRefusedError(f"the hub answered {method} {path} with no JSON") from exc

    async def send_edoc(self, *, from_code: str, to: list[str], packet: bytes, service_type: ServiceType) -> str:
        """``sendEdoc``: hand a document or status packet to the hub; return the hub's message id."""
        body = {"from": from_code, "to": to, "service_type": service_type, "content": base64.b64encode(packet).decode()}
        answer = await self._call("POST", "/edocs", json=body)
        doc_id = answer.get("doc_id") if isinstance(answer, dict) else None
        if not isinstance(doc_id, str) or not doc_id:
            raise HubRefusedError("the hub took the packet without giving its message id")
        return doc_id

    async def received_edocs(self) -> list[ReceivedEdoc]:
        """``getReceivedEdocList``: the packets waiting for the province, oldest first."""
        answer = await self._call("GET", "/edocs")
        try:
            return [ReceivedEdoc.model_validate(item) for item in answer["items"]]
        except (KeyError, TypeError, ValidationError) as exc:
            raise HubRefusedError(f"the hub's list of received packets is not readable: {exc}") from exc

    async def get_edoc(self, doc_id: str) -> bytes:
        """``getEdoc``: one packet's bytes."""
        answer = await self._call("GET", f"/edocs/{doc_id}")
        try:
            return base64.b64decode(answer["content"], validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError) as exc:
            raise HubRefusedError(f"the hub's packet {doc_id} is not readable: {exc}") from exc

    async def update_status(self, doc_id: str, status: TransportStatus, reason: str | None = None) -> None:
        """``updateStatus``: the transport acknowledgement of a packet taken (not a business status)."""
        await self._call("PUT", f"/edocs/{doc_id}/status", json={"status": status, "reason": reason})

    async def directory(self) -> list[DirectoryEntry]:
        """The national directory of agencies."""
        answer = await self._call("GET", "/directory")
        try:
            return [DirectoryEntry.model_validate(item) for item in answer["items"]]
        except (KeyError, TypeError, ValidationError) as exc:
            raise HubRefusedError(f"the hub's directory is not readable: {exc}") from exc
