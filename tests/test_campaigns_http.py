"""Campaign pages and the operator's campaign API over HTTP, against a real database (SQLite and
PostgreSQL): roles, the form's validation, start/pause/finish, the skipped-numbers report and its
CSV, ready flags, and who may record a campaign call's result."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_login import csrf_of, log_in

from agent_desk.app import create_app
from callcard.bus import MemoryBus
from callcard.settings import Settings
from crm_core.audit import AuditEntry
from crm_core.models import Call, Client, ClientPhone, Debt, Department, Operator, Phone
from crm_core.passwords import hash_password
from routing.campaigns.manage import figures
from routing.campaigns.models import Campaign, CampaignDebt, CampaignOperator, DialAttempt, DialSkip

HOSTILE = "<script>alert(1)</script>"
PASSWORDS = {"op1": "op1-pass", "op2": "op2-pass", "super1": "super1-pass", "admin1": "admin1-pass"}
ROLES = {"op1": "operator", "op2": "operator", "super1": "supervisor", "admin1": "admin"}


@cache
def password_hash(login: str) -> str:
    return hash_password(PASSWORDS[login])


@pytest.fixture
def world(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        people = {login: Operator(login=login, name=f"Name {login}", role=role, password_hash=password_hash(login),
                                  interface=f"Local/10{n}@agents", language="ru")
                  for n, (login, role) in enumerate(ROLES.items())}
        collections = Department(code="collections", name="Взыскание", queue="collections")
        s.add_all([*people.values(), collections])
        s.flush()
        ids = {login: op.id for login, op in people.items()}
        for n, (name, days, total, region) in enumerate([
            ("Иванов", 45, "12000.00", "Москва"), ("Петров", 10, "500.00", "Москва"),
            (HOSTILE, 90, "7000.00", "Тула"), ("=HYPERLINK(\"http://x\")", 60, "3000.00", "Москва"),
        ]):
            client = Client(name=name, debt_open=True)
            client.phone_links.append(ClientPhone(phone=Phone(e164=f"+7916000000{n}", kind="mobile")))
            s.add(client)
            s.flush()
            debt = Debt(client_id=client.id, creditor="Банк", contract=f"K-{n}", principal=Decimal(total),
                        total_due=Decimal(total), days_past_due=days, region=region)
            s.add(debt)
            s.flush()
            ids[f"debt{n}"] = debt.id
        ids["collections"] = collections.id
        return ids


@pytest.fixture
def client(sessions, world) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    app = create_app(Settings(secret_key="test-secret", default_language="ru"), sessions, MemoryBus())
    with TestClient(app) as http:
        yield http


def login(http: TestClient, who: str) -> str:
    return log_in(http, who, PASSWORDS[who])


def campaign_form(csrf: str, **changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf": csrf, "name": "Просрочка 30+", "rule_set": "ru_230fz", "mode": "progressive",
        "caller_id": "+74950000000", "max_lines": "5", "ring_seconds": "30", "department_id": "",
        "min_days": "30", "max_days": "", "min_total": "1000", "max_total": "", "regions": "Москва, Тула",
        "statuses": ["active"], "weekdays": ["0", "1", "2", "3", "4"], "start": "09:00", "end": "20:00",
        "time_zone": "Europe/Moscow", "script": "Здравствуйте!\nЭто звонок по договору.", "operators": [],
    }
    for outcome in ("no_answer", "busy", "failed", "machine", "abandoned"):
        form[f"retry_{outcome}_delay"] = "60"
        form[f"retry_{outcome}_max"] = "3"
    form.update(changes)
    return form


def create_campaign(sessions, **fields: Any) -> int:  # type: ignore[no-untyped-def]
    values: dict[str, Any] = {"name": "Кампания", "status": "draft", "filters": {"min_days": 30},
                              "schedule": {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "20:00",
                                           "time_zone": "Europe/Moscow"}}
    values.update(fields)
    operators = values.pop("operators", {})
    with sessions.begin() as s:
        campaign = Campaign(**values)
        s.add(campaign)
        s.flush()
        for operator_id, ready in operators.items():
            s.add(CampaignOperator(campaign_id=campaign.id, operator_id=operator_id, ready=ready))
        return campaign.id


def audit(sessions, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


# ---- roles ---------------------------------------------------------------------------------


def test_operators_get_403_and_their_attempts_are_audited(client, sessions, world) -> None:  # type: ignore[no-untyped-def]
    campaign_id = create_campaign(sessions)
    assert client.get("/campaigns", follow_redirects=False).headers["location"] == "/login"
    csrf = login(client, "op1")
    assert client.get("/campaigns").status_code == 403
    assert client.get(f"/campaigns/{campaign_id}").status_code == 403
    assert client.get(f"/campaigns/{campaign_id}/skipped").status_code == 403
    assert client.get(f"/campaigns/{campaign_id}/skipped.csv").status_code == 403
    refused = client.post("/campaigns/save", data=campaign_form(csrf))
    assert refused.status_code == 403 and 'id="forbidden"' in refused.text
    assert client.post(f"/campaigns/{campaign_id}/status", data={"csrf": csrf, "action": "start"}).status_code == 403
    with sessions() as s:
        assert s.scalar(select(Campaign.status).where(Campaign.id == campaign_id)) == "draft"
        assert s.scalar(select(Campaign).where(Campaign.name == "Просрочка 30+")) is None
    assert [(e.actor_login, e.outcome) for e in audit(sessions, "forbidden")] == [("op1", "refused")] * 3
    assert 'href="/campaigns"' not in client.get("/desk").text, "no campaigns link for operators"


@pytest.mark.parametrize("who", ["super1", "admin1"])
def test_supervisors_and_admins_see_the_campaigns(client, sessions, world, who) -> None:  # type: ignore[no-untyped-def]
    create_campaign(sessions, name=HOSTILE)
    login(client, who)
    page = client.get("/campaigns")
    assert page.status_code == 200
    assert HOSTILE not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert 'href="/campaigns"' in client.get("/desk").text


# ---- the form ------------------------------------------------------------------------------


def test_a_valid_form_creates_the_campaign_and_is_audited(client, sessions, world) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "super1")
    saved = client.post("/campaigns/save", follow_redirects=False, data=campaign_form(
        csrf, department_id=str(world["collections"]), operators=[str(world["op1"]), str(world["op2"])]))
    assert saved.status_code == 303
    campaign_id = int(saved.headers["location"].rsplit("/", 1)[1])
    with sessions() as s:
        campaign = s.get(Campaign, campaign_id)
        assert campaign is not None and campaign.status == "draft"
        assert campaign.filters == {"min_days": 30, "min_total": "1000.00", "regions": ["Москва", "Тула"],
                                    "statuses": ["active"]}
        assert campaign.schedule == {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "20:00",
                                     "time_zone": "Europe/Moscow"}
        assert campaign.retry["no_answer"] == {"delay_minutes": 60, "max_attempts": 3}
        assert campaign.script == "Здравствуйте!\nЭто звонок по договору."
        assert (campaign.caller_id, campaign.max_lines, campaign.department_id) == ("+74950000000", 5,
                                                                                    world["collections"])
        assert sorted(op.id for op in campaign.operators) == sorted([world["op1"], world["op2"]])
    (entry,) = audit(sessions, "campaign_save")
    assert (entry.actor_login, entry.outcome, entry.target) == ("super1", "ok", str(campaign_id))
    assert entry.details["after"]["name"] == "Просрочка 30+" and entry.details["before"] == {}


def test_a_bad_form_names_every_problem_keeps_what_was_typed_and_saves_nothing(client, sessions, world) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "super1")
    typed = campaign_form(
        csrf, name="", max_lines="0", time_zone="Mars/Olympus", min_days="90", max_days="30", weekdays=[],
        retry_busy_delay="soon", min_total="-5", caller_id="call me", start="20:00", end="09:00",
        script=f"Скрипт {HOSTILE}")
    refused = client.post("/campaigns/save", data=typed)
    assert refused.status_code == 422
    errors = text_of(re.search(r'<ul class="form-errors".*?</ul>', refused.text, re.S).group(0))  # type: ignore[union-attr]
    for expected in ("Название: обязательно", "Линий не более: целое число от 1 до 500",
                     "«Mars/Olympus» — не часовой пояс", "до: не может быть меньше нижней границы",
                     "Рабочие дни: отметьте хотя бы один день", "Занято, повтор через, мин: целое число от 1",
                     "Сумма долга от: сумма не меньше 0", "Номер АОН: только цифры",
                     "начало и конец в виде ЧЧ:ММ"):
        assert expected in errors, expected
    assert 'value="Mars/Olympus"' in refused.text and 'value="soon"' in refused.text
    assert f"Скрипт {HOSTILE}" not in refused.text and "Скрипт &lt;script&gt;" in refused.text
    with sessions() as s:
        assert s.scalar(select(Campaign.id)) is None
    assert [e.outcome for e in audit(sessions, "campaign_save")] == ["refused"]


def test_a_taken_name_and_unknown_operators_are_refused(client, sessions, world) -> None:  # type: ignore[no-untyped-def]
    create_campaign(sessions, name="Просрочка 30+")
    csrf = login(client, "super1")
    refused = client.post("/campaigns/save", data=campaign_form(csrf, operators=["999999"]))
    assert refused.status_code == 422
    assert "такое название уже есть" in refused.text and "Операторы: выберите одно из предложенных" in refused.text


def test_editing_keeps_the_ready_flag_of_operators_who_stay(client, sessions, world) -> None:  # type: ignore[no-untyped-def]
    campaign_id = create_campaign(sessions, operators={world["op1"]: True, world["op2"]: True})
    csrf = login(client, "admin1")
    saved = client.post("/campaigns/save", follow_redirects=False, data=campaign_form(
        csrf, id=str(campaign_id), name="Переименована", operators=[str(world["op1"])]))
    assert saved.status_code == 303
    with sessions() as s:
        links = {link.operator_id: link.ready for link in s.scalars(select(CampaignOperator))}
        assert links == {world["op1"]: True}
        assert s.get(Campaign, campaign_id).name == "Переименована"  # type: ignore[union-attr]
    (entry,) = audit(sessions, "campaign_save")
    assert entry.details["before"]["name"] == "Кампания"
    assert entry.details["before"]["operators"] == sorted([world["op1"], world["op2"]])


# ---- status --------------------------------------------------------------------------------


def test_start_builds_the_list_pause_and_finish_and_a_finished_campaign_stays_finished(client, sessions,
                                                                                       world) -> None:  # type: ignore[no-untyped-def]
    campaign_id = create_campaign(sessions, filters={"min_days": 30, "regions": ["Москва"]},
                                  operators={world["op1"]: True})
    csrf = login(client, "super1")

    def act(action: str) -> Any:
        return client.post(f"/campaigns/{campaign_id}/status", data={"csrf": csrf, "action": action},
                           follow_redirects=False)

    assert act("pause").status_code == 409  # a draft is not running
    assert act("start").status_code == 303
    with sessions() as s:
        assert s.get(Campaign, campaign_id).status == "running"  # type: ignore[union-attr]
        listed = set(s.scalars(select(CampaignDebt.debt_id).where(CampaignDebt.campaign_id == campaign_id)))
        assert listed == {world["debt0"], world["debt3"]}, "45 and 60 days in Moscow"
    assert act("pause").status_code == 303
    assert act("start").status_code == 303
    assert act("finish").status_code == 303
    with sessions() as s:
        assert s.get(Campaign, campaign_id).status == "finished"  # type: ignore[union-attr]
        assert s.scalar(select(CampaignOperator.ready)) is False, "nobody is ready for a finished campaign"
    again = act("start")
    assert again.status_code == 409 and "невозможно для кампании в состоянии «завершена»" in again.text
    assert act("launch").status_code == 409
    entries = audit(sessions, "campaign_status")
    assert [(e.details.get("action"), e.outcome) for e in entries] == [
        ("pause", "refused"), ("start", "ok"), ("pause", "ok"), ("start", "ok"), ("finish", "ok"),
        ("start", "refused"), ("launch", "refused")]
    assert entries[1].details["list_size"] == 2
    assert client.post(f"/campaigns/{campaign_id}/status", data={"csrf": "forged", "action": "start"}).status_code \
        == 403


def test_the_list_shows_live_figures(client, sessions, world) -> None:  # type: ignore[no-untyped-def]
    campaign_id = create_campaign(sessions, status="running")
    now = datetime.now(UTC)
    with sessions.begin() as s:
        s.add(CampaignDebt(campaign_id=campaign_id, debt_id=world["debt0"], state="pending"))
        s.add(CampaignDebt(campaign_id=campaign_id, debt_id=world["debt1"], state="excluded"))
        for n, (outcome, answered, connected) in enumerate([("answered", True, True), ("abandoned", True, False),
                                                            ("no_answer", False, False)]):
            s.add(DialAttempt(channel_id=f"dial-{n}", campaign_id=campaign_id, debt_id=world["debt0"],
                              phone_e164="+79160000000", placed_at=now, outcome=outcome,
                              answered_at=now if answered else None, connected_at=now if connected else None))
    login(client, "super1")
    row = re.search(rf'<tr data-campaign-id="{campaign_id}".*?</tr>', client.get("/campaigns").text, re.S)
    cells = [text_of(c).strip() for c in re.findall(r"<td[^>]*>.*?</td>", row.group(0), re.S)]  # type: ignore[union-attr]
    assert cells[3:] == ["1", "1", "3", "2", "1", "50.0 %"]


# ---- the skipped-numbers report ------------------------------------------------------------


@pytest.fixture
def skips(sessions, world) -> int:  # type: ignore[no-untyped-def]
    campaign_id = create_campaign(sessions, status="running")
    at = datetime(2026, 11, 23, 19, 5, tzinfo=UTC)
    with sessions.begin() as s:
        s.add_all([
            DialSkip(campaign_id=campaign_id, debt_id=world["debt2"], phone_e164="+79160000002",
                     code="outside_hours", reason=f"Сейчас 22:05 ({HOSTILE})", at=at,
                     next_allowed_at=at + timedelta(hours=10)),
            DialSkip(campaign_id=campaign_id, debt_id=world["debt3"], phone_e164="+79160000003",
                     code="conversations_per_day", reason="Разговоров с должником сегодня: 1", at=at),
        ])
    return campaign_id


def test_the_skipped_report_escapes_hostile_text_and_filters_by_code(client, sessions, skips) -> None:  # type: ignore[no-untyped-def]
    login(client, "super1")
    page = client.get(f"/campaigns/{skips}/skipped")
    assert page.status_code == 200
    assert HOSTILE not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert page.text.count("<tr data-code=") == 2
    assert "23.11.2026 22:05" in page.text, "times in the campaign's zone"
    one = client.get(f"/campaigns/{skips}/skipped", params={"code": "outside_hours"})
    assert re.findall(r'<tr data-code="([^"]+)"', one.text) == ["outside_hours"]
    assert client.get(f"/campaigns/{skips}/skipped", params={"code": "<x>"}).status_code == 422


def test_the_skipped_csv_is_formula_safe_and_audited(client, sessions, skips) -> None:  # type: ignore[no-untyped-def]
    login(client, "super1")
    export = client.get(f"/campaigns/{skips}/skipped.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert rows[0] == ["debtor", "contract", "phone", "code", "reason", "at", "next_allowed_at", "count"]
    by_code = {row[3]: row for row in rows[1:]}
    assert by_code["outside_hours"][:3] == [HOSTILE, "K-2", "'+79160000002"], "as the reports' CSV: no + formula"
    assert by_code["outside_hours"][5:7] == ["2026-11-23 22:05", "2026-11-24 08:05"]
    assert by_code["conversations_per_day"][0] == "'=HYPERLINK(\"http://x\")", "no formula reaches Excel"
    only = client.get(f"/campaigns/{skips}/skipped.csv", params={"code": "conversations_per_day"})
    assert len(list(csv.reader(io.StringIO(only.content.decode("utf-8-sig"))))) == 2
    assert [(e.details["code"], e.details["rows"]) for e in audit(sessions, "export")] == [
        ("", 2), ("conversations_per_day", 1)]


# ---- the operator's side -------------------------------------------------------------------


def test_ready_toggle_for_the_operators_own_campaigns(client, sessions, world) -> None:  # type: ignore[no-untyped-def]
    mine = create_campaign(sessions, name="Моя", status="running", mode="preview",
                           operators={world["op1"]: False})
    create_campaign(sessions, name="Чужая", status="running", operators={world["op2"]: False})
    finished = create_campaign(sessions, name="Старая", status="finished", operators={world["op1"]: False})
    csrf = login(client, "op1")
    assert client.get("/api/campaigns/mine").json() == [
        {"id": mine, "name": "Моя", "mode": "preview", "status": "running", "ready": False}]
    headers = {"X-CSRF-Token": csrf}
    assert client.post(f"/api/campaigns/{mine}/ready", json={"ready": True}).status_code == 403, "no CSRF"
    assert client.post(f"/api/campaigns/{mine}/ready", json={"ready": True}, headers=headers).json() == {
        "id": mine, "ready": True}
    assert client.get("/api/campaigns/mine").json()[0]["ready"] is True
    assert client.post(f"/api/campaigns/{mine + 1}/ready", json={"ready": True}, headers=headers).status_code == 404
    assert client.post(f"/api/campaigns/{finished}/ready", json={"ready": True}, headers=headers).status_code == 409
    assert client.post(f"/api/campaigns/{mine}/ready", json={"ready": "yes please"},
                       headers=headers).status_code == 422


def test_closing_the_desk_takes_the_operator_off_every_campaign(client, sessions, world) -> None:  # type: ignore[no-untyped-def]
    first = create_campaign(sessions, name="A", status="running", operators={world["op1"]: True, world["op2"]: True})
    second = create_campaign(sessions, name="B", status="running", operators={world["op1"]: True})
    login(client, "op1")
    with client.websocket_connect("/ws/desk") as socket, client.websocket_connect("/ws/desk") as other_tab:
        assert socket.receive_json()["type"] == "hello" and other_tab.receive_json()["type"] == "hello"
        socket.close()
        with sessions() as s:  # the other tab is still open: still ready
            assert s.get(CampaignOperator, (first, world["op1"])).ready is True  # type: ignore[union-attr]
    with sessions() as s:
        flags = {(link.campaign_id, link.operator_id): link.ready for link in s.scalars(select(CampaignOperator))}
    assert flags == {(first, world["op1"]): False, (second, world["op1"]): False, (first, world["op2"]): True}


def test_the_desk_has_stable_hooks_for_the_disposition_form_and_the_panel(client, world) -> None:  # type: ignore[no-untyped-def]
    login(client, "op1")
    desk = client.get("/desk").text
    for hook in ('id="disposition-form"', 'id="disp-code-promise_to_pay"', 'id="disp-code-machine"',
                 'id="disp-amount"', 'id="disp-date"', 'id="disp-callback-at"', 'id="disp-note"', 'id="disp-save"',
                 'id="disp-error"', 'id="campaign-call"', 'id="campaign-script"', 'id="campaigns-panel"',
                 'id="campaigns-list"', 'data-key="9"'):
        assert hook in desk, hook


# ---- dispositions over HTTP ----------------------------------------------------------------


@pytest.fixture
def calls(sessions, world) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Two campaign calls: one put through to op1, one that op2's phone took (as the call log says)."""
    campaign_id = create_campaign(sessions, status="running")
    now = datetime.now(UTC)
    with sessions.begin() as s:
        for debt in ("debt0", "debt1"):
            s.add(CampaignDebt(campaign_id=campaign_id, debt_id=world[debt], state="dialling", attempts=1))
        s.add(DialAttempt(channel_id="dial-op1", campaign_id=campaign_id, debt_id=world["debt0"],
                          phone_e164="+79160000000", placed_at=now, operator_id=world["op1"]))
        s.add(DialAttempt(channel_id="dial-op2", campaign_id=campaign_id, debt_id=world["debt1"],
                          phone_e164="+79160000001", placed_at=now))
        s.add(Call(linkedid="dial-op2", direction="outbound", started_at=now, operator_id=world["op2"]))
    return {"op1": "dial-op1", "op2": "dial-op2"}


