"""`callcard` command line: demo, serve, run <parts>, ivr, pbx-sim, migrate, seed, create-user."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from callcard.logs import configure_logging, safe_url
from callcard.settings import Settings, SettingsError, require_shared_bus

if TYPE_CHECKING:
    from crm_core.csv_import import ImportReport

log = logging.getLogger("callcard")

DEMO_IVR_SHARE = 0.4  # share of the demo's inbound calls that go through the IVR first
DEMO_RECORDINGS = "var/recordings"  # where the demo's simulator leaves call recordings, unless CALLCARD_RECORDINGS_DIR says


class CliError(RuntimeError):
    """A problem the admin can fix; printed without a traceback."""


def _free_port(host: str, wanted: int) -> int:
    """`wanted` if it is free, else any free port, so the demo never dies on a busy 5038/8000."""
    for port in (wanted, 0):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise CliError(f"no free TCP port on {host}")


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> None:
    from crm_core.migrate import upgrade

    upgrade(settings.database_url)
    print(f"database migrated: {safe_url(settings.database_url)}")


def cmd_seed(settings: Settings, _args: argparse.Namespace) -> None:
    from crm_core.db import make_engine, make_sessionmaker
    from crm_core.seed import seed_demo

    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        summary = seed_demo(session, region=settings.default_region)
        session.commit()
    engine.dispose()
    _print_seed(summary)


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> None:
    """A user in the given departments, by the rules of `crm_core.users` (the admin's page uses them too)."""
    from crm_core import users
    from crm_core.db import make_engine, make_sessionmaker

    codes = tuple(dict.fromkeys(args.department))
    account = users.Account(name=args.name or args.login, role=args.role, departments=codes,
                            interface=args.interface or "")
    password = os.environ.get("CALLCARD_NEW_PASSWORD") or getpass.getpass(f"password for {args.login}: ")
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            users.create_user(session, args.login, account, password, settings.default_language)
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    print(f"created {args.role} {args.login}" + (f" on {args.interface}" if args.interface else "")
          + (f" in {', '.join(codes)}" if codes else ""))


def cmd_deactivate_user(settings: Settings, args: argparse.Namespace) -> None:
    """An employee leaves: the account stops working at once, their phone is free, and their
    personal clients go to the colleague named, so the clients stay with the company."""
    from sqlalchemy import select

    from crm_core import users
    from crm_core.db import make_engine, make_sessionmaker
    from crm_core.models import Operator

    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            user_id = session.scalar(select(Operator.id).where(Operator.login == args.login))
            if user_id is None:
                raise CliError(f"no user {args.login!r}")
            heir_id = None
            if args.clients_to not in ("", "none"):
                heir_id = session.scalar(select(Operator.id).where(Operator.login == args.clients_to, Operator.active))
                if heir_id is None or heir_id == user_id:
                    raise CliError(f"no other active user {args.clients_to!r} to take the clients")
            phone = session.scalar(select(Operator.interface).where(Operator.id == user_id))
            moved = users.deactivate_user(session, user_id, heir_id, clients_to_nobody=args.clients_to == "none")
    except users.UserError as exc:
        raise CliError(f"{exc} (--clients-to LOGIN, or --clients-to none)"
                       if exc.key == "users.err.clients_left" else str(exc)) from None
    finally:
        engine.dispose()
    print(f"deactivated {args.login}" + (f"; {moved} clients now with {args.clients_to}" if heir_id
                                         else f"; {moved} clients left without a personal manager" if moved else ""))
    if phone:
        print(f"{phone} may still be a member of Asterisk's queues: remove it there (this command does not reach "
              "the PBX; deactivating on /admin/users does)")


def cmd_serve(settings: Settings, _args: argparse.Namespace) -> None:
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    from callcard.runtime import start_stack, stop_stack

    stack = await start_stack(settings)
    print(f"callcard is up: {stack.desk_url}  (AMI {settings.ami_host}:{settings.ami_port}, "
          f"FastAGI IVR on {settings.agi_host}:{settings.agi_port})")
    await _wait_for_signal()
    await stop_stack(stack)


def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    """Some parts in one process, meeting the others on the Redis bus (see callcard.runtime).
    `web` alone may have several uvicorn workers; beside other parts it is one in-process server."""
    parts = list(dict.fromkeys(args.parts))
    label = " ".join(parts)
    require_shared_bus(settings, label)
    if args.workers < 1:
        raise CliError(f"--workers must be 1 or more, not {args.workers}")
    if args.workers > 1 and parts != ["web"]:
        raise CliError(f"--workers {args.workers} needs `web` alone: uvicorn's workers are processes of their own")
    log.info("callcard run %s: database %s, bus %s (prefix %r), AMI %s@%s:%s", label,
             safe_url(settings.database_url), safe_url(settings.bus_url), settings.bus_prefix,
             settings.ami_username, settings.ami_host, settings.ami_port)
    if parts == ["web"]:
        _run_web(settings, args.workers)
    else:
        asyncio.run(_run_parts(settings, parts))


async def _run_parts(settings: Settings, parts: list[str]) -> None:
    from callcard.metrics import serve_metrics
    from callcard.runtime import start_stack, stop_stack

    label = " ".join(parts)
    stack = await start_stack(settings, with_web="web" in parts, parts=set(parts) - {"web"})
    if "ivr" in parts and stack.agi is None:
        await stop_stack(stack)
        raise CliError(f"cannot listen on {settings.agi_host}:{settings.agi_port} for FastAGI")
    metrics = serve_metrics(settings.http_host, settings.metrics_port) if settings.metrics_port else None
    log.info("callcard run %s: started%s", label,
             f", metrics on {settings.http_host}:{settings.metrics_port}" if metrics else "")
    await _wait_for_signal()
    await stop_stack(stack)
    if metrics is not None:
        metrics.shutdown()  # type: ignore[attr-defined]


def _run_web(settings: Settings, workers: int) -> None:
    """uvicorn with `workers` processes, each building the app from the environment. With more than
    one, prometheus_client's multiprocess mode (a fresh directory) gives /metrics every worker's figures."""
    import uvicorn

    from callcard.metrics import MULTIPROC_ENV

    made = ""
    if workers > 1:
        if os.environ.get(MULTIPROC_ENV):
            for stale in Path(os.environ[MULTIPROC_ENV]).glob("*.db"):  # the last run's figures
                stale.unlink()
        else:
            made = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="callcard-metrics-")
    try:
        uvicorn.run("agent_desk.app:create_app_from_env", factory=True, host=settings.http_host,
                    port=settings.http_port, workers=workers, log_config=None, log_level="warning",
                    access_log=False, ws_per_message_deflate=False, timeout_graceful_shutdown=5)
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)


