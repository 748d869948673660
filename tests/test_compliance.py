"""may_call(): collection-law limits at their boundaries, each refusal with its code, reason and retry time."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from routing.compliance import (
    ALLOWED,
    DO_NOT_CALL,
    OUTSIDE_HOURS,
    PROMISE_TO_PAY,
    PROTECTED,
    REFUSED_INTERACTION,
    RU_230FZ,
    RULE_SETS,
    TIME_ZONE_UNKNOWN,
    US_REG_F,
    Contact,
    Debt,
    RuleSetError,
    Verdict,
    load_rules,
    may_call,
)
from routing.compliance import ATTEMPT as ATT
from routing.compliance import CONVERSATION as CONV

RU = load_rules(RU_230FZ)
US = load_rules(US_REG_F)
MOSCOW_PHONE = "+74951234567"  # one zone: Europe/Moscow
VLADIVOSTOK_PHONE = "+74232123456"  # one zone: Asia/Vladivostok
MOBILE_PHONE = "+79161234567"  # a +7 mobile: phonenumbers gives 16 zones, Bucharest to Anadyr
NEW_YORK_PHONE = "+12125551234"
MSK = ZoneInfo("Europe/Moscow")
NYC = ZoneInfo("America/New_York")

WORKDAY = "рабочий день: звонки только с 08:00 до 22:00 (230-ФЗ ст. 7 ч. 3 п. 1)"
DAY_OFF = "выходной или нерабочий праздничный день: звонки только с 09:00 до 20:00 (230-ФЗ ст. 7 ч. 3 п. 1)"


def local(zone: ZoneInfo, text: str) -> datetime:
    """'2026-03-10 21:59' on the debtor's wall clock, as the UTC instant the guard receives."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)


def msk(text: str) -> datetime:
    return local(MSK, text)


def nyc(text: str) -> datetime:
    return local(NYC, text)


def ledger(zone: ZoneInfo, *calls: tuple[str, str]) -> list[Contact]:
    return [Contact(local(zone, at), kind, MOSCOW_PHONE) for kind, at in calls]


def refused(code: str, reason: str, retry: datetime | None) -> Verdict:
    return Verdict(False, reason, code, retry)


RU_ALLOWED = Verdict(True, "Звонок разрешён", ALLOWED)
US_ALLOWED = Verdict(True, "Call allowed", ALLOWED)


@pytest.mark.parametrize(("now", "expected"), [
    pytest.param("2026-03-10 21:59", RU_ALLOWED, id="workday-21:59"),
    pytest.param("2026-03-10 22:00", refused(
        OUTSIDE_HOURS, f"Сейчас 22:00 по местному времени должника (Europe/Moscow), {WORKDAY}",
        msk("2026-03-11 08:00")), id="workday-22:00"),
    pytest.param("2026-03-10 07:59", refused(
        OUTSIDE_HOURS, f"Сейчас 07:59 по местному времени должника (Europe/Moscow), {WORKDAY}",
        msk("2026-03-10 08:00")), id="workday-07:59"),
    pytest.param("2026-03-10 08:00", RU_ALLOWED, id="workday-08:00"),
    pytest.param("2026-03-13 22:00", refused(  # Friday night: Saturday opens at 09:00, not 08:00
        OUTSIDE_HOURS, f"Сейчас 22:00 по местному времени должника (Europe/Moscow), {WORKDAY}",
        msk("2026-03-14 09:00")), id="friday-22:00-retry-saturday-09:00"),
    pytest.param("2026-03-14 08:59", refused(
        OUTSIDE_HOURS, f"Сейчас 08:59 по местному времени должника (Europe/Moscow), {DAY_OFF}",
        msk("2026-03-14 09:00")), id="saturday-08:59"),
    pytest.param("2026-03-14 09:00", RU_ALLOWED, id="saturday-09:00"),
    pytest.param("2026-03-14 19:59", RU_ALLOWED, id="saturday-19:59"),
    pytest.param("2026-03-15 20:00", refused(  # Sunday evening: Monday opens at 08:00
        OUTSIDE_HOURS, f"Сейчас 20:00 по местному времени должника (Europe/Moscow), {DAY_OFF}",
        msk("2026-03-16 08:00")), id="sunday-20:00-retry-monday-08:00"),
    pytest.param("2026-06-12 08:30", refused(  # Russia Day, a Friday
        OUTSIDE_HOURS, f"Сейчас 08:30 по местному времени должника (Europe/Moscow), {DAY_OFF}",
        msk("2026-06-12 09:00")), id="holiday-08:30"),
    pytest.param("2026-06-12 20:00", refused(
        OUTSIDE_HOURS, f"Сейчас 20:00 по местному времени должника (Europe/Moscow), {DAY_OFF}",
        msk("2026-06-13 09:00")), id="holiday-20:00"),
    pytest.param("2026-06-11 21:30", RU_ALLOWED, id="eve-of-holiday-21:30"),
    pytest.param("2026-03-09 08:30", refused(  # Monday, day off transferred from Sunday 8 March
        OUTSIDE_HOURS, f"Сейчас 08:30 по местному времени должника (Europe/Moscow), {DAY_OFF}",
        msk("2026-03-09 09:00")), id="transferred-day-off-2026-03-09"),
    pytest.param("2026-12-31 20:30", refused(  # Thursday, day off transferred from 4 January
        OUTSIDE_HOURS, f"Сейчас 20:30 по местному времени должника (Europe/Moscow), {DAY_OFF}",
        msk("2027-01-01 09:00")), id="transferred-day-off-2026-12-31"),
    pytest.param("2027-02-23 08:30", refused(  # fixed holidays hold in every year
        OUTSIDE_HOURS, f"Сейчас 08:30 по местному времени должника (Europe/Moscow), {DAY_OFF}",
        msk("2027-02-23 09:00")), id="fixed-holiday-2027-02-23"),
])
def test_russian_calling_hours_in_debtor_local_time(now: str, expected: Verdict) -> None:
    assert may_call([], msk(now), Debt(), RU, MOSCOW_PHONE) == expected


