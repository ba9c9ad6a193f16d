"""SQL of the statistics: the incremental refresh of the rollups from the delivery history, and
the reads of the rollups the tables are made of. Both databases: PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, delete, func, literal, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.exchange.delivery.repository import not_withdrawn
from services.exchange.delivery.status import Outcome, StatusCode
from services.exchange.models import (
    STAT_COUNTERS,
    Delivery,
    DeliveryEvent,
    Document,
    stat_agency_activity,
    stat_agency_month,
    stat_overdue,
    stat_state,
)
from services.exchange.statistics.histogram import BOUNDS, MEASURES

STATE = "rollup"
# one refresh at a time across the exchange's replicas (PostgreSQL); the loser skips its turn
LOCK_KEY = "exchange:statistics"

Grouping = Literal["agency", "month", "all"]


class StatisticsRepository:
    """The rollup tables and the history they are refreshed from."""

    def __init__(self, session: AsyncSession, *, utc_offset_minutes: int = 0, timezone: str = "UTC") -> None:
        self.session = session
        self.timezone = timezone
        self.utc_offset_minutes = utc_offset_minutes

    @property
    def postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def month_of(self, column: Any) -> ColumnElement[str]:
        """``YYYY-MM`` of a timestamp in the exchange's time zone (SQLite: its current UTC offset)."""
        if self.postgres:
            return func.to_char(func.timezone(self.timezone, column), "YYYY-MM")
        return func.strftime("%Y-%m", column, f"{self.utc_offset_minutes:+d} minutes")

    def seconds_between(self, start: Any, end: Any) -> Any:
        if self.postgres:
            return func.extract("epoch", end - start)
        return (func.julianday(end) - func.julianday(start)) * 86400.0

    # --- the refresh ---------------------------------------------------------------------------

    async def lock(self, *, wait: bool = False) -> bool:
        """Take the refresh lock for this transaction (PostgreSQL): wait for it, or give up at once
        (False) when a replica holds it."""
        if not self.postgres:
            return True
        function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
        result = await self.session.execute(text(f"SELECT {function}(hashtext(:k))::text"), {"k": LOCK_KEY})
        return result.scalar() != "false"

    async def clear(self) -> None:
        """Forget every rollup and the watermark (the next refresh counts the whole history again)."""
        for table in (stat_agency_month, stat_agency_activity, stat_overdue, stat_state):
            await self.session.execute(delete(table))

    async def refresh_state(self) -> tuple[dt.datetime, dt.datetime] | None:
        """The watermark (history before it is counted) and when the last refresh ran."""
        row = (
            await self.session.execute(
                select(stat_state.c.watermark, stat_state.c.refreshed_at).where(stat_state.c.name == STATE)
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def set_state(self, watermark: dt.datetime, refreshed_at: dt.datetime, *, exists: bool) -> None:
        if exists:
            await self.session.execute(
                stat_state.update()
                .where(stat_state.c.name == STATE)
                .values(watermark=watermark, refreshed_at=refreshed_at)
            )
        else:
            await self.session.execute(
                stat_state.insert().values(name=STATE, watermark=watermark, refreshed_at=refreshed_at)
            )

    async def first_history_at(self) -> dt.datetime | None:
        """The time of the oldest document or change in the history (None when there is none)."""
        found = []
        for column in (DeliveryEvent.created_at, Document.created_at):
            value = (await self.session.execute(select(func.min(column)))).scalar()
            if value is not None:
                found.append(_aware(value))
        return min(found) if found else None

    def _window(self, column: Any, low: dt.datetime, high: dt.datetime) -> ColumnElement[bool]:
        return and_(column >= low, column < high)

    async def recipient_changes(self, low: dt.datetime, high: dt.datetime) -> Sequence[Any]:
        """Per recipient, month sent, status and duration bucket: the changes written in the window,
        and how many 01s came by the arrival deadline."""
        seconds = self.seconds_between(Delivery.created_at, DeliveryEvent.created_at)
        bucket = case(
            (
                DeliveryEvent.status.in_(MEASURES),
                case(*((seconds < b, i) for i, b in enumerate(BOUNDS)), else_=len(BOUNDS)),
            ),
            else_=0,
        )
        in_time = case((DeliveryEvent.created_at <= Delivery.arrival_deadline, 1), else_=0)
        inner = (
            select(
                Delivery.recipient_code.label("code"),
                self.month_of(Delivery.created_at).label("month"),
                DeliveryEvent.status.label("status"),
                bucket.label("bucket"),
                in_time.label("in_time"),
            )
            .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
            .where(self._window(DeliveryEvent.created_at, low, high), applied())
            .subquery()
        )
        query = select(
            inner.c.code, inner.c.month, inner.c.status, inner.c.bucket, func.count(), func.sum(inner.c.in_time)
        ).group_by(inner.c.code, inner.c.month, inner.c.status, inner.c.bucket)
        return (await self.session.execute(query)).all()

    async def sender_changes(self, low: dt.datetime, high: dt.datetime) -> Sequence[Any]:
        """Per sender, month sent and status: the changes in the window that count for the sender
        (deliveries created, recipients reached, recalls)."""
        inner = (
            select(
                Document.sender_code.label("code"),
                self.month_of(Delivery.created_at).label("month"),
                DeliveryEvent.status.label("status"),
            )
            .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
            .join(Document, Document.id == Delivery.document_id)
            .where(
                self._window(DeliveryEvent.created_at, low, high),
                applied(),
                or_(
                    DeliveryEvent.status.in_(("pending", "01", "13")),
                    # 15 and 16 also answer an update or a replacement: a recall's answer only here
                    and_(DeliveryEvent.status.in_(("15", "16")), Delivery.recall_status.is_not(None)),
                ),
            )
            .subquery()
        )
        query = select(inner.c.code, inner.c.month, inner.c.status, func.count()).group_by(
            inner.c.code, inner.c.month, inner.c.status
        )
        return (await self.session.execute(query)).all()

    async def documents_sent(self, low: dt.datetime, high: dt.datetime) -> Sequence[Any]:
        """Per sender and month: the documents written in the window."""
        inner = (
            select(Document.sender_code.label("code"), self.month_of(Document.created_at).label("month"))
            .where(self._window(Document.created_at, low, high))
            .subquery()
        )
        query = select(inner.c.code, inner.c.month, func.count()).group_by(inner.c.code, inner.c.month)
        return (await self.session.execute(query)).all()

    async def actors(self, low: dt.datetime, high: dt.datetime) -> Sequence[Any]:
        """Per agency that acted in the window (sent, reported, recalled): its last action's time."""
        query = (
            select(DeliveryEvent.actor_code, func.max(DeliveryEvent.created_at))
            .where(self._window(DeliveryEvent.created_at, low, high))
            .group_by(DeliveryEvent.actor_code)
        )
        return (await self.session.execute(query)).all()

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.postgres else sqlite.insert)(table)

    async def add_to_months(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add counts to the monthly rollup rows (created at zero when new)."""
        if not rows:
            return
        statement = self._insert(stat_agency_month)
        statement = statement.on_conflict_do_update(
            index_elements=["agency_code", "month"],
            set_={name: stat_agency_month.c[name] + statement.excluded[name] for name in STAT_COUNTERS},
        )
        await self.session.execute(
            statement, [{name: row.get(name, 0) for name in STAT_COUNTERS} | dict(row) for row in rows]
        )

    async def touch_activity(self, rows: Sequence[tuple[str, dt.datetime]]) -> None:
        """Keep each agency's latest action."""
        if not rows:
            return
        statement = self._insert(stat_agency_activity)
        statement = statement.on_conflict_do_update(
            index_elements=["agency_code"],
            set_={
                "last_active_at": case(
                    (
                        statement.excluded.last_active_at > stat_agency_activity.c.last_active_at,
                        statement.excluded.last_active_at,
                    ),
                    else_=stat_agency_activity.c.last_active_at,
                )
            },
        )
        await self.session.execute(
            statement, [{"agency_code": code, "last_active_at": _aware(at)} for code, at in rows if code]
        )

    async def replace_overdue(self, now: dt.datetime, today: dt.date) -> None:
        """Count again, per recipient, the deliveries overdue: pending past the arrival deadline, or
        open past the due date (two partial indexes: only the late rows are read)."""
        late_arrival = (
            select(Delivery.recipient_code, func.count())
            .where(text("delivery.status = 'pending'"), Delivery.arrival_deadline < now, not_withdrawn())
            .group_by(Delivery.recipient_code)
        )
        late_completion = (
            select(Delivery.recipient_code, func.count())
            .where(
                text("delivery.due_date IS NOT NULL AND delivery.status NOT IN ('02', '06')"),
                Delivery.due_date < today,
                not_withdrawn(),
                # counted once: a pending one past its arrival deadline is in the first count
                or_(Delivery.status != StatusCode.PENDING.value, Delivery.arrival_deadline >= now),
            )
            .group_by(Delivery.recipient_code)
        )
        overdue: dict[str, int] = defaultdict(int)
        for query in (late_arrival, late_completion):
            for code, count in await self.session.execute(query):
                overdue[code] += int(count)
        await self.session.execute(delete(stat_overdue))
        if overdue:
            await self.session.execute(
                stat_overdue.insert(), [{"agency_code": code, "overdue": n} for code, n in overdue.items()]
            )

    # --- the reads -----------------------------------------------------------------------------

    async def totals(self, first: str, last: str, codes: Sequence[str] | None, by: Grouping) -> list[dict[str, Any]]:
        """The rollups summed over the months ``first``..``last`` (and over ``codes`` unless None),
        per agency, per month, or all together."""
        if codes is not None and not codes:
            return []
        params: dict[str, Any] = {"first": first, "last": last}
        if codes is not None:
            params["codes"] = list(codes)
        result = await self.session.execute(totals_statement(by, codes is not None), params)
        return [dict(row._mapping) for row in result]

    async def overdue(self) -> dict[str, int]:
        """Per agency: deliveries overdue at the last refresh."""
        rows = await self.session.execute(select(stat_overdue.c.agency_code, stat_overdue.c.overdue))
        return {code: int(late) for code, late in rows}

    async def last_active(self) -> dict[str, dt.datetime]:
        """Per agency: its latest action counted."""
        rows = await self.session.execute(
            select(stat_agency_activity.c.agency_code, stat_agency_activity.c.last_active_at)
        )
        return {code: at for code, at in rows}

    async def transfer_failures(self) -> dict[str, int]:
        """Failed webhook / bus transfers not re-sent, per channel."""
        from services.exchange.models import TransferFailure

        rows = await self.session.execute(
            select(TransferFailure.channel, func.count())
            .where(TransferFailure.resent_at.is_(None))
            .group_by(TransferFailure.channel)
        )
        return {channel: int(n) for channel, n in rows}


def applied() -> ColumnElement[bool]:
    """A change that moved the delivery: the exchange's or the sender's (no outcome), or a report
    applied; not a repeated 04/05 nor a stale report (each status counts once per delivery)."""
    return or_(DeliveryEvent.outcome.is_(None), DeliveryEvent.outcome == Outcome.APPLIED.value)


def _aware(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


@functools.cache
def totals_statement(by: Grouping, filtered: bool) -> Select[Any]:
    """The statement of :meth:`StatisticsRepository.totals`, built once (it sums a hundred columns)."""
    table = stat_agency_month
    key: Any = {"agency": table.c.agency_code, "month": table.c.month}.get(by, literal("all"))
    query = select(key.label("key"), *(func.coalesce(func.sum(table.c[n]), 0).label(n) for n in STAT_COUNTERS))
    query = query.where(table.c.month >= bindparam("first"), table.c.month <= bindparam("last"))
    if filtered:
        query = query.where(table.c.agency_code.in_(bindparam("codes", expanding=True)))
    if by != "all":
        query = query.group_by(key)
    return query
