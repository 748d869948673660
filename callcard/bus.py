"""The event bus: publish a JSON-able dict on a topic, subscribe to topics.

Two backends chosen by URL: `memory://` (one process, the embedded default) and
`redis://host:port/db` (several processes). Per-operator delivery is a topic of its
own (`desk.<operator_id>`), so a desk subscribes to exactly its own messages and
nothing is broadcast and filtered.

Next to pub/sub each bus keeps a few current values by key and field (`keep`, `forget`,
`kept`): what a late subscriber needs to catch up, such as the calls live on one desk. Redis
keeps them in a hash that every process reads; memory:// in a dict. Entries expire after
their TTL, so a value whose owner died never lingers for ever.

Every subscription of a process shares its bus's one Redis pub/sub connection (`_Listener`):
a web worker with 1,000 desks holds one connection, not 1,000 (each cost ~11 kB, a socket and a
slot of redis-py's pool of 100: the 101st desk of a worker failed with MaxConnectionsError).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

log = logging.getLogger(__name__)

CALLS_TOPIC = "calls"
QUEUES_TOPIC = "queues"  # QueueEvents from the bridge
WALL_TOPIC = "wall"  # the supervisor wall's snapshot, at most twice a second
WALL_KEY = "wall"  # kept store key (field "snapshot"): the latest wall for any worker
BOARD_TOPIC = "board"  # every desk's view of the queues (waiting callers, the longest wait), on change
BOARD_KEY = "board"  # kept store key (field "board"): the latest, for a desk that connects


def desk_topic(operator_id: int) -> str:
    """The topic that carries one operator's pops and nobody else's."""
    return f"desk.{operator_id}"


class BusError(RuntimeError):
    """The bus URL is unusable or the backend is unreachable."""


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...
    async def get(self) -> dict[str, Any]: ...
    def get_nowait(self) -> dict[str, Any]: ...  # a message already received, else asyncio.QueueEmpty
    def interrupt(self, exc: BaseException) -> None: ...  # a `get` waiting now raises `exc`
    async def close(self) -> None: ...


class Bus(Protocol):
    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...
    async def subscribe(self, *topics: str) -> Subscription: ...
    async def keep(self, key: str, field: str, message: dict[str, Any], ttl: float) -> None: ...
    async def forget(self, key: str, *fields: str) -> None: ...
    async def kept(self, key: str) -> dict[str, dict[str, Any]]: ...
    async def close(self) -> None: ...


class _Stopped(Exception):
    """Raised into a subscription's waiting `get` when its consumer is stopped (`until_stopped`)."""


