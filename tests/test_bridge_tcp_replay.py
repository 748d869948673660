"""The whole bridge over a real TCP socket: recorded bytes in, CallEvents out on a real bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from ami_peer import FakeAsterisk, frame

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.frames import FrameParser
from ami_bridge.service import Bridge, run_bridge
from ami_bridge.tracker import CallTracker
from callcard.bus import CALLS_TOPIC, Bus
from callcard.settings import Settings

TRACES = ["inbound_answered", "inbound_abandoned", "queue_status", "ivr_fastagi", "login_failure"]


def replay(data: bytes) -> list[CallEvent]:
    tracker = CallTracker(clock=lambda: 1000.0)
    return [event for msg in FrameParser().feed(data) for event in tracker.feed(msg)]


@pytest.fixture
async def peer() -> AsyncIterator[FakeAsterisk]:
    server = await FakeAsterisk().start()
    yield server
    await server.close()


def settings_for(peer: FakeAsterisk) -> Settings:
    return Settings(ami_port=peer.port, ami_action_timeout=1.0, ami_reconnect_max=0.2)


@asynccontextmanager
async def running(bridge: Bridge) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        await asyncio.wait_for(bridge.client.connected.wait(), 5)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def published(sub: Any, ended: int, timeout: float = 10.0) -> list[CallEvent]:
    """Events read from the bus until `ended` calls have ENDED."""
    events: list[CallEvent] = []
    async with asyncio.timeout(timeout):
        while sum(e.kind is CallEventKind.ENDED for e in events) < ended:
            events.append(CallEvent.from_dict(await sub.get()))
    return events


async def until(predicate) -> None:  # type: ignore[no-untyped-def]
    while not predicate():
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("trace", TRACES)
async def test_recorded_bytes_over_tcp_publish_the_replayed_events(
    trace: str, traces_dir: Path, peer: FakeAsterisk, bus: Bus
) -> None:
    data = (traces_dir / f"{trace}.ami").read_bytes()
    expected = replay(data)
    trace_events = sum(1 for m in FrameParser().feed(data) if m.event)
    sub = await bus.subscribe(CALLS_TOPIC)
    bridge = Bridge(settings_for(peer), bus, clock=lambda: 1000.0)
    async with running(bridge):
        await peer.push(data)
        got = await published(sub, ended=sum(e.kind is CallEventKind.ENDED for e in expected))
        # every event reached the tracker: the trace's, FullyBooted after our login, and the marker
        await peer.push(frame(Event="Marker"))
        await asyncio.wait_for(until(lambda: bridge.counters.events_in == trace_events + 2), 5)
    await sub.close()
    assert got == expected
    assert bridge.counters.call_events_out == len(expected)
    assert bridge.counters.parse_errors == 0


async def test_one_byte_writes_exercise_every_chunk_boundary(
    traces_dir: Path, peer: FakeAsterisk, bus: Bus
) -> None:
    """The peer yields after each byte, so the client reads the recording one byte per read."""
    data = (traces_dir / "inbound_answered.ami").read_bytes()
    sub = await bus.subscribe(CALLS_TOPIC)
    bridge = Bridge(settings_for(peer), bus, clock=lambda: 1000.0)
    async with running(bridge):
        await peer.push(data, bytewise=True)
        got = await published(sub, ended=1, timeout=30)
    await sub.close()
    assert got == replay(data)
    end = got[-1]
    assert (end.linkedid, end.caller_num, end.caller_name, end.queue, end.interface) == (
        "1795394611.0",
        "+73511234567",
        "Ivan Petrov",
        "sales",
        "Local/101@agents",
    )
    assert (end.outcome, end.wait_seconds, end.talk_seconds) == (Outcome.ANSWERED, 0, 4)


async def test_hostile_input_passes_as_data_and_nothing_crashes(
    traces_dir: Path, peer: FakeAsterisk, bus: Bus
) -> None:
    data = (
        (traces_dir / "inbound_answered.ami")
        .read_bytes()
        .replace(b"Ivan Petrov", "<script>alert('Пётр')</script>".encode())
    )
    garbage = b"\xff\xfe\x00garbage without colon\r\nX-Long: " + b"x" * 20_000 + b"\r\n\r\n\r\n\r\n"
    sub = await bus.subscribe(CALLS_TOPIC)
    bridge = Bridge(settings_for(peer), bus)
    async with running(bridge):
        await peer.push(garbage + data[:20_000] + b"\xc3" + data[20_000:])
        got = await published(sub, ended=1)
        assert bridge.client.connected.is_set()
    await sub.close()
    assert {e.caller_name for e in got} == {"<script>alert('Пётр')</script>"}
    assert got[-1].outcome is Outcome.ANSWERED
    assert bridge.counters.parse_errors >= 2
    assert peer.connections == 1


async def test_calls_gone_during_a_disconnect_are_ended_by_the_resync(
    traces_dir: Path, peer: FakeAsterisk, bus: Bus
) -> None:
    msgs_bytes = (traces_dir / "inbound_answered.ami").read_bytes()
    cut = msgs_bytes.index(b"Event: BridgeEnter")  # answered and talking when the link drops
    sub = await bus.subscribe(CALLS_TOPIC)
    bridge = Bridge(settings_for(peer), bus, min_backoff=0.02)
    async with running(bridge):
        await peer.push(msgs_bytes[:cut])
        before = [CallEvent.from_dict(await asyncio.wait_for(sub.get(), 5)) for _ in range(3)]
        assert [e.kind for e in before] == [
            CallEventKind.OFFERED,
            CallEventKind.RINGING,
            CallEventKind.ANSWERED,
        ]
        peer.list_items["CoreShowChannels"] = [
            {
                "Event": "CoreShowChannel",
                "Channel": "PJSIP/trunk-00000009",
                "Uniqueid": "1795399999.40",
                "Linkedid": "1795399999.40",
                "CallerIDNum": "+73519999999",
                "CallerIDName": "Still Here",
            }
        ]
        await peer.drop_all()
        after = await published(sub, ended=1)
        await asyncio.wait_for(until(lambda: bridge.counters.resyncs == 2), 5)
        assert bridge.tracker.active_calls == ["1795399999.40"]
    await sub.close()
    assert [(e.kind, e.linkedid, e.outcome) for e in after[:1]] == [
        (CallEventKind.ENDED, "1795394611.0", Outcome.ANSWERED)
    ]


async def test_run_bridge_publishes_until_stopped(traces_dir: Path, peer: FakeAsterisk, bus: Bus) -> None:
    data = (traces_dir / "inbound_abandoned.ami").read_bytes()
    hooked: list[CallEvent] = []
    sub = await bus.subscribe(CALLS_TOPIC)
    stop = asyncio.Event()
    task = asyncio.create_task(run_bridge(settings_for(peer), bus, stop, on_event=hooked.append))
    await until(lambda: peer.actions_named("QueueStatus"))
    await peer.push(data)
    got = await published(sub, ended=1)
    stop.set()
    await asyncio.wait_for(task, 5)
    await sub.close()
    assert [e.kind for e in got] == [
        CallEventKind.OFFERED,
        CallEventKind.RINGING,
        CallEventKind.RING_STOPPED,
        CallEventKind.ABANDONED,
        CallEventKind.ENDED,
    ]
    assert [e.kind for e in hooked] == [e.kind for e in got]
    assert got[-1].wait_seconds == 5
