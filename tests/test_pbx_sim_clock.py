"""The PBX simulator's clock: every timer fires, at its own simulated time, and timers due at the
same instant fire in a fixed order: inbound calls (oldest first; within a call give-up, retry, then
each leg's answer, ring timeout or hangup), then outbound calls, spies, consultations."""

from __future__ import annotations

import gc
import random
import weakref

from callcard.pbx_sim.actions import run_action
from callcard.pbx_sim.agi import AgiLeg
from callcard.pbx_sim.messages import Message
from callcard.pbx_sim.model import AgentBehaviour, CustomerModel, MemberConfig, Pbx, PbxConfig, QueueConfig
from callcard.pbx_sim.wire import Request

T0 = 1000.0
QUEUE_OPS = ("Local/201@agents/n", "Local/202@agents/n", "Local/203@agents/n", "Local/204@agents/n")
CLICK_OP, SUPERVISOR, COLLEAGUE = "Local/301@agents", "Local/401@agents", "Local/501@agents"
MILESTONES = {"AgentConnect", "AgentComplete", "QueueCallerAbandon", "OriginateResponse", "ChanSpyStart",
              "ChanSpyStop", "AttendedTransfer", "DialEnd"}


def _tie_pbx() -> Pbx:
    """Every phone answers after 1 s; the operators talk 2 s, the supervisor listens 1 s, the
    colleague of the transfer talks 5 s."""
    members = tuple(MemberConfig(x, x) for x in QUEUE_OPS)
    agents = {x: AgentBehaviour(1.0, 2.0) for x in (*QUEUE_OPS, f"{CLICK_OP}/n")}
    agents |= {f"{SUPERVISOR}/n": AgentBehaviour(1.0, 1.0), f"{COLLEAGUE}/n": AgentBehaviour(1.0, 5.0)}
    return Pbx(PbxConfig(queues=(QueueConfig("q", members, timeout=10.0),), agents=agents), T0)


def _place_tied_calls(pbx: Pbx) -> tuple[dict[str, str], list[Message]]:
    """At T0, in this order: a click-to-call, a supervisor's ChanSpy on operator 201, callers c1..c4,
    each rung to an operator; c4 gives up after 1 s, as its operator answers."""
    click = [("Action", "Originate"), ("Channel", CLICK_OP), ("Context", "outbound"), ("Exten", "+79161234567"),
             ("ChannelId", "out"), ("Async", "true"), ("CallerID", "+79161234567"), ("Variable", "OUT_TALK=9")]
    spy = [("Action", "Originate"), ("Channel", SUPERVISOR), ("Application", "ChanSpy"),
           ("Data", "Local/201@agents-,qE"), ("ChannelId", "spy"), ("Async", "true")]
    events: list[Message] = []
    for action in (click, spy):
        outcome = run_action(pbx, T0, Request(action), "orig")
        assert outcome is not None
        events += outcome.events
    labels = {"out": "out", "spy": "spy"}
    for n, patience in ((1, 60.0), (2, 60.0), (3, 60.0), (4, 1.0)):
        call, placed = pbx.originate_inbound(T0, f"+7351000000{n}", f"Caller {n}", patience, [("QUEUE", "q")])
        labels[call.linkedid] = f"c{n}"
        events += placed
    return labels, events


def _milestones(timeline: list[tuple[float, Message]], labels: dict[str, str]) -> list[tuple[float, str, str]]:
    """(seconds after T0, event, whose call) of the events that show which timer fired."""
    out = []
    for at, msg in timeline:
        fields = dict(msg)
        if fields.get("Event") in MILESTONES:
            linkedid = next((v for k, v in msg if k.endswith("Linkedid")), fields.get("Uniqueid", ""))
            out.append((at - T0, fields["Event"], labels[linkedid]))
    return out


def test_timers_due_together_fire_in_the_order_of_the_full_scan() -> None:
    pbx = _tie_pbx()
    labels, _ = _place_tied_calls(pbx)
    timeline: list[tuple[float, Message]] = []
    while (deadline := pbx.next_deadline()) is not None:
        timeline += [(deadline, msg) for msg in pbx.advance(deadline)]
        if deadline == T0 + 1.0:  # c1's operator consults a colleague, who answers as the spy stops
            c1 = next(call for call in pbx.calls.values() if labels[call.linkedid] == "c1")
            assert c1.talking is not None
            timeline += [(deadline, msg) for msg in pbx.atxfer(deadline, c1.talking.one.name, "501", "agents")]
    assert _milestones(timeline, labels) == [
        # T0+1: inbound calls first, oldest first (c4's give-up before its operator's answer), then
        # the outbound call, then the spy, which finds 201 answered and listens
        (1.0, "DialEnd", "c1"), (1.0, "AgentConnect", "c1"),
        (1.0, "DialEnd", "c2"), (1.0, "AgentConnect", "c2"),
        (1.0, "DialEnd", "c3"), (1.0, "AgentConnect", "c3"),
        (1.0, "DialEnd", "c4"), (1.0, "DialEnd", "c4"), (1.0, "QueueCallerAbandon", "c4"),
        (1.0, "DialEnd", "out"), (1.0, "OriginateResponse", "out"), (1.0, "DialEnd", "out"),
        (1.0, "DialEnd", "spy"), (1.0, "OriginateResponse", "spy"), (1.0, "ChanSpyStart", "spy"),
        # T0+2: the spy before the consultation
        (2.0, "ChanSpyStop", "spy"), (2.0, "DialEnd", "c1"),
        # T0+3: c1's operator hangs up with the colleague on the line: the transfer completes
        (3.0, "AgentComplete", "c1"), (3.0, "AttendedTransfer", "c1"),
        (3.0, "AgentComplete", "c2"), (3.0, "AgentComplete", "c3"),
    ]
    assert pbx.snapshot().calls == [] and pbx.snapshot().channels == []


