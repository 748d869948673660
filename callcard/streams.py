"""The durable call-event path: the leading bridge -> a Redis Stream -> the call logger's group.

Pub/sub (callcard.bus) loses what nobody is subscribed to when it is published: fine for desk pops
and the wall, which a restart refreshes, not for the call log. So the leading bridge also appends
every CallEvent to one stream (`<prefix>calls.stream`, trimmed to about `call_stream_maxlen`
entries), each entry stamped with its PBX and the term's fencing token, in a script that first
checks the bridge still holds its lock (ami_bridge.leader). The call logger reads the stream in
the consumer group `call-log`, stores a batch in one transaction and acknowledges it only after
the commit. A logger that restarts first re-reads its own pending entries, and takes over those
another consumer left pending too long; re-applying a committed batch changes nothing, since the
call log merges by Linkedid.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError, ResponseError

from ami_bridge.events import CallEvent
from callcard.metrics import STREAM_LAG
from callcard.waits import wait_any

if TYPE_CHECKING:
    from callcard.bus import Bus
    from callcard.settings import Settings
    from crm_core.call_log import CallLogger

log = logging.getLogger(__name__)

CALL_STREAM = "calls.stream"
CALL_LOG_GROUP = "call-log"
READ_COUNT = 200  # entries per batch: one transaction, as the pub/sub logger's MAX_BATCH
READ_BLOCK_MS = 500  # how long a read waits for new entries (and so how soon `stop` is seen)
CLAIM_IDLE = 30.0  # seconds after which another consumer's pending entries are taken over
LAG_EVERY = 1.0  # seconds between stream-lag readings for /metrics
MAX_RETRY_DELAY = 5.0

# Appends a batch only while the lock holds the writer's token; keeps the PBX's open calls
# (Linkedid -> last event) so the next leader can end those that ended while nobody led.
_APPEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 5, #ARGV, 3 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'pbx', ARGV[3], 'fence', ARGV[2], 'event', ARGV[i + 2])
  if ARGV[i] == 'ended' then
    redis.call('HDEL', KEYS[3], ARGV[i + 1])
  else
    redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
  end
end
return (#ARGV - 4) / 3
"""


def stream_key(prefix: str) -> str:
    return prefix + CALL_STREAM


def redis_client(url: str) -> Any:
    """A client of its own for the stream and the lock (pub/sub connections stay the bus's)."""
    import redis.asyncio as aioredis

    return aioredis.from_url(url, socket_connect_timeout=5, health_check_interval=10)


@dataclass(frozen=True)
class WriteGate:
    """A bridge's right to write: its lock still holds `token` (checked in the same script as the
    write); entries carry its PBX and the term's `fence`."""

    pbx: str
    lock_key: str
    open_key: str
    token: str
    fence: int


class CallStreamWriter:
    """The bridge's side: append CallEvents, read back the calls left open."""

    def __init__(self, redis: Any, key: str, maxlen: int) -> None:
        self._redis = redis
        self.key = key
        self._maxlen = maxlen
        self._append = redis.register_script(_APPEND)

    async def append(self, events: Sequence[CallEvent], gate: WriteGate) -> bool:
        """Write `events` in order; False (nothing written) if the lock no longer holds our token."""
        args: list[Any] = [gate.token, gate.fence, gate.pbx, self._maxlen]
        for event in events:
            args += [event.kind.value, event.linkedid, json.dumps(event.to_dict(), ensure_ascii=False)]
        written = await self._append(keys=[gate.lock_key, self.key, gate.open_key], args=args)
        return int(written) >= 0

    async def open_calls(self, open_key: str) -> dict[str, CallEvent]:
        """Calls written as started and not yet as ended: Linkedid -> the last event written."""
        calls = {}
        for linkedid, raw in (await self._redis.hgetall(open_key)).items():
            try:
                calls[linkedid.decode()] = CallEvent.from_dict(json.loads(raw))
            except (KeyError, TypeError, ValueError) as exc:
                log.error("call stream: unreadable open call %r dropped: %s", linkedid, exc)
        return calls


def _entry_id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class FenceBook:
    """Which entries a deposed bridge wrote late: per PBX, the first stream position of each fence.

    An entry is stale when a higher fence of its PBX appeared earlier in the stream. Entries of an
    older term that come back later (a pending entry re-read, one claimed from a dead consumer) sit
    before the newer term's first entry, so they still count.
    """

    first_seen: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)
    keep: int = 64  # fences remembered per PBX (one per takeover)

    def admit(self, pbx: str, fence: int, entry_id: tuple[int, int]) -> bool:
        fences = self.first_seen.setdefault(pbx, {})
        if any(f > fence and at < entry_id for f, at in fences.items()):
            return False
        if fence not in fences or entry_id < fences[fence]:
            fences[fence] = entry_id
            if len(fences) > self.keep:
                del fences[min(fences)]
        return True


@dataclass(frozen=True)
class Entry:
    id: bytes
    pbx: str
    fence: int
    event: CallEvent | None  # None: unreadable, acknowledged and logged


def decode_entry(entry_id: bytes, fields: dict[bytes, bytes] | None) -> Entry:
    """One stream entry; a trimmed or unreadable one has no event."""
    if not fields:
        return Entry(entry_id, "", 0, None)
    try:
        pbx = fields.get(b"pbx", b"").decode()
        fence = int(fields.get(b"fence", b"0"))
        return Entry(entry_id, pbx, fence, CallEvent.from_dict(json.loads(fields[b"event"])))
    except (KeyError, TypeError, ValueError) as exc:
        log.error("call stream: entry %s unreadable, dropped: %s", entry_id.decode(errors="replace"), exc)
        return Entry(entry_id, "", 0, None)


