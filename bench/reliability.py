"""No call lost, none duplicated: the full reliability run (10,000 calls by default).

The rig of tests/test_reliability.py (tests/reliability_rig.py) at full size: two bridge
processes and a call-logger process against the PBX simulator, which places `--calls` calls at
`--rate` per second; meanwhile kill -9 of the leading bridge, an AMI drop, kill -9 and restart of
(a throwaway) Redis, PostgreSQL cut off from the logger for `--db-outage` seconds and kill -9 of
the logger during it. Prints what it did and the counts: calls placed, rows, missing, duplicated.
PostgreSQL: a fresh schema in CALLCARD_TEST_PG_URL's database, dropped afterwards.

    .venv/bin/python bench/reliability.py [--calls 10000] [--rate 20] [--ttl 2] [--db-outage 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from reliability_rig import Plan, Rig  # noqa: E402
from sqlalchemy import text  # noqa: E402

from crm_core.db import make_engine  # noqa: E402
from crm_core.migrate import upgrade  # noqa: E402

PG_URL = os.environ.get("CALLCARD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=20.0, help="calls placed per second")
    parser.add_argument("--ttl", type=float, default=2.0, help="the bridges' lease (CALLCARD_LEADER_TTL), s")
    parser.add_argument("--db-outage", type=float, default=30.0, help="seconds PostgreSQL is away")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    plan = Plan(calls=args.calls, rate=args.rate, leader_ttl=args.ttl, db_outage=args.db_outage, seed=args.seed)
    print(f"reliability: {plan.calls} calls at {plan.rate:g}/s ({plan.seconds:.0f} s of traffic, {plan.agents} "
          f"operators), lease TTL {plan.leader_ttl:g} s, database outage {plan.db_outage:g} s", flush=True)
    schema = f"bench_rel_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        db_url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        upgrade(db_url)
        with tempfile.TemporaryDirectory(prefix="callcard-reliability-") as workdir:
            report = asyncio.run(Rig(plan, db_url, Path(workdir)).run())
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    print("\n".join(report.lines()[len(report.events):]))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
