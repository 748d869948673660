"""The supervisor's agents page end to end: super1 pauses op1 with a reason from the page, the
QueuePause goes through the real AMI client to the simulator, the page shows the result and the
PBX has op1 paused; an operator cannot open the page. An operator pauses themselves from the desk,
and the desk shows what the PBX then says, a supervisor's pause included."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from live_stack import LiveStack
from playwright.sync_api import Browser, expect
from sqlalchemy import func, select

from callcard.pbx_sim import default_config
from crm_core.models import Client, Operator
from routing.wall import STATUS_FIELD, desk_status_key

OP1, OP2 = "Local/101@agents/n", "Local/102@agents/n"
HOSTILE = '<img src=x onerror="window.pwned=1">'


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    stack = LiveStack(f"sqlite:///{tmp_path_factory.mktemp('supervisor') / 'callcard.db'}", default_config())
    stack.start()
    yield stack
    stack.stop()


def test_supervisor_pauses_an_agent_with_a_reason_and_sees_the_result(browser: Browser, live: LiveStack) -> None:
    page = live.log_in(browser, "super1", wait_socket=False)
    page.click("a[href='/supervisor/agents']")
    row = page.locator("tr[data-login=op1]")
    expect(row.locator(".member[data-queue=sales]")).to_be_visible()
    row.locator(".pause-reason").fill("обучение")
    row.locator(".do-pause").click()
    expect(page.locator("#sup-result")).to_have_text("Анна Смирнова: пауза во всех очередях (обучение).")
    expect(page.locator("#sup-result")).to_have_class("sup-result ok")
    row = page.locator("tr[data-login=op1]")
    expect(row.locator(".member.paused[data-queue=sales]")).to_contain_text("обучение")
    member = next(m for m in live.sim.snapshot().members if m.interface == OP1)
    assert (member.paused, member.reason) == (True, "обучение")
    latest = page.locator("#audit-body tr").first.locator("[data-action]")
    expect(latest).to_have_attribute("data-action", "pause")
    expect(latest).to_have_text("пауза")  # the action in the supervisor's language

    row.locator(".do-remove[data-queue=sales]").click()  # a static member: Asterisk says no, clearly
    expect(page.locator("#sup-result")).to_contain_text("queues.conf")
    expect(page.locator("#sup-result")).to_have_class("sup-result error")

    page.click("a[href='/supervisor/reports']")
    expect(page.locator("#report-missed h2")).to_be_visible()


def test_operator_cannot_open_the_supervisor_page(browser: Browser, live: LiveStack) -> None:
    page = live.log_in(browser, "op1", wait_socket=False)
    expect(page.locator("a[href='/supervisor/agents']")).to_have_count(0)
    response = page.goto("/supervisor/agents")
    assert response is not None and response.status == 403
    expect(page.locator("#forbidden")).to_be_visible()
    assert page.locator("#agents").count() == 0


def test_supervisor_hands_a_leaving_agents_clients_to_a_colleague(browser: Browser, live: LiveStack) -> None:
    page = live.log_in(browser, "super1", wait_socket=False)
    page.goto("/supervisor/agents")
    row = page.locator("tr[data-login=op2]")
    with live.stack.sessions() as session:
        ids = dict(session.execute(select(Operator.login, Operator.id)).all())
        theirs = session.scalar(select(func.count()).select_from(Client).where(Client.manager_id == ids["op2"]))
        before = session.scalar(select(func.count()).select_from(Client).where(Client.manager_id == ids["op1"]))
    assert theirs > 0
    expect(row.locator(".hand-over-to")).to_be_visible()
    row.locator(".hand-over-to").select_option(str(ids["op1"]))
    row.locator(".do-hand-over").click()
    expect(page.locator("#sup-result")).to_have_text(f"Передано клиентов: {theirs}.")
    expect(page.locator("tr[data-login=op2] .hand-over-to")).to_have_count(0)  # nobody left to hand over
    with live.stack.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Client)
                              .where(Client.manager_id == ids["op1"])) == before + theirs


def pbx_pause(live: LiveStack, interface: str, paused: bool, reason: str) -> None:
    """Wait until the simulator has the member paused (or not) for `reason`."""
    deadline = time.monotonic() + 10
    while True:
        member = next(m for m in live.sim.snapshot().members if m.interface == interface)
        if (member.paused, member.reason if paused else "") == (paused, reason):
            return
        assert time.monotonic() < deadline, f"the PBX has {member}"
        time.sleep(0.05)


def test_an_operator_pauses_from_the_desk_and_the_desk_follows_the_pbx(browser: Browser, live: LiveStack) -> None:
    desk = live.log_in(browser, "op2")
    box = desk.locator("#my-status-box")
    expect(box).to_have_attribute("data-state", "ready")
    desk.select_option("#my-status", "lunch")
    expect(box).to_have_attribute("data-state", "paused")
    expect(desk.locator("#status-timer")).to_have_text(re.compile(r"^\d+:\d\d$"))
    pbx_pause(live, OP2, True, "lunch")

    sup = live.log_in(browser, "super1", wait_socket=False)
    sup.goto("/supervisor/agents")
    row = sup.locator("tr[data-login=op2]")
    expect(row.locator(".member.paused[data-queue=sales]")).to_contain_text("Обед")  # the code, named

    desk.reload()  # the live status comes back with the page, its timer still counting from the pause
    expect(box).to_have_attribute("data-state", "paused")
    expect(desk.locator("#my-status")).to_have_value("lunch")
    expect(desk.locator("#my-day")).to_have_text(  # the lunch so far is in the day's pause time
        re.compile(r"^Сегодня: звонков \d+ · разговор \d+:\d\d:\d\d · пауза 0:00:0[1-9]$"))
    desk.wait_for_selector("body[data-socket=ready]")
    desk.keyboard.press("p")
    expect(box).to_have_attribute("data-state", "ready")
    pbx_pause(live, OP2, False, "")
    desk.keyboard.press("p")  # pauses again, for the reason chosen last
    pbx_pause(live, OP2, True, "lunch")
    expect(box).to_have_attribute("data-state", "paused")

    row.locator(".pause-reason").fill(HOSTILE)  # a supervisor's own words reach the desk, as text
    row.locator(".do-pause").click()
    pbx_pause(live, OP2, True, HOSTILE)
    expect(desk.locator("#my-status-other")).to_have_text(HOSTILE)
    expect(desk.locator("#my-status")).to_have_value("other")
    assert desk.evaluate("window.pwned") is None
    desk.select_option("#my-status", "ready")
    expect(box).to_have_attribute("data-state", "ready")
    pbx_pause(live, OP2, False, "")
    sup.reload()
    expect(sup.locator("tr[data-login=op2] .member.paused")).to_have_count(0)

    sup.goto("/supervisor/reports")  # the pauses just taken, by reason, with a bar to see them by
    row = sup.locator("#report-pauses tr[data-agent=op2]")
    expect(row.locator("th")).to_have_text("Дмитрий Козлов")
    expect(row.locator(".seg[data-reason=lunch]")).to_have_attribute("title", re.compile(r"^Обед: 0:00:\d\d$"))
    bar = row.locator(".pause-bar").bounding_box()
    assert bar is not None and bar["width"] > 0


VIOLATIONS = ("window.violations = [];"
              "document.addEventListener('securitypolicyviolation',"
              " (e) => window.violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));")


@pytest.mark.parametrize(("login", "paths"), [
    ("super1", ["/desk", "/calls", "/clients", "/clients/{client}", "/requests", "/wall", "/supervisor/agents",
                "/supervisor/reports", "/supervisor/thresholds", "/campaigns", "/campaigns/import",
                "/clients/import"]),
    ("admin", ["/admin/routing", "/admin/ivr"]),
])
def test_every_page_keeps_to_the_content_security_policy(browser: Browser, live: LiveStack, login: str,
                                                         paths: list[str]) -> None:
    """The policy allows no inline script or style: a page that relied on one would break here."""
    with live.stack.sessions() as session:
        client = session.scalar(select(Client.id).order_by(Client.id))
    page = live.log_in(browser, login, wait_socket=False)
    page.context.add_init_script(VIOLATIONS)
    for path in paths:
        page.goto(path.format(client=client))
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.violations") == [], path
        assert page.locator("#page-data").count() == 1  # the page's data block is data: never run, never blocked
    page.click("#help-open")  # the help button, once an inline handler
    expect(page.locator("#help")).to_be_visible()


def test_a_pause_past_its_reasons_limit_shows_red_on_the_desk(browser: Browser, live: LiveStack) -> None:
    """op3 has been on a 15-minute break for 20 minutes, as the wall service keeps it for their desk."""
    with live.stack.sessions() as session:
        op3 = session.scalar(select(Operator.id).where(Operator.login == "op3"))
    status = {"type": "status", "state": "paused", "reason": "break", "paused_in": ["sales"], "queues": ["sales"],
              "at": time.time() - 20 * 60, "limit": 15 * 60}
    live.run(live.stack.bus.keep(desk_status_key(op3), STATUS_FIELD, status, 60))
    desk = live.log_in(browser, "op3")
    expect(desk.locator("#my-status")).to_have_value("break")
    expect(desk.locator("#my-status-box")).to_have_attribute("data-over", "true")
    expect(desk.locator("#status-timer")).to_have_text(re.compile(r"^20:0\d$"))
    expect(desk.locator("#status-timer")).to_have_attribute("title", "норма 15 мин")


def test_a_supervisor_adds_a_pause_reason_and_an_operator_pauses_for_it(browser: Browser, live: LiveStack) -> None:
    """op4's desk is open all along: the new reason and its name reach it without a reload."""
    desk = live.log_in(browser, "op4")
    options = desk.locator("#my-status optgroup option:not([hidden])")
    expect(options).to_have_text(["Перерыв", "Обед", "Обучение", "Совещание", "Обработка звонка"])
    sup = live.log_in(browser, "super1", wait_socket=False)
    sup.goto("/supervisor/thresholds")
    rows = sup.locator("#pause-reasons-body tr")
    expect(rows).to_have_count(5)
    expect(rows.first.locator("[name=code]")).to_have_value("break")
    expect(rows.first.locator("[name=code]")).to_have_attribute("readonly", "")  # a stored code stays as it is
    sup.click("#pause-reason-add")
    new = rows.nth(5)
    new.locator("[name=code]").fill("coaching")
    new.locator("[name=name_ru]").fill("Наставничество")
    new.locator("[name=name_en]").fill(HOSTILE)
    new.locator("[name=limit_minutes]").fill("20")
    rows.nth(2).locator("[name=active]").uncheck()  # training: offered no more
    sup.click("#pause-reasons-save")
    expect(sup.locator("#sup-result")).to_have_class("sup-result ok")
    expect(sup.locator("#pause-reasons-body tr").last.locator("[name=code]")).to_have_value("training")

    expect(options).to_have_text(["Перерыв", "Обед", "Совещание", "Обработка звонка", "Наставничество"])
    desk.select_option("#my-status", "coaching")
    pbx_pause(live, "Local/104@agents/n", True, "coaching")
    expect(desk.locator("#my-status-box")).to_have_attribute("data-state", "paused")
    expect(desk.locator("#status-timer")).to_have_attribute("title", "норма 20 мин")  # the new reason's limit

    sup.goto("/supervisor/agents")  # named as the centre calls it, in the reader's language
    row = sup.locator("tr[data-login=op4]")
    expect(row.locator(".member.paused[data-queue=collections]")).to_contain_text("Наставничество")
    desk.select_option("#my-status", "ready")
    pbx_pause(live, "Local/104@agents/n", False, "")
    assert desk.evaluate("window.pwned") is None and sup.evaluate("window.pwned") is None