def per_day(n: int) -> str:
    return f"Разговоров с должником сегодня: {n}, допускается не более 1 в сутки (230-ФЗ ст. 7 ч. 3 п. 2 «а»)"


def per_week(n: int) -> str:
    return (f"Разговоров с должником на этой неделе: {n}, допускается не более 2 в неделю "
            "(230-ФЗ ст. 7 ч. 3 п. 2 «б»)")


def per_month(n: int) -> str:
    return (f"Разговоров с должником в этом месяце: {n}, допускается не более 8 в месяц "
            "(230-ФЗ ст. 7 ч. 3 п. 2 «в»)")


# Two conversations in each calendar week of March 2026 up to the 29th: 8 in the month.
MARCH_EIGHT = [(CONV, f"2026-03-{day:02d} 12:00") for day in (2, 3, 10, 11, 17, 18, 24, 25)]


@pytest.mark.parametrize(("calls", "now", "expected"), [
    pytest.param([(CONV, "2026-03-10 10:00")], "2026-03-10 15:00", refused(
        "conversations_per_day", per_day(1), msk("2026-03-11 08:00")), id="second-conversation-same-day"),
    pytest.param([(ATT, "2026-03-10 10:00"), (ATT, "2026-03-10 11:00"), (ATT, "2026-03-10 12:00")],
                 "2026-03-10 15:00", RU_ALLOWED, id="unanswered-attempts-are-no-interaction"),
    pytest.param([(CONV, "2026-03-09 21:50")], "2026-03-10 08:00", RU_ALLOWED,
                 id="calendar-day-not-24-hours"),
    pytest.param([(CONV, "2026-03-09 12:00"), (CONV, "2026-03-10 12:00")], "2026-03-11 12:00", refused(
        "conversations_per_week", per_week(2), msk("2026-03-16 08:00")), id="third-conversation-in-week"),
    pytest.param([(CONV, "2026-03-09 12:00"), (CONV, "2026-03-12 12:00")], "2026-03-15 12:00", refused(
        "conversations_per_week", per_week(2), msk("2026-03-16 08:00")), id="sunday-still-same-week"),
    pytest.param([(CONV, "2026-03-14 12:00"), (CONV, "2026-03-15 12:00")], "2026-03-16 08:00", RU_ALLOWED,
                 id="monday-resets-calendar-week"),
    pytest.param(MARCH_EIGHT[:7], "2026-03-31 12:00", RU_ALLOWED, id="seventh-in-month-then-one-more"),
    pytest.param(MARCH_EIGHT, "2026-03-31 12:00", refused(
        "conversations_per_month", per_month(8), msk("2026-04-01 08:00")), id="ninth-in-month"),
    pytest.param(MARCH_EIGHT, "2026-04-01 08:00", RU_ALLOWED, id="first-of-month-resets"),
    pytest.param([(CONV, "2026-03-30 12:00"), (CONV, "2026-03-31 12:00")], "2026-04-01 12:00", refused(
        "conversations_per_week", per_week(2), msk("2026-04-06 08:00")), id="week-spans-month-edge"),
])
def test_russian_conversation_limits_per_calendar_day_week_month(
        calls: list[tuple[str, str]], now: str, expected: Verdict) -> None:
    assert may_call(ledger(MSK, *calls), msk(now), Debt(), RU, MOSCOW_PHONE) == expected