async def until_stopped(sub: Subscription, stop: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
    """The subscription's messages until `stop` is set: a consumer that waits for the next message
    still notices a stop at once, instead of only after one more message arrives.

    The consumer awaits `get` itself, and a stop interrupts that wait: a message then wakes it in
    one turn of the event loop. A `get` task raced against the stop took three turns (its task,
    then `asyncio.wait`'s callback, then the consumer), and every call event crossed two of them
    on its way to a desk (bench/RESULTS.md, session 8).
    """
    def wake(_: object) -> None:
        sub.interrupt(_Stopped())

    stopping = asyncio.ensure_future(stop.wait())
    stopping.add_done_callback(wake)
    try:
        while not stop.is_set():
            try:
                message = sub.get_nowait()  # a burst goes without a wait per message
            except asyncio.QueueEmpty:
                try:
                    message = await sub.get()
                except _Stopped:
                    return
            yield message
    finally:
        stopping.remove_done_callback(wake)  # a consumer that left early may `get` again
        stopping.cancel()


def _unexpired(entries: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Kept entries are `{"until": epoch, "message": {...}}`; only live ones count."""
    now = time.time()
    return {f: e["message"] for f, e in entries.items() if e["until"] > now}


class _QueueSubscription:
    """One consumer's messages, queued by its bus. A deque and one waiter rather than an
    asyncio.Queue (~3.5 kB of deques and events each; a web worker holds one per desk). A failed
    Redis connection is queued after the messages already received, and every later `get` raises it."""

    def __init__(self, owner: MemoryBus | _Listener, topics: tuple[str, ...]) -> None:
        self._owner = owner
        self.topics = topics
        self._items: deque[dict[str, Any] | Exception] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: dict[str, Any] | Exception) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.get()

    async def get(self) -> dict[str, Any]:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:  # a get cancelled late must not orphan the next one's waiter
                    self._waiter = None
        return self.get_nowait()

    def interrupt(self, exc: BaseException) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def get_nowait(self) -> dict[str, Any]:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items[0]
        if isinstance(item, Exception):
            raise item
        self._items.popleft()
        return item

    async def close(self) -> None:
        await self._owner.unsubscribe(self)


class MemoryBus:
    """In-process bus: each subscriber has its own queue; publish never blocks."""

    def __init__(self) -> None:
        self._subs: dict[str, dict[_QueueSubscription, None]] = defaultdict(dict)  # in subscription order
        self._kept: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        for sub in self._subs.get(topic, ()):
            sub.put(message)

    async def subscribe(self, *topics: str) -> _QueueSubscription:
        sub = _QueueSubscription(self, topics)
        for topic in topics:
            self._subs[topic][sub] = None
        return sub

    async def unsubscribe(self, sub: _QueueSubscription) -> None:
        for topic in sub.topics:
            subs = self._subs.get(topic)
            if subs is not None:
                subs.pop(sub, None)
                if not subs:
                    del self._subs[topic]

    def subscriber_count(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))

    async def keep(self, key: str, field: str, message: dict[str, Any], ttl: float) -> None:
        self._kept[key][field] = {"until": time.time() + ttl, "message": message}

    async def forget(self, key: str, *fields: str) -> None:
        entries = self._kept.get(key, {})
        for field in fields:
            entries.pop(field, None)
        if not entries:
            self._kept.pop(key, None)

    async def kept(self, key: str) -> dict[str, dict[str, Any]]:
        return _unexpired(self._kept.get(key, {}))

    async def close(self) -> None:
        self._subs.clear()


class _Listener:
    """One pub/sub connection for every subscription of a RedisBus on one event loop.

    A channel is subscribed while any local subscriber wants it; `subscribe` returns once its
    SUBSCRIBE (or the one another subscriber decided on first) has been sent, as redis-py's own
    does. Each message is decoded once and queued to every subscriber of its channel. A failure
    beyond redis-py's retries (Redis gone) is every subscriber's: each `get` raises it, as its own
    connection's would, and the bus starts a new listener for later subscriptions.
    """

    def __init__(self, redis: Any, prefix: str) -> None:
        self.pubsub = redis.pubsub()
        self.loop = asyncio.get_running_loop()
        self.failed: Exception | None = None
        self._prefix = prefix
        self._subs: dict[str, set[_QueueSubscription]] = {}
        self._commands = asyncio.Lock()  # SUBSCRIBE/UNSUBSCRIBE leave in the order they were decided
        self._reader: asyncio.Task[None] | None = None

    async def subscribe(self, topics: tuple[str, ...]) -> _QueueSubscription:
        sub = _QueueSubscription(self, topics)
        channels = list(dict.fromkeys(self._prefix + t for t in topics))
        new = [c for c in channels if c not in self._subs]
        for channel in channels:
            self._subs.setdefault(channel, set()).add(sub)
        try:
            async with self._commands:
                if new and self.failed is None:
                    await self._send(self.pubsub.subscribe, new)
        except asyncio.CancelledError:
            self._drop(sub)
            raise
        if self.failed is not None:
            raise self.failed
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="bus-listener")
        return sub

    async def unsubscribe(self, sub: _QueueSubscription) -> None:
        gone = self._drop(sub)
        if gone:
            async with self._commands:
                if self.failed is None:
                    await self._send(self.pubsub.unsubscribe, gone)

    def _drop(self, sub: _QueueSubscription) -> list[str]:
        """Forget `sub`; the channels nobody here wants any more."""
        gone = []
        for channel in dict.fromkeys(self._prefix + t for t in sub.topics):
            subs = self._subs.get(channel)
            if subs is not None and sub in subs:
                subs.discard(sub)
                if not subs:
                    del self._subs[channel]
                    gone.append(channel)
        return gone

    async def _send(self, command: Any, channels: list[str]) -> None:
        try:
            await command(*channels)
        except Exception as exc:
            await self._fail(exc)

    async def _read(self) -> None:
        try:
            while True:
                msg = await self.pubsub.get_message(timeout=None)
                if msg is not None and msg["type"] == "message":
                    self._dispatch(msg["channel"].decode(), msg["data"])
        except Exception as exc:
            await self._fail(exc)

    def _dispatch(self, channel: str, data: bytes) -> None:
        subs = self._subs.get(channel)
        if not subs:
            return
        try:
            message = json.loads(data)
        except (ValueError, TypeError):
            log.error("bus: dropped undecodable message on %s", channel)
            return
        for sub in subs:
            sub.put(message)

    async def _fail(self, exc: Exception) -> None:
        if self.failed is not None:
            return
        self.failed = exc
        for sub in {sub for subs in self._subs.values() for sub in subs}:
            sub.put(exc)
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
        await self.pubsub.aclose()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.pubsub.aclose()


class RedisBus:
    """Redis pub/sub bus for several processes; messages are JSON."""

    def __init__(self, url: str, prefix: str = "callcard:") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url)
        self._prefix = prefix
        self._listener: _Listener | None = None

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        await self._redis.publish(self._prefix + topic, json.dumps(message, ensure_ascii=False))

    async def subscribe(self, *topics: str) -> _QueueSubscription:
        listener = self._listener
        if listener is None or listener.failed is not None or listener.loop is not asyncio.get_running_loop():
            listener = self._listener = _Listener(self._redis, self._prefix)
        return await listener.subscribe(topics)

    async def keep(self, key: str, field: str, message: dict[str, Any], ttl: float) -> None:
        """One hash per key; its TTL follows the newest entry, each entry carries its own expiry."""
        entry = json.dumps({"until": time.time() + ttl, "message": message}, ensure_ascii=False)
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.hset(self._prefix + key, field, entry).expire(self._prefix + key, max(1, int(ttl))).execute()

    async def forget(self, key: str, *fields: str) -> None:
        if fields:
            await self._redis.hdel(self._prefix + key, *fields)

    async def kept(self, key: str) -> dict[str, dict[str, Any]]:
        raw = await self._redis.hgetall(self._prefix + key)
        return _unexpired({f.decode(): json.loads(v) for f, v in raw.items()})

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self._redis.aclose()


def make_bus(url: str, prefix: str = "callcard:") -> Bus:
    """Pick the backend from the URL scheme; `prefix` names Redis channels and keys."""
    if url in ("memory://", "memory", ""):
        return MemoryBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBus(url, prefix)
    raise BusError(f"unsupported bus URL {url!r}: use memory:// or redis://host:port/db")
