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


class Outcome(StrEnum):
    """What a recipient's report did to its delivery."""

    APPLIED = "applied"  # the delivery moved to the reported status (or answered a recall / an update)
    REPEATED = "repeated"  # a further 04/05 with its note: logged, the status stays
    STALE = "stale"  # older (by the reporter's own timestamp) than the report stored: logged, nothing changes


# Who moves a delivery forward is its recipient; these are the steps it may take. Real traffic
# skips steps: a registered document may be reported in progress or completed at once (03→05,
# 03→06), an assigned one completed (04→06).
TRANSITIONS: dict[StatusCode, tuple[StatusCode, ...]] = {
    StatusCode.PENDING: (StatusCode.ARRIVED,),
    StatusCode.ARRIVED: (StatusCode.REJECTED, StatusCode.ACCEPTED),
    StatusCode.ACCEPTED: (StatusCode.ASSIGNED, StatusCode.PROCESSING, StatusCode.COMPLETED),
    StatusCode.ASSIGNED: (StatusCode.PROCESSING, StatusCode.COMPLETED),
    StatusCode.PROCESSING: (StatusCode.COMPLETED,),
    StatusCode.REJECTED: (),
    StatusCode.COMPLETED: (),
}

# A further 04 (re-assigned) or 05 (a progress note) while the delivery is assigned or in progress
# is logged with its note; the status does not move (and never back).
REPEATABLE: dict[StatusCode, tuple[StatusCode, ...]] = {
    StatusCode.ASSIGNED: (StatusCode.ASSIGNED,),
    StatusCode.PROCESSING: (StatusCode.ASSIGNED, StatusCode.PROCESSING),
}

# The recall answers are a second, separate state of a delivery (``recall_status``): 13 is set by
# the sender; the recipient then answers 15 or 16 before reporting anything else. The same codes
# answer an update or a replacement (``update_answer``), once, on the new document's delivery.
RECALL_ANSWERS = (StatusCode.RECALL_AGREED, StatusCode.RECALL_REFUSED)
REPORTABLE = tuple(code for code in StatusCode if code not in (StatusCode.PENDING, StatusCode.RECALL_REQUESTED))

# A delivery in one of these statuses is done with: it is never overdue.
FINISHED = (StatusCode.COMPLETED, StatusCode.REJECTED)

# Decree 30 (Art. 4): a received document is registered (03) or passed on / returned (02) by its
# deadline (``arrival_deadline``); until then, in one of these statuses, it can be late.
UNREGISTERED = (StatusCode.PENDING, StatusCode.ARRIVED)


def is_overdue(delivery: Delivery, now: dt.datetime, today: dt.date) -> bool:
    """Whether a delivery was not registered (03) or returned (02) by its deadline, or not completed
    by its due date."""
    if delivery.recall_status == StatusCode.RECALL_AGREED:
        return False
    if delivery.status in UNREGISTERED and delivery.arrival_deadline < now:
        return True
    return delivery.status not in FINISHED and delivery.due_date is not None and delivery.due_date < today