def dispose(http: TestClient, csrf: str, channel_id: str, **body: Any) -> Any:
    return http.post(f"/api/campaign-calls/{channel_id}/disposition", json=body, headers={"X-CSRF-Token": csrf})


def test_only_the_operator_who_took_the_call_or_a_supervisor_records_its_result(client, sessions, world,
                                                                               calls) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "op2")
    refused = dispose(client, csrf, calls["op1"], code="paid")
    assert refused.status_code == 403 and refused.json()["detail"] == "Этот звонок обслуживал другой оператор."
    assert dispose(client, csrf, calls["op2"], code="busy").status_code == 200, "the call log names op2"
    csrf = login(client, "super1")
    saved = dispose(client, csrf, calls["op1"], code="promise_to_pay", amount="1500",
                    promised_date=(date.today() + timedelta(days=3)).isoformat(), note=HOSTILE)
    assert saved.status_code == 200
    assert saved.json() == {"channel_id": "dial-op1", "disposition": "promise_to_pay", "debt_id": world["debt0"],
                            "debt_status": "promised"}
    with sessions() as s:
        assert s.get(Debt, world["debt0"]).promised_amount == Decimal("1500.00")  # type: ignore[union-attr]
    entries = audit(sessions, "campaign_disposition")
    assert [(e.actor_login, e.target, e.outcome) for e in entries] == [
        ("op2", "dial-op1", "refused"), ("op2", "dial-op2", "ok"), ("super1", "dial-op1", "ok")]
    assert entries[2].details["amount"] == "1500" and "note" not in entries[2].details


