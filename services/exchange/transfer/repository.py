"""SQL for transfers that failed: recorded once per feed entry, listed, re-sent."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.dialects import postgresql, sqlite

from services.exchange.models import Delivery, Document, TransferFailure
from shared.repository import Page, Repository


class TransferRepository(Repository[TransferFailure]):
    model = TransferFailure

    async def record(self, values: dict[str, object]) -> None:
        """Insert the failure of an entry, or refresh it when the entry failed before (a re-send)."""
        dialect = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(TransferFailure).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[TransferFailure.entry_id],
            set_={
                "reason": statement.excluded.reason,
                "attempts": statement.excluded.attempts,
                "failed_at": statement.excluded.failed_at,
                "target": statement.excluded.target,
                "channel": statement.excluded.channel,
                "resent_at": None,
            },
        )
        await self.session.execute(statement)

    async def page_of(
        self, *, agency_code: str | None, include_resent: bool, cursor: str | None, limit: int
    ) -> Page[TransferFailure]:
        """The failures, newest first (only those not re-sent since, unless ``include_resent``)."""
        query: Select[tuple[TransferFailure]] = select(TransferFailure)
        if agency_code is not None:
            query = query.where(TransferFailure.agency_code == agency_code)
        if not include_resent:
            query = query.where(TransferFailure.resent_at.is_(None))
        return await self.page(
            query, keys=[TransferFailure.failed_at, TransferFailure.id], cursor=cursor, limit=limit, descending=True
        )

    async def get_for_update(self, failure_id: uuid.UUID) -> TransferFailure | None:
        return await self.session.get(TransferFailure, failure_id, with_for_update=True)

    async def not_resent(self, agency_code: str | None, limit: int) -> Sequence[TransferFailure]:
        """Failures not re-sent since, oldest first (locked)."""
        query = select(TransferFailure).where(TransferFailure.resent_at.is_(None))
        if agency_code is not None:
            query = query.where(TransferFailure.agency_code == agency_code)
        query = query.order_by(TransferFailure.failed_at, TransferFailure.id).limit(limit).with_for_update()
        return (await self.session.execute(query)).scalars().all()

    async def delivery(self, delivery_id: uuid.UUID, *, for_update: bool = False) -> Delivery | None:
        """Return a delivery (locked with ``for_update``)."""
        return await self.session.get(Delivery, delivery_id, with_for_update=for_update)

    async def document(self, document_id: uuid.UUID) -> Document | None:
        return await self.session.get(Document, document_id)
