"""Card assembly at scale: `caller_card` on PostgreSQL with 10 M clients and 100 M calls.

Two parts, one command:

* load (skipped when done): a dedicated database `callcard_scale` (or, if it cannot be created, a
  schema of that name in `test`) built by the shipped migrations, then filled server-side with
  `INSERT ... SELECT generate_series` in transactions of `--chunk` rows. Secondary indexes,
  unique and foreign-key constraints of the filled tables are dropped first (their DDL kept in
  `bench_saved_ddl`) and rebuilt after the load, then `VACUUM ANALYZE`. Every step is recorded in
  `bench_state`, and a table is filled from its highest id on, so an interrupted load resumes
  where it stopped. The backend runs niced (the machine is shared). The data is deterministic
  (hashes of the row number), lean and shaped like a call centre's: 10 % companies with contact
  persons, 20 % of clients with a landline, 1 % sharing a family phone, 100 switchboard numbers
  on 30 clients each, 10 companies with ~50,000 calls and 1,000 with ~1,000, 10 % of calls from
  unknown numbers, three years of calls in time order.
* measure: `caller_card(connection, number)` exactly as the desk popper calls it (a fresh
  connection from the product's reader engine, the raw caller ID as Asterisk gives it: `8XXXXXXXXXX`), for
  a sample of numbers: 70 % uniform over the stored phones, 20 % drawn from the call history (so
  frequent callers come up as often as they call), 10 % unknown numbers. One pass over the
  sample first ("first touch"), then `--samples` timed cards over the same numbers with warm
  caches, interleaved with the floor: the same session pattern running a primary-key lookup of
  a random client (and a bare `SELECT 1`). Prints p50/p95/p99/max per class and overall, the
  ratio to the floor, the slowest cards, and the goal (p99 <= 5 ms).

    .venv/bin/python bench/card_scale.py                 # load (once, ~1 h) + measure
    .venv/bin/python bench/card_scale.py --load-only     # e.g. under nohup nice
    .venv/bin/python bench/card_scale.py --explain +79161234567   # EXPLAIN ANALYZE of one card
    .venv/bin/python bench/card_scale.py --db callcard_scale_small --clients 100000 --calls 1000000

No test depends on this database; it is left in place for reruns.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from sqlalchemy import Engine, bindparam, make_url, select, text  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402

from crm_core import cards  # noqa: E402
from crm_core.db import make_engine, make_reader, make_sessionmaker  # noqa: E402
from crm_core.migrate import upgrade  # noqa: E402
from crm_core.models import Client  # noqa: E402

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
MOBILE_CODES = ("903", "905", "906", "909", "910", "915", "916", "917", "925", "926")
OPERATORS = 1000
SWITCHBOARDS, SWITCHBOARD_CLIENTS = 100, 30
MEGA_CLIENTS, HEAVY_CLIENTS = 10, 1000  # companies 10..100 (0.5 % of calls), 1000..10990 (1 %)
SPAN_SECONDS = 3 * 365 * 86400  # three years of calls, ending 2026-11-01
FILLED = ("clients", "phones", "client_phones", "contact_persons", "requests", "debts", "interactions", "calls")


@dataclass(frozen=True)
class Scale:
    """Row counts, all derived from the number of clients and calls."""

    clients: int
    calls: int

    @property
    def companies(self) -> int:  # every 10th client
        return self.clients // 10

    @property
    def landlines(self) -> int:  # clients 5, 10, 15, ...
        return self.clients // 5

    @property
    def shared(self) -> int:  # client 100j+1 also answers on the mobile of client 100j+2
        return self.clients // 100

    @property
    def contacts(self) -> int:  # one per company, a second for every 4th
        return self.companies + self.companies // 4

    @property
    def phones(self) -> int:
        return self.clients + self.landlines + self.contacts

    @property
    def client_phones(self) -> int:
        return self.clients + self.landlines + self.shared + SWITCHBOARDS * SWITCHBOARD_CLIENTS

    def rows(self) -> dict[str, int]:
        return {
            "clients": self.clients, "phones": self.phones, "client_phones": self.client_phones,
            "contact_persons": self.contacts, "requests": self.clients // 5, "debts": self.clients // 20,
            "interactions": self.calls // 20, "calls": self.calls,
        }


def generator_functions(s: Scale) -> str:
    """SQL functions the fill statements share: each client's and contact's numbers, each call's client.

    Numbers are bijections of the row number (multiplied by a constant coprime to 10), so they are
    unique, spread over real Russian ranges (mobile 9xx, Moscow 495/499), and the measurement can
    rebuild any of them. Unknown callers come from 812 (St Petersburg), which no stored phone uses.
    """
    codes = ",".join(f"'{c}'" for c in MOBILE_CODES)
    return f"""
    CREATE OR REPLACE FUNCTION bench_mobile(c bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT '+7' || (ARRAY[{codes}])[(1 + (c * 387420489 % 100000000) / 10000000)::int]
                  || lpad((c * 387420489 % 10000000)::text, 7, '0') $$;
    CREATE OR REPLACE FUNCTION bench_landline(k bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT '+7495' || lpad((k * 14348907 % 10000000)::text, 7, '0') $$;
    CREATE OR REPLACE FUNCTION bench_contact_phone(p bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT '+7499' || lpad((p * 14348907 % 10000000)::text, 7, '0') $$;
    CREATE OR REPLACE FUNCTION bench_call_client(i bigint) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT CASE WHEN (hashint8(i) & 2147483647) % 1000 < 100 THEN NULL
                  WHEN (hashint8(i) & 2147483647) % 1000 < 105 THEN 10 * (1 + (hashint8(-i) & 2147483647) % {MEGA_CLIENTS})
                  WHEN (hashint8(i) & 2147483647) % 1000 < 115 THEN 10 * (100 + (hashint8(-i) & 2147483647) % {HEAVY_CLIENTS})
                  ELSE 1 + (hashint8(-i) & 2147483647) % {s.clients} END $$;
    """


LAST_NAMES = ("Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
              "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров")
FIRST_NAMES = ("Иван", "Пётр", "Анна", "Мария", "Сергей", "Ольга", "Дмитрий", "Елена", "Алексей",
               "Наталья", "Андрей", "Татьяна", "Михаил", "Ирина")
CITIES = ("Москва", "Санкт-Петербург", "Екатеринбург", "Новосибирск", "Казань", "Челябинск", "Самара",
          "Омск", "Ростов-на-Дону", "Уфа", "Пермь", "Воронеж")


def _array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ",".join(f"'{v}'" for v in values) + "]"


def fill_statements(s: Scale) -> dict[str, str]:
    """One INSERT ... SELECT per table over `generate_series(__A__, __B__)` (row ids a..b, put in as
    numbers: the statements use `%` as modulo, which psycopg parameters would take for placeholders)."""
    last, first, cities = _array(LAST_NAMES), _array(FIRST_NAMES), _array(CITIES)
    n, land, shared = s.clients, s.landlines, s.shared
    return {
        "clients": f"""
        INSERT INTO clients (id, kind, name, segment, email, city, notes, manager_id, created_at, debt_open,
                             time_zone, contact_refused, protection)
        SELECT c, CASE WHEN c % 10 = 0 THEN 'company' ELSE 'person' END,
               CASE WHEN c % 10 = 0 THEN 'ООО «' || ({last})[1 + c % 16] || ' и партнёры ' || c || '»'
                    ELSE ({last})[1 + c * 7 % 16] || ' ' || ({first})[1 + c * 13 % 14] END,
               CASE WHEN c % 50 = 0 THEN 'vip' ELSE 'standard' END,
               CASE WHEN c % 3 = 0 THEN 'c' || c || '@mail.ru' ELSE '' END,
               ({cities})[1 + c % 12], '',
               CASE WHEN c % 10 = 0 OR c % 50 = 0 THEN 1 + c % {OPERATORS} END,
               timestamptz '2015-01-01' + make_interval(secs => c * (3.0e8 / {n})),
               false, '', false, ''
        FROM generate_series(__A__, __B__) AS c""",
        "phones": f"""
        INSERT INTO phones (id, e164, kind)
        SELECT p, CASE WHEN p <= {n} THEN bench_mobile(p)
                       WHEN p <= {n + land} THEN bench_landline(p - {n})
                       ELSE bench_contact_phone(p - {n + land}) END,
               CASE WHEN p <= {n} THEN 'mobile' ELSE 'landline' END
        FROM generate_series(__A__, __B__) AS p""",
        "client_phones": f"""
        INSERT INTO client_phones (id, client_id, phone_id, label, status)
        SELECT l, CASE WHEN l <= {n} THEN l
                       WHEN l <= {n + land} THEN 5 * (l - {n})
                       WHEN l <= {n + land + shared} THEN 100 * (l - {n + land} - 1) + 1
                       ELSE 10 * (1000 + l - {n + land + shared} - 1) END,
                  CASE WHEN l <= {n} THEN l
                       WHEN l <= {n + land} THEN l
                       WHEN l <= {n + land + shared} THEN 100 * (l - {n + land} - 1) + 2
                       ELSE {n} + 1 + (l - {n + land + shared} - 1) / {SWITCHBOARD_CLIENTS} END,
                  CASE WHEN l <= {n} THEN '' WHEN l <= {n + land} THEN 'work'
                       WHEN l <= {n + land + shared} THEN 'family' ELSE 'reception' END,
                  CASE WHEN l % 97 = 0 THEN 'wrong_number' ELSE 'valid' END
        FROM generate_series(__A__, __B__) AS l""",
        "contact_persons": f"""
        INSERT INTO contact_persons (id, client_id, name, position, email, phone_id)
        SELECT p, CASE WHEN p <= {s.companies} THEN 10 * p ELSE 40 * (p - {s.companies}) END,
               ({first})[1 + p % 14] || ' ' || ({last})[1 + p * 5 % 16],
               (ARRAY['директор','бухгалтер','менеджер','секретарь'])[1 + p % 4], '',
               {n + land} + p
        FROM generate_series(__A__, __B__) AS p""",
        "requests": f"""
        INSERT INTO requests (id, client_id, department_id, subject, status, created_at, kind, body, source,
                              contact)
        SELECT r, 1 + r::bigint * 7919 % {n}, 1 + r % 3,
               (ARRAY['Не работает доставка','Вопрос по счёту','Заявка на подключение','Жалоба на оператора',
                      'Перезвонить'])[1 + r % 5],
               CASE WHEN r % 4 = 0 THEN 'open' WHEN r % 8 = 1 THEN 'in_progress' ELSE 'closed' END,
               timestamptz '2023-11-01' + make_interval(secs => r * ({SPAN_SECONDS}.0 / {s.clients // 5})),
               (ARRAY['question','complaint','order','service','callback'])[1 + r % 5], '', 'call', ''
        FROM generate_series(__A__, __B__) AS r""",
        "debts": f"""
        INSERT INTO debts (id, client_id, creditor, contract, principal, total_due, currency, days_past_due,
                           region, status, promised_amount, promised_date, updated_at)
        SELECT d, 1 + d::bigint * 104729 % {n}, (ARRAY['Банк Восток','МФО Быстро','Телеком Плюс'])[1 + d % 3],
               'K-' || d, 1000 + d % 90000, 1200 + d % 110000, 'RUB', d % 400,
               ({cities})[1 + d % 12],
               (ARRAY['active','active','promised','paid','disputed','closed'])[1 + d % 6],
               CASE WHEN d % 6 = 2 THEN 500 + d % 5000 END,
               CASE WHEN d % 6 = 2 THEN date '2026-12-01' + (d % 30)::int END,
               timestamptz '2026-10-01'
        FROM generate_series(__A__, __B__) AS d""",
        "interactions": f"""
        INSERT INTO interactions (id, client_id, call_id, author_id, created_at, note)
        SELECT k, bench_call_client(20 * k), 20 * k, 1 + k % {OPERATORS},
               timestamptz '2023-11-01' + make_interval(secs => 20 * k * ({SPAN_SECONDS}.0 / {s.calls}) + 120),
               (ARRAY['Просил перезвонить вечером','Уточнил адрес доставки','Недоволен сроками',
                      'Оформлен заказ','Обещал оплатить до пятницы'])[1 + k % 5]
        FROM generate_series(__A__, __B__) AS k""",
        "calls": f"""
        INSERT INTO calls (id, linkedid, direction, caller_e164, caller_raw, caller_name, did, queue,
                           department_id, operator_id, client_id, agent_interface, started_at, answered_at,
                           ended_at, wait_seconds, talk_seconds, status, outcome, disposition, ivr_path)
        SELECT i, (1698796800 + i * ({SPAN_SECONDS}.0 / {s.calls}))::bigint || '.' || i,
               CASE WHEN w / 100 % 100 < 85 THEN 'inbound' ELSE 'outbound' END,
               number, coalesce(number, 'anonymous'), '', '',
               (ARRAY['sales','service','collections'])[1 + w % 3], 1 + w % 3,
               CASE WHEN o = 'answered' THEN 1 + v % {OPERATORS} END, client,
               CASE WHEN o = 'answered' THEN 'Local/' || (1001 + v % {OPERATORS}) || '@agents' ELSE '' END,
               started, CASE WHEN o = 'answered' THEN started + make_interval(secs => w % 40) END,
               started + make_interval(secs => w % 40 + CASE WHEN o = 'answered' THEN 20 + v % 600 ELSE 0 END),
               w % 40, CASE WHEN o = 'answered' THEN 20 + v % 600 END, 'ended', o,
               CASE WHEN o = 'answered' THEN (ARRAY['','sale','info','complaint','callback'])[1 + v % 5]
                    ELSE '' END,
               CASE WHEN w % 7 = 0 THEN 'main>' || (1 + w % 3) ELSE '' END
        FROM generate_series(__A__, __B__) AS i
        CROSS JOIN LATERAL (
          SELECT hashint8(i) & 2147483647 AS u, hashint8(-i) & 2147483647 AS v,
                 (hashint8(i + 7777777777) & 2147483647) AS w, bench_call_client(i) AS client,
                 timestamptz '2023-11-01' + make_interval(secs => i * ({SPAN_SECONDS}.0 / {s.calls})) AS started
          OFFSET 0  -- evaluated once per row, not once per use
        ) h
        CROSS JOIN LATERAL (
          SELECT CASE WHEN client IS NULL AND u % 1000 < 5 THEN NULL
                      WHEN client IS NULL THEN '+7812' || lpad((v % 10000000)::text, 7, '0')
                      WHEN client % 10 = 0 AND w % 2 = 0 THEN bench_landline(client / 5)
                      ELSE bench_mobile(client) END AS number,
                 CASE WHEN w % 100 < 80 THEN 'answered' WHEN w % 100 < 92 THEN 'abandoned' ELSE 'missed' END AS o
          OFFSET 0
        ) x""",
    }


# --- the load --------------------------------------------------------------------------------


def conninfo(url: str) -> str:
    """psycopg connection string from a SQLAlchemy URL (options such as search_path kept)."""
    u = make_url(url)
    parts = {"host": u.host, "port": u.port, "user": u.username, "dbname": u.database,
             "password": u.password, "options": u.query.get("options")}
    return " ".join(f"{k}='{v}'" for k, v in parts.items() if v)


def database_url(name: str) -> str:
    """The scale database, created if missing; a schema of that name in `test` if it cannot be."""
    with psycopg.connect(conninfo(f"{SERVER}/postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return f"{SERVER}/{name}"
        try:
            conn.execute(f'CREATE DATABASE "{name}"')
            return f"{SERVER}/{name}"
        except psycopg.Error as exc:
            print(f"cannot create database {name} ({exc}); using schema {name} in test", flush=True)
    with psycopg.connect(conninfo(f"{SERVER}/test"), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
    return f"{SERVER}/test?options=-csearch_path%3D{name}"


class Loader:
    """The resumable load: every finished step is a row in bench_state."""

    def __init__(self, url: str, scale: Scale, chunk: int) -> None:
        self.url = url
        self.scale = scale
        self.chunk = chunk
        self.conn = psycopg.connect(conninfo(url), autocommit=True)
        self._be_nice()
        self.conn.execute("CREATE TABLE IF NOT EXISTS bench_state (step text PRIMARY KEY, seconds float, "
                          "at timestamptz DEFAULT now())")
        self.conn.execute("CREATE TABLE IF NOT EXISTS bench_saved_ddl (n serial PRIMARY KEY, tbl text, "
                          "name text, kind text, drop_sql text, create_sql text, restored bool DEFAULT false)")

    def _be_nice(self) -> None:
        """The machine is shared: lower the CPU and I/O priority of this connection's backend."""
        pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        try:
            os.setpriority(os.PRIO_PROCESS, pid, 10)
            subprocess.run(["ionice", "-c2", "-n7", "-p", str(pid)], check=False, capture_output=True)
        except OSError as exc:
            print(f"note: could not renice backend {pid}: {exc}", flush=True)
        self.conn.execute("SET maintenance_work_mem = '1GB'")
        self.conn.execute("SET max_parallel_maintenance_workers = 0")
        self.conn.execute("SET work_mem = '256MB'")

    def done(self, step: str) -> bool:
        return self.conn.execute("SELECT 1 FROM bench_state WHERE step = %s", (step,)).fetchone() is not None

    def mark(self, step: str, seconds: float) -> None:
        self.conn.execute("INSERT INTO bench_state (step, seconds) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                          (step, seconds))

    def step(self, name: str, action: Callable[[], None]) -> None:
        if self.done(name):
            return
        t0 = time.monotonic()
        action()
        seconds = time.monotonic() - t0
        self.mark(name, seconds)
        print(f"  {name}: {seconds:.1f} s", flush=True)

    def run(self) -> None:
        if self.done("complete"):
            print("load: already complete (bench_state); skipping", flush=True)
            return
        t0 = time.monotonic()
        print(f"load: {self.url}", flush=True)
        for table, count in self.scale.rows().items():
            print(f"  {table:16} {count:>12,} rows", flush=True)
        self.step("schema", lambda: upgrade(self.url))
        self.conn.execute(generator_functions(self.scale))  # CREATE OR REPLACE: always the current ones
        self.step("reference rows", self.reference_rows)
        self.step("drop secondary indexes and constraints", self.drop_ddl)
        statements = fill_statements(self.scale)
        for table, count in self.scale.rows().items():
            self.step(f"fill {table}", lambda t=table, c=count: self.fill(t, statements[t], c))
        self.step("rebuild indexes and constraints", self.restore_ddl)
        for table in FILLED:
            self.step(f"sequence {table}", lambda t=table: self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))"))
        for table in FILLED:
            self.step(f"vacuum analyze {table}", lambda t=table: self.conn.execute(f"VACUUM (ANALYZE) {t}"))
        self.mark("complete", time.monotonic() - t0)
        size = self.conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        print(f"load complete in {time.monotonic() - t0:.0f} s; database size {size}", flush=True)

    def reference_rows(self) -> None:
        """Departments and operators the calls point at (real argon2 hashes are not needed: nobody logs in)."""
        with self.conn.transaction():
            self.conn.execute("""
                INSERT INTO departments (id, code, name, queue) VALUES
                  (1, 'sales', 'Продажи', 'sales'), (2, 'service', 'Сервис', 'service'),
                  (3, 'collections', 'Взыскание', 'collections') ON CONFLICT DO NOTHING""")
            self.conn.execute(f"""
                INSERT INTO operators (id, login, name, password_hash, role, interface, language, active)
                SELECT o, 'op' || o, 'Оператор ' || o, '!', 'operator', 'Local/' || (1000 + o) || '@agents',
                       'ru', true
                FROM generate_series(1, {OPERATORS}) AS o ON CONFLICT DO NOTHING""")
            for table in ("departments", "operators"):
                self.conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))")

    def drop_ddl(self) -> None:
        """Keep the DDL of every secondary index, unique and foreign key of the filled tables, then drop them."""
        with self.conn.transaction():
            tables = list(FILLED)
            constraints = self.conn.execute("""
                SELECT c.conrelid::regclass::text, c.conname, c.contype,
                       pg_get_constraintdef(c.oid)
                FROM pg_constraint c
                WHERE c.conrelid::regclass::text = ANY(%s) AND c.contype IN ('u', 'f')
                ORDER BY c.contype DESC, c.conname""", (tables,)).fetchall()
            indexes = self.conn.execute("""
                SELECT i.tablename, i.indexname, i.indexdef FROM pg_indexes i
                WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
                ORDER BY i.indexname""", (tables,)).fetchall()
            # Rebuild order: unique constraints and indexes first, foreign keys last (they use the indexes).
            rows = [(t, name, "index", f'DROP INDEX "{name}"', ddl) for t, name, ddl in indexes]
            rows += [(t, name, "unique" if kind == "u" else "foreign key", f'ALTER TABLE {t} DROP CONSTRAINT "{name}"',
                      f'ALTER TABLE {t} ADD CONSTRAINT "{name}" {ddl}') for t, name, kind, ddl in constraints]
            rows.sort(key=lambda r: r[2] == "foreign key")
            for row in rows:
                self.conn.execute("INSERT INTO bench_saved_ddl (tbl, name, kind, drop_sql, create_sql) "
                                  "VALUES (%s, %s, %s, %s, %s)", row)
            for row in sorted(rows, key=lambda r: r[2] != "foreign key"):
                self.conn.execute(row[3])
            print(f"  dropped {len(rows)} secondary indexes and constraints", flush=True)

    def fill(self, table: str, statement: str, count: int) -> None:
        """Insert ids 1..count in chunks, each its own transaction, from the highest id already there."""
        have = self.conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        t0 = time.monotonic()
        start = have
        while have < count:
            b = min(count, have + self.chunk)
            with self.conn.transaction():
                self.conn.execute(statement.replace("__A__", str(have + 1)).replace("__B__", str(b)))
            have = b
            elapsed = time.monotonic() - t0
            rate = (have - start) / elapsed if elapsed else 0
            eta = (count - have) / rate if rate else 0
            print(f"    {table}: {have:,}/{count:,} ({rate:,.0f} rows/s, {eta / 60:.1f} min left)", flush=True)

    def restore_ddl(self) -> None:
        todo = self.conn.execute("SELECT n, name, kind, create_sql FROM bench_saved_ddl WHERE NOT restored "
                                 "ORDER BY kind = 'foreign key', n").fetchall()
        for n, name, kind, ddl in todo:
            t0 = time.monotonic()
            with self.conn.transaction():
                self.conn.execute(ddl)
                self.conn.execute("UPDATE bench_saved_ddl SET restored = true WHERE n = %s", (n,))
            print(f"    {kind} {name}: {time.monotonic() - t0:.0f} s", flush=True)


# --- the measurement -------------------------------------------------------------------------


def raw_caller_id(e164: str) -> str:
    """How Russian trunks hand the number to Asterisk: 8 and the ten national digits."""
    return "8" + e164[2:]


def pick_sample(engine: Engine, scale: Scale, size: int, rng: random.Random) -> list[tuple[str, str]]:
    """(class, raw caller id): 70 % uniform stored phones, 20 % from the call history, 10 % unknown."""
    uniform, history = int(size * 0.7), int(size * 0.2)
    with engine.connect() as conn:
        phone_ids = rng.sample(range(1, scale.phones + 1), uniform)
        phones = conn.execute(text("SELECT e164 FROM phones WHERE id = ANY(:ids)"), {"ids": phone_ids}).scalars()
        numbers = [("stored phone", raw_caller_id(e)) for e in phones]
        call_ids = rng.sample(range(1, scale.calls + 1), history * 2)
        callers = conn.execute(text("SELECT caller_e164 FROM calls WHERE id = ANY(:ids) AND caller_e164 IS NOT NULL"),
                               {"ids": call_ids}).scalars().all()
        rng.shuffle(callers)
        numbers += [("from call history", raw_caller_id(e)) for e in callers[:history]]
    numbers += [("unknown", f"8343{rng.randrange(10**7):07d}") for _ in range(size - len(numbers))]
    rng.shuffle(numbers)
    return numbers


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))] if ordered else float("nan")


def summary(values: list[float]) -> str:
    return (f"{percentile(values, 50):7.2f}{percentile(values, 95):8.2f}{percentile(values, 99):8.2f}"
            f"{max(values):9.2f}{len(values):8}")


def measure(url: str, scale: Scale, samples: int, seed: int) -> None:
    rng = random.Random(seed)
    engine = make_engine(url)
    reader = make_reader(make_sessionmaker(engine))  # as the desk popper reads
    with engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT reltuples::bigint FROM pg_class WHERE relname = '{t}'")).scalar()
                  for t in ("clients", "calls", "phones")}
        size = conn.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar()
    print(f"\nmeasure: {url}\n  rows (planner estimate): {counts['clients']:,} clients, {counts['calls']:,} calls, "
          f"{counts['phones']:,} phones; database {size}", flush=True)
    sample = pick_sample(engine, scale, min(samples, 5000), rng)

    def card(raw: str) -> tuple[float, int]:
        t0 = time.perf_counter_ns()
        with reader.connect() as connection:
            result = cards.caller_card(connection, raw)
        return (time.perf_counter_ns() - t0) / 1e6, len(result["matches"])

    client_by_pk = select(Client.id, Client.name).where(Client.id == bindparam("id"))

    def floor_pk() -> float:
        t0 = time.perf_counter_ns()
        with reader.connect() as connection:
            connection.execute(client_by_pk, {"id": rng.randint(1, scale.clients)}).first()
        return (time.perf_counter_ns() - t0) / 1e6

    def floor_select1() -> float:
        t0 = time.perf_counter_ns()
        with reader.connect() as connection:
            connection.execute(text("SELECT 1")).scalar()
        return (time.perf_counter_ns() - t0) / 1e6

    first = [card(raw)[0] for _, raw in sample]  # first touch of each number (pages may come from disk)
    timed: list[tuple[str, str, float, int]] = []
    pk: list[float] = []
    one: list[float] = []
    for i in range(samples):
        kind, raw = sample[i % len(sample)]
        ms, matches = card(raw)
        timed.append((kind, raw, ms, matches))
        pk.append(floor_pk())
        one.append(floor_select1())
    every = [ms for *_, ms, _ in timed]
    print(f"\ncaller_card, {samples:,} cards over {len(sample):,} numbers (warm), ms")
    print(f"{'':36}{'p50':>7}{'p95':>8}{'p99':>8}{'max':>9}{'n':>8}")
    print(f"{'first touch (one pass, before timing)':36}{summary(first)}")
    for kind in ("stored phone", "from call history", "unknown"):
        print(f"{'  ' + kind:36}{summary([ms for k, _, ms, _ in timed if k == kind])}")
    for matches, label in ((0, "0 matches"), (1, "1 match"), (2, "2+ matches")):
        values = [ms for _, _, ms, m in timed if (m >= 2 if matches == 2 else m == matches)]
        if values:
            print(f"{'  ' + label:36}{summary(values)}")
    print(f"{'all cards':36}{summary(every)}")
    print(f"{'floor: client by primary key':36}{summary(pk)}")
    print(f"{'floor: SELECT 1':36}{summary(one)}")
    slowest = sorted(timed, key=lambda t: t[2], reverse=True)[:8]
    print("slowest cards: " + "; ".join(f"{raw} {ms:.1f} ms ({m} matches)" for _, raw, ms, m in slowest))
    p99 = percentile(every, 99)
    print(f"card p99 / primary-key floor p99 = {p99 / percentile(pk, 99):.2f}x; "
          f"median {statistics.median(every) / statistics.median(pk):.2f}x   "
          f"(goal: p99 <= 5 ms: {'met' if p99 <= 5 else 'NOT met'})")
    engine.dispose()