def test_a_bad_disposition_gets_a_clear_error_in_the_operators_language(client, sessions, world, calls) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "op1")
    past = dispose(client, csrf, calls["op1"], code="promise_to_pay", amount="100", promised_date="2020-01-01")
    assert past.status_code == 422 and past.json()["detail"] == "Обещанная дата 2020-01-01 уже прошла."
    no_amount = dispose(client, csrf, calls["op1"], code="promise_to_pay",
                        promised_date=(date.today() + timedelta(days=1)).isoformat())
    assert no_amount.json()["detail"] == "Для обещания оплаты нужна сумма."
    assert dispose(client, csrf, calls["op1"], code="sale").status_code == 422
    assert dispose(client, csrf, calls["op1"], code="callback", callback_at="not a time").status_code == 422
    assert dispose(client, csrf, "dial-nope", code="paid").status_code == 404
    with sessions() as s:
        assert s.get(Debt, world["debt0"]).status == "active", "nothing half-applied"  # type: ignore[union-attr]
    assert dispose(client, csrf, calls["op1"], code="no_answer").status_code == 200
    again = dispose(client, csrf, calls["op1"], code="paid")
    assert again.status_code == 409 and "уже записан" in again.json()["detail"]
    assert client.post(f"/api/campaign-calls/{calls['op1']}/disposition", json={"code": "paid"}).status_code == 403


