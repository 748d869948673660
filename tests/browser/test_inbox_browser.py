"""The department inbox in Chromium: op1 (sales) opens a sales request, takes it, hands it to a
colleague of the department, comments and closes it; every step shows in its history and lands
in the database. op3 (service) does not see it at all."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from live_desk import LiveDesk
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from crm_core.models import OPEN_DEBT_STATUSES, Client, Debt, Department, Operator, Request
from routing.inbox import service
from routing.inbox.followups import escalate_once
from routing.inbox.models import RequestEvent


def test_inbox_actions_change_status_assign_comment_with_history(
    new_desk_page: Callable[[str], Page], live_desk: LiveDesk
) -> None:
    with live_desk.sessions.begin() as session:
        sales = session.scalar(select(Department.id).where(Department.code == "sales"))
        request = service.create_request(session, "callback", "Перезвонить незнакомцу", datetime.now(UTC),
                                         contact="+73517654321", department_id=sales, source="call")
        request_id = request.id
        # the stranger misses us again meanwhile: no second task, a line in this one's history
        assert not service.create_callback_for_call(session, "again.1", None, sales, "+73517654321",
                                                    datetime.now(UTC), "брошенный звонок")
        op1_id, op2_id = (session.scalar(select(Operator.id).where(Operator.login == login))
                          for login in ("op1", "op2"))

    op3 = new_desk_page("op3")
    op3.goto("/requests?department=sales")
    expect(op3.locator(f'tr[data-request-id="{request_id}"]')).to_have_count(0)

    page = new_desk_page("op1")
    page.goto("/requests?department=sales")
    row = page.locator(f'tr[data-request-id="{request_id}"]')
    expect(row.locator(".request-status")).to_have_text("Открыто")
    expect(row.locator(".request-assignee")).to_have_text("—")
    call_back = row.locator("button[data-dial]")  # the contact is a click-to-call button
    expect(call_back).to_have_text("☎ +7 351 765-43-21")
    with page.expect_request("**/api/dial") as dialled:
        call_back.click()
    assert dialled.value.post_data_json == {"number": "+73517654321"}
    page.set_viewport_size({"width": 1280, "height": 400})  # the detail is far below the list's first row
    page.locator("button.request-open").first.click()
    expect(page.locator("#request-detail")).to_be_in_viewport()  # scrolled to
    row.locator("button.request-open").click()
    expect(page.locator("#request-title")).to_have_text(f"#{request_id} Перезвонить незнакомцу")
    expect(page.locator("#request-history li")).to_have_count(2)
    expect(page.locator('#request-history li[data-kind="again"]')).to_contain_text(
        "снова звонил: брошенный звонок")

    page.select_option("#request-status", "in_progress")
    page.click("#status-go")
    expect(row.locator(".request-status")).to_have_text("В работе")
    page.click("#assign-me")
    expect(page.locator("#request-assignee")).to_have_text("Анна Смирнова")
    page.select_option("#assign-to", str(op2_id))
    page.click("#assign-go")
    expect(page.locator("#request-assignee")).to_have_text("Дмитрий Козлов")
    expect(row.locator(".request-assignee")).to_have_text("Дмитрий Козлов")  # the list says so too
    page.fill("#request-comment", "Звонил, не дозвонился")
    page.click("#comment-go")
    expect(page.locator("#request-history li")).to_have_count(6)
    expect(page.locator("#request-history li").last).to_contain_text("Звонил, не дозвонился")
    expect(page.locator('#request-history li[data-kind="assigned"]').last).to_contain_text("Дмитрий Козлов")
    expect(page.locator("#request-status option")).to_have_text(["В работе", "Открыто", "Закрыто"])
    page.select_option("#request-status", "closed")
    page.click("#status-go")
    expect(row.locator(".request-status")).to_have_text("Закрыто")
    # closed is final: the control shows the status and offers no move
    expect(page.locator("#request-status option")).to_have_text(["Закрыто"])
    expect(page.locator("#request-status")).to_be_disabled()
    expect(page.locator("#status-go")).to_be_disabled()

    with live_desk.sessions() as session:
        row_db = session.get(Request, request_id)
        assert (row_db.status, row_db.assignee_id) == ("closed", op2_id)
        steps = session.execute(select(RequestEvent.kind, RequestEvent.value, RequestEvent.author_id)
                                .where(RequestEvent.request_id == request_id).order_by(RequestEvent.id)).all()
    assert [tuple(s) for s in steps] == [
        ("created", "callback", None), ("again", "again.1", None), ("status", "in_progress", op1_id), ("assigned", str(op1_id), op1_id),
        ("assigned", str(op2_id), op1_id), ("comment", "", op1_id), ("status", "closed", op1_id)]


def test_desks_count_the_overdue_requests_up_with_each_escalation_and_down_as_they_are_closed(
    new_desk_page: Callable[[str], Page], live_desk: LiveDesk
) -> None:
    """A desk shows its departments' escalated requests on load; each escalation and each closing
    pushes the new count to the department's desks, so none needs a reload to be right."""

    def file_overdue(subject: str) -> int:
        with live_desk.sessions.begin() as session:
            filed = service.create_request(session, "complaint", subject, datetime.now(UTC) - timedelta(days=1),
                                           department_id=session.scalar(select(Department.id)
                                                                        .where(Department.code == "service")))
            filed_id = filed.id
        asyncio.run_coroutine_threadsafe(escalate_once(live_desk.sessions, live_desk.bus, datetime.now(UTC)),
                                         live_desk.loop).result(5)
        return filed_id

    file_overdue("Ждёт со вчера")
    with live_desk.sessions() as session:
        counts = dict(service.overdue_counts(session, list(session.scalars(select(Department)))))
        before = next(n for d, n in counts.items() if d.code == "service")
    head = new_desk_page("head_service")
    line = head.locator('#overdue-requests li[data-department="service"]')
    expect(line).to_have_text(f"Сервис: просрочено обращений {before}")
    expect(line.locator("a")).to_have_attribute("href", "/requests?department=service&view=overdue")
    fixer = new_desk_page("op3")  # works in service
    fixer_line = fixer.locator('#overdue-requests li[data-department="service"]')
    expect(fixer_line).to_have_text(f"Сервис: просрочено обращений {before}")
    seller = new_desk_page("op1")  # sales only
    late = file_overdue("Тоже ждёт")  # pushed to the open desks
    expect(line).to_have_text(f"Сервис: просрочено обращений {before + 1}")
    expect(fixer_line).to_have_text(f"Сервис: просрочено обращений {before + 1}")
    expect(head.locator("#toast")).to_have_text(f"Просрочено обращение №{late}: Тоже ждёт")  # the head's notice
    expect(head.locator("#overdue-requests li")).to_have_count(1)  # the head of service hears of service only

    inbox = new_desk_page("op3")
    inbox.goto(f"/requests?request={late}")
    inbox.select_option("#request-status", "closed")
    inbox.click("#status-go")
    expect(line).to_have_text(f"Сервис: просрочено обращений {before}")
    expect(fixer_line).to_have_text(f"Сервис: просрочено обращений {before}")
    expect(seller.locator('#overdue-requests li[data-department="service"]')).to_have_count(0)

    with live_desk.sessions.begin() as session:  # the rest closed too, by whoever: the line goes
        others = session.scalars(select(Request.id).join(Department).where(
            Department.code == "service", Request.status != "closed", Request.escalated_at.is_not(None))).all()
    for other in others:
        inbox.goto(f"/requests?request={other}")
        inbox.select_option("#request-status", "closed")
        inbox.click("#status-go")
        expect(inbox.locator("#request-status")).to_be_disabled()
    expect(line).to_have_count(0)
    expect(head.locator("#overdue-requests")).to_be_hidden()