def test_one_long_advance_plays_every_timer_at_its_own_time() -> None:
    stepped, jumped = _tie_pbx(), _tie_pbx()
    _, first = _place_tied_calls(stepped)
    _, second = _place_tied_calls(jumped)
    assert first == second
    one_by_one: list[Message] = []
    while (deadline := stepped.next_deadline()) is not None:
        one_by_one += stepped.advance(deadline)
    assert jumped.advance(T0 + 60.0) == one_by_one
    assert jumped.next_deadline() is None


# --- the heap against a full scan, in a random mix of everything the PBX does ------------------

def _brute_force_deadline(pbx: Pbx) -> float | None:
    """The earliest timer by asking every live object, as the simulator did before it kept a heap."""
    times = [t for c in pbx.calls.values() for t, _ in pbx._call_timers(c)]
    times += [t for o in pbx.outbound.calls.values() for t, _ in pbx.outbound.timers(o)]
    times += [t for t, _ in pbx.spies.due()]
    times += [t for c in pbx.consults.by_call.values() for t, _ in pbx.consults.timers(c)]
    return min(times, default=None)


def _brute_force_busy(pbx: Pbx) -> set[str]:
    legs = {r.member.state_interface for c in pbx.calls.values() for r in c.rings}
    return legs | pbx.outbound.busy() | pbx.spies.busy() | pbx.consults.busy()


def _mixed_config() -> PbxConfig:
    ops = [f"Local/{e}@agents/n" for e in range(101, 109)]
    agents = {x: AgentBehaviour(a, t) for x, a, t in zip(ops, (0.0, 1.0, 2.0, None, 3.0, 1.0, 0.0, 4.0),
                                                         (3.0, 8.0, 20.0, 0.0, 5.0, 30.0, 6.0, 2.0), strict=True)}
    agents |= {"Local/120@agents/n": AgentBehaviour(1.0, 25.0), "Local/130@agents/n": AgentBehaviour(2.0, 10.0)}
    member = {x: MemberConfig(x, x) for x in ops}
    return PbxConfig(
        queues=(QueueConfig("sales", tuple(member[x] for x in ops[:4]), timeout=6.0),
                QueueConfig("support", tuple(member[x] for x in (ops[4], ops[5], ops[3])), strategy="ringall",
                            timeout=5.0, retry=1.0),
                QueueConfig("collections", (member[ops[6]], member[ops[7]], MemberConfig(ops[1], ops[1], penalty=1)),
                            timeout=4.0)),
        agents=agents, seed=3,
        customers=CustomerModel(answer_prob=0.6, talk_mean=12.0, talk_sd=4.0, ring_min=1.0, ring_max=6.0, seed=2))


