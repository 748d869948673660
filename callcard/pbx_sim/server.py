"""The PBX simulator's edge: an asyncio TCP server speaking AMI, a clock, and the control API.

The bridge connects to it exactly as to Asterisk 22; tests and the demo drive callers and
operators through `place_call`, `set_agent`, `answer`, `hangup_agent`. All call logic is in
`model.Pbx`; this module only owns sockets, sessions and (scaled) time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from callcard.pbx_sim import messages as m
from callcard.pbx_sim import recorder
from callcard.pbx_sim.actions import run_action
from callcard.pbx_sim.agi import AgiLeg, key_script
from callcard.pbx_sim.fastagi import drive_agi
from callcard.pbx_sim.filters import EventFilters, FilterError
from callcard.pbx_sim.messages import Message
from callcard.pbx_sim.model import AgentBehaviour, Pbx, PbxConfig, Snapshot, default_config
from callcard.pbx_sim.wire import Request, RequestParser

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
PRE_LOGIN_ACTIONS = {"login", "logoff", "challenge"}


def parse_event_mask(value: str) -> frozenset[str] | None:
    """Login `Events:`: None = everything (`on`), empty = nothing (`off`), else the classes listed."""
    text = value.strip().lower()
    if text in {"", "on", "yes", "true", "1"}:
        return None
    if text in {"off", "no", "false", "0"}:
        return frozenset()
    classes = frozenset(part.strip() for part in text.split(","))
    return None if "all" in classes else classes


@dataclass(eq=False)
class Session:
    writer: asyncio.StreamWriter
    session_id: str
    local: str
    remote: str
    opened: float
    authenticated: bool = False
    mask: frozenset[str] | None = None
    filters: EventFilters = field(default_factory=EventFilters)
    closed: bool = False

    def wants(self, event_class: str | None) -> bool:
        return event_class is None or self.mask is None or event_class in self.mask

    def send(self, msg: Message) -> None:
        if not self.writer.is_closing():
            self.writer.write(m.encode(msg))

    def close(self) -> None:
        self.closed = True
        self.writer.close()


def _address(pair: object) -> str:
    host, port = pair[:2] if isinstance(pair, tuple) else ("0.0.0.0", 0)
    return f"IPV4/TCP/{host}/{port}"


class PbxSimulator:
    """A PBX that the AMI bridge cannot tell from the recorded Asterisk 22."""

    def __init__(self, config: PbxConfig | None = None, *, username: str = "crm",
                 secret: str = "crm-secret", agi_address: tuple[str, int] | None = None,
                 recordings: Path | None = None) -> None:
        self.config = config or default_config()
        self.time_scale = self.config.time_scale
        self.username, self.secret = username, secret
        self._epoch = time.time()
        self._mono = time.monotonic()
        self.pbx = Pbx(self.config, self._epoch)
        self.port = 0
        self._sessions: set[Session] = set()
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._ids = itertools.count(1)
        self._handlers: set[asyncio.Task[object]] = set()
        self.agi_address = agi_address  # where AGI(agi://host:port/ivr) connects for IVR=1 calls
        self._agi_sessions: set[asyncio.Task[None]] = set()
        self.recordings = recordings  # where answered calls leave their WAV files (None: nowhere)

    def now(self) -> float:
        """Simulated wall-clock time: it runs `time_scale` times faster than the real one."""
        return self._epoch + (time.monotonic() - self._mono) * self.time_scale

    # --- lifecycle --------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick(), name="pbx-sim-clock")

    async def stop(self) -> None:
        tasks = [*self._agi_sessions, *([self._ticker] if self._ticker is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            self.drop_connections()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    def drop_connections(self) -> None:
        """Abort every client socket (no Goodbye), as when Asterisk restarts."""
        for session in list(self._sessions):
            session.closed = True
            session.writer.transport.abort()

    async def _tick(self) -> None:
        """Play out timers (answers, ring timeouts, talk ends, patience) at their simulated times."""
        while True:
            self._wake.clear()
            self._broadcast(self.pbx.advance(self.now()))
            deadline = self.pbx.next_deadline()
            timeout = None if deadline is None else max(0.0, (deadline - self.now()) / self.time_scale)
            try:  # not wait_for, which in 3.11 can lose the cancel that stops the simulator
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    # --- control API ------------------------------------------------------------------

    def queue_names(self) -> list[str]:
        return list(self.pbx.queues)

    async def place_call(self, caller_num: str, caller_name: str = "", queue: str = "sales",
                         patience: float = 30.0, did: str = "",
                         variables: dict[str, str] | None = None, ivr: bool = False,
                         dtmf: str | Sequence[tuple[float, str]] = "") -> str:
        """An inbound caller, as the recorder's `Originate Local/s@inbound`; returns the Linkedid.

        With `ivr` (or IVR=1 in `variables`) and an `agi_address` the call runs the FastAGI IVR
        first; `dtmf` scripts the caller's keys: "12" presses one digit a second, a list of
        (seconds after the previous press, digits) sets the timing. `patience` also ends the
        call mid-menu."""
        if queue not in self.pbx.queues:
            raise ValueError(f"no queue {queue!r}; queues are {', '.join(self.pbx.queues)}")
        pairs = [("CALLER", caller_num), ("QUEUE", queue), *(variables or {}).items()]
        if did:
            pairs.append(("DID", did))
        if ivr:
            pairs.append(("IVR", "1"))
        linkedid = ""
        leg: AgiLeg | None = None

        def originate(now: float) -> list[Message]:
            nonlocal linkedid, leg
            if self.agi_address is not None and dict(pairs).get("IVR") == "1":
                host, port = self.agi_address
                leg = AgiLeg(f"agi://{host}:{port}/ivr", did, key_script(dtmf, now), now + patience,
                             140395214186176 + next(self._ids))
            call, events = self.pbx.originate_inbound(
                now, caller_num, caller_name, patience, pairs, f"pbx-sim-call-{next(self._ids)}",
                "Wait", f"{patience:g}", agi=leg)
            linkedid = call.linkedid
            return events

        self._apply(originate)
        if leg is not None and self.agi_address is not None:
            task = asyncio.create_task(drive_agi(self.pbx, self._apply, self.now, self.time_scale,
                                                 self.agi_address, linkedid, leg), name=f"agi-{linkedid}")
            self._agi_sessions.add(task)
            task.add_done_callback(self._agi_sessions.discard)
        return linkedid

    def set_agent(self, interface: str, answer_after: float | None, talk: float = 4.0) -> None:
        """How the operator behind `interface` behaves on the next rings (None: only `answer()`)."""
        self.pbx.agents[interface] = AgentBehaviour(answer_after, talk)

    async def answer(self, interface: str) -> None:
        self._apply(lambda now: self.pbx.answer(now, interface))

    async def hangup_agent(self, interface: str) -> None:
        self._apply(lambda now: self.pbx.hangup_agent(now, interface))

    def snapshot(self) -> Snapshot:
        self._apply(lambda now: [])
        return self.pbx.snapshot()

    def _apply(self, step: Callable[[float], list[Message]]) -> None:
        now = self.now()
        self._broadcast(self.pbx.advance(now))
        self._broadcast(step(now))
        self._wake.set()

    # --- AMI sessions -----------------------------------------------------------------

    def _broadcast(self, events: list[Message]) -> None:
        self._save_recordings()
        for event in events:
            event_class = m.privilege_class(event)
            data = text = None
            for session in self._sessions:
                if not session.authenticated or not session.wants(event_class) or session.writer.is_closing():
                    continue
                data = data or m.encode(event)
                if session.filters:
                    text = text or data.decode()
                    if not session.filters.passes(event[0][1], text):
                        continue
                session.writer.write(data)

    def _save_recordings(self) -> None:
        """Write the files of the calls that just ended, before their Hangup events go out."""
        if not self.pbx.recordings:
            return  # the usual case: no new list per broadcast
        done, self.pbx.recordings = self.pbx.recordings, []
        for recording in done if self.recordings is not None else ():
            try:
                recorder.write(self.recordings, recording)
            except (OSError, ValueError) as exc:  # a full disk, an odd ChannelId: the call goes on unrecorded
                log.warning("recording of %s not written: %s", recording.linkedid, exc)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer, f"0x{id(writer):x}", _address(writer.get_extra_info("sockname")),
                          _address(writer.get_extra_info("peername")), self.now())
        self._sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        writer.write(BANNER)
        parser = RequestParser()
        try:
            while not session.closed:
                data = await reader.read(4096)
                if not data:
                    break
                for req in parser.feed(data):
                    await self._handle(session, req)
                    if session.closed:
                        break
        except ConnectionError:
            log.debug("AMI client %s went away", session.remote)
        finally:
            self._sessions.discard(session)
            self._handlers.discard(task)
            writer.close()

    async def _handle(self, session: Session, req: Request) -> None:
        aid = req.get("ActionID") if req.has("ActionID") else None
        action = req.get("Action")
        if req.too_long:
            session.send(m.response("Error", aid, "Failed to parse message: line too long"))
            return
        if not action:
            session.send(m.response("Error", aid, "Missing action in request"))
            self._bad_format(session, "NONE")
            return
        name = action.lower()
        if not session.authenticated and name not in PRE_LOGIN_ACTIONS:
            session.send(m.response("Error", aid, "Permission denied"))
            return
        if name == "login":
            await self._login(session, req, aid)
            return
        if name == "filter":
            self._filter(session, req, aid)
            return
        if name == "logoff":
            session.send(m.response("Goodbye", aid, "Thanks for all the fish."))
            session.close()
            return
        now = self.now()
        self._broadcast(self.pbx.advance(now))
        outcome = run_action(self.pbx, now, req, aid)
        if outcome is None:
            session.send(m.response("Error", aid, f"Invalid/unknown command: {action}. "
                                                  "Use Action: ListCommands to show available commands."))
            self._bad_format(session, action)
            return
        if outcome.reply_after_events:
            self._broadcast(outcome.events)
        for reply in outcome.replies:
            session.send(reply)
        if not outcome.reply_after_events:
            self._broadcast(outcome.events)
        self._wake.set()

    def _filter(self, session: Session, req: Request, aid: str | None) -> None:
        """Action: Filter, for this session only (see `filters`)."""
        if req.get("Operation").lower() != "add":
            session.send(m.response("Error", aid, "Unknown operation"))
            return
        try:
            session.filters.add(req.get("MatchCriteria"), req.get("Filter"))
        except FilterError as exc:
            session.send(m.response("Error", aid, str(exc)))
            return
        session.send(m.response("Success", aid, "Success"))

    def _bad_format(self, session: Session, action: str) -> None:
        if session.authenticated:
            self._broadcast([m.request_bad_format(self.now(), self.username, session.session_id,
                                                  session.local, session.remote, action, session.opened)])

    async def _login(self, session: Session, req: Request, aid: str | None) -> None:
        if session.authenticated:
            session.send(m.response("Success", aid, "Already authenticated"))
            return
        user = req.get("Username")
        if user != self.username or req.get("Secret") != self.secret:
            self._broadcast([m.invalid_password(self.now(), user, session.session_id, session.local,
                                                session.remote)])
            await asyncio.sleep(self.config.auth_failure_delay / self.time_scale)
            session.send(m.response("Error", aid, "Authentication failed"))
            session.close()
            return
        session.authenticated = True
        session.mask = parse_event_mask(req.get("Events", "on"))
        session.send(m.response("Success", aid, "Authentication accepted"))
        if session.wants("system"):
            session.send(m.fully_booted(int(self.now() - self._epoch)))
        self._broadcast([m.successful_auth(self.now(), user, session.session_id, session.local,
                                           session.remote, session.opened)])
