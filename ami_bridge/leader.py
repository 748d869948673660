"""Exactly one active bridge per Asterisk: a lease in Redis with a fencing token.

A bridge process waits as a standby until it holds the lease of its Asterisk (`host:port`), then
leads one *term*: it logs in to AMI, and writes every CallEvent to the call stream stamped with
the term's fencing token. Each write runs in one Lua script with a check that the lock still holds
the term's token, so a deposed bridge's late write never lands; the call logger also drops any
entry whose token is lower than one it saw earlier in the stream (`callcard.streams.FenceBook`).

Timing is counted from when a renewal was *sent* (Redis may have restarted the TTL any time after):
renew every ttl/3, and after ttl/2 without a renewal stop publishing and step down, well before the
key can expire and a standby take over. A standby tries every ttl/10, so after a leader dies
(kill -9) another leads within about ttl. The pure timing is `LeasePolicy` and `judge_renewal`;
`LeaderLock` is the Redis I/O; `run_leading` runs a Bridge term after term.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from callcard.streams import CallStreamWriter, WriteGate, redis_client, stream_key
from callcard.waits import wait_any

if TYPE_CHECKING:
    from ami_bridge.service import Bridge
    from callcard.settings import Settings

log = logging.getLogger(__name__)

# SET NX PX and the INCR of the fencing counter in one script: done apart, a bridge stalled between
# them could take a token higher than the one of a leader elected after its lock expired.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class NotLeading(RuntimeError):
    """This bridge's term is over: what it has not written yet is dropped (the next leader resyncs)."""


@dataclass(frozen=True)
class LeasePolicy:
    """When to renew and when to give up, for a lease of `ttl` seconds."""

    ttl: float

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    @property
    def hold_for(self) -> float:
        """How long after the last renewal was sent we may still publish."""
        return self.ttl / 2

    @property
    def poll_every(self) -> float:
        """How often a standby tries to take the lease."""
        return self.ttl / 10

    def renew_at(self, renewed_at: float) -> float:
        return renewed_at + self.renew_every

    def holds(self, renewed_at: float, now: float) -> bool:
        """Whether a leader whose last renewal was sent at `renewed_at` may still act at `now`."""
        return now - renewed_at < self.hold_for

    def time_left(self, renewed_at: float, now: float) -> float:
        return max(0.0, renewed_at + self.hold_for - now)


class Verdict(StrEnum):
    KEEP = "keep"  # renewed: lead on
    RETRY = "retry"  # no answer, but the lease still holds: try again soon
    STEP_DOWN = "step_down"  # the lock is someone else's (or gone), or it may expire soon


def judge_renewal(policy: LeasePolicy, renewed_at: float, now: float, answer: bool | None) -> Verdict:
    """`answer`: True renewed, False the lock no longer holds our token, None no answer (Redis down)."""
    if answer:
        return Verdict.KEEP
    if answer is None and policy.holds(renewed_at, now):
        return Verdict.RETRY
    return Verdict.STEP_DOWN


def takeover_endings(open_calls: dict[str, CallEvent], live: set[str], now: float) -> list[CallEvent]:
    """ENDED for every call the last leader wrote as open that Asterisk no longer has: it ended while
    no bridge was connected, so the end time is the takeover's. A caller last seen waiting in a
    queue hung up there (abandoned); otherwise the call log decides (answered if it was, else missed)."""
    return [
        replace(last, kind=CallEventKind.ENDED, at=now, wait_seconds=None, talk_seconds=None,
                outcome=Outcome.ABANDONED if _waiting_in_queue(last) else None)
        for linkedid, last in sorted(open_calls.items())
        if linkedid not in live
    ]


def _waiting_in_queue(last: CallEvent) -> bool:
    """An inbound caller in a queue with no answer yet (an answer would have set the wait time)."""
    waiting = (CallEventKind.OFFERED, CallEventKind.RINGING, CallEventKind.RING_STOPPED)
    return bool(last.queue) and last.direction == "inbound" and last.kind in waiting and last.wait_seconds is None


