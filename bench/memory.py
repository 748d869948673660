"""Memory of a production layout with 1,000 desks connected and 500 calls live.

Starts callcard's processes on the Redis bus. `--layout split` (the default) as docker-compose.yml
runs them, one process per part: `callcard run bridge`, `worker`, `web --workers 2`, `ivr`,
`dialler`. `--layout compact`, the README's small-centre layout: `app` (`callcard run bridge worker
ivr dialler web`, every part in one process) and `bridge` (`callcard run bridge`, the second bridge,
standing by; started once app's bridge leads, so the figures do not depend on which one wins the
lease); `--layout compact-failover` starts the second bridge first, so that it leads and app's
stands by, as after app's bridge has failed over. `--layout embedded` measures `callcard serve`
(every part in one process, in-process bus).
PostgreSQL: a fresh schema in `test`, dropped afterwards; or `--db sqlite`. The PBX simulator (one
queue of `--desks` members) and the desk clients (every operator logged in through /login, one
websocket each) are `bench/pop_latency.py`'s children, separate processes, and are not counted.
Every callcard process gets MALLOC_ARENA_MAX=2 as the Dockerfile sets it (`--arenas 0`: glibc's
default).

Resident memory (VmRSS, and PSS from smaps_rollup, which splits shared pages fairly) of every
callcard process and its children, at four moments: idle after start-up, all desks connected,
`--calls` calls ringing (placed at 100/s, agents let them ring `--ring` s), the same calls
talking. Prints per process and the total against the goal (<= 200 MB RSS total).

    .venv/bin/python bench/memory.py                     # 1,000 desks, 500 calls, split layout
    .venv/bin/python bench/memory.py --layout compact
    .venv/bin/python bench/memory.py --layout embedded
    .venv/bin/python bench/memory.py --desks 100 --calls 50   # a smoke check
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pop_latency as pl  # noqa: E402
from pop_multi import (  # noqa: E402
    REDIS_URL,
    Service,
    ServiceOrchestrator,
    descendants,
    http_get,
    prepare_database,
    run_bench,
    wait_until,
)

GOAL_MB = 200
TRACE_FRAMES = 30
# process name: `callcard run` arguments, started in this order, each ready before the next
LAYOUTS = {
    "split": {"bridge": ("bridge",), "worker": ("worker",), "web": ("web", "--workers", "2"), "ivr": ("ivr",),
              "dialler": ("dialler",)},
    "compact": {"app": ("bridge", "worker", "ivr", "dialler", "web"), "bridge": ("bridge",)},
    # the same two processes after a failover: the second bridge leads, app's bridge stands by
    "compact-failover": {"bridge": ("bridge",), "app": ("bridge", "worker", "ivr", "dialler", "web")},
}


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def snapshot(services: list[Service]) -> list[tuple[str, int, int, int]]:
    """(label, pid, RSS kB, PSS kB) of every process of every service, children included."""
    rows = []
    for service in services:
        for n, pid in enumerate(descendants(service.proc.pid)):
            with contextlib.suppress(OSError):
                label = service.name if n == 0 else f"{service.name} child {n}"
                rows.append((label, pid, status_kb(pid, "VmRSS"), pss_kb(pid)))
    return rows


def print_snapshots(snaps: dict[str, list[tuple[str, int, int, int]]]) -> None:
    moments = list(snaps)
    labels = [label for label, *_ in snaps[moments[-1]]]
    print(f"\nresident memory, MB (RSS; PSS in brackets)\n{'process':20}" + "".join(f"{m:>22}" for m in moments))
    for label in labels:
        cells = []
        for m in moments:
            row = next((r for r in snaps[m] if r[0] == label), None)
            cells.append(f"{row[2] / 1024:10.1f} ({row[3] / 1024:6.1f})   " if row else f"{'-':>22}")
        print(f"{label:20}" + "".join(f"{c:>22}" for c in cells))
    totals = [(sum(r[2] for r in snaps[m]) / 1024, sum(r[3] for r in snaps[m]) / 1024) for m in moments]
    print(f"{'total':20}" + "".join(f"{f'{rss:10.1f} ({pss:6.1f})   ':>22}" for rss, pss in totals))
    peak = max(rss for rss, _ in totals)
    print(f"\npeak total RSS {peak:.1f} MB over {len(labels)} processes "
          f"(goal <= {GOAL_MB} MB: {'met' if peak <= GOAL_MB else 'NOT met'})")


class MemoryRun(ServiceOrchestrator):
    async def run(self) -> None:
        a = self.args
        callers = await asyncio.to_thread(prepare_database, self.db_url, a.desks)
        callers_file = self.workdir / "callers.json"
        callers_file.write_text(json.dumps(callers))
        sim = await self.spawn("sim", "--desks", str(a.desks), "--callers", str(callers_file),
                               "--ring", str(a.ring), "--talk", str(a.talk))
        sim_port = (await sim.line("READY", pl.STARTUP_TIMEOUT))["port"]
        http_port = pl.free_port()
        env = {**os.environ, "CALLCARD_DATABASE_URL": self.db_url, "CALLCARD_AMI_HOST": "127.0.0.1",
               "CALLCARD_AMI_PORT": str(sim_port), "CALLCARD_HTTP_HOST": "127.0.0.1",
               "CALLCARD_HTTP_PORT": str(http_port), "CALLCARD_SECRET_KEY": pl.SECRET_KEY,
               "CALLCARD_AGI_HOST": "127.0.0.1", "CALLCARD_AGI_PORT": str(pl.free_port())}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.pop("MALLOC_ARENA_MAX", None)
        if a.arenas:
            env["MALLOC_ARENA_MAX"] = str(a.arenas)
        if a.layout == "embedded":
            await self.start_embedded(env, http_port)
        else:
            await self.start_processes(env, http_port, LAYOUTS[a.layout])
        await asyncio.sleep(5)
        self.snaps: dict[str, list[tuple[str, int, int, int]]] = {}
        await self.snap("idle")
        print("idle: " + ", ".join(f"{label} {rss / 1024:.0f}" for label, _, rss, _ in self.snaps["idle"]), flush=True)
        desks = await self.spawn("desks", "--ami-port", str(sim_port), "--http-port", str(http_port),
                                 "--desks", str(a.desks), "--mode", "product", "--out", str(self.workdir / "pops.json"))
        t0 = time.monotonic()
        await desks.line("READY", pl.STARTUP_TIMEOUT + a.desks * 0.2)
        print(f"{a.desks} desks connected in {time.monotonic() - t0:.1f} s", flush=True)
        await asyncio.sleep(3)
        await self.snap(f"{a.desks} desks")
        t0 = time.monotonic()
        sim.send(f"phase live {a.calls / a.ring_in:g} {a.ring_in:g} {self.workdir / 'live.json'} nodrain")
        placed = await sim.line("DONE", a.ring_in + 60)
        print(f"{placed['placed']} calls placed in {placed['placing_s']:.1f} s, {placed['undrained_calls']} live in "
              f"the simulator, {placed['agent_called']} ringing an agent", flush=True)
        await asyncio.sleep(max(0.0, min(3.0, a.ring - (time.monotonic() - t0) - 1)))
        await self.snap(f"{a.calls} ringing")
        await asyncio.sleep(max(0.0, a.ring - (time.monotonic() - t0)) + 5)
        await self.snap(f"{a.calls} talking")
        desks.send("stop")
        await desks.line("DONE", 60)
        pops = json.loads((self.workdir / "pops.json").read_text())
        print(f"desks received {sum(1 for _, _, linkedid in pops if linkedid)} pops", flush=True)
        await self.stop(desks)
        if a.trace:
            self.traced.send("stop")
        for service in reversed(self.services):
            await service.finish()
        self.services.clear()
        sim.send("quit")
        await self.stop(sim)
        print_snapshots(self.snaps)
        if a.trace:
            names = [n.replace(" ", "-") for n in self.snaps]
            print_growth(self.workdir, names[0], names[1], "desks connected")
            print_growth(self.workdir, names[1], names[-1], "calls live")

    async def start_processes(self, env: dict[str, str], http_port: int, layout: dict[str, tuple[str, ...]]) -> None:
        """Each process of `layout` on a fresh Redis prefix, in order, each ready before the next
        starts, so the first one with the bridge part leads."""
        env = {**env, "CALLCARD_BUS_URL": REDIS_URL,
               "CALLCARD_BUS_PREFIX": f"membench-{uuid.uuid4().hex[:8]}:"}
        leading = False
        for name, args in layout.items():
            lead = "bridge" in args and not leading
            await self.start_process(name, args, env, http_port, lead)
            leading = leading or lead

    async def start_process(self, name: str, args: tuple[str, ...], env: dict[str, str], http_port: int,
                            lead: bool) -> None:
        """`callcard run <args>`, returning once it leads (`lead`) or else serves its metrics (`web`
        alone is uvicorn's and has none), and, with the web part, answers /readyz from every worker."""
        port = pl.free_port()
        metrics = f"http://127.0.0.1:{port}/metrics"
        service = await self.start_service(args[0], {**env, "CALLCARD_METRICS_PORT": str(port)}, *args[1:],
                                           name=name)
        parts = [arg for arg in args if not arg.startswith("--") and not arg.isdigit()]
        if lead:
            await wait_until("leading and logged in to the simulator",
                             lambda: "callcard_ami_connected 1.0" in http_get(metrics)[1], service)
        elif parts != ["web"]:
            await wait_until("serving metrics", lambda: http_get(metrics)[0] == 200, service)
        if "web" in parts:
            await wait_until("ready", lambda: http_get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200, service)
        if "--workers" in args:  # /readyz is answered by whichever worker is up first
            workers = int(args[args.index("--workers") + 1])
            await wait_until(f"running {workers} workers",
                             lambda: len(descendants(service.proc.pid)) >= workers + 1, service)

    async def start_embedded(self, env: dict[str, str], http_port: int) -> None:
        """`callcard serve`: every part in one process on the in-process bus (or the same stack under
        tracemalloc, `--trace`)."""
        env = {**env, "CALLCARD_BUS_URL": "memory://"}
        if self.args.trace:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(Path(__file__).resolve()), "--role", "traced", env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=(self.workdir / "traced.log").open("wb"), cwd=pl.REPO)
            self.traced = pl.Child("traced", proc, self.workdir / "traced.log")
            self.services.append(Service("serve", proc, self.traced.log))
            await self.traced.line("READY", pl.STARTUP_TIMEOUT)
            return
        service = await self.start_service("serve", env)
        await wait_until("ready", lambda: http_get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200, service)

    async def snap(self, name: str) -> None:
        """Sample memory now; under `--trace` also dump the traced process's allocations."""
        self.snaps[name] = snapshot(self.services)
        if self.args.trace:
            self.traced.send(f"snap {self.workdir / (name.replace(' ', '-') + '.snap')}")
            await self.traced.line("SNAP", 300)

    async def cleanup(self) -> None:
        for service in list(self.services):
            with contextlib.suppress(Exception):
                await service.finish(timeout=5)
        await super().cleanup()


