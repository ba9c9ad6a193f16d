"""SQL for documents and their attachments, and the sent and received lists."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, bindparam, literal, literal_column, select, union_all, update
from sqlalchemy.orm.attributes import set_committed_value

from services.exchange.delivery.repository import not_withdrawn, overdue_clause
from services.exchange.document.schemas import ListFilters
from services.exchange.models import NUMBER_KEY_SQL, Attachment, Delivery, Document, number_key
from shared import direct
from shared.repository import Page, Repository


def _document_filters(filters: ListFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filters.type_name:
        clauses.append(Document.type_name == filters.type_name)
    if filters.date_from:
        clauses.append(Document.promulgation_date >= filters.date_from)
    if filters.date_to:
        clauses.append(Document.promulgation_date <= filters.date_to)
    if filters.urgency is not None:
        clauses.append(Document.urgency == filters.urgency)
    if filters.kind:
        clauses.append(Document.kind == filters.kind)
    return clauses


DOCUMENT: Table = Document.__table__  # type: ignore[assignment]

# every send asks it: built once (the table's columns, no ORM loading; the id only)
_SAME_NUMBER = (
    select(DOCUMENT.c.id)
    .where(
        DOCUMENT.c.sender_code == bindparam("sender_code"),
        literal_column(NUMBER_KEY_SQL) == bindparam("number"),  # the index's own expression
        DOCUMENT.c.code_notation == bindparam("notation"),
        DOCUMENT.c.promulgation_year == bindparam("year"),
        DOCUMENT.c.kind == literal_column("'new'"),  # a literal, as in the partial index: SQLite then uses it
    )
    .limit(1)
)


# a send's four look-ups in one round trip: the document a replay repeats (by Idempotency-Key, by
# the sender's own id, by the edXML DocumentId it gave) and the new document already holding its
# number this year
_SEND_LOOKUPS = union_all(
    select(DOCUMENT.c.id, literal("key").label("why")).where(
        DOCUMENT.c.sender_code == bindparam("sender_code"), DOCUMENT.c.idempotency_key == bindparam("key")
    ),
    select(DOCUMENT.c.id, literal("sender_document_id").label("why")).where(
        DOCUMENT.c.sender_code == bindparam("sender_code"),
        DOCUMENT.c.sender_document_id == bindparam("sender_document_id"),
    ),
    select(_SAME_NUMBER.subquery().c.id, literal("number").label("why")),
    # an edXML DocumentId the sender gave (a packet's): unique per sender among new documents
    select(DOCUMENT.c.id, literal("edxml_document_id").label("why")).where(
        DOCUMENT.c.sender_code == bindparam("sender_code"),
        DOCUMENT.c.edxml_document_id == bindparam("edxml_document_id"),
        DOCUMENT.c.kind == literal_column("'new'"),  # as in the partial index uq_document_edxml_id
    ),
)


@dataclass(frozen=True)
class SendLookups:
    """What a send must know before it stores anything (ids only; None: there is none)."""

    by_key: uuid.UUID | None = None
    by_sender_document_id: uuid.UUID | None = None
    same_number: uuid.UUID | None = None
    by_edxml_document_id: uuid.UUID | None = None


class DocumentRepository(Repository[Document]):
    model = Document

    async def send_lookups(
        self,
        sender_code: str,
        *,
        key: str | None,
        sender_document_id: str | None,
        number: str,
        notation: str,
        year: int,
        edxml_document_id: str | None = None,
    ) -> SendLookups:
        """The documents a send may repeat or collide with, in one query."""
        values = {
            "sender_code": sender_code,
            "key": key,
            "sender_document_id": sender_document_id,
            "number": number_key(number),
            "notation": notation,
            "year": year,
            "edxml_document_id": edxml_document_id,
        }
        # on PostgreSQL straight to the session's connection (shared.direct), else through SQLAlchemy
        rows: Sequence[Any] | None = await direct.fetch(self.session, _SEND_LOOKUPS, values)
        if rows is None:
            rows = (await self.session.execute(_SEND_LOOKUPS, values)).all()
        found = {why: document_id for document_id, why in rows}
        return SendLookups(
            found.get("key"), found.get("sender_document_id"), found.get("number"), found.get("edxml_document_id")
        )

    async def mark_superseded(self, original: Document, replacement_id: uuid.UUID) -> uuid.UUID | None:
        """Mark a document replaced, unless it is already: return None when this replacement is the
        one (the loaded original says so too, nothing left to flush), else the replacement that was
        first (the check and the change are one statement: of two concurrent replacements one wins,
        the other sees it)."""
        marked = await self.session.execute(
            update(DOCUMENT)
            .where(DOCUMENT.c.id == original.id, DOCUMENT.c.superseded_by_id.is_(None))
            .values(superseded_by_id=replacement_id)
        )
        if marked.rowcount == 1:  # type: ignore[attr-defined]
            set_committed_value(original, "superseded_by_id", replacement_id)
            return None
        first = select(DOCUMENT.c.superseded_by_id).where(DOCUMENT.c.id == original.id)
        winner: uuid.UUID = (await self.session.execute(first)).scalar_one()
        return winner

    async def by_edxml_document_id(self, sender_code: str, edxml_document_id: str) -> Document | None:
        """Return the sender's document with this edXML DocumentId: the new one it was first sent as
        (an update keeps its original's DocumentId)."""
        query = (
            select(Document)
            .where(Document.sender_code == sender_code, Document.edxml_document_id == edxml_document_id)
            .order_by((Document.kind != "new"), Document.created_at)
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def attachments(self, document_id: uuid.UUID) -> Sequence[Attachment]:
        """Return a document's attachments in the order they were sent."""
        query = select(Attachment).where(Attachment.document_id == document_id).order_by(Attachment.position)
        return (await self.session.execute(query)).scalars().all()

    async def attachment(self, document_id: uuid.UUID, attachment_id: uuid.UUID) -> Attachment | None:
        """Return one attachment of a document (None when it has no such attachment)."""
        query = select(Attachment).where(Attachment.document_id == document_id, Attachment.id == attachment_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def referenced_hashes(self, hashes: Sequence[str]) -> set[str]:
        """Return which of these blob hashes an attachment still names (for the blob sweep)."""
        if not hashes:
            return set()
        query = select(Attachment.sha256).where(Attachment.sha256.in_(list(hashes))).distinct()
        return set((await self.session.execute(query)).scalars().all())

    async def add_attachments(self, attachments: Sequence[Attachment]) -> None:
        """Insert the attachments of a document already written."""
        await self.insert_new(attachments)

    async def received(
        self,
        recipient_code: str,
        filters: ListFilters,
        *,
        cursor: str | None,
        limit: int,
        now: dt.datetime,
        today: dt.date,
    ) -> Page[Row[Delivery, Document]]:
        """Return a page of (delivery, document) addressed to an agency, newest delivery first,
        recalled copies left out."""
        query = (
            select(Delivery, Document)
            .join(Document, Document.id == Delivery.document_id)
            .where(Delivery.recipient_code == recipient_code, not_withdrawn(), *_document_filters(filters))
        )
        if filters.status:
            query = query.where(Delivery.status == filters.status)
        if filters.counterpart:
            query = query.where(Document.sender_code == filters.counterpart)
        if filters.overdue is not None:
            clause = overdue_clause(now, today)
            query = query.where(clause if filters.overdue else ~clause)
        return await self.page(query, keys=[Delivery.id], cursor=cursor, limit=limit, descending=True, scalars=False)

    async def sent(
        self,
        sender_code: str,
        filters: ListFilters,
        *,
        cursor: str | None,
        limit: int,
        now: dt.datetime,
        today: dt.date,
    ) -> Page[Document]:
        """Return a page of the documents an agency sent, newest first; the delivery filters keep
        a document when one of its deliveries matches."""
        query = select(Document).where(Document.sender_code == sender_code, *_document_filters(filters))
        delivery_conditions: list[ColumnElement[bool]] = []
        if filters.status:
            delivery_conditions.append(Delivery.status == filters.status)
        if filters.counterpart:
            delivery_conditions.append(Delivery.recipient_code == filters.counterpart)
        if filters.overdue:
            delivery_conditions.append(overdue_clause(now, today))
        if delivery_conditions:
            matching = select(Delivery.document_id).where(*delivery_conditions)
            query = query.where(Document.id.in_(matching))
        if filters.overdue is False:
            query = query.where(Document.id.not_in(select(Delivery.document_id).where(overdue_clause(now, today))))
        return await self.page(query, keys=[Document.id], cursor=cursor, limit=limit, descending=True)