def test_a_recorded_result_frees_the_operator_in_the_dialler(sessions, world, calls) -> None:  # type: ignore[no-untyped-def]
    class Dialler:
        """Only what the route uses of routing.campaigns.service.DiallerService."""

        def __init__(self) -> None:
            self.freed: list[int] = []

        def wrapped_up(self, operator_id: int) -> None:
            self.freed.append(operator_id)

    dialler = Dialler()
    app = create_app(Settings(secret_key="test-secret", default_language="en"), sessions, MemoryBus(),
                     campaign_dialler=dialler)
    with TestClient(app) as http:
        csrf = csrf_of(http.get("/login").text)
        http.post("/login", data={"login": "super1", "password": PASSWORDS["super1"], "csrf": csrf})
        csrf = csrf_of(http.get("/desk").text)
        assert dispose(http, csrf, calls["op1"], code="machine").status_code == 200
    assert dialler.freed == [world["op1"]], "the operator who took the call, not the supervisor"


def test_todays_figures_count_the_campaigns_day_also_when_utc_has_another_date(sessions, world) -> None:  # type: ignore[no-untyped-def]
    """00:30 in Moscow is 21:30 UTC the day before: calls since Moscow's midnight are today's, earlier ones not."""
    campaign_id = create_campaign(sessions, status="running")
    now = datetime(2026, 11, 23, 21, 30, tzinfo=UTC)
    with sessions.begin() as s:
        for n, placed in enumerate([now - timedelta(minutes=20), now - timedelta(minutes=40)]):  # 00:10, 23:50
            s.add(DialAttempt(channel_id=f"day-{n}", campaign_id=campaign_id, debt_id=world["debt0"],
                              phone_e164="+79160000000", placed_at=placed, outcome="no_answer"))
    with sessions() as s:
        assert figures(s, s.get(Campaign, campaign_id), now).dialled_today == 1
