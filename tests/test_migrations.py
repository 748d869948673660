"""The shipped Alembic revisions build exactly the schema the models describe."""

from __future__ import annotations

from typing import Any

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


def _rows_after_upgrade(db_url: str, revision: str, before: list[tuple[str, Any]], query: str) -> list[Any]:
    """Upgrade to `revision`, run `before` there (each SQL with its parameters, or None), upgrade to
    the head, and return the rows `query` reads then."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
            for sql, parameters in before:
                conn.execute(text(sql), parameters)
        upgrade(db_url)
        with engine.connect() as conn:
            return list(conn.execute(text(query)).all())
    finally:
        engine.dispose()


def test_the_name_key_migration_keys_the_clients_already_there(db_url: str) -> None:
    """Clients stored before revision 0010 get their keys from it, in batches."""
    rows = _rows_after_upgrade(db_url, "0009", [(
        "INSERT INTO clients (kind, name, segment, email, city, notes, debt_open, time_zone, contact_refused, "
        "protection, created_at) VALUES ('company', :name, 'standard', '', '', '', false, '', false, '', "
        "CURRENT_TIMESTAMP)", [{"name": "ООО «Ромашка»"}, {"name": "Фёдоров Артём"}, {"name": ""}])],
        "SELECT name_key FROM clients ORDER BY id")
    keys = [key for key, in rows]
    assert keys == ["ооо ромашка", "артем федоров", ""]
    assert _schema_diff(db_url) == []


def test_pauses_stored_before_0013_go_to_their_devices_present_operator(db_url: str) -> None:
    rows = _rows_after_upgrade(db_url, "0012", [
        ("INSERT INTO operators (login, name, password_hash, role, interface, language, active)"
         " VALUES ('op1', 'Anna', 'x', 'operator', 'Local/101@agents', 'ru', true)", None),
        ("INSERT INTO agent_pauses (interface, started_at, reason) VALUES (:device, CURRENT_TIMESTAMP, 'lunch')",
         [{"device": "Local/101@agents"}, {"device": "PJSIP/9"}])],
        "SELECT o.login FROM agent_pauses p LEFT JOIN operators o ON o.id = p.operator_id ORDER BY p.id")
    owners = [login for login, in rows]
    assert owners == ["op1", None]  # a device nobody has stays found by device
    assert _schema_diff(db_url) == []


def test_pause_reasons_keep_the_colours_the_report_gave_them_before_0014(db_url: str) -> None:
    rows = _rows_after_upgrade(db_url, "0013", [
        ("UPDATE pause_reasons SET active = false WHERE code = 'training'", None),
        ("UPDATE pause_reasons SET position = 9 WHERE code = 'break'", None)],
        "SELECT code, colour FROM pause_reasons")
    colours = dict(rows)
    assert colours == {"lunch": 0, "meeting": 1, "after_call": 2, "break": 3, "training": 4}
    assert _schema_diff(db_url) == []


def test_calls_the_ivr_ended_itself_leave_missed_at_0015(db_url: str) -> None:
    rows = _rows_after_upgrade(db_url, "0014", [(
        "INSERT INTO calls (linkedid, direction, caller_raw, caller_name, did, queue, agent_interface, started_at,"
        " status, outcome, disposition, ivr_path) VALUES (:linkedid, 'inbound', '', '', '', :queue, '',"
        " CURRENT_TIMESTAMP, 'ended', :outcome, '', :path)", [
            {"linkedid": "1", "queue": "", "outcome": "missed", "path": "main>1>sales>callback"},
            {"linkedid": "2", "queue": "", "outcome": "missed", "path": "main>2>service>voicemail"},
            {"linkedid": "3", "queue": "", "outcome": "missed", "path": "rejected"},
            {"linkedid": "4", "queue": "", "outcome": "missed", "path": "main>hangup"},  # hung up in the menu
            {"linkedid": "5", "queue": "sales", "outcome": "missed", "path": "main>1>sales"},
            {"linkedid": "6", "queue": "sales", "outcome": "abandoned", "path": "main>1>sales"},
            {"linkedid": "7", "queue": "sales", "outcome": "missed", "path": ""},
        ])],
        "SELECT linkedid, outcome FROM calls")
    assert dict(rows) == {"1": "ivr", "2": "ivr", "3": "ivr", "4": "missed", "5": "missed", "6": "abandoned",
                          "7": "missed"}
    assert _schema_diff(db_url) == []
