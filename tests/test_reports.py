"""Supervisor reports on SQLite and PostgreSQL: figures from Call rows inserted here, worked out by hand.

The day (2026-03-02, UTC), inbound unless said otherwise; SL threshold 20 s, SL = answered within
T / (answered + abandoned after more than T):
  c1  09:05 sales    op1 answered wait 10 talk 100
  c2  09:40 sales    op1 answered wait 30 talk 200
  c3  10:15 sales    op2 answered wait 20 talk  60   (exactly T: in time)
  c4  10:30 sales        abandoned wait 45            callback request closed -> done
  c5  10:50 support  op3 answered wait  6 talk 120
  c6  11:10 support      missed    wait 15            callback request in progress -> open
  c12 11:30 sales        abandoned wait  3            no callback -> none; caller ID is a formula
  c7  09:10 outbound (op1) answered: not in any report
  c9  09:20 still ringing: not in the figures
  c10 2026-03-01 22:30 UTC (01:30 in Moscow on 03-02) sales op2 answered wait 8 talk 40
  c8  2026-03-03 08:00 sales op2 answered: outside the period
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent_desk import reports
from agent_desk.reports import Figures, Period
from crm_core.models import Call, Client, Operator, Request
from routing.inbox.models import RequestEvent

DAY = date(2026, 3, 2)
FORMULA = '=HYPERLINK("http://evil","x")'


def _at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def _seed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        ops = {login: Operator(login=login, name=login.upper(), password_hash="!", interface=f"Local/{ext}@agents")
               for login, ext in (("op1", 101), ("op2", 102), ("op3", 103))}
        s.add_all(ops.values())
        ivan = Client(name="Иван Петров")
        s.add(ivan)
        s.flush()

        def call(key: str, at: datetime, queue: str, op: str | None, outcome: str, wait: int,
                 talk: int | None = None, **extra: object) -> Call:
            row = Call(linkedid=key, started_at=at, queue=queue, operator_id=ops[op].id if op else None,
                       outcome=outcome, wait_seconds=wait, talk_seconds=talk, status="ended",
                       caller_raw=f"8351200{key[1:]:0>4}", caller_e164=f"+7351200{key[1:]:0>4}", **extra)
            s.add(row)
            return row

        call("c1", _at(2, 9, 5), "sales", "op1", "answered", 10, 100)
        call("c2", _at(2, 9, 40), "sales", "op1", "answered", 30, 200)
        call("c3", _at(2, 10, 15), "sales", "op2", "answered", 20, 60)
        call("c4", _at(2, 10, 30), "sales", None, "abandoned", 45, client_id=ivan.id)
        call("c5", _at(2, 10, 50), "support", "op3", "answered", 6, 120)
        call("c6", _at(2, 11, 10), "support", None, "missed", 15)
        c12 = call("c12", _at(2, 11, 30), "sales", None, "abandoned", 3)
        c12.caller_raw, c12.caller_e164 = FORMULA, None
        call("c7", _at(2, 9, 10), "", "op1", "answered", 5, 50, direction="outbound")
        call("c13", _at(2, 10, 0), "", None, "ivr", 8, ivr_path="main>1>sales>callback")  # served by the IVR
        call("c9", _at(2, 9, 20), "sales", None, "answered", 5).status = "ringing"
        call("c10", _at(1, 22, 30), "sales", "op2", "answered", 8, 40)
        call("c8", _at(3, 8, 0), "sales", "op2", "answered", 5, 50)
        s.add(Request(subject="Перезвонить", linkedid="c4", status="closed", kind="callback"))
        s.add(Request(subject="Перезвонить", linkedid="c6", status="in_progress", kind="callback"))


def _report(sessions: sessionmaker[Session], name: str, tz: str = "UTC", first: date = DAY) -> list[Figures]:
    with sessions() as s:
        return reports.report(s, name, Period(first, DAY, ZoneInfo(tz)))


def test_queue_report_counts_service_level_asa_and_aht(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    assert _report(sessions, "queues") == [
        Figures("sales", 5, 3, 2, 0, 50.0, 20.0, 120.0, 360),  # SL: c1, c3 of c1-c4 (c12 gave up in T)
        Figures("support", 2, 1, 0, 1, 100.0, 6.0, 120.0, 120),  # the missed c6 is not counted
        Figures("total", 7, 4, 2, 1, 60.0, 16.5, 120.0, 480),  # 3/5; ASA 66/4; AHT 480/4
    ]


def test_agent_report_counts_only_the_calls_each_agent_answered(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    assert _report(sessions, "agents") == [
        Figures("op1", 2, 2, 0, 0, 50.0, 20.0, 150.0, 300),
        Figures("op2", 1, 1, 0, 0, 100.0, 20.0, 60.0, 60),
        Figures("op3", 1, 1, 0, 0, 100.0, 6.0, 120.0, 120),
        Figures("total", 4, 4, 0, 0, 75.0, 16.5, 120.0, 480),
    ]


def test_hour_report_groups_by_hour_in_the_chosen_time_zone(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    utc = _report(sessions, "hours")
    assert utc[:3] == [
        Figures("2026-03-02 09:00", 2, 2, 0, 0, 50.0, 20.0, 150.0, 300),
        Figures("2026-03-02 10:00", 3, 2, 1, 0, 66.7, 13.0, 90.0, 180),
        Figures("2026-03-02 11:00", 2, 0, 1, 1, None, None, None, 0),  # nothing counts for SL
    ]
    moscow = _report(sessions, "hours", "Europe/Moscow")  # UTC+3: c10 (01:30) joins the day
    assert [f.key for f in moscow] == ["2026-03-02 01:00", "2026-03-02 12:00", "2026-03-02 13:00",
                                       "2026-03-02 14:00", "total"]
    assert moscow[1:4] == [Figures(f"2026-03-02 {h}:00", *utc[i].row()[1:]) for i, h in enumerate((12, 13, 14))]


def test_day_report_follows_the_time_zone_boundaries(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    assert _report(sessions, "days", "Europe/Moscow") == [
        Figures("2026-03-02", 8, 5, 2, 1, 66.7, 14.8, 104.0, 520),  # SL 4/6; ASA 74/5; AHT 520/5
        Figures("total", 8, 5, 2, 1, 66.7, 14.8, 104.0, 520),
    ]
    utc = _report(sessions, "days", first=date(2026, 3, 1))
    assert [(f.key, f.offered) for f in utc] == [("2026-03-01", 1), ("2026-03-02", 7), ("total", 8)]


def test_missed_calls_list_their_callback_status(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    with sessions() as s:
        missed = reports.missed_calls(s, Period(DAY, DAY, UTC))
    assert [(m.linkedid, m.outcome, m.wait_seconds, m.callback, m.client) for m in missed] == [
        ("c12", "abandoned", 3, "none", ""),
        ("c6", "missed", 15, "open", ""),
        ("c4", "abandoned", 45, "done", "Иван Петров"),
    ]
    assert missed[2].caller == "+73512000004"


def test_a_missed_call_that_joined_an_open_callback_shows_that_callbacks_status(
    sessions: sessionmaker[Session]
) -> None:
    """The follow-ups give a number one callback at a time; a later missed call joins it (`again`)."""
    _seed(sessions)
    with sessions.begin() as s:
        s.add(RequestEvent(request_id=s.scalar(select(Request.id).where(Request.linkedid == "c6")), kind="again",
                           value="c12", text="брошенный звонок"))
    with sessions() as s:
        assert {m.linkedid: m.callback for m in reports.missed_calls(s, Period(DAY, DAY, UTC))} == \
            {"c12": "open", "c6": "open", "c4": "done"}


def test_csv_export_has_bom_quotes_and_defuses_formulas(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    with sessions() as s:
        data = reports.export(s, "missed", Period(DAY, DAY, UTC))
        queues = reports.export(s, "queues", Period(DAY, DAY, UTC))
    assert data.startswith(b"\xef\xbb\xbf")
    text = data[3:].decode("utf-8")
    assert text.startswith("started_at,caller,client,queue,outcome,wait_seconds,callback\r\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == ["2026-03-02 11:30:00", "'" + FORMULA, "", "sales", "abandoned", "3", "none"]
    assert '"\'=HYPERLINK(""http://evil"",""x"")"' in text  # quoted, inner quotes doubled
    assert rows[2][1] == "'+73512000006"  # a + would start a formula too
    assert rows[3][2] == "Иван Петров"
    qrows = list(csv.reader(io.StringIO(queues[3:].decode("utf-8"))))
    assert qrows[0] == ["queue", "offered", "answered", "abandoned", "missed", "service_level", "asa", "aht",
                        "talk_time", "reviewed", "quality"]
    assert qrows[-1] == ["total", "7", "4", "2", "1", "60.0", "16.5", "120.0", "480", "0", ""]


def test_safe_cell_leaves_numbers_and_plain_text_alone() -> None:
    assert [reports.safe_cell(v) for v in (-5, 3.5, None, "Продажи", "@x", "-1", "\tx")] == \
        [-5, 3.5, "", "Продажи", "'@x", "'-1", "'\tx"]