def cmd_ivr(settings: Settings, _args: argparse.Namespace) -> None:
    asyncio.run(_ivr(settings))


async def _ivr(settings: Settings) -> None:
    from crm_core.db import make_engine, make_sessionmaker
    from ivr.server import FastAgiServer, IvrApplication

    engine = make_engine(settings.database_url)
    server = FastAgiServer(IvrApplication(make_sessionmaker(engine), settings.default_region))
    try:
        await server.start(settings.agi_host, settings.agi_port)
    except OSError as exc:
        raise CliError(f"cannot listen on {settings.agi_host}:{settings.agi_port}: {exc}") from None
    print(f"FastAGI IVR on agi://{settings.agi_host}:{server.port}/ivr")
    await _wait_for_signal()
    await server.stop()
    engine.dispose()


def cmd_pbx_sim(settings: Settings, args: argparse.Namespace) -> None:
    asyncio.run(_pbx_sim(settings, args))


async def _pbx_sim(settings: Settings, args: argparse.Namespace) -> None:
    from callcard.pbx_sim.scenario import run_demo_traffic
    from callcard.pbx_sim.server import PbxSimulator

    sim = PbxSimulator(username=settings.ami_username, secret=settings.ami_secret,
                       recordings=Path(settings.recordings_dir) if settings.recordings_dir else None)
    await sim.start(args.host, args.port)
    print(f"PBX simulator speaking AMI on {args.host}:{sim.port} (user {settings.ami_username})")
    traffic = None
    if args.traffic:
        callers = [("+73511234567", "Ivan Petrov"), ("83517654321", "")]
        traffic = asyncio.create_task(
            run_demo_traffic(sim, settings.sim_call_interval, random.Random(1), callers)
        )
    await _wait_for_signal()
    if traffic:
        traffic.cancel()
    await sim.stop()


def cmd_demo(settings: Settings, _args: argparse.Namespace) -> None:
    cmd_migrate(settings, _args)
    cmd_seed(settings, _args)
    asyncio.run(_demo(settings))


