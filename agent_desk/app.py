"""The desk's FastAPI application: pages, REST API, the desk websocket and static files.

Everything it needs (settings, database sessions, the bus, the dialer) is passed in, so
the CLI, the tests and the end-to-end stack build the same app from the same parts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from agent_desk import (
    client_import_http,
    health,
    http,
    pages,
    pause_reasons_http,
    recordings_http,
    reviews_http,
    status_http,
    supervisor_http,
    users_http,
    wall_http,
    wall_ws,
    ws,
)
from agent_desk.auth import LoginRequired, csrf_token, load_operator, session_language
from agent_desk.headers import SecurityHeaders
from agent_desk.i18n import CATALOGS, LANGUAGES, label, translate
from agent_desk.supervisor import SupervisorDoor
from ami_bridge.remote import COMMAND_MARGIN, RemoteBridge
from callcard.bus import Bus, make_bus
from callcard.logs import configure_logging
from callcard.settings import Settings, require_shared_bus
from crm_core.db import make_engine, make_sessionmaker
from crm_core.phones import caller_id_name, format_phone, shown_number
from crm_core.regions import TIME_ZONES
from ivr import http as ivr_http
from routing import http as routing_http
from routing.campaigns import http as campaigns_http
from routing.campaigns import import_http as debt_import_http
from routing.inbox import http as inbox_http

STATIC_DIR = Path(__file__).resolve().parent.parent / "web_static"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class Dialer(Protocol):
    """The one door for click-to-call: ring the operator's phone, then dial the number."""

    async def click_to_call(self, operator_interface: str, number_e164: str) -> str: ...


class Transferrer(Protocol):
    """The one door for transfers: move a live call's caller to another queue or a colleague's phone."""

    async def transfer_to_queue(self, linkedid: str, queue: str) -> None: ...

    async def transfer_to_interface(self, linkedid: str, interface: str) -> None: ...

    async def attended_transfer(self, linkedid: str, interface: str) -> None: ...

    async def on_phone(self, interface: str) -> bool: ...

    async def operator_on_line(self, linkedid: str) -> bool: ...


@dataclass(frozen=True)
class DeskContext:
    """What routes reach through `request.app.state.desk`."""

    settings: Settings
    sessions: sessionmaker[Session]
    bus: Bus
    dialer: Dialer | None
    templates: Jinja2Templates
    transferrer: Transferrer | None = None
    supervision: SupervisorDoor | None = None  # supervisor actions' door: the bridge


def _template_globals(request: Request) -> dict[str, object]:
    lang = session_language(request)
    return {
        "lang": lang,
        "languages": LANGUAGES,
        "t": lambda key, **values: translate(lang, key, **values),
        "label": lambda prefix, code: label(lang, prefix, code),
        "catalog": CATALOGS[lang],
        "csrf_token": csrf_token(request),
        "time_zones": TIME_ZONES,
    }


def create_app(
    settings: Settings,
    sessions: sessionmaker[Session],
    bus: Bus,
    dialer: Dialer | None = None,
    transferrer: Transferrer | None = None,
    supervision: SupervisorDoor | None = None,
    campaign_dialler: object | None = None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """Build the desk app; the caller owns the bus and the engine and closes them (in `lifespan`
    when the app runs on its own under uvicorn)."""
    app = FastAPI(title="callcard desk", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json",
                  lifespan=lifespan)
    templates = Jinja2Templates(directory=TEMPLATES_DIR, context_processors=[_template_globals])
    templates.env.autoescape = True
    templates.env.filters["caller_id_name"] = caller_id_name
    templates.env.filters["phone"] = format_phone
    templates.env.filters["caller_number"] = lambda raw: shown_number(raw, None)  # not a phone number
    app.state.desk = DeskContext(settings, sessions, bus, dialer, templates, transferrer, supervision)
    app.state.campaign_dialler = campaign_dialler  # routing.campaigns.service.DiallerService, when running here
    app.add_middleware(SessionMiddleware, **_session_options(settings))
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, _exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _page_or_json(request: Request, exc: StarletteHTTPException) -> Response:
        """A person who followed an old link or typed an address gets a page in their language,
        with the menu to go on from; scripts and the API keep FastAPI's JSON."""
        if (request.method != "GET" or request.url.path.startswith(("/api/", "/static/"))
                or "text/html" not in request.headers.get("accept", "")):
            return await http_exception_handler(request, exc)
        operator = await asyncio.to_thread(load_operator, request.app.state.desk.sessions, request.session)
        if operator is None:
            return RedirectResponse("/login", status_code=303)
        message = translate(session_language(request), "page.not_found") if exc.status_code == 404 else str(exc.detail)
        return pages._render(request, "forbidden.html", operator, exc.status_code, message=message)

    app.include_router(http.router)
    app.include_router(recordings_http.router)
    app.include_router(reviews_http.router)
    app.include_router(status_http.router)
    app.include_router(client_import_http.router)  # before pages: /clients/import is not a client id
    app.include_router(pages.router)
    app.include_router(ws.router)
    app.include_router(wall_http.router)
    app.include_router(wall_ws.router)
    app.include_router(supervisor_http.router)
    app.include_router(pause_reasons_http.router)
    app.include_router(routing_http.router)
    app.include_router(inbox_http.router)
    app.include_router(ivr_http.router)
    app.include_router(users_http.router)
    app.include_router(debt_import_http.router)  # before campaigns: /campaigns/import is not a campaign id
    app.include_router(campaigns_http.router)
    app.include_router(health.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _session_options(settings: Settings) -> dict[str, Any]:
    return {"secret_key": settings.secret_key, "session_cookie": "callcard_session", "same_site": "lax",
            "https_only": settings.secure_cookies, "max_age": 12 * 60 * 60}


def served(app: FastAPI) -> ASGIApp:
    """What uvicorn runs: `app`, but a desk socket reaches `ws.desk_socket` through the session
    layer alone. Each desk holds its socket all shift, and FastAPI's layers for it (error and
    exception middleware, exit stack, router) stayed on its stack for as long, ~7 kB per desk
    (bench/RESULTS.md). Every other request, and every test client, goes through `app`."""
    async def desk(scope: Scope, receive: Receive, send: Send) -> None:
        await ws.desk_socket(WebSocket(scope, receive, send))

    desk_door = SessionMiddleware(desk, **_session_options(app.state.desk.settings))

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == ws.DESK_PATH:
            scope["app"] = app
            await desk_door(scope, receive, send)
        else:
            await app(scope, receive, send)

    return front


def create_app_from_env() -> ASGIApp:
    """uvicorn's app factory for `callcard run web` (every worker process calls it): settings from
    the environment, the Redis bus, and the bridge reached through it (`ami_bridge.remote`) for
    click-to-call, transfers and supervisor actions."""
    settings = Settings.from_env()
    require_shared_bus(settings, "web")
    configure_logging(settings)
    engine = make_engine(settings.database_url)
    bus = make_bus(settings.bus_url, settings.bus_prefix)
    bridge = RemoteBridge(bus, settings.ami_action_timeout + COMMAND_MARGIN)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await bridge.close()
        await bus.close()
        engine.dispose()

    return served(create_app(settings, make_sessionmaker(engine), bus, dialer=bridge, transferrer=bridge,
                             supervision=bridge, lifespan=lifespan))
