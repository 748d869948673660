"""Business hours and the holiday calendar at their boundaries, including the preloaded 2026-2027 days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy import select

from crm_core.db import make_engine, make_sessionmaker
from crm_core.migrate import upgrade
from ivr.hours import HolidayCalendar, is_open, is_open_at
from ivr.models import Holiday
from ivr.service import holiday_calendar

WEEK = {d: (time(9), time(18)) for d in range(5)} | {5: (time(10), time(16))}
CAL = HolidayCalendar(days_off=frozenset({date(2026, 3, 9), date(2026, 5, 11)}),
                      workdays=frozenset({date(2026, 11, 7)}))


@pytest.mark.parametrize(("local", "expected"), [
    (datetime(2026, 3, 10, 8, 59, 59), False),  # Tuesday, a second before opening
    (datetime(2026, 3, 10, 9, 0), True),  # opening minute
    (datetime(2026, 3, 10, 17, 59, 59), True),
    (datetime(2026, 3, 10, 18, 0), False),  # closing minute is closed
    (datetime(2026, 3, 14, 10, 0), True),  # Saturday hours
    (datetime(2026, 3, 14, 16, 0), False),
    (datetime(2026, 3, 15, 12, 0), False),  # Sunday: no hours
    (datetime(2026, 3, 9, 12, 0), False),  # Monday, transferred day off
    (datetime(2026, 5, 11, 9, 0), False),
    (datetime(2026, 11, 7, 9, 0), True),  # a Saturday worked instead: Monday's hours
    (datetime(2026, 11, 7, 8, 59), False),
])
def test_department_open_at_the_boundaries(local: datetime, expected: bool) -> None:
    assert is_open(WEEK, CAL, local) is expected


@pytest.mark.parametrize(("at_utc", "expected"), [
    (datetime(2026, 3, 10, 5, 59, tzinfo=UTC), False),  # 08:59 in Moscow
    (datetime(2026, 3, 10, 6, 0, tzinfo=UTC), True),  # 09:00 in Moscow
    (datetime(2026, 3, 10, 14, 59, tzinfo=UTC), True),
    (datetime(2026, 3, 10, 15, 0, tzinfo=UTC), False),  # 18:00 in Moscow
])
def test_hours_are_read_in_the_department_time_zone(at_utc: datetime, expected: bool) -> None:
    assert is_open_at(WEEK, CAL, "Europe/Moscow", at_utc) is expected


def test_closing_at_midnight_means_the_end_of_the_day() -> None:
    late = {0: (time(20), time(0))}
    assert is_open(late, CAL, datetime(2026, 3, 16, 23, 59, 59))
    assert not is_open(late, CAL, datetime(2026, 3, 16, 19, 59))


def test_migration_preloads_russian_public_holidays(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session:
            calendar = holiday_calendar(session)
            names = dict(session.execute(select(Holiday.day, Holiday.name)).all())
    finally:
        engine.dispose()
    for year in (2026, 2027):
        for month, day in [(1, d) for d in range(1, 9)] + [(2, 23), (3, 8), (5, 1), (5, 9), (6, 12), (11, 4)]:
            assert date(year, month, day) in calendar.days_off, (year, month, day)
    assert {date(2026, 1, 9), date(2026, 12, 31), date(2026, 3, 9), date(2026, 5, 11),
            date(2027, 5, 3), date(2027, 5, 10), date(2027, 6, 14)} <= calendar.days_off
    assert names[date(2026, 6, 12)] == "День России"
    assert not is_open(WEEK, calendar, datetime(2026, 12, 31, 12, 0))  # Thursday, transferred day off
    assert is_open(WEEK, calendar, datetime(2026, 12, 30, 12, 0))