async def _demo(settings: Settings) -> None:
    from callcard.pbx_sim.scenario import demo_config, run_demo_traffic
    from callcard.pbx_sim.server import PbxSimulator
    from callcard.runtime import start_stack, stop_stack
    from crm_core.seed import demo_callers

    agi_port = _free_port("127.0.0.1", settings.agi_port)
    recordings = settings.recordings_dir or DEMO_RECORDINGS  # the simulator records; the desk plays
    sim = PbxSimulator(demo_config(), username=settings.ami_username, secret=settings.ami_secret,
                       agi_address=("127.0.0.1", agi_port), recordings=Path(recordings))
    await sim.start("127.0.0.1", _free_port("127.0.0.1", settings.ami_port))
    settings = replace(settings, ami_host="127.0.0.1", ami_port=sim.port, agi_host="127.0.0.1", agi_port=agi_port,
                       http_port=_free_port(settings.http_host, settings.http_port), recordings_dir=recordings)
    stack = await start_stack(settings)
    with stack.sessions() as session:
        callers = demo_callers(session)
    traffic = asyncio.create_task(
        run_demo_traffic(sim, settings.sim_call_interval, random.Random(), callers, ivr_share=DEMO_IVR_SHARE),
        name="demo-traffic",
    )
    print(f"\n  Desk:  {stack.desk_url}\n  PBX simulator (AMI) on 127.0.0.1:{sim.port}, "
          f"a call every {settings.sim_call_interval:g} s, {DEMO_IVR_SHARE:.0%} of them through the IVR "
          f"(FastAGI on 127.0.0.1:{agi_port}).  Ctrl+C stops.\n")
    await _wait_for_signal()
    traffic.cancel()
    await stop_stack(stack)
    await sim.stop()


def _print_seed(summary: object) -> None:
    print(f"demo data: {summary}")
    for login, password in getattr(summary, "passwords", {}).items():
        print(f"  login {login:<16} password {password}")


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def cmd_requests(settings: Settings, args: argparse.Namespace) -> None:
    from datetime import UTC, datetime
    from pathlib import Path

    from crm_core.db import make_engine, make_sessionmaker
    from routing.inbox.intake import import_eml_dir

    directory = Path(args.directory)
    if not directory.is_dir():
        raise CliError(f"{directory} is not a directory")
    engine = make_engine(settings.database_url)
    try:
        created = import_eml_dir(make_sessionmaker(engine), directory, datetime.now(UTC), settings.default_region)
    finally:
        engine.dispose()
    print(f"{len(created)} request(s) filed from {directory}")


def cmd_campaign(settings: Settings, args: argparse.Namespace) -> None:
    """`campaign import FILE`: load debts (crm_core.debt_import); rejected rows go to the report, exit 0."""
    from crm_core.debt_import import import_debts

    _import_csv(settings, args, import_debts)


def cmd_clients(settings: Settings, args: argparse.Namespace) -> None:
    """`clients import FILE`: load a client base (crm_core.client_import); rejected rows go to the report."""
    from crm_core.client_import import import_clients

    _import_csv(settings, args, import_clients)


def _import_csv(settings: Settings, args: argparse.Namespace, run: Callable[..., ImportReport]) -> None:
    from crm_core.csv_import import ImportFailed, ImportFileError
    from crm_core.db import make_engine, make_sessionmaker

    source = Path(args.file)
    report_path = Path(args.report) if args.report else source.with_name(source.stem + ".rejected.csv")
    engine = make_engine(settings.database_url)
    try:
        report = run(make_sessionmaker(engine), source, progress=_ProgressPrinter(sys.stderr),
                     region=args.region or settings.default_region, report_path=report_path,
                     lang=settings.default_language)
    except (ImportFileError, ImportFailed, ValueError) as exc:
        raise CliError(f"{source}: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot write the report {report_path}: {exc.strerror or exc}") from None
    finally:
        engine.dispose()
    print(f"{source} ({report.encoding}, {report.delimiter!r}): read {report.read}, "
          f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
          f"rejected {len(report.rejected)}")
    if report.rejected:
        print(f"{len(report.rejected)} rejected row(s) with line numbers and reasons: {report_path}")
    for warning in report.warnings[:20]:
        print(f"  line {warning.line}: {warning.reason.text(settings.default_language)}", file=sys.stderr)
    if len(report.warnings) > 20:
        print(f"  ... {len(report.warnings) - 20} more warning(s)", file=sys.stderr)


