"""Requests (SLA, routing by type and client, history, follow-ups, escalation, web form, e-mail)
and route_call() against the real databases."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from agent_desk.app import create_app
from ami_bridge.events import CallEvent, CallEventKind, Outcome
from callcard.bus import MemoryBus, desk_topic
from callcard.settings import Settings
from crm_core.call_log import CallLogger
from crm_core.models import Call, Client, ClientPhone, Department, Operator, Phone, Request
from crm_core.passwords import hash_password
from crm_core.phones import format_phone
from ivr import service as ivr_service
from routing import service as routing
from routing.inbox import service
from routing.inbox.followups import FollowUps, escalate_once, publish_overdue
from routing.inbox.intake import import_eml_dir, parse_eml
from routing.inbox.models import RequestEvent
from routing.rules import RULE_CODES, QueueLoad

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
KNOWN = "+73511234567"
DEBTOR = "+73510000001"


@pytest.fixture
def world(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        depts = {code: Department(code=code, name=code.title(), queue=queue)
                 for code, queue in (("sales", "sales"), ("service", "support"), ("collections", "collections"))}
        head = Operator(login="head", name="Head of Service", password_hash="x")
        manager = Operator(login="mgr", name="Мария", password_hash="x", interface="Local/105@agents",
                           departments=[depts["sales"]])
        session.add_all([*depts.values(), head, manager])
        session.flush()
        depts["service"].head_id = head.id
        known = Client(name="Иван Петров", email="ivan@example.ru", manager_id=manager.id, segment="vip")
        known.phone_links.append(ClientPhone(phone=Phone(e164=KNOWN), label="home"))
        debtor = Client(name="Должник", debt_open=True)
        debtor.phone_links.append(ClientPhone(phone=Phone(e164=DEBTOR), label="home"))
        plain = Client(name="Обычный", email="plain@example.ru")
        session.add_all([known, debtor, plain])
        session.flush()
        return {"head": head.id, "manager": manager.id, "known": known.id, "debtor": debtor.id, "plain": plain.id,
                **{f"dept_{c}": d.id for c, d in depts.items()}}


def test_request_type_sets_department_and_sla_and_the_client_can_override(sessions, world) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        complaint = service.create_request(session, "complaint", "Шумит", NOW, client_id=world["plain"])
        order = service.create_request(session, "order", "Хочу купить", NOW, client_id=world["debtor"])
        managed = service.create_request(session, "question", "Вопрос", NOW, client_id=world["known"])
        assert (complaint.department_id, complaint.due_at) == (world["dept_service"], NOW + timedelta(hours=4))
        assert (order.department_id, order.due_at) == (world["dept_collections"], NOW + timedelta(hours=2))
        assert (managed.department_id, managed.assignee_id) == (world["dept_sales"], world["manager"])
        with pytest.raises(service.RequestError):
            service.create_request(session, "gossip", "?", NOW)


def test_status_history_comments_and_a_follow_up_call_on_close(sessions, world) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        req = service.create_request(session, "service", "Ремонт", NOW, client_id=world["plain"])
        service.change_status(session, req.id, "in_progress", world["head"], NOW + timedelta(minutes=5))
        service.comment(session, req.id, world["head"], "Мастер назначен", NOW + timedelta(minutes=6))
        service.assign(session, req.id, world["head"], world["head"], NOW + timedelta(minutes=7))
        with pytest.raises(service.RequestError, match="does not work in"):  # a sales operator
            service.assign(session, req.id, world["manager"], world["head"], NOW)
        follow = service.change_status(session, req.id, "closed", world["head"], NOW + timedelta(hours=1),
                                       follow_up_in=timedelta(days=3))
        assert follow is not None
        assert (follow.kind, follow.client_id, follow.department_id, follow.due_at) == (
            "callback", world["plain"], world["dept_service"], NOW + timedelta(hours=1, days=3))
        with pytest.raises(service.RequestError, match="closed already"):
            service.change_status(session, req.id, "open", None, NOW)
        steps = [(e.kind, e.value, e.text) for e in service.history(session, req.id)]
    assert steps == [("created", "service", ""), ("status", "in_progress", ""), ("comment", "", "Мастер назначен"),
                     ("assigned", str(world["head"]), ""), ("status", "closed", "")]


def test_the_inbox_shows_the_most_urgent_first_with_client_and_assignee(sessions, world) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        session.add(Request(subject="Без срока", department_id=world["dept_service"]))  # as old rows may be
        session.flush()
        hostile = Client(name='<img src=x onerror="alert(1)">')
        session.add(hostile)
        session.flush()
        later = service.create_request(session, "service", "Ремонт", NOW, client_id=world["plain"])  # 24 h
        sooner = service.create_request(session, "complaint", "Шумит", NOW, client_id=hostile.id)  # 4 h
        service.assign(session, later.id, world["head"], world["head"], NOW)
        done = service.create_request(session, "complaint", "Решено", NOW - timedelta(days=1),
                                      client_id=world["plain"])
        service.change_status(session, done.id, "closed", world["head"], NOW)
        def view(name: str, now: datetime = NOW) -> list[str]:
            return [r.subject for r in service.inbox(session, world["dept_service"], name, world["head"], now)]

        order = view("open")
        ids = (sooner.id, later.id)
        assert view("mine") == ["Ремонт"]  # assigned to the head
        assert view("overdue", NOW + timedelta(hours=5)) == ["Шумит"]  # 4 h complaint; no deadline is never late
        assert view("closed") == ["Решено"]
        assert service.inbox_counts(session, world["dept_service"], world["head"], NOW + timedelta(hours=5)) == {
            "open": 3, "mine": 1, "overdue": 1}
        with pytest.raises(service.RequestError):
            view("everything")
    assert order == ["Шумит", "Ремонт", "Без срока"]  # SQLite sorts a missing deadline first unless told

    supervisor, _ = _logged_in(sessions, "sup", "supervisor")
    page = supervisor.get("/requests?department=service").text
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr data-request-id="(\d+)".*?</tr>', page, re.S)}
    assert len(rows) == 3 and list(rows)[:2] == [str(i) for i in ids]
    assert f'<a href="/clients/{world["plain"]}">Обычный</a>' in rows[str(ids[1])]
    assert '<td class="request-assignee">Head of Service</td>' in rows[str(ids[1])]
    assert '<td class="request-assignee">—</td>' in rows[str(ids[0])]
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in rows[str(ids[0])] and "<img src" not in page


def ended(linkedid: str, caller: str, outcome: Outcome, queue: str = "support") -> CallEvent:
    return CallEvent(kind=CallEventKind.ENDED, linkedid=linkedid, at=NOW.timestamp(), caller_num=caller,
                     queue=queue, outcome=outcome)


def test_missed_or_abandoned_caller_gets_one_callback_task(sessions, world) -> None:  # type: ignore[no-untyped-def]
    follow_ups = FollowUps(sessions)
    assert follow_ups.apply(ended("1.1", "8" + KNOWN[2:], Outcome.ABANDONED))
    assert not follow_ups.apply(ended("1.1", KNOWN, Outcome.ABANDONED))  # replayed: still one task
    assert follow_ups.apply(ended("1.2", DEBTOR, Outcome.MISSED, queue=""))
    assert follow_ups.apply(ended("1.3", "+79990000000", Outcome.MISSED, queue="sales"))  # a new caller: a lead
    assert not follow_ups.apply(ended("1.4", KNOWN, Outcome.ANSWERED))
    assert not follow_ups.apply(ended("1.5", "anonymous", Outcome.ABANDONED))  # withheld: nobody to call
    with sessions() as session:
        tasks = session.scalars(select(Request).where(Request.kind == "callback").order_by(Request.id)).all()
        assert [(t.linkedid, t.client_id, t.department_id, t.due_at.replace(tzinfo=UTC)) for t in tasks] == [
            ("1.1", world["known"], world["dept_service"], NOW + timedelta(minutes=15)),
            ("1.2", world["debtor"], world["dept_collections"], NOW + timedelta(minutes=15)),
            ("1.3", None, world["dept_sales"], NOW + timedelta(minutes=15)),
        ]
        assert [(t.subject, t.contact) for t in tasks] == [
            (f"Перезвонить: {format_phone(KNOWN)} (брошенный звонок)", KNOWN),
            (f"Перезвонить: {format_phone(DEBTOR)} (пропущенный звонок)", DEBTOR),
            ("Перезвонить: +7 999 000-00-00 (пропущенный звонок)", "+79990000000"),
        ]


def test_a_caller_missed_again_joins_their_open_callback_until_it_is_closed(sessions, world) -> None:  # type: ignore[no-untyped-def]
    """Three missed calls, one task: two operators never ring the same caller back. Once it is
    closed, the next missed call is a new task."""
    follow_ups = FollowUps(sessions)
    assert follow_ups.apply(ended("2.1", KNOWN, Outcome.ABANDONED))
    assert not follow_ups.apply(ended("2.2", "8" + KNOWN[2:], Outcome.MISSED))
    assert not follow_ups.apply(ended("2.3", KNOWN, Outcome.ABANDONED))
    assert not follow_ups.apply(ended("2.3", KNOWN, Outcome.ABANDONED))  # replayed: one history line
    with sessions.begin() as session:
        task = session.scalars(select(Request).where(Request.kind == "callback")).one()
        history = session.execute(select(RequestEvent.kind, RequestEvent.value, RequestEvent.text)
                                  .where(RequestEvent.request_id == task.id).order_by(RequestEvent.id)).all()
        assert [tuple(h) for h in history] == [("created", "callback", "брошенный звонок"),
                                              ("again", "2.2", "пропущенный звонок"),
                                              ("again", "2.3", "брошенный звонок")]
        service.change_status(session, task.id, "closed", None, NOW)
    assert follow_ups.apply(ended("2.4", KNOWN, Outcome.MISSED))
    with sessions() as session:
        assert session.scalars(select(Request.linkedid).where(Request.kind == "callback")
                               .order_by(Request.id)).all() == ["2.1", "2.4"]


@pytest.mark.parametrize(("path", "callback"), [
    ("rejected", False),  # a blocked number turned away before the menu
    ("main>1>sales>rejected", False),
    ("main>2>service>voicemail", False),  # the closed department's message
    ("main>1>sales>overflow>callback", False),  # the IVR filed its own callback
    ("main>hangup", True),  # the caller hung up in the menu: nobody answered them
    ("main>1>sales", True),  # through the menu into the queue, then missed there
])
def test_a_call_the_ivr_ended_itself_gets_no_follow_up_callback(sessions, world, path, callback) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        ivr_service.record_path(session, "3.1", path, NOW, None, "", NOW)
    assert FollowUps(sessions).apply(ended("3.1", KNOWN, Outcome.MISSED, queue="")) is callback
    with sessions() as session:
        assert len(session.scalars(select(Request)).all()) == int(callback)


@pytest.mark.parametrize(("path", "kept"), [
    ("rejected", False), ("main>2>service>voicemail", False),  # wanted no callback: withdrawn
    ("main>1>sales>overflow>callback", True),  # the IVR's promise: the same request, which it joins
    ("main>hangup", True), ("main>1>sales", True),  # nobody answered them: it stays
])
def test_a_follow_up_filed_before_the_ivr_stored_its_path_is_withdrawn_when_unwanted(
        sessions, world, path, kept) -> None:  # type: ignore[no-untyped-def]
    """The call's end can reach the follow-up rule before the IVR has written its path."""
    assert FollowUps(sessions).apply(ended("3.2", KNOWN, Outcome.MISSED, queue=""))
    with sessions.begin() as session:
        ivr_service.record_path(session, "3.2", path, NOW, None, "", NOW + timedelta(seconds=1))
    with sessions() as session:
        task = session.scalars(select(Request)).one()
        history = session.scalars(select(RequestEvent.text).where(RequestEvent.request_id == task.id)
                                  .order_by(RequestEvent.id)).all()
    assert task.status == ("open" if kept else "closed")
    assert (ivr_service.FOLLOW_UP_WITHDRAWN in history) is not kept


