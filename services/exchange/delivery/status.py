"""The national status codes of a delivery, the order they may follow each other, and when a
delivery is overdue."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from services.exchange.models import Delivery


class StatusCode(StrEnum):
    PENDING = "pending"  # sent, not yet reported arrived by the recipient's system
    ARRIVED = "01"
    REJECTED = "02"
    ACCEPTED = "03"
    ASSIGNED = "04"
    PROCESSING = "05"
    COMPLETED = "06"
    RECALL_REQUESTED = "13"
    RECALL_AGREED = "15"
    RECALL_REFUSED = "16"


# Who moves a delivery forward is its recipient; these are the steps it may take.
TRANSITIONS: dict[StatusCode, tuple[StatusCode, ...]] = {
    StatusCode.PENDING: (StatusCode.ARRIVED,),
    StatusCode.ARRIVED: (StatusCode.REJECTED, StatusCode.ACCEPTED),
    StatusCode.ACCEPTED: (StatusCode.ASSIGNED,),
    StatusCode.ASSIGNED: (StatusCode.PROCESSING,),
    StatusCode.PROCESSING: (StatusCode.COMPLETED,),
    StatusCode.REJECTED: (),
    StatusCode.COMPLETED: (),
}

# The recall answers are a second, separate state of a delivery (``recall_status``): 13 is set by
# the sender; the recipient then answers 15 or 16 before reporting anything else.
RECALL_ANSWERS = (StatusCode.RECALL_AGREED, StatusCode.RECALL_REFUSED)
REPORTABLE = tuple(code for code in StatusCode if code not in (StatusCode.PENDING, StatusCode.RECALL_REQUESTED))

# A delivery in one of these statuses is done with: it is never overdue.
FINISHED = (StatusCode.COMPLETED, StatusCode.REJECTED)


def is_overdue(delivery: Delivery, now: dt.datetime, today: dt.date) -> bool:
    """Whether a delivery was not reported arrived by its deadline, or not completed by its due date."""
    if delivery.recall_status == StatusCode.RECALL_AGREED:
        return False
    if delivery.status == StatusCode.PENDING and delivery.arrival_deadline < now:
        return True
    return delivery.status not in FINISHED and delivery.due_date is not None and delivery.due_date < today