class _ProgressPrinter:
    """A bar redrawn in place on a terminal; elsewhere (logs, pipes) a line every 10 %."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if self.tty:
            bar = "#" * (percent // 4)
            end = "\n" if done >= total else ""
            self.stream.write(f"\r[{bar:<25}] {percent:3d}%  {done}/{total} lines{end}")
        elif percent // 10 > self.shown // 10 or (done >= total and percent != self.shown):
            self.stream.write(f"import: {percent}% ({done}/{total} lines)\n")
        else:
            return
        self.shown = percent
        self.stream.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcard", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="migrate, seed, start the PBX simulator and everything else")
    sub.add_parser("serve", help="web app + AMI bridge + call logger + FastAGI IVR against CALLCARD_AMI_*")
    run = sub.add_parser("run", help="some parts of a several-process deployment on the Redis bus")
    run.add_argument("parts", nargs="+", metavar="PART", choices=["bridge", "worker", "web", "ivr", "dialler"],
                     help="bridge: AMI to bus; worker: call log, pops, wall, inbox timers; web: the app "
                          "under uvicorn; ivr: FastAGI; dialler: campaigns. Several share one process")
    run.add_argument("--workers", type=int, default=1, help="web alone: uvicorn worker processes")
    sub.add_parser("ivr", help="run the FastAGI IVR server alone on CALLCARD_AGI_HOST:CALLCARD_AGI_PORT")
    sim = sub.add_parser("pbx-sim", help="run the PBX simulator alone (AMI over TCP)")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=5038)
    sim.add_argument("--traffic", action="store_true", help="place demo calls continuously")
    sub.add_parser("migrate", help="create or upgrade the database schema")
    sub.add_parser("seed", help="load the demo client base (idempotent)")
    user = sub.add_parser("create-user", help="add an operator, department head, supervisor or admin")
    user.add_argument("login")
    user.add_argument("--name", default="")
    user.add_argument("--role", choices=["operator", "department_head", "supervisor", "admin"], default="operator")
    user.add_argument("--department", action="append", default=[], metavar="CODE",
                      help="a department the user works in (repeat for several); a department head heads them")
    user.add_argument("--interface", default="", help="Asterisk device, e.g. PJSIP/101")
    leave = sub.add_parser("deactivate-user", help="an employee leaves: lock the account, hand over their clients")
    leave.add_argument("login")
    leave.add_argument("--clients-to", default="", metavar="LOGIN",
                       help="who becomes personal manager of their clients ('none': nobody)")
    requests = sub.add_parser("requests", help="department requests")
    requests_sub = requests.add_subparsers(dest="requests_command", required=True)
    eml = requests_sub.add_parser("import-eml", help="file every *.eml in DIR as a request (renamed *.eml.done)")
    eml.add_argument("directory")
    campaign = sub.add_parser("campaign", help="outbound debtor campaigns")
    campaign_sub = campaign.add_subparsers(dest="campaign_command", required=True)
    debts = campaign_sub.add_parser("import", help="load debts from a CSV (see crm_core/debt_import.py)")
    clients = sub.add_parser("clients", help="the client base")
    clients_sub = clients.add_subparsers(dest="clients_command", required=True)
    base = clients_sub.add_parser("import", help="load clients from a CSV (see crm_core/client_import.py)")
    for loader in (debts, base):
        loader.add_argument("file")
        loader.add_argument("--report", default="", help="rejected rows CSV (default: FILE.rejected.csv)")
        loader.add_argument("--region", default="", help="the numbers' country (default: CALLCARD_DEFAULT_REGION)")
    return parser


COMMANDS = {
    "demo": cmd_demo, "serve": cmd_serve, "run": cmd_run, "ivr": cmd_ivr, "pbx-sim": cmd_pbx_sim, "migrate": cmd_migrate,
    "seed": cmd_seed, "create-user": cmd_create_user, "deactivate-user": cmd_deactivate_user, "requests": cmd_requests, "campaign": cmd_campaign,
    "clients": cmd_clients,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings, verbose=args.verbose)
        COMMANDS[args.command](settings, args)
    except (CliError, SettingsError) as exc:
        print(f"callcard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
