"""Run callcard's parts: all in one process (`callcard serve`, the demo, the tests) or some of them
per process on the Redis bus (`callcard run PART…`; `run web` alone is uvicorn's).

The parts: `bridge` (AMI -> bus, and the bridge's commands for the other processes), `worker`
(call logger, desk popper, wall service, follow-ups, escalations, e-mail drop folder), `ivr`
(FastAGI), `dialler` (campaigns), and the web app. On Redis the other parts reach the bridge
through `ami_bridge.remote.RemoteBridge`, even beside a bridge of their own: whichever bridge
leads answers, and this process's may be the standby. Consumers subscribe to the bus before the
bridge connects, so the first call event of a run is never published into the void. In one
process, calls a previous run left open in the call log are ended at the first resync when
Asterisk no longer has them (on Redis the leader lock's open-calls key does that). A bridge
alone opens no database (nor imports SQLAlchemy): a standby bridge costs ~30 MB less.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ami_bridge.remote import COMMAND_MARGIN, RemoteBridge
from callcard.bus import Bus, MemoryBus, make_bus
from callcard.metrics import DIALLER_CALLS, watch_bridge
from callcard.settings import Settings

if TYPE_CHECKING:  # each part imports its own modules when it starts: a bridge process need not hold the web app
    import uvicorn
    from fastapi import FastAPI
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from ami_bridge.client import AmiCommands
    from ami_bridge.events import CallEvent
    from ami_bridge.service import Bridge
    from ivr.server import FastAgiServer
    from routing.campaigns.service import DiallerService
    from routing.load import LiveQueueLoad
    from routing.wall import WallService

log = logging.getLogger(__name__)

GC_THRESHOLDS = (20_000, 20, 50)  # gen 0 allocations, gen 1 and gen 2 collection counts (default 700, 10, 10)
PARTS = ("bridge", "worker", "ivr", "dialler")  # the web app is started by `with_web` (or by uvicorn)
EVERY_PART = frozenset(PARTS)
DATABASE_PARTS = frozenset({"worker", "ivr", "dialler"})  # and the web app


@dataclass
class Stack:
    """The running parts, for the CLI and for end-to-end tests."""

    settings: Settings
    engine: Engine | None  # None in a process with no part that uses the database (a bridge alone)
    sessions: sessionmaker[Session] | None
    bus: Bus
    bridge: Bridge | None  # None in a process without the bridge part
    server: uvicorn.Server | None  # None without the web app
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    agi: FastAgiServer | None = None  # the IVR, None when its port could not be bound
    wall: WallService | None = None  # the supervisor wall's live state
    dialler: DiallerService | None = None
    remote: RemoteBridge | None = None  # the bridge of another process, when this one has none

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


class CountedOriginates:
    """The dialler's AMI door: the same commands, each call it places counted for /metrics."""

    def __init__(self, commands: AmiCommands) -> None:
        self._commands = commands

    def __getattr__(self, name: str) -> Any:
        return getattr(self._commands, name)

    async def originate(self, channel: str, **options: Any) -> str:
        action_id = await self._commands.originate(channel, **options)
        DIALLER_CALLS.inc()
        return action_id


async def start_stack(settings: Settings, *, with_web: bool = True, parts: Collection[str] = EVERY_PART) -> Stack:
    """Start `parts` (every one by default) and the web app unless `with_web` is False; returns
    once the web server accepts connections."""
    unknown = set(parts) - EVERY_PART
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; parts are {', '.join(PARTS)}")
    engine = sessions = None
    if with_web or DATABASE_PARTS & set(parts):
        from crm_core.db import make_engine, make_sessionmaker

        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
    bus = make_bus(settings.bus_url, settings.bus_prefix)
    bridge = None
    if "bridge" in parts:
        from ami_bridge.service import Bridge

        bridge = Bridge(settings, bus)
        watch_bridge(bridge)
    stack = Stack(settings, engine, sessions, bus, bridge, None)
    door: Bridge | RemoteBridge
    if bridge is not None and isinstance(bus, MemoryBus):
        door = bridge
    else:
        door = stack.remote = RemoteBridge(bus, settings.ami_action_timeout + COMMAND_MARGIN)
    if sessions is not None:
        await _start_database_parts(stack, sessions, parts, door)
    await asyncio.sleep(0.05)  # let the consumers subscribe before the first event
    dialer: Any = door
    if bridge is not None:
        click_to_call = AmiDialer(bridge)
        if isinstance(bus, MemoryBus):
            dialer = click_to_call
            if sessions is not None:  # calls a run that stopped mid-call left open in the call log
                bridge.resume(*await asyncio.to_thread(_logged_open_calls, sessions))
            stack.tasks.append(asyncio.create_task(bridge.run(stack.stop), name="ami-bridge"))
        else:  # one leading bridge per Asterisk; only the leader answers the other processes' commands
            from ami_bridge.leader import run_leading
            from ami_bridge.remote import serve_bridge_commands

            door_for_term = partial(serve_bridge_commands, bridge, click_to_call.click_to_call, bus)
            stack.tasks.append(asyncio.create_task(run_leading(bridge, settings, stack.stop, door_for_term),
                                                   name="ami-bridge"))
    if with_web:
        from agent_desk.app import create_app

        assert sessions is not None
        app = create_app(settings, sessions, bus, dialer=dialer, transferrer=door, supervision=door,
                         campaign_dialler=stack.dialler)
        stack.server = web_server(settings, app)
        stack.tasks.append(asyncio.create_task(stack.server.serve(), name="web"))
        while not stack.server.started:
            await asyncio.sleep(0.02)
    settle_gc()
    return stack


