"""End to end in Chromium: an operator in a campaign marks themselves ready, the dialler calls a
debtor through the simulator, the answered call pops with the debt on the card, the operator
records a promise to pay, and the debt is not dialled again before the promised date."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from live_stack import LiveStack, manual_pbx
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from crm_core.db import make_engine, make_sessionmaker
from crm_core.models import Client, ClientPhone, Debt, Operator, Phone
from routing import compliance
from routing.campaigns.models import Campaign, CampaignDebt, CampaignOperator, DialAttempt
from routing.campaigns.service import debt_facts

OP1 = "Local/101@agents/n"
DEBTOR_PHONE = "+73432100001"  # the simulated debtor answers (last digit 1)
CONTRACT = "КД-2026-0042"


def daytime_zone() -> str:
    """A zone where it is early afternoon now, so the law's calling hours hold whenever CI runs."""
    now = datetime.now(UTC)
    return next(f"Etc/GMT{-h:+d}" for h in range(-12, 13) if 11 <= now.astimezone(ZoneInfo(f"Etc/GMT{-h:+d}")).hour <= 16)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    stack = LiveStack(f"sqlite:///{tmp_path_factory.mktemp('campaign') / 'callcard.db'}",
                      manual_pbx({"collections": (OP1,)}))
    engine = make_engine(stack.database_url)
    with make_sessionmaker(engine).begin() as s:
        debtor = Client(name="Пётр <b>Должников</b>", time_zone=daytime_zone(), debt_open=True)
        debtor.phone_links.append(ClientPhone(phone=Phone(e164=DEBTOR_PHONE, kind="mobile"), label="mobile"))
        s.add(Debt(client=debtor, creditor="ООО «Банк»", contract=CONTRACT, principal=Decimal("40000"),
                   total_due=Decimal("52340.15"), days_past_due=4321))
        campaign = Campaign(name="Просрочка 90+", status="running", mode="progressive", caller_id="+74950000000",
                            filters={"min_days": 4000}, script="Представьтесь.\nУточните дату оплаты.")
        s.add(campaign)
        s.flush()
        op1 = s.scalar(select(Operator).where(Operator.login == "op1"))
        s.add(CampaignOperator(campaign_id=campaign.id, operator_id=op1.id, ready=False))
    engine.dispose()
    stack.start()
    yield stack
    stack.stop()


def _db(live: LiveStack):  # type: ignore[no-untyped-def]
    return make_sessionmaker(make_engine(live.database_url))


def test_operator_records_a_promise_to_pay_and_the_debt_waits_for_the_date(browser: Browser,
                                                                           live: LiveStack) -> None:
    sessions = _db(live)
    with sessions() as s:
        campaign_id = s.scalar(select(Campaign.id))
        debt = s.scalar(select(Debt).where(Debt.contract == CONTRACT))
        debt_id, zone = debt.id, debt.client.time_zone
    op1 = live.log_in(browser, "op1")

    ready = op1.locator(f"#campaign-ready-{campaign_id}")
    expect(ready).to_be_visible(timeout=10_000)
    ready.check()  # nothing was dialled before the operator was ready

    expect(op1.locator("#campaign-call")).to_be_visible(timeout=15_000)
    expect(op1.locator("#call-state")).to_have_text("Звонит")
    expect(op1.locator("#campaign-script")).to_contain_text("Уточните дату оплаты")
    current = op1.locator("#card-debts li.debt-current")
    expect(current).to_contain_text(CONTRACT)
    expect(current).to_contain_text("52")
    expect(op1.locator("#client-name")).to_have_text("Пётр <b>Должников</b>")  # shown as text, not markup

    live.run(live.sim.answer(OP1))
    expect(op1.locator("#call-state")).to_have_text("Разговор")

    promised = datetime.now(ZoneInfo(zone)).date() + timedelta(days=3)
    op1.locator("#disp-code-promise_to_pay").check()
    op1.fill("#disp-amount", "15000")
    op1.fill("#disp-date", promised.isoformat())
    op1.fill("#disp-note", "Обещал после зарплаты")
    op1.click("#disp-save")
    expect(op1.locator("#disposition-form[data-saved]")).to_have_count(1, timeout=5_000)
    live.run(live.sim.hangup_agent(OP1))
    expect(op1.locator("#call-state")).to_have_text("Завершён")

    with sessions() as s:
        debt = s.get(Debt, debt_id)
        assert (debt.status, debt.promised_amount, debt.promised_date) == ("promised", Decimal("15000.00"), promised)
        (attempt,) = s.scalars(select(DialAttempt).where(DialAttempt.debt_id == debt_id))
        assert (attempt.disposition, attempt.phone_e164) == ("promise_to_pay", DEBTOR_PHONE)
        row = s.get(CampaignDebt, (campaign_id, debt_id))
        assert row.next_at is not None
        day_after = datetime.combine(promised + timedelta(days=1), datetime.min.time(), ZoneInfo(zone))
        assert row.next_at.replace(tzinfo=UTC) >= day_after
        facts, ledger = debt_facts(s, debt)
        verdict = compliance.may_call(ledger, datetime.now(UTC), facts,
                                      compliance.load_rules(compliance.RULE_SETS["ru_230fz"]), DEBTOR_PHONE)
        assert verdict.code == "promise_to_pay" and not verdict.allowed

    time.sleep(3)  # op1 is ready and free: several dialler ticks pass
    with sessions() as s:
        assert len(s.scalars(select(DialAttempt).where(DialAttempt.debt_id == debt_id)).all()) == 1