def test_a_request_filed_on_a_client_page_for_another_department(
    new_desk_page: Callable[[str], Page], live_desk: LiveDesk
) -> None:
    """A service operator takes an order for a client no manager keeps: it goes to sales, shows on
    the card, and its link does not open sales' inbox for someone outside sales."""
    with live_desk.sessions() as session:
        debtors = select(Debt.client_id).where(Debt.status.in_(OPEN_DEBT_STATUSES))
        client = session.scalars(select(Client).where(Client.manager_id.is_(None), Client.kind == "person",
                                                      Client.id.not_in(debtors)).order_by(Client.id)).first()
        client_id, client_name = client.id, client.name
    page = new_desk_page("op3")
    page.goto(f"/clients/{client_id}")
    expect(page.locator("#client-name")).to_have_text(client_name)
    page.click("#new-request")
    page.select_option("#request-form select[name=kind]", "order")
    page.locator("#request-form input[name=subject]").fill("   ")
    page.click("#request-form button[type=submit]")  # blank: nothing is filed, the subject is asked for
    expect(page.locator("#request-form input[name=subject]")).to_be_focused()
    page.keyboard.press("Escape")  # and the form can be left without filing
    expect(page.locator("#request-form")).to_have_count(0)
    page.keyboard.press("r")
    page.select_option("#request-form select[name=kind]", "order")
    page.locator("#request-form input[name=subject]").fill("Подключить второй номер")
    page.click("#request-form button[type=submit]")
    expect(page.locator("#toast")).to_have_text(re.compile(r"Обращение №\d+ создано: Продажи"))
    with live_desk.sessions() as session:
        filed = session.scalars(select(Request).where(Request.client_id == client_id)
                                .order_by(Request.id.desc())).first()
        assert (filed.subject, filed.kind, filed.department.code, filed.assignee_id, filed.source) == (
            "Подключить второй номер", "order", "sales", None, "desk")
        filed_id = filed.id
        assert session.scalar(select(func.count()).where(Request.client_id == client_id,
                                                         Request.subject == "")) == 0  # the blank one never went
    entry = page.locator(f'#card-requests li[data-request-id="{filed_id}"]')
    expect(entry).to_contain_text("Продажи")
    entry.locator("a").click()
    expect(page.locator('#inbox-departments a[aria-current="page"]')).to_have_text("Сервис")  # op3's own, not sales'
    expect(page.locator("#request-detail")).to_be_hidden()
    expect(page.locator(f'tr[data-request-id="{filed_id}"]')).to_have_count(0)


