"""Wall staleness: from the PBX writing AgentConnect to a wall client receiving a snapshot that shows it.

Processes as in pop_latency.py (whose children and helpers this reuses): the PBX simulator
placing `--rate` calls/s into one queue of `--desks` operators, the server side, and one
asyncio process holding every desk websocket and every wall websocket (`--walls`). The
server side runs twice against the same simulator and clients:

* floor: a bare relay that reads the AMI bytes, splits frames and sends each AgentConnect's
  Linkedid to every wall websocket at once (no parsing beyond that, no state, no throttle);
* product: `callcard.runtime.start_stack` (bridge, QueueTracker, wall service publishing at
  most every 0.5 s, web app), desks and walls logged in through POST /login.

Walls come in the two views the page has. A table wall (`--table-walls` of them) tells the
server `{"view": "table"}` and also receives the per-agent table; for it "reflects the call"
means an agents message lists that Linkedid as some agent's current call. A big-number wall
receives only the per-queue figures, cut from the same snapshot (same `at`): for it the call is
reflected by the queues message of the first snapshot whose agents part shows the call (so its
counters include that answer). Staleness is measured for every (AgentConnect, wall) pair;
both ends stamp CLOCK_MONOTONIC. Goal: product p99 <= 1 s. Figures only, no timed assertion.

    .venv/bin/python bench/wall.py [--rate 100 --desks 1000 --walls 200 --seconds 10]
    .venv/bin/python bench/wall.py --quick        # 50 desks, 20 walls (2 table), 20 calls/s, 3 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pop_latency as pl  # noqa: E402  (the bench's shared children and helpers)

AGENT_CONNECT = b"Event: AgentConnect\r\n"
SUPERVISOR = "benchsuper"
SNAPSHOT_KEY_CHARS = 64  # `{"type": "wall", "at": <epoch>, ...`: enough to tell snapshots apart


def run_sim(args: argparse.Namespace) -> None:
    """pop_latency's simulator, stamping AgentConnect instead of AgentCalled."""
    pl.AGENT_CALLED = AGENT_CONNECT
    asyncio.run(pl.run_sim(args))


async def run_relay(args: argparse.Namespace) -> None:
    """Floor: AgentConnect's Linkedid to every wall at once; desks are only held open."""
    from websockets.asyncio.server import ServerConnection, serve

    walls: set[ServerConnection] = set()

    async def client(ws: ServerConnection) -> None:
        is_wall = ws.request.path.startswith("/wall")
        if is_wall:
            walls.add(ws)
        await ws.send('{"type":"hello"}')
        try:
            await ws.wait_closed()
        finally:
            walls.discard(ws)

    async with serve(client, "127.0.0.1", args.http_port, compression=None):
        reader, writer = await asyncio.open_connection("127.0.0.1", args.ami_port)
        writer.write(b"Action: Login\r\nUsername: crm\r\nSecret: crm-secret\r\nEvents: on\r\n\r\n")
        buf = b""
        while b"Authentication accepted" not in buf:
            buf += await reader.read(65536)
        buf = b""
        pl.ready()

        async def pump() -> None:
            nonlocal buf
            while data := await reader.read(65536):
                buf += data
                *frames, buf = buf.split(b"\r\n\r\n")
                for frame in frames:
                    if frame.startswith(AGENT_CONNECT):
                        text = json.dumps({"type": "floor", "linkedid": pl.header(frame, b"Linkedid")})
                        for ws in list(walls):
                            await ws.send(text)

        pumping = asyncio.create_task(pump())
        await pl.until_stop(await pl.stdin_lines())
        pumping.cancel()
        writer.close()