def _logged_open_calls(sessions: sessionmaker[Session]) -> tuple[dict[str, CallEvent], float | None]:
    from crm_core.call_log import last_logged, open_calls

    with sessions() as session:
        return open_calls(session), last_logged(session)


async def _start_database_parts(stack: Stack, sessions: sessionmaker[Session], parts: Collection[str],
                                door: Bridge | RemoteBridge) -> None:
    """worker, dialler and ivr, those of them in `parts`."""
    settings, bus = stack.settings, stack.bus
    if "worker" in parts:
        _start_worker(stack, sessions)
    if "dialler" in parts:
        from routing.campaigns.service import DiallerService

        stack.dialler = DiallerService(sessions, bus, CountedOriginates(door.commands),
                                       region=settings.default_region)
        stack.tasks.append(asyncio.create_task(stack.dialler.run(stack.stop), name="dialler"))
    if "ivr" in parts:
        from routing.load import LiveQueueLoad

        stack.agi = await _start_ivr(settings, sessions, LiveQueueLoad(door.queue_summary))
        if stack.agi is not None:
            stack.tasks.append(asyncio.create_task(stack.agi.serve_until(stack.stop), name="fastagi"))


def _start_worker(stack: Stack, sessions: sessionmaker[Session]) -> None:
    """The bus consumers that need no PBX session: call log, desk pops, wall, inbox timers."""
    from agent_desk.pops import DeskPopper
    from callcard.streams import run_call_log
    from crm_core import recordings
    from crm_core.call_log import CallLogger
    from routing.inbox.followups import FollowUps, run_escalations
    from routing.inbox.intake import watch_eml_dir
    from routing.wall import WallService

    settings, bus = stack.settings, stack.bus
    logger = CallLogger(sessions, settings.default_region)
    popper = DeskPopper(sessions, bus, settings.default_region)
    # The popper first: it subscribes first, so each call event reaches it before the other consumers.
    stack.tasks.append(asyncio.create_task(popper.run(stack.stop), name="desk-popper"))
    stack.tasks.append(asyncio.create_task(run_call_log(logger, settings, bus, stack.stop), name="call-logger"))
    follow_ups = FollowUps(sessions, settings.default_region)
    stack.tasks.append(asyncio.create_task(follow_ups.run(bus, stack.stop), name="follow-ups"))
    stack.tasks.append(asyncio.create_task(run_escalations(sessions, bus, stack.stop), name="escalations"))
    stack.wall = WallService(sessions, bus, region=settings.default_region)
    stack.tasks.append(asyncio.create_task(stack.wall.run(stack.stop), name="wall"))
    if settings.recordings_dir and settings.recording_days:
        stack.tasks.append(asyncio.create_task(
            recordings.keep_for(Path(settings.recordings_dir), settings.recording_days, stack.stop),
            name="recording-retention"))
    if settings.eml_dir:
        stack.tasks.append(asyncio.create_task(
            watch_eml_dir(sessions, Path(settings.eml_dir), stack.stop, region=settings.default_region),
            name="eml-drop-folder"))


def web_server(settings: Settings, app: FastAPI) -> uvicorn.Server:
    """uvicorn for the in-process app. No permessage-deflate: desk messages are a few kB on a LAN,
    and compressing each one for each desk cost more CPU than any other step of sending a pop.
    No log config of uvicorn's own: its lines go through callcard's (text or JSON, redacted)."""
    import uvicorn

    from agent_desk.app import served

    config = uvicorn.Config(
        served(app), host=settings.http_host, port=settings.http_port, log_level="warning", lifespan="off",
        ws_per_message_deflate=False, log_config=None,
    )
    return uvicorn.Server(config)


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
    from ivr.server import FastAgiServer, IvrApplication

    server = FastAgiServer(IvrApplication(sessions, settings.default_region, load=load))
    try:
        await server.start(settings.agi_host, settings.agi_port)
    except OSError as exc:
        log.error("FastAGI IVR not started on %s:%s: %s", settings.agi_host, settings.agi_port, exc)
        return None
    return server


async def stop_stack(stack: Stack) -> None:
    stack.stop.set()
    if stack.server is not None:
        stack.server.should_exit = True
    done, pending = await asyncio.wait(stack.tasks, timeout=5) if stack.tasks else (set(), set())
    for task in pending:
        task.cancel()
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped with %r", task.get_name(), task.exception())
    if stack.remote is not None:
        await stack.remote.close()
    await stack.bus.close()
    if stack.engine is not None:
        stack.engine.dispose()
