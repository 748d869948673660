"""The wall service as it runs: told to stop, it stops, even when a change comes in that very moment
(Python 3.11's wait_for would lose the cancel then and leave the service publishing forever)."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker

from callcard.bus import WALL_TOPIC, MemoryBus
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
