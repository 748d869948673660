"""The FastAGI server (asyncio TCP) and the IVR application it runs for every call.

`FastAgiServer` owns sockets: it reads the environment, hands an `AgiChannel` to a handler
(async or plain function) and always closes the session. `IvrApplication` is that handler
for `agi://host:port/ivr`: it reads the plan from the database, drives the pure
`MenuEngine` with AGI results, asks `routing.service.route_call` where the call goes (with the
queues' live load), sets QUEUE / IVR_PRIORITY / DEPARTMENT / CLIENT_ID / MANAGER_IFACE /
MANAGER_RING, and stores the path taken on the Call row by Linkedid whatever happens to the caller.

Where a DID goes is configured in one place each: `/admin/ivr` says which *menu* a DID plays
(IvrMenu.did), `/admin/routing` says which *department* the DID belongs to (DidRoute). The
menu only contributes the caller's choice; routing decides the department, so a caller who
presses the operator key, never presses anything, or meets no menu at all reaches the DID's
department (else the default one), and blocked numbers, debtors, personal managers, VIP
priority and overflow apply to every call. A menu's operator queue is used only when
routing names no queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from crm_core.phones import try_normalize
from ivr import service
from ivr.agi import AgiChannel, AgiEnvironmentError, AgiError, AgiHangup, read_environment
from ivr.menu import (
    CALLBACK_PROMPT,
    DepartmentSpec,
    IvrPlan,
    MenuEngine,
    Outcome,
    after_hours,
    without_callback,
)
from routing.rules import QueueLoad, Route
from routing.service import route_call

log = logging.getLogger(__name__)

AgiHandler = Callable[[AgiChannel], Awaitable[None] | None]
LoadSource = Callable[[], Awaitable[Mapping[str, QueueLoad]]]
REJECTED_PROMPT = "callcard/ivr-rejected"


async def _no_load() -> Mapping[str, QueueLoad]:
    return {}


@dataclass(frozen=True)
class _Caller:
    """Who is calling which number, as the IVR learnt it at the start of the call."""

    linkedid: str
    raw: str  # caller ID as presented
    e164: str | None
    did: str
    client_id: int | None
    departments: Mapping[str, DepartmentSpec]  # open or closed when the call came in


class FastAgiServer:
    """Accepts Asterisk's FastAGI connections; one task per session, none outlives `stop()`."""

    def __init__(self, handler: AgiHandler, *, env_timeout: float = 5.0) -> None:
        self._handler = handler
        self._env_timeout = env_timeout
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[object]] = set()
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 4573) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        await self._server.wait_closed()

    async def serve_until(self, stop: asyncio.Event) -> None:
        """For the runtime: serve until `stop` is set, then close."""
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        peer = f"{host}:{port}"
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        try:
            env = await read_environment(reader, self._env_timeout)
            if env.garbage:
                log.warning("FastAGI %s: ignored %d environment lines that are not agi_ variables: %.200r",
                            peer, len(env.garbage), env.garbage)
            outcome = self._handler(AgiChannel(reader, writer, env))
            if inspect.isawaitable(outcome):
                await outcome
        except AgiEnvironmentError as exc:
            log.warning("FastAGI %s: session dropped: %s", peer, exc)
        except AgiHangup as exc:
            log.info("FastAGI %s: %s", peer, exc)
        except (AgiError, ConnectionError) as exc:
            log.warning("FastAGI %s: session ended: %s", peer, exc)
        except Exception:  # a broken handler must not take the server down with it
            log.exception("FastAGI %s: the handler failed", peer)
        except asyncio.CancelledError:  # stop(): end quietly, asyncio's stream callback would log it
            log.info("FastAGI %s: session cancelled by shutdown", peer)
        finally:
            self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class IvrApplication:
    """The IVR: one instance serves every call; all state of a call lives in its `__call__`.

    `load` returns the queues' live figures (the runtime asks Asterisk's QueueSummary through
    the bridge); without it overflow is never judged.
    """

    def __init__(self, sessions: sessionmaker[Session], region: str = "RU",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 load: LoadSource = _no_load) -> None:
        self._sessions = sessions
        self._region = region
        self._clock = clock  # business hours are judged at this instant
        self._load = load

    async def __call__(self, agi: AgiChannel) -> None:
        env = agi.env
        started = self._clock()
        linkedid = await agi.get_full_variable("${CHANNEL(linkedid)}") or env.uniqueid
        raw = env.get("callerid")
        e164 = try_normalize(raw, self._region) if raw not in ("", "unknown") else None
        plan, client_id, departments = await asyncio.to_thread(self._prepare, env.dnid, e164, started)
        caller = _Caller(linkedid, raw, e164, env.dnid, client_id, departments)
        outcome: Outcome | None = None
        recorded = False
        engine = MenuEngine(plan) if plan is not None else None
        try:
            gate = await asyncio.to_thread(self._route, caller, "", {})
            if gate.rejected:  # a blocked number walks no menu
                outcome = Outcome("hangup", "rejected", prompt=REJECTED_PROMPT)
            elif engine is None:
                log.warning("IVR: call %s from %r: no menu for DID %r and no default menu; routed "
                            "without one", linkedid, raw, env.dnid)
                outcome = Outcome("queue", "no-menu")
            else:
                step = engine.start()
                while not isinstance(step, Outcome):
                    step = engine.feed(await agi.command(step.command()))
                outcome = step
            outcome, route = await self._routed(outcome, caller)
            if outcome.kind == "callback" and caller.e164 is None:
                outcome = without_callback(outcome, caller.departments.get(outcome.department))
            if outcome.kind != "queue" and outcome.prompt:
                # stored before the goodbye, so the call's end finds it: no follow-up callback
                await asyncio.to_thread(self._record, linkedid, outcome.path, started, client_id, outcome.department)
                recorded = True
            await self._carry_out(agi, outcome, route, caller)
        except AgiHangup:
            outcome = outcome or (engine.hangup() if engine is not None else Outcome("hangup", "hangup"))
        finally:
            path = outcome.path if outcome else f"{engine.path if engine else ''}>error"
            log.info("IVR: call %s from %r: %s", linkedid, raw, path)
            if not recorded:
                await asyncio.to_thread(self._record, linkedid, path, started, client_id,
                                        outcome.department if outcome else "")

    def _prepare(self, did: str, e164: str | None,
                 at: datetime) -> tuple[IvrPlan | None, int | None, dict[str, DepartmentSpec]]:
        with self._sessions() as session:
            return (service.load_plan(session, did, at), service.single_client(session, e164),
                    service.department_hours(session, at))

    def _route(self, caller: _Caller, choice: str, load: Mapping[str, QueueLoad]) -> Route:
        with self._sessions() as session:
            return route_call(session, caller.e164, caller.did, choice, self._clock(), load, self._region)

    def _record(self, linkedid: str, path: str, started: datetime, client_id: int | None,
                department: str) -> None:
        if not linkedid:
            log.error("IVR: the channel has no Uniqueid/Linkedid; path %r is not stored", path)
            return
        with self._sessions.begin() as session:
            service.record_path(session, linkedid, path, started, client_id, department, self._clock())

    def _callback(self, caller: _Caller, department: str) -> None:
        assert caller.e164 is not None, "a withheld number is offered no callback (menu.without_callback)"
        with self._sessions.begin() as session:
            service.create_callback_request(session, caller.client_id, department, caller.e164,
                                            self._clock(), caller.linkedid)

    async def _routed(self, outcome: Outcome, caller: _Caller) -> tuple[Outcome, Route | None]:
        """A queue outcome as routing decides it: the menu's department is only the caller's choice."""
        if outcome.kind != "queue":
            return outcome, None
        route = await asyncio.to_thread(self._route, caller, outcome.department, await self._load())
        if route.rejected:
            return Outcome("hangup", f"{outcome.path}>rejected", prompt=REJECTED_PROMPT), route
        if route.callback:
            return Outcome("callback", f"{outcome.path}>overflow>callback", department=route.department or "",
                           prompt=CALLBACK_PROMPT), route
        moved_to = caller.departments.get(route.department or "")
        if moved_to is not None and not moved_to.open and moved_to.code != outcome.department:
            # the menu judged the chosen department's hours; routing moved the caller to a closed one
            return after_hours(f"{outcome.path}>{moved_to.code}", moved_to), route
        return replace(outcome, queue=route.queue or outcome.queue, department=route.department or "",
                       priority=max(route.priority, outcome.priority)), route

    async def _carry_out(self, agi: AgiChannel, outcome: Outcome, route: Route | None, caller: _Caller) -> None:
        """Queue: set the variables the dialplan's Dial()/Queue() read. Callback/voicemail/rejected:
        say so, hang up."""
        if outcome.kind == "queue":
            await agi.set_variable("QUEUE", outcome.queue)
            await agi.set_variable("IVR_PRIORITY", str(outcome.priority))
            if route is not None and route.first_try_interface:
                await agi.set_variable("MANAGER_IFACE", route.first_try_interface)
                await agi.set_variable("MANAGER_RING", str(route.ring_seconds))
        if outcome.department:
            await agi.set_variable("DEPARTMENT", outcome.department)
        if caller.client_id is not None:
            await agi.set_variable("CLIENT_ID", str(caller.client_id))
        if outcome.kind == "callback":
            await asyncio.to_thread(self._callback, caller, outcome.department)
        if outcome.kind != "queue" and outcome.prompt:  # the caller hung up already when there is none
            await agi.command(f'STREAM FILE {outcome.prompt} ""')
            await agi.hangup()
