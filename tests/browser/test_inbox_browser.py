"""The department inbox in Chromium: op1 (sales) opens a sales request, takes it, hands it to a
colleague of the department, comments and closes it; every step shows in its history and lands
in the database. op3 (service) does not see it at all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from live_desk import LiveDesk
from playwright.sync_api import Page, expect
from sqlalchemy import select

from crm_core.models import Department, Operator, Request
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


def test_a_heads_desk_counts_the_overdue_requests_and_each_new_escalation(
    new_desk_page: Callable[[str], Page], live_desk: LiveDesk
) -> None:
    """An escalation's push reaches only a desk open at that moment: the desk shows the ones made
    before, and counts each new one as it comes."""

    def file_overdue(subject: str) -> None:
        with live_desk.sessions.begin() as session:
            service.create_request(session, "complaint", subject, datetime.now(UTC) - timedelta(days=1),
                                   department_id=session.scalar(select(Department.id).where(Department.code == "service")))
        asyncio.run_coroutine_threadsafe(escalate_once(live_desk.sessions, live_desk.bus, datetime.now(UTC)),
                                         live_desk.loop).result(5)

    file_overdue("Ждёт со вчера")
    with live_desk.sessions() as session:
        counts = dict(service.overdue_counts(session, list(session.scalars(select(Department)))))
        before = next(n for d, n in counts.items() if d.code == "service")
    page = new_desk_page("head_service")
    line = page.locator('#overdue-requests li[data-department="service"]')
    expect(line).to_have_text(f"Сервис: просрочено обращений {before}")
    expect(line.locator("a")).to_have_attribute("href", "/requests?department=service")
    file_overdue("Тоже ждёт")  # pushed to the open desk
    expect(line).to_have_text(f"Сервис: просрочено обращений {before + 1}")
    expect(page.locator("#overdue-requests li")).to_have_count(1)  # the head of service hears of service only
