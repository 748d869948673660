"""Run callcard's parts in one process: web app, AMI bridge, call logger, desk pops.

Consumers subscribe to the bus before the bridge connects, so the first call event of
a run is never published into the void.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agent_desk.app import create_app
from agent_desk.pops import DeskPopper
from ami_bridge.service import Bridge
from callcard.bus import Bus, make_bus
from callcard.settings import Settings
from crm_core.call_log import CallLogger
from crm_core.db import make_engine, make_sessionmaker
from ivr.server import FastAgiServer, IvrApplication
from routing.inbox.followups import FollowUps, run_escalations
from routing.inbox.intake import watch_eml_dir
from routing.load import LiveQueueLoad
from routing.wall import WallService

log = logging.getLogger(__name__)

GC_THRESHOLDS = (20_000, 20, 50)  # gen 0 allocations, gen 1 and gen 2 collection counts (default 700, 10, 10)


@dataclass
class Stack:
    """The running parts, for the CLI and for end-to-end tests."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    bus: Bus
    bridge: Bridge
    server: uvicorn.Server
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    agi: FastAgiServer | None = None  # the IVR, None when its port could not be bound
    wall: WallService | None = None  # the supervisor wall's live state

    @property
    def desk_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}/desk"


class AmiDialer:
    """Click-to-call through the bridge's AMI client: ring the operator's phone, then dial out."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def click_to_call(self, operator_interface: str, number_e164: str) -> str:
        """The tracker is told first which end is the operator: the events cannot say (see
        CallTracker.expect_click_to_call), and the call must be logged under the customer's number."""
        channel_id = f"callcard-{uuid.uuid4().hex}"
        self._bridge.tracker.expect_click_to_call(channel_id, operator_interface, number_e164)
        return await self._bridge.commands.originate(
            operator_interface, context="outbound", exten=number_e164, caller_id=number_e164,
            channel_id=channel_id,
        )


async def start_stack(settings: Settings, *, with_web: bool = True) -> Stack:
    """Start every part; returns once the web server accepts connections."""
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    bus = make_bus(settings.bus_url)
    bridge = Bridge(settings, bus)
    app = create_app(settings, sessions, bus, dialer=AmiDialer(bridge), transferrer=bridge, supervision=bridge)
    # No permessage-deflate: desk messages are a few kB on a LAN, and compressing each one for each
    # desk cost more CPU than any other step of sending a pop.
    config = uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_level="warning", lifespan="off",
        ws_per_message_deflate=False,
    )
    stack = Stack(settings, engine, sessions, bus, bridge, uvicorn.Server(config))
    logger = CallLogger(sessions, settings.default_region)
    popper = DeskPopper(sessions, bus, settings.default_region)
    stack.tasks.append(asyncio.create_task(logger.run(bus, stack.stop), name="call-logger"))
    stack.tasks.append(asyncio.create_task(popper.run(stack.stop), name="desk-popper"))
    follow_ups = FollowUps(sessions, settings.default_region)
    stack.tasks.append(asyncio.create_task(follow_ups.run(bus, stack.stop), name="follow-ups"))
    stack.tasks.append(asyncio.create_task(run_escalations(sessions, bus, stack.stop), name="escalations"))
    stack.wall = WallService(sessions, bus, region=settings.default_region)
    stack.tasks.append(asyncio.create_task(stack.wall.run(stack.stop), name="wall"))
    if settings.eml_dir:
        stack.tasks.append(asyncio.create_task(
            watch_eml_dir(sessions, Path(settings.eml_dir), stack.stop, region=settings.default_region),
            name="eml-drop-folder"))
    stack.agi = await _start_ivr(settings, sessions, LiveQueueLoad(bridge.queue_summary))
    if stack.agi is not None:
        stack.tasks.append(asyncio.create_task(stack.agi.serve_until(stack.stop), name="fastagi"))
    await asyncio.sleep(0.05)  # let the consumers subscribe before the first event
    stack.tasks.append(asyncio.create_task(bridge.run(stack.stop), name="ami-bridge"))
    if with_web:
        stack.tasks.append(asyncio.create_task(stack.server.serve(), name="web"))
        while not stack.server.started:
            await asyncio.sleep(0.02)
    settle_gc()
    return stack


def settle_gc() -> None:
    """Keep start-up objects (modules, app, ORM metadata) out of every later collection, and
    collect the young generation less often: with 1,000 desks connected a full collection of
    everything took over 0.5 s and stalled every pop behind it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _start_ivr(settings: Settings, sessions: sessionmaker[Session],
                     load: LiveQueueLoad) -> FastAgiServer | None:
    """The FastAGI IVR, routing with the queues' live load; a busy port is logged, not fatal:
    Asterisk's AGI() then falls through to Queue(${QUEUE}) and everything else keeps working."""
    server = FastAgiServer(IvrApplication(sessions, settings.default_region, load=load))
    try:
        await server.start(settings.agi_host, settings.agi_port)
    except OSError as exc:
        log.error("FastAGI IVR not started on %s:%s: %s", settings.agi_host, settings.agi_port, exc)
        return None
    return server


async def stop_stack(stack: Stack) -> None:
    stack.stop.set()
    stack.server.should_exit = True
    done, pending = await asyncio.wait(stack.tasks, timeout=5)
    for task in pending:
        task.cancel()
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped with %r", task.get_name(), task.exception())
    await stack.bus.close()
    stack.engine.dispose()
