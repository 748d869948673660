"""The supervisor wall in Chromium against the whole stack and the PBX simulator: the figures move
as a call queues, rings, is answered and ends; a supervisor's threshold change recolours a figure;
the reports page draws its charts; an operator gets 403 on the page and 4403 on the socket."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from live_stack import LiveStack, manual_pbx
from playwright.sync_api import Browser, Page, expect

from crm_core.seed import KNOWN_NAME, KNOWN_NUMBER

OP1 = "Local/101@agents/n"
OP2 = "Local/102@agents/n"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    config = manual_pbx({"sales": (OP1,), "support": (OP2,)})
    stack = LiveStack(f"sqlite:///{tmp_path_factory.mktemp('wall') / 'callcard.db'}", config)
    stack.start()
    yield stack
    stack.stop()


def set_longest_wait(editor: Page, queue: str, warn: int, alert: int) -> None:
    """A supervisor sets a queue's longest-wait limits (seconds) on the thresholds page."""
    editor.goto("/supervisor/thresholds")
    form = editor.locator(f'form[data-queue="{queue}"]')
    form.locator("input[name=longest_wait_warn]").fill(str(warn))
    form.locator("input[name=longest_wait_alert]").fill(str(alert))
    form.locator("button[type=submit]").click()
    expect(editor.locator("#sup-result")).to_have_class("sup-result ok")


def test_wall_follows_a_simulated_call(browser: Browser, live: LiveStack) -> None:
    wall = live.log_in(browser, "super1", wait_socket=False, viewport={"width": 1400, "height": 900})
    wall.goto("/wall")
    wall.wait_for_selector("body[data-socket=ready]")
    sales = wall.locator('#wall-big [data-queue="sales"]')
    expect(sales.locator("h2")).to_have_text("Продажи")  # the department's name over Asterisk's queue
    expect(sales.locator('[data-figure="waiting"] .value')).to_have_text("0")
    expect(sales.locator('[data-count="available"] b')).to_have_text("1")
    answered = int(sales.locator('[data-figure="answered"] .value').inner_text())  # seeded from today's calls

    linkedid = live.run(live.sim.place_call(KNOWN_NUMBER, "Ivan Petrov", queue="sales", patience=120))
    expect(sales.locator('[data-figure="waiting"] .value')).to_have_text("1", timeout=5_000)
    expect(sales.locator('[data-count="ringing"] b')).to_have_text("1")
    expect(sales.locator(f'.callers [data-linkedid="{linkedid}"]')).to_contain_text(KNOWN_NAME)

    live.run(live.sim.answer(OP1))
    expect(sales.locator('[data-figure="waiting"] .value')).to_have_text("0", timeout=5_000)
    expect(sales.locator('[data-count="on_call"] b')).to_have_text("1")
    expect(sales.locator('[data-figure="answered"] .value')).to_have_text(str(answered + 1))

    wall.click("#view-toggle")
    agent = wall.locator('#agents-table [data-interface="Local/101@agents"]')
    expect(agent.locator("[data-state]")).to_have_attribute("data-state", "on_call")
    expect(agent).to_contain_text(KNOWN_NAME)
    live.run(live.sim.hangup_agent(OP1))
    expect(agent.locator("[data-state]")).to_have_attribute("data-state", "available", timeout=5_000)
    expect(wall.locator('#queues-table [data-queue="sales"] td').nth(4)).to_have_text(str(answered + 1))
    wall.click("#view-toggle")
    expect(sales.locator('[data-count="available"] b')).to_have_text("1")
    wall.context.close()


