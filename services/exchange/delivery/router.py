"""Delivery endpoints: the recipient reports its processing status."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from services.exchange.delivery.schemas import StatusReport, StatusReported
from services.exchange.dependencies import DeliveryServiceDep
from shared.auth import Principal, Scope, agency_of, require_scope

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])
ReceiverDep = Annotated[Principal, require_scope(Scope.RECEIVE)]


@router.post("/{delivery_id}/status", response_model=StatusReported)
async def report_status(
    delivery_id: uuid.UUID, body: StatusReport, deliveries: DeliveryServiceDep, principal: ReceiverDep
) -> StatusReported:
    """Report a national status (01 arrived … 06 completed) for a delivery addressed to your agency,
    or answer a recall, an update or a replacement (15 agreed, 16 refused).

    Forward jumps (03→05, 03→06, 04→06) move the delivery; a further 04/05 is logged with its note
    (`outcome: repeated`); a report whose `timestamp` is older than the latest one counted is
    recorded and changes nothing (`outcome: stale`, still 200). Other out-of-order statuses are
    refused with 409 and the allowed next statuses.
    """
    return await deliveries.report_status(agency_of(principal), delivery_id, body, actor=principal.client_id)
