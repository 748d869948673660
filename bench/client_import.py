"""Client-base import speed and memory: a centre's base of N clients loaded from CSV, then loaded again.

The floor is the least a load of the same base can cost on the same database: one transaction of
three bulk INSERT ... VALUES statements per 500 clients (clients, phones, their links), no checks,
no lookups. The import (crm_core.client_import, as `callcard clients import` and /clients/import
run it) decodes, checks every cell, looks each row's client up by id, number or e-mail, and keeps
the rejected-rows report. Each load runs in a child process, so its peak RSS is its own.

    .venv/bin/python bench/client_import.py [--clients 100000] [--database-url postgresql://...]

Without --database-url each load gets a fresh SQLite file; with it, the schema is dropped and
migrated again before each load.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BATCH = 500


def base_csv(clients: int) -> str:
    """N clients with a mobile number each, a city and an e-mail; 1 % share a number with another."""
    rng = random.Random(20261124)
    lines = ["ФИО;Телефоны;Почта;Город;Сегмент"]
    for i in range(clients):
        number = f"+7916{rng.randrange(10**7):07d}" if i % 100 else f"+7916{i // 100 % 10**7:07d}"
        lines.append(f"Клиент{i:07d} Тестов;{number};c{i}@example.ru;Пермь;{'vip' if i % 10 == 0 else 'standard'}")
    return "\n".join(lines) + "\n"


def fresh(database_url: str | None, directory: Path, name: str) -> str:
    from sqlalchemy import create_engine, text

    from crm_core.migrate import upgrade

    if database_url is None:
        url = f"sqlite:///{directory / name}.db"
    else:
        url = database_url
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)
    return url


def floor(url: str, path: Path) -> dict[str, float]:
    """Bulk inserts of the file's rows, split on the delimiter and nothing else."""
    from sqlalchemy import insert

    from crm_core.db import make_engine
    from crm_core.models import Client, ClientPhone, Phone

    engine = make_engine(url)
    rows = [line.split(";") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    started = time.perf_counter()
    with engine.begin() as conn:
        numbers: dict[str, int] = {}
        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            ids = conn.execute(insert(Client).returning(Client.id), [
                {"name": name, "kind": "person", "email": email, "city": city, "segment": segment}
                for name, _, email, city, segment in chunk]).scalars().all()
            new = sorted({row[1] for row in chunk} - numbers.keys())
            if new:
                for e164, phone_id in zip(new, conn.execute(insert(Phone).returning(Phone.id),
                                                            [{"e164": e164, "kind": "mobile"} for e164 in new])
                                          .scalars().all(), strict=True):
                    numbers[e164] = phone_id
            conn.execute(insert(ClientPhone), [{"client_id": client_id, "phone_id": numbers[row[1]], "label": ""}
                                               for client_id, row in zip(ids, chunk, strict=True)])
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds}


def product(url: str, path: Path) -> dict[str, float]:
    from crm_core.client_import import import_clients
    from crm_core.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    result = {}
    for run in ("first", "again"):
        started = time.perf_counter()
        report = import_clients(sessions, path)
        result[run] = time.perf_counter() - started
        result[f"{run}_created"], result[f"{run}_unchanged"] = report.created, report.unchanged
        result[f"{run}_rejected"] = len(report.rejected)
    engine.dispose()
    return result


def child(kind: str, url: str, path: Path) -> None:
    figures = (floor if kind == "floor" else product)(url, Path(path))
    figures["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def run(kind: str, url: str, path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, url, str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (its schema is dropped!); default SQLite")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = directory / "clients.csv"
        path.write_text(base_csv(args.clients), encoding="utf-8")
        low = run("floor", fresh(args.database_url, directory, "floor"), path)
        high = run("product", fresh(args.database_url, directory, "product"), path)
    n = args.clients
    print(f"client import, {n:,} clients, {'PostgreSQL' if args.database_url else 'SQLite'}; Python {sys.version.split()[0]}")
    print(f"floor (bulk INSERTs, no checks): {low['seconds']:.1f} s = {n / low['seconds']:,.0f} clients/s, "
          f"peak RSS {low['rss_mb']:.0f} MB")
    print(f"import: {high['first']:.1f} s = {n / high['first']:,.0f} clients/s = {high['first'] / low['seconds']:.1f}x "
          f"the floor (created {high['first_created']:,.0f}, rejected {high['first_rejected']:,.0f})")
    print(f"import again: {high['again']:.1f} s = {high['again'] / low['seconds']:.1f}x the floor "
          f"(unchanged {high['again_unchanged']:,.0f}); peak RSS {high['rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
