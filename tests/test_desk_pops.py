"""DeskPopper: pops reach the rung operator's own topic and nobody else's, on real buses and databases."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import event as sql_event
from sqlalchemy import text

from agent_desk.pops import DeskPopper
from ami_bridge.events import CallEvent, CallEventKind, Outcome
from callcard.bus import CALLS_TOPIC, MemoryBus, desk_topic
from crm_core.models import Client, ClientPhone, Operator, Phone

IFACE_A = "Local/101@agents"
IFACE_B = "Local/102@agents"
IFACE_OFF = "Local/109@agents"
KNOWN = "+73517654321"


@pytest.fixture
def people(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Two active operators, one deactivated, and a client owning KNOWN."""
    with sessions() as session:
        a = Operator(login="a", name="Anna", password_hash="x", interface=IFACE_A)
        b = Operator(login="b", name="Boris", password_hash="x", interface=IFACE_B)
        off = Operator(login="off", name="Gone", password_hash="x", interface=IFACE_OFF, active=False)
        client = Client(name="Ivan Petrov", segment="vip")
        client.phone_links.append(ClientPhone(phone=Phone(e164=KNOWN, kind="landline"), label="work"))
        session.add_all([a, b, off, client])
        session.commit()
        return {"a": a.id, "b": b.id, "off": off.id, "client": client.id}


def event(kind: CallEventKind, linkedid: str = "1700000000.1", **fields: object) -> CallEvent:
    base: dict[str, object] = {"caller_num": "83517654321", "caller_name": "Ivan", "queue": "sales"}
    base.update(fields)
    return CallEvent(kind=kind, linkedid=linkedid, at=time.time(), **base)  # type: ignore[arg-type]


async def next_or_none(sub, timeout: float = 0.3):  # type: ignore[no-untyped-def]
    try:
        return await asyncio.wait_for(sub.get(), timeout)
    except TimeoutError:
        return None


async def test_ringing_pops_only_the_rung_operators_topic(sessions, bus, people) -> None:  # type: ignore[no-untyped-def]
    inbox_a = await bus.subscribe(desk_topic(people["a"]))
    inbox_b = await bus.subscribe(desk_topic(people["b"]))
    stop = asyncio.Event()
    runner = asyncio.create_task(DeskPopper(sessions, bus, "RU").run(stop))
    await asyncio.sleep(0.2)  # the popper subscribes to CALLS_TOPIC
    try:
        await bus.publish(CALLS_TOPIC, event(CallEventKind.RINGING, interface=IFACE_A).to_dict())
        pop = await asyncio.wait_for(inbox_a.get(), 5)
        assert pop["type"] == "pop"
        assert pop["linkedid"] == "1700000000.1"
        assert pop["card"]["caller"]["e164"] == KNOWN
        assert [m["id"] for m in pop["card"]["matches"]] == [people["client"]]
        assert await next_or_none(inbox_b) is None, "operator B received operator A's pop"

        await bus.publish(CALLS_TOPIC, event(CallEventKind.ANSWERED, interface=IFACE_A).to_dict())
        state = await asyncio.wait_for(inbox_a.get(), 5)
        assert (state["type"], state["state"], state["mine"]) == ("call_state", "answered", True)
        assert await next_or_none(inbox_b) is None
    finally:
        stop.set()
        await asyncio.wait_for(runner, 5)
        await inbox_a.close()
        await inbox_b.close()


async def test_popper_survives_a_malformed_event(sessions, bus, people) -> None:  # type: ignore[no-untyped-def]
    inbox_a = await bus.subscribe(desk_topic(people["a"]))
    stop = asyncio.Event()
    runner = asyncio.create_task(DeskPopper(sessions, bus, "RU").run(stop))
    await asyncio.sleep(0.2)
    try:
        await bus.publish(CALLS_TOPIC, {"kind": "not-a-kind", "linkedid": "x"})
        await bus.publish(CALLS_TOPIC, event(CallEventKind.RINGING, interface=IFACE_A).to_dict())
        assert (await asyncio.wait_for(inbox_a.get(), 5))["type"] == "pop"
    finally:
        stop.set()
        await asyncio.wait_for(runner, 5)
        await inbox_a.close()


async def test_state_goes_only_to_operators_rung_for_that_call(sessions, people) -> None:  # type: ignore[no-untyped-def]
    popper = DeskPopper(sessions, MemoryBus(), "RU")
    topic_a, topic_b = desk_topic(people["a"]), desk_topic(people["b"])
    assert [t for t, _ in await popper.handle(event(CallEventKind.RINGING, interface=IFACE_A))] == [topic_a]
    assert [t for t, _ in await popper.handle(event(CallEventKind.RINGING, interface=IFACE_B))] == [topic_b]

    stopped = await popper.handle(event(CallEventKind.RING_STOPPED, interface=IFACE_B))
    assert [(t, m["state"]) for t, m in stopped] == [(topic_b, "ring_stopped")]

    answered = dict(await popper.handle(event(CallEventKind.ANSWERED, interface=IFACE_A, wait_seconds=4)))
    assert answered[topic_a]["mine"] is True and answered[topic_b]["mine"] is False
    assert answered[topic_a]["wait_seconds"] == 4

    ended = await popper.handle(
        event(CallEventKind.ENDED, interface=IFACE_A, outcome=Outcome.ANSWERED, talk_seconds=61)
    )
    assert {t for t, _ in ended} == {topic_a, topic_b}
    assert all(m["outcome"] == "answered" and m["talk_seconds"] == 61 for _, m in ended)
    assert popper.live_calls() == 0, "ENDED must forget the call"
    assert await popper.handle(event(CallEventKind.ENDED, interface=IFACE_A)) == []


