"""Working days for deadlines: weekends and the configured public holidays are not working days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo


class WorkingCalendar:
    def __init__(self, holidays: Iterable[dt.date] = (), timezone: str = "Asia/Ho_Chi_Minh") -> None:
        self.holidays = frozenset(holidays)
        self.zone = ZoneInfo(timezone)

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def next_working_day(self, day: dt.date) -> dt.date:
        day += dt.timedelta(days=1)
        while not self.is_working_day(day):
            day += dt.timedelta(days=1)
        return day

    def arrival_deadline(self, sent_at: dt.datetime) -> dt.datetime:
        """The end (local midnight) of the working day after the day a document was sent:
        receipt must be reported by then (Decree 30: the same day, at the latest the next working day)."""
        local_day = sent_at.astimezone(self.zone).date()
        deadline_day = self.next_working_day(local_day)
        end = dt.datetime.combine(deadline_day + dt.timedelta(days=1), dt.time(), tzinfo=self.zone)
        return end.astimezone(dt.UTC)

    def today(self, now: dt.datetime) -> dt.date:
        return now.astimezone(self.zone).date()
