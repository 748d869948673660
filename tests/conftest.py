"""Shared fixtures: real databases (SQLite file, the machine's PostgreSQL) and real buses.

A test that needs PostgreSQL or Redis skips with the reason printed when the server is
absent, unless CALLCARD_REQUIRE_SERVICES=1 (set by .ci/run), where absence fails.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from services import PG_URL, REDIS_URL, require_service  # noqa: F401  (fixtures below use them)
from sqlalchemy import text

from callcard.bus import MemoryBus, RedisBus
from crm_core.db import make_engine, make_sessionmaker
from crm_core.tables import Base

TRACES = Path(__file__).resolve().parent.parent.parent / "shared" / "ami-traces"
@pytest.fixture
def traces_dir() -> Path:
    assert TRACES.is_dir(), f"AMI recordings not found at {TRACES}"
    return TRACES


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a private schema in PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'callcard.db'}"
        return
    require_service("PostgreSQL", "127.0.0.1", 5432)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    eng = make_engine(db_url)
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine):  # type: ignore[no-untyped-def]
    return make_sessionmaker(engine)


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if request.param == "memory":
        b = MemoryBus()
    else:
        require_service("Redis", "127.0.0.1", 6379)
        b = RedisBus(REDIS_URL, prefix=f"callcard-test-{uuid.uuid4().hex[:8]}:")
    yield b
    await b.close()


@pytest.fixture(params=["memory", "redis"])
def bus_pair(request: pytest.FixtureRequest) -> Iterator[tuple[MemoryBus | RedisBus, MemoryBus | RedisBus]]:
    """Two clients of one bus, as two processes see it (memory:// has only the one). The test
    closes them on the loop it used them on."""
    if request.param == "memory":
        bus = MemoryBus()
        yield bus, bus
        return
    require_service("Redis", "127.0.0.1", 6379)
    prefix = f"callcard-test-{uuid.uuid4().hex[:8]}:"
    yield RedisBus(REDIS_URL, prefix=prefix), RedisBus(REDIS_URL, prefix=prefix)


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    """A client of the machine's real Redis (skipped locally, failed in CI, when it is not there)."""
    require_service("Redis", "127.0.0.1", 6379)
    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()
