"""The bus delivers to exactly the subscribers of a topic, on both backends."""

from __future__ import annotations

import asyncio

import pytest

from callcard.bus import BusError, MemoryBus, RedisBus, Subscription, desk_topic, make_bus, until_stopped


async def _next(sub, timeout: float = 2.0):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(sub.get(), timeout)


async def test_message_reaches_only_its_topic(bus) -> None:  # type: ignore[no-untyped-def]
    a = await bus.subscribe(desk_topic(1))
    b = await bus.subscribe(desk_topic(2))
    await bus.publish(desk_topic(1), {"type": "pop", "n": 1})
    await bus.publish(desk_topic(2), {"type": "pop", "n": 2})
    assert await _next(a) == {"type": "pop", "n": 1}
    assert await _next(b) == {"type": "pop", "n": 2}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(a.get(), 0.2)
    await a.close()
    await b.close()


async def test_unicode_and_order_survive_the_bus(bus) -> None:  # type: ignore[no-untyped-def]
    sub = await bus.subscribe("calls")
    names = ["Иван Петров", "<script>alert(1)</script>", "ООО «Ромашка»"]
    for i, name in enumerate(names):
        await bus.publish("calls", {"i": i, "caller_name": name})
    got = [await _next(sub) for _ in names]
    assert [m["caller_name"] for m in got] == names
    await sub.close()


async def test_closed_subscription_stops_receiving() -> None:
    bus = MemoryBus()
    sub = await bus.subscribe("calls")
    await sub.close()
    await bus.publish("calls", {"x": 1})
    assert bus.subscriber_count("calls") == 0


def test_make_bus_picks_backend_by_url() -> None:
    assert isinstance(make_bus("memory://"), MemoryBus)
    assert isinstance(make_bus("redis://127.0.0.1:6379/0"), RedisBus)
    with pytest.raises(BusError, match="unsupported bus URL"):
        make_bus("amqp://localhost")


async def test_kept_values_are_per_key_forgettable_and_expire(bus) -> None:  # type: ignore[no-untyped-def]
    await bus.keep("live.desk.1", "a:pop", {"n": "Иван"}, ttl=60)
    await bus.keep("live.desk.1", "b:pop", {"n": 2}, ttl=0.01)
    await bus.keep("live.desk.2", "c:pop", {"n": 3}, ttl=60)
    await asyncio.sleep(0.05)
    assert await bus.kept("live.desk.1") == {"a:pop": {"n": "Иван"}}, "b expired"
    await bus.forget("live.desk.1", "a:pop", "never-kept")
    assert await bus.kept("live.desk.1") == {}
    assert await bus.kept("live.desk.2") == {"c:pop": {"n": 3}}


async def test_until_stopped_gives_a_burst_in_order_and_notices_a_stop_at_once(bus) -> None:  # type: ignore[no-untyped-def]
    sub = await bus.subscribe("calls")
    stop = asyncio.Event()
    got: list[int] = []

    async def consume() -> None:
        async for message in until_stopped(sub, stop):
            got.append(message["i"])
            if message["i"] == 99:
                stop.set()  # messages 100.. are already waiting: the consumer still stops here

    consumer = asyncio.create_task(consume())
    for i in range(150):
        await bus.publish("calls", {"i": i})
    await asyncio.wait_for(consumer, 5)
    assert got == list(range(100))

    stop.clear()
    waiting = asyncio.create_task(consume())  # takes the rest, then waits: a stop ends the wait
    await asyncio.sleep(0.2)
    assert got == list(range(150)) and not waiting.done()
    stop.set()
    await asyncio.wait_for(waiting, 2)
    await sub.close()


def consume(sub: Subscription, stop: asyncio.Event) -> tuple[asyncio.Task[None], list[int]]:
    """A consumer task that keeps each message's "i" until `stop`, and the list it keeps them in."""
    got: list[int] = []

    async def run() -> None:
        async for message in until_stopped(sub, stop):
            got.append(message["i"])

    return asyncio.create_task(run()), got


async def test_until_stopped_ends_a_wait_on_an_idle_subscription_and_leaves_it_usable(bus) -> None:  # type: ignore[no-untyped-def]
    sub = await bus.subscribe("calls")
    stop = asyncio.Event()
    consumer, got = consume(sub, stop)
    await bus.publish("calls", {"i": 1})
    await asyncio.sleep(0.05)  # the consumer waits on an empty subscription now
    stop.set()
    await asyncio.wait_for(consumer, 1)
    assert got == [1]
    await bus.publish("calls", {"i": 2})
    assert await asyncio.wait_for(sub.get(), 1) == {"i": 2}, "the stop was not left behind for a later get"
    await sub.close()


async def test_until_stopped_hands_a_message_over_in_one_turn_of_the_loop() -> None:
    """Each call event crosses two consumers on its way to a desk: every extra turn is latency."""
    bus = MemoryBus()
    sub = await bus.subscribe("calls")
    stop = asyncio.Event()
    consumer, got = consume(sub, stop)
    await asyncio.sleep(0.01)  # waiting on an empty subscription
    for i in range(3):
        await bus.publish("calls", {"i": i})
        await asyncio.sleep(0)  # one turn of the loop
        assert got == list(range(i + 1))
    stop.set()
    await asyncio.wait_for(consumer, 1)


async def test_memory_bus_delivers_to_subscribers_in_the_order_they_subscribed() -> None:
    """The desk popper subscribes first, so a call event wakes it before the logger and the wall."""
    bus = MemoryBus()
    subs = [await bus.subscribe("calls") for _ in range(20)]
    woken: list[int] = []
    waiters = [asyncio.create_task(sub.get()) for sub in subs]
    for i, waiter in enumerate(waiters):
        waiter.add_done_callback(lambda _, i=i: woken.append(i))
    await asyncio.sleep(0)
    await bus.publish("calls", {"n": 1})
    await asyncio.gather(*waiters)
    assert woken == list(range(20))
