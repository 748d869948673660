"""decide(): every rule, their order and the explanation, one table row per case."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from ami_bridge.frames import AmiMessage
from routing.http import moved
from routing.load import queue_loads
from routing.rules import (
    BLOCKED,
    DEBTOR,
    IVR,
    MANAGER,
    OVERFLOW,
    RULE_CODES,
    VIP,
    CallContext,
    Caller,
    Department,
    Manager,
    QueueLoad,
    Route,
    RuleSet,
    decide,
)

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
DEPTS = {
    "sales": Department("sales", "sales"),
    "service": Department("service", "support"),
    "collections": Department("collections", "collections"),
    "overflow": Department("overflow", "overflow"),
}
RULES = RuleSet(
    departments=DEPTS,
    default_department="sales",
    did_map={"3000": "sales", "3001": "service"},
    ivr_map={"1": "sales", "2": "service"},
    blocked=frozenset({"+79990000000"}),
    manager_ring_seconds=20,
    vip_priority=10,
    overflow_wait_seconds=60,
)
BUSY_FREE = {"sales": QueueLoad(2, 0, 0), "support": QueueLoad(2, 0, 0), "collections": QueueLoad(1, 0, 0)}
ANNA = Manager(7, "Анна", "Local/101@agents", "sales")
UNKNOWN = Caller("+73517654321")
KNOWN = Caller("+73511234567", client_id=1, client_name="Иван")
VIP_CLIENT = replace(KNOWN, segment="vip")
DEBTOR_CLIENT = replace(KNOWN, debt_open=True)
MANAGED = replace(KNOWN, manager=ANNA)
VIP_DEBTOR_MANAGED = replace(KNOWN, segment="vip", debt_open=True, manager=ANNA)


def ctx(caller: Caller, did: str = "3000", ivr: str = "", *, rules: RuleSet = RULES,
        load: dict[str, QueueLoad] | None = None) -> CallContext:
    return CallContext(caller, did, ivr, NOW, rules, BUSY_FREE if load is None else load)


CASES = [
    pytest.param(
        ctx(UNKNOWN), Route("sales", "sales", explanation="DID 3000 → sales"), id="did-map"),
    pytest.param(
        ctx(UNKNOWN, did="3001"), Route("service", "support", explanation="DID 3001 → service"), id="did-service"),
    pytest.param(
        ctx(UNKNOWN, did="9999"), Route("sales", "sales", explanation="unknown DID '9999' → default sales"),
        id="unknown-did-default"),
    pytest.param(
        ctx(UNKNOWN, did=""), Route("sales", "sales", explanation="no DID → default sales"), id="no-did"),
    pytest.param(
        ctx(replace(UNKNOWN, e164="+79990000000")),
        Route(None, None, rejected=True, explanation="DID 3000 → sales; +79990000000 is blocked: rejected"),
        id="blocked"),
    pytest.param(
        ctx(replace(VIP_DEBTOR_MANAGED, e164="+79990000000")),
        Route(None, None, rejected=True, explanation="DID 3000 → sales; +79990000000 is blocked: rejected"),
        id="blocked-stops-every-later-rule"),
    pytest.param(
        ctx(DEBTOR_CLIENT, did="3001"),
        Route("collections", "collections", explanation="DID 3001 → service; open debt → collections"),
        id="debtor"),
    pytest.param(
        ctx(MANAGED, did="3001"),
        Route("sales", "sales", first_try_interface="Local/101@agents", ring_seconds=20,
              explanation="DID 3001 → service; personal manager Анна first for 20 s, then sales"),
        id="manager-first-then-department"),
    pytest.param(
        ctx(replace(KNOWN, manager=replace(ANNA, interface=None))),
        Route("sales", "sales", explanation="DID 3000 → sales; personal manager Анна cannot take calls: skipped"),
        id="manager-without-phone-skipped"),
    pytest.param(
        ctx(VIP_DEBTOR_MANAGED),
        Route("collections", "collections", priority=10,
              explanation="DID 3000 → sales; open debt → collections; segment vip → priority 10"),
        id="debtor-beats-manager-vip-still-applies"),
    pytest.param(
        ctx(VIP_CLIENT), Route("sales", "sales", priority=10,
                               explanation="DID 3000 → sales; segment vip → priority 10"), id="vip"),
    pytest.param(
        ctx(replace(UNKNOWN, segment="vip")), Route("sales", "sales", explanation="DID 3000 → sales"),
        id="vip-needs-a-known-client"),
    pytest.param(
        ctx(UNKNOWN, ivr="2"), Route("service", "support", explanation="DID 3000 → sales; IVR choice 2 → service"),
        id="ivr-choice"),
    pytest.param(
        ctx(UNKNOWN, ivr="7"),
        Route("sales", "sales", explanation="DID 3000 → sales; IVR choice '7' is not mapped: ignored"),
        id="ivr-unmapped"),
    pytest.param(
        ctx(MANAGED, ivr="2"),
        Route("sales", "sales", first_try_interface="Local/101@agents", ring_seconds=20,
              explanation="DID 3000 → sales; personal manager Анна first for 20 s, then sales"),
        id="manager-beats-ivr"),
    pytest.param(
        ctx(UNKNOWN, load={**BUSY_FREE, "sales": QueueLoad(0, 0, 0)}),
        Route("sales", "sales", callback=True,
              explanation="DID 3000 → sales; no agent logged in to sales → offer a callback"),
        id="overflow-no-agent-callback"),
    pytest.param(
        ctx(UNKNOWN, load={**BUSY_FREE, "sales": QueueLoad(3, 5, 61)}),
        Route("sales", "sales", callback=True,
              explanation="DID 3000 → sales; sales longest wait 61 s > 60 s → offer a callback"),
        id="overflow-long-wait-callback"),
    pytest.param(
        ctx(UNKNOWN, load={**BUSY_FREE, "sales": QueueLoad(3, 5, 60)}),
        Route("sales", "sales", explanation="DID 3000 → sales"), id="wait-at-threshold-no-overflow"),
    pytest.param(
        ctx(MANAGED, rules=replace(RULES, overflow_department="overflow"),
            load={**BUSY_FREE, "sales": QueueLoad(0, 0, 0), "overflow": QueueLoad(4, 0, 0)}),
        Route("overflow", "overflow",
              explanation="DID 3000 → sales; personal manager Анна first for 20 s, then sales; "
                          "no agent logged in to sales → overflow to overflow"),
        id="overflow-queue-drops-manager-first-try"),
    pytest.param(
        ctx(UNKNOWN, rules=replace(RULES, overflow_department="overflow"),
            load={**BUSY_FREE, "sales": QueueLoad(0, 0, 0), "overflow": QueueLoad(0, 0, 0)}),
        Route("sales", "sales", callback=True,
              explanation="DID 3000 → sales; no agent logged in to sales → offer a callback"),
        id="empty-overflow-queue-means-callback"),
]


@pytest.mark.parametrize(("context", "expected"), CASES)
def test_decide(context: CallContext, expected: Route) -> None:
    assert decide(context) == expected


ORDER_CASES = [
    pytest.param(
        (BLOCKED, MANAGER, DEBTOR, VIP, IVR, OVERFLOW), VIP_DEBTOR_MANAGED,
        Route("sales", "sales", priority=10, first_try_interface="Local/101@agents", ring_seconds=20,
              explanation="DID 3000 → sales; personal manager Анна first for 20 s, then sales; "
                          "segment vip → priority 10"),
        id="manager-moved-before-debtor-wins"),
    pytest.param(
        (BLOCKED, MANAGER, VIP, IVR, OVERFLOW), DEBTOR_CLIENT,
        Route("sales", "sales", explanation="DID 3000 → sales"), id="debtor-disabled"),
    pytest.param(
        (DEBTOR, MANAGER, VIP, IVR, OVERFLOW), replace(DEBTOR_CLIENT, e164="+79990000000"),
        Route("collections", "collections", explanation="DID 3000 → sales; open debt → collections"),
        id="blocking-disabled"),
    pytest.param(
        (BLOCKED, DEBTOR, MANAGER, IVR, OVERFLOW), VIP_CLIENT,
        Route("sales", "sales", explanation="DID 3000 → sales"), id="vip-disabled"),
]


@pytest.mark.parametrize(("order", "caller", "expected"), ORDER_CASES)
def test_rule_order_and_flags_are_data(order: tuple[str, ...], caller: Caller, expected: Route) -> None:
    assert decide(ctx(caller, rules=replace(RULES, order=order))) == expected


def test_overflow_before_ivr_judges_the_did_queue() -> None:
    """Order matters: overflow placed before IVR sees the DID's queue, not the IVR's."""
    load = {**BUSY_FREE, "sales": QueueLoad(0, 0, 0)}
    early = replace(RULES, order=(BLOCKED, DEBTOR, MANAGER, VIP, OVERFLOW, IVR))
    route = decide(ctx(UNKNOWN, ivr="2", rules=early, load=load))
    assert (route.queue, route.callback) == ("support", True)
    assert route.explanation == (
        "DID 3000 → sales; no agent logged in to sales → offer a callback; IVR choice 2 → service"
    )
    late = decide(ctx(UNKNOWN, ivr="2", load=load))
    assert (late.queue, late.callback) == ("support", False)


def test_a_mapping_to_a_missing_department_is_ignored_and_said() -> None:
    rules = replace(RULES, ivr_map={"3": "legal"})
    assert decide(ctx(UNKNOWN, ivr="3", rules=rules)) == Route(
        "sales", "sales", explanation="DID 3000 → sales; IVR choice 3 → legal, but department 'legal' "
                                      "does not exist: ignored")


QUEUE_LIMIT = replace(RULES, overflow_callers_waiting=3, overflow_department="overflow")
WAITING_CASES = [
    pytest.param({**BUSY_FREE, "sales": QueueLoad(2, 2, 10)}, QUEUE_LIMIT,
                 Route("sales", "sales", explanation="DID 3000 → sales"), id="below-limit-stays"),
    pytest.param({**BUSY_FREE, "sales": QueueLoad(2, 3, 10), "overflow": QueueLoad(1, 0, 0)}, QUEUE_LIMIT,
                 Route("overflow", "overflow",
                       explanation="DID 3000 → sales; 3 callers wait in sales (limit 3) → overflow to overflow"),
                 id="at-limit-overflows"),
    pytest.param({**BUSY_FREE, "sales": QueueLoad(2, 7, 10), "overflow": QueueLoad(0, 0, 0)}, QUEUE_LIMIT,
                 Route("sales", "sales", callback=True,
                       explanation="DID 3000 → sales; 7 callers wait in sales (limit 3) → offer a callback"),
                 id="over-limit-empty-overflow-callback"),
    pytest.param({**BUSY_FREE, "sales": QueueLoad(2, 50, 10)}, replace(QUEUE_LIMIT, overflow_callers_waiting=0),
                 Route("sales", "sales", explanation="DID 3000 → sales"), id="limit-zero-is-off"),
    pytest.param({**BUSY_FREE, "sales": QueueLoad(2, 5, 10)}, replace(QUEUE_LIMIT, overflow_department=None),
                 Route("sales", "sales", callback=True,
                       explanation="DID 3000 → sales; 5 callers wait in sales (limit 3) → offer a callback"),
                 id="no-overflow-department-callback"),
]


@pytest.mark.parametrize(("load", "rules", "expected"), WAITING_CASES)
def test_overflow_on_callers_waiting(load: dict[str, QueueLoad], rules: RuleSet, expected: Route) -> None:
    assert decide(ctx(UNKNOWN, rules=rules, load=load)) == expected


def test_the_ivr_hands_over_a_department_code_not_only_a_digit() -> None:
    """The FastAGI menu resolves digits itself and passes the department code it reached."""
    assert decide(ctx(UNKNOWN, ivr="collections")) == Route(
        "collections", "collections", explanation="DID 3000 → sales; IVR choice collections → collections")


def test_queue_summary_items_become_the_live_queue_load() -> None:
    items = [AmiMessage.of(Event="QueueSummary", Queue="sales", LoggedIn="3", Available="1", Callers="2",
                           HoldTime="10", TalkTime="60", LongestHoldTime="45"),
             AmiMessage.of(Event="QueueSummary", Queue="support", LoggedIn="0", Callers="", LongestHoldTime="0")]
    assert queue_loads(items) == {"sales": QueueLoad(3, 2, 45), "support": QueueLoad(0, 0, 0)}


@pytest.mark.parametrize(("move", "expected"), [
    ("vip:up", ["blocked", "debtor", "vip", "manager", "ivr", "overflow"]),
    ("vip:down", ["blocked", "debtor", "manager", "ivr", "vip", "overflow"]),
    ("blocked:up", list(RULE_CODES)),  # already first
    ("overflow:down", list(RULE_CODES)),  # already last
    ("nosuch:up", list(RULE_CODES)),
    ("vip:sideways", list(RULE_CODES)),
    ("", list(RULE_CODES)),  # the save button: no move
])
def test_an_arrow_moves_one_rule_one_place(move: str, expected: list[str]) -> None:
    assert moved(list(RULE_CODES), move) == expected
