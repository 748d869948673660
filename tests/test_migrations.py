"""The shipped Alembic revisions build exactly the schema the models describe."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from crm_core.db import make_engine
from crm_core.migrate import MIGRATIONS, alembic_config, upgrade
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


def test_the_name_key_migration_keys_the_clients_already_there(db_url: str) -> None:
    """Clients stored before revision 0010 get their keys from it, in batches."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0009")
            conn.execute(text("INSERT INTO clients (kind, name, segment, email, city, notes, debt_open, time_zone, "
                              "contact_refused, protection, created_at) VALUES ('company', :name, 'standard', '', "
                              "'', '', false, '', false, '', CURRENT_TIMESTAMP)"),
                         [{"name": "ООО «Ромашка»"}, {"name": "Фёдоров Артём"}, {"name": ""}])
        upgrade(db_url)
        with engine.connect() as conn:
            keys = conn.execute(text("SELECT name_key FROM clients ORDER BY id")).scalars().all()
    finally:
        engine.dispose()
    assert keys == ["ооо ромашка", "артем федоров", ""]
    assert _schema_diff(db_url) == []


def test_pauses_stored_before_0013_go_to_their_devices_present_operator(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0012")
            conn.execute(text("INSERT INTO operators (login, name, password_hash, role, interface, language, active)"
                              " VALUES ('op1', 'Anna', 'x', 'operator', 'Local/101@agents', 'ru', true)"))
            conn.execute(text("INSERT INTO agent_pauses (interface, started_at, reason) VALUES (:device, "
                              "CURRENT_TIMESTAMP, 'lunch')"), [{"device": "Local/101@agents"}, {"device": "PJSIP/9"}])
        upgrade(db_url)
        with engine.connect() as conn:
            owners = conn.execute(text("SELECT o.login FROM agent_pauses p LEFT JOIN operators o"
                                       " ON o.id = p.operator_id ORDER BY p.id")).scalars().all()
    finally:
        engine.dispose()
    assert owners == ["op1", None]  # a device nobody has stays found by device
    assert _schema_diff(db_url) == []


def test_pause_reasons_keep_the_colours_the_report_gave_them_before_0014(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0013")
            conn.execute(text("UPDATE pause_reasons SET active = false WHERE code = 'training'"))
            conn.execute(text("UPDATE pause_reasons SET position = 9 WHERE code = 'break'"))
        upgrade(db_url)
        with engine.connect() as conn:
            colours = dict(conn.execute(text("SELECT code, colour FROM pause_reasons")).all())
    finally:
        engine.dispose()
    assert colours == {"lunch": 0, "meeting": 1, "after_call": 2, "break": 3, "training": 4}
    assert _schema_diff(db_url) == []
