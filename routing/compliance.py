"""The collection-law guard: `may_call(ledger, now, debt, rules, phone) -> Verdict`.

The dialler asks it before every call and no mode or user can skip it. It is pure: the debt's
contact ledger, its facts and the campaign's rule set come in, a verdict with a stable code, a
human reason and the earliest lawful retry comes out. Rule sets are data (`load_rules` reads a
JSON-compatible dict); `RULE_SETS` holds Russia's 230-FZ and the USA's Regulation F.

Local time is the debtor's: the address time zone when known (230-FZ art. 7 part 3 point 1 says
"by the debtor's place of residence or stay known to the creditor"), else every zone the number
may be in, and then each check must pass in all of them, as Reg F's commentary to
§1006.6(b)(1)(i) asks when the location is ambiguous. Days, weeks and months are counted in
those zones too, so a conversation near midnight counts against both days it might fall on.
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_zones

from routing.calendars import RU_CALENDAR, WorkCalendar

ATTEMPT = "attempt"
CONVERSATION = "conversation"
CONTACT_KINDS = (ATTEMPT, CONVERSATION)

# Stable verdict codes; the codes of frequency limits come from the rule set's data.
ALLOWED = "allowed"
DO_NOT_CALL = "do_not_call"
REFUSED_INTERACTION = "refused_interaction"
PROTECTED = "protected"
PROMISE_TO_PAY = "promise_to_pay"
TIME_ZONE_UNKNOWN = "time_zone_unknown"
OUTSIDE_HOURS = "outside_hours"
MESSAGE_KEYS = (ALLOWED, DO_NOT_CALL, REFUSED_INTERACTION, PROTECTED, PROMISE_TO_PAY,
                TIME_ZONE_UNKNOWN, OUTSIDE_HOURS, "workday", "day_off")

DAY, WEEK, MONTH, ROLLING_DAYS = "day", "week", "month", "rolling_days"
PERIODS = (DAY, WEEK, MONTH, ROLLING_DAYS)
MAX_RETRY_STEPS = 200  # jumps from one blocking rule's end to the next before giving up on a retry time


class RuleSetError(ValueError):
    """A rule set's data is incomplete or inconsistent; the message names the field."""


@dataclass(frozen=True)
class Contact:
    """One call of the ledger: `attempt` (no conversation with the debtor) or `conversation`."""

    at: datetime  # aware, UTC
    kind: str
    phone: str

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"contact time {self.at} has no time zone: store ledger times in UTC")
        if self.kind not in CONTACT_KINDS:
            raise ValueError(f"contact kind {self.kind!r} is not one of {CONTACT_KINDS}")


@dataclass(frozen=True)
class Debt:
    """The facts about a debt and its debtor that decide whether a call is lawful."""

    time_zone: str | None = None  # IANA zone of the known address; None: from the number
    do_not_call: frozenset[str] = frozenset()  # E.164 numbers the debtor or a third party barred
    refused_interaction: bool = False  # 230-FZ art. 8 statement; Reg F §1006.6(c) cease request
    protected: bool = False  # bankruptcy, incapacity, in-patient, group I disability, minor
    promise_to_pay: date | None = None  # promised payment date, debtor's local calendar


@dataclass(frozen=True)
class Hours:
    """Calling hours of one kind of day: from `start` (inclusive) to `end` (exclusive)."""

    start: time
    end: time


@dataclass(frozen=True)
class Limit:
    """At most `max_count` contacts of the `counts` kinds per period; reaching it stops calls.

    A dialled call may become a conversation, so the guard refuses once the count is reached,
    not once it is exceeded. `day`/`week` (Monday to Sunday)/`month` are calendar periods;
    `rolling_days` is the last `days` calendar days including today.
    """

    code: str
    counts: frozenset[str]
    max_count: int
    period: str
    reason: str
    days: int = 1


@dataclass(frozen=True)
class RuleSet:
    """One jurisdiction's calling law as data, chosen per campaign; built by `load_rules`."""

    name: str
    workday_hours: Hours
    day_off_hours: Hours
    calendar: WorkCalendar
    limits: tuple[Limit, ...]
    messages: Mapping[str, str]  # verdict code (and "workday"/"day_off") -> text, str.format fields


