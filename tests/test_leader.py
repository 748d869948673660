"""One leading bridge per Asterisk: lease timing (pure), the lock and its fencing on the real Redis,
and two bridges against the PBX simulator where only the leader is connected."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from services import REDIS_URL

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.leader import (
    BridgeKeys,
    LeaderLock,
    LeasePolicy,
    NotLeading,
    Verdict,
    judge_renewal,
    run_leading,
    takeover_endings,
    term_journal,
)
from ami_bridge.service import Bridge
from callcard.bus import MemoryBus
from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig
from callcard.pbx_sim.server import PbxSimulator
from callcard.settings import Settings
from callcard.streams import CallStreamWriter, stream_key

K = CallEventKind
OP1 = "Local/101@agents/n"


# --- pure timing ----------------------------------------------------------------------------


def test_lease_is_renewed_at_a_third_and_held_until_half_of_its_ttl() -> None:
    policy = LeasePolicy(ttl=6.0)
    assert policy.renew_at(100.0) == 102.0
    assert policy.holds(100.0, 102.9)
    assert not policy.holds(100.0, 103.0)  # three seconds before Redis could expire the key
    assert policy.time_left(100.0, 101.0) == 2.0 and policy.time_left(100.0, 104.0) == 0.0
    assert policy.poll_every == pytest.approx(0.6)


def test_renewal_verdicts() -> None:
    policy = LeasePolicy(ttl=3.0)
    assert judge_renewal(policy, 0.0, 1.0, True) is Verdict.KEEP
    assert judge_renewal(policy, 0.0, 1.0, False) is Verdict.STEP_DOWN  # another token holds the lock
    assert judge_renewal(policy, 0.0, 1.0, None) is Verdict.RETRY  # Redis silent, lease still ours
    assert judge_renewal(policy, 0.0, 1.5, None) is Verdict.STEP_DOWN  # silent past ttl/2
    assert judge_renewal(policy, 0.0, 5.0, True) is Verdict.KEEP  # a late yes is still a renewal


def test_takeover_ends_only_the_open_calls_asterisk_no_longer_has() -> None:
    answered = CallEvent(K.ANSWERED, "c1", 100.0, direction="outbound", caller_num="+7351", queue="sales",
                         interface="Local/101@agents", wait_seconds=4)
    ringing = CallEvent(K.RINGING, "c2", 101.0, caller_num="+7352", queue="sales")
    endings = takeover_endings({"c1": answered, "c2": ringing}, live={"c2"}, now=130.0)
    assert [(e.kind, e.linkedid, e.at, e.direction, e.queue) for e in endings] == [
        (K.ENDED, "c1", 130.0, "outbound", "sales")]
    assert (endings[0].outcome, endings[0].wait_seconds, endings[0].talk_seconds) == (None, None, None)


def test_a_caller_last_seen_waiting_in_a_queue_is_ended_as_abandoned() -> None:
    queued = CallEvent(K.RING_STOPPED, "q1", 100.0, caller_num="+7351", queue="sales", interface="PJSIP/101")
    answered_then_ring_stopped = CallEvent(K.RING_STOPPED, "q2", 100.0, queue="support", wait_seconds=7)
    no_queue = CallEvent(K.RINGING, "d1", 100.0, interface="PJSIP/101")
    endings = takeover_endings({"q1": queued, "q2": answered_then_ring_stopped, "d1": no_queue}, set(), 130.0)
    assert [(e.linkedid, e.outcome) for e in endings] == [("d1", None), ("q1", Outcome.ABANDONED), ("q2", None)]


# --- the lock on the real Redis --------------------------------------------------------------


@pytest.fixture
def prefix() -> str:
    return f"callcard-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def cleanup(redis: Any, prefix: str) -> AsyncIterator[None]:
    yield
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)


async def test_one_holder_at_a_time_and_every_acquisition_a_higher_fence(redis: Any, prefix: str, cleanup: None) -> None:
    keys = BridgeKeys.of(prefix, "127.0.0.1", 5038)
    first, second = (LeaderLock(redis, keys, LeasePolicy(ttl=1.0)) for _ in range(2))
    term = await first.try_acquire()
    assert term is not None and term.fence == 1
    assert await second.try_acquire() is None
    assert await first.renew(term)
    await first.release(term)
    again = await second.try_acquire()
    assert again is not None and again.fence == 2
    assert not await first.renew(term)  # released once: never ours again
    await asyncio.sleep(1.1)  # not renewed: expired
    third = await first.try_acquire()
    assert third is not None and third.fence == 3


async def test_standby_takes_over_within_the_ttl_when_the_leader_stops_renewing(
    redis: Any, prefix: str, cleanup: None
) -> None:
    keys = BridgeKeys.of(prefix, "127.0.0.1", 5038)
    dead = await LeaderLock(redis, keys, LeasePolicy(ttl=1.0)).try_acquire()  # then "killed": no renewals
    assert dead is not None
    stop = asyncio.Event()
    started = time.monotonic()
    term = await asyncio.wait_for(LeaderLock(redis, keys, LeasePolicy(ttl=1.0)).acquire(stop), 3)
    assert term is not None and term.fence == dead.fence + 1
    assert time.monotonic() - started < 1.0 + 0.3


async def test_a_deposed_leader_steps_down_and_its_late_writes_are_refused(
    redis: Any, prefix: str, cleanup: None
) -> None:
    keys = BridgeKeys.of(prefix, "127.0.0.1", 5038)
    policy = LeasePolicy(ttl=1.5)
    old_lock, new_lock = LeaderLock(redis, keys, policy), LeaderLock(redis, keys, policy)
    writer = CallStreamWriter(redis, stream_key(prefix), 10_000)
    old = await old_lock.try_acquire()
    assert old is not None
    old_journal = term_journal(writer, old_lock, old)
    await old_journal([CallEvent(K.OFFERED, "c1", 1.0, caller_num="+7351")])

    await redis.delete(keys.lock)  # the lease lapsed (a long pause): a standby takes it
    new = await new_lock.try_acquire()
    assert new is not None and new.fence == old.fence + 1
    stop = asyncio.Event()
    assert await asyncio.wait_for(old_lock.hold(old, stop), 2) is False  # next renewal: step down
    assert old.over.is_set()
    with pytest.raises(NotLeading):
        await old_journal([CallEvent(K.ENDED, "c1", 2.0, outcome=Outcome.MISSED)])
    # even a write that skipped every local check is refused by the script in Redis
    assert not await writer.append([CallEvent(K.ENDED, "c1", 2.0)], old_lock.gate(old))

    await term_journal(writer, new_lock, new)([CallEvent(K.ENDED, "c1", 3.0, outcome=Outcome.MISSED)])
    entries = await redis.xrange(stream_key(prefix))
    written = [(int(f[b"fence"]), json.loads(f[b"event"])["kind"]) for _, f in entries]
    assert written == [(old.fence, "offered"), (new.fence, "ended")]
    assert await redis.hgetall(keys.open_calls) == {}  # c1 ended: nothing left open


async def test_the_open_calls_follow_the_writes(redis: Any, prefix: str, cleanup: None) -> None:
    keys = BridgeKeys.of(prefix, "127.0.0.1", 5038)
    lock = LeaderLock(redis, keys, LeasePolicy(ttl=5.0))
    writer = CallStreamWriter(redis, stream_key(prefix), 10_000)
    term = await lock.try_acquire()
    assert term is not None
    journal = term_journal(writer, lock, term)
    await journal([CallEvent(K.OFFERED, "a", 1.0, caller_num="1"), CallEvent(K.OFFERED, "b", 1.0, caller_num="2"),
                   CallEvent(K.ANSWERED, "a", 2.0, caller_num="1", interface="PJSIP/101")])
    await journal([CallEvent(K.ENDED, "b", 3.0)])
    open_calls = await writer.open_calls(keys.open_calls)
    assert list(open_calls) == ["a"] and open_calls["a"].kind is K.ANSWERED


# --- two bridges against the simulator -------------------------------------------------------


async def _until(check: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_only_the_leader_connects_and_a_standby_takes_over_with_the_open_calls(
    redis: Any, prefix: str, cleanup: None
) -> None:
    sim = PbxSimulator(PbxConfig(queues=(QueueConfig("sales", (MemberConfig(OP1, "op1"),)),),
                                 agents={OP1: AgentBehaviour(answer_after=None)}))
    await sim.start("127.0.0.1", 0)
    settings = Settings(ami_port=sim.port, bus_url=REDIS_URL, bus_prefix=prefix, leader_ttl=1.0,
                        ami_action_timeout=2.0)
    bridges = [Bridge(settings, MemoryBus(), min_backoff=0.05) for _ in range(2)]
    stops = [asyncio.Event(), asyncio.Event()]
    doors: list[int] = []

    async def door(stop: asyncio.Event, index: int) -> None:
        doors.append(index)
        await stop.wait()

    runs = [asyncio.create_task(run_leading(b, settings, s, lambda t, i=i: door(t, i)))
            for i, (b, s) in enumerate(zip(bridges, stops, strict=True))]
    try:
        await _until(lambda: any(b.client.connected.is_set() for b in bridges), "a leader")
        leader = next(i for i, b in enumerate(bridges) if b.client.connected.is_set())
        standby = 1 - leader
        await asyncio.sleep(0.5)  # a few renewals: the standby stays out
        assert not bridges[standby].client.connected.is_set() and doors == [leader]

        answered = await sim.place_call("+73512223344", "Ivan", queue="sales")
        await _until(lambda: answered in bridges[leader].tracker.active_calls, "the call tracked")
        await sim.answer(OP1)
        await asyncio.sleep(0.2)
        stops[leader].set()  # graceful: the last events are written, the lease released
        await asyncio.wait_for(runs[leader], 5)
        await sim.hangup_agent(OP1)  # ends while nobody leads

        await _until(lambda: bridges[standby].client.connected.is_set(), "the standby leading", 3)
        assert doors == [leader, standby]

        async def ended() -> list[tuple[int, dict[str, Any]]]:
            entries = await redis.xrange(stream_key(prefix))
            return [(int(f[b"fence"]), json.loads(f[b"event"])) for _, f in entries]

        deadline = time.monotonic() + 5
        while not [e for _, e in await ended() if e["kind"] == "ended"]:
            assert time.monotonic() < deadline, "no ENDED for the call that ended while nobody led"
            await asyncio.sleep(0.05)
        written = await ended()
        assert [(fence, e["linkedid"]) for fence, e in written if e["kind"] == "ended"] == [(2, answered)]
        assert {e["kind"] for fence, e in written if fence == 1} >= {"offered", "ringing", "answered"}
    finally:
        for stop in stops:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), 5)
        await sim.stop()
