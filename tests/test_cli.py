"""The admin's commands: clear errors, exit codes, and the database they leave behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from callcard.cli import main
from crm_core.db import make_engine, make_sessionmaker
from crm_core.models import Client, Department, Operator
from crm_core.passwords import verify_password


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CALLCARD_DATABASE_URL", url)
    return url


def test_migrate_then_create_user_stores_a_hashed_password(
    sqlite_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    monkeypatch.setenv("CALLCARD_NEW_PASSWORD", "s3cret-enough")
    assert main(["create-user", "ivanova", "--name", "Ирина Иванова", "--interface", "PJSIP/105"]) == 0
    assert "created operator ivanova on PJSIP/105" in capsys.readouterr().out
    engine = make_engine(sqlite_env)
    with make_sessionmaker(engine)() as session:
        op = session.scalar(select(Operator).where(Operator.login == "ivanova"))
        assert op is not None and (op.name, op.interface, op.role) == ("Ирина Иванова", "PJSIP/105", "operator")
        assert op.password_hash != "s3cret-enough" and verify_password(op.password_hash, "s3cret-enough")
    engine.dispose()


def test_create_user_makes_a_department_head_of_the_named_departments(
    sqlite_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert main(["seed"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("CALLCARD_NEW_PASSWORD", "head-of-it-1")
    assert main(["create-user", "chief", "--role", "department_head"]) == 2
    assert "a department head needs a department" in capsys.readouterr().err
    assert main(["create-user", "chief", "--role", "department_head", "--department", "nope"]) == 2
    assert "no department nope" in capsys.readouterr().err
    assert main(["create-user", "chief", "--role", "department_head", "--department", "service"]) == 0
    assert "created department_head chief in service" in capsys.readouterr().out
    engine = make_engine(sqlite_env)
    with make_sessionmaker(engine)() as session:
        chief = session.scalar(select(Operator).where(Operator.login == "chief"))
        service = session.scalar(select(Department).where(Department.code == "service"))
        assert chief is not None and service is not None
        assert chief.role == "department_head" and [d.code for d in chief.departments] == ["service"]
        assert service.head_id == chief.id
    engine.dispose()


def test_deactivate_user_locks_the_account_and_hands_over_their_clients(
    sqlite_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert main(["seed"]) == 0
    engine = make_engine(sqlite_env)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        ids = dict(session.execute(select(Operator.login, Operator.id)).all())
        managed = session.scalar(select(func.count()).select_from(Client).where(Client.manager_id == ids["op1"]))
    assert managed > 0
    capsys.readouterr()
    assert main(["deactivate-user", "op1"]) == 2
    assert f"op1 is personal manager of {managed} clients" in capsys.readouterr().err
    assert main(["deactivate-user", "op1", "--clients-to", "nobody-here"]) == 2
    assert main(["deactivate-user", "op1", "--clients-to", "op2"]) == 0
    said = capsys.readouterr().out
    assert f"deactivated op1; {managed} clients now with op2" in said
    assert "Local/101@agents may still be a member of Asterisk's queues: remove it there" in said
    assert main(["deactivate-user", "head_sales", "--clients-to", "none"]) == 0
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Client).where(Client.manager_id == ids["op1"])) == 0
        left = session.get(Operator, ids["op1"])
        assert (left.active, left.interface) == (False, None)  # the phone is free for a successor
        assert session.scalar(select(Department.head_id).where(Department.code == "sales")) is None
    engine.dispose()


def test_duplicate_user_and_short_password_are_clear_errors(
    sqlite_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    monkeypatch.setenv("CALLCARD_NEW_PASSWORD", "short")
    assert main(["create-user", "petrov"]) == 2
    assert "a password needs at least 8 characters" in capsys.readouterr().err
    monkeypatch.setenv("CALLCARD_NEW_PASSWORD", "long-enough-1")
    assert main(["create-user", "petrov"]) == 0
    assert main(["create-user", "petrov"]) == 2
    assert "user 'petrov' already exists" in capsys.readouterr().err


def test_bad_setting_is_reported_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLCARD_AMI_PORT", "not-a-port")
    assert main(["migrate"]) == 2
    assert "CALLCARD_AMI_PORT='not-a-port' is not a valid int" in capsys.readouterr().err


def test_the_old_pause_limits_variable_stops_the_start_with_where_limits_are_set_now(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Silently ignored, an admin's limits would be lost without a word."""
    monkeypatch.setenv("CALLCARD_PAUSE_LIMITS", "lunch=60")
    monkeypatch.setenv("CALLCARD_BUS_URL", "redis://127.0.0.1:6379/0")
    assert main(["run", "worker"]) == 2
    assert "CALLCARD_PAUSE_LIMITS is no longer read: each pause reason's limit is set with the reason on " \
           "/supervisor/thresholds" in capsys.readouterr().err