def far_east_hours(local_time: str, zone: str = "Asia/Vladivostok") -> str:
    return f"Сейчас {local_time} по местному времени должника ({zone}), {WORKDAY}"


AT_12_UTC = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 15:00 in Moscow, 22:00 in Vladivostok


@pytest.mark.parametrize(("debt", "phone", "now", "expected"), [
    pytest.param(Debt(), MOSCOW_PHONE, AT_12_UTC, RU_ALLOWED, id="moscow-number-15:00"),
    pytest.param(Debt(), VLADIVOSTOK_PHONE, AT_12_UTC, refused(
        OUTSIDE_HOURS, far_east_hours("22:00"), datetime(2026, 3, 10, 22, 0, tzinfo=UTC)),
        id="vladivostok-number-22:00"),
    pytest.param(Debt(time_zone="Asia/Vladivostok"), MOSCOW_PHONE, AT_12_UTC, refused(
        OUTSIDE_HOURS, far_east_hours("22:00"), datetime(2026, 3, 10, 22, 0, tzinfo=UTC)),
        id="address-zone-beats-number"),
    pytest.param(Debt(time_zone="Europe/Moscow"), VLADIVOSTOK_PHONE, AT_12_UTC, RU_ALLOWED,
                 id="moscow-address-vladivostok-number"),
    # The mobile's zones run from Bucharest (UTC+2) to Anadyr (UTC+12): the window shared by all
    # of them on a working day is 08:00-12:00 in Bucharest, 06:00-10:00 UTC. The reason names the
    # zone that stays closed longest (Magadan opens at 21:00 UTC, Anadyr at 20:00 UTC).
    pytest.param(Debt(), MOBILE_PHONE, datetime(2026, 3, 10, 11, 30, tzinfo=UTC), refused(
        OUTSIDE_HOURS, far_east_hours("22:30", "Asia/Magadan"), datetime(2026, 3, 11, 6, 0, tzinfo=UTC)),
        id="mobile-eastern-zones-closed"),
    pytest.param(Debt(), MOBILE_PHONE, datetime(2026, 3, 10, 5, 59, tzinfo=UTC), refused(
        OUTSIDE_HOURS, "Сейчас 07:59 по местному времени должника (Europe/Bucharest), " + WORKDAY,
        datetime(2026, 3, 10, 6, 0, tzinfo=UTC)), id="mobile-earliest-zone-closed"),
    pytest.param(Debt(), MOBILE_PHONE, datetime(2026, 3, 10, 6, 0, tzinfo=UTC), RU_ALLOWED,
                 id="mobile-open-in-every-zone"),
    pytest.param(Debt(), MOBILE_PHONE, datetime(2026, 3, 10, 9, 59, tzinfo=UTC), RU_ALLOWED,
                 id="mobile-last-shared-minute"),
    pytest.param(Debt(), "+70000000000", AT_12_UTC, refused(
        TIME_ZONE_UNKNOWN, "Не удалось определить часовой пояс номера +70000000000: укажите регион должника",
        None), id="invalid-number-no-zone"),
    pytest.param(Debt(), "8 495 123", AT_12_UTC, refused(
        TIME_ZONE_UNKNOWN, "Не удалось определить часовой пояс номера 8 495 123: укажите регион должника",
        None), id="unparsable-number"),
])
def test_debtor_time_zone_strictest_zone_wins(debt: Debt, phone: str, now: datetime, expected: Verdict) -> None:
    assert may_call([], now, debt, RU, phone) == expected