async def run_traced() -> None:
    """The embedded stack (what `callcard serve` starts) under tracemalloc; `snap PATH` dumps a snapshot."""
    import tracemalloc

    from callcard.runtime import start_stack, stop_stack
    from callcard.settings import Settings

    tracemalloc.start(TRACE_FRAMES)
    stack = await start_stack(Settings.from_env())
    pl.ready()
    commands = await pl.stdin_lines()
    while (line := (await commands.readline()).decode().split()) and line[0] == "snap":
        tracemalloc.take_snapshot().dump(line[1])
        print("SNAP", flush=True)
    await stop_stack(stack)


def print_growth(workdir: Path, before: str, after: str, what: str, top: int = 12) -> None:
    """Where the traced process's memory grew between two snapshots: by package, then by call site
    (the allocating line and the nearest callcard frame above it)."""
    import tracemalloc

    old = tracemalloc.Snapshot.load(str(workdir / f"{before}.snap"))
    new = tracemalloc.Snapshot.load(str(workdir / f"{after}.snap"))
    stats = new.compare_to(old, "traceback")
    total = sum(s.size_diff for s in stats)
    by_package: dict[str, int] = {}
    for stat in stats:
        by_package[_package(stat.traceback[-1].filename)] = (
            by_package.get(_package(stat.traceback[-1].filename), 0) + stat.size_diff)
    print(f"\ntracemalloc, {what} ({before} -> {after}): {total / 2**20:+.1f} MB of Python allocations")
    print("  by allocating package: " + ", ".join(
        f"{name} {size / 2**20:+.1f}" for name, size in sorted(by_package.items(), key=lambda kv: -kv[1])[:8]))
    for stat in sorted(stats, key=lambda s: -s.size_diff)[:top]:
        frames = list(stat.traceback)
        site = frames[-1]
        ours = next((f for f in reversed(frames) if "/work/main/" in f.filename and "/.venv/" not in f.filename), None)
        where = f" <- {_short(ours.filename)}:{ours.lineno}" if ours is not None and ours is not site else ""
        print(f"  {stat.size_diff / 2**20:+7.2f} MB {stat.count_diff:+8} blocks  {_short(site.filename)}:{site.lineno}"
              f"{where}")


