"""The wall service as it runs: told to stop, it stops, even when a change comes in that very moment
(Python 3.11's wait_for would lose the cancel then and leave the service publishing forever); the
callers it shows, as people write them."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.events import QueueEvent
from ami_bridge.events import QueueEventKind as K
from callcard.bus import WALL_TOPIC, MemoryBus
from crm_core.clients import create_client
from routing.wall import WallService


async def test_the_wall_stops_when_a_change_comes_as_it_is_told_to_stop(sessions: sessionmaker[Session]) -> None:
    bus = MemoryBus()
    snapshots = await bus.subscribe(WALL_TOPIC)
    wall = WallService(sessions, bus, min_interval=0, heartbeat=60)
    stop = asyncio.Event()
    running = asyncio.create_task(wall.run(stop))
    try:
        wall._dirty.set()
        await asyncio.wait_for(snapshots.get(), 5)  # one snapshot out: the publisher waits for the next change
        for _ in range(10):
            await asyncio.sleep(0)
        wall._dirty.set()  # a change and the stop in the same turn of the loop
        stop.set()
        await asyncio.wait_for(asyncio.shield(running), 5)
    finally:
        running.cancel()
        await snapshots.close()


async def test_waiting_callers_show_as_people_write_them(sessions: sessionmaker[Session]) -> None:
    """A client by name, an unknown number formatted, a withheld one as "" (the page words it), and
    a caller ID name that only repeats the number or says `anonymous` dropped."""
    with sessions.begin() as session:
        create_client(session, "ООО «Вектор»", "company", ["+73512000001"])
    wall = WallService(sessions, MemoryBus(), min_interval=0, heartbeat=60)
    callers = {"c1": ("83512000001", "Vector"), "c2": ("83517654321", "83517654321"),
               "c3": ("anonymous", "anonymous"), "c4": ("", ""), "c5": ("101", "<b>Reception</b>")}
    for n, (linkedid, (number, name)) in enumerate(callers.items()):
        wall.state.apply(QueueEvent(K.CALLER_JOINED, wall.clock() - n, queue="sales", linkedid=linkedid,
                                    caller_num=number, caller_name=name))
    snapshot = await wall.publish()
    sales = next(q for q in snapshot["queues"] if q["name"] == "sales")
    assert {w["linkedid"]: (w["caller_name"], w["display"], (w["client"] or {}).get("name"))
            for w in sales["waiting"]} == {
        "c1": ("Vector", "+7 351 200-00-01", "ООО «Вектор»"), "c2": ("", "+7 351 765-43-21", None),
        "c3": ("", "", None), "c4": ("", "", None), "c5": ("<b>Reception</b>", "101", None)}
