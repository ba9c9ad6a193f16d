"""SQL for bulk import and export: the whole directory, read at once.

Writes go through the agency service (and so its repository): an import creates and updates
agencies by the same rules as the API."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from services.registry.models import Agency, AgencyLevel
from shared.repository import Repository


class TransferRepository(Repository[Agency]):
    model = Agency

    async def directory(self) -> Sequence[Agency]:
        """Return every agency, ordered by code."""
        return (await self.session.execute(select(Agency).order_by(Agency.code))).scalars().all()

    async def commit(self) -> None:
        """End the transaction so far (a batch of an import), giving the writer back; go on in a new one."""
        await self.session.commit()

    async def level_codes(self) -> set[str]:
        """Return the codes of the administrative levels."""
        return set((await self.session.execute(select(AgencyLevel.code))).scalars())
