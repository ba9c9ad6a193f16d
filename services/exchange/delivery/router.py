"""Delivery endpoints: the recipient reports its processing status."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from services.exchange.delivery.schemas import StatusReport, StatusReported
from services.exchange.dependencies import DeliveryServiceDep, StatusPacketServiceDep
from services.exchange.document.router import read_limited
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


WrapperQuery = Annotated[Literal["edxml", "soap"], Query(description="the envelope the reader's system expects")]
STATUS_PACKET_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/xml": {
                "schema": {"type": "string", "format": "binary"},
                "description": "An edXML status packet, in an edXML envelope or a SOAP envelope (Header/Status)",
            }
        },
    }
}


@router.post("/status-packets", response_model=StatusReported, openapi_extra=STATUS_PACKET_BODY)
async def report_status_packet(
    request: Request, packets: StatusPacketServiceDep, principal: ReceiverDep
) -> StatusReported:
    """Report a status as an edXML status packet (QCVN 102), in either wrapper seen in the wild.

    `ResponseFor` names the document by its sender (`OrganId`) and edXML `DocumentId`; `From` must be
    your agency. The report is applied exactly as `POST /v1/deliveries/{id}/status` applies it, with
    the packet's `Timestamp` and `StaffInfo`; a national 03 / 02 answering a pending recall is 15 / 16.
    A wrong element is named in the problem."""
    body = await read_limited(request.stream(), packets.max_packet_bytes)
    return await packets.take(body, agency_of(principal), actor=principal.client_id)


@router.get(
    "/{delivery_id}/status-packet",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}, "description": "The latest status as a status packet"}},
)
async def export_status_packet(
    delivery_id: uuid.UUID,
    packets: StatusPacketServiceDep,
    principal: ReceiverDep,
    wrapper: Annotated[
        Literal["edxml", "soap"], Query(description="the envelope the reader's system expects")
    ] = "edxml",
) -> Response:
    """A delivery's latest reported status as an edXML status packet, for the document's sender (or
    its recipient): national codes, the reporter's own time and StaffInfo. 404 before any report."""
    data = await packets.export(delivery_id, agency_of(principal), wrapper)
    return Response(data, media_type="application/xml", headers={"X-Content-Type-Options": "nosniff"})
