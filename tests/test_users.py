"""Staff accounts: the rules of `crm_core.users`, and the admin's pages at /admin/users that apply
them (audited, refusals in the admin's language, never a password in the audit log)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent_desk.app import create_app
from callcard.bus import MemoryBus
from callcard.settings import Settings
from crm_core import users
from crm_core.audit import AuditEntry
from crm_core.models import Client, Department, Operator
from crm_core.passwords import hash_password, verify_password

PASSWORD = "pw-12345678"


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions.begin() as session:
        sales = Department(code="sales", name="Продажи", queue="sales")
        service = Department(code="service", name="Сервис", queue="support")
        digest = hash_password(PASSWORD)
        people = {
            "root": Operator(login="root", name="Admin", role="admin", password_hash=digest),
            "seller": Operator(login="seller", name="Seller", password_hash=digest, interface="PJSIP/101",
                               departments=[sales]),
            "boss": Operator(login="boss", name="Boss", role="supervisor", password_hash=digest),
        }
        session.add_all([sales, service, *people.values()])
        session.flush()
        session.add_all([Client(name=f"Клиент {n}", manager_id=people["seller"].id) for n in range(3)])
        return {name: op.id for name, op in people.items()} | {"sales": sales.id, "service": service.id}


def refused(key: str, work: object) -> None:
    with pytest.raises(users.UserError) as caught:
        work()  # type: ignore[operator]
    assert caught.value.key == key, caught.value


def test_a_new_head_heads_the_departments_ticked_and_only_those(sessions: sessionmaker[Session],
                                                                world: dict[str, int]) -> None:
    with sessions.begin() as session:
        chief = users.create_user(session, " Chief ", users.Account("Ирина", "department_head", ("sales", "service"),
                                                                    "PJSIP/200"), "long-enough")
        assert (chief.login, chief.interface, verify_password(chief.password_hash, "long-enough")) == (
            "chief", "PJSIP/200", True)
        chief_id = chief.id
    with sessions.begin() as session:
        assert {d.code: d.head_id for d in session.scalars(select(Department))} == {"sales": chief_id,
                                                                                   "service": chief_id}
        users.update_user(session, chief_id, users.Account("Ирина", "department_head", ("service",), "PJSIP/200"))
    with sessions.begin() as session:
        assert {d.code: d.head_id for d in session.scalars(select(Department))} == {"sales": None,
                                                                                   "service": chief_id}
        users.update_user(session, chief_id, users.Account("Ирина", "operator", ("service",), ""))
    with sessions() as session:
        assert session.scalar(select(Department.head_id).where(Department.code == "service")) is None
        assert session.get(Operator, chief_id).interface is None


def test_accounts_refuse_what_would_break_the_centre(sessions: sessionmaker[Session], world: dict[str, int]) -> None:
    plain = users.Account("Новый", "operator", ("sales",))
    with sessions.begin() as session:
        refused("users.err.login", lambda: users.create_user(session, "Иван", plain, PASSWORD))
        refused("users.err.login", lambda: users.create_user(session, "a b", plain, PASSWORD))
        refused("users.err.login_taken", lambda: users.create_user(session, "SELLER", plain, PASSWORD))
        refused("users.err.password", lambda: users.create_user(session, "new", plain, "short"))
        refused("users.err.name", lambda: users.create_user(session, "new", users.Account(" ", "operator", ()),
                                                            PASSWORD))
        refused("users.err.role", lambda: users.create_user(session, "new", users.Account("N", "god", ()), PASSWORD))
        refused("users.err.department", lambda: users.create_user(
            session, "new", users.Account("N", "operator", ("nope",)), PASSWORD))
        refused("users.err.head_department", lambda: users.create_user(
            session, "new", users.Account("N", "department_head", ()), PASSWORD))
        refused("users.err.interface", lambda: users.create_user(
            session, "new", users.Account("N", "operator", (), "101; drop"), PASSWORD))
        refused("users.err.interface_taken", lambda: users.create_user(
            session, "new", users.Account("N", "operator", (), "PJSIP/101"), PASSWORD))
        # the only admin can neither stop being one nor leave
        refused("users.err.last_admin", lambda: users.update_user(
            session, world["root"], users.Account("Admin", "supervisor", ())))
        refused("users.err.last_admin", lambda: users.deactivate_user(session, world["root"], None))
        refused("users.err.missing", lambda: users.set_password(session, 999_999, PASSWORD))
        assert session.scalar(select(Operator.id).where(Operator.login == "new")) is None


def test_someone_who_leaves_hands_over_clients_and_frees_the_phone(sessions: sessionmaker[Session],
                                                                  world: dict[str, int]) -> None:
    with sessions.begin() as session:
        refused("users.err.clients_left", lambda: users.deactivate_user(session, world["seller"], None))
        refused("users.err.heir", lambda: users.deactivate_user(session, world["seller"], world["seller"]))
        assert users.deactivate_user(session, world["seller"], world["boss"]) == 3
    with sessions.begin() as session:
        seller = session.get(Operator, world["seller"])
        assert (seller.active, seller.interface) == (False, None)
        assert set(session.scalars(select(Client.manager_id))) == {world["boss"]}
        refused("users.err.inactive", lambda: users.deactivate_user(session, world["seller"], world["boss"]))
        refused("users.err.heir", lambda: users.deactivate_user(session, world["boss"], world["seller"]))
        successor = users.create_user(session, "successor", users.Account("S", "operator", ("sales",), "PJSIP/101"),
                                      PASSWORD)  # the leaver's phone, taken at once
        assert successor.interface == "PJSIP/101"
        users.reactivate_user(session, world["seller"])
        assert session.get(Operator, world["seller"]).active


def login(sessions: sessionmaker[Session], name: str) -> tuple[TestClient, str]:
    http = TestClient(create_app(Settings(secret_key="t"), sessions, MemoryBus()))
    token = re.search(r'name="csrf" value="([^"]+)"', http.get("/login").text).group(1)  # type: ignore[union-attr]
    desk = http.post("/login", data={"login": name, "password": PASSWORD, "csrf": token})
    return http, re.search(r'"csrf": "([^"]+)"', desk.text).group(1)  # type: ignore[union-attr]


def test_the_admin_adds_edits_and_retires_staff_on_the_page_and_each_step_is_audited(
    sessions: sessionmaker[Session], world: dict[str, int]
) -> None:
    http, csrf = login(sessions, "root")
    listing = http.get("/admin/users").text
    assert 'data-login="seller"' in listing and "PJSIP/101" in listing
    made = http.post("/admin/users", data={"csrf": csrf, "login": "ivanova", "name": "<b>Ирина</b>", "role": "operator",
                                           "departments": ["sales", "service"], "interface": "PJSIP/105",
                                           "password": "secret-pass-1"}, follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"].startswith("/admin/users?done=")
    with sessions() as session:
        ivanova = session.scalar(select(Operator).where(Operator.login == "ivanova"))
        assert sorted(d.code for d in ivanova.departments) == ["sales", "service"]
        ivanova_id = ivanova.id
    page = http.get(f"/admin/users/{ivanova_id}").text
    assert "&lt;b&gt;Ирина&lt;/b&gt;" in page and "<b>Ирина</b>" not in page  # a name is text, not markup
    taken = http.post(f"/admin/users/{ivanova_id}", data={"csrf": csrf, "name": "Ирина", "role": "operator",
                                                          "departments": ["sales"], "interface": "PJSIP/101"})
    assert "PJSIP/101 — уже телефон seller." in taken.text  # followed back to the page, with why
    http.post(f"/admin/users/{ivanova_id}/password", data={"csrf": csrf, "password": "another-pass-2"})
    left = http.post(f"/admin/users/{world['seller']}/deactivate", data={"csrf": csrf, "clients_to": ""})
    assert "seller — личный менеджер 3 клиентов" in left.text
    left = http.post(f"/admin/users/{world['seller']}/deactivate",
                     data={"csrf": csrf, "clients_to": str(ivanova_id)})
    assert "передано клиентов: 3" in left.text
    assert ("остался в очередях АТС как PJSIP/101, выведите его там: Действия супервизора недоступны: "
            "не настроено подключение к телефонии.") in left.text  # this app has no PBX to ask
    with sessions() as session:
        assert verify_password(session.get(Operator, ivanova_id).password_hash, "another-pass-2")
        assert set(session.scalars(select(Client.manager_id))) == {ivanova_id}
        audit = session.execute(select(AuditEntry.action, AuditEntry.target, AuditEntry.outcome, AuditEntry.details)
                                .order_by(AuditEntry.id)).all()
    assert [(a, t, o) for a, t, o, _ in audit] == [
        ("user_create", "ivanova", "ok"), ("user_update", "ivanova", "refused"), ("user_password", "ivanova", "ok"),
        ("user_deactivate", "seller", "refused"), ("user_deactivate", "seller", "ok"), ("logout", "seller", "failed")]
    assert not any("pass" in repr(details) for *_, details in audit)  # no password, nor its hash
    leaver = TestClient(http.app)  # the leaver cannot log in again
    token = re.search(r'name="csrf" value="([^"]+)"', leaver.get("/login").text).group(1)  # type: ignore[union-attr]
    tried = leaver.post("/login", data={"login": "seller", "password": PASSWORD, "csrf": token}, follow_redirects=False)
    assert tried.status_code == 401 and 'id="login-error"' in tried.text


def test_only_admins_reach_the_staff_pages_and_only_with_the_csrf_token(sessions: sessionmaker[Session],
                                                                        world: dict[str, int]) -> None:
    boss, csrf = login(sessions, "boss")
    assert boss.get("/admin/users").status_code == 403
    assert boss.post(f"/admin/users/{world['seller']}/password", data={"csrf": csrf, "password": "hijacked-1"},
                     follow_redirects=False).status_code == 403
    root, _ = login(sessions, "root")
    assert root.post(f"/admin/users/{world['seller']}/password", data={"csrf": "forged", "password": "hijacked-1"},
                     follow_redirects=False).status_code == 403
    with sessions() as session:
        assert verify_password(session.get(Operator, world["seller"]).password_hash, PASSWORD)
    assert root.get("/admin/users/999999").status_code == 404


def test_a_new_password_signs_out_every_other_session_of_the_account(sessions: sessionmaker[Session],
                                                                     world: dict[str, int]) -> None:
    """The seller changes their password on one computer: another computer's session ends, theirs
    goes on. Then the admin resets it (a stolen password): the seller's session ends too."""
    here, csrf = login(sessions, "seller")
    there, _ = login(sessions, "seller")
    assert there.get("/api/me").status_code == 200
    wrong = here.post("/account/password", data={"csrf": csrf, "current": "guess-1234", "password": "brand-new-pw",
                                                  "repeat": "brand-new-pw"})
    assert "Текущий пароль неверен." in wrong.text
    differ = here.post("/account/password", data={"csrf": csrf, "current": PASSWORD, "password": "brand-new-pw",
                                                   "repeat": "brand-new-px"})
    assert "Новые пароли не совпадают." in differ.text
    assert there.get("/api/me").status_code == 200  # nothing changed yet
    done = here.post("/account/password", data={"csrf": csrf, "current": PASSWORD, "password": "brand-new-pw",
                                                 "repeat": "brand-new-pw"})
    assert "Пароль изменён." in done.text
    assert here.get("/api/me").status_code == 200
    assert there.get("/api/me").status_code == 401
    with sessions() as session:
        assert verify_password(session.get(Operator, world["seller"]).password_hash, "brand-new-pw")
        assert [tuple(row) for row in session.execute(select(AuditEntry.action, AuditEntry.outcome, AuditEntry.error)
                                                      .order_by(AuditEntry.id))] == [
            ("password_own", "refused", "wrong current password"),
            ("password_own", "refused", "the two new passwords differ"), ("password_own", "ok", "")]

    root, root_csrf = login(sessions, "root")
    root.post(f"/admin/users/{world['seller']}/password", data={"csrf": root_csrf, "password": "reset-by-admin"})
    assert here.get("/api/me").status_code == 401
    root.post(f"/admin/users/{world['root']}/password", data={"csrf": root_csrf, "password": "admins-own-new"})
    assert root.get("/api/me").status_code == 200  # the admin's own reset keeps the admin's session


def test_guessing_the_current_password_is_held_back_like_a_login(sessions: sessionmaker[Session],
                                                                 world: dict[str, int]) -> None:
    http, csrf = login(sessions, "seller")
    guess = {"csrf": csrf, "current": "guess-0000", "password": "brand-new-pw", "repeat": "brand-new-pw"}
    for _ in range(5):
        assert "Текущий пароль неверен." in http.post("/account/password", data=guess).text
    held = http.post("/account/password", data={**guess, "current": PASSWORD})  # even the right one, for now
    assert "Слишком много неудачных попыток входа" in held.text
    with sessions() as session:
        assert verify_password(session.get(Operator, world["seller"]).password_hash, PASSWORD)
