"""The pause report on SQLite and PostgreSQL: from `agent_pauses` rows inserted here, worked out by
hand; a department head's report and CSV hold their departments' agents only.

The period is 2026-03-02 in UTC; "now" is 16:00 that day.
  op1 (sales, Local/101@agents)  lunch   12:00-12:45        2,700 s
                                 break   15:30-open          1,800 s up to now
                                 training 2026-03-01 23:30 - 03-02 00:10: 600 s fall in the period
  op2 (service, PJSIP/102)       "обучение у Ивана" (a supervisor's words) 10:00-10:20: other 1,200 s
                                 logged out 13:00-14:00: not a pause
                                 meeting 2026-03-01 10:00-11:00: before the period
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web_login import log_in

from agent_desk import reports
from agent_desk.app import create_app
from agent_desk.reports import PauseFacts, PauseTimes, Period
from callcard.bus import MemoryBus
from callcard.settings import Settings
from crm_core import pause_reasons
from crm_core.agents import LOGGED_OUT, AgentPause
from crm_core.models import Department, Operator
from crm_core.passwords import hash_password
from crm_core.pause_reasons import PauseReason

PASSWORD = "pw-pauses-1"
NOW = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
PERIOD = Period(date(2026, 3, 2), date(2026, 3, 2), ZoneInfo("UTC"))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


CODES = ("break", "lunch", "training", "meeting", "after_call")


def times(**seconds: int) -> dict[str, int]:
    return {"break": 0, "lunch": 0, "training": 0, "meeting": 0, "after_call": 0, "other": 0, **seconds}


def test_pause_times_clip_to_the_period_and_sort_reasons_into_columns() -> None:
    pauses = [PauseFacts("op1", "lunch", at(2, 12), at(2, 12, 45)),
              PauseFacts("op1", "training", at(1, 23, 30), at(2, 0, 10)),
              PauseFacts("op2", "", at(2, 9), at(2, 9, 5)),
              PauseFacts("op2", LOGGED_OUT, at(2, 13), at(2, 14)),
              PauseFacts("op1", "break", at(2, 15, 30), None),
              PauseFacts("op3", "lunch", at(2, 16, 30), None)]  # begins after the end given: not counted
    assert reports.pause_times(pauses, at(2, 0), NOW, CODES) == [
        PauseTimes("op1", 3, times(lunch=2700, training=600, **{"break": 1800}), 5100),
        PauseTimes("op2", 1, times(other=300), 300),
        PauseTimes("total", 4, times(lunch=2700, training=600, other=300, **{"break": 1800}), 5400),
    ]
    assert reports.pause_times([], at(2, 0), NOW, CODES) == [PauseTimes("total", 0, times(), 0)]
    assert list(reports.pause_times(pauses, at(2, 0), NOW, ["lunch"])[0].seconds) == ["lunch", "other"]


@pytest.fixture
def ids(sessions: sessionmaker[Session]) -> dict[str, int]:
    pw = hash_password(PASSWORD)
    with sessions.begin() as s:
        sales, service = Department(code="sales", name="Sales", queue="sales"), \
            Department(code="service", name="Service", queue="support")
        people = [Operator(login="op1", name="Olga", interface="Local/101@agents", departments=[sales]),
                  Operator(login="op2", name="Petr", interface="PJSIP/102", departments=[service]),
                  Operator(login="head_sales", name="Head", role="department_head", departments=[sales]),
                  Operator(login="super1", name="Super", role="supervisor")]
        for person in people:
            person.password_hash, person.language = pw, "en"
        sales.head = people[2]
        s.add_all([sales, service, *people])
        s.add_all([AgentPause(interface="Local/101@agents", started_at=at(2, 12), ended_at=at(2, 12, 45), reason="lunch"),
                   AgentPause(interface="Local/101@agents", started_at=at(2, 15, 30), reason="break"),
                   AgentPause(interface="Local/101@agents", started_at=at(1, 23, 30), ended_at=at(2, 0, 10),
                              reason="training"),
                   AgentPause(interface="PJSIP/102", started_at=at(2, 10), ended_at=at(2, 10, 20),
                              reason="обучение у Ивана"),
                   AgentPause(interface="PJSIP/102", started_at=at(2, 13), ended_at=at(2, 14), reason=LOGGED_OUT),
                   AgentPause(interface="PJSIP/102", started_at=at(1, 10), ended_at=at(1, 11), reason="meeting"),
                   AgentPause(interface="PJSIP/999", started_at=at(2, 10), ended_at=at(2, 11), reason="lunch")])
        s.flush()
        return {p.login: p.id for p in people} | {"sales": sales.id}


def test_a_pause_stays_its_agents_when_phones_are_swapped(sessions, ids) -> None:  # type: ignore[no-untyped-def]
    """op2's lunch was stored as op2's on Local/101@agents, the device op1 has now: it is op2's."""
    with sessions.begin() as s:
        s.add(AgentPause(interface="Local/101@agents", started_at=at(2, 11), ended_at=at(2, 11, 30), reason="lunch",
                         operator_id=ids["op2"]))
    with sessions() as s:
        rows = {r.key: r for r in reports.pause_report(s, PERIOD, NOW)}
    assert rows["op2"] == PauseTimes("op2", 2, times(lunch=1800, other=1200), 3000)
    assert rows["op1"].seconds["lunch"] == 2700  # op1's own lunch only