@dataclass(frozen=True)
class Verdict:
    """`next_allowed_at` (UTC) is the earliest lawful retry; None when allowed now or never."""

    allowed: bool
    reason: str
    code: str
    next_allowed_at: datetime | None = None


@dataclass(frozen=True)
class _Block:
    code: str
    reason: str
    until: datetime  # UTC


def may_call(ledger: Sequence[Contact], now: datetime, debt: Debt, rules: RuleSet, phone: str) -> Verdict:
    """May `phone` be dialled for this debt at `now`? Every refusal carries a code and a reason."""
    if now.tzinfo is None:
        raise ValueError(f"now={now} has no time zone: pass an aware UTC datetime")
    if phone in debt.do_not_call:
        return _refusal(rules, DO_NOT_CALL, phone=phone)
    if debt.refused_interaction:
        return _refusal(rules, REFUSED_INTERACTION, phone=phone)
    if debt.protected:
        return _refusal(rules, PROTECTED, phone=phone)
    zones = debtor_zones(debt, phone)
    if not zones:
        return _refusal(rules, TIME_ZONE_UNKNOWN, phone=phone)
    blocks = _blocks(ledger, now, debt, rules, zones)
    if not blocks:
        return Verdict(True, rules.messages[ALLOWED], ALLOWED)
    first = blocks[0]
    return Verdict(False, first.reason, first.code, _next_allowed(ledger, now, debt, rules, zones))


def debtor_zones(debt: Debt, phone: str) -> tuple[ZoneInfo, ...]:
    """The address zone, else every zone phonenumbers gives for the number; () when unknown."""
    if debt.time_zone:
        return (ZoneInfo(debt.time_zone),)
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return ()
    names = phone_zones.time_zones_for_number(number)
    return tuple(ZoneInfo(name) for name in names if name != phone_zones.UNKNOWN_TIMEZONE)


def _refusal(rules: RuleSet, code: str, **fields: object) -> Verdict:
    return Verdict(False, rules.messages[code].format(**fields), code)


def _next_allowed(ledger: Sequence[Contact], now: datetime, debt: Debt, rules: RuleSet,
                  zones: tuple[ZoneInfo, ...]) -> datetime | None:
    """Jump past whatever blocks until nothing does; each block is one unbroken stretch, so no
    lawful moment is skipped. None when the zones share no calling hours at all."""
    at = now
    for _ in range(MAX_RETRY_STEPS):
        blocks = _blocks(ledger, at, debt, rules, zones)
        if not blocks:
            return at
        at = max(block.until for block in blocks)
    return None


def _blocks(ledger: Sequence[Contact], at: datetime, debt: Debt, rules: RuleSet,
            zones: tuple[ZoneInfo, ...]) -> list[_Block]:
    """What forbids a call at `at`, most specific first; per rule, the zone where it blocks longest."""
    per_rule = [[_promise_block(debt.promise_to_pay, at, zone, rules) for zone in zones]]
    per_rule += [[_limit_block(limit, ledger, at, zone) for zone in zones] for limit in rules.limits]
    per_rule.append([_hours_block(at, zone, rules) for zone in zones])
    blocks = []
    for found in per_rule:
        blocking = [block for block in found if block is not None]
        if blocking:
            blocks.append(max(blocking, key=lambda block: block.until))
    return blocks


def _promise_block(promised: date | None, at: datetime, zone: ZoneInfo, rules: RuleSet) -> _Block | None:
    """A promise to pay holds calls through the promised day (the debtor's local calendar)."""
    if promised is None or at.astimezone(zone).date() > promised:
        return None
    reason = rules.messages[PROMISE_TO_PAY].format(date=promised.isoformat())
    return _Block(PROMISE_TO_PAY, reason, _midnight(promised + timedelta(days=1), zone))


def _limit_block(limit: Limit, ledger: Sequence[Contact], at: datetime, zone: ZoneInfo) -> _Block | None:
    today = at.astimezone(zone).date()
    first, after = _period(limit, today)
    dates = sorted((day for day in _local_dates(ledger, limit.counts, zone) if first <= day < after),
                   reverse=True)
    if len(dates) < limit.max_count:
        return None
    if limit.period == ROLLING_DAYS:
        after = dates[limit.max_count - 1] + timedelta(days=limit.days)
    reason = limit.reason.format(count=len(dates), max=limit.max_count, zone=zone.key)
    return _Block(limit.code, reason, _midnight(after, zone))


