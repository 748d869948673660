"""Supervisor actions on agents: pause, queue membership, logout, listen/whisper/barge.

Every action goes through the one command door (the bridge's AMI client, `SupervisorDoor`),
is remembered in `crm_core.agents` when Asterisk accepted it, and is audited whatever
happened: `ok`, `refused` (not possible: no such agent, no phone, not on a call) or
`failed` (Asterisk said no, or could not be reached). Asterisk's error replies become
messages a supervisor can act on (`problem_of`), the raw reply stays in the audit details.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent_desk.i18n import translate
from ami_bridge.client import AmiCommands, AmiDisconnected, AmiError, AmiTimeout
from ami_bridge.tracker import normalize_interface
from crm_core import agents
from crm_core.audit import FAILED, OK, REFUSED, Actor, record
from crm_core.models import Call, Operator, utcnow

# ChanSpy options: q no beep/name announcement, w whisper to the spied channel, B barge (talk to
# both parties), E exit when the spied channel hangs up (the session ends with the call).
SPY_OPTIONS = {"listen": "qE", "whisper": "qwE", "barge": "qBE"}
MAX_REASON = 64  # agent_queues.pause_reason
NOT_THERE = "Unable to remove interface: Not there"
NOT_DYNAMIC = "Unable to remove interface: Not dynamic"
# Asterisk's reply texts (recorded in ../shared/ami-traces/queue_status.md) -> what to tell.
_AMI_PROBLEMS = {
    "Unable to add interface: Already there": "sup.err.already_there",
    NOT_THERE: "sup.err.not_there",
    NOT_DYNAMIC: "sup.err.not_dynamic",
    "Interface not found": "sup.err.interface_not_found",
    "Unable to add interface to queue: No such queue": "sup.err.no_such_queue",
    "Unable to remove interface from queue: No such queue": "sup.err.no_such_queue",
}


class SupervisorDoor(Protocol):
    """What supervisor actions need of the bridge: its AMI commands and ChanSpy."""

    @property
    def commands(self) -> AmiCommands: ...

    async def spy(self, supervisor_interface: str, target: str, options: str) -> str: ...


@dataclass
class ActionProblem(Exception):
    """The action was refused or failed; `key` and `values` say why in the supervisor's language."""

    status: int
    key: str
    values: dict[str, object] = field(default_factory=dict)

    def text(self, language: str) -> str:
        return translate(language, self.key, **self.values)


@dataclass(frozen=True)
class ActionDone:
    key: str
    values: dict[str, object]
    details: dict[str, Any]


def ami_reply(exc: AmiError) -> str:
    """Asterisk's own message out of `AMI <Action> failed: <message>`."""
    return str(exc).split(" failed: ", 1)[-1]


def problem_of(exc: Exception, values: dict[str, object]) -> ActionProblem:
    """A PBX error as a clear message: unreachable 503, a known reply its own text, else the reply as is."""
    if isinstance(exc, (AmiTimeout, AmiDisconnected)):
        return ActionProblem(503, "api.pbx_unavailable", values)
    reply = ami_reply(exc) if isinstance(exc, AmiError) else str(exc)
    return ActionProblem(502, _AMI_PROBLEMS.get(reply, "sup.err.pbx"), {**values, "error": reply})


def reason_ok(reason: str) -> bool:
    """A pause reason is one short line: Asterisk shows it as PausedReason, AMI forbids line breaks."""
    return len(reason) <= MAX_REASON and "\r" not in reason and "\n" not in reason


def spy_target(interface: str) -> str:
    """ChanSpy's channel prefix for an agent's device: `PJSIP/101-` (the dash keeps PJSIP/1010 out)."""
    return f"{normalize_interface(interface)}-"


@dataclass(frozen=True)
class _Agent:
    id: int
    login: str
    name: str
    interface: str


