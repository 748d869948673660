"""The admin's staff pages in Chromium: a newcomer is added with the form and works at once; when
they leave, their clients go to a colleague and their open desk stops working. A new password
closes the desks of the sessions opened with the old one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from live_desk import LiveDesk
from playwright.sync_api import Page, expect
from sqlalchemy import select, update

from callcard.bus import WALL_KEY
from crm_core import users
from crm_core.models import Client, Operator
from routing.wall import SNAPSHOT_FIELD


def test_the_admin_adds_a_newcomer_who_works_at_once_and_retires_them_with_their_clients(
    new_desk_page: Callable[[str], Page], live_desk: LiveDesk
) -> None:
    admin = new_desk_page("admin")
    admin.click('nav a[href="/admin/users"]')
    form = admin.locator("#new-user form")
    form.locator("input[name=login]").fill("newbie")
    form.locator("input[name=name]").fill("Пётр Новиков")
    form.locator("select[name=role]").select_option("operator")
    form.locator('input[name=departments][value="service"]').check()
    form.locator("input[name=interface]").fill("PJSIP/190")
    form.locator("input[name=password]").fill("newbie-pass-1")
    form.locator("button[type=submit]").click()
    expect(admin.locator("#users-done")).to_have_text("Сотрудник newbie создан.")
    row = admin.locator('tr[data-login="newbie"]')
    expect(row).to_contain_text("Пётр Новиков")
    expect(row).to_contain_text("Сервис")
    expect(row).to_contain_text("PJSIP/190")

    live_desk.passwords["newbie"] = "newbie-pass-1"
    newbie = new_desk_page("newbie")  # logs in and the desk's socket opens
    expect(newbie.locator("#whoami")).to_contain_text("Пётр Новиков")
    with live_desk.sessions.begin() as session:
        newbie_id = session.scalar(select(Operator.id).where(Operator.login == "newbie"))
        kept = session.scalars(select(Client.id).where(Client.manager_id.is_(None)).order_by(Client.id).limit(2)).all()
        session.execute(update(Client).where(Client.id.in_(kept)).values(manager_id=newbie_id))

    row.locator("a").click()
    expect(admin.locator("h1")).to_contain_text("Пётр Новиков")
    leave = admin.locator("#user-leave form")
    leave.locator("button[type=submit]").click()  # no colleague chosen for the two clients
    expect(admin.locator("#users-error")).to_contain_text("newbie — личный менеджер 2 клиентов")
    admin.locator("#user-leave select[name=clients_to]").select_option(label="Ольга Никитина (super1)")
    admin.locator("#user-leave button[type=submit]").click()
    expect(admin.locator("#users-done")).to_have_text("Учётная запись отключена; передано клиентов: 2.")
    expect(admin.locator("h1 .badge")).to_have_text("не работает")
    with live_desk.sessions() as session:
        heir = session.scalar(select(Operator.id).where(Operator.login == "super1"))
        assert set(session.scalars(select(Client.manager_id).where(Client.id.in_(kept)))) == {heir}
        assert session.get(Operator, newbie_id).interface is None

    expect(newbie).to_have_url(live_desk.url + "/login")  # the leaver's open desk closed at once
    newbie.goto("/calls")  # and nothing opens it again
    expect(newbie).to_have_url(live_desk.url + "/login")
    admin.goto("/supervisor/agents")  # the audit log says so in words
    left = admin.locator('#audit-body td[data-action="user_deactivate"]')
    expect(left.first).to_have_text("учётная запись отключена")
    expect(admin.locator('#audit-body td[data-action="user_create"]').first).to_have_text("создана учётная запись")


def test_a_new_password_closes_the_desks_of_the_sessions_opened_before_it(
    new_desk_page: Callable[[str], Page], live_desk: LiveDesk
) -> None:
    """Someone else had the password and a desk open with it: the owner sets a new one on /account
    from another computer; the other desk stops at once (its socket closes, it shows the login)."""
    with live_desk.sessions.begin() as session:
        users.create_user(session, "owner", users.Account("Вера Хозяйкина", "operator", ("sales",), "PJSIP/191"),
                          "owner-pass-1")
    live_desk.passwords["owner"] = "owner-pass-1"
    intruder = new_desk_page("owner")
    owner = new_desk_page("owner")
    owner.click("#whoami")
    owner.fill("input[name=current]", "owner-pass-1")
    owner.fill("input[name=password]", "owner-pass-2")
    owner.fill("input[name=repeat]", "owner-pass-2")
    owner.click("#own-password button[type=submit]")
    expect(owner.locator("#account-done")).to_have_text("Пароль изменён.")
    expect(intruder).to_have_url(live_desk.url + "/login")  # pushed out without touching anything
    expect(intruder.locator("input[name=login]")).to_be_visible()  # and really signed out
    owner.goto("/desk")  # the owner's own session goes on
    expect(owner.locator("body[data-socket=ready]")).to_have_count(1)


def test_a_deactivated_supervisors_open_wall_closes(new_desk_page: Callable[[str], Page], live_desk: LiveDesk) -> None:
    with live_desk.sessions.begin() as session:
        watcher_id = users.create_user(session, "watcher", users.Account("Надзиратель", "supervisor", ()),
                                       "watcher-pass-1").id
    live_desk.passwords["watcher"] = "watcher-pass-1"
    now = time.time()  # no wall service here: the snapshot it would keep, of a quiet morning
    quiet = {"type": "wall", "at": now, "day_start": now - 3600, "queues": [], "intervals": [], "agents": []}
    asyncio.run_coroutine_threadsafe(live_desk.bus.keep(WALL_KEY, SNAPSHOT_FIELD, quiet, 60), live_desk.loop).result(5)
    wall = new_desk_page("watcher")
    wall.goto("/wall")
    expect(wall.locator("body[data-socket=ready]")).to_have_count(1)
    admin = new_desk_page("admin")
    admin.goto(f"/admin/users/{watcher_id}")
    admin.locator("#user-leave button[type=submit]").click()
    expect(admin.locator("#users-done")).to_contain_text("Учётная запись отключена")
    expect(wall).to_have_url(live_desk.url + "/login")
    asyncio.run_coroutine_threadsafe(live_desk.bus.forget(WALL_KEY, SNAPSHOT_FIELD), live_desk.loop).result(5)
