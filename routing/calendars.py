"""Working and non-working days for the dialler's calling hours, as data.

Collection law allows different hours on working days and on days off (230-FZ art. 7 part 3
point 1), so the guard needs to know which one a debtor's local date is. A calendar is loaded
from a JSON-compatible dict: weekend weekdays, public holidays that recur every year, and the
dates a government decree moves for one year (extra days off, weekend days worked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any


@dataclass(frozen=True)
class WorkCalendar:
    """`workdays` (weekend days worked by decree) win over weekends; holidays and `days_off` win over both."""

    weekend: frozenset[int] = frozenset({5, 6})  # date.weekday(): Saturday, Sunday
    holidays: frozenset[tuple[int, int]] = frozenset()  # (month, day), every year
    days_off: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def is_day_off(self, day: date) -> bool:
        if day in self.days_off or (day.month, day.day) in self.holidays:
            return True
        return day.weekday() in self.weekend and day not in self.workdays

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkCalendar:
        """`holidays` as "MM-DD", `days_off`/`workdays` as ISO dates, `weekend` as weekday numbers (Monday 0)."""
        return cls(
            weekend=frozenset(int(d) for d in data.get("weekend", (5, 6))),
            holidays=frozenset(_month_day(s) for s in data.get("holidays", ())),
            days_off=frozenset(date.fromisoformat(s) for s in data.get("days_off", ())),
            workdays=frozenset(date.fromisoformat(s) for s in data.get("workdays", ())),
        )


def _month_day(text: str) -> tuple[int, int]:
    month, day = text.split("-")
    return int(month), int(day)


# Labour Code art. 112 part 1 (non-working public holidays) and, for 2026, the Government's
# transfer decree (3 Jan -> 9 Jan, 4 Jan -> 31 Dec) plus art. 112 part 2 (8 Mar, a Sunday ->
# 9 Mar; 9 May, a Saturday -> 11 May): the days the IVR's migration 0002 preloads. Other
# years get the fixed holidays only until their transfers are added here.
RU_CALENDAR: Mapping[str, Any] = {
    "weekend": [5, 6],
    "holidays": ["01-01", "01-02", "01-03", "01-04", "01-05", "01-06", "01-07", "01-08",
                 "02-23", "03-08", "05-01", "05-09", "06-12", "11-04"],
    "days_off": ["2026-01-09", "2026-03-09", "2026-05-11", "2026-12-31"],
    "workdays": [],
}
