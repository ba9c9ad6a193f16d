"""Delivery endpoint bodies."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

DeliveryMode = Literal["pull", "push", "amqp", "hub"]


class EndpointUpdate(BaseModel):
    """How the agency receives. ``push`` needs ``webhook_url``; a signing secret is generated (and
    shown once) unless given; ``amqp`` needs ``amqp_queue`` on the provincial bus; ``hub`` (an
    agency outside the province, reached through the national hub: registry admin only) takes
    nothing more. Which webhook
    URLs a deployment accepts is the endpoint service's rule (``LIENTHONG_WEBHOOKS__*``)."""

    model_config = ConfigDict(extra="forbid")

    mode: DeliveryMode
    webhook_url: HttpUrl | None = None
    webhook_secret: str | None = Field(default=None, min_length=32, max_length=200)
    amqp_queue: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}$")

    @model_validator(mode="after")
    def _complete(self) -> EndpointUpdate:
        """Refuse a mode without what it needs, or with what belongs to another mode."""
        if self.mode == "push" and self.webhook_url is None:
            raise ValueError("push delivery needs webhook_url")
        if self.mode == "amqp" and not self.amqp_queue:
            raise ValueError("amqp delivery needs amqp_queue")
        if self.mode != "push" and (self.webhook_url or self.webhook_secret):
            raise ValueError("webhook_url and webhook_secret belong to push delivery only")
        if self.mode != "amqp" and self.amqp_queue:
            raise ValueError("amqp_queue belongs to amqp delivery only")
        return self


class EndpointRead(BaseModel):
    agency_code: str
    mode: DeliveryMode
    webhook_url: str | None
    has_webhook_secret: bool
    amqp_queue: str | None
    updated_at: dt.datetime | None


class EndpointChanged(EndpointRead):
    webhook_secret: str | None = Field(default=None, description="Shown once, when generated")


class EndpointInternal(EndpointRead):
    """What the exchange needs to deliver (secret included): internal callers only."""

    webhook_secret: str | None
