"""Working days and hours for deadlines (Decree 30/2020, Art. 4).

A day is a working day unless it is a weekend day or a day off; a make-up working day (làm bù) on
a weekend is a working day. The days off and make-up days of each year come from the national data
of the ``holidays`` package (Labor Code 2019, Art. 112: Tết and Giỗ Tổ Hùng Vương by the Vietnamese
lunar calendar, UTC+7; a holiday on a weekend moved to the next working day; the yearly swaps the
Government announces), unless the calendar file (``LIENTHONG_EXCHANGE__CALENDAR_FILE``) gives the
year: then the file's days replace them. ``python -m services.exchange.calendar 2027`` prints a
year as a calendar file, to start one from.

The calendar file (TOML), one table per year::

    [2027]
    source = "Thông báo số …/TB-BNV"        # optional: where the days come from
    days_off = [2027-01-01, 2027-02-04]     # days off on weekdays: holidays, swapped days
    working_days = [2027-02-20]             # weekend days worked (make-up days)
"""

from __future__ import annotations

import datetime as dt
import sys
import tomllib
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import version
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

MAX_SEARCH_DAYS = 366  # a calendar without a working day for a year is a configuration error


class CalendarYear(BaseModel):
    """One year of a calendar file: its days off and its make-up working days."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, max_length=500)
    days_off: list[dt.date] = Field(default_factory=list)
    working_days: list[dt.date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> CalendarYear:
        if both := set(self.days_off) & set(self.working_days):
            raise ValueError(f"a day cannot be both off and worked: {sorted(d.isoformat() for d in both)}")
        return self


CALENDAR_FILE = TypeAdapter(dict[int, CalendarYear])


def read_calendar_file(path: Path) -> dict[int, CalendarYear]:
    """Read and check a calendar file; raise ValueError naming the problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"calendar file {path}: {exc}") from exc
    try:
        years = CALENDAR_FILE.validate_python(raw)
    except ValidationError as exc:
        raise ValueError(f"calendar file {path}: {exc}") from exc
    for year, days in years.items():
        strays = [d for d in (*days.days_off, *days.working_days) if d.year != year]
        if strays:
            raise ValueError(f"calendar file {path}: [{year}] lists days of another year: {strays[:5]}")
    return years


@cache
def national_year(year: int) -> CalendarYear:
    """The national days off and make-up working days of a year (the ``holidays`` package)."""
    import holidays  # on first use: every process reads the settings, few compute deadlines

    national = holidays.country_holidays("VN", years=year)
    return CalendarYear(
        source=f"holidays {version('holidays')} (VN)",
        days_off=sorted(day for day in national if day.weekday() < 5),
        working_days=sorted(day for day in national.weekend_workdays if day.year == year),
    )


def parse_office_hours(value: str) -> tuple[dt.time, dt.time]:
    """``"07:30-17:00"`` → (07:30, 17:00); raise ValueError for anything else."""
    try:
        opens, closes = (dt.time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError as exc:
        raise ValueError(f"office hours must read HH:MM-HH:MM, e.g. 07:30-17:00, not {value!r}") from exc
    if not opens < closes:
        raise ValueError(f"office hours must open before they close: {value!r}")
    return opens, closes


class WorkingCalendar:
    """Working days (national data, the calendar file, extra ``holidays``) in one time zone, the
    office hours of a working day, and the deadlines computed with them."""

    def __init__(
        self,
        holidays: Iterable[dt.date] = (),
        timezone: str = "Asia/Ho_Chi_Minh",
        *,
        years: Mapping[int, CalendarYear] | None = None,
        national: bool = True,
        office_hours: str = "07:30-17:00",
        urgent_hours: float = 2.0,
    ) -> None:
        self.holidays = frozenset(holidays)
        self.zone = ZoneInfo(timezone)
        self.years = dict(years or {})
        self.national = national
        self.opens, self.closes = parse_office_hours(office_hours)
        self.urgent = dt.timedelta(hours=urgent_hours)
        self._days: dict[int, tuple[frozenset[dt.date], frozenset[dt.date]]] = {}

    def year(self, year: int) -> tuple[frozenset[dt.date], frozenset[dt.date]]:
        """A year's days off and make-up working days (the file's, else the national data)."""
        if (days := self._days.get(year)) is None:
            given = self.years.get(year) or (national_year(year) if self.national else CalendarYear())
            days = (frozenset(given.days_off), frozenset(given.working_days))
            self._days[year] = days
        return days

    def is_working_day(self, day: dt.date) -> bool:
        days_off, working_days = self.year(day.year)
        if day in working_days:
            return True
        return day.weekday() < 5 and day not in days_off and day not in self.holidays

    def next_working_day(self, day: dt.date) -> dt.date:
        for _ in range(MAX_SEARCH_DAYS):
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                return day
        raise ValueError(f"no working day in the year after {day.isoformat()}: check the calendar")

    def arrival_deadline(self, sent_at: dt.datetime, *, urgent: bool = False) -> dt.datetime:
        """When a received document must be registered (03) or returned (02) by (Decree 30, Art. 4).

        Normal documents: the end (local midnight) of the next working day after the day it arrived
        (the same day, at the latest the next working day). Urgent ones (Khẩn, Thượng khẩn, Hỏa tốc)
        "at once": within ``urgent_hours`` of office hours on working days."""
        if urgent:
            return self.after_working_hours(sent_at, self.urgent)
        local_day = sent_at.astimezone(self.zone).date()
        deadline_day = self.next_working_day(local_day)
        end = dt.datetime.combine(deadline_day + dt.timedelta(days=1), dt.time(), tzinfo=self.zone)
        return end.astimezone(dt.UTC)

    def after_working_hours(self, start: dt.datetime, span: dt.timedelta) -> dt.datetime:
        """The moment ``span`` of office hours on working days has passed since ``start``."""
        cursor = start.astimezone(self.zone)
        left = span
        for _ in range(MAX_SEARCH_DAYS * 2):
            day = cursor.date()
            if self.is_working_day(day):
                opens = dt.datetime.combine(day, self.opens, tzinfo=self.zone)
                closes = dt.datetime.combine(day, self.closes, tzinfo=self.zone)
                cursor = max(cursor, opens)
                if cursor < closes:
                    if closes - cursor >= left:
                        return (cursor + left).astimezone(dt.UTC)
                    left -= closes - cursor
            cursor = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=self.zone)
        raise ValueError("no office hours in the year after the start: check the calendar")

    def today(self, now: dt.datetime) -> dt.date:
        return now.astimezone(self.zone).date()


def calendar_toml(years: Iterable[int]) -> str:
    """The national data of these years, written as a calendar file."""
    lines = ["# LienThong working calendar (LIENTHONG_EXCHANGE__CALENDAR_FILE): days off and make-up working days"]
    for year in years:
        data = national_year(year)
        lines += [
            "",
            f"[{year}]",
            f'source = "{data.source}"',
            f"days_off = [{', '.join(d.isoformat() for d in data.days_off)}]",
            f"working_days = [{', '.join(d.isoformat() for d in data.working_days)}]",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(calendar_toml(int(arg) for arg in sys.argv[1:]), end="")
