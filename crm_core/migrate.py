"""Schema migrations: `upgrade(url)` runs Alembic to head with no alembic.ini to ship or find."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from crm_core.db import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection) -> Config:
    """A config that runs the package's migrations on an open connection.

    Passing the connection (not the URL) keeps `%` in URLs away from configparser and lets
    the engine be built by `make_engine`, with the same SQLite pragmas as the app.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(database_url: str) -> None:
    """Bring the database at `database_url` to the newest schema; a no-op when it is there."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
    finally:
        engine.dispose()