def explain(url: str, raw: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement the card of `raw` runs on PostgreSQL (the owners
    with their clients, then the five sections selected through the number), with its real parameters."""
    engine = make_engine(url)
    e164 = cards.try_normalize(raw)
    with make_sessionmaker(engine)() as session:
        print(f"{raw} -> {e164}: clients {[m.client_id for m in cards.clients_for_number(session, e164)]}")
        names = ("owners", "phones", "contacts", "open requests", "open debts", "last calls and notes")
        for name, statement in zip(names, (cards._OWNED_CLIENTS, *cards._BY_NUMBER), strict=True):
            sql = str(statement.params(e164=e164).compile(dialect=postgresql.dialect(),
                                                          compile_kwargs={"literal_binds": True}))
            plan = session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql)).scalars().all()
            print(f"\n--- {name}\n" + "\n".join(plan))
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="callcard_scale", help="database (or fallback schema) name")
    ap.add_argument("--clients", type=int, default=10_000_000)
    ap.add_argument("--calls", type=int, default=100_000_000)
    ap.add_argument("--chunk", type=int, default=2_000_000, help="rows per INSERT transaction")
    ap.add_argument("--samples", type=int, default=5000, help="timed cards")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--load-only", action="store_true")
    ap.add_argument("--explain", metavar="NUMBER", help="EXPLAIN ANALYZE the card of this number and stop")
    args = ap.parse_args()
    if args.clients < 100_000:
        ap.error("--clients must be at least 100,000 (switchboard and heavy-caller clients live below 40,000)")
    scale = Scale(args.clients, args.calls)
    url = database_url(args.db)
    if args.explain:
        explain(url, args.explain)
        return
    Loader(url, scale, args.chunk).run()
    if not args.load_only:
        measure(url, scale, args.samples, args.seed)


if __name__ == "__main__":
    main()
