"""The signature policy of a send, and the verification of flagged documents just after it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.exchange.config import ExchangeSection, SignatureMode
from services.exchange.errors import DocumentNotFoundError, SignatureNotCheckableError, SignatureRequiredError
from services.exchange.events import DocumentSignatureChecked, DocumentSignaturePending, payload
from services.exchange.models import messaging
from services.exchange.signatures.client import SignatureCheck, SignatureClient, SignatureServiceUnavailable
from services.exchange.signatures.repository import PENDING, SignatureRepository
from services.exchange.signatures.schemas import SignatureCheckQueued, SignatureVerdictRead
from shared.db import Database
from shared.errors import DependencyUnavailableError
from shared.messaging import Envelope, RetryLater

log = logging.getLogger("lienthong.exchange.signatures")

__all__ = ["PENDING", "FlaggedVerifier", "MainFile", "SignaturePolicy", "SignatureService", "pending_event"]


@dataclass(frozen=True)
class MainFile:
    """The file whose signatures the policy is about: a document's first attachment (``path`` None
    while a send holds it in memory: only ``require`` reads it before the send, and has it on disk)."""

    path: Path | None
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
        if main_file.path is None:
            raise RuntimeError("the main file must be on disk to be verified before the send")
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
                f"A document of type {type_name} needs its signatures verified before it is sent, and the"
                " signature service is unavailable; retry later"
            ) from exc
        if check.verdict != "valid":
            raise SignatureRequiredError(
                f"A document of type {type_name} is sent only with a valid signature on its main file, and this one"
                f" is {check.verdict}: {'; '.join(check.reasons) or 'no reason given'}. Sign the file (the person who"
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
        if main_file.path is None:  # never: a stored attachment has its file
            raise RuntimeError(f"document {document_id}: no file to verify")
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
        async with self.database.session() as session:
            signatures = SignatureRepository(session)
            document = await signatures.get(document_id)
            if document is None or document.signature_verdict != PENDING:
                return None
            first = await signatures.main_file(document_id)
            if first is None:
                return None
            return document.sender_code, MainFile(self.blob_path(first.sha256), first.file_name, first.content_type)

    async def store(self, document_id: uuid.UUID, check: SignatureCheck) -> None:
        """Keep the verdict of a pending document (once: a redelivered message changes nothing)."""
        async with self.database.session() as session:
            signatures = SignatureRepository(session)
            sender_code = await signatures.settle(document_id, check.verdict, check.reasons, check.checked_at)
            if sender_code is None:
                return
            event = DocumentSignatureChecked(
                document_id=document_id,
                sender_code=sender_code,
                verdict=check.verdict,
                reasons=check.reasons,
                checked_at=check.checked_at,
                recipient_codes=await signatures.recipient_codes(document_id),
            )
            await signatures.record_event(
                messaging, "document.signature_checked.v1", payload(event), ordering_key=str(document_id)
            )
        log.info("document %s: signatures %s", document_id, check.verdict)


def pending_event(document_id: uuid.UUID, sender_code: str) -> tuple[str, dict[str, object], str]:
    """``document.signature_pending.v1``: the exchange's ``signature_checks`` queue verifies it."""
    event = DocumentSignaturePending(document_id=document_id, sender_code=sender_code)
    return "document.signature_pending.v1", payload(event), str(document_id)


class SignatureService:
    """A document's signatures verified again on an administrator's request."""

    def __init__(self, signatures: SignatureRepository) -> None:
        self.signatures = signatures

    async def check_again(self, document_id: uuid.UUID) -> SignatureCheckQueued:
        document = await self.signatures.get(document_id)
        if document is None:
            raise DocumentNotFoundError(f"No document {document_id}")
        if await self.signatures.main_file(document_id) is None:
            raise SignatureNotCheckableError(f"Document {document_id} has no file to verify")
        await self.signatures.mark_pending(document_id)
        await self.signatures.record_events(messaging, [pending_event(document_id, document.sender_code)])
        return SignatureCheckQueued(
            document_id=document_id, signature=SignatureVerdictRead(verdict="pending", reasons=[], checked_at=None)
        )
