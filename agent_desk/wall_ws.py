"""`/ws/wall`: the supervisor wall's feed; the kept snapshot on connect, then every update.

Same role check as the page: an operator's socket is closed with 4403 before any data; a
department head's socket gets their departments' queues and agents only (`scoped_snapshot`,
made per socket: heads are few, the room's big screens share the one encoding).
One `WallFeed` per web worker holds the only subscription to the wall's topic: each snapshot is
decoded and encoded once, however many walls watch, and a slow browser skips to the newest
snapshot instead of queueing old ones. Each wall also hears its account's desk topic, where a new
password or a deactivation closes it (4401).

The snapshot is split (`split_snapshot`): every wall gets the per-queue figures with the
waiting callers (`wall`, a few KB), and only a wall that said `{"view": "table"}` over the
socket also gets the per-agent table (`wall_agents`, ~0.5 KB per agent), so a room of big-number
screens costs no per-agent bytes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from agent_desk.auth import supervised_queues
from agent_desk.wall_http import WALL_ROLES
from agent_desk.ws import CLOSE_UNAUTHENTICATED, accept_operator
from callcard.bus import WALL_TOPIC, Bus, desk_topic
from crm_core.pause_reasons import PAUSES_TOPIC
from routing.wall import kept_wall, scoped_snapshot

router = APIRouter()

VIEWS = ("big", "table")


def split_snapshot(snapshot: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(queues part for every wall, agents part for table views); pure."""
    queues = [{k: v for k, v in q.items() if k != "members"} for q in snapshot.get("queues", [])]
    big = {k: v for k, v in snapshot.items() if k != "agents"} | {"queues": queues}
    return big, {"type": "wall_agents", "at": snapshot.get("at"), "agents": snapshot.get("agents", [])}


def requested_view(text: str) -> str | None:
    """The view a wall asks for (`{"view": "table"}`), None when the text is not such a request."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    view = message.get("view") if isinstance(message, dict) else None
    return view if view in VIEWS else None


class WallFeed:
    """The latest wall snapshot as two JSON texts (queues, agents); sockets wait on their own event."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.loop = asyncio.get_running_loop()
        self.snapshot: dict[str, Any] = {}
        self.text = ""
        self.agents_text = ""
        self.version = 0
        self.reasons_text = ""  # the last `pause_reasons` message: a change of names while walls are up
        self.reasons_version = 0
        self.watchers: set[asyncio.Event] = set()
        self._started = asyncio.Lock()
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe before reading the kept snapshot, so nothing newer is missed."""
        async with self._started:
            if self._pump is not None:
                return
            sub = await self.bus.subscribe(WALL_TOPIC, PAUSES_TOPIC)
            kept = await kept_wall(self.bus)
            if kept is not None:
                self._offer(kept)
            self._pump = asyncio.create_task(self._follow(sub), name="wall-feed")

    async def _follow(self, sub: Any) -> None:
        try:
            while True:
                message = await sub.get()
                if message.get("type") == "pause_reasons":
                    self._rename(message)
                else:
                    self._offer(message)
        finally:
            await sub.close()

    def texts(self, queues: frozenset[str] | None) -> tuple[str, str]:
        """(queues text, agents text) of the latest snapshot: shared, or scoped to a head's queues."""
        if queues is None:
            return self.text, self.agents_text
        big, detail = split_snapshot(scoped_snapshot(self.snapshot, queues))
        return json.dumps(big, ensure_ascii=False), json.dumps(detail, ensure_ascii=False)

    def _rename(self, message: dict[str, Any]) -> None:
        self.reasons_text = json.dumps(message, ensure_ascii=False)
        self.reasons_version += 1
        for watcher in self.watchers:
            watcher.set()

    def _offer(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot
        big, detail = split_snapshot(snapshot)
        self.text = json.dumps(big, ensure_ascii=False)
        self.agents_text = json.dumps(detail, ensure_ascii=False)
        self.version += 1
        for watcher in self.watchers:
            watcher.set()


async def wall_feed(websocket: WebSocket) -> WallFeed:
    """The worker's feed, made on first use (on this event loop)."""
    state = websocket.app.state
    feed: WallFeed | None = getattr(state, "wall_feed", None)
    if feed is None or feed.loop is not asyncio.get_running_loop():
        feed = state.wall_feed = WallFeed(websocket.app.state.desk.bus)
    await feed.start()
    return feed


@router.websocket("/ws/wall")
async def wall_socket(websocket: WebSocket) -> None:
    operator = await accept_operator(websocket, frozenset(WALL_ROLES))
    if operator is None:
        return
    scope = await asyncio.to_thread(supervised_queues, websocket.app.state.desk.sessions, operator)
    feed = await wall_feed(websocket)
    wake = asyncio.Event()
    view = {"name": "big", "agents_sent": 0}  # agents_sent: the version whose agents this wall has
    feed.watchers.add(wake)
    wake.set()

    async def send() -> None:
        """The newest queues text; the newest agents text too while the wall shows the table; the
        pause reasons when a supervisor changed them after the wall opened."""
        seen, reasons_seen = 0, feed.reasons_version
        while True:
            await wake.wait()
            wake.clear()
            if feed.reasons_version > reasons_seen:
                reasons_seen = feed.reasons_version
                await websocket.send_text(feed.reasons_text)
            version = feed.version
            if version == 0:
                continue
            text, agents_text = feed.texts(scope)
            if version > seen:
                seen = version
                await websocket.send_text(text)
            if view["name"] == "table" and version > view["agents_sent"]:
                view["agents_sent"] = version
                await websocket.send_text(agents_text)

    async def listen() -> None:
        """Reads until the browser goes away; `{"view": "big"|"table"}` switches what is sent."""
        while True:
            asked = requested_view(await websocket.receive_text())
            if asked is not None and asked != view["name"]:
                view["name"], view["agents_sent"] = asked, 0  # back to the table: send its agents again
                wake.set()

    async def signed_out() -> None:
        """A new password or a deactivation (pushed to the account's desk topic, as for its desks)
        ends a wall opened with the session before it."""
        async for message in account:
            if message.get("type") == "account" and message.get("stamp") != websocket.session.get("stamp"):
                await websocket.close(code=CLOSE_UNAUTHENTICATED)
                raise WebSocketDisconnect(CLOSE_UNAUTHENTICATED)

    async def until_gone(job: Any, scope: anyio.CancelScope) -> None:
        try:
            await job()
        except WebSocketDisconnect:
            scope.cancel()

    account = await websocket.app.state.desk.bus.subscribe(desk_topic(operator.id))
    try:
        async with anyio.create_task_group() as group:
            for job in (send, listen, signed_out):
                group.start_soon(until_gone, job, group.cancel_scope)
    finally:
        feed.watchers.discard(wake)
        with anyio.CancelScope(shield=True):
            await account.close()
