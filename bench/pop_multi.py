"""Pop latency of the production layout against the embedded single process, in one run.

Same simulator, desk clients, call rate, desk count and database for three server sides, one
after the other (the method, timestamps and children are `bench/pop_latency.py`'s):

* floor: the bare TCP -> websocket relay (no parsing, no database, no bus);
* embedded: `callcard.runtime.start_stack` in one process on the in-process bus (`callcard serve`);
* multi: what the README's Production section runs, as separate processes: `callcard run
  bridge`, `callcard run worker` (call logger, desk popper, wall, ...) and `callcard run web
  --workers 2` (uvicorn with two worker processes), meeting on Redis (127.0.0.1:6379, a fresh
  key prefix), desks logged in through the web workers. A pop crosses Redis twice there
  (bridge -> call-event stream/pub-sub -> worker's popper -> `desk.<id>` channel -> the web worker
  holding that desk's socket).

The database is a fresh schema in PostgreSQL (`test` on 127.0.0.1, dropped afterwards) unless
`--db sqlite` (a file in the temp dir, shared by the processes). Prints p50/p90/p99/max per side,
missing and misrouted pops, CPU of each side (process trees summed), and the ratios. Figures only.

    .venv/bin/python bench/pop_multi.py --rate 50 --desks 500 --seconds 10
    .venv/bin/python bench/pop_multi.py --quick          # 50 desks, 20 calls/s, 3 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pop_latency as pl  # noqa: E402

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# As docker-compose.yml's: a process's subscriptions share one connection (callcard/bus.py), so
# redis-py's pool of 100 is enough for any number of desks.
REDIS_URL = "redis://127.0.0.1:6379/0"
CALLCARD = Path(sys.executable).parent / "callcard"


# --- process trees ---------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (uvicorn's workers are children of its supervisor)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += [child for child, ppid in parent.items() if ppid == p]
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process and its live descendants."""
    total = 0.0
    for p in descendants(pid):
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class Service:
    """One `callcard run <role>` process (with its children), its log in the work dir."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-25:])
        return ""

    async def finish(self, timeout: float = 15) -> None:
        """SIGTERM (the process stops its stack), then SIGKILL for the whole tree."""
        tree = descendants(self.proc.pid)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            pass
        for p in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        if self.proc.returncode is None:
            await self.proc.wait()


class Group:
    """The multi-process server side as one `Child`-like object for the CPU columns."""

    def __init__(self, services: list[Service]) -> None:
        self.name = "server"
        self.services = services

    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds() for s in self.services)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status, reply.read().decode(errors="replace")
    except Exception as exc:  # not up yet: connection refused, 503, ...
        return getattr(exc, "code", 0), ""


async def wait_until(what: str, check: Any, service: Service, timeout: float = pl.STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if service.proc.returncode is not None:
            raise RuntimeError(f"{service.name} exited ({service.proc.returncode})\n{service.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service.name}: not {what} within {timeout:.0f} s\n{service.tail()}")
        await asyncio.sleep(0.2)


# --- the orchestrator ------------------------------------------------------------------------


class ServiceOrchestrator(pl.Orchestrator):
    """Starts callcard processes (`callcard run <role>`, or `callcard serve`) against one database."""

    def __init__(self, args: argparse.Namespace, workdir: Path, db_url: str) -> None:
        super().__init__(args, workdir)
        self.db_url = db_url
        self.services: list[Service] = []

    async def start_service(self, role: str, env: dict[str, str], *extra: str, name: str = "") -> Service:
        """`callcard run <role> <extra>` (or `callcard serve`), named `name` (default: the role)."""
        name = name or role
        log = self.workdir / f"{name}.log"
        command = ("serve",) if role == "serve" else ("run", role)
        proc = await asyncio.create_subprocess_exec(
            str(CALLCARD), *command, *extra, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT, cwd=pl.REPO)
        service = Service(name, proc, log)
        self.services.append(service)
        return service


class MultiOrchestrator(ServiceOrchestrator):

    async def start_multi(self, http_port: int) -> Group:
        """bridge, worker, web --workers 2 on a fresh Redis prefix; returns once each is ready."""
        bridge_metrics, worker_metrics = pl.free_port(), pl.free_port()
        env = {**os.environ, "CALLCARD_DATABASE_URL": self.db_url, "CALLCARD_BUS_URL": REDIS_URL,
               "CALLCARD_BUS_PREFIX": f"popbench-{uuid.uuid4().hex[:8]}:", "CALLCARD_AMI_HOST": "127.0.0.1",
               "CALLCARD_AMI_PORT": str(self.sim_port), "CALLCARD_HTTP_HOST": "127.0.0.1",
               "CALLCARD_HTTP_PORT": str(http_port), "CALLCARD_SECRET_KEY": pl.SECRET_KEY,
               "CALLCARD_AGI_PORT": str(pl.free_port())}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        bridge = await self.start_service("bridge", {**env, "CALLCARD_METRICS_PORT": str(bridge_metrics)})
        worker = await self.start_service("worker", {**env, "CALLCARD_METRICS_PORT": str(worker_metrics)})
        web = await self.start_service("web", env, "--workers", "2")
        await wait_until("leading and logged in to the simulator", lambda: "callcard_ami_connected 1.0" in
                         http_get(f"http://127.0.0.1:{bridge_metrics}/metrics")[1], bridge)
        await wait_until("serving metrics", lambda: http_get(f"http://127.0.0.1:{worker_metrics}/metrics")[0] == 200,
                         worker)
        await wait_until("ready", lambda: http_get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200, web)
        # /readyz is answered by whichever worker is up first: wait until both have imported the app.
        await wait_until("running two workers", lambda: len(descendants(web.proc.pid)) >= 3, web)
        await asyncio.sleep(3)
        return Group([bridge, worker, web])

    async def phase(self, sim: pl.Child, mode: str) -> dict[str, Any]:  # type: ignore[override]
        """One measured run of floor, embedded or multi against the shared simulator."""
        a = self.args
        http_port = pl.free_port()
        common = ["--ami-port", str(self.sim_port), "--http-port", str(http_port), "--desks", str(a.desks)]
        server: Any
        if mode == "floor":
            server = await self.spawn("relay", *common)
            await server.line("READY", pl.STARTUP_TIMEOUT)
        elif mode == "embedded":
            server = await self.spawn("product", *common, "--db", self.db_url,
                                      "--out", str(self.workdir / "product-gc.json"))
            await server.line("READY", pl.STARTUP_TIMEOUT)
        else:
            server = await self.start_multi(http_port)
        out = self.workdir / f"{mode}-desks.json"
        desks = await self.spawn("desks", *common, "--mode", "relay" if mode == "floor" else "product",
                                 "--out", str(out))
        t0 = time.monotonic()
        await desks.line("READY", pl.STARTUP_TIMEOUT + a.desks * 0.2)
        connect_s = time.monotonic() - t0
        sim.send(f"phase {mode}-warm {a.rate} {a.warmup} {self.workdir / 'warm.json'} nodrain")
        await sim.line("DONE", a.warmup + a.ring + a.talk + 60)
        if mode == "embedded":
            server.send("mark")
        watched = (sim, server, desks)
        cpu0 = {c.name: c.cpu_seconds() for c in watched}
        machine0 = pl.machine_busy_seconds()
        wall0 = time.monotonic()
        stamps_file = self.workdir / f"{mode}-sim.json"
        sim.send(f"phase {mode} {a.rate} {a.seconds} {stamps_file} drain")
        done = await sim.line("DONE", a.seconds * 3 + a.ring + a.talk + 60)
        await asyncio.sleep(0.5)
        wall = time.monotonic() - wall0
        cpu = {c.name: (c.cpu_seconds() - cpu0[c.name]) / wall for c in watched}
        cpu["others"] = max(0.0, (pl.machine_busy_seconds() - machine0) / wall - sum(cpu.values()))
        desks.send("stop")
        await desks.line("DONE", 60)
        await self.stop(desks)
        if mode == "multi":
            for service in reversed(server.services):
                await service.finish()
                self.services.remove(service)
        else:
            server.send("stop")
            await self.stop(server)
        return {"mode": mode, "sim": done, "cpu": cpu, "connect_s": connect_s,
                **pl.join(json.loads(stamps_file.read_text()), json.loads(out.read_text()))}

    async def run(self) -> None:
        a = self.args
        t_setup = time.monotonic()
        callers = await asyncio.to_thread(prepare_database, self.db_url, a.desks)
        callers_file = self.workdir / "callers.json"
        callers_file.write_text(json.dumps(callers))
        print(f"setup: {a.desks} operators + demo client base in {time.monotonic() - t_setup:.1f} s "
              f"({a.db}); {len(callers)} caller numbers", flush=True)
        sim = await self.spawn("sim", "--desks", str(a.desks), "--callers", str(callers_file),
                               "--ring", str(a.ring), "--talk", str(a.talk))
        self.sim_port = (await sim.line("READY", pl.STARTUP_TIMEOUT))["port"]
        results = []
        for mode in a.order.split(","):
            results.append(await self.phase(sim, mode))
            print(f"  {mode}: done", flush=True)
        sim.send("quit")
        await self.stop(sim)
        report(a, results)

    async def cleanup(self) -> None:
        for service in list(self.services):
            with contextlib.suppress(Exception):
                await service.finish(timeout=5)
        await super().cleanup()


def prepare_database(url: str, desks: int) -> list[tuple[str, str]]:
    """Schema, the demo client base and one operator per desk (cheap argon2 cost: login is set-up)."""
    from argon2 import PasswordHasher

    from crm_core.db import make_engine, make_sessionmaker
    from crm_core.migrate import upgrade
    from crm_core.models import Operator
    from crm_core.seed import demo_callers, seed_demo

    upgrade(url)
    engine = make_engine(url)
    try:
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(pl.PASSWORD)
        with make_sessionmaker(engine)() as session:
            seed_demo(session)
            session.add_all(
                Operator(login=f"{pl.LOGIN_PREFIX}{i}", name=f"Bench Operator {i}", password_hash=cheap,
                         interface=pl.interface_of(i))
                for i in range(desks)
            )
            session.commit()
            return demo_callers(session)
    finally:
        engine.dispose()


def report(a: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print(f"\npop latency: {a.desks} desks, {a.rate:g} calls/s for {a.seconds:g} s (after {a.warmup:g} s warm-up), "
          f"agents ring {a.ring:g} s, talk {a.talk:g} s; database {a.db}; {os.cpu_count()} cores")
    print("AMI AgentCalled written (simulator) -> pop received (desk websocket client), ms")
    print(f"{'':10}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>9}   expected received missing misrouted   "
          "rate achieved   CPU sim/server/desks/others")
    p50, p99 = {}, {}
    for r in results:
        lat = r["latencies"]
        p50[r["mode"]], p99[r["mode"]] = pl.percentile(lat, 50), pl.percentile(lat, 99)
        sim, cpu = r["sim"], r["cpu"]
        rate = sim["placed"] / sim["placing_s"] if sim["placing_s"] else float("nan")
        server = {"floor": "relay", "embedded": "product", "multi": "server"}[r["mode"]]
        print(f"{r['mode']:10}{p50[r['mode']]:8.2f}{pl.percentile(lat, 90):8.2f}{p99[r['mode']]:8.2f}"
              f"{(lat[-1] if lat else float('nan')):9.2f}   {r['expected']:8} {r['received']:8} {r['lost']:7} "
              f"{r['misrouted']:9}   {rate:8.1f}/s      "
              f"{cpu['sim']:.0%}/{cpu[server]:.0%}/{cpu['desks']:.0%}/{cpu['others']:.0%}")
    for r in results:
        if r["sim"]["worst_lag_s"] > 0.05:
            print(f"  note ({r['mode']}): the simulator fell behind its schedule by up to "
                  f"{r['sim']['worst_lag_s'] * 1000:.0f} ms")
    busiest = max(r["cpu"]["others"] for r in results)
    if busiest > 0.15:
        print(f"  WARNING: other processes used up to {busiest:.0%} of a core during a phase: "
              "figures include their interference")
    if "multi" in p99 and "embedded" in p99:
        print(f"multi / embedded: p50 {p50['multi'] / p50['embedded']:.2f}x, p99 {p99['multi'] / p99['embedded']:.2f}x")
    if "floor" in p99:
        for mode in ("embedded", "multi"):
            if mode in p99:
                print(f"{mode} p99 / floor p99 = {p99[mode] / p99['floor']:.2f}x")


@contextlib.contextmanager
def bench_database(db: str, workdir: Path, prefix: str) -> Iterator[str]:
    """The run's database URL: a file in `workdir` (sqlite), or a fresh schema in PostgreSQL's `test`
    that is dropped afterwards."""
    if db == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    from sqlalchemy import text

    from crm_core.db import make_engine

    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_SERVER)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


async def run_bench(args: argparse.Namespace, name: str, bench: Any) -> None:
    """`bench(args, workdir, db_url)`'s run() then cleanup(), in a temp dir (kept with --keep) and
    a database of its own."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    try:
        with bench_database(args.db, workdir, name.replace("-", "_")) as db_url:
            runner = bench(args, workdir, db_url)
            try:
                await runner.run()
            finally:
                await runner.cleanup()
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    pl.load_arguments(ap, rate=50.0, desks=500)
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--order", default="floor,embedded,multi", help="phases, comma-separated")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, raw data)")
    args = ap.parse_args()
    pl.settle_load(args)
    args.profile, args.experiment = False, []
    asyncio.run(run_bench(args, "pop-multi", MultiOrchestrator))


if __name__ == "__main__":
    main()