def _period(limit: Limit, today: date) -> tuple[date, date]:
    """[first, after) of the period holding `today`."""
    if limit.period == DAY:
        return today, today + timedelta(days=1)
    if limit.period == WEEK:
        monday = today - timedelta(days=today.weekday())
        return monday, monday + timedelta(days=7)
    if limit.period == MONTH:
        days = _calendar.monthrange(today.year, today.month)[1]
        return today.replace(day=1), today.replace(day=1) + timedelta(days=days)
    return today - timedelta(days=limit.days - 1), today + timedelta(days=1)


def _local_dates(ledger: Iterable[Contact], kinds: frozenset[str], zone: ZoneInfo) -> Iterable[date]:
    return (contact.at.astimezone(zone).date() for contact in ledger if contact.kind in kinds)


def _hours_block(at: datetime, zone: ZoneInfo, rules: RuleSet) -> _Block | None:
    local = at.astimezone(zone)
    day_off, hours = _hours(rules, local.date())
    if hours.start <= local.time() < hours.end:
        return None
    if local.time() < hours.start:
        opens = datetime.combine(local.date(), hours.start, zone)
    else:
        tomorrow = local.date() + timedelta(days=1)
        opens = datetime.combine(tomorrow, _hours(rules, tomorrow)[1].start, zone)
    reason = rules.messages[OUTSIDE_HOURS].format(
        local=local.strftime("%H:%M"), zone=zone.key, start=hours.start.strftime("%H:%M"),
        end=hours.end.strftime("%H:%M"), day=rules.messages["day_off" if day_off else "workday"])
    return _Block(OUTSIDE_HOURS, reason, _utc(opens))


def _hours(rules: RuleSet, day: date) -> tuple[bool, Hours]:
    day_off = rules.calendar.is_day_off(day)
    return day_off, rules.day_off_hours if day_off else rules.workday_hours


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return _utc(datetime.combine(day, time(0), zone))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def load_rules(data: Mapping[str, Any]) -> RuleSet:
    """A RuleSet from a JSON-compatible dict (see `RULE_SETS`); RuleSetError names what is wrong."""
    try:
        hours = data["hours"]
        messages = dict(data["messages"])
        limits = tuple(_load_limit(item) for item in data.get("limits", ()))
        rules = RuleSet(
            name=str(data["name"]),
            workday_hours=_load_hours(hours["workday"]),
            day_off_hours=_load_hours(hours["day_off"]),
            calendar=WorkCalendar.from_dict(data.get("calendar", {})),
            limits=limits,
            messages=messages,
        )
    except KeyError as missing:
        raise RuleSetError(f"rule set {data.get('name', '?')!r} lacks {missing}") from None
    absent = [key for key in MESSAGE_KEYS if key not in messages]
    if absent:
        raise RuleSetError(f"rule set {rules.name!r} has no message for {', '.join(absent)}")
    return rules


def _load_hours(span: Sequence[str]) -> Hours:
    start, end = (time.fromisoformat(text) for text in span)
    return Hours(start, end)


def _load_limit(item: Mapping[str, Any]) -> Limit:
    limit = Limit(code=str(item["code"]), counts=frozenset(item["counts"]), max_count=int(item["max"]),
                  period=str(item["period"]), reason=str(item["reason"]), days=int(item.get("days", 1)))
    if limit.period not in PERIODS:
        raise RuleSetError(f"limit {limit.code!r}: period {limit.period!r} is not one of {PERIODS}")
    if not limit.counts <= set(CONTACT_KINDS):
        raise RuleSetError(f"limit {limit.code!r}: counts {sorted(limit.counts)} must be among {CONTACT_KINDS}")
    if limit.max_count < 1 or limit.days < 1:
        raise RuleSetError(f"limit {limit.code!r}: max and days must be at least 1")
    return limit


