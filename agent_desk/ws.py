"""`/ws/desk`: forwards the logged-in operator's own bus topic to their browser.

The socket subscribes to exactly `desk_topic(operator.id)`; there is no shared feed to
filter. Right after `hello` it replays the operator's live calls (`live.py`), so a reload
mid-call shows the same call. A ping every PING_SECONDS keeps proxies from closing an idle desk.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from agent_desk import live
from agent_desk.auth import CurrentOperator, socket_operator
from callcard.bus import desk_topic
from callcard.metrics import POP_LATENCY, POPS_SENT
from routing.campaigns.manage import clear_ready

router = APIRouter()

PING_SECONDS = 20.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FOREIGN_ORIGIN = 4403
CLOSE_FORBIDDEN = 4403
# Desks open per operator in this process: the last one closing takes them off every campaign.
_open_desks: Counter[int] = Counter()


def _same_origin(websocket: WebSocket) -> bool:
    """Browsers always send Origin on websockets; another site's page must not open our desk."""
    origin = websocket.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == websocket.headers.get("host")


async def accept_operator(websocket: WebSocket, roles: frozenset[str] | None = None) -> CurrentOperator | None:
    """Accept the socket and return its logged-in operator, or close it with the reason's code.

    Foreign origin and a wrong role close with 4403, no session with 4401; `roles=None` admits all.
    """
    await websocket.accept()
    if not _same_origin(websocket):
        await websocket.close(code=CLOSE_FOREIGN_ORIGIN)
        return None
    operator = await asyncio.to_thread(socket_operator, websocket)
    if operator is None:
        await websocket.close(code=CLOSE_UNAUTHENTICATED)
        return None
    if roles is not None and operator.role not in roles:
        await websocket.close(code=CLOSE_FORBIDDEN)
        return None
    return operator


@router.websocket("/ws/desk")
async def desk_socket(websocket: WebSocket) -> None:
    operator = await accept_operator(websocket)
    if operator is None:
        return
    bus = websocket.app.state.desk.bus
    sub = await bus.subscribe(desk_topic(operator.id))
    sending = anyio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with sending:
            await websocket.send_json(message)

    async def forward() -> None:
        # `worker`: which web process serves this desk (several uvicorn workers share the port)
        await send({"type": "hello", "operator_id": operator.id, "worker": os.getpid()})
        for message in await live.live_messages(bus, desk_topic(operator.id)):  # read after subscribing
            await send(message)
        while True:
            message = await sub.get()
            await send(message)
            if message.get("type") == "pop":
                POPS_SENT.inc()
                if isinstance(at := message.get("at"), int | float):
                    POP_LATENCY.observe(max(0.0, time.time() - at))

    async def ping() -> None:
        while True:
            await anyio.sleep(PING_SECONDS)
            await send({"type": "ping"})

    async def listen() -> None:
        """Reads until the browser goes away; incoming text is only the client's keepalive."""
        while True:
            await websocket.receive_text()

    async def until_gone(job: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
        """Whichever side notices the browser has gone first ends the other two."""
        try:
            await job()
        except WebSocketDisconnect:
            scope.cancel()

    _open_desks[operator.id] += 1
    try:
        async with anyio.create_task_group() as group:
            for job in (forward, ping, listen):
                group.start_soon(until_gone, job, group.cancel_scope)
    finally:
        with anyio.CancelScope(shield=True):
            await sub.close()
            _open_desks[operator.id] -= 1
            if _open_desks[operator.id] <= 0:
                del _open_desks[operator.id]
                await asyncio.to_thread(_not_ready, websocket.app.state.desk.sessions, operator.id)


def _not_ready(sessions: Any, operator_id: int) -> None:
    """The desk is gone: the dialler must not put a debtor through to a phone nobody watches."""
    with sessions.begin() as session:
        clear_ready(session, operator_id)
