"""The registry's message handlers: the audit chain's single writer, appending every service's
``audit.recorded.v1`` events (each message once: the batch consumer records its id as processed in
the same transaction as the entries)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.dependencies import RegistryRuntime, audit_service
from shared.audit import AUDIT_EVENT
from shared.messaging import Envelope
from shared.service import BatchConsumer

# how long a batch of audit events waits for more once its first arrived: the chain's writer pays
# for the head's lock, the anchor check and the commit once per batch, and an entry has no reader
# waiting for it within a second
AUDIT_LINGER_SECONDS = 0.25


def audit_consumer(runtime: RegistryRuntime) -> BatchConsumer:
    """The consumer that appends audit events to the chain, in batches (reads are many)."""

    async def append(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        await audit_service(session, runtime).append(envelopes)

    handler: Callable[[AsyncSession, Sequence[Envelope]], Awaitable[None]] = append
    return BatchConsumer("audit", (AUDIT_EVENT,), handler, size=200, linger_seconds=AUDIT_LINGER_SECONDS)
