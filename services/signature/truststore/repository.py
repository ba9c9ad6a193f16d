"""SQL for the trust store: its certificates, CRLs, version and change history."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select, update

from services.signature.models import TrustCertificate, TrustChange, TrustCrl, TrustStoreVersion
from shared.db import utcnow
from shared.repository import Page, Repository


class TrustStoreRepository(Repository[TrustCertificate]):
    model = TrustCertificate

    async def version(self) -> TrustStoreVersion:
        """Return the version row (made by the migration)."""
        row = (await self.session.execute(select(TrustStoreVersion).where(TrustStoreVersion.id == 1))).scalar_one()
        return row

    async def current_version(self) -> int:
        """Return the trust store's version number."""
        return int((await self.session.execute(select(TrustStoreVersion.version))).scalar_one())

    async def next_version(self) -> int:
        """Increment the version (the row lock orders concurrent changes) and return it."""
        query = (
            update(TrustStoreVersion)
            .where(TrustStoreVersion.id == 1)
            .values(version=TrustStoreVersion.version + 1, changed_at=utcnow())
            .returning(TrustStoreVersion.version)
        )
        return int((await self.session.execute(query)).scalar_one())

    async def certificate_by_fingerprint(self, sha256: str) -> TrustCertificate | None:
        query = select(TrustCertificate).where(TrustCertificate.sha256 == sha256)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def crl_by_fingerprint(self, sha256: str) -> TrustCrl | None:
        return (await self.session.execute(select(TrustCrl).where(TrustCrl.sha256 == sha256))).scalar_one_or_none()

    async def get_crl(self, crl_id: uuid.UUID) -> TrustCrl | None:
        row: TrustCrl | None = await self.session.get(TrustCrl, crl_id)
        return row

    async def add_crl(self, crl: TrustCrl) -> None:
        self.session.add(crl)
        await self.session.flush()

    async def add_change(self, change: TrustChange) -> None:
        self.session.add(change)
        await self.session.flush()

    async def remove(self, row: TrustCertificate | TrustCrl) -> None:
        await self.session.execute(delete(type(row)).where(type(row).id == row.id))

    async def certificates_page(self, *, kind: str | None, cursor: str | None, limit: int) -> Page[TrustCertificate]:
        query = select(TrustCertificate)
        if kind is not None:
            query = query.where(TrustCertificate.kind == kind)
        return await self.page(
            query, keys=[TrustCertificate.created_at, TrustCertificate.id], cursor=cursor, limit=limit
        )

    async def crls_page(self, *, cursor: str | None, limit: int) -> Page[TrustCrl]:
        return await self.page(select(TrustCrl), keys=[TrustCrl.created_at, TrustCrl.id], cursor=cursor, limit=limit)

    async def changes_page(self, *, cursor: str | None, limit: int) -> Page[TrustChange]:
        return await self.page(
            select(TrustChange), keys=[TrustChange.at, TrustChange.id], cursor=cursor, limit=limit, descending=True
        )

    async def counts(self) -> dict[str, int]:
        """Return how many roots, intermediates and CRLs the store holds."""
        rows = (
            await self.session.execute(select(TrustCertificate.kind, func.count()).group_by(TrustCertificate.kind))
        ).all()
        counts = {str(kind): int(n) for kind, n in rows}
        counts["crl"] = int((await self.session.execute(select(func.count()).select_from(TrustCrl))).scalar_one())
        return counts
