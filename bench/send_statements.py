"""The send's writes alone: what the document's rows cost the exchange and PostgreSQL, written the
way the exchange wrote them before ``shared.bulk`` and the way it writes them now, beside raw
asyncpg doing the same statements (the ceiling).

A send writes, in one transaction after one look-up: the document, one attachment, one delivery,
its first history event, the recipient's feed counter (upsert) and feed entry, and three outbox
events. The cases, on the exchange's own tables in a scratch database, one connection, one send
after the other (so the figures are CPU per send, not concurrency):

- **one INSERT per table** — SQLAlchemy, each table its own statement (the path before);
- **shared.bulk** — SQLAlchemy, the document's four tables one statement, then the counter's
  upsert, then the feed entry and the outbox events one statement (the path now);
- **ceiling: asyncpg** — the same three statements as ``shared.bulk`` through asyncpg alone
  (prepared, no SQLAlchemy), BEGIN and COMMIT included.

CPU ms per send of this process (``time.thread_time``) and of the PostgreSQL backends serving it
(utime + stime from /proc), sends per second, 1,000 sends a case, the cases interleaved twice.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import JSON, Boolean, Date, Integer, SmallInteger, Table, Uuid, insert, text
from sqlalchemy.dialects import postgresql

from bench.common import PG_ADMIN_DSN, asyncpg_dsn, scratch_database
from services.exchange.models import Attachment, Base, Delivery, DeliveryEvent, Document, FeedCounter, FeedEntry
from services.exchange.models import messaging as exchange_messaging
from shared.bulk import deferred_inserts, insert_rows, postgresql_statement
from shared.db import Database, UTCDateTime, new_id

SENDS = int(os.environ.get("LIENTHONG_BENCH_SEND_STATEMENTS", "1000"))
WARM_UP = 100
TABLES: dict[str, Table] = {
    model.__tablename__: model.__table__  # type: ignore[misc]
    for model in (Document, Attachment, Delivery, DeliveryEvent, FeedEntry, FeedCounter)
}
TABLES["outbox_message"] = exchange_messaging.outbox
BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = $1"
LOOKUP = text("SELECT id FROM document WHERE sender_code = :sender AND idempotency_key = :key")


def _value(column: Any, n: int) -> Any:
    kind = column.type
    if isinstance(kind, Uuid):
        return new_id()
    if isinstance(kind, UTCDateTime):
        return dt.datetime.now(dt.UTC)
    if isinstance(kind, Date):
        return dt.date(2026, 11, 29)
    if isinstance(kind, JSON):
        return {"name": "Sở Tư pháp tỉnh Bình Phước", "code": "000.00.31.H10"}
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer | SmallInteger):
        return 1
    length = getattr(kind, "length", None) or 200
    return f"v{n}"[:length]


def _row(table: str, n: int, **values: Any) -> dict[str, Any]:
    row = {c.key: _value(c, n) for c in TABLES[table].columns}
    row.update(values)
    return row


def send_rows(n: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """A send's rows, in the order the exchange writes them (the counter's upsert apart)."""
    document = _row(
        "document",
        n,
        kind="new",
        sender_code="000.00.31.H10",
        code_number=str(n),
        idempotency_key=None,
        sender_document_id=None,
        edxml_document_id=None,
        original_id=None,
        superseded_by_id=None,
        subject="Về việc triển khai gửi nhận văn bản điện tử " * 3,
    )
    delivery = _row("delivery", n, document_id=document["id"], recipient_code="000.00.32.H10")
    event = _row("delivery_event", n, delivery_id=delivery["id"])
    entry = _row("feed_entry", n, agency_code="000.00.32.H10", seq=n, document_id=document["id"])
    entry["delivery_id"] = delivery["id"]
    outbox = [
        _row("outbox_message", n, payload={"document_id": str(document["id"]), "text": "x" * 600}, published_at=None)
        for _ in range(3)
    ]
    return [
        ("document", [document]),
        ("attachment", [_row("attachment", n, document_id=document["id"])]),
        ("delivery", [delivery]),
        ("delivery_event", [event]),
        ("feed_entry", [entry]),
        ("outbox_message", outbox),
    ]


def _counter_upsert() -> Any:
    counter = TABLES["feed_counter"]
    upsert = postgresql.insert(counter)
    return upsert.on_conflict_do_update(
        index_elements=[counter.c.agency_code], set_={"last_seq": counter.c.last_seq + upsert.excluded.last_seq}
    ).returning(counter.c.agency_code, counter.c.last_seq)


async def main() -> None:
    async with scratch_database() as url:
        db = Database(url, "public")
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        raw = await asyncpg.connect(asyncpg_dsn(url))
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        upsert = _counter_upsert()
        counter_rows = [{"agency_code": "000.00.32.H10", "last_seq": 1}]

        async def per_table(n: int) -> None:
            rows = send_rows(n)
            async with db.session() as session:
                await session.execute(LOOKUP, {"sender": "000.00.31.H10", "key": str(n)})
                for table, values in rows[:4]:
                    await session.execute(insert(TABLES[table]), values)
                await session.execute(upsert, counter_rows)
                for table, values in rows[4:]:
                    await session.execute(insert(TABLES[table]), values)

        async def bulk(n: int) -> None:
            rows = send_rows(n)
            async with db.session() as session:
                await session.execute(LOOKUP, {"sender": "000.00.31.H10", "key": str(n)})
                async with deferred_inserts(session):
                    for table, values in rows[:4]:
                        await insert_rows(session, TABLES[table], values)
                await session.execute(upsert, counter_rows)
                async with deferred_inserts(session):
                    for table, values in rows[4:]:
                        await insert_rows(session, TABLES[table], values)

        dialect = db.engine.dialect
        lookup_sql = "SELECT id FROM document WHERE sender_code = $1 AND idempotency_key = $2"
        upsert_sql = (
            "INSERT INTO feed_counter (agency_code, last_seq) VALUES ($1, $2) ON CONFLICT (agency_code) "
            "DO UPDATE SET last_seq = feed_counter.last_seq + excluded.last_seq RETURNING agency_code, last_seq"
        )

        async def ceiling(n: int) -> None:
            rows = send_rows(n)
            async with raw.transaction():
                await raw.fetch(lookup_sql, "000.00.31.H10", str(n))
                await raw.execute(*_flat(_raw(rows[:4], dialect)))
                await raw.fetch(upsert_sql, "000.00.32.H10", 1)
                await raw.execute(*_flat(_raw(rows[4:], dialect)))

        cases: list[tuple[str, Callable[[int], Awaitable[None]]]] = [
            ("one INSERT per table (SQLAlchemy; before)", per_table),
            ("shared.bulk (SQLAlchemy; now)", bulk),
            ("ceiling: asyncpg, the same statements", ceiling),
        ]
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in cases}
        n = 0
        for _round in range(2):
            for name, case in cases:
                for _ in range(WARM_UP):
                    n += 1
                    await case(n)
                backends = [r["pid"] for r in await admin.fetch(BACKENDS, url.rsplit("/", 1)[1])]
                pg_before, cpu_before, started = _cpu(backends), time.thread_time(), time.perf_counter()
                for _ in range(SENDS):
                    n += 1
                    await case(n)
                elapsed = time.perf_counter() - started
                results[name].append(
                    (
                        (time.thread_time() - cpu_before) * 1000 / SENDS,
                        (_cpu(backends) - pg_before) / SENDS,
                        SENDS / elapsed,
                    )
                )
                print(f"{name}: {results[name][-1][0]:.3f} ms client, {results[name][-1][1]:.3f} ms PostgreSQL")
        await raw.close()
        await admin.close()
        await db.dispose()
    print(f"\nThe send's writes, {SENDS:,} sends a case, one connection, two rounds:\n")
    print("| how | CPU ms per send, this process | PostgreSQL backend CPU ms per send | sends/s |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        client = " / ".join(f"{r[0]:.2f}" for r in runs)
        pg = " / ".join(f"{r[1]:.2f}" for r in runs)
        rate = " / ".join(f"{r[2]:,.0f}" for r in runs)
        print(f"| {name} | {client} | {pg} | {rate} |")


def _raw(part: list[tuple[str, list[dict[str, Any]]]], dialect: Any) -> tuple[str, list[str]]:
    """One of ``shared.bulk``'s statements in asyncpg's ``$n`` form, and its parameters."""
    statement, params = postgresql_statement([(TABLES[table], values) for table, values in part], dialect)
    sql = statement.text
    for i in range(len(part)):
        sql = sql.replace(f"CAST(:w{i} AS JSON)", f"CAST(${i + 1} AS JSON)")
    return sql, [params[f"w{i}"] for i in range(len(part))]


def _flat(statement: tuple[str, list[str]]) -> list[str]:
    return [statement[0], *statement[1]]


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return total
