"""Transfer end to end: op1 answers a simulated call and transfers it to the service department
from the desk; the Redirect goes through the real AMI client to the simulator, op3's desk pops
the same card, the call stays one Call row (never abandoned) and both notes land on it.
Then the same to a colleague in person: Setvar + Redirect to `[transfer] colleague`, which
Dials op2's phone (no queue), and op2's desk pops the card. And consulting op2 first (AMI Atxfer):
op2's desk pops during the consultation and owns the call once op1 hangs up."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from live_stack import LiveStack, manual_pbx
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import joinedload

from crm_core.db import make_engine, make_sessionmaker
from crm_core.models import Call, Interaction, Operator
from crm_core.seed import KNOWN_NAME, KNOWN_NUMBER
from routing.models import CallTransfer

OP1 = "Local/101@agents/n"
OP2 = "Local/102@agents/n"  # in no queue: reachable only by a transfer in person
OP3 = "Local/103@agents/n"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """sales rings only op1, support (the service department's queue) only op3; both wait for the test."""
    config = manual_pbx({"sales": (OP1,), "support": (OP3,)}, also=(OP2,))
    stack = LiveStack(f"sqlite:///{tmp_path_factory.mktemp('transfer') / 'callcard.db'}", config)
    stack.start()
    yield stack
    stack.stop()


def ended_call(engine: Engine, linkedid: str) -> Call:
    """The Call row once the call logger has stored its end (it may trail the desk's push a little)."""
    deadline = time.monotonic() + 10
    while True:
        with make_sessionmaker(engine)() as session:
            call = session.scalar(select(Call).options(joinedload(Call.operator)).where(Call.linkedid == linkedid))
            if (call is not None and call.status == "ended") or time.monotonic() > deadline:
                return call
        time.sleep(0.05)


def test_operator_transfers_a_call_and_the_other_desk_pops_the_same_card(
    browser: Browser, live: LiveStack
) -> None:
    op1 = live.log_in(browser, "op1")
    op3 = live.log_in(browser, "op3")
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


def test_operator_transfers_a_call_to_a_colleague_whose_desk_pops_the_same_card(
    browser: Browser, live: LiveStack
) -> None:
    op1 = live.log_in(browser, "op1")
    op2 = live.log_in(browser, "op2")
    linkedid = live.run(live.sim.place_call(KNOWN_NUMBER, "Ivan Petrov", queue="sales", patience=300))
    expect(op1.locator("#client-name")).to_have_text(KNOWN_NAME, timeout=10_000)
    live.run(live.sim.answer(OP1))
    expect(op1.locator("#call-state")).to_have_text("Разговор")

    engine = make_engine(live.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            op2_id = session.scalar(select(Operator.id).where(Operator.login == "op2"))
        op1.keyboard.press("t")
        op1.select_option("#transfer-department", f"operator-{op2_id}")
        op1.click("#transfer-go")
        expect(op1.locator("#toast")).to_have_text("Звонок переведён: Дмитрий Козлов.")
        expect(op1.locator("#call-state")).to_have_text("Переведён")

        expect(op2.locator("#client-name")).to_have_text(KNOWN_NAME, timeout=10_000)
        expect(op2.locator("#call-state")).to_have_text("Звонит")
        live.run(live.sim.answer(OP2))
        expect(op2.locator("#call-state")).to_have_text("Разговор")
        live.run(live.sim.hangup_agent(OP2))
        expect(op2.locator("#call-state")).to_have_text("Завершён")

        call = ended_call(engine, linkedid)
        assert (call.outcome, call.status, call.operator.login) == ("answered", "ended", "op2")
        with make_sessionmaker(engine)() as session:
            assert session.scalar(select(func.count()).select_from(Call)
                                  .where(Call.linkedid == linkedid)) == 1
            transfer = session.scalar(select(CallTransfer).where(CallTransfer.linkedid == linkedid))
            assert (transfer.to_operator_id, transfer.to_department_id, transfer.queue) == (op2_id, None, "")
    finally:
        engine.dispose()


def test_operator_consults_a_colleague_first_then_hangs_up_to_hand_the_call_over(
    browser: Browser, live: LiveStack
) -> None:
    """Attended transfer: AMI Atxfer from op1's leg; op2's desk pops while they talk to op1 (the
    caller on hold), keeps the note op2 started when op1 hangs up, and op2 ends the call."""
    for phone in (OP1, OP2):
        live.sim.set_agent(phone, None, talk=120)
    op1 = live.log_in(browser, "op1")
    op2 = live.log_in(browser, "op2")
    linkedid = live.run(live.sim.place_call(KNOWN_NUMBER, "Ivan Petrov", queue="sales", patience=300))
    expect(op1.locator("#client-name")).to_have_text(KNOWN_NAME, timeout=10_000)
    live.run(live.sim.answer(OP1))
    expect(op1.locator("#call-state")).to_have_text("Разговор")

    engine = make_engine(live.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            op2_id = session.scalar(select(Operator.id).where(Operator.login == "op2"))
        expect(op1.locator("#transfer-consult-label")).to_be_hidden()  # a department: nobody to consult
        op1.select_option("#transfer-department", f"operator-{op2_id}")
        op1.check("#transfer-consult")
        op1.click("#transfer-go")
        expect(op1.locator("#toast")).to_have_text(
            "Звоним: Дмитрий Козлов; клиент на удержании. Положите трубку, чтобы передать звонок.")
        expect(op1.locator("#call-state")).to_have_text("Разговор")

        expect(op2.locator("#client-name")).to_have_text(KNOWN_NAME, timeout=10_000)
        live.run(live.sim.answer(OP2))  # op1 and op2 talk; the caller hears music
        op2.fill("#note", "Клиент про ремонт, Ольга ввела в курс")
        live.run(live.sim.hangup_agent(OP1))
        expect(op1.locator("#call-state")).to_have_text("Переведён")
        expect(op2.locator("#call-state")).to_have_text("Разговор")
        expect(op2.locator("#note")).to_have_value("Клиент про ремонт, Ольга ввела в курс")
        live.run(live.sim.hangup_agent(OP2))
        expect(op2.locator("#call-state")).to_have_text("Завершён")

        call = ended_call(engine, linkedid)
        assert (call.outcome, call.status, call.operator.login) == ("answered", "ended", "op2")
        with make_sessionmaker(engine)() as session:
            assert session.scalar(select(func.count()).select_from(Call).where(Call.linkedid == linkedid)) == 1
    finally:
        engine.dispose()
