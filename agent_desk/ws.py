"""`/ws/desk`: forwards the logged-in operator's own bus topic to their browser.

The socket subscribes to exactly `desk_topic(operator.id)`, to the centre's pause reasons
(PAUSES_TOPIC: a supervisor's change shows without a reload) and to the queues' board (BOARD_TOPIC),
which is one for every queue: each desk gets only its agent's queues' rows (`own_board`), by the
queues of the last status it sent, so an operator learns nothing of other departments' queues.
Right after `hello` (with the server's clock, for the browser's timers) it replays the agent's
status and the board (`routing.wall`) and live calls (`live.py`), so a reload mid-call shows the
same call. A ping after PING_SECONDS of silence keeps proxies from closing an idle desk.
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
from agent_desk.status_http import stored_status
from callcard.bus import BOARD_TOPIC, Bus, Subscription, desk_topic
from callcard.metrics import POP_LATENCY, POPS_SENT
from crm_core.pause_reasons import PAUSES_TOPIC
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
    sub = await bus.subscribe(desk_topic(operator.id), BOARD_TOPIC, PAUSES_TOPIC)
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


def own_board(board: dict[str, Any], queues: frozenset[str]) -> dict[str, Any]:
    """The board message with only the rows of the agent's queues."""
    rows = board.get("queues")
    return {**board, "queues": {q: row for q, row in rows.items() if q in queues} if isinstance(rows, dict) else {}}


def _queues_of(status: dict[str, Any] | None) -> frozenset[str]:
    return frozenset(status.get("queues") or ()) if status else frozenset()


async def _forward(websocket: WebSocket, bus: Bus, sub: Subscription, operator_id: int) -> None:
    """hello (`worker`: which web process serves this desk; `now`: the server's clock), the agent's
    status, their queues' board and live calls read after subscribing, then every message; a ping
    after PING_SECONDS without one. A status that changes the agent's queues brings their board
    again. Ends quietly when the browser has gone: the reader notices that too."""
    with contextlib.suppress(WebSocketDisconnect):
        await websocket.send_json({"type": "hello", "operator_id": operator_id, "worker": os.getpid(),
                                   "now": time.time()})
        if (status := await kept_desk_status(bus, operator_id)) is not None:
            await websocket.send_json({**status, "replayed": True})
        else:  # no live status kept (no wall service yet, or a day-old one): the page's stored one
            status = await asyncio.to_thread(_stored_status, websocket.app.state.desk.sessions, operator_id)
        queues = _queues_of(status)
        if (board := await kept_board(bus)) is not None:
            await websocket.send_json(own_board(board, queues))
        for message in await live.live_messages(bus, desk_topic(operator_id)):
            await websocket.send_json(message)
        while True:
            try:
                async with asyncio.timeout(PING_SECONDS):
                    message = await sub.get()
            except TimeoutError:
                await websocket.send_json({"type": "ping"})
                continue
            kind = message.get("type")
            if kind == "account":  # a new password, or the account left: a session opened before ends here
                if message.get("stamp") != websocket.session.get("stamp"):
                    await websocket.close(code=CLOSE_UNAUTHENTICATED)
                    return
                continue
            if kind == "board":
                board = message
                message = own_board(message, queues)
            await websocket.send_json(message)
            if kind == "status" and _queues_of(message) != queues:
                queues = _queues_of(message)
                if board is not None:
                    await websocket.send_json(own_board(board, queues))
            elif kind == "pop":
                POPS_SENT.inc()
                if isinstance(at := message.get("at"), int | float):
                    POP_LATENCY.observe(max(0.0, time.time() - at))


async def _listen(websocket: WebSocket) -> None:
    """Reads until the browser goes away; incoming text is only the client's keepalive."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


def _stored_status(sessions: Any, operator_id: int) -> dict[str, Any] | None:
    with sessions() as session:
        return stored_status(session, operator_id)


def _not_ready(sessions: Any, operator_id: int) -> None:
    """The desk is gone: the dialler must not put a debtor through to a phone nobody watches."""
    with sessions.begin() as session:
        clear_ready(session, operator_id)
