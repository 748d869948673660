"""The whole product against the PBX simulator, in a background thread, for end-to-end tests.

Everything is the real thing: the simulator speaks AMI over TCP, the bridge logs in to it,
the call logger and desk popper consume the bus, uvicorn serves the desk. Only Asterisk
is simulated, because Debian has none.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import Browser, Page
from ports import free_port

from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig
from callcard.pbx_sim.server import PbxSimulator
from callcard.runtime import Stack, start_stack, stop_stack
from callcard.settings import Settings
from crm_core.db import make_engine, make_sessionmaker
from crm_core.migrate import upgrade
from crm_core.seed import seed_demo

T = TypeVar("T")


def manual_pbx(queues: dict[str, tuple[str, ...]], *, also: tuple[str, ...] = ()) -> PbxConfig:
    """Queues of `Local/1NN@agents/n` members (named opN) whose phones ring until the test answers."""
    phones = {i for members in queues.values() for i in members} | set(also)
    return PbxConfig(
        queues=tuple(QueueConfig(name, tuple(MemberConfig(i, f"op{int(i[6:9]) - 100}") for i in members))
                     for name, members in queues.items()),
        agents={i: AgentBehaviour(answer_after=None) for i in phones},
    )


class LiveStack:
    def __init__(self, database_url: str, config: PbxConfig, recordings: Path | None = None) -> None:
        upgrade(database_url)
        engine = make_engine(database_url)
        with make_sessionmaker(engine)() as session:
            self.passwords = seed_demo(session).passwords
            session.commit()
        engine.dispose()
        self.database_url = database_url
        self.config = config
        self.recordings = recordings  # where the simulator records and the desk plays from (None: off)
        self.sim: PbxSimulator
        self.stack: Stack
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        self.sim = PbxSimulator(self.config, recordings=self.recordings)
        await self.sim.start("127.0.0.1", 0)
        settings = Settings(database_url=self.database_url, ami_port=self.sim.port,
                            http_port=free_port(), secret_key="e2e-tests", default_language="ru",
                            recordings_dir=str(self.recordings or ""))
        self.stack = await start_stack(settings)
        await asyncio.wait_for(self.stack.bridge.client.connected.wait(), 10)
        self._ready.set()
        await self._done.wait()
        await stop_stack(self.stack)
        await self.sim.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.stack.settings.http_port}"

    def log_in(self, browser: Browser, login: str, *, wait_socket: bool = True, **context: object) -> Page:
        """A fresh browser context logged in as `login`, on the desk (its socket ready unless told not)."""
        page = browser.new_context(base_url=self.url, **context).new_page()  # type: ignore[arg-type]
        page.goto("/login")
        page.fill("input[name=login]", login)
        page.fill("input[name=password]", self.passwords[login])
        page.click("button[type=submit]")
        page.wait_for_url("**/desk")
        if wait_socket:
            page.wait_for_selector("body[data-socket=ready]")
        return page

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(20), "the stack did not come up"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine (e.g. a simulator action) on the stack's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._done.set)
        self._thread.join(15)