class SupervisorActions:
    """The actions, each audited; DB work runs in a worker thread, AMI on the loop."""

    def __init__(self, sessions: sessionmaker[Session], door: SupervisorDoor | None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._door = door
        self._clock = clock

    async def pause(self, actor: Actor, agent_id: int, paused: bool, queue: str | None, reason: str) -> ActionDone:
        name = "pause" if paused else "unpause"
        details: dict[str, Any] = {"queue": queue, "reason": reason if paused else ""}

        async def act(door: SupervisorDoor, agent: _Agent) -> ActionDone:
            if not reason_ok(reason):
                raise ActionProblem(422, "sup.err.bad_reason", {"agent": agent.name})
            await door.commands.queue_pause(agents.queue_interface(agent.interface), paused, queue,
                                            reason if paused else "")
            await self._remember(agent, lambda s, op, at: agents.record_pause(s, op, queue, paused, reason, at))
            key = ("sup.ok.paused" if paused else "sup.ok.unpaused") + ("_queue" if queue else "")
            return ActionDone(key, {"agent": agent.name, "queue": queue or "", "reason": reason}, details)

        return await self._run(actor, name, agent_id, details, act)

    async def add_member(self, actor: Actor, agent_id: int, queue: str, penalty: int) -> ActionDone:
        details: dict[str, Any] = {"queue": queue, "penalty": penalty}

        async def act(door: SupervisorDoor, agent: _Agent) -> ActionDone:
            interface = agents.queue_interface(agent.interface)
            details["interface"] = interface
            await door.commands.queue_add(queue, interface, member_name=agent.name,
                                          state_interface=normalize_interface(agent.interface), penalty=penalty)
            await self._remember(agent, lambda s, op, at: agents.record_added(s, op, queue, penalty, False, at))
            return ActionDone("sup.ok.added", {"agent": agent.name, "queue": queue}, details)

        return await self._run(actor, "queue_add", agent_id, details, act)

    async def remove_member(self, actor: Actor, agent_id: int, queue: str) -> ActionDone:
        details: dict[str, Any] = {"queue": queue}

        async def act(door: SupervisorDoor, agent: _Agent) -> ActionDone:
            await door.commands.queue_remove(queue, agents.queue_interface(agent.interface))
            await self._remember(agent, lambda s, op, at: agents.record_removed(s, op, queue, at))
            return ActionDone("sup.ok.removed", {"agent": agent.name, "queue": queue}, details)

        return await self._run(actor, "queue_remove", agent_id, details, act)

    async def logout(self, actor: Actor, agent_id: int, former_interface: str | None = None) -> ActionDone:
        """Remove the agent from every queue callcard knows them in; "Not there" counts as done.
        A static member (queues.conf) cannot be removed over AMI, so they are paused there with
        reason "logged out" instead; any other refusal is reported and the agent stays logged in.
        `former_interface`: the phone of an account just deactivated (which frees it), so that
        someone who has left is not rung by their queues."""
        details: dict[str, Any] = {"removed": [], "paused": [], "refused": {}}

        async def act(door: SupervisorDoor, agent: _Agent) -> ActionDone:
            interface = agents.queue_interface(agent.interface)
            queues = await self._remember(agent, lambda s, op, at: agents.current_queues(s, op, at))
            for queue in queues:
                try:
                    await door.commands.queue_remove(queue, interface)
                except AmiError as exc:
                    if isinstance(exc, AmiTimeout):
                        raise
                    if ami_reply(exc) == NOT_DYNAMIC:
                        await self._pause_logged_out(door, agent, interface, queue)
                        details["paused"].append(queue)
                        continue
                    if ami_reply(exc) != NOT_THERE:
                        details["refused"][queue] = ami_reply(exc)
                        continue
                details["removed"].append(queue)
                await self._remember(agent, lambda s, op, at, q=queue: agents.record_removed(s, op, q, at))
            values = {"agent": agent.name, "queues": ", ".join(details["paused"])}
            if details["refused"]:
                first, reply = next(iter(details["refused"].items()))
                raise problem_of(AmiError(f"AMI QueueRemove failed: {reply}"), {**values, "queue": first})
            await self._remember(agent, agents.record_logged_out)
            return ActionDone("sup.ok.logged_out_paused" if details["paused"] else "sup.ok.logged_out",
                              values, details)

        return await self._run(actor, "logout", agent_id, details, act, former_interface)

    async def _pause_logged_out(self, door: SupervisorDoor, agent: _Agent, interface: str, queue: str) -> None:
        await door.commands.queue_pause(interface, True, queue, agents.LOGGED_OUT)
        await self._remember(agent, lambda s, op, at: agents.record_pause(s, op, queue, True, agents.LOGGED_OUT, at))

    async def spy(self, actor: Actor, agent_id: int, mode: str, supervisor_interface: str | None) -> ActionDone:
        options = SPY_OPTIONS[mode]
        details: dict[str, Any] = {"mode": mode, "options": options}

        async def act(door: SupervisorDoor, agent: _Agent) -> ActionDone:
            values = {"agent": agent.name}
            if not supervisor_interface:
                raise ActionProblem(409, "api.no_interface", values)
            if not await asyncio.to_thread(self._on_call, agent.id):
                raise ActionProblem(409, "sup.err.not_on_call", values)
            target = spy_target(agent.interface)
            details.update(supervisor_interface=supervisor_interface, target=target)
            details["action_id"] = await door.spy(supervisor_interface, target, options)
            return ActionDone(f"sup.ok.{mode}", values, details)

        return await self._run(actor, mode, agent_id, details, act)

    # --- the common path ------------------------------------------------------------

    async def _run(self, actor: Actor, action: str, agent_id: int, details: dict[str, Any],
                   act: Callable[[SupervisorDoor, _Agent], Any], former_interface: str | None = None) -> ActionDone:
        target, name = str(agent_id), str(agent_id)
        try:
            agent = await asyncio.to_thread(self._agent, agent_id, former_interface)
            target, name = agent.login, agent.name
            if self._door is None:
                raise ActionProblem(503, "sup.err.no_pbx", {"agent": agent.name})
            done: ActionDone = await act(self._door, agent)
        except ActionProblem as problem:
            outcome = FAILED if problem.status >= 500 else REFUSED
            await self._audit(actor, action, target, {**details, **problem.values}, outcome, problem.text("en"))
            raise
        except (AmiError, AmiDisconnected) as exc:
            problem = problem_of(exc, {"agent": name, "queue": details.get("queue") or ""})
            await self._audit(actor, action, target, {**details, "ami_error": str(exc)}, FAILED, problem.text("en"))
            raise problem from None
        await self._audit(actor, action, target, details, OK)
        return done

    def _agent(self, agent_id: int, former_interface: str | None = None) -> _Agent:
        with self._sessions() as session:
            row = session.get(Operator, agent_id)
            if row is None or not (row.active or former_interface):
                raise ActionProblem(404, "api.not_found")
            interface = former_interface or row.interface
            if not interface:
                raise ActionProblem(409, "sup.err.agent_no_interface", {"agent": row.name})
            return _Agent(row.id, row.login, row.name, interface)

    def _on_call(self, agent_id: int) -> bool:
        with self._sessions() as session:
            return session.scalar(
                select(Call.id).where(Call.operator_id == agent_id, Call.status == "talking").limit(1)
            ) is not None

    async def _remember(self, agent: _Agent, change: Callable[[Session, Operator, datetime], Any]) -> Any:
        def work() -> Any:
            with self._sessions.begin() as session:
                operator = session.get(Operator, agent.id)
                assert operator is not None
                return change(session, operator, self._clock())

        return await asyncio.to_thread(work)

    async def _audit(self, actor: Actor, action: str, target: str, details: dict[str, Any], outcome: str,
                     error: str = "") -> None:
        await asyncio.to_thread(record, self._sessions, actor, action, target, details, outcome, error,
                                self._clock())
