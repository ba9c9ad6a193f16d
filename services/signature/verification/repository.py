"""SQL of a verification: the trust store as the workers get it."""

from __future__ import annotations

from sqlalchemy import select

from services.signature.models import TrustCertificate, TrustCrl, TrustStoreVersion
from shared.repository import Repository


class VerificationRepository(Repository[TrustCertificate]):
    model = TrustCertificate

    async def current_version(self) -> int:
        """Return the trust store's version number."""
        return int((await self.session.execute(select(TrustStoreVersion.version))).scalar_one())

    async def material(self) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """Return every root, intermediate and CRL (DER); read after the version."""
        certs = (
            await self.session.execute(
                select(TrustCertificate.kind, TrustCertificate.der).order_by(TrustCertificate.created_at)
            )
        ).all()
        crls = (await self.session.execute(select(TrustCrl.der).order_by(TrustCrl.this_update))).scalars().all()
        roots = [der for kind, der in certs if kind == "root"]
        intermediates = [der for kind, der in certs if kind == "intermediate"]
        return roots, intermediates, list(crls)