@dataclass
class Term:
    """One period of leadership: the lock's token, the fencing token, the last renewal sent."""

    token: str
    fence: int
    renewed_at: float
    over: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class BridgeKeys:
    """Redis keys of one Asterisk's bridges."""

    pbx: str  # host:port
    lock: str
    fence: str
    open_calls: str  # linkedid -> the last CallEvent written for calls not ended yet

    @classmethod
    def of(cls, prefix: str, host: str, port: int) -> BridgeKeys:
        base = f"{prefix}bridge:{host}:{port}:"
        return cls(f"{host}:{port}", base + "leader", base + "fence", base + "open")


class LeaderLock:
    """The lease in Redis: acquire, renew and release, each one script."""

    def __init__(self, redis: Any, keys: BridgeKeys, policy: LeasePolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._redis = redis
        self.keys = keys
        self.policy = policy
        self._clock = clock
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def gate(self, term: Term) -> WriteGate:
        return WriteGate(self.keys.pbx, self.keys.lock, self.keys.open_calls, term.token, term.fence)

    async def try_acquire(self) -> Term | None:
        token, sent = uuid.uuid4().hex, self._clock()
        fence = int(await self._acquire(keys=[self.keys.lock, self.keys.fence],
                                        args=[token, self._ttl_ms]))
        return Term(token, fence, sent) if fence else None

    async def acquire(self, stop: asyncio.Event) -> Term | None:
        """Wait until the lease is ours (None if `stop` is set first); Redis errors are retried."""
        failing = False
        while not stop.is_set():
            try:
                async with asyncio.timeout(self.policy.hold_for):
                    term = await self.try_acquire()
                if term is not None:
                    return term
                failing = False
            except (OSError, TimeoutError, RedisError) as exc:
                if not failing:
                    log.warning("leader lock %s: Redis unavailable (%s); retrying", self.keys.pbx, exc)
                failing = True
            await wait_any(self.policy.poll_every, stop)
        return None

    async def renew(self, term: Term) -> bool:
        return bool(await self._renew(keys=[self.keys.lock], args=[term.token, self._ttl_ms]))

    async def hold(self, term: Term, stop: asyncio.Event) -> bool:
        """Renew until `stop` (True) or until the term is lost (False; `term.over` is then set)."""
        policy = self.policy
        while True:
            if await wait_any(policy.renew_at(term.renewed_at) - self._clock(), stop, term.over):
                break
            sent = self._clock()
            answer: bool | None
            try:
                async with asyncio.timeout(max(0.01, policy.time_left(term.renewed_at, sent))):
                    answer = await self.renew(term)
            except (OSError, TimeoutError, RedisError) as exc:
                log.warning("leader lock %s: renewal got no answer (%s)", self.keys.pbx, exc)
                answer = None
            verdict = judge_renewal(policy, term.renewed_at, self._clock(), answer)
            if verdict is Verdict.KEEP:
                term.renewed_at = sent
            elif verdict is Verdict.STEP_DOWN:
                term.over.set()
            elif await wait_any(min(policy.poll_every, policy.time_left(term.renewed_at, self._clock())),
                                stop, term.over):
                break
        if term.over.is_set():
            log.error("leader lock %s: lease lost (fence %d); stepping down", self.keys.pbx, term.fence)
            return False
        return True

    async def release(self, term: Term) -> None:
        """Hand the lease over at once (a standby need not wait for it to expire)."""
        try:
            await self._release(keys=[self.keys.lock], args=[term.token])
        except (OSError, RedisError) as exc:
            log.warning("leader lock %s: not released (%s); it expires in %g s", self.keys.pbx, exc,
                        self.policy.ttl)

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.policy.ttl * 1000))




