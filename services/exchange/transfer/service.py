"""Rules for failed transfers: when a webhook or bus queue did not take a feed entry after every
try, the failure is recorded once, the delivery is marked, and the sender is told in its own feed;
a registry admin lists failures and re-sends them (the entry keeps its id: receivers dedupe by it)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from services.exchange.errors import TransferFailureNotFoundError
from services.exchange.events import DeliveryTransferFailed, FeedEntryAdded, payload
from services.exchange.feed.repository import FeedRepository
from services.exchange.feed.service import DispatchRule, FeedService, entry_read, transfer_failed_entry
from services.exchange.models import TransferFailure, messaging
from services.exchange.transfer.repository import TransferRepository
from services.exchange.transfer.schemas import Resent, TransferFailurePage, TransferFailureRead
from shared.db import new_id, utcnow


def failure_read(failure: TransferFailure) -> TransferFailureRead:
    """Show a failed transfer."""
    return TransferFailureRead.model_validate(failure, from_attributes=True)


class TransferService:
    def __init__(
        self, *, transfers: TransferRepository, feed: FeedRepository, rule: DispatchRule | None = None
    ) -> None:
        self.transfers = transfers
        self.feed_repository = feed
        self.feed = FeedService(feed, rule)

    async def record_failure(
        self, entry: FeedEntryAdded, *, channel: str, target: str | None, attempts: int, reason: str
    ) -> None:
        """Record that ``entry`` was not taken; for a delivery, mark it and tell the sender."""
        now = utcnow()
        await self.transfers.record(
            {
                "id": new_id(),
                "entry_id": entry.id,
                "agency_code": entry.agency_code,
                "channel": channel,
                "target": target,
                "entry_type": entry.type,
                "document_id": entry.document_id,
                "delivery_id": entry.delivery_id,
                "attempts": attempts,
                "reason": reason,
                "failed_at": now,
                "resend_count": 0,
            }
        )
        failed = DeliveryTransferFailed(
            entry_id=entry.id,
            agency_code=entry.agency_code,
            channel=channel,
            entry_type=entry.type,
            document_id=entry.document_id,
            delivery_id=entry.delivery_id,
            attempts=attempts,
            reason=reason,
        )
        await self.transfers.record_event(
            messaging, "delivery.transfer_failed.v1", payload(failed), ordering_key=str(entry.document_id)
        )
        if entry.type != "delivery.received" or entry.delivery_id is None:
            return  # a status or a notice the sender's own channel refused: nobody else to tell
        delivery = await self.transfers.delivery(entry.delivery_id, for_update=True)
        document = await self.transfers.document(entry.document_id)
        if delivery is None or document is None:
            return
        delivery.transfer_failed_at = now
        delivery.transfer_error = reason[:2000]
        await self.feed.add(
            [
                transfer_failed_entry(
                    document.sender_code, delivery, channel=channel, attempts=attempts, reason=reason, at=now
                )
            ]
        )

    async def failures(
        self, *, agency_code: str | None, include_resent: bool, cursor: str | None, limit: int
    ) -> TransferFailurePage:
        """List failed transfers, newest first."""
        page = await self.transfers.page_of(
            agency_code=agency_code, include_resent=include_resent, cursor=cursor, limit=limit
        )
        return TransferFailurePage(items=[failure_read(f) for f in page.rows], next_cursor=page.next_cursor)

    async def resend(self, failure_id: uuid.UUID) -> Resent:
        """Queue one failed entry again (the same entry id; a fresh series of tries)."""
        failure = await self.transfers.get_for_update(failure_id)
        if failure is None:
            raise TransferFailureNotFoundError(f"No failed transfer {failure_id}")
        return await self._resend([failure])

    async def resend_all(self, *, agency_code: str | None, limit: int) -> Resent:
        """Queue again every failed entry not re-sent since (of one agency, or all)."""
        return await self._resend(await self.transfers.not_resent(agency_code, limit))

    async def _resend(self, failures: Sequence[TransferFailure]) -> Resent:
        now = utcnow()
        resent: list[uuid.UUID] = []
        for failure in failures:
            entry = await self.feed_repository.entry(failure.entry_id)
            if entry is None:
                continue
            resent.append(failure.id)
            failure.resent_at = now
            failure.resend_count += 1
            if failure.delivery_id is not None:
                delivery = await self.transfers.delivery(failure.delivery_id)
                if delivery is not None:
                    delivery.transfer_failed_at = None
                    delivery.transfer_error = None
            await self.transfers.record_event(
                messaging,
                "feed.entry_added.v1",
                payload(entry_read(entry)),
                ordering_key=f"feed:{entry.agency_code}",
            )
        await self.transfers.flush()
        return Resent(resent=resent)