def test_the_report_reads_the_stored_pauses_of_the_agents_asked_for(sessions, ids) -> None:  # type: ignore[no-untyped-def]
    with sessions() as s:
        every = reports.pause_report(s, PERIOD, NOW)
        sales_only = reports.pause_report(s, PERIOD, NOW, frozenset({ids["sales"]}))
    assert every == [PauseTimes("op1", 3, times(lunch=2700, training=600, **{"break": 1800}), 5100),
                     PauseTimes("op2", 1, times(other=1200), 1200),
                     PauseTimes("total", 4, times(lunch=2700, training=600, other=1200, **{"break": 1800}), 6300)]
    assert [p.key for p in sales_only] == ["op1", "total"]  # PJSIP/999 is nobody's: left out


@pytest.fixture
def http(sessions, ids) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(Settings(secret_key="t", default_language="en"), sessions, MemoryBus())) as client:
        yield client


def test_page_and_csv_show_a_heads_own_agents_only(http: TestClient) -> None:
    log_in(http, "head_sales", PASSWORD)
    query = {"from": "2026-03-02", "to": "2026-03-02", "tz": "UTC"}
    page = http.get("/supervisor/reports", params=query).text
    section = page.split('id="report-pauses"')[1].split("</section>")[0]
    assert '<th scope="row">Olga</th>' in section and "Petr" not in section
    assert '<span class="swatch seg-c1"></span> Lunch</th>' in section and "<th>Paused in all</th>" in section
    assert "<td>0:45:00</td>" in section  # op1's lunch; the open break runs to now, long after that day
    rows = list(csv.reader(io.StringIO(http.get("/api/supervisor/reports/pauses.csv", params=query)
                                       .content.decode("utf-8-sig"))))
    assert rows[0] == ["agent", "pauses", "break", "lunch", "training", "meeting", "after_call", "other", "paused"]
    assert [r[0] for r in rows[1:]] == ["op1", "total"]
    assert rows[1][3] == "2700"
    data = http.get("/api/supervisor/reports/pauses", params=query).json()
    assert [r["key"] for r in data["rows"]] == ["op1", "total"]


def test_a_reason_keeps_its_colour_when_one_is_added_before_it(http: TestClient, sessions) -> None:  # type: ignore[no-untyped-def]
    """Coaching goes first in the list: lunch stays seg-c1, and coaching takes the next colour made."""
    with sessions.begin() as s:
        reasons = pause_reasons.load(s)
        pause_reasons.save(s, [PauseReason("coaching", "Наставничество", "Coaching", 20), *reasons])
        s.add(AgentPause(interface="Local/101@agents", started_at=at(2, 15), ended_at=at(2, 15, 20),
                         reason="coaching", operator_id=s.scalar(select(Operator.id).where(Operator.login == "op1"))))
    with sessions() as s:
        assert pause_reasons.colours(pause_reasons.load(s)) == {
            "coaching": 5, "break": 0, "lunch": 1, "training": 2, "meeting": 3, "after_call": 4}
    log_in(http, "super1", PASSWORD)
    page = http.get("/supervisor/reports", params={"from": "2026-03-02", "to": "2026-03-02", "tz": "UTC"}).text
    section = page.split('id="report-pauses"')[1].split("</section>")[0]
    assert '<span class="swatch seg-c5"></span> Coaching</th>' in section
    assert '<span class="swatch seg-c1"></span> Lunch</th>' in section
    assert 'class="seg seg-c5"\n          data-reason="coaching"' in section


def test_a_supervisor_sees_everyones_pauses(http: TestClient) -> None:
    log_in(http, "super1", PASSWORD)
    query = {"from": "2026-03-02", "to": "2026-03-02", "tz": "UTC"}
    data = http.get("/api/supervisor/reports/pauses", params=query).json()
    assert [(r["key"], r["seconds"]["other"]) for r in data["rows"]] == [("op1", 0), ("op2", 1200), ("total", 1200)]