def test_the_inbox_views_show_mine_the_overdue_and_the_closed(
    new_desk_page: Callable[[str], Page], live_desk: LiveDesk
) -> None:
    now = datetime.now(UTC)
    with live_desk.sessions.begin() as session:
        dept = session.scalar(select(Department.id).where(Department.code == "service"))
        op3 = session.scalar(select(Operator.id).where(Operator.login == "op3"))
        late = service.create_request(session, "complaint", "Опоздали", now - timedelta(days=1), department_id=dept)
        own = service.create_request(session, "question", "Моё", now, department_id=dept)
        service.assign(session, own.id, op3, op3, now)
        shut = service.create_request(session, "question", "Закрыли", now, department_id=dept)
        service.change_status(session, shut.id, "closed", op3, now)
        ids = {"late": late.id, "own": own.id, "shut": shut.id}
    page = new_desk_page("op3")
    page.goto("/requests?department=service")
    with live_desk.sessions() as session:
        counts = service.inbox_counts(session, dept, op3, datetime.now(UTC))
    for view, shown, hidden in (("mine", "own", "late"), ("overdue", "late", "own"), ("closed", "shut", "late"),
                                ("open", "late", "shut")):
        page.click(f'#inbox-views a[data-view="{view}"]')
        expect(page.locator('#inbox-views a[aria-current="page"]')).to_have_attribute("data-view", view)
        expect(page.locator(f'tr[data-request-id="{ids[shown]}"]')).to_have_count(1)
        expect(page.locator(f'tr[data-request-id="{ids[hidden]}"]')).to_have_count(0)
        if view in counts:
            expect(page.locator(f'#inbox-views a[data-view="{view}"] .count')).to_have_text(str(counts[view]))
    page.click('#inbox-views a[data-view="closed"]')
    page.click('#inbox-departments a:has-text("Сервис")')  # a department tab keeps the view
    expect(page.locator('#inbox-views a[aria-current="page"]')).to_have_attribute("data-view", "closed")
