"""callcard as a centre runs it: separate processes on the real Redis bus and PostgreSQL.

`callcard run bridge`, `worker`, `web --workers 2`, `ivr` and `dialler` are started as
subprocesses against the PBX simulator (AMI over TCP; it runs in the test's loop so the test
decides when phones ring). A desk whose socket is served by either uvicorn worker gets the pop,
every wall gets the waiting caller, the call is logged once, and click-to-call from a web worker
travels over the bus to the bridge process. The processes log JSON with a database password and
an AMI secret set: neither appears in any line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from ports import free_port
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from web_login import alog_in

from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig
from callcard.pbx_sim.server import PbxSimulator
from crm_core.db import make_engine, make_sessionmaker
from crm_core.migrate import upgrade
from crm_core.models import Call
from crm_core.seed import seed_demo

OP1 = "Local/101@agents/n"
AMI_SECRET = "ami-Secret-4711"
DB_PASSWORD = "pg-Password-4711"  # PostgreSQL here trusts local connections: the password is only carried
SECRET_KEY = "session-Key-4711"
START_TIMEOUT = 25.0

REDIS_URL = os.environ.get("CALLCARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")  # as conftest's `bus`

pytestmark = [pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
              pytest.mark.parametrize("bus", ["redis"], indirect=True)]  # `bus`: Redis must be there


def _with_password(url: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{DB_PASSWORD}@{host}"


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


class Processes:
    """The subprocesses of one test, each logging to its own file; all stopped with SIGTERM at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, name: str, *args: str, **env: str) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.running[name] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcard.cli", *args, env={**self.env, **env},
            stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(self.logs.glob("*.log")))

    def check_alive(self) -> None:
        for name, proc in self.running.items():
            assert proc.returncode is None, f"{name} exited with {proc.returncode}:\n{self.log_text()}"

    async def stop(self) -> dict[str, int]:
        for proc in self.running.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.running.items():
            try:
                codes[name] = await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                codes[name] = await proc.wait()
        return codes


async def _receive(socket: Any, wanted: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), max(0.1, deadline - time.monotonic())))
        if wanted(message):
            return message


def _cookie(http: httpx.AsyncClient) -> str:
    return "; ".join(f"{name}={value}" for name, value in http.cookies.items())


async def _logged_once_as_ended(sessions: sessionmaker[Session], linkedid: str) -> None:
    """Waits for the call log to end the call, then checks it holds exactly one row for it."""

    def logged() -> tuple[int, str | None]:
        with sessions() as session:
            rows = session.scalars(select(Call).where(Call.linkedid == linkedid)).all()
            return len(rows), rows[0].status if rows else None

    async def ended() -> bool:
        return (await asyncio.to_thread(logged))[1] == "ended"

    await _until(ended, "the call logged as ended")
    assert await asyncio.to_thread(logged) == (1, "ended")


def _seeded(db_url: str) -> tuple[Engine, sessionmaker[Session], dict[str, str]]:
    """The schema and the demo data; the demo users' passwords."""
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        passwords = seed_demo(session).passwords
        session.commit()
    return engine, sessions, passwords


async def _simulator() -> PbxSimulator:
    """One queue, sales, with op1's phone, which rings until the test answers it."""
    sim = PbxSimulator(PbxConfig(queues=(QueueConfig("sales", (MemberConfig(OP1, "op1"),)),),
                                 agents={OP1: AgentBehaviour(answer_after=None)}), secret=AMI_SECRET)
    await sim.start("127.0.0.1", 0)
    return sim


def _environment(db_url: str, ami_port: int, web_port: int, agi_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "CALLCARD_DATABASE_URL": _with_password(db_url),
        "CALLCARD_BUS_URL": REDIS_URL,
        "CALLCARD_BUS_PREFIX": f"callcard-proc-{uuid.uuid4().hex[:8]}:",
        "CALLCARD_AMI_PORT": str(ami_port),
        "CALLCARD_AMI_SECRET": AMI_SECRET,
        "CALLCARD_SECRET_KEY": SECRET_KEY,
        "CALLCARD_HTTP_PORT": str(web_port),
        "CALLCARD_DEFAULT_LANGUAGE": "en",
        "CALLCARD_LOG_FORMAT": "json",
        "CALLCARD_AGI_PORT": str(agi_port),
    }


