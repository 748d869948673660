"""The AMI client: panoramisk 1.4's Manager/AMIProtocol with its known faults worked around.

Workarounds, each covered by a test in tests/test_ami_client.py:
(a) panoramisk decodes every TCP chunk on its own and drops bytes it cannot decode ->
    `_Protocol.data_received` feeds our incremental `FrameParser`;
(b) an exception in an event callback propagates out of data_received and kills the
    connection -> `_Manager.dispatch` isolates and logs every callback;
(c) `Action.multi` raises KeyError 'async' on "successfully queued" replies (Originate,
    Atxfer without `Async`), and treats "Added interface to queue" as a list that never
    completes -> `_Action` decides list replies by `EventList` only;
(d) actions have no timeout and in-flight futures never resolve on disconnect -> every
    action times out with `AmiTimeout`, pending ones fail with `AmiDisconnected`;
(e) reconnect is a fixed delay with no resync -> `AmiClient.run` reconnects with
    exponential backoff and after each login hands CoreShowChannels and QueueStatus to
    `on_resync`; events that arrive meanwhile are held and dispatched after it, so no event
    reaches a callback before the snapshot it follows;
(f) a refused login is only a falsy flag -> `AmiLoginFailed` is logged and retried.
After each login the client asks Asterisk for the events its user reads and no others
(`event_filter`, AMI `Filter`): most of a call's frames (CEL, bridge and hold events, connected
line updates, hangup requests) are never sent, so never read and parsed either.
OriginateResponse carries the Originate's ActionID but is an event: it is dispatched as one.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from panoramisk import actions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager

from ami_bridge.frames import AmiMessage, FrameParser
from callcard.settings import Settings
from callcard.waits import wait_any

log = logging.getLogger(__name__)

EventCallback = Callable[[AmiMessage], object]
ResyncCallback = Callable[[list[AmiMessage], list[AmiMessage]], object]


class AmiError(RuntimeError):
    """Asterisk answered an action with `Response: Error`; the message says why."""


class AmiTimeout(AmiError):
    """No reply to an action within Settings.ami_action_timeout."""


class AmiDisconnected(ConnectionError):
    """The AMI connection is down, or went down before the action was answered."""


class AmiLoginFailed(AmiError):
    """Asterisk refused the username/secret."""


class AmiCommands(Protocol):
    """The one narrow door for commands to Asterisk."""

    async def originate(
        self,
        channel: str,
        *,
        context: str = "",
        exten: str = "",
        priority: int = 1,
        application: str = "",
        data: str = "",
        caller_id: str = "",
        variables: Mapping[str, str] | None = None,
        channel_id: str = "",
        timeout: float = 30.0,
    ) -> str: ...

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1) -> None: ...

    async def hangup(self, channel: str) -> None: ...

    async def queue_pause(
        self, interface: str, paused: bool, queue: str | None = None, reason: str = ""
    ) -> None: ...

    async def queue_add(
        self,
        queue: str,
        interface: str,
        *,
        member_name: str = "",
        state_interface: str = "",
        penalty: int = 0,
        paused: bool = False,
    ) -> None: ...

    async def queue_remove(self, queue: str, interface: str) -> None: ...


class _Action(actions.Action):
    """panoramisk's Action, but a reply is a list only when Asterisk says `EventList: start`."""

    @property
    def multi(self) -> bool:
        if self.as_list is not None:
            return bool(self.as_list)
        return self.responses[0].get("EventList").lower() == "start"

    @property
    def completed(self) -> bool:
        if not self.multi:
            return True
        last = self.responses[-1]
        return last.get("EventList").lower() == "complete" or (
            len(self.responses) > 1 and last.event.endswith("Complete")
        )


