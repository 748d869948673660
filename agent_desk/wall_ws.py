"""`/ws/wall`: the supervisor wall's feed; the kept snapshot on connect, then every update.

Same role check as the page: an operator's socket is closed with 4403 before any data.
One `WallFeed` per web worker holds the only bus subscription: each snapshot is decoded and
encoded once, however many walls watch, and a slow browser skips to the newest snapshot
instead of queueing old ones.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from agent_desk.auth import socket_operator
from agent_desk.wall_http import WALL_ROLES
from agent_desk.ws import CLOSE_FOREIGN_ORIGIN, CLOSE_UNAUTHENTICATED, _same_origin
from callcard.bus import WALL_TOPIC, Bus
from routing.wall import kept_wall

router = APIRouter()

CLOSE_FORBIDDEN = 4403


class WallFeed:
    """The latest wall snapshot as JSON text, and a way to wait for a newer one."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.loop = asyncio.get_running_loop()
        self.text = ""
        self.version = 0
        self._updated = asyncio.Event()
        self._started = asyncio.Lock()
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe before reading the kept snapshot, so nothing newer is missed."""
        async with self._started:
            if self._pump is not None:
                return
            sub = await self.bus.subscribe(WALL_TOPIC)
            kept = await kept_wall(self.bus)
            if kept is not None:
                self._offer(kept)
            self._pump = asyncio.create_task(self._follow(sub), name="wall-feed")

    async def _follow(self, sub: Any) -> None:
        try:
            while True:
                self._offer(await sub.get())
        finally:
            await sub.close()

    def _offer(self, snapshot: dict[str, Any]) -> None:
        self.text = json.dumps(snapshot, ensure_ascii=False)
        self.version += 1
        updated, self._updated = self._updated, asyncio.Event()
        updated.set()

    async def newer(self, seen: int) -> tuple[int, str]:
        while self.version <= seen:
            await self._updated.wait()
        return self.version, self.text


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
    await websocket.accept()
    if not _same_origin(websocket):
        await websocket.close(code=CLOSE_FOREIGN_ORIGIN)
        return
    operator = await asyncio.to_thread(socket_operator, websocket)
    if operator is None:
        await websocket.close(code=CLOSE_UNAUTHENTICATED)
        return
    if operator.role not in WALL_ROLES:
        await websocket.close(code=CLOSE_FORBIDDEN)
        return
    feed = await wall_feed(websocket)

    async def send() -> None:
        seen = 0
        while True:
            seen, text = await feed.newer(seen)
            await websocket.send_text(text)

    async def listen() -> None:
        """Reads until the browser goes away; incoming text is ignored."""
        while True:
            await websocket.receive_text()

    async def until_gone(job: Any, scope: anyio.CancelScope) -> None:
        try:
            await job()
        except WebSocketDisconnect:
            scope.cancel()

    async with anyio.create_task_group() as group:
        for job in (send, listen):
            group.start_soon(until_gone, job, group.cancel_scope)
