"""The FastAGI server (asyncio TCP) and the IVR application it runs for every call.

`FastAgiServer` owns sockets: it reads the environment, hands an `AgiChannel` to a handler
(async or plain function) and always closes the session. `IvrApplication` is that handler
for `agi://host:port/ivr`: it reads the plan from the database, drives the pure
`MenuEngine` with AGI results, sets QUEUE / IVR_PRIORITY / DEPARTMENT / CLIENT_ID, and
stores the path taken on the Call row by Linkedid whatever happens to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from crm_core.phones import try_normalize
from ivr import service
from ivr.agi import AgiChannel, AgiEnvironmentError, AgiError, AgiHangup, read_environment
from ivr.menu import IvrPlan, MenuEngine, Outcome

log = logging.getLogger(__name__)

AgiHandler = Callable[[AgiChannel], Awaitable[None] | None]


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
    """The IVR: one instance serves every call; all state of a call lives in its `__call__`."""

    def __init__(self, sessions: sessionmaker[Session], region: str = "RU",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._sessions = sessions
        self._region = region
        self._clock = clock  # business hours are judged at this instant

    async def __call__(self, agi: AgiChannel) -> None:
        env = agi.env
        started = self._clock()
        linkedid = await agi.get_full_variable("${CHANNEL(linkedid)}") or env.uniqueid
        caller = env.get("callerid")
        e164 = try_normalize(caller, self._region) if caller not in ("", "unknown") else None
        plan, client_id = await asyncio.to_thread(self._prepare, env.dnid, e164, started)
        if plan is None:
            log.error("IVR: call %s from %r: no menu for DID %r and no default menu; the dialplan's "
                      "QUEUE stays as it is", linkedid, caller, env.dnid)
            await asyncio.to_thread(self._record, linkedid, "no-menu", started, client_id, "")
            return
        engine = MenuEngine(plan)
        outcome: Outcome | None = None
        try:
            step = engine.start()
            while not isinstance(step, Outcome):
                step = engine.feed(await agi.command(step.command()))
            outcome = step
            await self._carry_out(agi, outcome, client_id, e164 or caller)
        except AgiHangup:
            outcome = outcome or engine.hangup()
        finally:
            path = outcome.path if outcome else f"{engine.path}>error"
            log.info("IVR: call %s from %r: %s", linkedid, caller, path)
            await asyncio.to_thread(self._record, linkedid, path, started, client_id,
                                    outcome.department if outcome else "")

    def _prepare(self, did: str, e164: str | None, at: datetime) -> tuple[IvrPlan | None, int | None]:
        with self._sessions() as session:
            return service.load_plan(session, did, at), service.single_client(session, e164)

    def _record(self, linkedid: str, path: str, started: datetime, client_id: int | None,
                department: str) -> None:
        if not linkedid:
            log.error("IVR: the channel has no Uniqueid/Linkedid; path %r is not stored", path)
            return
        with self._sessions.begin() as session:
            service.record_path(session, linkedid, path, started, client_id, department)

    def _callback(self, client_id: int | None, department: str, caller: str) -> None:
        with self._sessions.begin() as session:
            service.create_callback_request(session, client_id, department, caller)

    async def _carry_out(self, agi: AgiChannel, outcome: Outcome, client_id: int | None, caller: str) -> None:
        """Queue: set the variables the dialplan's Queue() reads. Callback/voicemail: say so, hang up."""
        if outcome.kind == "queue":
            await agi.set_variable("QUEUE", outcome.queue)
            await agi.set_variable("IVR_PRIORITY", str(outcome.priority))
        if outcome.department:
            await agi.set_variable("DEPARTMENT", outcome.department)
        if client_id is not None:
            await agi.set_variable("CLIENT_ID", str(client_id))
        if outcome.kind == "callback":
            await asyncio.to_thread(self._callback, client_id, outcome.department, caller)
        if outcome.kind in ("callback", "voicemail"):
            await agi.command(f'STREAM FILE {outcome.prompt} ""')
            await agi.hangup()