class _Protocol(AMIProtocol):
    """panoramisk's protocol with our parser, and honest failure of pending actions."""

    def __init__(self, manager: _Manager) -> None:
        self._manager = manager

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.factory = self._manager  # set before the first byte can arrive
        self.log = log
        self.parser = FrameParser()
        self.encoding = "utf-8"
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        for msg in self.parser.feed(data):
            self.handle_message(msg)

    def handle_message(self, msg: AmiMessage) -> None:  # type: ignore[override]
        action = None
        # Only a message naming an ActionID in flight can be a reply: others stay unsplit.
        if self.responses and msg.may_contain(self.responses) and msg.action_id and msg.event != "OriginateResponse":
            action = self.responses.get(msg.action_id)
        if action is not None:
            if action.add_message(msg):
                self.responses.pop(msg.action_id, None)
        elif msg.event:
            self.factory.dispatch(msg)
            if msg.event == "Shutdown":
                self.transport.close()
        else:
            log.debug("AMI: reply nobody waits for: %r", msg)

    def forget(self, action_id: str) -> None:
        self.responses.pop(action_id, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        pending = {id(a): a for a in self.responses.values()}.values()
        self.responses.clear()
        for action in pending:
            if not action.future.done():
                action.future.set_exception(
                    AmiDisconnected(f"AMI connection lost before {action['Action']} was answered")
                )
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()


class _Manager(Manager):
    """panoramisk's Manager kept for its event registry; dispatch never lets a callback escape."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        # panoramisk re-sends actions pending at disconnect after FullyBooted; ours fail instead.
        self.callbacks.clear()
        self.patterns.clear()
        self.held: list[AmiMessage] | None = None  # during a resync: events to dispatch after it

    def dispatch(self, event: AmiMessage) -> list[str]:  # type: ignore[override]
        if self.held is not None:
            self.held.append(event)
            return []
        matches = []
        name = event.event
        for pattern, regexp in self.patterns:
            if pattern != "*" and regexp.match(name) is None:
                continue
            matches.append(pattern)
            for callback in self.callbacks[pattern]:
                _call_isolated(callback, event)
        return matches


def _call_isolated(callback: Callable[..., object], *args: object) -> None:
    """Run a sync or async callback; its failure is logged, never propagated into the protocol."""
    try:
        result = callback(*args)
    except Exception:
        log.exception("AMI: callback %r failed; connection kept", callback)
        return
    if result is not None and inspect.isawaitable(result):
        task = asyncio.ensure_future(result)
        task.add_done_callback(_log_task_failure)


def _log_task_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("AMI: async callback failed; connection kept", exc_info=task.exception())


def _check_header_value(name: str, value: str) -> str:
    """Refuse CR/LF in a value: it would let caller-supplied text inject AMI headers."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"AMI header {name!r} must not contain line breaks")
    return value


class AmiClient:
    """Connects, logs in, keeps the session alive and resynchronises after every reconnect."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_resync: ResyncCallback | None = None,
        on_originate: Callable[[str, str], None] | None = None,
        event_filter: Collection[str] = (),
        min_backoff: float = 0.5,
        ping_interval: float = 10.0,
    ) -> None:
        self.settings = settings
        self.on_resync = on_resync
        self.on_originate = on_originate
        self.event_filter = frozenset(event_filter)  # event names; empty: every event of the Events mask
        self._filtering = bool(self.event_filter)  # False once Asterisk refused a filter
        self.min_backoff = min_backoff
        self.ping_interval = ping_interval
        self.connected = asyncio.Event()
        self.logins = 0
        self._past_parse_errors = 0
        self._manager = _Manager(
            host=settings.ami_host,
            port=settings.ami_port,
            username=settings.ami_username,
            secret=settings.ami_secret,
            events=settings.ami_events,
        )
        self._protocol: _Protocol | None = None

    @property
    def banner(self) -> str:
        return self._protocol.parser.banner if self._protocol else ""

    @property
    def parse_errors(self) -> int:
        """Parse problems over every connection so far (for /metrics)."""
        current = self._protocol.parser.errors if self._protocol else 0
        return self._past_parse_errors + current

    def register_event(self, pattern: str, callback: EventCallback) -> None:
        """Call `callback(msg)` for events whose name matches the glob `pattern` (`*` for all)."""
        self._manager.register_event(pattern, callback)

    # --- connection -----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set: reconnect with capped exponential backoff."""
        delay = self.min_backoff
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = self.min_backoff
            except AmiLoginFailed as exc:
                log.error(
                    "AMI login as %r on %s:%s refused (%s); check CALLCARD_AMI_USERNAME/SECRET. "
                    "Retrying in %.1f s",
                    self.settings.ami_username,
                    self.settings.ami_host,
                    self.settings.ami_port,
                    exc,
                    delay,
                )
            except (OSError, AmiError) as exc:
                log.warning(
                    "AMI %s:%s unavailable (%s); retrying in %.1f s",
                    self.settings.ami_host,
                    self.settings.ami_port,
                    exc,
                    delay,
                )
            except Exception:
                log.exception("AMI session failed unexpectedly; retrying in %.1f s", delay)
            finally:
                self._disconnect()
            if stop.is_set():
                break
            await wait_any(delay, stop)
            delay = min(delay * 2, self.settings.ami_reconnect_max)

    async def _session(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.settings.ami_action_timeout):
            _, protocol = await loop.create_connection(
                lambda: _Protocol(self._manager), self.settings.ami_host, self.settings.ami_port
            )
        self._protocol = protocol
        reply = await self.send_action(
            {
                "Action": "Login",
                "Username": self.settings.ami_username,
                "Secret": self.settings.ami_secret,
                "Events": self.settings.ami_events,
            },
            check=False,
        )
        if reply.response != "Success":
            raise AmiLoginFailed(reply.message or reply.response or "no reason given")
        self.logins += 1
        log.info("AMI logged in to %s:%s (%s)", self.settings.ami_host, self.settings.ami_port, self.banner)
        if self._filtering:
            await self._filter()
        await self._resync()
        self.connected.set()
        stopping = asyncio.ensure_future(stop.wait())
        pinging = asyncio.ensure_future(self._keepalive())
        try:
            await asyncio.wait({protocol.lost, stopping, pinging}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            pinging.cancel()
        if protocol.lost.done() and not stop.is_set():
            log.warning("AMI connection to %s:%s lost", self.settings.ami_host, self.settings.ami_port)

    async def _filter(self) -> None:
        """One include filter per event name (Asterisk 18.25, 20.10, 21.5, 22.0 and later, on a user
        with `write = system`). A refused filter turns filtering off for good, with a log line that says
        how to have it; when some were taken, the session starts over, since that whitelist would hide
        events. An older Asterisk ignores `MatchCriteria` and sees an empty regex: it refuses it or lets
        everything through, and either way no event is lost."""
        names = sorted(self.event_filter)
        replies = await asyncio.gather(*(
            self.send_action({"Action": "Filter", "Operation": "Add", "MatchCriteria": f"name({name})"}, check=False)
            for name in names))
        refused = [reply.message or reply.response for reply in replies if reply.response != "Success"]
        if not refused:
            return
        self._filtering = False
        log.warning("AMI: Asterisk refused the event filter (%s): reading every event of the Events mask. "
                    "Give the AMI user `write = system` in manager.conf to filter", refused[0])
        if len(refused) < len(names):
            raise AmiError("AMI: some event filters were taken and some refused; reconnecting without them")

    async def _resync(self) -> None:
        """The snapshot first, then what happened while it was taken: an AgentConnect or a Hangup
        that came before the lists must not reach the trackers ahead of the state it changes."""
        self._manager.held = []
        try:
            channels = await self.list_action({"Action": "CoreShowChannels"})
            queues = await self.list_action({"Action": "QueueStatus"})
            if self.on_resync is not None:
                _call_isolated(self.on_resync, channels, queues)
        finally:
            held, self._manager.held = self._manager.held, None
            for event in held:
                self._manager.dispatch(event)

    async def _keepalive(self) -> None:
        """Ping so a half-open TCP session is noticed; an unanswered Ping drops the connection."""
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self.send_action({"Action": "Ping"})
            except AmiTimeout:
                log.warning("AMI Ping unanswered; reconnecting")
                return

    def _disconnect(self) -> None:
        self.connected.clear()
        if self._protocol is not None:
            self._past_parse_errors += self._protocol.parser.errors
            self._protocol.close()
            self._protocol = None

    # --- actions --------------------------------------------------------------------

    async def _send(self, action: Mapping[str, str | list[str]]) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            raise AmiDisconnected("not connected to Asterisk")
        for name, value in action.items():
            for item in value if isinstance(value, list) else [value]:
                _check_header_value(name, item)
        act = _Action(dict(action))
        future = protocol.send(act, as_list=None)
        try:
            async with asyncio.timeout(self.settings.ami_action_timeout):
                return await future
        except TimeoutError:
            protocol.forget(act.action_id)
            raise AmiTimeout(
                f"AMI {act['Action']} (ActionID {act.action_id}) got no reply within "
                f"{self.settings.ami_action_timeout:g} s"
            ) from None

    async def send_action(self, action: Mapping[str, str | list[str]], *, check: bool = True) -> AmiMessage:
        """Send one action and return its reply; `Response: Error` raises AmiError unless check=False."""
        reply = await self._send(action)
        if isinstance(reply, list):
            reply = reply[0]
        if check and reply.response == "Error":
            raise AmiError(f"AMI {action.get('Action')} failed: {reply.message}")
        return reply

    async def list_action(self, action: Mapping[str, str | list[str]]) -> list[AmiMessage]:
        """Send a list action (EventList) and return its items, without the reply and `...Complete`."""
        reply = await self._send(action)
        if not isinstance(reply, list):
            if reply.response == "Error":
                raise AmiError(f"AMI {action.get('Action')} failed: {reply.message}")
            return []
        return [m for m in reply[1:] if m.get("EventList").lower() != "complete"]

    # --- AmiCommands ----------------------------------------------------------------

    async def originate(
        self,
        channel: str,
        *,
        context: str = "",
        exten: str = "",
        priority: int = 1,
        application: str = "",
        data: str = "",
        caller_id: str = "",
        variables: Mapping[str, str] | None = None,
        channel_id: str = "",
        timeout: float = 30.0,
    ) -> str:
        """Queue an async Originate; returns its ActionID. The outcome arrives as OriginateResponse."""
        channel_id = channel_id or f"callcard-{uuid.uuid4().hex}"
        action: dict[str, str | list[str]] = {
            "Action": "Originate",
            "ActionID": f"callcard-orig-{uuid.uuid4().hex[:12]}",
            "Channel": channel,
            "ChannelId": channel_id,
            "Timeout": str(int(timeout * 1000)),
            "Async": "true",
        }
        if application:
            action.update(Application=application, Data=data)
        else:
            action.update(Context=context, Exten=exten, Priority=str(priority))
        if caller_id:
            action["CallerID"] = caller_id
        if variables:
            action["Variable"] = [f"{k}={v}" for k, v in variables.items()]
        if self.on_originate is not None:
            self.on_originate(str(action["ActionID"]), channel_id)
        await self.send_action(action)
        return str(action["ActionID"])

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1) -> None:
        await self.send_action(
            {
                "Action": "Redirect",
                "Channel": channel,
                "Context": context,
                "Exten": exten,
                "Priority": str(priority),
            }
        )

    async def hangup(self, channel: str) -> None:
        await self.send_action({"Action": "Hangup", "Channel": channel})

    async def queue_pause(
        self, interface: str, paused: bool, queue: str | None = None, reason: str = ""
    ) -> None:
        """Pause in one queue, or in every queue of the interface when `queue` is None."""
        action = {"Action": "QueuePause", "Interface": interface, "Paused": "true" if paused else "false"}
        if queue:
            action["Queue"] = queue
        if reason:
            action["Reason"] = reason
        await self.send_action(action)

    async def queue_add(
        self,
        queue: str,
        interface: str,
        *,
        member_name: str = "",
        state_interface: str = "",
        penalty: int = 0,
        paused: bool = False,
    ) -> None:
        action = {
            "Action": "QueueAdd",
            "Queue": queue,
            "Interface": interface,
            "Penalty": str(penalty),
            "Paused": "true" if paused else "false",
        }
        if member_name:
            action["MemberName"] = member_name
        if state_interface:
            action["StateInterface"] = state_interface
        await self.send_action(action)

    async def queue_remove(self, queue: str, interface: str) -> None:
        await self.send_action({"Action": "QueueRemove", "Queue": queue, "Interface": interface})