def test_conversation_counts_on_each_date_it_may_fall_on_for_a_multizone_number() -> None:
    # 21:30 in Moscow on the 10th is already the 11th in Vladivostok and Anadyr.
    calls = [Contact(msk("2026-03-10 21:30"), CONV, MOBILE_PHONE)]
    verdict = may_call(calls, datetime(2026, 3, 11, 6, 0, tzinfo=UTC), Debt(), RU, MOBILE_PHONE)
    assert verdict == refused("conversations_per_day", per_day(1), datetime(2026, 3, 12, 6, 0, tzinfo=UTC))


def us_hours(local_time: str) -> str:
    return (f"It is {local_time} at the consumer's location (America/New_York): calls only from 08:00 "
            "to 21:00 (12 CFR 1006.6(b)(1)(i))")


def seven_calls(n: int) -> str:
    return f"{n} calls about this debt in the last 7 days, at most 7 allowed (12 CFR 1006.14(b)(2)(i))"


AFTER_CONVERSATION = ("A telephone conversation about this debt took place within the last 7 days "
                      "(12 CFR 1006.14(b)(2)(ii))")
ONE_A_DAY = [(ATT, f"2026-03-{day:02d} 10:00") for day in range(2, 9)]  # Monday 2 to Sunday 8 March


@pytest.mark.parametrize(("calls", "now", "expected"), [
    pytest.param([], "2026-03-10 07:59", refused(OUTSIDE_HOURS, us_hours("07:59"), nyc("2026-03-10 08:00")),
                 id="07:59"),
    pytest.param([], "2026-03-10 08:00", US_ALLOWED, id="08:00"),
    pytest.param([], "2026-03-14 20:59", US_ALLOWED, id="saturday-20:59"),
    pytest.param([], "2026-03-10 21:00", refused(OUTSIDE_HOURS, us_hours("21:00"), nyc("2026-03-11 08:00")),
                 id="21:00"),
    pytest.param(ONE_A_DAY[:6], "2026-03-08 15:00", US_ALLOWED, id="six-in-seven-days"),
    pytest.param(ONE_A_DAY, "2026-03-08 15:00", refused(
        "attempts_per_7_days", seven_calls(7), nyc("2026-03-09 08:00")), id="seventh-reached"),
    pytest.param(ONE_A_DAY, "2026-03-09 08:00", US_ALLOWED, id="rolling-window-drops-first-day"),
    pytest.param([(ATT, "2026-03-02 09:00")] * 7, "2026-03-08 20:59", refused(
        "attempts_per_7_days", seven_calls(7), nyc("2026-03-09 08:00")), id="seven-on-one-day"),
    pytest.param([(ATT, "2026-03-02 09:00")] * 7, "2026-03-09 08:00", US_ALLOWED, id="seven-days-later"),
    pytest.param([(ATT, "2026-03-03 10:00")] * 6 + [(CONV, "2026-02-20 10:00")], "2026-03-08 10:00",
                 US_ALLOWED, id="old-conversation-forgotten"),
    pytest.param([(CONV, "2026-03-02 14:00")], "2026-03-08 20:00", refused(
        "after_conversation", AFTER_CONVERSATION, nyc("2026-03-09 08:00")), id="sixth-day-after-conversation"),
    pytest.param([(CONV, "2026-03-02 14:00")], "2026-03-09 08:00", US_ALLOWED, id="seventh-day-after"),
    pytest.param([(ATT, "2026-03-04 10:00")] * 6 + [(CONV, "2026-03-04 11:00")], "2026-03-05 10:00", refused(
        "after_conversation", AFTER_CONVERSATION, nyc("2026-03-11 08:00")),
        id="conversation-also-counts-as-a-call"),
])
def test_us_regulation_f_hours_and_call_frequency(calls: list[tuple[str, str]], now: str,
                                                  expected: Verdict) -> None:
    assert may_call(ledger(NYC, *calls), nyc(now), Debt(), US, NEW_YORK_PHONE) == expected


