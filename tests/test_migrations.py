"""The shipped Alembic revisions build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from crm_core.db import make_engine
from crm_core.migrate import MIGRATIONS, upgrade
from crm_core.tables import Base


def _schema_diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_builds_the_models_schema(db_url: str) -> None:
    upgrade(db_url)
    assert _schema_diff(db_url) == []


def test_upgrade_twice_is_a_noop(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert versions == [ScriptDirectory(str(MIGRATIONS)).get_current_head()]
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert _schema_diff(db_url) == []
