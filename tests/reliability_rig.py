"""The reliability rig: real processes, real faults, and a count of every call at the end.

Two `callcard run bridge` processes (one leads, one stands by) and a `callcard run worker` (the
call logger) run against the PBX simulator, which places a steady stream of calls from this
process and keeps its own list of their Linkedids and of the outcome each was scripted for. Meanwhile
the rig, in order: kills the leading bridge with SIGKILL (and starts a new standby), drops every
AMI connection on the simulator's side, kills and restarts Redis, takes PostgreSQL away from the
logger, and halfway through that outage kills the logger with SIGKILL while it holds a batch it
could not store (restarted under the same consumer name). At the end every placed call must be in
the calls table exactly once, ended, with the outcome it was scripted for.

Redis and PostgreSQL of this machine are shared with other tests, so neither is touched: Redis is
a throwaway `redis-server` of the rig's own (append-only file, fsync on every write, in a temporary
directory) that it restarts, and PostgreSQL is reached through a TCP relay that it cuts.

Calls last at least 3.5 s, longer than a takeover (about the lease TTL): a call that begins and
ends while no bridge leads is seen by nobody (README, Reliability).

Used by tests/test_reliability.py (a few hundred calls) and bench/reliability.py (10,000).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from ports import free_port
from sqlalchemy import text
from tcp_proxy import TcpProxy

from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig
from callcard.pbx_sim.server import PbxSimulator
from callcard.streams import CALL_LOG_GROUP, stream_key
from crm_core.db import make_engine

PREFIX = "callcard-rel:"


@dataclass(frozen=True)
class Plan:
    calls: int = 240
    rate: float = 8.0  # calls placed per second
    leader_ttl: float = 2.0
    db_outage: float = 5.0  # seconds the logger's PostgreSQL is away
    seed: int = 1

    @property
    def seconds(self) -> float:
        return self.calls / self.rate

    @property
    def agents(self) -> int:
        """Enough sales operators that no caller waits: a sales call holds one for under 6 s."""
        return max(60, math.ceil(self.rate * 6))


@dataclass
class Report:
    placed: int = 0
    logged: int = 0  # placed calls with a row
    missing: list[str] = field(default_factory=list)  # placed, no row
    unknown: list[str] = field(default_factory=list)  # a row no placed call explains
    unfinished: list[str] = field(default_factory=list)  # a row not ended
    duplicated: int = 0  # rows beyond one per Linkedid
    other_outcome: list[tuple[str, str, str]] = field(default_factory=list)  # (linkedid, meant, logged)
    stream_unacknowledged: int = -1
    bridge_terms: int = 0
    takeover_seconds: float = 0.0  # from kill -9 of the leader to another bridge logged in to AMI
    events: list[str] = field(default_factory=list)  # what the rig did, when
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unknown or self.unfinished or self.duplicated
                    or self.stream_unacknowledged or self.other_outcome)

    def lines(self) -> list[str]:
        return [
            *self.events,
            f"calls placed by the simulator: {self.placed}",
            f"in the calls table:            {self.logged} (missing {len(self.missing)}, "
            f"not placed {len(self.unknown)}, not ended {len(self.unfinished)}, duplicated {self.duplicated})",
            f"outcome as the simulator meant it (sales answered, support abandoned): "
            f"{self.logged - len(self.other_outcome)} of {self.logged}"
            + "".join(f"\n  {linkedid}: meant {meant}, logged {got}" for linkedid, meant, got in self.other_outcome),
            f"stream entries unacknowledged: {self.stream_unacknowledged}",
            f"bridge terms (fencing tokens): {self.bridge_terms}",
            f"verdict: {'none lost, none duplicated, every outcome right' if self.ok else 'FAILED'} "
            f"({self.seconds:.1f} s)",
        ]


def sim_config(operators: int) -> PbxConfig:
    """sales: operators answer in 1-1.8 s and talk 3-4.5 s; support: nobody answers, callers give up."""
    members, agents = [], {}
    for i in range(operators):
        interface = f"Local/{2000 + i}@agents/n"
        members.append(MemberConfig(interface, f"op{2000 + i}"))
        agents[interface] = AgentBehaviour(answer_after=1.0 + (i % 5) * 0.2, talk=3.0 + (i % 4) * 0.5)
    agents["Local/1999@agents/n"] = AgentBehaviour(answer_after=None)
    return PbxConfig(queues=(QueueConfig("sales", tuple(members)),
                             QueueConfig("support", (MemberConfig("Local/1999@agents/n", "ghost"),))),
                     agents=agents)


class ThrowawayRedis:
    """A redis-server of our own that keeps its data in an append-only file across a SIGKILL."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = aioredis.from_url(self.url)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    await client.ping()
                    return
                except Exception:
                    assert time.monotonic() < deadline, "the throwaway redis-server did not start"
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Processes:
    """callcard subprocesses, each logging to a file of its own."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: dict[str, asyncio.subprocess.Process] = {}
        self.metrics: dict[str, int] = {}

    async def start(self, name: str, role: str) -> None:
        port = free_port()
        log = (self.logs / f"{name}.log").open("wb")
        self.running[name] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcard.cli", "run", role,
            env={**self.env, "CALLCARD_METRICS_PORT": str(port)},
            stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        self.metrics[name] = port

    async def kill(self, name: str) -> None:
        proc = self.running.pop(name)
        proc.kill()
        await proc.wait()

    async def metric(self, name: str, sample: str) -> str | None:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                body = (await http.get(f"http://127.0.0.1:{self.metrics[name]}/metrics")).text
        except httpx.HTTPError:
            return None
        return next((line.split()[-1] for line in body.splitlines() if line.startswith(sample + " ")), None)

    async def leader(self) -> str | None:
        for name in self.running:
            if name.startswith("bridge") and await self.metric(name, "callcard_ami_connected") == "1.0":
                return name
        return None

    def check_alive(self) -> None:
        for name, proc in self.running.items():
            assert proc.returncode is None, f"{name} exited with {proc.returncode}:\n{self.log_text()}"

    def log_text(self, tail: int = 40) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()
            parts.append(f"--- {path.name}\n" + "\n".join(lines[-tail:]))
        return "\n".join(parts)

    async def stop(self) -> None:
        for proc in self.running.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.running.values():
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def until(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float) -> float:
    """Wait for `check`; returns the seconds it took."""
    started = time.monotonic()
    while not await _value(check()):
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if inspect.isawaitable(result) else result


class Rig:
    def __init__(self, plan: Plan, db_url: str, workdir: Path) -> None:
        self.plan = plan
        self.db_url = db_url
        self.workdir = workdir
        self.report = Report()
        self.placed: list[str] = []
        self.meant: dict[str, str] = {}  # linkedid -> the outcome the simulator's script gives it
        self.started = self.traffic_start = 0.0
        self.ami_port = 0

    def note(self, what: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f} s] {what}"
        self.report.events.append(line)
        print(line, flush=True)

    async def run(self) -> Report:
        self.started = time.monotonic()
        sim = PbxSimulator(sim_config(self.plan.agents))
        await sim.start("127.0.0.1", 0)
        self.ami_port = sim.port
        redis = ThrowawayRedis(self.workdir)
        await redis.start()
        proxy = await TcpProxy("127.0.0.1", 5432).start()
        env = {**os.environ, "CALLCARD_DATABASE_URL": self.db_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
               "CALLCARD_BUS_URL": redis.url, "CALLCARD_BUS_PREFIX": PREFIX, "CALLCARD_AMI_PORT": str(sim.port),
               "CALLCARD_LEADER_TTL": str(self.plan.leader_ttl), "CALLCARD_AGI_PORT": str(free_port()),
               "CALLCARD_CALL_LOG_CONSUMER": "logger-1"}
        procs = Processes(env, self.workdir)
        client = aioredis.from_url(redis.url)
        try:
            for name, role in (("bridge-a", "bridge"), ("bridge-b", "bridge"), ("worker", "worker")):
                await procs.start(name, role)
            await until(lambda: self._ready(procs, client), "a leading bridge and the logger's group", 60)
            self.note(f"ready: {await procs.leader()} leads, the other stands by")
            self.traffic_start = time.monotonic()
            traffic = asyncio.create_task(self._traffic(sim))
            await self._faults(sim, redis, proxy, procs, client)
            await traffic
            self.note(f"traffic over: {len(self.placed)} calls placed")
            await until(lambda: not sim.snapshot().calls, "every simulated call over", 60)
            waited = await until(lambda: self._all_logged(procs), "every call logged", 60 + self.plan.db_outage)
            self.note(f"every call in the table, ended, {waited:.1f} s after the simulator's last call ended")
            await self._count(redis.url)
        finally:
            await procs.stop()
            await client.aclose()
            redis.kill()
            await proxy.close()
            await sim.stop()
        self.report.seconds = time.monotonic() - self.started
        return self.report

    async def _ready(self, procs: Processes, client: Any) -> bool:
        procs.check_alive()
        if await procs.leader() is None:
            return False
        try:
            return any(g["name"] == CALL_LOG_GROUP.encode() for g in await client.xinfo_groups(stream_key(PREFIX)))
        except Exception:
            return False

    async def _traffic(self, sim: PbxSimulator) -> None:
        rng = random.Random(self.plan.seed)
        for i in range(self.plan.calls):
            await asyncio.sleep(max(0.0, self.traffic_start + i / self.plan.rate - time.monotonic()))
            number = "8351" + "".join(rng.choice("0123456789") for _ in range(7))
            if rng.random() < 0.2:  # nobody answers support: the caller gives up
                linkedid = await sim.place_call(number, queue="support", patience=round(rng.uniform(3.5, 5.0), 1))
                self.meant[linkedid] = "abandoned"
            else:
                linkedid = await sim.place_call(number, queue="sales", patience=120.0)
                self.meant[linkedid] = "answered"
            self.placed.append(linkedid)
            if self.plan.calls >= 2000 and (i + 1) % (self.plan.calls // 10) == 0:
                self.note(f"{i + 1} calls placed")

    async def _at(self, share: float) -> None:
        """Sleep until `share` of the traffic's duration has passed."""
        await asyncio.sleep(max(0.0, self.traffic_start + share * self.plan.seconds - time.monotonic()))

    async def _faults(self, sim: PbxSimulator, redis: ThrowawayRedis, proxy: TcpProxy, procs: Processes,
                      client: Any) -> None:
        await self._at(0.15)
        leader = await procs.leader()
        assert leader is not None, procs.log_text()
        await procs.kill(leader)
        self.note(f"kill -9 {leader} (leading)")
        took = await until(lambda: _other_leads(procs, leader), "the standby to lead", 10 * self.plan.leader_ttl)
        self.report.takeover_seconds = took
        self.note(f"{await procs.leader()} leads {took:.1f} s later (lease TTL {self.plan.leader_ttl:g} s)")
        await procs.start(f"{leader}-again", "bridge")

        await self._at(0.30)
        sim.drop_connections()
        self.note("AMI connections dropped by the PBX")

        await self._at(0.45)
        redis.kill()
        self.note("kill -9 redis-server")
        await redis.start()
        self.note("redis-server restarted from its append-only file")

        await self._at(0.55)
        await proxy.cut()
        self.note(f"PostgreSQL cut off from the logger for {self.plan.db_outage:g} s")
        await asyncio.sleep(self.plan.db_outage / 2)
        fresh = aioredis.from_url(redis.url)  # the rig's first connection died with the old server
        pending = (await fresh.xpending(stream_key(PREFIX), CALL_LOG_GROUP))["pending"]
        await fresh.aclose()
        await procs.kill("worker")
        self.note(f"kill -9 the call logger, {pending} stream entries delivered to it and not acknowledged")
        await procs.start("worker-again", "worker")
        await asyncio.sleep(self.plan.db_outage / 2)
        await proxy.restore()
        self.note("PostgreSQL back")
        procs.check_alive()

    async def _all_logged(self, procs: Processes) -> bool:
        procs.check_alive()
        rows = await asyncio.to_thread(self._rows)
        ended = {linkedid for linkedid, status, _ in rows if status == "ended"}
        return ended >= set(self.placed)

    def _rows(self) -> list[tuple[str, str, str]]:
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return [(r[0], r[1], r[2]) for r in conn.execute(text("SELECT linkedid, status, outcome FROM calls"))]
        finally:
            engine.dispose()

    async def _count(self, redis_url: str) -> None:
        rows = await asyncio.to_thread(self._rows)
        placed, in_table = set(self.placed), [linkedid for linkedid, _, _ in rows]
        report = self.report
        report.placed = len(self.placed)
        report.logged = len(placed & set(in_table))
        report.missing = sorted(placed - set(in_table))
        report.unknown = sorted(set(in_table) - placed)
        report.unfinished = sorted(linkedid for linkedid, status, _ in rows if status != "ended")
        report.other_outcome = sorted((linkedid, self.meant[linkedid], str(outcome)) for linkedid, _, outcome in rows
                                      if linkedid in self.meant and outcome != self.meant[linkedid])
        report.duplicated = len(in_table) - len(set(in_table))
        client = aioredis.from_url(redis_url)  # one made after the restart
        try:
            groups = await client.xinfo_groups(stream_key(PREFIX))
            report.stream_unacknowledged = sum((g.get("pending") or 0) + (g.get("lag") or 0) for g in groups)
            report.bridge_terms = int(await client.get(f"{PREFIX}bridge:127.0.0.1:{self.ami_port}:fence") or 0)
        finally:
            await client.aclose()


async def _other_leads(procs: Processes, dead: str) -> bool:
    leader = await procs.leader()
    return leader is not None and leader != dead
