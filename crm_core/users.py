"""The centre's staff accounts: who logs in, in which role and departments, on which phone.

One place for the rules, used by the admin's page and the CLI alike: a login is unique and
plain; a password has at least MIN_PASSWORD characters; a department head heads the departments
they are in (and no others); a phone (Asterisk interface) belongs to one active person, and is
freed when they leave, so their successor can take it; the last active admin can neither leave
nor lose the role, so the centre is never locked out of its own settings; and someone who leaves
hands their personal clients to a colleague (or, said so, to nobody): the clients stay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcard.refusal import Refusal
from crm_core.clients import reassign_clients
from crm_core.models import Client, Department, Operator
from crm_core.passwords import hash_password

ROLES = ("operator", "department_head", "supervisor", "admin")
MIN_PASSWORD = 8
LOGIN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
INTERFACE = re.compile(r"[A-Za-z][A-Za-z0-9]*/[A-Za-z0-9@._+-]{1,120}")  # PJSIP/101, Local/105@agents


class UserError(Refusal):
    """An account change the rules above refuse; the message says which rule."""


@dataclass(frozen=True)
class Account:
    """What an admin sets on an account (the password aside)."""

    name: str
    role: str
    departments: tuple[str, ...]  # department codes
    interface: str = ""  # empty: no phone (a supervisor who only watches)


def create_user(session: Session, login: str, account: Account, password: str, language: str = "ru") -> Operator:
    login = login.strip().lower()
    if not LOGIN.fullmatch(login):
        raise UserError(f"login {login!r}: latin letters, digits, '.', '_' or '-', at most 64",
                        "users.err.login", login=login)
    if session.scalar(select(Operator.id).where(Operator.login == login)) is not None:
        raise UserError(f"user {login!r} already exists", "users.err.login_taken", login=login)
    _check_password(password)
    user = Operator(login=login, name="", role="operator", password_hash=hash_password(password), language=language)
    _apply(session, user, account)  # adds the user once every rule is met
    return user


def update_user(session: Session, user_id: int, account: Account) -> Operator:
    user = _get(session, user_id)
    if user.role == "admin" and account.role != "admin":
        _keep_an_admin(session, user)
    _apply(session, user, account)
    return user


def set_password(session: Session, user_id: int, password: str) -> Operator:
    _check_password(password)
    user = _get(session, user_id)
    user.password_hash = hash_password(password)
    return user


def deactivate_user(session: Session, user_id: int, heir_id: int | None, *, clients_to_nobody: bool = False) -> int:
    """An employee leaves: the account stops working at once (every request re-reads it), they
    head no department, their phone is free, and their personal clients go to `heir_id`; with
    none named, only `clients_to_nobody` lets clients be left without a manager. Returns how
    many clients moved."""
    user = _get(session, user_id)
    if not user.active:
        raise UserError(f"{user.login} has left already", "users.err.inactive", login=user.login)
    if user.role == "admin":
        _keep_an_admin(session, user)
    managed = session.scalar(select(func.count()).select_from(Client).where(Client.manager_id == user.id)) or 0
    if heir_id is not None:
        heir = session.get(Operator, heir_id)
        if heir is None or not heir.active or heir.id == user.id:
            raise UserError("no other active user to take the clients", "users.err.heir")
    elif managed and not clients_to_nobody:
        raise UserError(f"{user.login} is personal manager of {managed} clients: name who takes them",
                        "users.err.clients_left", login=user.login, count=managed)
    moved = reassign_clients(session, user.id, heir_id)
    user.active = False
    user.interface = None
    for department in session.scalars(select(Department).where(Department.head_id == user.id)):
        department.head = None
    return moved


def reactivate_user(session: Session, user_id: int) -> Operator:
    """Back at work: the account logs in again; their phone and headships are set anew on the page."""
    user = _get(session, user_id)
    user.active = True
    return user


def _apply(session: Session, user: Operator, account: Account) -> None:
    name = account.name.strip()
    if not name:
        raise UserError("the name is empty", "users.err.name")
    if account.role not in ROLES:
        raise UserError(f"unknown role {account.role!r}; one of {', '.join(ROLES)}", "users.err.role")
    codes = list(dict.fromkeys(account.departments))
    departments = list(session.scalars(select(Department).where(Department.code.in_(codes)))) if codes else []
    unknown = sorted(set(codes) - {d.code for d in departments})
    if unknown:
        raise UserError(f"no department {', '.join(unknown)}", "users.err.department", codes=", ".join(unknown))
    if account.role == "department_head" and not departments:
        raise UserError("a department head needs a department", "users.err.head_department")
    interface = account.interface.strip() or None
    if interface is not None:
        if not INTERFACE.fullmatch(interface):
            raise UserError(f"phone {interface!r}: an Asterisk interface such as PJSIP/101", "users.err.interface",
                            interface=interface)
        holder = session.scalar(select(Operator).where(Operator.interface == interface))
        if holder is not None and holder is not user:
            raise UserError(f"{interface} is {holder.login}'s phone", "users.err.interface_taken",
                            interface=interface, login=holder.login)
    user.name, user.role, user.interface, user.departments = name[:128], account.role, interface, departments
    session.add(user)
    session.flush()
    heads = account.role == "department_head"
    for department in session.scalars(select(Department)):
        if heads and department in departments:
            department.head = user
        elif department.head_id == user.id:
            department.head = None


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters", "users.err.password",
                        count=MIN_PASSWORD)


def _keep_an_admin(session: Session, user: Operator) -> None:
    others = session.scalar(select(func.count()).select_from(Operator).where(
        Operator.role == "admin", Operator.active, Operator.id != user.id)) or 0
    if not others:
        raise UserError(f"{user.login} is the last admin", "users.err.last_admin", login=user.login)


def _get(session: Session, user_id: int) -> Operator:
    user = session.get(Operator, user_id)
    if user is None:
        raise UserError(f"no user {user_id}", "users.err.missing")
    return user
