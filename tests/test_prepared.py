"""crm_core.prepared: statements run on the driver's cursor must store and read exactly what
SQLAlchemy's own execution would, and fail the same way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from crm_core.db import insert_ignoring
from crm_core.models import Call, Department
from crm_core.prepared import execute_many, fetch, prepared

CALLS = Call.__table__
AT = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=UTC)
_UPDATE = (update(CALLS).where(CALLS.c.id == bindparam("row_id"))
           .values(answered_at=bindparam("answered_at"), wait_seconds=bindparam("wait_seconds")))


def test_an_insert_stores_the_columns_defaults_and_a_second_insert_is_ignored(engine) -> None:
    insert = insert_ignoring(CALLS, ("linkedid",), engine.dialect.name)
    with engine.begin() as connection:
        execute_many(connection, insert, [{"linkedid": "a", "started_at": AT}, {"linkedid": "b", "started_at": AT}])
        execute_many(connection, insert, [{"linkedid": "a", "started_at": datetime(2020, 1, 1, tzinfo=UTC)}])
    with engine.connect() as connection:
        rows = connection.execute(select(Call.linkedid, Call.direction, Call.status, Call.caller_raw,
                                         Call.started_at).order_by(Call.linkedid)).all()
    assert [(r.linkedid, r.direction, r.status, r.caller_raw) for r in rows] == [
        ("a", "inbound", "ringing", ""), ("b", "inbound", "ringing", "")]
    # a datetime is bound through its column type, as SQLAlchemy binds it (on SQLite: its text form)
    assert {r.started_at.replace(tzinfo=UTC) for r in rows} == {AT}


def test_an_update_binds_datetimes_and_fetch_reads_them_back_as_sqlalchemy_does(engine) -> None:
    with engine.begin() as connection:
        execute_many(connection, insert_ignoring(CALLS, ("linkedid",), engine.dialect.name),
                     [{"linkedid": "c", "started_at": AT}])
        (row_id,) = connection.execute(select(Call.id)).scalars().all()
        execute_many(connection, _UPDATE, [{"row_id": row_id, "answered_at": AT, "wait_seconds": 7}])
    statement = select(Call.id, Call.answered_at, Call.wait_seconds).where(
        Call.linkedid.in_(bindparam("linkedids", expanding=True)))
    with engine.connect() as connection:
        (ours,) = fetch(connection, [(statement, {"linkedids": ["c", "nobody"]})])
        theirs = connection.execute(statement, {"linkedids": ["c", "nobody"]}).all()
    assert [tuple(row) for row in ours] == [tuple(row) for row in theirs]
    assert ours[0].wait_seconds == 7 and ours[0].answered_at.replace(tzinfo=UTC) == AT


def test_many_rows_bind_as_sqlalchemy_binds_each(engine) -> None:
    rows = [{"row_id": 1, "answered_at": AT, "wait_seconds": 3}, {"row_id": 2, "answered_at": None, "wait_seconds": 0}]
    compiled = prepared(_UPDATE, engine.dialect, ("row_id", "answered_at", "wait_seconds")).compiled
    processors = compiled._bind_processors
    expected = []
    for values in rows:
        params = compiled.construct_params(values)
        bound = {k: processors[k](v) if k in processors else v for k, v in params.items()}
        expected.append([bound[k] for k in compiled.positiontup] if compiled.positiontup else bound)
    sql, got = prepared(_UPDATE, engine.dialect, ("row_id", "answered_at", "wait_seconds")).bind_many(rows)
    assert (sql, got) == (compiled.string, expected)


def test_a_refused_statement_raises_sqlalchemys_error_and_the_transaction_stores_nothing(engine) -> None:
    insert = Department.__table__.insert().inline()
    with pytest.raises(IntegrityError, match="INSERT INTO departments"):
        with engine.begin() as connection:
            execute_many(connection, insert, [{"code": "sales", "name": "Продажи", "queue": "sales"}])
            execute_many(connection, insert, [{"code": "sales", "name": "Sales", "queue": "s2"}])  # code is unique
    with engine.connect() as connection:
        assert connection.execute(select(Department.id)).all() == []


def test_a_default_computed_per_row_is_refused_when_prepared(engine) -> None:
    from crm_core.models import Interaction

    with pytest.raises(ValueError, match="computed per row"):
        prepared(Interaction.__table__.insert().inline(), engine.dialect, ("note",))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_connection_the_server_dropped_is_invalidated_so_the_caller_can_tell_an_outage(engine) -> None:
    """The call logger keeps a batch for later only on an outage (`call_log._unavailable`), and
    `crm_core.db.read` retries only an invalidated connection: the raw path must say which it was."""
    statement = select(Call.id).where(Call.linkedid.in_(bindparam("linkedids", expanding=True)))
    with pytest.raises(DBAPIError) as failed:
        with engine.begin() as connection:
            fetch(connection, [(statement, {"linkedids": ["a"]})])
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with engine.connect() as other:  # what a server restart does to it
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            execute_many(connection, _UPDATE, [{"row_id": 1, "answered_at": AT, "wait_seconds": 1}])
    assert failed.value.connection_invalidated
    with engine.connect() as connection:  # the pool dropped it: the next checkout works
        assert fetch(connection, [(statement, {"linkedids": ["a"]})]) == [[]]