RU_230FZ: Mapping[str, Any] = {
    "name": "ru_230fz",
    # 230-FZ art. 7 part 3 point 1: not 22:00-08:00 on working days, not 20:00-09:00 on days off.
    "hours": {"workday": ["08:00", "22:00"], "day_off": ["09:00", "20:00"]},
    "calendar": RU_CALENDAR,
    # 230-FZ art. 7 part 3 point 2: telephone conversations at most once a day, twice a week,
    # eight times a month; attempts that reach nobody are no interaction and are not counted.
    "limits": [
        {"code": "conversations_per_day", "counts": [CONVERSATION], "max": 1, "period": DAY,
         "reason": "Разговоров с должником сегодня: {count}, допускается не более {max} в сутки "
                   "(230-ФЗ ст. 7 ч. 3 п. 2 «а»)"},
        {"code": "conversations_per_week", "counts": [CONVERSATION], "max": 2, "period": WEEK,
         "reason": "Разговоров с должником на этой неделе: {count}, допускается не более {max} в неделю "
                   "(230-ФЗ ст. 7 ч. 3 п. 2 «б»)"},
        {"code": "conversations_per_month", "counts": [CONVERSATION], "max": 8, "period": MONTH,
         "reason": "Разговоров с должником в этом месяце: {count}, допускается не более {max} в месяц "
                   "(230-ФЗ ст. 7 ч. 3 п. 2 «в»)"},
    ],
    "messages": {
        ALLOWED: "Звонок разрешён",
        DO_NOT_CALL: "Номер {phone} в списке «не звонить»",
        REFUSED_INTERACTION: "Должник отказался от взаимодействия (230-ФЗ ст. 8)",
        PROTECTED: "Взаимодействие с должником запрещено: банкротство, недееспособность, стационар, "
                   "инвалидность I группы или несовершеннолетие (230-ФЗ ст. 7)",
        PROMISE_TO_PAY: "Должник обещал оплатить до {date}: звонки со следующего дня",
        TIME_ZONE_UNKNOWN: "Не удалось определить часовой пояс номера {phone}: укажите регион должника",
        OUTSIDE_HOURS: "Сейчас {local} по местному времени должника ({zone}), {day}: звонки только "
                       "с {start} до {end} (230-ФЗ ст. 7 ч. 3 п. 1)",
        "workday": "рабочий день",
        "day_off": "выходной или нерабочий праздничный день",
    },
}

US_REG_F: Mapping[str, Any] = {
    "name": "us_reg_f",
    # 12 CFR §1006.6(b)(1)(i): before 8 a.m. and after 9 p.m. local time is inconvenient.
    "hours": {"workday": ["08:00", "21:00"], "day_off": ["08:00", "21:00"]},
    # 12 CFR §1006.14(b)(2): the call-frequency presumption, per debt, over seven consecutive
    # days; the day of a conversation is the first of its seven. Every call placed counts.
    "limits": [
        {"code": "after_conversation", "counts": [CONVERSATION], "max": 1, "period": ROLLING_DAYS,
         "days": 7,
         "reason": "A telephone conversation about this debt took place within the last 7 days "
                   "(12 CFR 1006.14(b)(2)(ii))"},
        {"code": "attempts_per_7_days", "counts": [ATTEMPT, CONVERSATION], "max": 7,
         "period": ROLLING_DAYS, "days": 7,
         "reason": "{count} calls about this debt in the last 7 days, at most {max} allowed "
                   "(12 CFR 1006.14(b)(2)(i))"},
    ],
    "messages": {
        ALLOWED: "Call allowed",
        DO_NOT_CALL: "{phone} is on the do-not-call list (12 CFR 1006.14(h))",
        REFUSED_INTERACTION: "The consumer asked to cease communication (12 CFR 1006.6(c))",
        PROTECTED: "The consumer may not be called: bankruptcy stay, attorney representation or "
                   "another protection (11 U.S.C. 362, 12 CFR 1006.6(b)(2))",
        PROMISE_TO_PAY: "The consumer promised to pay by {date}: no calls before the next day",
        TIME_ZONE_UNKNOWN: "The time zone of {phone} is unknown: set the consumer's address",
        OUTSIDE_HOURS: "It is {local} at the consumer's location ({zone}): calls only from {start} "
                       "to {end} (12 CFR 1006.6(b)(1)(i))",
        "workday": "weekday",
        "day_off": "weekend",
    },
}

RULE_SETS: Mapping[str, Mapping[str, Any]] = {"ru_230fz": RU_230FZ, "us_reg_f": US_REG_F}