async def test_no_pop_for_an_inactive_or_unknown_interface(sessions, people) -> None:  # type: ignore[no-untyped-def]
    popper = DeskPopper(sessions, MemoryBus(), "RU")
    assert await popper.handle(event(CallEventKind.RINGING, interface=IFACE_OFF)) == []
    assert await popper.handle(event(CallEventKind.RINGING, interface="PJSIP/999")) == []
    assert await popper.handle(event(CallEventKind.OFFERED, interface=IFACE_A)) == []


async def test_unknown_caller_pops_with_no_matches(sessions, people) -> None:  # type: ignore[no-untyped-def]
    popper = DeskPopper(sessions, MemoryBus(), "RU")
    hostile = "<script>alert(1)</script>"
    [(topic, pop)] = await popper.handle(
        event(CallEventKind.RINGING, interface=IFACE_A, caller_num="+7 912 345-67-89", caller_name=hostile)
    )
    assert topic == desk_topic(people["a"])
    assert pop["card"]["matches"] == []
    assert pop["card"]["caller"]["e164"] == "+79123456789"
    assert pop["caller_name"] == hostile, "the pop carries the raw text; the browser renders it as text"
    [(_, pop)] = await popper.handle(event(CallEventKind.RINGING, linkedid="2.2", interface=IFACE_A,
                                           caller_num="89123456789", caller_name="89123456789"))
    assert pop["caller_name"] == "", "a name that only repeats the number is not shown as a name"


async def test_remembered_calls_are_bounded(sessions, people) -> None:  # type: ignore[no-untyped-def]
    popper = DeskPopper(sessions, MemoryBus(), "RU", max_calls=2)
    for n in range(5):
        await popper.handle(event(CallEventKind.RINGING, linkedid=f"call.{n}", interface=IFACE_A))
    assert popper.live_calls() == 2
    assert await popper.handle(event(CallEventKind.ENDED, linkedid="call.0")) == []
    assert len(await popper.handle(event(CallEventKind.ENDED, linkedid="call.4"))) == 1


async def test_the_card_is_built_while_the_caller_waits_in_the_queue(sessions, engine, people) -> None:  # type: ignore[no-untyped-def]
    """OFFERED (the caller joined a queue) starts the card; the ring that comes when an agent frees
    up pops it without reading the database."""
    popper = DeskPopper(sessions, MemoryBus(), "RU")
    await popper.handle(event(CallEventKind.RINGING, linkedid="warm.1", interface=IFACE_A))  # operators known
    assert await popper.handle(event(CallEventKind.OFFERED, linkedid="wait.1")) == []
    for _ in range(100):  # built at once on SQLite, in a worker thread elsewhere
        call = popper._calls["wait.1"]
        if call.card is not None or (call.prefetch is not None and call.prefetch.done()):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the card was not built while the caller waited")
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    sql_event.listen(engine, "before_cursor_execute", count)
    try:
        [(topic, pop)] = await popper.handle(event(CallEventKind.RINGING, linkedid="wait.1", interface=IFACE_A))
    finally:
        sql_event.remove(engine, "before_cursor_execute", count)
    assert topic == desk_topic(people["a"])
    assert [m["id"] for m in pop["card"]["matches"]] == [people["client"]]
    assert statements == []


async def test_a_call_that_ends_in_the_queue_drops_its_card(sessions, people) -> None:  # type: ignore[no-untyped-def]
    popper = DeskPopper(sessions, MemoryBus(), "RU")
    await popper.handle(event(CallEventKind.OFFERED, linkedid="gone.1"))
    await popper.handle(event(CallEventKind.ABANDONED, linkedid="gone.1", wait_seconds=3))
    assert await popper.handle(event(CallEventKind.ENDED, linkedid="gone.1", outcome=Outcome.ABANDONED)) == []
    assert popper.live_calls() == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_card_is_read_again_when_the_database_dropped_the_connection(sessions, engine, people) -> None:  # type: ignore[no-untyped-def]
    """The popper's reads skip the pool's ping; a connection the server closed (a restart) costs one
    retry, not a pop without its card."""
    popper = DeskPopper(sessions, MemoryBus(), "RU")
    [(_, before)] = await popper.handle(event(CallEventKind.RINGING, linkedid="before.1", interface=IFACE_A))
    assert [m["id"] for m in before["card"]["matches"]] == [people["client"]]
    with engine.connect() as conn:  # what a server restart does to every pooled connection
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    [(_, after)] = await popper.handle(event(CallEventKind.RINGING, linkedid="after.1", interface=IFACE_A))
    assert [m["id"] for m in after["card"]["matches"]] == [people["client"]]
