"""What the fast send path must not give up (the send-path issue): a document is one transaction
(document, attachments, deliveries, history, feed and outbox rows commit together), its files are
on disk under their hash before that transaction commits, a replay is the original answer, and a
document's events are written in the order they happened. Watched from the exchange's own engine,
on both databases."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, select

from services.demo.pdf import make_pdf
from services.exchange.models import messaging
from shared import direct
from tests.conftest import PG_ADMIN_DSN
from tests.helpers import Api, FakeDns, delivery_for, exchange_db, recall, report

POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

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


class Sent:
    """What the exchange's asyncpg connections are sent, connection by connection, in order, from
    asyncpg's query loggers: the statements shared.direct runs on a connection, and SQLAlchemy's
    ``BEGIN`` and ``COMMIT`` (its prepared statements are not logged). No cursor listener: the
    exchange's send takes its direct path, as in production."""

    LOOKUP = "look-up"
    ROWS = "rows"

    def __init__(self, api: Api) -> None:
        self.engine = exchange_db(api).engine.sync_engine
        self.queries: dict[int, list[str]] = {}
        self._drivers: list[Any] = []

    def _name(self, query: str) -> str:
        if "idempotency_key" in query and "UNION ALL" in query:
            return self.LOOKUP
        if re.match(r"WITH w0 AS \(INSERT INTO \S*document\b", query):
            return self.ROWS
        return query.split()[0].rstrip(";").upper()  # BEGIN, COMMIT, ROLLBACK, SELECT …

    def on_checkout(self, _dbapi: Any, _record: Any, proxy: Any) -> None:
        driver = proxy.driver_connection
        if any(known is driver for known, _ in self._drivers):
            return
        log = self.queries.setdefault(id(driver), [])

        def logged(record: Any) -> None:
            log.append(self._name(record.query))

        driver.add_query_logger(logged)
        self._drivers.append((driver, logged))

    def around(self, what: str) -> list[str]:
        """The queries of the connection that ran ``what``, from the one before it to the end."""
        [log] = [log for log in self.queries.values() if what in log]
        at = log.index(what)
        return log[max(0, at - 1) :]

    def __enter__(self) -> Sent:
        event.listen(self.engine, "checkout", self.on_checkout)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "checkout", self.on_checkout)
        for driver, logged in self._drivers:
            driver.remove_query_logger(logged)


async def _logged() -> None:
    await asyncio.sleep(0.05)  # asyncpg calls its loggers soon after each query, not in it


@POSTGRES_ONLY
async def test_on_postgresql_a_new_documents_look_up_and_rows_are_each_a_transaction_of_their_own(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """To agencies that pull: the look-up, then every row in one statement, with no BEGIN and no
    COMMIT sent (one statement commits all its rows or none), sent once the file is in the store;
    the rows are there after it."""
    sender, a, b = await api.agency_client(), await api.agency_client(), await api.agency_client()
    pdf = make_pdf(["Cong van"], padding=os.urandom(2048))
    blob = api.service_runtime("exchange").blobs.path(hashlib.sha256(pdf).hexdigest())
    on_disk: list[bool] = []
    execute = direct.execute

    async def watched(session: Any, sql: str, args: Any, *, alone: bool) -> bool:
        on_disk.append(blob.exists())  # when the rows' statement is sent: it commits them
        return await execute(session, sql, args, alone=alone)

    monkeypatch.setattr(direct, "execute", watched)
    with Sent(api) as sent:
        response = await api.send(
            sender,
            [a.agency_code, b.agency_code],
            code_number="9101",
            files=[("cong-van.pdf", pdf, "application/pdf")],
            headers={"Idempotency-Key": "direct-1"},
        )
        await _logged()
    assert response.status_code == 202, response.text
    assert on_disk == [True]
    around = sent.around(Sent.LOOKUP)
    assert around[around.index(Sent.LOOKUP) :][:2] == [Sent.LOOKUP, Sent.ROWS], around
    assert around[0] != "BEGIN", around  # the look-up began no transaction
    after = around[around.index(Sent.ROWS) + 1 :]
    assert after[:1] != ["COMMIT"], around  # and none was committed after the rows
    for reader in (a, b):
        feed = await api.http.get("/v1/feed", headers=reader.auth)
        assert feed.status_code == 200, feed.text
        [entry] = feed.json()["entries"]
        assert entry["document_id"] == response.json()["id"] and entry["seq"] >= 1

    again = await api.send(
        sender,
        [a.agency_code, b.agency_code],
        code_number="9101",
        files=[("cong-van.pdf", pdf, "application/pdf")],
        headers={"Idempotency-Key": "direct-1"},
    )
    assert again.status_code == 200 and again.json()["id"] == response.json()["id"], again.text


@POSTGRES_ONLY
async def test_on_postgresql_entries_numbered_at_once_commit_with_the_rows_in_one_transaction(
    api: Api, dns: FakeDns
) -> None:
    """A recipient whose entries go to the dispatcher (push): the feed counters' upsert (through
    SQLAlchemy, which begins the transaction) and the rows' statement commit together."""
    sender, pulling, pushing = await api.agency_client(), await api.agency_client(), await api.agency_client()
    endpoint = await api.http.put(
        f"/v1/agencies/{pushing.agency_code}/endpoint",
        json={"mode": "push", "webhook_url": "https://qlvb.example.gov.vn/hook"},
        headers=await api.admin(),
    )
    assert endpoint.status_code == 200, endpoint.text
    with Sent(api) as sent:
        response = await api.send(sender, [pulling.agency_code, pushing.agency_code])
        await _logged()
    assert response.status_code == 202, response.text
    around = sent.around(Sent.LOOKUP)
    assert around[0] != "BEGIN", around
    # the upsert is a prepared statement of SQLAlchemy's (not logged): BEGIN, the rows, COMMIT
    assert around[around.index(Sent.LOOKUP) :][:4] == [Sent.LOOKUP, "BEGIN", Sent.ROWS, "COMMIT"], around


@POSTGRES_ONLY
async def test_a_connection_that_broke_fails_one_send_and_is_not_used_again(api: Api) -> None:
    """The exchange's connections killed under it (a database restarted): a send on a dead one is
    answered 503, the pool's connections are replaced, and the sends after succeed."""
    sender, recipient = await api.agency_client(), await api.agency_client()
    assert (await api.send(sender, [recipient.agency_code])).status_code == 202
    db = exchange_db(api)
    pooled = db.engine.sync_engine.pool.checkedin()  # type: ignore[attr-defined]
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = 'lienthong-exchange'",
            db.engine.url.database,
        )
    finally:
        await admin.close()
    assert killed >= 1
    failures = 0
    for _ in range(pooled + 2):
        response = await api.send(sender, [recipient.agency_code])
        if response.status_code == 202:
            break
        failures += 1
        assert response.status_code == 503, response.text  # retryable: the connection was lost
        assert response.json()["code"] == "database_connection_lost"
    assert response.status_code == 202, response.text
    # the first lost connection marked the pool's older ones stale: one request failed at most (none
    # when another task of the exchange, its outbox relay, met a dead connection first)
    assert failures <= 1, failures
