"""The durable call-log path on the real Redis: stream -> consumer group -> call log, acknowledged
after the commit; pending entries replayed after a crash, taken over from a dead consumer, kept
through a database outage; a deposed bridge's late entries dropped."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.exceptions import ResponseError
from services import PG_URL
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tcp_proxy import TcpProxy

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.leader import BridgeKeys, LeaderLock, LeasePolicy, term_journal
from callcard.streams import CALL_LOG_GROUP, CallStreamWriter, FenceBook, StreamCallLog, stream_key
from crm_core.call_log import CallLogger
from crm_core.db import make_engine, make_sessionmaker
from crm_core.models import Call

K = CallEventKind
T0 = 1_795_394_611.0


def answered_call(linkedid: str, t: float = T0) -> list[CallEvent]:
    base: dict[str, Any] = {"linkedid": linkedid, "caller_num": "+73511234567", "queue": "sales"}
    agent = {"interface": "Local/101@agents", "member_name": "op1"}
    return [CallEvent(K.OFFERED, at=t, **base), CallEvent(K.RINGING, at=t + 1, **base, **agent),
            CallEvent(K.ANSWERED, at=t + 3, wait_seconds=3, **base, **agent),
            CallEvent(K.ENDED, at=t + 9, outcome=Outcome.ANSWERED, talk_seconds=6, wait_seconds=3, **base)]


def table(sessions: sessionmaker[Session]) -> dict[str, tuple[Any, ...]]:
    with sessions() as s:
        return {c.linkedid: (c.status, c.outcome, c.wait_seconds, c.talk_seconds, c.agent_interface)
                for c in s.scalars(select(Call))}


async def until(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await _value(check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def prefix(redis: Any) -> AsyncIterator[str]:
    name = f"callcard-test-{uuid.uuid4().hex[:8]}:"
    yield name
    keys = [key async for key in redis.scan_iter(match=f"{name}*")]
    if keys:
        await redis.delete(*keys)


async def write(redis: Any, prefix: str, *batches: list[CallEvent]) -> None:
    """As the leading bridge does: each batch in one gated script, fenced."""
    lock = LeaderLock(redis, BridgeKeys.of(prefix, "127.0.0.1", 5038), LeasePolicy(ttl=5.0))
    term = await lock.try_acquire()
    assert term is not None
    journal = term_journal(CallStreamWriter(redis, stream_key(prefix), 10_000), lock, term)
    for batch in batches:
        await journal(batch)
    await lock.release(term)


async def pending(redis: Any, prefix: str) -> int:
    """Entries delivered and not acknowledged; -1 before the logger made its group."""
    try:
        return int((await redis.xpending(stream_key(prefix), CALL_LOG_GROUP))["pending"])
    except ResponseError:
        return -1


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if inspect.isawaitable(result) else result


async def no_pending(redis: Any, prefix: str) -> bool:
    return await pending(redis, prefix) == 0


class Running:
    """A StreamCallLog task, stopped at the end of the test."""

    def __init__(self, log: StreamCallLog) -> None:
        self.log = log
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(log.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)


async def test_calls_from_the_stream_are_logged_and_acknowledged(
    redis: Any, prefix: str, sessions: sessionmaker[Session]
) -> None:
    await write(redis, prefix, answered_call("a.1")[:2], answered_call("a.1")[2:] + answered_call("b.1"))
    running = Running(StreamCallLog(CallLogger(sessions), redis, stream_key(prefix), "w1"))
    try:
        async def logged() -> bool:
            return len([r for r in table(sessions).values() if r[0] == "ended"]) == 2 \
                and await pending(redis, prefix) == 0

        await until(logged, "both calls logged and acknowledged")
        assert table(sessions)["a.1"] == ("ended", "answered", 3, 6, "Local/101@agents")
        await asyncio.sleep(1.1)  # the lag is read once a second
        await write(redis, prefix, [CallEvent(K.OFFERED, "c.1", T0, caller_num="+73511234567")])
        await until(lambda: "c.1" in table(sessions), "the third call")
        assert REGISTRY.get_sample_value("callcard_stream_lag") == 0
    finally:
        await running.close()


async def test_a_crash_between_commit_and_ack_is_replayed_and_changes_nothing(
    redis: Any, prefix: str, sessions: sessionmaker[Session]
) -> None:
    events = answered_call("a.1") + answered_call("b.1", T0 + 5)
    await write(redis, prefix, events)
    log = StreamCallLog(CallLogger(sessions), redis, stream_key(prefix), "w1")
    await log._ensure_group()
    # the consumer reads and commits, then dies before XACK
    delivered = await redis.xreadgroup(CALL_LOG_GROUP, "w1", {stream_key(prefix): ">"})
    CallLogger(sessions).apply_batch([CallEvent.from_dict(json.loads(f[b"event"])) for _, f in delivered[0][1]])
    committed = table(sessions)
    assert await pending(redis, prefix) == len(events)

    running = Running(log)  # restarted under the same name: its pending entries first
    try:
        await until(lambda: no_pending(redis, prefix), "pending entries replayed and acknowledged")
        assert table(sessions) == committed
    finally:
        await running.close()


async def test_a_dead_consumers_pending_entries_are_taken_over(
    redis: Any, prefix: str, sessions: sessionmaker[Session]
) -> None:
    await write(redis, prefix, answered_call("a.1"))
    log = StreamCallLog(CallLogger(sessions), redis, stream_key(prefix), "alive", claim_idle=0.3)
    await log._ensure_group()
    await redis.xreadgroup(CALL_LOG_GROUP, "dead", {stream_key(prefix): ">"})  # delivered, never stored
    running = Running(log)
    try:
        await until(lambda: no_pending(redis, prefix), "the dead consumer's entries claimed and stored")
        assert table(sessions)["a.1"][:2] == ("ended", "answered")
    finally:
        await running.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_database_outage_keeps_the_batch_pending_until_it_is_back(
    redis: Any, prefix: str, db_url: str, sessions: sessionmaker[Session]
) -> None:
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    engine = make_engine(db_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
    through_proxy = make_sessionmaker(engine)
    assert PG_URL in db_url
    running = Running(StreamCallLog(CallLogger(through_proxy), redis, stream_key(prefix), "w1"))
    try:
        await write(redis, prefix, answered_call("a.1"))
        await until(lambda: "a.1" in table(sessions), "the first call")
        await proxy.cut()
        await write(redis, prefix, answered_call("b.1"))
        await until(lambda: running.log.retries > 0, "a failed attempt")
        assert "b.1" not in table(sessions) and await pending(redis, prefix) == 4
        await asyncio.sleep(1.0)
        assert await pending(redis, prefix) == 4  # kept, not acknowledged, not dropped
        await proxy.restore()
        await until(lambda: no_pending(redis, prefix), "the batch stored once the database is back")
        assert table(sessions)["b.1"] == ("ended", "answered", 3, 6, "Local/101@agents")
    finally:
        await running.close()
        await proxy.close()
        engine.dispose()


async def test_entries_a_deposed_bridge_wrote_late_are_dropped(
    redis: Any, prefix: str, sessions: sessionmaker[Session]
) -> None:
    key = stream_key(prefix)

    async def entry(fence: int, event: CallEvent) -> None:  # as a writer that skipped the lock's check
        await redis.xadd(key, {"pbx": "127.0.0.1:5038", "fence": fence, "event": json.dumps(event.to_dict())})

    for event in answered_call("old.1"):
        await entry(1, event)
    for event in answered_call("new.1"):
        await entry(2, event)
    for event in answered_call("late.1"):
        await entry(1, event)
    running = Running(StreamCallLog(CallLogger(sessions), redis, key, "w1"))
    try:
        await until(lambda: no_pending(redis, prefix), "every entry acknowledged")
        assert sorted(table(sessions)) == ["new.1", "old.1"]
        assert running.log.stale == 4
    finally:
        await running.close()


def test_fence_book_admits_an_older_terms_entries_that_come_back_from_before_the_takeover() -> None:
    book = FenceBook()
    assert book.admit("pbx", 1, (100, 0))
    assert book.admit("pbx", 2, (200, 0))
    assert book.admit("pbx", 1, (150, 0))  # re-read pending / claimed: written before fence 2 began
    assert not book.admit("pbx", 1, (250, 0))  # written after fence 2 began: a deposed bridge's
    assert book.admit("other", 1, (300, 0))  # fences are per PBX
    assert book.admit("pbx", 3, (400, 0)) and not book.admit("pbx", 2, (401, 0))