def _random_action(pbx: Pbx, rng: random.Random, now: float, n: int) -> None:
    """One thing a client of the PBX does: place calls, dial out, spy, transfer, pause, hang up."""
    ops = [f"Local/{e}@agents" for e in range(101, 109)]
    callers = sorted(c.inner.name for c in pbx.calls.values() if pbx.consults.of(c) is None)
    talking = sorted(c.talking.one.name for c in pbx.calls.values() if c.talking is not None and c.talking.queue)
    held = sorted(o.first.one.uniqueid for o in pbx.outbound.calls.values() if o.hold_until is not None)
    in_ivr = sorted(c.linkedid for c in pbx.calls.values() if c.agi is not None and c.inner.application == "AGI")
    channels = sorted(ch.name for ch in pbx.channels())
    action: list[tuple[str, str]] = []
    kind = rng.randrange(12)
    if kind <= 2:
        queue = rng.choice(["sales", "support", "collections"])
        prio = f",QUEUE_PRIO={rng.randrange(3)}" if kind == 2 else ""
        action = [("Action", "Originate"), ("Channel", "Local/s@inbound"), ("Application", "Wait"),
                  ("Data", rng.choice(["4", "12", "60"])), ("Async", "true"), ("CallerID", f"+7351{n:07d}"),
                  ("Variable", f"QUEUE={queue}{prio}")]
    elif kind == 3:
        action = [("Action", "Originate"), ("Channel", rng.choice(ops)), ("Context", "outbound"),
                  ("Exten", f"+7916{n:07d}"[:-1] + rng.choice("1234")), ("ChannelId", f"c2c-{n}"),
                  ("Async", "true"), ("Timeout", "15000"), ("Variable", f"OUT_TALK={rng.choice([2, 7])}")]
    elif kind == 4:
        action = [("Action", "Originate"), ("Channel", f"Local/+7916{n:07d}@outbound"),
                  ("Context", rng.choice(["dialler", "connect-agent"])), ("Exten", rng.choice(["101", "107"])),
                  ("ChannelId", f"dial-{n}"), ("Async", "true"), ("Timeout", "20000")]
    elif kind == 5 and held:
        target = rng.choice(held)
        exten = ("connect-agent", rng.choice(["102", "105"])) if rng.random() < 0.7 else ("dialler-abandon", "s")
        action = [("Action", "Redirect"), ("Channel", target), ("Context", exten[0]), ("Exten", exten[1])]
    elif kind == 6:
        action = [("Action", "Originate"), ("Channel", "Local/120@agents"), ("Application", "ChanSpy"),
                  ("Data", f"{rng.choice(ops)}-,qE"), ("Async", "true"), ("Timeout", "8000")]
    elif kind == 7 and talking:
        action = [("Action", "Atxfer"), ("Channel", rng.choice(talking)), ("Exten", rng.choice(["130", "103"])),
                  ("Context", "agents")]
    elif kind == 8:
        action = [("Action", "QueuePause"), ("Interface", f"{rng.choice(ops)}/n"),
                  ("Paused", rng.choice(["true", "false"]))]
    elif kind == 9 and callers:
        action = [("Action", "Redirect"), ("Channel", rng.choice(callers)), ("Context", "queues"),
                  ("Exten", rng.choice(["sales", "support", "collections"]))]
    elif kind == 10 and channels:
        action = [("Action", "Hangup"), ("Channel", rng.choice(channels)), ("Cause", "16")]
    elif kind == 11:
        leg = AgiLeg("agi://127.0.0.1:4573/ivr", "", [], now + 30.0, n)
        pbx.originate_inbound(now, f"+7351{n:07d}", "", 30.0, [("QUEUE", "support"), ("IVR", "1")], agi=leg)
        if in_ivr and rng.random() < 0.5:
            linkedid = rng.choice(in_ivr)
            pbx.agi_done(now, linkedid, pbx.calls[linkedid].agi, "SUCCESS")
    if action:
        run_action(pbx, now, Request(action), f"a{n}")


def test_next_deadline_and_busy_devices_agree_with_a_full_scan_through_a_random_mix() -> None:
    pbx = Pbx(_mixed_config(), T0)
    rng = random.Random(7)
    next_action, fired = T0, 0
    for n in range(1500):
        while (deadline := pbx.next_deadline()) is not None and deadline <= next_action:
            assert deadline == _brute_force_deadline(pbx)
            fired += len(pbx.advance(deadline))
            assert pbx._busy() == _brute_force_busy(pbx)
        assert pbx.next_deadline() == _brute_force_deadline(pbx)
        now = next_action
        _random_action(pbx, rng, now, n)
        assert pbx.next_deadline() == _brute_force_deadline(pbx)
        assert pbx._busy() == _brute_force_busy(pbx)
        next_action = now + rng.choice([0.0, 0.5, 1.0, 2.0])
    while (deadline := pbx.next_deadline()) is not None:
        assert deadline == _brute_force_deadline(pbx)
        fired += len(pbx.advance(deadline))
    assert _brute_force_deadline(pbx) is None
    assert not pbx.calls and not pbx.outbound.calls and not pbx.spies.spies and not pbx.consults.by_call
    assert fired > 10_000, "the mix should keep the PBX busy"


def test_a_finished_call_is_not_kept_in_memory_until_its_patience_would_have_run_out() -> None:
    ops = tuple(MemberConfig(f"Local/{e}@agents/n", str(e)) for e in range(101, 111))
    pbx = Pbx(PbxConfig(queues=(QueueConfig("q", ops),), agents={x.interface: AgentBehaviour(0.0, 1.0) for x in ops}),
              T0)
    first, _ = pbx.originate_inbound(T0, "+73510000000", "", 3600.0, [("QUEUE", "q")])
    gone = weakref.ref(first)
    del first
    for n in range(1, 2000):  # enough calls that the clock sweeps out what they left behind
        now = T0 + n / 10
        pbx.advance(now)
        pbx.originate_inbound(now, f"+7351{n:07d}", "", 3600.0, [("QUEUE", "q")])
    gc.collect()
    assert gone() is None, "the first call's give-up timer, due in an hour, still holds it"
