"""DeskPopper under load: a slow card holds up only its own call, and operators are looked up once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from agent_desk import pops
from agent_desk.pops import DeskPopper
from ami_bridge.events import CallEvent, CallEventKind
from callcard.bus import CALLS_TOPIC, MemoryBus, desk_topic
from crm_core.models import Operator

IFACE_A = "Local/101@agents"
IFACE_B = "Local/102@agents"


def event(kind: CallEventKind, linkedid: str, **fields: object) -> CallEvent:
    return CallEvent(kind=kind, linkedid=linkedid, at=time.time(), caller_num="83517654321", queue="sales",
                     **fields)  # type: ignore[arg-type]


def operators(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        a = Operator(login="a", name="Anna", password_hash="x", interface=IFACE_A)
        b = Operator(login="b", name="Boris", password_hash="x", interface=IFACE_B)
        s.add_all([a, b])
        s.flush()
        return {"a": a.id, "b": b.id}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite reads on the loop: see below
async def test_a_slow_card_delays_only_its_own_call_and_its_state_follows_its_pop(sessions) -> None:  # type: ignore[no-untyped-def]
    ids = operators(sessions)
    bus = MemoryBus()
    popper = DeskPopper(sessions, bus, "RU")
    release = threading.Event()
    lookup = popper._lookup

    def slow_for_call_1(ev: CallEvent, known_card):  # type: ignore[no-untyped-def]
        if ev.linkedid == "call.1":
            release.wait(5)
        return lookup(ev, known_card)

    popper._lookup = slow_for_call_1  # type: ignore[method-assign]
    inbox_a, inbox_b = await bus.subscribe(desk_topic(ids["a"])), await bus.subscribe(desk_topic(ids["b"]))
    stop = asyncio.Event()
    runner = asyncio.create_task(popper.run(stop))
    await asyncio.sleep(0.1)
    try:
        await bus.publish(CALLS_TOPIC, event(CallEventKind.RINGING, "call.1", interface=IFACE_A).to_dict())
        await bus.publish(CALLS_TOPIC, event(CallEventKind.ANSWERED, "call.1", interface=IFACE_A).to_dict())
        await bus.publish(CALLS_TOPIC, event(CallEventKind.RINGING, "call.2", interface=IFACE_B).to_dict())
        pop_b = await asyncio.wait_for(inbox_b.get(), 5)
        assert (pop_b["type"], pop_b["linkedid"]) == ("pop", "call.2"), "call 2 waited for call 1's card"
        with pytest.raises(asyncio.QueueEmpty):  # nothing for call 1 yet
            inbox_a.get_nowait()
        release.set()
        first, second = await asyncio.wait_for(inbox_a.get(), 5), await asyncio.wait_for(inbox_a.get(), 5)
        assert (first["type"], second["type"], second["state"]) == ("pop", "call_state", "answered")
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(runner, 5)


async def test_cards_are_read_on_the_loop_from_sqlite_and_in_a_worker_thread_from_postgresql(sessions) -> None:  # type: ignore[no-untyped-def]
    operators(sessions)
    popper = DeskPopper(sessions, MemoryBus(), "RU")
    threads: list[threading.Thread] = []
    card = popper._card

    def recording(ev: CallEvent):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread())
        return card(ev)

    popper._card = recording  # type: ignore[method-assign]
    await popper.handle(event(CallEventKind.OFFERED, "t.1"))
    (_, pop), = await popper.handle(event(CallEventKind.RINGING, "t.1", interface=IFACE_A))
    assert pop["card"]["caller"]["e164"] == "+73517654321"
    on_loop = sessions.kw["bind"].dialect.name == "sqlite"
    assert threads == [threading.current_thread()] if on_loop else threads[0] is not threading.current_thread()


async def test_many_calls_at_once_each_pop_once_then_their_state_in_order(sessions) -> None:  # type: ignore[no-untyped-def]
    ids = operators(sessions)
    bus = MemoryBus()
    inbox = await bus.subscribe(desk_topic(ids["a"]))
    stop = asyncio.Event()
    runner = asyncio.create_task(DeskPopper(sessions, bus, "RU").run(stop))
    await asyncio.sleep(0.1)
    try:
        for n in range(30):
            await bus.publish(CALLS_TOPIC, event(CallEventKind.RINGING, f"c.{n}", interface=IFACE_A).to_dict())
            await bus.publish(CALLS_TOPIC, event(CallEventKind.RING_STOPPED, f"c.{n}", interface=IFACE_A).to_dict())
        seen: dict[str, list[str]] = {}
        for _ in range(60):
            message = await asyncio.wait_for(inbox.get(), 10)
            seen.setdefault(message["linkedid"], []).append(message["type"])
        assert seen == {f"c.{n}": ["pop", "call_state"] for n in range(30)}
    finally:
        stop.set()
        await asyncio.wait_for(runner, 5)


async def test_operators_are_looked_up_once_and_changes_seen_after_the_refresh(sessions, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ids = operators(sessions)
    popper = DeskPopper(sessions, MemoryBus(), "RU")
    assert [t for t, _ in await popper.handle(event(CallEventKind.RINGING, "x.1", interface=IFACE_A))] == [
        desk_topic(ids["a"])]
    with sessions.begin() as s:
        s.get(Operator, ids["a"]).active = False
        s.add(Operator(login="c", name="New", password_hash="x", interface="Local/103@agents"))
    # a new operator pops at once: a miss is asked for on its own
    assert len(await popper.handle(event(CallEventKind.RINGING, "x.2", interface="Local/103@agents"))) == 1
    # a deactivated one stops popping once the map is reloaded
    monkeypatch.setattr(pops, "OPERATORS_REFRESH_SECONDS", 0.0)
    assert await popper.handle(event(CallEventKind.RINGING, "x.3", interface=IFACE_A)) == []

