"""The hub connector: the province's side of the national document hub (docs/interop.md).

Outbound, it is a work queue on ``hub.entry_forwarded.v1`` (``hub.outbound``, the dispatcher's
retry schedule): the exchange's dispatcher forwards the ``feed.entry_added.v1`` of an agency whose
delivery endpoint is ``hub``, and such an entry is

- ``delivery.received`` (a local agency sent it a document): the document becomes an edXML
  packet, signed with the province's seal, and goes to the hub (``sendEdoc``); the hub's message
  id is kept with the delivery (``hub_message``), and a delivery already sent is not sent again;
- ``delivery.status_changed`` (a local recipient of a document that came from the hub reported
  01 … 06, 15, 16): a status packet goes back to the hub's sender.

An unreachable or failing hub raises :class:`RetryLater`: the broker tries again after the next
delay, and after the last one the failure is logged and kept (``outcome`` failed).

Inbound, it polls the hub (``getReceivedEdocList``), takes each packet (``getEdoc``) and
acknowledges it (``updateStatus``: done, or fail with the reason) once it was handled:

- a document packet (signature verified first) becomes a document of the exchange, sent by the
  outside agency (a token of that agency, the connector's own) to the packet's local recipients,
  with ``sender_document_id`` = the packet's DocumentId: a packet taken twice is one document;
- a status packet updates the delivery it answers (the document the connector sent to that agency).

Every packet taken is recorded under its hub message id before it is acknowledged: one taken again
because its acknowledgement was lost is only acknowledged again. The exchange is reached through
its API only, never its tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes

from services.exchange.edxml import (
    BussinessDocType,
    Organization,
    Packet,
    PacketInvalidError,
    PacketSignatureInvalidError,
    PacketTooLargeError,
    ResponseFor,
    codes,
    parse_packet,
    parse_status,
    sign_packet,
    split_document_id,
    write_packet,
    write_status,
    zoned,
)
from services.exchange.edxml.signing import SignatureCheck, read_signed_packet
from services.hub.client import HubClient, HubError, HubRefusedError, HubUnavailableError, ReceivedEdoc
from services.hub.document_packets import (
    File,
    packet_of_delivery,
    recall_packet_of,
    status_packet_of,
    submission_of,
)
from services.hub.models import HubMessage
from services.hub.repository import HubMessageRepository
from shared.auth import Scope
from shared.clients import DeliveryEndpoint, RegistryClient
from shared.db import Database, utcnow
from shared.errors import DependencyUnavailableError
from shared.messaging import ATTEMPT_HEADER, DeadLetter, Envelope, RetryLater, describe_error
from shared.seal import Seal
from shared.types import valid_any_code

log = logging.getLogger("lienthong.hub")

Authorization = Callable[[str | None, list[str]], str]
"""An ``Authorization`` header for a call to the exchange as ``agency`` (None: internal) with scopes."""

STATUS_REPORTS = ("01", "02", "03", "04", "05", "06", "15", "16")


class PacketRefused(Exception):
    """A packet from the hub that will never be taken: acknowledged ``fail`` with this reason."""


class ExchangeUnavailable(Exception):
    """The exchange did not answer: the packet stays at the hub for the next poll."""


# a status packet can overtake the record of the document it answers (the hub handed the packet
# over before sendEdoc returned its id here): it is left at the hub for this many polls before it
# is refused as answering nothing sent
UNMATCHED_STATUS_POLLS = 20


@dataclass
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class HubConnector:
    database: Database
    hub: HubClient
    registry: RegistryClient
    exchange: httpx.AsyncClient
    authorization: Authorization
    seal: Seal
    require_signature: bool = True
    observe: Callable[[str, str, str], None] = lambda _direction, _kind, _outcome: None
    unmatched: dict[str, int] = field(default_factory=dict)  # status packets left at the hub: hub id → polls
    last_poll_at: dt.datetime | None = None  # the last poll the hub answered
    last_poll_error: str | None = None  # why the last poll failed (None: it did not)
    _locks: dict[str, _Turn] = field(default_factory=dict)

    # --- outbound: feed entries of hub agencies --------------------------------------------------

    async def handle_entry(self, envelope: Envelope) -> None:
        """Carry one feed entry of an agency reached through the hub (raise RetryLater to try again)."""
        code = envelope.data.get("agency_code")
        if not isinstance(code, str) or not await self._is_hub(code):
            return
        kind = envelope.data.get("type")
        async with self._in_order(str(envelope.data.get("document_id"))):
            await self._carry(kind, code, envelope)

    @contextlib.asynccontextmanager
    async def _in_order(self, document_id: str) -> AsyncIterator[None]:
        """One entry of a document at a time, in the order they came (a 01 before its 03): the
        work queue hands several entries over at once. A turn exists while someone holds or awaits it."""
        turn = self._locks.setdefault(document_id, _Turn())
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._locks[document_id]

    async def _carry(self, kind: object, code: str, envelope: Envelope) -> None:
        try:
            if kind == "delivery.received":
                await self.send_document(envelope.data)
            elif kind == "delivery.status_changed":
                await self.send_status(envelope.data)
            elif kind == "delivery.recall_requested":
                await self.send_recall(envelope.data)
            else:
                log.info("feed entry %s (%s) for %s is not carried to the hub", envelope.data.get("id"), kind, code)
        except HubUnavailableError as exc:
            raise RetryLater(str(exc)) from exc
        except HubRefusedError as exc:
            raise RetryLater(str(exc)) from exc
        except ExchangeUnavailable as exc:
            raise RetryLater(str(exc), counts=False) from exc

    async def on_dead(self, envelope: Envelope, reason: str) -> None:
        """After every try: keep the failure (``outcome`` failed) and have the exchange record it as
        the dispatcher records its own — the delivery marked, the sender told in its feed, the
        admin's ``POST /v1/transfers/failed/{id}/resend`` sends it again. Raises (the message is
        tried again) while the exchange does not answer."""
        data = envelope.data
        kind = data.get("type")
        key = f"delivery:{data.get('delivery_id')}" if kind == "delivery.received" else f"entry:{data.get('id')}"
        packet_kind = {"delivery.received": "edoc", "delivery.recall_requested": "recall"}.get(str(kind), "status")
        self.observe("out", packet_kind, "failed")
        async with self.database.session() as session:
            repository = HubMessageRepository(session)
            row = await repository.by_key(key)
            if row is None:
                await repository.add(
                    HubMessage(
                        key=key,
                        direction="out",
                        kind=packet_kind,
                        peer_code=str(data.get("agency_code"))[:35],
                        document_id=_uuid(data.get("document_id")),
                        delivery_id=_uuid(data.get("delivery_id")),
                        outcome="failed",
                        reason=reason[:2000],
                    )
                )
            elif row.outcome == "failed":
                row.reason = reason[:2000]
                await repository.flush()
        report = {
            "entry": data,
            "channel": "hub",
            "target": str(self.hub.http.base_url),
            "attempts": int(envelope.headers.get(ATTEMPT_HEADER, 1)),
            "reason": reason[:2000],
        }
        response = await self._exchange("POST", "/internal/v1/transfers/failed", None, [Scope.INTERNAL], json=report)
        if response.status_code != 204:
            log.error("the exchange did not record the failed transfer of %s: %s", data.get("id"), _problem(response))
        log.error(
            "feed entry %s for %s not taken by the hub after every try: %s",
            data.get("id"),
            data.get("agency_code"),
            reason,
        )

    async def _is_hub(self, code: str) -> bool:
        endpoint = await self._endpoint(code)
        return endpoint is not None and endpoint.mode == "hub"

    async def _endpoint(self, code: str) -> DeliveryEndpoint | None:
        try:
            return await self.registry.delivery_endpoint(code)
        except DependencyUnavailableError as exc:
            raise RetryLater(str(exc), counts=False) from exc

    def _signed(self, packet: Packet) -> bytes:
        """The packet written and signed with the province's seal (its chain in X509Data)."""
        seal = self.seal
        return sign_packet(write_packet(packet), key=seal.key, certificate=seal.certificate, chain=seal.chain)

    async def send_document(self, entry: dict[str, Any]) -> None:
        """Send a document to its recipient outside the province, once per delivery."""
        key = f"delivery:{entry['delivery_id']}"
        if await self._sent(key):
            return
        data = entry["data"]
        document = data["document"]
        if document.get("kind", "new") != "new":
            # the sender is told (a failed transfer it sees, as for a webhook that refused)
            what = {"update": "an update", "replace": "a replacement"}.get(document["kind"], document["kind"])
            raise DeadLetter(f"{what} of a document is not carried across the national hub yet")
        recipient_code = entry["agency_code"]
        files = [await self._download(entry["document_id"], a) for a in data.get("attachments", [])]
        packet = packet_of_delivery(
            document,
            sender=await self._organization(document["sender_code"]),
            recipient=await self._organization(recipient_code),
            files=files,
            sent_at=utcnow(),
        )
        signed = sign_packet(
            write_packet(packet), key=self.seal.key, certificate=self.seal.certificate, chain=self.seal.chain
        )
        hub_id = await self.hub.send_edoc(
            from_code=document["sender_code"], to=[recipient_code], packet=signed, service_type="edoc"
        )
        await self._record_sent(
            HubMessage(
                key=key,
                direction="out",
                kind="edoc",
                hub_message_id=hub_id,
                edxml_document_id=packet.message_header.document_id,
                peer_code=recipient_code,
                document_id=uuid.UUID(entry["document_id"]),
                delivery_id=uuid.UUID(entry["delivery_id"]),
                outcome="sent",
            )
        )
        log.info("document %s sent to %s through the hub (message %s)", entry["document_id"], recipient_code, hub_id)

    async def send_status(self, entry: dict[str, Any]) -> None:
        """Tell the hub's sender what a local recipient reported on a document that came from the hub."""
        key = f"entry:{entry['id']}"
        document_id = uuid.UUID(entry["document_id"])
        if await self._sent(key):
            return
        async with self.database.session() as session:
            imported = await HubMessageRepository(session).imported(document_id)
        if imported is None or imported.edxml_document_id is None:
            log.info("status of document %s not carried: it did not come from the hub", document_id)
            return
        data = entry["data"]
        status = status_packet_of(
            response_for=response_for_of(imported.edxml_document_id),
            reporter=await self._organization(data["recipient_code"]),
            status=data["status"],
            note=data.get("note"),
            reported_at=dt.datetime.fromisoformat(data["reported_at"]),
        )
        hub_id = await self.hub.send_edoc(
            from_code=data["recipient_code"],
            to=[imported.peer_code],
            packet=write_status(status),
            service_type="status",
        )
        await self._record_sent(
            HubMessage(
                key=key,
                direction="out",
                kind="status",
                hub_message_id=hub_id,
                edxml_document_id=imported.edxml_document_id,
                peer_code=imported.peer_code,
                document_id=document_id,
                delivery_id=_uuid(entry.get("delivery_id")),
                outcome="sent",
                reason=data["status"],
            )
        )

    async def send_recall(self, entry: dict[str, Any]) -> None:
        """Ask the outside recipient, through the hub, to give back a document it was sent (a recall packet)."""
        key = f"entry:{entry['id']}"
        if await self._sent(key):
            return
        async with self.database.session() as session:
            sent = await HubMessageRepository(session).by_key(f"delivery:{entry['delivery_id']}")
        if sent is None or sent.outcome != "sent":
            log.warning("recall of delivery %s not carried: the hub never took the document", entry["delivery_id"])
            return
        response = await self._exchange("GET", f"/internal/v1/documents/{entry['document_id']}", None, [Scope.INTERNAL])
        if response.status_code != 200:
            raise ExchangeUnavailable(f"document {entry['document_id']}: the exchange answered {response.status_code}")
        document = response.json()
        packet = recall_packet_of(
            document,
            sender=await self._organization(document["sender_code"]),
            recipient=await self._organization(entry["agency_code"]),
            reason=entry["data"].get("reason") or "",
            sent_at=utcnow(),
        )
        signed = sign_packet(
            write_packet(packet), key=self.seal.key, certificate=self.seal.certificate, chain=self.seal.chain
        )
        hub_id = await self.hub.send_edoc(
            from_code=document["sender_code"], to=[entry["agency_code"]], packet=signed, service_type="edoc"
        )
        await self._record_sent(
            HubMessage(
                key=key,
                direction="out",
                kind="recall",
                hub_message_id=hub_id,
                edxml_document_id=packet.message_header.document_id,
                peer_code=entry["agency_code"],
                document_id=uuid.UUID(entry["document_id"]),
                delivery_id=uuid.UUID(entry["delivery_id"]),
                outcome="sent",
            )
        )

    async def _sent(self, key: str) -> bool:
        """Whether the hub took this already (a failed try, re-sent by the admin, goes again)."""
        async with self.database.session() as session:
            row = await HubMessageRepository(session).by_key(key)
        return row is not None and row.outcome == "sent"

    async def _record_sent(self, sent: HubMessage) -> None:
        """Keep what the hub took, over the failure of an earlier series of tries if there was one."""
        self.observe("out", sent.kind, "sent")
        async with self.database.session() as session:
            repository = HubMessageRepository(session)
            row = await repository.by_key(sent.key)
            if row is None:
                await repository.add(sent)
                return
            row.hub_message_id, row.edxml_document_id = sent.hub_message_id, sent.edxml_document_id
            row.outcome, row.reason = "sent", sent.reason
            await repository.flush()

    async def _organization(self, code: str) -> Organization:
        """The agency as a packet names it (From, To), from the registry as it is now: the snapshot
        the packet keeps of it."""
        try:
            response = await self.registry.http.get(
                f"/v1/agencies/{code}", headers={"Authorization": self.registry.authorization()}
            )
        except httpx.HTTPError as exc:
            raise ExchangeUnavailable(f"the registry did not answer: {describe_error(exc)}") from exc
        if response.status_code != 200:
            if response.status_code >= 500:
                raise ExchangeUnavailable(f"the registry answered {response.status_code} for {code}")
            return Organization(organ_id=code)
        agency = response.json()
        parent = agency.get("parent_code")
        return Organization(
            organ_id=code,
            organization_in_charge=await self._name_of(parent) if parent else None,
            organ_name=agency.get("name"),
            organ_add=agency.get("address"),
            email=agency.get("email"),
            telephone=agency.get("phone"),
            website=agency.get("website"),
        )

    async def _name_of(self, code: str) -> str | None:
        try:
            info = await self.registry.agency(code)
        except DependencyUnavailableError as exc:
            raise ExchangeUnavailable(str(exc)) from exc
        return info.name if info else None

    async def _download(self, document_id: str, attachment: dict[str, Any]) -> File:
        path = f"/internal/v1/documents/{document_id}/attachments/{attachment['id']}"
        response = await self._exchange("GET", path, None, [Scope.INTERNAL])
        if response.status_code != 200:
            raise ExchangeUnavailable(f"attachment {attachment['id']}: the exchange answered {response.status_code}")
        return File(name=attachment["file_name"], content_type=attachment["content_type"], data=response.content)

    async def _exchange(
        self,
        method: str,
        path: str,
        agency: str | None,
        scopes: list[str],
        headers_extra: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = {"Authorization": self.authorization(agency, scopes), **(headers_extra or {})}
        try:
            response = await self.exchange.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ExchangeUnavailable(f"the exchange did not answer {method} {path}: {describe_error(exc)}") from exc
        if response.status_code >= 500:
            raise ExchangeUnavailable(f"the exchange answered {response.status_code} to {method} {path}")
        return response

    # --- inbound: packets waiting at the hub -------------------------------------------------------

    async def poll_once(self) -> int:
        """Take every packet waiting at the hub; return how many were handled (taken or refused)."""
        handled = 0
        for item in await self.hub.received_edocs():
            try:
                await self.take(item)
            except ExchangeUnavailable as exc:
                log.warning("packet %s left at the hub for the next poll: %s", item.doc_id, exc)
                continue
            except HubUnavailableError:
                raise  # the hub went away: the next poll
            except HubRefusedError as exc:  # this packet's call was refused (gone, not ours): the others go on
                log.warning("packet %s left at the hub: %s", item.doc_id, exc)
                continue
            except Exception:  # one packet's bug must not hold the others
                log.exception("packet %s left at the hub: handling it failed", item.doc_id)
                continue
            handled += 1
        return handled

    async def take(self, item: ReceivedEdoc) -> None:
        """Handle one packet from the hub, then acknowledge it (done, or fail with the reason)."""
        key = f"hub:{item.doc_id}"
        async with self.database.session() as session:
            known = await HubMessageRepository(session).by_key(key)
        if known is None:
            known = await self._handle(item, key)
        if known.outcome == "refused":
            await self.hub.update_status(item.doc_id, "fail", known.reason)
        else:
            await self.hub.update_status(item.doc_id, "done")

    async def _handle(self, item: ReceivedEdoc, key: str) -> HubMessage:
        raw = await self.hub.get_edoc(item.doc_id)
        record = HubMessage(
            key=key, direction="in", kind=item.service_type, hub_message_id=item.doc_id, peer_code=item.from_[:35]
        )
        try:
            if item.service_type == "status":
                await self._take_status(raw, record)
            else:
                await self._take_document(raw, record)
        except PacketRefused as refused:
            record.outcome, record.reason = "refused", str(refused)[:2000]
            log.warning("packet %s from %s refused: %s", item.doc_id, item.from_, refused)
        async with self.database.session() as session:
            await HubMessageRepository(session).add(record)
        self.observe("in", record.kind, record.outcome)
        return record

    async def _take_document(self, raw: bytes, record: HubMessage) -> None:
        packet, signature = self._read_document(raw)
        header = packet.message_header
        sender = header.from_.organ_id
        record.peer_code = sender[:35]
        if not header.document_id or len(header.document_id) > 200:
            raise PacketRefused(
                "the packet has no DocumentId of at most 200 characters (edXML/…/MessageHeader/DocumentId)"
            )
        record.edxml_document_id = header.document_id
        if not await self._is_outside(sender):
            raise PacketRefused(
                f"the sender {sender} is not an agency reached through the hub (unknown to the registry, or of the"
                " province: its documents do not come through the hub); sync the national directory"
            )
        if signature is not None:
            await self._check_seal(sender, signature)
        if packet.bussiness_doc_type == BussinessDocType.RECALL:
            await self._take_recall(packet, record)
            return
        if packet.bussiness_doc_type != BussinessDocType.NEW:
            raise PacketRefused(
                f"BussinessDocType {int(packet.bussiness_doc_type)} (update, replace) is not taken from the hub yet"
            )
        recipients = [to.organ_id for to in header.to if await self._is_local(to.organ_id)]
        if not recipients:
            raise PacketRefused("no recipient of the packet is an agency of the province")
        async with self.database.session() as session:
            earlier = await HubMessageRepository(session).imports_of(header.document_id, record.peer_code)
        reached = {code for row in earlier for code in (row.recipients or "").split(",") if code}
        recipients = [code for code in dict.fromkeys(recipients) if code not in reached]
        if not recipients:  # the same packet again (or a copy for recipients it reached already)
            record.document_id, record.outcome = earlier[0].document_id, "duplicate"
            return
        metadata, files = submission_of(packet, recipients)
        if earlier:
            # a copy naming other local recipients (a sender that sends one packet per recipient): the
            # exchange holds one document per number, so they get it as an update of the first that
            # changes only its recipients
            metadata.pop("sender_document_id", None)
            metadata["relation"] = {
                "kind": "update",
                "document_id": str(earlier[0].document_id),
                "metadata_changed": False,
                "recipients_changed": True,
            }
        key = hashlib.sha256(f"{record.peer_code}|{header.document_id}|{','.join(sorted(recipients))}".encode())
        response = await self._exchange(
            "POST",
            "/v1/documents",
            sender,
            [Scope.SEND],
            data={"metadata": json.dumps(metadata, ensure_ascii=False)},
            files=[("files", (f.name, f.data, f.content_type)) for f in files],
            headers_extra={"Idempotency-Key": f"hub:{key.hexdigest()}"},
        )
        if response.status_code not in (200, 202):
            raise PacketRefused(f"the exchange refused the document: {_problem(response)}")
        record.document_id = uuid.UUID(response.json()["id"])
        record.outcome, record.recipients = "imported", ",".join(recipients)

    async def _take_recall(self, packet: Packet, record: HubMessage) -> None:
        """The outside sender recalls a document it sent here: the exchange asks its recipients (13);
        their 15/16 go back as 03/02."""
        header = packet.message_header
        record.kind = "recall"
        async with self.database.session() as session:
            imported = await HubMessageRepository(session).imports_of(header.document_id or "", record.peer_code)
        if not imported:
            raise PacketRefused(f"no document {header.document_id} came from {record.peer_code} through the hub")
        bussiness = packet.trace_header_list.bussiness
        reason = (bussiness.bussiness_doc_reason if bussiness else None) or "Thu hồi văn bản"
        for row in imported:  # every document made of the packet's copies
            response = await self._exchange(
                "POST",
                f"/v1/documents/{row.document_id}/recall",
                record.peer_code,
                [Scope.SEND],
                json={"reason": reason[:2000]},
            )
            if response.status_code != 200:
                raise PacketRefused(f"the exchange refused the recall: {_problem(response)}")
        record.document_id, record.outcome = imported[0].document_id, "recalled"

    async def _check_seal(self, sender: str, signature: SignatureCheck) -> None:
        """When the registry holds seal certificates for the sender, the packet must be signed with
        one of them (a packet signed by anyone else is refused); with none registered it is taken on
        its intact signature alone."""
        try:
            certificates = await self.registry.agency_certificates(sender)
        except DependencyUnavailableError as exc:
            raise ExchangeUnavailable(str(exc)) from exc
        seals = {c.sha256.lower() for c in certificates or [] if c.kind == "seal"}
        thumbprint = signature.certificate.fingerprint(hashes.SHA256()).hex()
        if seals and thumbprint not in seals:
            subject = signature.certificate.subject.rfc4514_string()
            raise PacketRefused(
                f"signature not the sender's: the packet is signed by {subject} (sha256 {thumbprint}),"
                f" not by a seal the registry holds for {sender}"
            )

    def _read_document(self, raw: bytes) -> tuple[Packet, SignatureCheck | None]:
        try:
            if self.require_signature:
                return read_signed_packet(raw)
            return parse_packet(raw), None
        except PacketSignatureInvalidError as exc:
            raise PacketRefused(f"signature invalid ({exc.reason}): {exc.detail}") from exc
        except (PacketInvalidError, PacketTooLargeError) as exc:
            raise PacketRefused(f"packet invalid ({exc.reason}): {exc.detail}") from exc

    async def _take_status(self, raw: bytes, record: HubMessage) -> None:
        try:
            status = parse_status(raw)
        except (PacketInvalidError, PacketTooLargeError) as exc:
            raise PacketRefused(f"status packet invalid ({exc.reason}): {exc.detail}") from exc
        reporter = status.from_.organ_id
        record.peer_code, record.edxml_document_id = reporter[:35], (status.response_for.document_id or "")[:200]
        async with self.database.session() as session:
            sent = await HubMessageRepository(session).sent_delivery(status.response_for.document_id or "", reporter)
        if sent is None or sent.delivery_id is None:
            hub_id = record.hub_message_id or ""
            self.unmatched[hub_id] = polls = self.unmatched.get(hub_id, 0) + 1
            if polls < UNMATCHED_STATUS_POLLS:
                raise ExchangeUnavailable(f"status packet {hub_id} answers a document not recorded yet")
            self.unmatched.pop(hub_id, None)
            raise PacketRefused(f"no document {status.response_for.document_id} was sent to {reporter} through the hub")
        self.unmatched.pop(record.hub_message_id or "", None)
        record.document_id, record.delivery_id = sent.document_id, sent.delivery_id
        async with self.database.session() as session:
            recall = await HubMessageRepository(session).pending_recall(sent.delivery_id)
        # while a recall waits for its answer the exchange takes only 15/16: a national 03/02 is that answer
        code = codes.status_in(status.status_code, BussinessDocType.RECALL if recall else BussinessDocType.NEW)
        if code not in STATUS_REPORTS:
            raise PacketRefused(f"status {code} is not one a recipient reports")
        body: dict[str, Any] = {"status": code, "note": status.description[:2000] if status.description else None}
        if (stamp := zoned(status.timestamp)) is not None:  # the reporter's clock: older cannot undo newer
            body["timestamp"] = stamp.isoformat()
        if status.staff_info is not None and (staff := status.staff_info.kept()) is not None:
            body["staff"] = staff  # cut to the exchange's lengths, not a reason to refuse the status
        response = await self._exchange(
            "POST", f"/v1/deliveries/{sent.delivery_id}/status", reporter, [Scope.RECEIVE], json=body
        )
        if response.status_code == 200:
            record.outcome, record.reason = "applied", code
            if recall is not None and code in ("15", "16"):
                await self._answered(recall.key, code)
        elif response.status_code == 409:  # a repeated or out-of-order report: transport done, nothing changed
            record.outcome, record.reason = "ignored", f"{code}: {_problem(response)}"[:2000]
        else:
            raise PacketRefused(f"the exchange refused status {code}: {_problem(response)}")

    async def _answered(self, key: str, code: str) -> None:
        async with self.database.session() as session:
            row = await HubMessageRepository(session).by_key(key)
            if row is not None:
                row.outcome, row.reason = "answered", code
                await HubMessageRepository(session).flush()

    async def _agency(self, code: str) -> Any:
        try:
            valid_any_code(code)
        except ValueError:
            return None  # not a national code: no registry has it
        try:
            return await self.registry.agency(code)
        except DependencyUnavailableError as exc:
            raise ExchangeUnavailable(str(exc)) from exc

    async def _is_outside(self, code: str) -> bool:
        """Whether ``code`` is an agency of the registry reached through the hub (endpoint ``hub``)."""
        if await self._agency(code) is None:
            return False
        try:
            endpoint = await self.registry.delivery_endpoint(code)
        except DependencyUnavailableError as exc:
            raise ExchangeUnavailable(str(exc)) from exc
        return endpoint is not None and endpoint.mode == "hub"

    async def _is_local(self, code: str) -> bool:
        if await self._agency(code) is None:
            return False
        try:
            endpoint = await self.registry.delivery_endpoint(code)
        except DependencyUnavailableError as exc:
            raise ExchangeUnavailable(str(exc)) from exc
        return endpoint is not None and endpoint.mode != "hub"

    # --- the loop ------------------------------------------------------------------------------------

    async def run_polling(self, every: float) -> None:
        """Poll the hub every ``every`` seconds until cancelled; a hub away is logged once per outage."""
        away = False
        while True:
            try:
                await self.poll_once()
                self.last_poll_at, self.last_poll_error = utcnow(), None
                if away:
                    log.warning("the hub answers again")
                away = False
            except HubError as exc:
                self.last_poll_error = str(exc)
                if not away:
                    log.error("the hub is unavailable (%s); packets wait there until it answers", exc)
                away = True
            except Exception:
                log.exception("polling the hub failed")
            await asyncio.sleep(every)


def response_for_of(edxml_document_id: str) -> ResponseFor:
    """The ``ResponseFor`` of a status packet on the document with this DocumentId."""
    parts = split_document_id(edxml_document_id)
    if parts is None:
        return ResponseFor(document_id=edxml_document_id)
    return ResponseFor(
        organ_id=parts.organ_id,
        code=f"{parts.code_number}/{parts.code_notation}",
        promulgation_date=parts.promulgation_date,
        document_id=edxml_document_id,
    )


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:300]}"
    if isinstance(body, dict):
        return f"{response.status_code} {body.get('code', '')}: {body.get('detail') or body.get('title', '')}"
    return str(response.status_code)


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
