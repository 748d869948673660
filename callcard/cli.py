"""`callcard` command line: demo, serve, ivr, pbx-sim, migrate, seed, create-user."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import random
import signal
import socket
import sys
from dataclasses import replace

from callcard.settings import Settings, SettingsError

DEMO_IVR_SHARE = 0.4  # share of the demo's inbound calls that go through the IVR first


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
    print(f"database migrated: {_safe_url(settings.database_url)}")


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
    from crm_core.db import make_engine, make_sessionmaker
    from crm_core.models import Operator
    from crm_core.passwords import hash_password

    password = os.environ.get("CALLCARD_NEW_PASSWORD") or getpass.getpass(f"password for {args.login}: ")
    if len(password) < 8:
        raise CliError("password must be at least 8 characters")
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        if session.query(Operator).filter_by(login=args.login).first() is not None:
            raise CliError(f"user {args.login!r} already exists")
        session.add(Operator(login=args.login, name=args.name or args.login, role=args.role,
                             interface=args.interface or None, password_hash=hash_password(password),
                             language=settings.default_language))
        session.commit()
    engine.dispose()
    print(f"created {args.role} {args.login}" + (f" on {args.interface}" if args.interface else ""))


def cmd_serve(settings: Settings, _args: argparse.Namespace) -> None:
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    from callcard.runtime import start_stack, stop_stack

    stack = await start_stack(settings)
    print(f"callcard is up: {stack.desk_url}  (AMI {settings.ami_host}:{settings.ami_port}, "
          f"FastAGI IVR on {settings.agi_host}:{settings.agi_port})")
    await _wait_for_signal()
    await stop_stack(stack)


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

    sim = PbxSimulator(username=settings.ami_username, secret=settings.ami_secret)
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
    sim = PbxSimulator(demo_config(), username=settings.ami_username, secret=settings.ami_secret,
                       agi_address=("127.0.0.1", agi_port))
    await sim.start("127.0.0.1", _free_port("127.0.0.1", settings.ami_port))
    settings = replace(settings, ami_host="127.0.0.1", ami_port=sim.port, agi_host="127.0.0.1",
                       agi_port=agi_port, http_port=_free_port(settings.http_host, settings.http_port))
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
        print(f"  login {login:<8} password {password}")


def _safe_url(url: str) -> str:
    """The URL without its password, for printing."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcard", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="migrate, seed, start the PBX simulator and everything else")
    sub.add_parser("serve", help="web app + AMI bridge + call logger + FastAGI IVR against CALLCARD_AMI_*")
    sub.add_parser("ivr", help="run the FastAGI IVR server alone on CALLCARD_AGI_HOST:CALLCARD_AGI_PORT")
    sim = sub.add_parser("pbx-sim", help="run the PBX simulator alone (AMI over TCP)")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=5038)
    sim.add_argument("--traffic", action="store_true", help="place demo calls continuously")
    sub.add_parser("migrate", help="create or upgrade the database schema")
    sub.add_parser("seed", help="load the demo client base (idempotent)")
    user = sub.add_parser("create-user", help="add an operator, supervisor or admin")
    user.add_argument("login")
    user.add_argument("--name", default="")
    user.add_argument("--role", choices=["operator", "supervisor", "admin"], default="operator")
    user.add_argument("--interface", default="", help="Asterisk device, e.g. PJSIP/101")
    requests = sub.add_parser("requests", help="department requests")
    requests_sub = requests.add_subparsers(dest="requests_command", required=True)
    eml = requests_sub.add_parser("import-eml", help="file every *.eml in DIR as a request (renamed *.eml.done)")
    eml.add_argument("directory")
    return parser


COMMANDS = {
    "demo": cmd_demo, "serve": cmd_serve, "ivr": cmd_ivr, "pbx-sim": cmd_pbx_sim, "migrate": cmd_migrate,
    "seed": cmd_seed, "create-user": cmd_create_user, "requests": cmd_requests,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration is noise
    try:
        settings = Settings.from_env()
        COMMANDS[args.command](settings, args)
    except (CliError, SettingsError) as exc:
        print(f"callcard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
