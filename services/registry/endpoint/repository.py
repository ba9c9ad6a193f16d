"""SQL for delivery endpoints (one row per agency that chose one; none means pull)."""

from __future__ import annotations

from services.registry.models import DeliveryEndpoint
from shared.repository import Repository


class EndpointRepository(Repository[DeliveryEndpoint]):
    model = DeliveryEndpoint
