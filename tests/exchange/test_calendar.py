"""The working calendar (no database): the national days off with Tết and Giỗ Tổ by the Vietnamese
lunar calendar, make-up working Saturdays, the calendar file that replaces a year, office hours,
and the Decree 30 deadlines computed with them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest
from pydantic import ValidationError

from services.exchange.calendar import WorkingCalendar, calendar_toml, national_year, read_calendar_file
from services.exchange.config import ExchangeSection

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
D = dt.date.fromisoformat

# Mùng 1 Tết by the Vietnamese calendar (UTC+7), from the published lunar calendars: 2030 is a year
# where it differs from the Chinese one (2030-02-03), which a Chinese-calendar library would get wrong.
TET = ["2025-01-29", "2026-02-17", "2027-02-06", "2028-01-26", "2029-02-13", "2030-02-02", "2031-01-23", "2032-02-11"]


def local(day: str, time: str) -> dt.datetime:
    return dt.datetime.combine(D(day), dt.time.fromisoformat(time), tzinfo=HCM)


def end_of(day: str) -> dt.datetime:
    return dt.datetime.combine(D(day) + dt.timedelta(days=1), dt.time(), tzinfo=HCM).astimezone(dt.UTC)


def test_national_data_knows_tet_gio_to_and_the_yearly_swaps() -> None:
    calendar = WorkingCalendar()
    for tet in map(D, TET):
        assert holidays.country_holidays("VN", years=tet.year, language="en_US").get(tet) == "Lunar New Year"
        tet_days = [tet + dt.timedelta(days=n) for n in range(-1, 4)]  # the eve and the first four days
        assert all(not calendar.is_working_day(day) for day in tet_days), tet
    assert not calendar.is_working_day(D("2025-04-07"))  # Giỗ Tổ, 10/3 lunar, a Monday
    assert not calendar.is_working_day(D("2026-04-27"))  # Giỗ Tổ on Sunday 26/4: the Monday after is off
    # 2025: Friday 2 May off, worked on Saturday 26 April instead
    assert calendar.is_working_day(D("2025-04-26")) and not calendar.is_working_day(D("2025-05-02"))
    assert calendar.is_working_day(D("2026-08-22")) and not calendar.is_working_day(D("2026-08-31"))
    assert not calendar.is_working_day(D("2025-09-01")) and not calendar.is_working_day(D("2025-09-02"))
    assert calendar.is_working_day(D("2025-09-03")) and not calendar.is_working_day(D("2025-09-06"))
    for year in range(2025, 2033):
        days_off = national_year(year).days_off
        assert D(f"{year}-01-01") in days_off or D(f"{year}-01-01").weekday() >= 5
        assert 10 <= len(days_off) <= 16, (year, days_off)


def test_deadline_is_the_end_of_the_next_working_day_across_tet_and_make_up_days() -> None:
    calendar = WorkingCalendar()
    # arrived the Friday before Tết 2026 (16–20 February off): due by the end of Monday 23 February
    assert calendar.arrival_deadline(local("2026-02-13", "15:00")) == end_of("2026-02-23")
    # arrived Friday 25 April 2025: Saturday 26 is a make-up working day
    assert calendar.arrival_deadline(local("2025-04-25", "10:00")) == end_of("2025-04-26")
    # arrived Tuesday 29 April 2025: 30 April – 4 May off
    assert calendar.arrival_deadline(local("2025-04-29", "10:00")) == end_of("2025-05-05")


def test_urgent_documents_are_due_within_office_hours() -> None:
    calendar = WorkingCalendar(office_hours="07:30-17:00", urgent_hours=2)

    def urgent(day: str, time: str) -> dt.datetime:
        return calendar.arrival_deadline(local(day, time), urgent=True).astimezone(HCM)

    assert urgent("2026-11-17", "10:00") == local("2026-11-17", "12:00")  # a Tuesday morning
    assert urgent("2026-11-17", "06:00") == local("2026-11-17", "09:30")  # before the office opens
    assert urgent("2026-11-17", "16:30") == local("2026-11-18", "09:00")  # half an hour today, the rest tomorrow
    assert urgent("2026-11-21", "20:00") == local("2026-11-23", "09:30")  # Saturday evening: Monday
    assert urgent("2026-11-23", "16:00") == local("2026-11-25", "08:30")  # Tuesday 24 is a day off
    assert urgent("2026-11-17", "15:00") == local("2026-11-17", "17:00")  # exactly at closing time
    slow = WorkingCalendar(office_hours="08:00-12:00", urgent_hours=10)
    assert slow.arrival_deadline(local("2026-11-17", "09:00"), urgent=True) == local("2026-11-19", "11:00")


def test_a_calendar_file_replaces_the_years_it_lists(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text(
        '[2027]\nsource = "Thông báo thử"\ndays_off = [2027-01-01, 2027-03-03]\nworking_days = [2027-03-06]\n',
        encoding="utf-8",
    )
    years = read_calendar_file(path)
    calendar = WorkingCalendar(years=years)
    assert not calendar.is_working_day(D("2027-03-03"))  # the file's day off
    assert calendar.is_working_day(D("2027-03-06"))  # a Saturday worked
    assert calendar.is_working_day(D("2027-02-08"))  # the national Tết days of 2027 are replaced
    assert not calendar.is_working_day(D("2028-01-26"))  # other years keep the national data
    extra = WorkingCalendar([D("2027-03-04")], years=years)
    assert not extra.is_working_day(D("2027-03-04"))  # LIENTHONG_EXCHANGE__HOLIDAYS adds to it

    # what `python -m services.exchange.calendar` prints is a calendar file of the national data
    path.write_text(calendar_toml([2025, 2026]), encoding="utf-8")
    assert read_calendar_file(path) == {2025: national_year(2025), 2026: national_year(2026)}
    assert ExchangeSection(calendar_file=path).calendar_file == path


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[2027\n", "calendar file"),
        ("[2027]\ndays_off = [2028-01-01]\n", "another year"),
        ("[2027]\ndays_off = [2027-03-06]\nworking_days = [2027-03-06]\n", "both off and worked"),
        ("[2027]\nholidays = [2027-01-01]\n", "holidays"),
        ('[2027]\ndays_off = ["soon"]\n', "days_off"),
        ("[năm]\ndays_off = []\n", "calendar file"),
    ],
)
def test_a_bad_calendar_file_is_refused_at_start_naming_the_problem(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValidationError, match=problem):
        ExchangeSection(calendar_file=path)


def test_office_hours_and_the_urgent_span_are_checked() -> None:
    for bad in ("17:00-07:30", "7h30-17h", "07:30"):
        with pytest.raises(ValidationError, match="office hours"):
            ExchangeSection(office_hours=bad)
    with pytest.raises(ValidationError):
        ExchangeSection(urgent_deadline_hours=0)
    with pytest.raises(ValidationError):
        ExchangeSection(calendar_file=Path("/nonexistent/calendar.toml"))
