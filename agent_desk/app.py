"""The desk's FastAPI application: pages, REST API, the desk websocket and static files.

Everything it needs (settings, database sessions, the bus, the dialer) is passed in, so
the CLI, the tests and the end-to-end stack build the same app from the same parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.sessions import SessionMiddleware

from agent_desk import http, pages, supervisor_http, wall_http, wall_ws, ws
from agent_desk.auth import LoginRequired, csrf_token, session_language
from agent_desk.i18n import CATALOGS, LANGUAGES, label, translate
from agent_desk.supervisor import SupervisorDoor
from callcard.bus import Bus
from callcard.settings import Settings
from ivr import http as ivr_http
from routing import http as routing_http
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

    def on_phone(self, interface: str) -> bool: ...

    def operator_on_line(self, linkedid: str) -> bool: ...


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
    }


def create_app(
    settings: Settings,
    sessions: sessionmaker[Session],
    bus: Bus,
    dialer: Dialer | None = None,
    transferrer: Transferrer | None = None,
    supervision: SupervisorDoor | None = None,
) -> FastAPI:
    """Build the desk app; the caller owns the bus and the engine and closes them."""
    app = FastAPI(title="callcard desk", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json")
    templates = Jinja2Templates(directory=TEMPLATES_DIR, context_processors=[_template_globals])
    templates.env.autoescape = True
    app.state.desk = DeskContext(settings, sessions, bus, dialer, templates, transferrer, supervision)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="callcard_session",
        same_site="lax",
        https_only=settings.secure_cookies,
        max_age=12 * 60 * 60,
    )

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, _exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    app.include_router(http.router)
    app.include_router(pages.router)
    app.include_router(ws.router)
    app.include_router(wall_http.router)
    app.include_router(wall_ws.router)
    app.include_router(supervisor_http.router)
    app.include_router(routing_http.router)
    app.include_router(inbox_http.router)
    app.include_router(ivr_http.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