def test_the_ivr_callback_of_a_number_with_one_open_joins_it(sessions, world) -> None:  # type: ignore[no-untyped-def]
    """A caller who missed service, then asks the IVR for a sales callback: one task, two lines."""
    follow_ups = FollowUps(sessions)
    assert follow_ups.apply(ended("4.1", KNOWN, Outcome.ABANDONED))
    with sessions.begin() as session:
        joined = ivr_service.create_callback_request(session, world["known"], "sales", KNOWN, NOW, "4.2")
        assert joined.linkedid == "4.1"
    with sessions.begin() as session:
        task = session.scalars(select(Request)).one()
        history = session.execute(select(RequestEvent.kind, RequestEvent.value, RequestEvent.text)
                                  .where(RequestEvent.request_id == task.id).order_by(RequestEvent.id)).all()
        assert [tuple(h) for h in history] == [("created", "callback", "брошенный звонок"),
                                              ("again", "4.2", "просил перезвонить (Sales)")]
        service.change_status(session, task.id, "closed", None, NOW)
    assert not follow_ups.apply(ended("4.2", KNOWN, Outcome.MISSED))  # the IVR's wish is in that history
    with sessions.begin() as session:
        fresh = ivr_service.create_callback_request(session, world["known"], "sales", KNOWN, NOW, "4.3")
        assert (fresh.linkedid, fresh.department_id, fresh.status) == ("4.3", world["dept_sales"], "open")


