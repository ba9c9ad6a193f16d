"""The signature policy of a send, and the verification of flagged documents just after it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.exchange.config import ExchangeSection, SignatureMode
from services.exchange.errors import SignatureRequiredError
from services.exchange.events import DocumentSignatureChecked, payload
from services.exchange.models import messaging
from services.exchange.signatures.client import SignatureCheck, SignatureClient, SignatureServiceUnavailable
from shared.db import Database
from shared.errors import DependencyUnavailableError
from shared.messaging import Envelope, RetryLater

log = logging.getLogger("lienthong.exchange.signatures")

PENDING = "pending"


@dataclass(frozen=True)
class MainFile:
    """The file whose signatures the policy is about: a document's first attachment."""

    path: Path
    file_name: str
    content_type: str


@dataclass(frozen=True)
class InitialVerdict:
    """What a document is stored with: a verdict (``pending`` for a flagged one), or None (off)."""

    verdict: str | None
    check: SignatureCheck | None = None


class SignaturePolicy:
    """Per document type: ``require`` (verified before the send, refused unless valid), ``flag``
    (accepted, verified just after), ``off``."""

    def __init__(self, config: ExchangeSection, client: SignatureClient | None) -> None:
        self.config = config
        self.client = client

    def mode(self, type_name: str) -> SignatureMode:
        return self.config.signature_mode(type_name)

    async def before_send(self, *, type_name: str, sender_code: str, main_file: MainFile | None) -> InitialVerdict:
        """The verdict a document is stored with; under ``require`` the send is refused (422) unless
        the main file's signatures are valid, and waits (503) while the signature service is down."""
        mode = self.mode(type_name)
        if mode == "off" or main_file is None:
            return InitialVerdict(None)
        if mode == "flag":
            return InitialVerdict(PENDING)
        if self.client is None:
            raise DependencyUnavailableError("The signature service is not reachable yet; retry later")
        try:
            check = await self.client.verify(
                main_file.path,
                file_name=main_file.file_name,
                content_type=main_file.content_type,
                sender_code=sender_code,
            )
        except SignatureServiceUnavailable as exc:
            log.warning("a %s could not be verified before its send: %s", type_name, exc)
            raise DependencyUnavailableError(
                f"A {type_name} needs its signatures verified before it is sent, and the signature service is"
                " unavailable; retry later"
            ) from exc
        if check.verdict != "valid":
            raise SignatureRequiredError(
                f"A {type_name} is sent only with a valid signature on its main file, and this one is"
                f" {check.verdict}: {'; '.join(check.reasons) or 'no reason given'}. Sign the file (the person who"
                " signs, then the agency's seal) and send it again",
                verdict=check.verdict,
                reasons=check.reasons,
            )
        return InitialVerdict(check.verdict, check)


class FlaggedVerifier:
    """The ``signature_checks`` work queue: a flagged document's main file verified after its send,
    the verdict stored once and announced (``document.signature_checked.v1``)."""

    def __init__(self, database: Database, blob_path: Callable[[str], Path], client: SignatureClient) -> None:
        self.database = database
        self.blob_path = blob_path
        self.client = client

    async def handle(self, envelope: Envelope) -> None:
        document_id = uuid.UUID(str(envelope.data["document_id"]))
        found = await self._pending(document_id)
        if found is None:  # verified already (a redelivery), or gone
            return
        sender_code, main_file = found
        try:
            check = await self.client.verify(
                main_file.path,
                file_name=main_file.file_name,
                content_type=main_file.content_type,
                sender_code=sender_code,
            )
        except SignatureServiceUnavailable as exc:
            raise RetryLater(str(exc)) from exc
        await self.store(document_id, check)

    async def on_dead(self, envelope: Envelope, reason: str) -> None:
        """Every try failed: the verdict is indeterminate, and says why."""
        document_id = uuid.UUID(str(envelope.data["document_id"]))
        reason = f"the signature service could not verify the file ({reason}); an administrator can check it again"
        await self.store(document_id, SignatureCheck("indeterminate", [reason]))

    async def _pending(self, document_id: uuid.UUID) -> tuple[str, MainFile] | None:
        from services.exchange.document.repository import DocumentRepository

        async with self.database.session() as session:
            documents = DocumentRepository(session)
            document = await documents.get(document_id)
            if document is None or document.signature_verdict != PENDING:
                return None
            attachments = await documents.attachments(document_id)
            if not attachments:
                return None
            first = attachments[0]
            return document.sender_code, MainFile(self.blob_path(first.sha256), first.file_name, first.content_type)

    async def store(self, document_id: uuid.UUID, check: SignatureCheck) -> None:
        """Keep the verdict of a pending document (once: a redelivered message changes nothing)."""
        from services.exchange.delivery.repository import DeliveryRepository
        from services.exchange.document.repository import DocumentRepository

        async with self.database.session() as session:
            documents = DocumentRepository(session)
            sender_code = await documents.settle_signature(document_id, check.verdict, check.reasons, check.checked_at)
            if sender_code is None:
                return
            recipients = [d.recipient_code for d in await DeliveryRepository(session).of_document(document_id)]
            event = DocumentSignatureChecked(
                document_id=document_id,
                sender_code=sender_code,
                verdict=check.verdict,
                reasons=check.reasons,
                checked_at=check.checked_at,
                recipient_codes=recipients,
            )
            await documents.record_event(
                messaging, "document.signature_checked.v1", payload(event), ordering_key=str(document_id)
            )
        log.info("document %s: signatures %s", document_id, check.verdict)
