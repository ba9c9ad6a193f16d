"""SQL for agency certificates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from services.registry.models import AgencyCertificate
from shared.repository import Repository


class CertificateRepository(Repository[AgencyCertificate]):
    model = AgencyCertificate

    async def by_fingerprint(self, agency_id: uuid.UUID, sha256: str) -> AgencyCertificate | None:
        """Return the agency's certificate with this SHA-256 fingerprint, or None."""
        query = select(AgencyCertificate).where(
            AgencyCertificate.agency_id == agency_id, AgencyCertificate.sha256 == sha256
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def of_agency(self, agency_id: uuid.UUID) -> Sequence[AgencyCertificate]:
        """Return an agency's certificates, oldest first."""
        query = (
            select(AgencyCertificate)
            .where(AgencyCertificate.agency_id == agency_id)
            .order_by(AgencyCertificate.created_at)
        )
        return (await self.session.execute(query)).scalars().all()

    async def remove(self, certificate: AgencyCertificate) -> None:
        """Delete a certificate."""
        await self.session.delete(certificate)
        await self.session.flush()
