"""End to end: the simulator rings op1, the card pops in op1's Chromium before anyone answers,
op2's desk stays quiet, the note is saved on the call and the call is listed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from live_stack import LiveStack, manual_pbx
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from crm_core.db import make_engine, make_sessionmaker
from crm_core.models import Call, Interaction
from crm_core.seed import KNOWN_NAME, KNOWN_NUMBER

OP1 = "Local/101@agents/n"
OP3 = "Local/103@agents/n"
ZONE = "Asia/Yekaterinburg"  # Chelyabinsk's clock, UTC+5


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """sales rings only op1 and support (the service department's queue) only op3, as the seed
    places them; op2 is in no queue. Phones wait for the test to pick up."""
    config = manual_pbx({"sales": (OP1,), "support": (OP3,)})
    folder = tmp_path_factory.mktemp("e2e")
    stack = LiveStack(f"sqlite:///{folder / 'callcard.db'}", config, recordings=folder / "recordings")
    stack.start()
    yield stack
    stack.stop()


def call_row(live: LiveStack, linkedid: str) -> Call | None:
    engine = make_engine(live.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            call = session.scalar(select(Call).where(Call.linkedid == linkedid))
            if call is not None:
                notes = session.scalars(select(Interaction).where(Interaction.call_id == call.id)).all()
                call.notes_seen = [(n.note, n.client_id) for n in notes]  # type: ignore[attr-defined]
                call.operator_login = call.operator.login if call.operator else None  # type: ignore[attr-defined]
            return call
    finally:
        engine.dispose()


def test_simulated_call_pops_before_answer_is_logged_and_noted(browser: Browser, live: LiveStack) -> None:
    op1 = live.log_in(browser, "op1", timezone_id=ZONE)
    op2 = live.log_in(browser, "op2")
    errors: list[str] = []  # the console of every page op1 opens from here on
    op1.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    linkedid = live.run(live.sim.place_call(KNOWN_NUMBER, "Ivan Petrov", queue="sales", patience=120))

    expect(op1.locator("#client-name")).to_have_text(KNOWN_NAME, timeout=10_000)
    expect(op1.locator("#call-state")).to_have_text("Звонит")
    expect(op1.locator("#call-queue")).to_have_text("Очередь: Продажи")  # the department, not Asterisk's queue
    ringing = [c for c in live.sim.snapshot().calls if c.linkedid == linkedid]
    assert [c.state for c in ringing] == ["ringing"], "the card must pop while the phone still rings"

    live.run(live.sim.answer(OP1))
    expect(op1.locator("#call-state")).to_have_text("Разговор")
    op1.wait_for_timeout(2_200)  # a talk long enough to be recorded and logged in whole seconds
    live.run(live.sim.hangup_agent(OP1))
    expect(op1.locator("#call-state")).to_have_text("Завершён")

    op1.fill("#note", "Клиент уточнил баланс")
    op1.select_option("#disposition", "consulted")
    op1.press("#note", "Control+Enter")
    expect(op1.locator("#toast")).to_have_text("Заметка сохранена.")

    call = call_row(live, linkedid)
    assert call is not None
    assert (call.outcome, call.operator_login, call.caller_e164, call.queue) == (
        "answered", "op1", KNOWN_NUMBER, "sales")
    assert call.disposition == "consulted"
    assert call.notes_seen == [("Клиент уточнил баланс", call.client_id)]  # type: ignore[attr-defined]
    assert call.client_id is not None

    op1.goto("/calls")
    row = op1.locator(f'tr[data-linkedid="{linkedid}"]')
    expect(row).to_contain_text(KNOWN_NAME)
    expect(row).to_contain_text("Консультация")
    expect(row).to_contain_text("Продажи")
    local = call.started_at.replace(tzinfo=UTC).astimezone(ZoneInfo(ZONE))  # stored naive UTC on SQLite
    expect(row.locator("time")).to_have_text(f"{local:%d.%m.%Y, %H:%M:%S}")  # the operator's clock, not UTC
    op1.wait_for_load_state("load")
    assert errors == [], errors
    icon = op1.locator("link[rel=icon]").get_attribute("href")  # else Chromium asks for /favicon.ico: a 404
    assert icon and op1.request.get(icon).ok

    # the simulator's MixMonitor left the talk's WAV; op1 answered the call, so op1 may play it
    row.locator("button.play").click()
    player = op1.locator(f'tr[data-linkedid="{linkedid}"] + tr.player audio')
    expect(player).to_have_count(1)
    player.evaluate("a => a.readyState >= 1 ? null : new Promise(ok => a.addEventListener('loadedmetadata', ok))")
    assert player.evaluate("a => a.error") is None
    player_seconds = player.evaluate("a => a.duration")
    assert 2.0 <= player_seconds <= 4.0, "the recording lasts as long as the talk"
    assert errors == [], errors
    row.locator("button.play").click()  # closes the player
    expect(op1.locator("tr.player")).to_have_count(0)

    op1.goto(f"/clients/{call.client_id}")  # the same recording from the client's timeline
    op1.locator("#timeline .interaction-call button.play").first.click()
    heard = op1.locator("#timeline .interaction-call .player audio")
    expect(heard).to_have_count(1)
    heard.evaluate("a => a.readyState >= 1 ? null : new Promise(ok => a.addEventListener('loadedmetadata', ok))")
    assert heard.evaluate("a => a.duration") == player_seconds
    assert errors == [], errors
    op1.goto("/calls")

    op1.fill("#number-filter", "8" + KNOWN_NUMBER[2:])  # the caller's number as people type it
    op1.fill("#day-filter", f"{local:%Y-%m-%d}")
    op1.click("#calls-filter button[type=submit]")
    expect(op1).to_have_url(re.compile(r"tz=Asia%2FYekaterinburg"))  # the day is the operator's
    expect(op1.locator(f'tr[data-linkedid="{linkedid}"]')).to_be_visible()
    assert all(KNOWN_NAME in row.inner_text() for row in op1.locator("#calls tbody tr").all())

    # op2 was logged in the whole time and was never rung: nothing may have popped there
    expect(op2.locator("#client-name")).to_have_count(0)

    # a supervisor listens and scores the call under its player; op1 reads the score on their call
    boss = live.log_in(browser, "super1", wait_socket=False)
    boss.goto("/calls")
    boss.locator(f'tr[data-linkedid="{linkedid}"] button.play').click()
    form = boss.locator(f'tr[data-linkedid="{linkedid}"] + tr.player form.review-form')
    form.locator("select[name=score]").select_option("4")
    form.locator("input[name=comment]").fill("Вежливо, но не назвал срок")
    form.locator("button[type=submit]").click()
    expect(boss.locator("#toast")).to_have_text("Оценка сохранена.")
    expect(boss.locator(f'tr[data-linkedid="{linkedid}"] td.recording .score')).to_have_text("★ 4")
    op1.goto("/calls")
    score = op1.locator(f'tr[data-linkedid="{linkedid}"] td.recording .score')
    expect(score).to_have_text("★ 4")
    assert score.get_attribute("title").startswith("Качество: Вежливо, но не назвал срок — ")
    op1.locator(f'tr[data-linkedid="{linkedid}"] button.play').click()
    expect(op1.locator("tr.player audio")).to_have_count(1)
    expect(op1.locator("form.review-form")).to_have_count(0)  # operators read reviews, never write them

    # the caller rings again: the card pops at once, then the last call's ▶, which plays it there
    op1.goto("/desk")
    op1.wait_for_selector("body[data-socket=ready]")
    again = live.run(live.sim.place_call(KNOWN_NUMBER, "Ivan Petrov", queue="sales", patience=120))
    expect(op1.locator("#client-name")).to_have_text(KNOWN_NAME, timeout=10_000)
    earlier = op1.locator(f'.client-card li.interaction-call[data-linkedid="{linkedid}"]')
    earlier.locator("button.play").click()
    heard = earlier.locator(".player audio")
    heard.evaluate("a => a.readyState >= 1 ? null : new Promise(ok => a.addEventListener('loadedmetadata', ok))")
    assert heard.evaluate("a => a.duration") == player_seconds
    assert op1.locator(".client-card button.play").count() == 1, "only the call with a recording has one"
    live.run(live.sim.answer(OP1))
    live.run(live.sim.hangup_agent(OP1))
    expect(op1.locator("#call-state")).to_have_text("Завершён")
    assert again != linkedid and errors == [], errors


def test_abandoned_simulated_call_is_logged_with_its_wait(browser: Browser, live: LiveStack) -> None:
    op3 = live.log_in(browser, "op3")
    linkedid = live.run(live.sim.place_call("+79990001122", "", queue="support", patience=3))
    expect(op3.locator("#new-caller-number")).to_have_text("+7 999 000-11-22", timeout=10_000)
    expect(op3.locator("#call-state")).to_have_text("Звонящий положил трубку", timeout=15_000)
    op3.goto("/calls")
    row = op3.locator(f'tr[data-linkedid="{linkedid}"]')
    expect(row).to_be_visible()
    call = call_row(live, linkedid)
    assert call is not None
    assert (call.outcome, call.wait_seconds, call.operator_login) == ("abandoned", 3, None)