def term_journal(writer: CallStreamWriter, lock: LeaderLock, term: Term,
                 clock: Callable[[], float] = time.monotonic) -> Callable[[list[CallEvent]], Awaitable[None]]:
    """The bridge's journal for one term: write a batch to the stream, retrying while Redis is away
    and the lease holds; NotLeading once it no longer does (the batch is then the next leader's to
    recover from Asterisk)."""

    async def journal(events: list[CallEvent]) -> None:
        delay, failing = 0.05, False
        while not term.over.is_set() and lock.policy.holds(term.renewed_at, clock()):
            try:
                if await writer.append(events, lock.gate(term)):
                    return
                log.error("call stream: write refused, the lock of %s holds another token", lock.keys.pbx)
                term.over.set()
                break
            except (OSError, RedisError) as exc:
                if not failing:
                    log.warning("call stream: %d events not written yet (%s); retrying", len(events), exc)
                failing = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, lock.policy.poll_every)
        raise NotLeading(f"term {term.fence} of {lock.keys.pbx} is over")

    return journal


async def run_leading(bridge: Bridge, settings: Settings, stop: asyncio.Event,
                      while_leading: Callable[[asyncio.Event], Awaitable[None]] | None = None) -> None:
    """Run `bridge` only while this process leads its Asterisk, term after term, until `stop`.

    `while_leading(term_stop)` runs beside each term (the bridge's command door: a standby must not
    answer commands). At `stop` the term's last events are written before the lease is released.
    """
    redis = redis_client(settings.bus_url)
    keys = BridgeKeys.of(settings.bus_prefix, settings.ami_host, settings.ami_port)
    lock = LeaderLock(redis, keys, LeasePolicy(settings.leader_ttl))
    writer = CallStreamWriter(redis, stream_key(settings.bus_prefix), settings.call_stream_maxlen)
    try:
        while not stop.is_set():
            log.info("bridge for %s: standby, waiting for the lease", keys.pbx)
            term = await lock.acquire(stop)
            if term is None:
                return
            await _lead(bridge, lock, writer, term, stop, while_leading)
    finally:
        await redis.aclose()


async def _lead(bridge: Bridge, lock: LeaderLock, writer: CallStreamWriter, term: Term, stop: asyncio.Event,
                while_leading: Callable[[asyncio.Event], Awaitable[None]] | None) -> None:
    """One term: AMI session, journal and command door until `stop` or the lease is lost."""
    pbx = lock.keys.pbx
    log.info("bridge for %s: leading (fence %d)", pbx, term.fence)
    try:
        open_calls = await writer.open_calls(lock.keys.open_calls)
    except (OSError, RedisError) as exc:
        log.warning("bridge for %s: open calls unreadable (%s); none ended at takeover", pbx, exc)
        open_calls = {}
    bridge.begin_term(term_journal(writer, lock, term), open_calls)
    term_stop = asyncio.Event()
    running = asyncio.create_task(bridge.run(term_stop), name="ami-bridge-term")
    door = None
    if while_leading is not None:
        door = asyncio.create_task(_keep_running(while_leading, term_stop), name="bridge-term-door")
    holding = asyncio.create_task(lock.hold(term, stop))
    await asyncio.wait({holding, running}, return_when=asyncio.FIRST_COMPLETED)
    faulted = not holding.done()
    if faulted:  # the bridge stopped by itself: give a standby the lead rather than hold it idle
        log.error("bridge for %s: stopped unexpectedly (%r); giving up the lease", pbx,
                  running.exception() if not running.cancelled() else "cancelled")
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
    still_ours = faulted or holding.result()
    term_stop.set()
    await asyncio.gather(running, *([door] if door else []), return_exceptions=True)
    term.over.set()
    if still_ours:
        await lock.release(term)
    if faulted:
        await wait_any(lock.policy.ttl, stop)


async def _keep_running(part: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run `part` (the command door) until `stop`; restarted a second after a failure, such as its
    Redis connection dropping."""
    while not stop.is_set():
        try:
            await part(stop)
        except (OSError, RedisError) as exc:
            log.warning("bridge: command door lost Redis (%s); reopening it", exc)
            await wait_any(1.0, stop)
        except Exception:
            log.exception("bridge: command door failed; reopening it")
            await wait_any(1.0, stop)
