"""Transfer end to end: op1 answers a simulated call and transfers it to the service department
from the desk; the Redirect goes through the real AMI client to the simulator, op3's desk pops
the same card, the call stays one Call row (never abandoned) and both notes land on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from live_stack import LiveStack
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig
from crm_core.db import make_engine, make_sessionmaker
from crm_core.models import Call, Interaction, Operator
from crm_core.seed import KNOWN_NAME, KNOWN_NUMBER
from routing.models import CallTransfer

OP1 = "Local/101@agents/n"
OP3 = "Local/103@agents/n"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """sales rings only op1, support (the service department's queue) only op3; both wait for the test."""
    config = PbxConfig(
        queues=(QueueConfig("sales", (MemberConfig(OP1, "op1"),)),
                QueueConfig("support", (MemberConfig(OP3, "op3"),))),
        agents={OP1: AgentBehaviour(answer_after=None), OP3: AgentBehaviour(answer_after=None)},
    )
    stack = LiveStack(f"sqlite:///{tmp_path_factory.mktemp('transfer') / 'callcard.db'}", config)
    stack.start()
    yield stack
    stack.stop()


def open_desk(browser: Browser, live: LiveStack, login: str) -> Page:
    page = browser.new_context(base_url=live.url).new_page()
    page.goto("/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", live.passwords[login])
    page.click("button[type=submit]")
    page.wait_for_url("**/desk")
    page.wait_for_selector("body[data-socket=ready]")
    return page


def test_operator_transfers_a_call_and_the_other_desk_pops_the_same_card(
    browser: Browser, live: LiveStack
) -> None:
    op1 = open_desk(browser, live, "op1")
    op3 = open_desk(browser, live, "op3")
    linkedid = live.run(live.sim.place_call(KNOWN_NUMBER, "Ivan Petrov", queue="sales", patience=300))
    expect(op1.locator("#client-name")).to_have_text(KNOWN_NAME, timeout=10_000)
    live.run(live.sim.answer(OP1))
    expect(op1.locator("#call-state")).to_have_text("Разговор")
    expect(op1.locator("#transfer-form")).to_be_visible()

    op1.keyboard.press("t")
    expect(op1.locator("#transfer-department")).to_be_focused()
    op1.select_option("#transfer-department", "service")
    op1.click("#transfer-go")
    expect(op1.locator("#toast")).to_have_text("Звонок переведён: Сервис.")
    expect(op1.locator("#call-state")).to_have_text("Переведён")

    expect(op3.locator("#client-name")).to_have_text(KNOWN_NAME, timeout=10_000)
    expect(op3.locator("#call-state")).to_have_text("Звонит")
    live.run(live.sim.answer(OP3))
    expect(op3.locator("#call-state")).to_have_text("Разговор")

    op1.fill("#note", "Перевёл в сервис: вопрос по ремонту")
    op1.click("#save-note")
    expect(op1.locator("#toast")).to_have_text("Заметка сохранена.")
    live.run(live.sim.hangup_agent(OP3))
    expect(op3.locator("#call-state")).to_have_text("Завершён")
    op3.fill("#note", "Записал на ремонт")
    op3.click("#save-note")
    expect(op3.locator("#toast")).to_have_text("Заметка сохранена.")

    engine = make_engine(live.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            calls = session.scalars(select(Call).where(Call.caller_e164 == KNOWN_NUMBER,
                                                       Call.linkedid.not_like("seed-%"))).all()
            assert [c.linkedid for c in calls] == [linkedid]
            call = calls[0]
            assert (call.outcome, call.status, call.queue, call.operator.login) == (
                "answered", "ended", "support", "op3")
            notes = session.scalars(select(Interaction.note).where(Interaction.call_id == call.id)
                                    .order_by(Interaction.id)).all()
            assert notes == ["Перевёл в сервис: вопрос по ремонту", "Записал на ремонт"]
            transfer = session.scalar(select(CallTransfer).where(CallTransfer.linkedid == linkedid))
            op1_id = session.scalar(select(Operator.id).where(Operator.login == "op1"))
            assert (transfer.from_operator_id, transfer.queue) == (op1_id, "support")
    finally:
        engine.dispose()
