"""The event bus: publish a JSON-able dict on a topic, subscribe to topics.

Two backends chosen by URL: `memory://` (one process, the embedded default) and
`redis://host:port/db` (several processes). Per-operator delivery is a topic of its
own (`desk.<operator_id>`), so a desk subscribes to exactly its own messages and
nothing is broadcast and filtered.

Next to pub/sub each bus keeps a few current values by key and field (`keep`, `forget`,
`kept`): what a late subscriber needs to catch up, such as the calls live on one desk. Redis
keeps them in a hash that every process reads; memory:// in a dict. Entries expire after
their TTL, so a value whose owner died never lingers for ever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, Protocol

log = logging.getLogger(__name__)

CALLS_TOPIC = "calls"
QUEUES_TOPIC = "queues"  # QueueEvents from the bridge
WALL_TOPIC = "wall"  # the supervisor wall's snapshot, at most twice a second
WALL_KEY = "wall"  # kept store key (field "snapshot"): the latest wall for any worker


def desk_topic(operator_id: int) -> str:
    """The topic that carries one operator's pops and nobody else's."""
    return f"desk.{operator_id}"


class BusError(RuntimeError):
    """The bus URL is unusable or the backend is unreachable."""


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...
    async def get(self) -> dict[str, Any]: ...
    def get_nowait(self) -> dict[str, Any]: ...  # a message already received, else asyncio.QueueEmpty
    async def close(self) -> None: ...


class Bus(Protocol):
    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...
    async def subscribe(self, *topics: str) -> Subscription: ...
    async def keep(self, key: str, field: str, message: dict[str, Any], ttl: float) -> None: ...
    async def forget(self, key: str, *fields: str) -> None: ...
    async def kept(self, key: str) -> dict[str, dict[str, Any]]: ...
    async def close(self) -> None: ...


async def until_stopped(sub: Subscription, stop: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
    """The subscription's messages until `stop` is set: a consumer that waits for the next message
    still notices a stop at once, instead of only after one more message arrives."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            try:
                message = sub.get_nowait()  # a burst goes without a task and a wait per message (8x cheaper)
            except asyncio.QueueEmpty:
                getting = asyncio.ensure_future(sub.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    return
                message = getting.result()
            yield message
    finally:
        stopping.cancel()


def _unexpired(entries: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Kept entries are `{"until": epoch, "message": {...}}`; only live ones count."""
    now = time.time()
    return {f: e["message"] for f, e in entries.items() if e["until"] > now}


class _QueueSubscription:
    def __init__(self, bus: MemoryBus, topics: tuple[str, ...]) -> None:
        self._bus = bus
        self.topics = topics
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.queue.get()

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()

    def get_nowait(self) -> dict[str, Any]:
        return self.queue.get_nowait()

    async def close(self) -> None:
        self._bus._unsubscribe(self)


class MemoryBus:
    """In-process bus: each subscriber has its own queue; publish never blocks."""

    def __init__(self) -> None:
        self._subs: dict[str, set[_QueueSubscription]] = defaultdict(set)
        self._kept: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        for sub in self._subs.get(topic, ()):
            sub.queue.put_nowait(message)

    async def subscribe(self, *topics: str) -> _QueueSubscription:
        sub = _QueueSubscription(self, topics)
        for topic in topics:
            self._subs[topic].add(sub)
        return sub

    def _unsubscribe(self, sub: _QueueSubscription) -> None:
        for topic in sub.topics:
            subs = self._subs.get(topic)
            if subs is not None:
                subs.discard(sub)
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


class _RedisSubscription:
    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.get()

    async def get(self) -> dict[str, Any]:
        while True:
            msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if msg is None:
                continue
            try:
                return json.loads(msg["data"])
            except (ValueError, TypeError):
                log.error("bus: dropped undecodable message on %s", msg.get("channel"))

    def get_nowait(self) -> dict[str, Any]:
        raise asyncio.QueueEmpty  # what redis-py has read ahead is not reachable without awaiting

    async def close(self) -> None:
        await self._pubsub.aclose()


class RedisBus:
    """Redis pub/sub bus for several processes; messages are JSON."""

    def __init__(self, url: str, prefix: str = "callcard:") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url)
        self._prefix = prefix

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        await self._redis.publish(self._prefix + topic, json.dumps(message, ensure_ascii=False))

    async def subscribe(self, *topics: str) -> _RedisSubscription:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(*(self._prefix + t for t in topics))
        return _RedisSubscription(pubsub)

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
        await self._redis.aclose()


def make_bus(url: str, prefix: str = "callcard:") -> Bus:
    """Pick the backend from the URL scheme; `prefix` names Redis channels and keys."""
    if url in ("memory://", "memory", ""):
        return MemoryBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBus(url, prefix)
    raise BusError(f"unsupported bus URL {url!r}: use memory:// or redis://host:port/db")