def _package(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0].removesuffix(".py")
    if "/lib/python3" in filename:
        return "stdlib:" + filename.split("/lib/python3")[1].split("/")[1].removesuffix(".py")
    return filename.split("/work/main/")[-1].split("/")[0]


def _short(filename: str) -> str:
    return filename.split("site-packages/")[-1].split("/work/main/")[-1].split("/lib/python3.11/")[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--desks", type=int, default=1000, help="operators, each with a desk websocket")
    ap.add_argument("--calls", type=int, default=500, help="calls put live at once")
    ap.add_argument("--ring", type=float, default=20.0, help="seconds each call rings before the agent answers")
    ap.add_argument("--talk", type=float, default=600.0, help="seconds each call talks (longer than the run)")
    ap.add_argument("--ring-in", type=float, default=5.0, help="seconds over which the calls are placed")
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--layout", choices=[*LAYOUTS, "embedded"],
                    default="split", help="one process per part on Redis (docker-compose.yml), app and a "
                                          "second bridge on Redis (README: a small centre), or `callcard serve` alone")
    ap.add_argument("--arenas", type=int, default=2,
                    help="MALLOC_ARENA_MAX of every callcard process, as the Dockerfile; 0: glibc's default")
    ap.add_argument("--trace", action="store_true",
                    help="embedded layout under tracemalloc: print where memory grows (slow; sizes differ)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    ap.add_argument("--role", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "traced":
        asyncio.run(run_traced())
        return
    if args.trace:
        args.layout = "embedded"
    if args.calls > args.desks:
        ap.error("--calls must not exceed --desks: every live call rings or talks to its own agent")
    asyncio.run(run_bench(args, "memory-bench", MemoryRun))


if __name__ == "__main__":
    main()
