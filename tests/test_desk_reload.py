"""A desk that reconnects (page reload) gets its live calls back, also when the popper runs in
another process: with Redis the popper and the web app here use two separate bus clients."""

from __future__ import annotations

import asyncio
import time

from fastapi.testclient import TestClient
from test_desk_http import log_in, people  # noqa: F401  (fixture)

from agent_desk.app import create_app
from agent_desk.pops import DeskPopper
from ami_bridge.events import CallEvent, CallEventKind, Outcome
from callcard.bus import CALLS_TOPIC, MemoryBus, desk_topic
from callcard.settings import Settings

OP1 = "Local/101@agents"
MARK = {"type": "mark"}


def test_reloaded_desk_gets_the_ringing_then_the_talking_call_back(sessions, people, bus_pair) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    popper_bus, web_bus = bus_pair  # with Redis: the popper's process and the web worker's
    app = create_app(Settings(secret_key="s", default_language="ru"), sessions, web_bus)
    popper = DeskPopper(sessions, popper_bus, "RU")
    stop = asyncio.Event()
    with TestClient(app) as http:
        runner = http.portal.start_task_soon(popper.run, stop)
        time.sleep(0.3)  # the popper subscribes

        def event(kind: CallEventKind, **fields: object) -> None:
            message = CallEvent(kind=kind, linkedid="1700000000.7", at=1700000000.0, caller_num="83517654321",
                                queue="sales", interface=OP1, **fields).to_dict()  # type: ignore[arg-type]
            http.portal.call(popper_bus.publish, CALLS_TOPIC, message)

        def settled(*fields: str) -> None:
            """Wait until op1's kept live calls are exactly `fields`."""
            key = f"live.{desk_topic(people['op1'])}"
            deadline = time.monotonic() + 5
            while set(http.portal.call(web_bus.kept, key)) != set(fields):
                assert time.monotonic() < deadline, f"live calls never became {fields}"
                time.sleep(0.02)

        def reconnect(login: str = "op1") -> list[dict]:  # type: ignore[type-arg]
            """Open the desk socket; everything it sends before MARK (published on the topic)."""
            with http.websocket_connect("/ws/desk") as socket:
                assert socket.receive_json()["type"] == "hello"  # subscribed by now
                http.portal.call(web_bus.publish, desk_topic(people[login]), MARK)
                got = []
                while (message := socket.receive_json()) != MARK:
                    got.append(message)
                return got

        log_in(http, "op1")
        event(CallEventKind.RINGING)
        settled("1700000000.7:pop")
        (pop,) = reconnect()
        assert (pop["type"], pop["linkedid"], pop["replayed"]) == ("pop", "1700000000.7", True)
        assert [m["name"] for m in pop["card"]["matches"]] == ["Иван Петров"]

        event(CallEventKind.ANSWERED, wait_seconds=3)
        settled("1700000000.7:pop", "1700000000.7:state")
        pop, state = reconnect()
        assert (pop["type"], state["type"], state["state"], state["mine"], state["at"]) == (
            "pop", "call_state", "answered", True, 1700000000.0)

        http.cookies.clear()
        log_in(http, "op2")
        assert reconnect("op2") == [], "another operator's desk replays nothing"
        http.cookies.clear()
        log_in(http, "op1")

        event(CallEventKind.ENDED, outcome=Outcome.ANSWERED, talk_seconds=40)
        settled()
        assert reconnect() == [], "an ended call is not live any more"
        http.portal.call(stop.set)  # on the app's loop: asyncio.Event is not thread-safe
        runner.result(5)
        http.portal.call(popper_bus.close)
        if web_bus is not popper_bus:
            http.portal.call(web_bus.close)


async def test_ring_stopped_or_answered_elsewhere_forgets_the_call_on_that_desk(sessions, people) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    bus = MemoryBus()
    popper = DeskPopper(sessions, bus, "RU")
    stop = asyncio.Event()
    runner = asyncio.create_task(popper.run(stop))
    await asyncio.sleep(0.05)
    for kind, interface in [(CallEventKind.RINGING, OP1), (CallEventKind.RINGING, "Local/102@agents"),
                            (CallEventKind.ANSWERED, "Local/102@agents")]:
        await bus.publish(CALLS_TOPIC, CallEvent(kind=kind, linkedid="9.1", at=1.0, caller_num="83517654321",
                                                 interface=interface).to_dict())
    await asyncio.sleep(0.2)
    stop.set()
    await runner
    assert await bus.kept(f"live.{desk_topic(people['op1'])}") == {}
    assert set(await bus.kept(f"live.{desk_topic(people['op2'])}")) == {"9.1:pop", "9.1:state"}