async def test_desks_on_either_web_worker_get_the_pop_and_the_call_is_logged_once(
    db_url: str, bus: object, tmp_path: Path
) -> None:
    engine, sessions, passwords = _seeded(db_url)
    sim = await _simulator()
    web_port, bridge_metrics, agi_port = free_port(), free_port(), free_port()
    part_metrics = {part: free_port() for part in ("ivr", "dialler")}
    procs = Processes(_environment(db_url, sim.port, web_port, agi_port), tmp_path)
    base = f"http://127.0.0.1:{web_port}"
    try:
        await procs.start("bridge", "run", "bridge", CALLCARD_METRICS_PORT=str(bridge_metrics))
        await procs.start("worker", "run", "worker", CALLCARD_METRICS_PORT=str(free_port()))
        await procs.start("web", "run", "web", "--workers", "2")
        for part, port in part_metrics.items():
            await procs.start(part, "run", part, CALLCARD_METRICS_PORT=str(port))
        async with httpx.AsyncClient(base_url=base, follow_redirects=True, timeout=10) as http, \
                httpx.AsyncClient(base_url=base, follow_redirects=True, timeout=10) as supervisor:

            async def ready() -> bool:
                procs.check_alive()
                try:
                    web = await http.get("/readyz")
                    bridge = await http.get(f"http://127.0.0.1:{bridge_metrics}/metrics")
                    parts = [await http.get(f"http://127.0.0.1:{port}/metrics") for port in part_metrics.values()]
                    _, agi = await asyncio.open_connection("127.0.0.1", agi_port)  # the IVR listens
                except (httpx.TransportError, OSError):
                    return False
                agi.close()
                return web.status_code == 200 and "callcard_ami_connected 1.0" in bridge.text and all(
                    "callcard_dialler_calls_placed_total" in part.text for part in parts)

            await _until(ready, "web ready and the bridge logged in to the PBX", START_TIMEOUT)
            csrf = await alog_in(http, "op1", passwords["op1"])
            await alog_in(supervisor, "super1", passwords["super1"])

            # desks of op1 served by both uvicorn workers (the kernel hands connections to either)
            desks: dict[int, Any] = {}
            async with asyncio.timeout(START_TIMEOUT):
                while len(desks) < 2:
                    socket = await websockets.connect(base.replace("http", "ws") + "/ws/desk",
                                                      additional_headers={"Cookie": _cookie(http)})
                    hello = await _receive(socket, lambda m: m["type"] == "hello")
                    if hello["worker"] in desks:
                        await socket.close()
                    else:
                        desks[hello["worker"]] = socket
            walls = [await websockets.connect(base.replace("http", "ws") + "/ws/wall",
                                              additional_headers={"Cookie": _cookie(supervisor)})
                     for _ in range(3)]

            linkedid = await sim.place_call("+73512223344", "Ivan Petrov", queue="sales")
            for worker, socket in desks.items():
                pop = await _receive(socket, lambda m: m["type"] == "pop")
                assert (pop["linkedid"], pop["caller_num"]) == (linkedid, "+73512223344"), worker
            for wall in walls:
                await _receive(wall, lambda m: linkedid in json.dumps(m))

            await sim.answer(OP1)
            await sim.hangup_agent(OP1)
            for socket in desks.values():
                await _receive(socket, lambda m: m["type"] == "call_state" and m["state"] == "ended")

            await _logged_once_as_ended(sessions, linkedid)

            dialled = await http.post("/api/dial", json={"number": "+73517654321"}, headers={"X-CSRF-Token": csrf})
            assert dialled.status_code == 200, dialled.text
            assert dialled.json()["action_id"].startswith("callcard-orig-")

            scraped = (await http.get("/metrics")).text
            assert "callcard_pops_sent_total" in scraped and "callcard_pop_latency_seconds_bucket" in scraped
            for socket in [*desks.values(), *walls]:
                await socket.close()
        codes = await procs.stop()
        assert codes == {"bridge": 0, "worker": 0, "web": 0, "ivr": 0, "dialler": 0}, procs.log_text()
    finally:
        await procs.stop()
        await sim.stop()
        with sessions() as session:
            calls = session.scalar(select(func.count()).select_from(Call))
        engine.dispose()
    text = procs.log_text()
    for secret in (AMI_SECRET, DB_PASSWORD, SECRET_KEY):
        assert secret not in text, f"{secret} was logged:\n{text}"
    lines = [json.loads(line) for line in text.splitlines() if line and not line.startswith("--- ")]
    started = [line for line in lines if line["message"].startswith("callcard run bridge: database")]
    assert started and "postgres:***@127.0.0.1" in started[0]["message"], text
    assert {"time", "level", "logger", "message"} <= set(started[0])
    assert calls is not None and calls >= 1