async def run_clients(args: argparse.Namespace) -> None:
    """Every desk and wall socket in one loop; a wall records (time, wall, snapshot key) and each
    distinct snapshot's text once."""
    import httpx
    from websockets.asyncio.client import ClientConnection, connect

    base = f"127.0.0.1:{args.http_port}"
    desk_cookies: list[str] = []
    wall_cookie = ""
    if args.mode == "product":
        async with httpx.AsyncClient(base_url=f"http://{base}", timeout=60) as client:
            for i in range(args.desks):
                desk_cookies.append(await pl.login(client, i))
            client.cookies.clear()
            page = await client.get("/login")
            token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            await client.post("/login", data={"login": SUPERVISOR, "password": pl.PASSWORD, "csrf": token})
            wall_cookie = client.cookies["callcard_session"]

    async def open_socket(path: str, cookie: str) -> ClientConnection:
        headers = {"Cookie": f"callcard_session={cookie}"} if cookie else {}
        return await connect(f"ws://{base}{path}", additional_headers=headers, ping_interval=None,
                             open_timeout=60, compression=None, max_size=None)

    gate = asyncio.Semaphore(50)

    async def gated(path: str, cookie: str) -> ClientConnection:
        async with gate:
            return await open_socket(path, cookie)

    if args.mode == "product":
        desks = await asyncio.gather(*(gated("/ws/desk", c) for c in desk_cookies))
        walls = await asyncio.gather(*(gated("/ws/wall", wall_cookie) for _ in range(args.walls)))
        for ws in walls[:args.table_walls]:
            await ws.send(json.dumps({"view": "table"}))
    else:
        desks = await asyncio.gather(*(gated(f"/desk?i={i}", "") for i in range(args.desks)))
        walls = await asyncio.gather(*(gated(f"/wall?i={i}", "") for i in range(args.walls)))
    received: list[tuple[int, int, str]] = []
    texts: dict[str, str] = {}

    async def drain(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for _ in ws:
                pass

    async def watch(i: int, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                now = time.monotonic_ns()
                text = message if isinstance(message, str) else message.decode()
                key = text[:SNAPSHOT_KEY_CHARS]
                if key not in texts:
                    texts[key] = text
                received.append((now, i, key))

    tasks = [asyncio.create_task(drain(ws)) for ws in desks]
    tasks += [asyncio.create_task(watch(i, ws)) for i, ws in enumerate(walls)]
    pl.ready(desks=len(desks), walls=len(walls))
    await pl.until_stop(await pl.stdin_lines())
    for task in tasks:
        task.cancel()
    bodies = {key: json.loads(text) for key, text in texts.items()}
    on_call = {b["at"]: [a["call"]["linkedid"] for a in b["agents"] if a.get("call")]
               for b in bodies.values() if b.get("type") == "wall_agents"}
    shown: dict[str, list[str]] = {}  # the calls each message reflects
    kinds: dict[str, str] = {}
    for key, body in bodies.items():
        kinds[key] = {"wall": "queues", "wall_agents": "agents"}.get(body.get("type"), "floor")
        if body.get("type") == "floor":
            shown[key] = [body["linkedid"]]
        elif body.get("type") in ("wall", "wall_agents"):
            shown[key] = on_call.get(body["at"], [])
    sizes = {key: len(text) for key, text in texts.items()}
    Path(args.out).write_text(json.dumps({"received": received, "shown": shown, "kinds": kinds,
                                          "sizes": sizes}))
    print("DONE", flush=True)
    await asyncio.wait([asyncio.create_task(ws.close()) for ws in [*desks, *walls]], timeout=10)


def reflected(clients: dict[str, Any]) -> dict[tuple[int, str], int]:
    """(wall, Linkedid) -> when that wall first held a message reflecting the answered call."""
    first: dict[tuple[int, str], int] = {}
    for t, wall, key in sorted(clients["received"]):
        for linkedid in clients["shown"].get(key, ()):
            first.setdefault((wall, linkedid), t)
    return first


def staleness(stamps: list[list[Any]], clients: dict[str, Any], walls: range) -> dict[str, Any]:
    """Seconds from each AgentConnect written to each of `walls` reflecting it (see `reflected`)."""
    first = reflected(clients)
    values: list[float] = []
    missing = 0
    for t, linkedid, _iface in stamps:
        for wall in walls:
            seen = first.get((wall, linkedid))
            if seen is None:
                missing += 1
            else:
                values.append((seen - t) / 1e9)
    kinds: dict[str, list[int]] = {}
    for key, size in clients["sizes"].items():
        kinds.setdefault(clients["kinds"][key], []).append(size)
    wall_set = set(walls)
    received = [r for r in clients["received"] if r[1] in wall_set]
    return {"values": sorted(values), "missing": missing, "expected": len(stamps) * len(walls),
            "messages": len(received),
            "kb": {kind: sum(v) / len(v) / 1024 for kind, v in kinds.items()},
            "bytes": sum(clients["sizes"][key] for _t, _w, key in received)}


async def phase(o: pl.Orchestrator, sim: pl.Child, mode: str) -> list[dict[str, Any]]:
    a = o.args
    http_port = pl.free_port()
    common = ["--ami-port", str(o.sim_port), "--http-port", str(http_port), "--desks", str(a.desks),
              "--walls", str(a.walls), "--table-walls", str(a.table_walls)]
    if mode == "floor":
        server = await o.spawn("relay", *common)
    else:
        server = await o.spawn("product", *common, "--db", o.db_url, "--out", str(o.workdir / "gc.json"))
    await server.line("READY", pl.STARTUP_TIMEOUT)
    out = o.workdir / f"{mode}-clients.json"
    clients = await o.spawn("clients", *common, "--mode", mode, "--out", str(out))
    await clients.line("READY", pl.STARTUP_TIMEOUT + a.desks * 0.2)
    sim.send(f"phase {mode}-warm {a.rate} {a.warmup} {o.workdir / 'warm.json'} nodrain")
    await sim.line("DONE", a.warmup + a.ring + a.talk + 60)
    server.send("mark")
    cpu0 = {c.name: c.cpu_seconds() for c in (sim, server, clients)}
    wall0 = time.monotonic()
    stamps_file = o.workdir / f"{mode}-sim.json"
    sim.send(f"phase {mode} {a.rate} {a.seconds} {stamps_file} drain")
    done = await sim.line("DONE", a.seconds * 3 + a.ring + a.talk + 60)
    await asyncio.sleep(1.5)  # a snapshot throttled to 0.5 s may still be on its way
    elapsed = time.monotonic() - wall0
    cpu = {c.name: (c.cpu_seconds() - cpu0[c.name]) / elapsed for c in (sim, server, clients)}
    clients.send("stop")
    await clients.line("DONE", 120)
    await o.stop(clients)
    server.send("stop")
    await o.stop(server)
    stamps, received = json.loads(stamps_file.read_text()), json.loads(out.read_text())
    if mode == "floor":
        return [{"mode": mode, "sim": done, "cpu": cpu, "elapsed": elapsed,
                 **staleness(stamps, received, range(a.walls))}]
    return [{"mode": f"product/{view}", "sim": done, "cpu": cpu, "elapsed": elapsed, **staleness(stamps, received, walls)}
            for view, walls in (("table", range(a.table_walls)), ("big", range(a.table_walls, a.walls)))
            if walls]


def report(a: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print(f"\nwall staleness: {a.walls} walls + {a.desks} desks connected, {a.rate:g} calls/s for {a.seconds:g} s, "
          f"agents ring {a.ring:g} s, talk {a.talk:g} s; {os.cpu_count()} cores")
    print("AMI AgentConnect written (simulator) -> wall client holds a message showing that call, seconds")
    print(f"{a.table_walls} of the walls show the agents table, the others the big numbers")
    print(f"{'':15}{'p50':>7}{'p90':>7}{'p99':>7}{'max':>7}   pairs expected/seen/missing   messages  "
          "MB/s sent   mean KB queues/agents   CPU sim/server/clients")
    p99 = {}
    for r in results:
        v = r["values"]
        p99[r["mode"]] = pl.percentile(v, 99)
        server = "relay" if r["mode"] == "floor" else "product"
        kb = "/".join(f"{r['kb'].get(k, 0):.1f}" for k in ("queues", "agents"))
        print(f"{r['mode']:15}{pl.percentile(v, 50):7.3f}{pl.percentile(v, 90):7.3f}{p99[r['mode']]:7.3f}"
              f"{(v[-1] if v else float('nan')):7.3f}   {r['expected']:8}/{len(v)}/{r['missing']}"
              f"   {r['messages']:8} {r['bytes'] / r['elapsed'] / 1e6:9.2f}   {kb:>20}   "
              f"{r['cpu']['sim']:.0%}/{r['cpu'][server]:.0%}/{r['cpu']['clients']:.0%}")
        if r["sim"]["worst_lag_s"] > 0.05:
            print(f"  note ({r['mode']}): the simulator fell behind its schedule by up to "
                  f"{r['sim']['worst_lag_s'] * 1000:.0f} ms")
    worst = max(v for k, v in p99.items() if k != "floor")
    print(f"product p99 (worst view) {worst:.3f} s vs floor {p99['floor']:.3f} s   (goal: p99 <= 1 s: "
          f"{'met' if worst <= 1 else 'NOT met'})")


async def orchestrate(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="wall-bench-"))
    o = pl.Orchestrator(args, workdir)
    o.spawn = _spawner(o)  # type: ignore[method-assign]
    try:
        callers = pl.prepare_database(workdir, args.desks)
        add_supervisor(workdir)
        o.db_url = f"sqlite:///{workdir / 'bench.db'}"
        (workdir / "callers.json").write_text(json.dumps(callers))
        sim = await o.spawn("sim", "--desks", str(args.desks), "--callers", str(workdir / "callers.json"),
                            "--ring", str(args.ring), "--talk", str(args.talk))
        o.sim_port = (await sim.line("READY", pl.STARTUP_TIMEOUT))["port"]
        results = [*await phase(o, sim, "floor"), *await phase(o, sim, "product")]
        sim.send("quit")
        await o.stop(sim)
        report(args, results)
    finally:
        await o.cleanup()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _spawner(o: pl.Orchestrator) -> Any:
    """Children are this script (so `--role clients` and the AgentConnect stamp are ours)."""

    async def spawn(role: str, *extra: str) -> pl.Child:
        log = o.workdir / f"{role}.log"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--role", role, *extra,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log.open("wb"), cwd=pl.REPO,
        )
        child = pl.Child(role, proc, log)
        o.children.append(child)
        return child

    return spawn


def add_supervisor(workdir: Path) -> None:
    from argon2 import PasswordHasher

    from crm_core.db import make_engine, make_sessionmaker
    from crm_core.models import Operator

    engine = make_engine(f"sqlite:///{workdir / 'bench.db'}")
    try:
        with make_sessionmaker(engine)() as session:
            cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(pl.PASSWORD)
            session.add(Operator(login=SUPERVISOR, name="Bench Supervisor", password_hash=cheap, role="supervisor"))
            session.commit()
    finally:
        engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=100.0, help="new calls per second")
    ap.add_argument("--desks", type=int, default=1000, help="operators, each with a desk websocket")
    ap.add_argument("--walls", type=int, default=200, help="wall websockets (one supervisor login)")
    ap.add_argument("--table-walls", type=int, default=None, help="walls showing the agents table (default 10 %%)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds of calls")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of calls before measuring")
    ap.add_argument("--ring", type=float, default=None, help="seconds an agent lets the phone ring")
    ap.add_argument("--talk", type=float, default=None, help="seconds an agent talks (>= 1.5 s: seen by a snapshot)")
    ap.add_argument("--quick", action="store_true", help="50 desks, 20 walls, 20 calls/s, 3 s: a smoke check")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, database, raw data)")
    ap.add_argument("--role", default="", help=argparse.SUPPRESS)
    for hidden in ("--ami-port", "--http-port"):
        ap.add_argument(hidden, type=int, default=0, help=argparse.SUPPRESS)
    for hidden in ("--db", "--callers", "--mode", "--out"):
        ap.add_argument(hidden, default="", help=argparse.SUPPRESS)
    ap.set_defaults(experiment=[], profile=False)
    args = ap.parse_args()
    if args.quick:
        args.desks, args.walls, args.rate, args.seconds, args.warmup = 50, 20, 20.0, 3.0, 0.5
    if args.table_walls is None:
        args.table_walls = max(1, args.walls // 10)
    hold = 0.5 * args.desks / args.rate  # keep the queue at most half busy, as pop_latency does
    args.ring = args.ring if args.ring is not None else round(hold * 0.3, 2)
    args.talk = args.talk if args.talk is not None else max(1.5, round(hold * 0.7, 2))
    if args.role == "sim":
        run_sim(args)
        return
    role = {"relay": run_relay, "product": pl.run_product, "clients": run_clients}.get(args.role)
    asyncio.run(role(args) if role else orchestrate(args))


if __name__ == "__main__":
    main()
