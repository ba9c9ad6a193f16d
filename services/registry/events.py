"""The events the registry publishes (through its outbox), with their payload schemas.

Services record them with :func:`record`, which names each event by its payload model, so a
payload cannot go out under another event's name. Consumers depend on the payloads as they are: the
gateway drops a client's cached status on ``client.revoked.v1`` and ``client.rotated.v1`` (by
``client_id``) and all of them on ``agency.status_changed.v1``; the exchange empties its directory
cache on ``agency.*`` and ``group.updated.v1``.

``python -m services.registry.events`` prints their JSON schemas (docs/registry.md shows them).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, PlainSerializer, RootModel

from services.registry.models import messaging
from shared.repository import Repository
from shared.types import AgencyStatus

# client.rotated.v1 has always carried Python's isoformat ("+00:00"), not pydantic's "Z"
IsoDateTime = Annotated[dt.datetime, PlainSerializer(dt.datetime.isoformat, return_type=str, when_used="json")]


class AgencySnapshot(BaseModel):
    """An agency as the API shows it (``GET /v1/agencies/{code}``), after the change."""

    id: uuid.UUID
    code: str
    new_code: str | None
    name: str
    short_name: str | None
    level: str
    parent_code: str | None
    status: AgencyStatus
    status_reason: str | None
    successor_code: str | None
    email: str | None
    phone: str | None
    address: str | None
    website: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class AgencyRef(BaseModel):
    code: str


class AgencyCreated(AgencySnapshot):
    """``agency.created.v1``: an agency was created (through the API or an import)."""


class AgencyFieldsUpdated(BaseModel):
    """Fields or the parent of an agency changed (through the API or an import); ``changed`` names them."""

    agency: AgencySnapshot
    changed: list[str]


class DeliveryEndpointState(BaseModel):
    mode: Literal["pull", "push", "amqp", "hub"]
    webhook_url: str | None
    amqp_queue: str | None


class DeliveryEndpointUpdated(BaseModel):
    """An agency chose how it receives (the webhook secret is never published)."""

    agency: AgencyRef
    changed: list[Literal["delivery_endpoint"]]
    delivery_endpoint: DeliveryEndpointState


class CertificatesUpdated(BaseModel):
    """A certificate was registered for an agency, or removed from it."""

    agency: AgencyRef
    changed: list[Literal["certificates"]]
    certificate_sha256: str


class AgencyUpdated(RootModel[AgencyFieldsUpdated | DeliveryEndpointUpdated | CertificatesUpdated]):
    """``agency.updated.v1``: an agency's fields, delivery endpoint or certificates changed."""


class AgencyStatusChanged(BaseModel):
    """``agency.status_changed.v1``: an agency was suspended, reactivated, or retired (with a successor)."""

    code: str
    previous_status: AgencyStatus
    status: AgencyStatus
    reason: str | None
    successor_code: str | None


class ApiClientCreated(BaseModel):
    """``client.created.v1``: an API client was issued for an agency (its secret is never published)."""

    client_id: str
    name: str
    agency_code: str | None
    scopes: list[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ApiClientRotated(BaseModel):
    """``client.rotated.v1``: a client got a new secret; its previous ones expire at the time given."""

    client_id: str
    previous_secrets_expire_at: IsoDateTime


class ApiClientRevoked(BaseModel):
    """``client.revoked.v1``: a client was revoked; its tokens are no longer honoured."""

    client_id: str
    agency_code: str | None


class UserUpdated(BaseModel):
    """``user.updated.v1``: a console user's role, status or password changed; the tokens of its
    open sessions (``client_id`` ``user:<name>``) are checked anew."""

    client_id: str
    username: str
    agency_code: str
    role: str
    status: str
    changed: list[str]


class GroupUpdated(BaseModel):
    """``group.updated.v1``: a recipient group was created, replaced or deleted."""

    name: str
    action: Literal["created", "updated", "deleted"]


EVENTS: dict[str, type[BaseModel]] = {
    "agency.created.v1": AgencyCreated,
    "agency.updated.v1": AgencyUpdated,
    "agency.status_changed.v1": AgencyStatusChanged,
    "client.created.v1": ApiClientCreated,
    "client.rotated.v1": ApiClientRotated,
    "client.revoked.v1": ApiClientRevoked,
    "group.updated.v1": GroupUpdated,
    "user.updated.v1": UserUpdated,
}
_NAMES = {model: name for name, model in EVENTS.items()}


def payload(event: BaseModel) -> dict[str, Any]:
    """Return an event's payload as it is published (JSON types)."""
    data: dict[str, Any] = event.model_dump(mode="json")
    return data


async def record(repository: Repository[Any], event: BaseModel, *, ordering_key: str) -> None:
    """Write an event to the outbox in the repository's transaction, under its payload model's name."""
    await repository.record_event(messaging, _NAMES[type(event)], payload(event), ordering_key=ordering_key)


if __name__ == "__main__":
    print(json.dumps({name: model.model_json_schema() for name, model in EVENTS.items()}, indent=2, ensure_ascii=False))