def test_a_threshold_change_turns_the_longest_wait_red(browser: Browser, live: LiveStack) -> None:
    wall = live.log_in(browser, "super1", wait_socket=False, viewport={"width": 1400, "height": 900})
    wall.goto("/wall")
    wall.wait_for_selector("body[data-socket=ready]")
    support = wall.locator('#wall-big [data-queue="support"]')
    live.run(live.sim.place_call(KNOWN_NUMBER, "Ivan Petrov", queue="support", patience=120))
    expect(support.locator('[data-figure="waiting"] .value')).to_have_text("1", timeout=5_000)
    longest = support.locator('[data-figure="longest_wait"]')
    expect(longest).to_have_class(re.compile(r"\blevel-ok\b"))
    options = wall.locator("#chart-queue option")
    expect(options).to_have_count(3)
    assert [options.nth(i).get_attribute("value") for i in range(3)] == ["", "sales", "support"]
    assert [options.nth(i).inner_text() for i in range(3)] == ["Все очереди", "Продажи", "Сервис"]
    wall.select_option("#chart-queue", "support")  # the charts follow the chosen queue
    expect(wall.locator("#chart-queue")).to_have_value("support")
    legend = wall.locator("#chart-calls .u-legend .u-series")
    expect(legend.first.locator(".u-label")).to_have_text("время")
    wall.locator("#chart-calls .u-over").hover()  # the cursor's interval, on a 24-hour clock
    expect(legend.first.locator(".u-value")).to_have_text(re.compile(r"^([01]\d|2[0-3]):[0-5]\d$"))

    editor = wall.context.new_page()
    set_longest_wait(editor, "support", 1, 2)
    expect(longest).to_have_class(re.compile(r"\blevel-alert\b"), timeout=5_000)
    expect(wall.locator('#wall-big [data-queue="sales"] [data-figure="longest_wait"]')).to_have_class(
        re.compile(r"\blevel-ok\b"))
    live.run(live.sim.answer(OP2))
    live.run(live.sim.hangup_agent(OP2))

    editor.goto("/supervisor/reports")
    editor.wait_for_selector("body[data-charts=ready]")
    expect(editor.locator("#report-chart-calls canvas")).to_have_count(1)
    expect(editor.locator("#report-chart-sl canvas")).to_have_count(1)
    wall.context.close()


def test_operator_can_open_neither_the_wall_nor_its_socket(browser: Browser, live: LiveStack) -> None:
    op = live.log_in(browser, "op1", wait_socket=False, viewport={"width": 1400, "height": 900})
    response = op.goto("/wall")
    assert response is not None and response.status == 403
    assert op.request.get("/api/wall").status == 403
    outcome = op.evaluate("""() => new Promise((resolve) => {
        const socket = new WebSocket(`ws://${location.host}/ws/wall`);
        let messages = 0;
        socket.onmessage = () => { messages += 1; };
        socket.onclose = (event) => resolve({code: event.code, messages});
    })""")
    assert outcome == {"code": 4403, "messages": 0}
    op.context.close()


def test_an_operators_desk_shows_their_queues_callers_waiting(browser: Browser, live: LiveStack) -> None:
    """op2 is in support only: the desk's board shows support's waiting caller and the wait counting
    up, red past the queue's alert limit, and back to none once op2 answers."""
    editor = live.log_in(browser, "super1", wait_socket=False)
    set_longest_wait(editor, "support", 1, 3)

    desk = live.log_in(browser, "op2")
    row = desk.locator('#queue-board li[data-queue="support"]')
    expect(row.locator(".q-name")).to_have_text("Сервис")
    expect(row).to_have_attribute("data-waiting", "0")
    expect(row.locator(".q-longest")).to_have_text("—")
    expect(desk.locator('#queue-board li[data-queue="sales"]')).to_have_count(0)  # not op2's queue
    expect(desk.locator("#queue-board .q-head")).to_have_text("Мои очередиЖдутДольше всех")

    live.run(live.sim.place_call(KNOWN_NUMBER, "Ivan Petrov", queue="support", patience=120))
    expect(row).to_have_attribute("data-waiting", "1", timeout=5_000)
    expect(row.locator(".q-waiting")).to_have_text("1")
    expect(row).to_have_attribute("data-level", "warn", timeout=3_000)
    expect(row).to_have_attribute("data-level", "alert", timeout=3_000)
    expect(row.locator(".q-longest")).to_have_text(re.compile(r"^00:0[3-9]$"))

    live.run(live.sim.answer(OP2))
    expect(row).to_have_attribute("data-waiting", "0", timeout=5_000)
    expect(row).to_have_attribute("data-level", "ok")
    expect(row.locator(".q-longest")).to_have_text("—")
    live.run(live.sim.hangup_agent(OP2))
    desk.context.close()
    editor.context.close()