class StreamCallLog:
    """The call logger fed from the stream: apply, commit, then acknowledge."""

    def __init__(self, logger: CallLogger, redis: Any, key: str, consumer: str, *,
                 group: str = CALL_LOG_GROUP, claim_idle: float = CLAIM_IDLE) -> None:
        self._logger = logger
        self._redis = redis
        self.key = key
        self.group = group
        self.consumer = consumer
        self._claim_idle = claim_idle
        self.fences = FenceBook()
        self.stale = 0  # entries dropped as written by a deposed bridge
        self.retries = 0  # batches tried again because the database was unavailable
        self._last_lag = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: first what this consumer left pending, then what others left too long,
        then new entries; a Redis outage is waited out, the pending entries read again after it."""
        delay = 0.1
        while not stop.is_set():
            try:
                await self._ensure_group()
                await self._recover(stop)
                await self._follow(stop)
            except (OSError, RedisError) as exc:
                log.warning("call stream: Redis unavailable (%s); retrying in %.1f s", exc, delay)
                await wait_any(delay, stop)
                delay = min(delay * 2, MAX_RETRY_DELAY)
            else:
                delay = 0.1

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _recover(self, stop: asyncio.Event) -> None:
        """This consumer's pending entries (a crash between commit and ack), then stale ones of others."""
        start = b"0"
        while not stop.is_set():
            reply = await self._redis.xreadgroup(self.group, self.consumer, {self.key: start}, count=READ_COUNT)
            entries = reply[0][1] if reply else []
            if not entries:
                break
            if not await self._store(entries, stop):
                return
            start = entries[-1][0]
        await self._claim(stop)

    async def _claim(self, stop: asyncio.Event) -> None:
        start: bytes | str = "0-0"
        idle_ms = int(self._claim_idle * 1000)
        while not stop.is_set():
            reply = await self._redis.xautoclaim(self.key, self.group, self.consumer, idle_ms, start,
                                                 count=READ_COUNT)
            start, entries = reply[0], reply[1]
            if entries:
                log.warning("call stream: took over %d entries another consumer left pending", len(entries))
                if not await self._store(entries, stop):
                    return
            if start in (b"0-0", "0-0"):
                return

    async def _follow(self, stop: asyncio.Event) -> None:
        next_claim = time.monotonic() + self._claim_idle
        while not stop.is_set():
            reply = await self._redis.xreadgroup(self.group, self.consumer, {self.key: ">"}, count=READ_COUNT,
                                                 block=READ_BLOCK_MS)
            if reply and reply[0][1]:
                if not await self._store(reply[0][1], stop):
                    return
            if time.monotonic() >= next_claim:
                next_claim = time.monotonic() + self._claim_idle
                await self._claim(stop)
            await self._measure_lag()

    async def _store(self, raw: list[tuple[bytes, dict[bytes, bytes] | None]], stop: asyncio.Event) -> bool:
        """Apply a batch until the database takes it, then acknowledge it; False if `stop` came first
        (nothing acknowledged: the entries stay pending for the next start)."""
        from crm_core.call_log import CallLogUnavailable

        entries = [decode_entry(entry_id, fields) for entry_id, fields in raw]
        events = []
        for entry in entries:
            if entry.event is None:
                continue
            if self.fences.admit(entry.pbx, entry.fence, _entry_id(entry.id)):
                events.append(entry.event)
            else:
                self.stale += 1
                log.error("call stream: dropped %s of call %s from %s: fence %d is older than its successor's",
                          entry.event.kind, entry.event.linkedid, entry.pbx, entry.fence)
        delay = 0.1
        while events:
            try:
                await asyncio.to_thread(self._logger.apply_batch, events)
                break
            except CallLogUnavailable as exc:
                self.retries += 1
                log.warning("call stream: database unavailable (%s); %d events kept, retrying in %.1f s",
                            exc.__cause__ or exc, len(events), delay)
                if await wait_any(delay, stop):
                    return False
                delay = min(delay * 2, MAX_RETRY_DELAY)
        await self._redis.xack(self.key, self.group, *(entry.id for entry in entries))
        return True

    async def _measure_lag(self) -> None:
        """Entries of the stream the group has not acknowledged: pending plus not yet delivered."""
        now = time.monotonic()
        if now - self._last_lag < LAG_EVERY:
            return
        self._last_lag = now
        for group in await self._redis.xinfo_groups(self.key):
            if group.get("name") in (self.group, self.group.encode()):
                STREAM_LAG.set((group.get("pending") or 0) + (group.get("lag") or 0))


def uses_stream(settings: Settings) -> bool:
    """The stream path is on whenever the bus is Redis; memory:// keeps the in-process pub/sub."""
    return settings.bus_url.startswith(("redis://", "rediss://", "unix://"))


async def run_call_log(logger: CallLogger, settings: Settings, bus: Bus, stop: asyncio.Event) -> None:
    """The call logger of a stack: from the stream on Redis, from pub/sub in one process."""
    if not uses_stream(settings):
        await logger.run(bus, stop)
        return
    redis = redis_client(settings.bus_url)
    consumer = settings.call_log_consumer or socket.gethostname()
    try:
        await StreamCallLog(logger, redis, stream_key(settings.bus_prefix), consumer).run(stop)
    finally:
        await redis.aclose()
