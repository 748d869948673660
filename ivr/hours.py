"""Is a department open now: weekly hours, the holiday calendar and transferred working days.

Pure functions over plain values, so the boundaries (opening minute, closing minute, a
holiday, a Saturday worked instead of a Friday) are checked by table-driven tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

Span = tuple[time, time]
MIDNIGHT = time(0, 0)


@dataclass(frozen=True)
class HolidayCalendar:
    """Days off that fall on weekdays, and weekend days that are worked instead (the transfers)."""

    days_off: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)


def is_open(hours: Mapping[int, Span], calendar: HolidayCalendar, local: datetime) -> bool:
    """Open from `opens` (inclusive) to `closes` (exclusive) in the department's local time.

    A closing time of 00:00 means midnight. A worked weekend day keeps the hours of the first
    working weekday, as transferred days do in the Russian production calendar.
    """
    day = local.date()
    if day in calendar.days_off:
        return False
    weekday = local.weekday()
    if day in calendar.workdays and hours:
        weekday = min(hours)
    span = hours.get(weekday)
    if span is None:
        return False
    opens, closes = span
    now = local.time().replace(tzinfo=None)
    return opens <= now and (closes == MIDNIGHT or now < closes)


def is_open_at(hours: Mapping[int, Span], calendar: HolidayCalendar, timezone: str, at: datetime) -> bool:
    """`is_open` for an aware instant, seen in the department's time zone."""
    return is_open(hours, calendar, at.astimezone(ZoneInfo(timezone)))
