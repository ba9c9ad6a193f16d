"""What the fast send path must not give up (the send-path issue): a document is one transaction
(document, attachments, deliveries, history, feed and outbox rows commit together), its files are
on disk under their hash before that transaction commits, a replay is the original answer, and a
document's events are written in the order they happened. Watched from the exchange's own engine,
on both databases."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from sqlalchemy import event, select

from services.demo.pdf import make_pdf
from services.exchange.models import messaging
from tests.helpers import Api, delivery_for, exchange_db, recall, report

# every table a statement inserts into: one INSERT, or on PostgreSQL the send's one statement of
# several (shared.bulk: WITH w0 AS (INSERT INTO document …) … INSERT INTO outbox_message …)
_INSERT = re.compile(r"\bINSERT\s+INTO\s+\"?(?:\w+\"?\.\"?)?(\w+)", re.IGNORECASE)


class Watch:
    """The statements and commits of the exchange's engine while a request runs."""

    def __init__(self, api: Api, blob_of: str) -> None:
        self.engine = exchange_db(api).engine.sync_engine
        self.blob = api.service_runtime("exchange").blobs.path(blob_of)
        self.inserts: list[tuple[str, int]] = []  # (table, transaction number)
        self.commits: list[tuple[int, bool]] = []  # (transaction number, the blob was on disk)
        self._transaction = 0
        self._open: dict[int, int] = {}  # connection id -> its transaction number

    def _number(self, connection: Any) -> int:
        key = id(connection.connection)
        if key not in self._open:
            self._transaction += 1
            self._open[key] = self._transaction
        return self._open[key]

    def on_execute(self, connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        for table in _INSERT.findall(statement):
            self.inserts.append((table, self._number(connection)))

    def on_commit(self, connection: Any) -> None:
        key = id(connection.connection)
        if key in self._open:
            self.commits.append((self._open.pop(key), self.blob.exists()))

    def on_rollback(self, connection: Any) -> None:
        self._open.pop(id(connection.connection), None)

    def __enter__(self) -> Watch:
        event.listen(self.engine, "before_cursor_execute", self.on_execute)
        event.listen(self.engine, "commit", self.on_commit)
        event.listen(self.engine, "rollback", self.on_rollback)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self.on_execute)
        event.remove(self.engine, "commit", self.on_commit)
        event.remove(self.engine, "rollback", self.on_rollback)


async def test_a_send_is_one_transaction_committed_after_its_file_is_on_disk(api: Api) -> None:
    sender, a, b = await api.agency_client(), await api.agency_client(), await api.agency_client()
    pdf = make_pdf(["Cong van"], padding=os.urandom(2048))
    sha = hashlib.sha256(pdf).hexdigest()
    with Watch(api, sha) as watch:
        response = await api.send(
            sender,
            [a.agency_code, b.agency_code],
            code_number="9001",
            files=[("cong-van.pdf", pdf, "application/pdf")],
            headers={"Idempotency-Key": "guarantee-1"},
        )
    assert response.status_code == 202, response.text

    written = {table for table, _ in watch.inserts}
    assert {"document", "attachment", "delivery", "delivery_event", "feed_entry", "outbox_message"} <= written, written
    [transaction] = {number for _, number in watch.inserts}  # every row in one transaction
    assert [number for number, _ in watch.commits if number == transaction] == [transaction]  # committed once
    assert dict(watch.commits)[transaction] is True  # the file was in the store when it committed
    assert watch.blob.read_bytes() == pdf

    with Watch(api, sha) as replay:  # the same request again: the first answer, nothing written
        again = await api.send(
            sender,
            [a.agency_code, b.agency_code],
            code_number="9001",
            files=[("cong-van.pdf", pdf, "application/pdf")],
            headers={"Idempotency-Key": "guarantee-1"},
        )
    assert again.status_code == 200, again.text  # a replay: the original answer, as 200
    assert again.json()["id"] == response.json()["id"]
    assert replay.inserts == []


async def test_a_documents_events_are_written_in_the_order_they_happened(api: Api) -> None:
    sender, a = await api.agency_client(), await api.agency_client()
    response = await api.send(sender, [a.agency_code], code_number="9002")
    assert response.status_code == 202, response.text
    accepted = response.json()
    delivery = delivery_for(accepted, a)
    for status in ("01", "03"):
        assert (await report(api, a, delivery, status)).status_code == 200
    assert (await recall(api, sender, accepted["id"], "Nhầm số")).status_code == 200
    assert (await report(api, a, delivery, "15")).status_code == 200

    outbox = messaging.outbox
    async with exchange_db(api).session() as session:
        rows = (await session.execute(select(outbox).order_by(outbox.c.id))).mappings().all()
    mine = [
        (r["routing_key"], r["payload"].get("status"))
        for r in rows
        if r["payload"].get("document_id") == accepted["id"]
        and r["routing_key"] not in ("feed.entry_added.v1", "audit.recorded.v1")
    ]
    assert mine == [
        ("document.submitted.v1", None),
        ("delivery.status_changed.v1", "01"),
        ("delivery.status_changed.v1", "03"),
        ("delivery.status_changed.v1", "13"),
        ("document.recall_requested.v1", None),
        ("delivery.status_changed.v1", "15"),
        ("document.recalled.v1", None),
    ], mine
    keys = {
        r["ordering_key"]
        for r in rows
        if r["payload"].get("document_id") == accepted["id"]
        and r["routing_key"] not in ("feed.entry_added.v1", "audit.recorded.v1")
    }
    assert keys == {accepted["id"]}, keys  # published in that order: one ordering key, the document's