async def test_overdue_request_is_pushed_once_to_the_department_heads_desk(sessions, world) -> None:  # type: ignore[no-untyped-def]
    """The head hears of the request; the head and supervisors (not another department's people)
    get the department's new count, and a lower one when it is closed."""
    with sessions.begin() as session:
        late = service.create_request(session, "complaint", "Никто не перезвонил", NOW, client_id=world["plain"])
        service.create_request(session, "complaint", "Ещё в срок", NOW + timedelta(hours=3))
        boss = Operator(login="boss", name="Boss", role="supervisor", password_hash="x")
        session.add(boss)
        session.flush()
        boss_id = boss.id
    bus = MemoryBus()
    head_desk = await bus.subscribe(desk_topic(world["head"]))
    boss_desk = await bus.subscribe(desk_topic(boss_id))
    seller_desk = await bus.subscribe(desk_topic(world["manager"]))

    def counted() -> list[tuple[str, int]]:  # what a desk opened now shows
        with sessions() as session:
            every = list(session.scalars(select(Department)))
            return [(d.code, n) for d, n in service.overdue_counts(session, every)]

    assert counted() == []  # not escalated yet: the push will count it
    assert await escalate_once(sessions, bus, NOW + timedelta(hours=5)) == 1
    message = await head_desk.get()
    assert (message["type"], message["request_id"], message["subject"], message["department"]) == (
        "escalation", late.id, "Никто не перезвонил", "Service")
    count = {"type": "overdue", "department": "Service", "department_code": "service", "count": 1}
    assert await head_desk.get() == count
    assert await boss_desk.get() == count
    assert await escalate_once(sessions, bus, NOW + timedelta(hours=6)) == 0
    assert counted() == [("service", 1)]
    with sessions.begin() as session:
        service.change_status(session, late.id, "closed", world["head"], NOW + timedelta(hours=7))
        closed = service.overdue_count(session, world["dept_service"])
    assert counted() == []
    assert (closed.count, closed.desks) == (0, tuple(sorted((world["head"], boss_id))))
    await publish_overdue(bus, closed)
    assert (await head_desk.get())["count"] == 0
    with pytest.raises(TimeoutError):  # sales' people never heard of service's requests
        async with asyncio.timeout(0.05):
            await seller_desk.get()
    with sessions() as session:
        assert session.scalars(select(RequestEvent.kind).where(RequestEvent.request_id == late.id)).all() == [
            "created", "escalated", "status"]


