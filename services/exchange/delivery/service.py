"""Rules for a delivery's life: only its recipient reports, in the national order (forward jumps
allowed, a further 04/05 logged without moving), a report older than the one stored changes
nothing, and a pending recall (13) is answered (15 agreed, 16 refused) before anything else; the
same 15/16 answer an update or a replacement, once."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Literal

from services.exchange.delivery.repository import DeliveryRepository
from services.exchange.delivery.schemas import StatusReport, StatusReported
from services.exchange.delivery.status import RECALL_ANSWERS, REPEATABLE, TRANSITIONS, Outcome, StatusCode
from services.exchange.document.repository import DocumentRepository
from services.exchange.errors import DeliveryNotFoundError, DeliveryTransitionError, MetadataInvalidError
from services.exchange.events import DeliveryStatusChanged, DocumentRecalled, StaffInfo, payload
from services.exchange.feed.service import FeedService, status_entry
from services.exchange.models import Delivery, DeliveryEvent, Document, messaging
from shared.audit import record_audit
from shared.db import utcnow

Track = Literal["status", "recall", "update"]


@dataclass(frozen=True)
class Decision:
    """What a report does: the state it is compared with, its outcome, and which state it moves
    (the delivery's status, its recall answer, or its answer to an update / replacement)."""

    previous: str
    outcome: Outcome
    track: Track


async def record_status_change(
    deliveries: DeliveryRepository,
    delivery: Delivery,
    document: Document,
    *,
    previous: str,
    status: StatusCode,
    actor_code: str,
    note: str | None,
    at: dt.datetime,
    outcome: Outcome | None = None,
    answers: Literal["recall", "update"] | None = None,
    timestamp: dt.datetime | None = None,
    staff: StaffInfo | None = None,
) -> None:
    """Write a change of a delivery to its history and to the outbox (``delivery.status_changed.v1``)."""
    delivery.updated_at = at
    await deliveries.add_history([history_event(delivery, status, actor_code, note, at, outcome, timestamp, staff)])
    changed = DeliveryStatusChanged(
        delivery_id=delivery.id,
        document_id=document.id,
        sender_code=document.sender_code,
        recipient_code=delivery.recipient_code,
        previous_status=previous,
        status=status.value,
        actor_code=actor_code,
        note=note,
        occurred_at=at,
        outcome=outcome.value if outcome else None,
        answers=answers,
        timestamp=timestamp,
        staff=staff,
    )
    await deliveries.record_event(
        messaging, "delivery.status_changed.v1", payload(changed), ordering_key=str(document.id)
    )


def history_event(
    delivery: Delivery,
    status: StatusCode,
    actor_code: str,
    note: str | None,
    at: dt.datetime,
    outcome: Outcome | None,
    timestamp: dt.datetime | None,
    staff: StaffInfo | None,
) -> DeliveryEvent:
    """One line of a delivery's history."""
    return DeliveryEvent(
        delivery_id=delivery.id,
        status=status.value,
        actor_code=actor_code,
        note=note,
        created_at=at,
        outcome=outcome.value if outcome else None,
        reported_at=timestamp,
        staff=staff.model_dump(exclude_none=True) if staff else None,
    )


def accepted_next(current: StatusCode) -> list[str]:
    """The codes a recipient may report in this status (moves and repeats), in code order."""
    return sorted({code.value for code in (*TRANSITIONS[current], *REPEATABLE.get(current, ()))})


def decide(
    *, delivery: Delivery, kind: str, wanted: StatusCode, note: str | None, timestamp: dt.datetime | None
) -> Decision:
    """Tell what a report does to a delivery; refuse one that cannot follow its current state."""
    recall_pending = delivery.recall_status == StatusCode.RECALL_REQUESTED
    if recall_pending:
        if wanted not in RECALL_ANSWERS:
            raise DeliveryTransitionError(
                f"A delivery in status {StatusCode.RECALL_REQUESTED.value} cannot move to {wanted.value}"
                " (answer the recall first)",
                current_status=StatusCode.RECALL_REQUESTED.value,
                allowed_next=[code.value for code in RECALL_ANSWERS],
            )
        return Decision(StatusCode.RECALL_REQUESTED.value, Outcome.APPLIED, "recall")
    current = StatusCode(delivery.status)
    if wanted in RECALL_ANSWERS:
        if kind in ("update", "replace") and delivery.update_answer is None:
            return Decision(current.value, Outcome.APPLIED, "update")
        raise DeliveryTransitionError(
            f"Document {delivery.document_id} was answered {delivery.update_answer} already: 15 and 16 answer an"
            " update or a replacement once"
            if delivery.update_answer
            else "No recall is pending on this delivery: 15 and 16 answer a recall (13), an update or a replacement",
            current_status=current.value,
            allowed_next=accepted_next(current),
        )
    if timestamp is not None and delivery.reported_at is not None and timestamp < delivery.reported_at:
        return Decision(current.value, Outcome.STALE, "status")
    if wanted in TRANSITIONS[current]:
        outcome = Outcome.APPLIED
    elif wanted in REPEATABLE.get(current, ()):
        outcome = Outcome.REPEATED
    else:
        raise DeliveryTransitionError(
            f"A delivery in status {current.value} cannot move to {wanted.value}",
            current_status=current.value,
            allowed_next=accepted_next(current),
        )
    if wanted is StatusCode.REJECTED and not (note and note.strip()):
        raise MetadataInvalidError("Status 02 (rejected) needs a reason in `note`")
    return Decision(current.value, outcome, "status")


class DeliveryService:
    def __init__(self, *, deliveries: DeliveryRepository, documents: DocumentRepository, feed: FeedService) -> None:
        self.deliveries = deliveries
        self.documents = documents
        self.feed = feed

    async def report_status(
        self, recipient_code: str, delivery_id: uuid.UUID, report: StatusReport, *, actor: str | None = None
    ) -> StatusReported:
        """Apply a recipient's report to its delivery and record it for the sender (outbox, feed) and
        in the audit trail (``actor``: the API client; None over the provincial bus). A repeated
        04/05 is logged without moving; a stale report is only kept in the history."""
        delivery = await self.deliveries.get_for_update(delivery_id)
        if (
            delivery is None
            or delivery.recipient_code != recipient_code
            or delivery.recall_status == StatusCode.RECALL_AGREED
        ):
            raise DeliveryNotFoundError(f"No delivery {delivery_id} is addressed to {recipient_code}")
        document = await self.documents.get(delivery.document_id)
        assert document is not None
        wanted = StatusCode(report.status)
        decision = decide(
            delivery=delivery, kind=document.kind, wanted=wanted, note=report.note, timestamp=report.timestamp
        )
        now = utcnow()
        if decision.outcome is Outcome.STALE:
            await self.deliveries.add_history(
                [
                    history_event(
                        delivery,
                        wanted,
                        recipient_code,
                        report.note,
                        now,
                        decision.outcome,
                        report.timestamp,
                        report.staff,
                    )
                ]
            )
        else:
            await self.apply(delivery, document, report, wanted=wanted, decision=decision, now=now)
        await record_audit(
            self.deliveries,
            messaging,
            "delivery.status_reported",
            actor=actor,
            agency_code=recipient_code,
            document_id=document.id,
            target=delivery.id,
            details={"previous_status": decision.previous, "status": wanted.value, "outcome": decision.outcome.value},
        )
        return StatusReported(
            delivery_id=delivery.id,
            document_id=document.id,
            recipient_code=recipient_code,
            previous_status=decision.previous,
            status=wanted.value,
            outcome=decision.outcome.value,
            timestamp=report.timestamp,
            updated_at=now,
        )

    async def apply(
        self,
        delivery: Delivery,
        document: Document,
        report: StatusReport,
        *,
        wanted: StatusCode,
        decision: Decision,
        now: dt.datetime,
    ) -> None:
        """Move the delivery (or record its answer), and tell the sender: history, outbox, feed."""
        answers: Literal["recall", "update"] | None = None
        if decision.track == "recall":
            answers = "recall"
            delivery.recall_status = wanted.value
            if wanted is StatusCode.RECALL_AGREED:
                delivery.recalled_at = now
        elif decision.track == "update":
            answers = "update"
            delivery.update_answer = wanted.value
        else:
            if decision.outcome is Outcome.APPLIED:
                delivery.status = wanted.value
            if report.timestamp is not None and (
                delivery.reported_at is None or report.timestamp > delivery.reported_at
            ):
                delivery.reported_at = report.timestamp
        await record_status_change(
            self.deliveries,
            delivery,
            document,
            previous=decision.previous,
            status=wanted,
            actor_code=delivery.recipient_code,
            note=report.note,
            at=now,
            outcome=decision.outcome,
            answers=answers,
            timestamp=report.timestamp,
            staff=report.staff,
        )
        await self.feed.add(
            [
                status_entry(
                    document,
                    delivery,
                    previous=decision.previous,
                    status=wanted.value,
                    note=report.note,
                    at=now,
                    outcome="repeated" if decision.outcome is Outcome.REPEATED else "applied",
                    answers=answers,
                    timestamp=report.timestamp,
                    staff=report.staff,
                )
            ]
        )
        if wanted is StatusCode.RECALL_AGREED and decision.track == "recall":
            recalled = DocumentRecalled(
                document_id=document.id,
                delivery_id=delivery.id,
                sender_code=document.sender_code,
                recipient_code=delivery.recipient_code,
                recalled_at=now,
            )
            await self.deliveries.record_event(
                messaging, "document.recalled.v1", payload(recalled), ordering_key=str(document.id)
            )
