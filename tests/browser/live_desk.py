"""A live desk for the browser tests: uvicorn serving create_app in a background thread.

The thread's event loop also runs the real DeskPopper and CallLogger on a MemoryBus, so
publishing CallEvents on that bus stands in for the AMI bridge. The database is an
SQLite file seeded with the demo data. Chromium is Debian's, driven by Playwright.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import uvicorn
from ports import free_port
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from agent_desk.app import create_app
from agent_desk.pops import DeskPopper
from ami_bridge.events import CallEvent
from callcard.bus import CALLS_TOPIC, MemoryBus
from callcard.settings import Settings
from crm_core.call_log import CallLogger
from crm_core.db import make_engine, make_sessionmaker
from crm_core.seed import seed_demo
from crm_core.tables import Base

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class LiveDesk:
    """The desk app, the popper and the call logger in one thread with its own event loop."""

    def __init__(self, database_url: str) -> None:
        self.engine: Engine = make_engine(database_url)
        Base.metadata.create_all(self.engine)
        self.sessions: sessionmaker[Session] = make_sessionmaker(self.engine)
        with self.sessions() as session:
            self.passwords = seed_demo(session).passwords
            session.commit()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bus = MemoryBus()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        settings = Settings(secret_key="browser-tests", default_language="ru")
        app = create_app(settings, self.sessions, self.bus)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        workers = [
            asyncio.create_task(DeskPopper(self.sessions, self.bus, "RU").run(self._stop)),
            asyncio.create_task(CallLogger(self.sessions, "RU").run(self.bus, self._stop)),
        ]
        serving = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.02)
        self._ready.set()
        await serving
        self._stop.set()
        await asyncio.gather(*workers)

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(15), "the desk server did not start"

    def publish(self, event: CallEvent) -> None:
        """What the AMI bridge would do: put the event on CALLS_TOPIC."""
        asyncio.run_coroutine_threadsafe(self.bus.publish(CALLS_TOPIC, event.to_dict()), self.loop).result(5)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self.engine.dispose()