def test_unknown_did_is_logged_routed_by_default_and_the_call_still_logged(
    sessions, world, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    load = {"sales": QueueLoad(2, 0, 0)}
    with caplog.at_level(logging.WARNING, logger="routing.service"), sessions() as session:
        route = routing.route_call(session, "83511234567", "7777", "", NOW, load)
    assert "unknown DID '7777'; default department sales" in caplog.text
    assert (route.department, route.queue, route.priority, route.first_try_interface) == (
        "sales", "sales", 10, "Local/105@agents")
    assert route.explanation == ("unknown DID '7777' → default sales; personal manager Мария first for 15 s, "
                                 "then sales; segment vip → priority 10")
    CallLogger(sessions).apply(CallEvent(kind=CallEventKind.ENDED, linkedid="9.9", at=time.time(),
                                         caller_num="83511234567", did="7777", queue="sales",
                                         outcome=Outcome.ABANDONED))
    with sessions() as session:
        call = session.scalar(select(Call).where(Call.linkedid == "9.9"))
        assert (call.did, call.client_id, call.outcome) == ("7777", world["known"], "abandoned")


def test_admin_rule_set_edits_change_the_route(sessions, world) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        routing.save_rules(session, ["blocked", "manager", "debtor", "vip", "ivr", "overflow"],
                           {"blocked", "manager", "ivr", "overflow"})
        routing.set_number_route(session, "did", "3001", "service")
        routing.save_settings(session, {"default_department": "sales", "collections_department": "collections",
                                        "overflow_department": "", "manager_ring_seconds": "25",
                                        "vip_priority": "5", "overflow_wait_seconds": "30"})
        routing.block_number(session, "8 351 000-00-01", "abuse")
        with pytest.raises(routing.RoutingConfigError):
            routing.set_number_route(session, "did", "3002", "legal")
    with sessions() as session:
        blocked = routing.route_call(session, DEBTOR, "3001", "", NOW, {})
        known = routing.route_call(session, KNOWN, "3001", "", NOW, {})
    assert blocked.rejected and blocked.explanation.endswith("+73510000001 is blocked: rejected")
    assert (known.queue, known.priority, known.ring_seconds) == ("sales", 0, 25)  # vip off, manager 25 s


def test_email_import_matches_by_address_and_survives_broken_encodings(sessions, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tmp_path = tmp_path / "mail"
    tmp_path.mkdir()
    (tmp_path / "a.eml").write_bytes(
        b"From: Ivan <IVAN@example.ru>\r\nSubject: =?utf-8?b?0JLQvtC/0YDQvtGB?=\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\r\n")
    (tmp_path / "b.eml").write_bytes(
        b"From: nobody@elsewhere.ru\r\nSubject: =?x-unknown?q?broken?=\r\n"
        b"Content-Type: text/plain; charset=x-made-up\r\n\r\nCall me: +7 (351) 000-00-01 \xff\xfe\r\n")
    created = import_eml_dir(sessions, tmp_path, NOW)
    assert len(created) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.eml.done", "b.eml.done"]
    assert import_eml_dir(sessions, tmp_path, NOW) == []
    with sessions() as session:
        first, second = (session.get(Request, i) for i in created)
        assert (first.client_id, first.subject, first.body, first.source) == (
            world["known"], "Вопрос", "Привет", "email")
        assert second.client_id == world["debtor"]  # matched by the phone in the text
        assert "\ufffd" in second.body
    assert parse_eml(b"\xff\xfe garbage without headers").subject == ""  # no headers: no crash either


def test_public_web_form_files_a_request_and_keeps_bots_and_floods_out(sessions, world) -> None:  # type: ignore[no-untyped-def]
    app = create_app(Settings(secret_key="t"), sessions, MemoryBus())
    client = TestClient(app, client=("203.0.113.9", 5000))
    ok = {"name": "Иван", "email": "ivan@example.ru", "kind": "complaint", "message": "Не работает"}
    assert client.post("/public/requests", json=ok).status_code == 202
    assert client.post("/public/requests", json={**ok, "website": "http://spam"}).status_code == 202
    assert client.post("/public/requests", json={**ok, "message": "x" * 5000}).status_code == 422
    assert client.post("/public/requests", json={"message": "no contact"}).status_code == 422
    statuses = [client.post("/public/requests", json=ok).status_code for _ in range(4)]
    assert statuses[-1] == 429
    with sessions() as session:
        filed = session.scalars(select(Request).where(Request.source == "web")).all()
    assert len(filed) == statuses.count(202) + 1
    assert {(r.client_id, r.kind, r.department_id) for r in filed} == {
        (world["known"], "complaint", world["dept_sales"])}


def _logged_in(sessions, login: str, role: str) -> tuple[TestClient, str]:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        session.add(Operator(login=login, name=login, role=role, password_hash=hash_password("pw-12345678")))
    http = TestClient(create_app(Settings(secret_key="t"), sessions, MemoryBus()))
    token = re.search(r'name="csrf" value="([^"]+)"', http.get("/login").text).group(1)
    desk = http.post("/login", data={"login": login, "password": "pw-12345678", "csrf": token})
    return http, re.search(r'name="csrf" value="([^"]+)"', desk.text).group(1)


def test_admin_edits_routing_at_admin_routing_and_operators_may_not(sessions, world) -> None:  # type: ignore[no-untyped-def]
    admin, csrf = _logged_in(sessions, "boss", "admin")
    page = admin.get("/admin/routing")
    assert page.status_code == 200 and 'id="routing-rules"' in page.text
    assert admin.post("/admin/routing/blocked", data={"csrf": csrf, "number": "8 351 222-33-44",
                                                      "reason": "spam"}).status_code == 200
    bad = admin.post("/admin/routing/numbers", data={"csrf": csrf, "kind": "did", "number": "3005",
                                                     "department": "legal"})
    assert "Отдела «legal» нет." in bad.text  # in the admin's language
    assert admin.post("/admin/routing/blocked", data={"csrf": "forged", "number": "83510000009"}).status_code == 403
    assert admin.post("/admin/routing/numbers", data={"csrf": csrf, "kind": "did", "number": "3005",
                                                      "department": "sales"}).status_code == 200
    # the rules as the form's rows send them: in order, vip's up-arrow pressed, overflow unticked
    rows = list(RULE_CODES)
    saved = admin.post("/admin/routing/rules", data={"csrf": csrf, "order": rows, "enabled": rows[:-1],
                                                     "move": "vip:up"})
    assert saved.status_code == 200 and 'id="routing-error"' not in saved.text
    with sessions() as session:
        rule_set = routing.load_rule_set(session)
        assert rule_set.blocked == frozenset({"+73512223344"})
        assert rule_set.order == ("blocked", "debtor", "vip", "manager", "ivr")
    page = admin.get("/admin/routing").text
    assert "+7 351 222-33-44" in page and '<td>3005</td><td>Sales</td>' in page
    operator, _ = _logged_in(sessions, "op9", "operator")
    assert operator.get("/admin/routing").status_code == 403
    assert operator.get("/requests").status_code == 200
