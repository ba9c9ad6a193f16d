"""The statistics: the incremental refresh of the rollups, and the tables read from them.

The refresh counts the history written since the watermark (minus ``settle_seconds``, so that a
transaction still open when it runs is counted next time) into per-agency monthly rows, keeps each
agency's last action, and counts the overdue deliveries again. The tables sum those rows
over the months asked for, and group them by level, month or agency with the registry's directory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from services.exchange.errors import (
    StatisticsAgencyNotFoundError,
    StatisticsLevelNotFoundError,
    StatisticsRangeInvalidError,
)
from services.exchange.models import STAT_COUNTERS
from services.exchange.statistics.directory import Directory, DirectoryGetter
from services.exchange.statistics.histogram import BUCKETS, MEASURES, column, percentile
from services.exchange.statistics.repository import StatisticsRepository
from services.exchange.statistics.schemas import (
    AgencyRow,
    AgencySort,
    AgencyTable,
    Figures,
    LevelRow,
    LevelTable,
    MonthRow,
    MonthTable,
    Selection,
    SummaryRow,
    SummaryTable,
    TableName,
)
from shared.db import Database, utcnow

log = logging.getLogger("lienthong.exchange.statistics")

ACTIVE_DAYS = 30
MAX_MONTHS = 120

# recipient-side status → rollup counter
RECIPIENT_STATUS = {
    "pending": "received",
    "01": "arrived",
    "02": "rejected",
    "03": "accepted",
    "04": "assigned",
    "05": "processing",
    "06": "completed",
}
SENDER_STATUS = {
    "pending": "deliveries_sent",
    "01": "recipients_reached",
    "13": "recalls_requested",
    "15": "recalls_agreed",
    "16": "recalls_refused",
}


def utc_offset_minutes(timezone: str, at: dt.datetime | None = None) -> int:
    """The zone's offset from UTC now, in minutes (how SQLite reads months)."""
    offset = (at or utcnow()).astimezone(ZoneInfo(timezone)).utcoffset()
    return int(offset.total_seconds() // 60) if offset else 0


@dataclass(frozen=True)
class RefreshReport:
    low: dt.datetime | None
    high: dt.datetime
    changes: int
    rows: int
    skipped: bool = False


class StatisticsRefresher:
    """Brings the rollups up to date (a background task of the exchange, or the benchmark)."""

    def __init__(
        self, database: Database, *, timezone: str, settle_seconds: float, clock: Callable[[], dt.datetime] = utcnow
    ) -> None:
        self.database = database
        self.timezone = timezone
        self.settle_seconds = settle_seconds
        self.clock = clock
        self._lock = asyncio.Lock()

    async def refresh(
        self, *, until: dt.datetime | None = None, rebuild: bool = False, wait: bool = False
    ) -> RefreshReport:
        """Count the history from the watermark up to ``until`` (default: now less the settle time);
        ``rebuild``: forget the rollups first and count the whole history again; ``wait``: wait for
        a replica's refresh to end instead of skipping this one."""
        async with self._lock, self.database.session() as session:
            now = self.clock()
            repository = StatisticsRepository(
                session, timezone=self.timezone, utc_offset_minutes=utc_offset_minutes(self.timezone, now)
            )
            high = until or now - dt.timedelta(seconds=self.settle_seconds)
            if not await repository.lock(wait=wait or rebuild):
                return RefreshReport(None, high, 0, 0, skipped=True)
            if rebuild:
                await repository.clear()
            state = await repository.refresh_state()
            low = state[0] if state is not None else await repository.first_history_at()
            changes = rows = 0
            if low is not None and low < high:
                changes, rows = await self._count(repository, low, high)
            today = now.astimezone(ZoneInfo(self.timezone)).date()
            await repository.replace_overdue(now, today)
            watermark = max(high, low) if low is not None else high
            await repository.set_state(watermark, now, exists=state is not None)
            return RefreshReport(low, watermark, changes, rows)

    async def _count(self, repository: StatisticsRepository, low: dt.datetime, high: dt.datetime) -> tuple[int, int]:
        rows: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        changes = 0
        for code, month, status, bucket, count, in_time in await repository.recipient_changes(low, high):
            changes += int(count)
            row = rows[(code, month)]
            counter = RECIPIENT_STATUS.get(status)
            if counter is not None:
                row[counter] += int(count)
            if status == "01":
                row["arrived_in_time"] += int(in_time or 0)
            if status in MEASURES:
                row[column(status, int(bucket))] += int(count)
        for code, month, status, count in await repository.sender_changes(low, high):
            rows[(code, month)][SENDER_STATUS[status]] += int(count)
        for code, month, count in await repository.documents_sent(low, high):
            rows[(code, month)]["documents_sent"] += int(count)
        await repository.add_to_months(
            [{"agency_code": code, "month": month, **counts} for (code, month), counts in rows.items()]
        )
        await repository.touch_activity([(code, at) for code, at in await repository.actors(low, high)])
        return changes, len(rows)


@dataclass(frozen=True)
class Filter:
    """The selection a table is asked for (months as YYYY-MM, inclusive)."""

    from_month: str | None = None
    to_month: str | None = None
    root: str | None = None
    level: str | None = None


def month_range(first: str, last: str) -> list[str]:
    year, month = map(int, first.split("-"))
    months = []
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def shift_month(value: str, months: int) -> str:
    year, month = map(int, value.split("-"))
    index = year * 12 + month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


HISTOGRAMS = {measure: tuple(column(measure, b) for b in range(BUCKETS)) for measure in MEASURES}


def figures(totals: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a row of summed rollups."""
    if not totals:
        return dict(NOTHING)

    def get(name: str) -> int:
        return int(totals.get(name) or 0)

    result: dict[str, Any] = {
        "documents_sent": get("documents_sent"),
        "deliveries_sent": get("deliveries_sent"),
        "recipients_reached": get("recipients_reached"),
        "documents_received": get("received"),
        "answered_01": get("arrived"),
        "answered_01_in_time": get("arrived_in_time"),
        "answered_01_in_time_share": _ratio(get("arrived_in_time"), get("received")),
        "rejected": get("rejected"),
        "completed": get("completed"),
        "recalls_requested": get("recalls_requested"),
        "recalls_agreed": get("recalls_agreed"),
    }
    for measure, names in HISTOGRAMS.items():
        counts = [totals.get(name) or 0 for name in names]
        result[f"median_hours_to_{measure}"] = _hours(percentile(counts, 0.5))
        result[f"p90_hours_to_{measure}"] = _hours(percentile(counts, 0.9))
    return result


NOTHING = figures({"documents_sent": 0})


def add_up(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for row in rows:
        for name in STAT_COUNTERS:
            total[name] += int(row.get(name) or 0)
    return total


class StatisticsService:
    """The statistics tables, over the rollups and the registry's directory."""

    def __init__(
        self,
        *,
        statistics: StatisticsRepository,
        directory: DirectoryGetter,
        timezone: str,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.statistics = statistics
        self.directory = directory
        self.timezone = timezone
        self.clock = clock

    def _months(self, selection: Filter) -> tuple[str, str]:
        this_month = self.clock().astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m")
        last = selection.to_month or this_month
        first = selection.from_month or shift_month(last, -11)
        if first > last:
            raise StatisticsRangeInvalidError(f"`from` ({first}) is after `to` ({last})", **{"from": first, "to": last})
        if len(month_range(first, last)) > MAX_MONTHS:
            raise StatisticsRangeInvalidError(f"At most {MAX_MONTHS} months at once", max_months=MAX_MONTHS)
        return first, last

    async def _scope(self, selection: Filter) -> tuple[Directory, list[str] | None]:
        """The directory and the agency codes of the selection (None: every code, known or not)."""
        directory = await self.directory()
        codes: list[str] | None = None
        if selection.root is not None:
            root = selection.root.strip().upper()
            if root not in directory.agencies:
                raise StatisticsAgencyNotFoundError(f"No agency {root} in the directory", agency_code=root)
            codes = directory.subtree(root)
        if selection.level is not None:
            if selection.level not in {level.code for level in directory.levels}:
                raise StatisticsLevelNotFoundError(
                    f"No administrative level {selection.level!r}", level=selection.level
                )
            pool = codes if codes is not None else list(directory.agencies)
            codes = [c for c in pool if c in directory.agencies and directory.agencies[c].level == selection.level]
        return directory, codes

    async def _selection(self, selection: Filter, first: str, last: str) -> dict[str, Any]:
        state = await self.statistics.refresh_state()
        return {
            "from_month": first,
            "to_month": last,
            "root": selection.root,
            "level": selection.level,
            "as_of": state[0] if state else None,
        }

    def _adoption(
        self, directory: Directory, codes: Iterable[str], active: Mapping[str, dt.datetime]
    ) -> dict[str, Any]:
        since = self.clock() - dt.timedelta(days=ACTIVE_DAYS)
        members = [c for c in codes if c in directory.agencies and directory.agencies[c].status == "active"]
        recent = sum(1 for c in members if c in active and active[c] >= since)
        return {"agencies": len(members), "agencies_active_30d": recent, "adoption_share": _ratio(recent, len(members))}

    async def summary(self, selection: Filter) -> SummaryTable:
        """One row over the whole selection."""
        first, last = self._months(selection)
        directory, codes = await self._scope(selection)
        totals = await self.statistics.totals(first, last, codes, "all")
        overdue = await self.statistics.overdue()
        active = await self.statistics.last_active()
        pool = codes if codes is not None else list(directory.agencies)
        chosen = None if codes is None else set(codes)
        late = sum(n for code, n in overdue.items() if chosen is None or code in chosen)
        row = SummaryRow(**figures(add_up(totals)), **self._adoption(directory, pool, active), overdue_now=late)
        return SummaryTable(**await self._selection(selection, first, last), rows=[row])

    async def levels(self, selection: Filter) -> LevelTable:
        """One row per level, by rank."""
        first, last = self._months(selection)
        directory, codes = await self._scope(selection)
        per_agency = {row["key"]: row for row in await self.statistics.totals(first, last, codes, "agency")}
        overdue = await self.statistics.overdue()
        active = await self.statistics.last_active()
        pool = codes if codes is not None else list(directory.agencies)
        by_level: dict[str, list[str]] = defaultdict(list)
        for code in pool:
            node = directory.agencies.get(code)
            if node is not None:
                by_level[node.level].append(code)
        rows = []
        for level in directory.levels:
            members = by_level.get(level.code)
            if not members:
                continue
            rows.append(
                LevelRow(
                    level=level.code,
                    level_name=level.name,
                    **figures(add_up(per_agency[c] for c in members if c in per_agency)),
                    **self._adoption(directory, members, active),
                    overdue_now=sum(overdue.get(c, 0) for c in members),
                )
            )
        return LevelTable(**await self._selection(selection, first, last), rows=rows)

    async def months(self, selection: Filter) -> MonthTable:
        """One row per month of the range."""
        first, last = self._months(selection)
        _directory, codes = await self._scope(selection)
        per_month = {row["key"]: row for row in await self.statistics.totals(first, last, codes, "month")}
        rows = [MonthRow(month=month, **figures(per_month.get(month, {}))) for month in month_range(first, last)]
        return MonthTable(**await self._selection(selection, first, last), rows=rows)

    async def agencies(
        self, selection: Filter, *, sort: AgencySort = AgencySort.CODE, limit: int | None = None
    ) -> AgencyTable:
        """One row per agency of the selection."""
        first, last = self._months(selection)
        directory, codes = await self._scope(selection)
        per_agency = {row["key"]: row for row in await self.statistics.totals(first, last, codes, "agency")}
        overdue = await self.statistics.overdue()
        active = await self.statistics.last_active()
        pool = (
            codes if codes is not None else list(directory.agencies) + sorted(set(per_agency) - set(directory.agencies))
        )
        rows = []
        for code in pool:
            node = directory.agencies.get(code)
            rows.append(
                AgencyRow(
                    agency_code=code,
                    agency_name=node.name if node else None,
                    level=node.level if node else None,
                    parent_code=node.parent_code if node else None,
                    status=node.status if node else None,
                    **figures(per_agency.get(code, {})),
                    overdue_now=overdue.get(code, 0),
                    last_active_at=active.get(code),
                )
            )
        rows = sort_agencies(rows, sort)
        if limit is not None:
            rows = rows[:limit]
        return AgencyTable(**await self._selection(selection, first, last), rows=rows)

    async def table(self, name: TableName, selection: Filter, *, sort: AgencySort = AgencySort.CODE) -> Selection:
        """Any of the tables, by name (the exports)."""
        if name is TableName.SUMMARY:
            return await self.summary(selection)
        if name is TableName.LEVELS:
            return await self.levels(selection)
        if name is TableName.MONTHS:
            return await self.months(selection)
        return await self.agencies(selection, sort=sort)


def sort_agencies(rows: Sequence[AgencyRow], sort: AgencySort) -> list[AgencyRow]:
    if sort is AgencySort.SENT:
        return sorted(rows, key=lambda r: (-r.documents_sent, r.agency_code))
    if sort is AgencySort.RECEIVED:
        return sorted(rows, key=lambda r: (-r.documents_received, r.agency_code))
    if sort is AgencySort.SLOWEST:
        return sorted(rows, key=lambda r: (r.p90_hours_to_01 is None, -(r.p90_hours_to_01 or 0), r.agency_code))
    if sort is AgencySort.OVERDUE:
        return sorted(rows, key=lambda r: (-r.overdue_now, r.agency_code))
    return sorted(rows, key=lambda r: r.agency_code)


__all__ = ["Figures", "Filter", "StatisticsRefresher", "StatisticsService"]