async def test_every_part_in_one_process_beside_the_leading_second_bridge(
    db_url: str, bus: object, tmp_path: Path
) -> None:
    """The small centre's layout (README): `run bridge worker ivr dialler web` and a second `run bridge`,
    started first here so that it leads: app's own bridge stands by, and app's web app and dialler
    reach Asterisk through the leader's command door. The desk gets the pop, the call is logged
    once, click-to-call goes out."""
    engine, sessions, passwords = _seeded(db_url)
    sim = await _simulator()
    web_port, bridge_metrics, app_metrics = free_port(), free_port(), free_port()
    procs = Processes(_environment(db_url, sim.port, web_port, free_port()), tmp_path)
    base = f"http://127.0.0.1:{web_port}"
    try:
        async with httpx.AsyncClient(base_url=base, follow_redirects=True, timeout=10) as http:

            async def says(url: str, text: str) -> bool:
                procs.check_alive()
                try:
                    return text in (await http.get(url)).text
                except httpx.TransportError:
                    return False

            bridge_url, app_url = (f"http://127.0.0.1:{port}/metrics" for port in (bridge_metrics, app_metrics))
            await procs.start("bridge", "run", "bridge", CALLCARD_METRICS_PORT=str(bridge_metrics))
            await _until(lambda: says(bridge_url, "callcard_ami_connected 1.0"), "the second bridge leading",
                         START_TIMEOUT)
            await procs.start("app", "run", "bridge", "worker", "ivr", "dialler", "web",
                              CALLCARD_METRICS_PORT=str(app_metrics))
            await _until(lambda: says(app_url, "callcard_dialler_calls_placed_total"), "app's metrics", START_TIMEOUT)
            assert await says(app_url, "callcard_ami_connected 0.0"), "app's bridge stands by"
            await _until(lambda: says(f"{base}/readyz", "ok"), "app ready", START_TIMEOUT)

            csrf = await alog_in(http, "op1", passwords["op1"])
            desk = await websockets.connect(base.replace("http", "ws") + "/ws/desk",
                                            additional_headers={"Cookie": _cookie(http)})
            await _receive(desk, lambda m: m["type"] == "hello")
            linkedid = await sim.place_call("+73512223344", "Ivan Petrov", queue="sales")
            pop = await _receive(desk, lambda m: m["type"] == "pop")
            assert (pop["linkedid"], pop["caller_num"]) == (linkedid, "+73512223344")
            await sim.answer(OP1)
            await sim.hangup_agent(OP1)
            await _receive(desk, lambda m: m["type"] == "call_state" and m["state"] == "ended")

            await _logged_once_as_ended(sessions, linkedid)
            dialled = await http.post("/api/dial", json={"number": "+73517654321"}, headers={"X-CSRF-Token": csrf})
            assert dialled.status_code == 200, dialled.text
            await desk.close()
        assert await procs.stop() == {"bridge": 0, "app": 0}, procs.log_text()
    finally:
        await procs.stop()
        await sim.stop()
        engine.dispose()