@pytest.mark.parametrize(("debt", "phone", "now", "expected"), [
    pytest.param(Debt(do_not_call=frozenset({MOSCOW_PHONE})), MOSCOW_PHONE, "2026-03-10 12:00", refused(
        DO_NOT_CALL, "Номер +74951234567 в списке «не звонить»", None), id="do-not-call"),
    pytest.param(Debt(do_not_call=frozenset({MOSCOW_PHONE})), "+74957654321", "2026-03-10 12:00",
                 RU_ALLOWED, id="other-number-of-the-same-debt"),
    pytest.param(Debt(refused_interaction=True), MOSCOW_PHONE, "2026-03-10 12:00", refused(
        REFUSED_INTERACTION, "Должник отказался от взаимодействия (230-ФЗ ст. 8)", None), id="refused"),
    pytest.param(Debt(protected=True), MOSCOW_PHONE, "2026-03-10 12:00", refused(
        PROTECTED, "Взаимодействие с должником запрещено: банкротство, недееспособность, стационар, "
                   "инвалидность I группы или несовершеннолетие (230-ФЗ ст. 7)", None), id="protected"),
    pytest.param(Debt(do_not_call=frozenset({MOSCOW_PHONE}), protected=True), MOSCOW_PHONE, "2026-03-10 23:00",
                 refused(DO_NOT_CALL, "Номер +74951234567 в списке «не звонить»", None),
                 id="permanent-bar-before-hours"),
    pytest.param(Debt(promise_to_pay=date(2026, 3, 12)), MOSCOW_PHONE, "2026-03-12 12:00", refused(
        PROMISE_TO_PAY, "Должник обещал оплатить до 2026-03-12: звонки со следующего дня",
        msk("2026-03-13 08:00")), id="promised-date-itself"),
    pytest.param(Debt(promise_to_pay=date(2026, 3, 13)), MOSCOW_PHONE, "2026-03-13 23:00", refused(
        PROMISE_TO_PAY, "Должник обещал оплатить до 2026-03-13: звонки со следующего дня",
        msk("2026-03-14 09:00")), id="promise-then-saturday-hours"),
    pytest.param(Debt(promise_to_pay=date(2026, 3, 12)), MOSCOW_PHONE, "2026-03-13 08:00", RU_ALLOWED,
                 id="day-after-promise"),
])
def test_barred_numbers_and_debtors_are_never_dialled(debt: Debt, phone: str, now: str,
                                                      expected: Verdict) -> None:
    assert may_call([], msk(now), debt, RU, phone) == expected


def test_retry_time_waits_for_every_rule_at_once() -> None:
    # Promise through Friday, two conversations this week and it is night: Monday 08:00 is first.
    calls = ledger(MSK, (CONV, "2026-03-09 12:00"), (CONV, "2026-03-10 12:00"))
    verdict = may_call(calls, msk("2026-03-11 23:00"), Debt(promise_to_pay=date(2026, 3, 13)), RU, MOSCOW_PHONE)
    assert (verdict.code, verdict.next_allowed_at) == (PROMISE_TO_PAY, msk("2026-03-16 08:00"))
    assert may_call(calls, verdict.next_allowed_at, Debt(promise_to_pay=date(2026, 3, 13)), RU,
                    MOSCOW_PHONE).allowed


def test_rule_sets_are_plain_json_data() -> None:
    for name, data in RULE_SETS.items():
        rules = load_rules(json.loads(json.dumps(data)))
        assert rules == load_rules(data)
        assert rules.name == name
    stricter = json.loads(json.dumps(RU_230FZ))
    stricter["limits"][0]["max"] = 0
    with pytest.raises(RuleSetError, match="conversations_per_day"):
        load_rules(stricter)
    del stricter["messages"]["outside_hours"]
    with pytest.raises(RuleSetError, match="outside_hours"):
        load_rules({**stricter, "limits": []})


def test_naive_times_are_refused_loudly() -> None:
    with pytest.raises(ValueError, match="UTC"):
        may_call([], datetime(2026, 3, 10, 12, 0), Debt(), RU, MOSCOW_PHONE)
    with pytest.raises(ValueError, match="UTC"):
        Contact(datetime(2026, 3, 10, 12, 0), CONV, MOSCOW_PHONE)
