"""`/ws/desk`: forwards the logged-in operator's own bus topic to their browser.

The socket subscribes to exactly `desk_topic(operator.id)`; there is no shared feed to
filter, but for the queues' board (BOARD_TOPIC), which is the same for every desk. Right after
`hello` (with the server's clock, for the browser's timers) it replays the agent's status and the
board (`routing.wall`) and live calls (`live.py`), so a reload mid-call shows the same call. A
ping after PING_SECONDS of silence keeps proxies from closing an idle desk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from agent_desk import live
from agent_desk.auth import CurrentOperator, socket_operator
from callcard.bus import BOARD_TOPIC, Bus, Subscription, desk_topic
from callcard.metrics import POP_LATENCY, POPS_SENT
from routing.campaigns.manage import clear_ready
from routing.wall import kept_board, kept_desk_status

router = APIRouter()

DESK_PATH = "/ws/desk"
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


async def desk_socket(websocket: WebSocket) -> None:
    """The socket's own task reads; one more task alone writes (hello, the replay, messages,
    pings), so no send lock. Plain asyncio on a Starlette route: FastAPI's websocket route, an anyio
    task group of three and a lock cost ~18 kB more per desk."""
    operator = await accept_operator(websocket)
    if operator is None:
        return
    bus = websocket.app.state.desk.bus
    sub = await bus.subscribe(desk_topic(operator.id), BOARD_TOPIC)
    _open_desks[operator.id] += 1
    try:
        async with asyncio.TaskGroup() as group:  # the writer failing ends the reader, and the socket
            writer = group.create_task(_forward(websocket, bus, sub, operator.id))
            await _listen(websocket)
            writer.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await sub.close()
            _open_desks[operator.id] -= 1
            if _open_desks[operator.id] <= 0:
                del _open_desks[operator.id]
                await asyncio.to_thread(_not_ready, websocket.app.state.desk.sessions, operator.id)


router.add_websocket_route(DESK_PATH, desk_socket)  # served: `agent_desk.app.served` takes a shorter way here


async def _forward(websocket: WebSocket, bus: Bus, sub: Subscription, operator_id: int) -> None:
    """hello (`worker`: which web process serves this desk; `now`: the server's clock), the agent's
    status, the board and live calls read after subscribing, then every message; a ping after
    PING_SECONDS without one. Ends quietly when the browser has gone: the reader notices that too."""
    with contextlib.suppress(WebSocketDisconnect):
        await websocket.send_json({"type": "hello", "operator_id": operator_id, "worker": os.getpid(),
                                   "now": time.time()})
        if (status := await kept_desk_status(bus, operator_id)) is not None:
            await websocket.send_json({**status, "replayed": True})
        if (board := await kept_board(bus)) is not None:
            await websocket.send_json(board)
        for message in await live.live_messages(bus, desk_topic(operator_id)):
            await websocket.send_json(message)
        while True:
            try:
                async with asyncio.timeout(PING_SECONDS):
                    message = await sub.get()
            except TimeoutError:
                await websocket.send_json({"type": "ping"})
                continue
            await websocket.send_json(message)
            if message.get("type") == "pop":
                POPS_SENT.inc()
                if isinstance(at := message.get("at"), int | float):
                    POP_LATENCY.observe(max(0.0, time.time() - at))


async def _listen(websocket: WebSocket) -> None:
    """Reads until the browser goes away; incoming text is only the client's keepalive."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


def _not_ready(sessions: Any, operator_id: int) -> None:
    """The desk is gone: the dialler must not put a debtor through to a phone nobody watches."""
    with sessions.begin() as session:
        clear_ready(session, operator_id)
