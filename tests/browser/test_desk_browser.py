"""The desk in a real browser: pops while ringing, unknown and shared numbers, notes, languages."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator

import pytest
from live_desk import ARTIFACTS, LiveDesk
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from crm_core.models import Call, Client, ClientPhone, Interaction, Operator, Phone, Request
from crm_core.seed import KNOWN_NAME, KNOWN_NUMBER
from routing.inbox.models import RequestEvent

HOSTILE = "<script>alert(1)</script>"
_ids = itertools.count(1)
_rung: list[str] = []


@pytest.fixture(autouse=True)
def _calls_end_with_their_test(live_desk: LiveDesk) -> Iterator[None]:
    """Desks replay live calls on (re)connect: a call left ringing would show on the next test's desk."""
    yield
    while _rung:
        live_desk.publish(CallEvent(kind=CallEventKind.ENDED, linkedid=_rung.pop(), at=time.time(),
                                    outcome=Outcome.MISSED))


def ring(desk: LiveDesk, login: str, caller_num: str, caller_name: str = "") -> str:
    """Publish RINGING on the login's interface, as the bridge would; returns the linkedid."""
    linkedid = f"{int(time.time())}.{next(_ids)}"
    with desk.sessions() as session:
        interface = session.scalar(select(Operator.interface).where(Operator.login == login))
    now = time.time()
    _rung.append(linkedid)
    for kind in (CallEventKind.OFFERED, CallEventKind.RINGING):
        desk.publish(CallEvent(kind=kind, linkedid=linkedid, at=now, caller_num=caller_num,
                               caller_name=caller_name, queue="sales", did="3000", interface=interface))
    return linkedid


def answer_and_hang_up(desk: LiveDesk, login: str, linkedid: str, talk: int = 42) -> None:
    with desk.sessions() as session:
        interface = session.scalar(select(Operator.interface).where(Operator.login == login))
    desk.publish(CallEvent(kind=CallEventKind.ANSWERED, linkedid=linkedid, at=time.time(), queue="sales",
                           interface=interface, wait_seconds=3))
    desk.publish(CallEvent(kind=CallEventKind.ENDED, linkedid=linkedid, at=time.time(), queue="sales",
                           interface=interface, outcome=Outcome.ANSWERED, wait_seconds=3, talk_seconds=talk))


def test_card_pops_while_ringing_and_the_note_is_saved(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    page: Page = new_desk_page("op1")
    linkedid = ring(live_desk, "op1", "8" + KNOWN_NUMBER[2:], "Ivan Petrov")

    expect(page.locator("#client-name")).to_have_text(KNOWN_NAME)
    expect(page.locator("#call-state")).to_have_text("Звонит")  # popped before any ANSWERED exists
    expect(page.locator(".phone-call").first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "desk.png"))

    answer_and_hang_up(live_desk, "op1", linkedid)
    expect(page.locator("#call-state")).to_have_text("Завершён")
    expect(page.locator("#call-timer")).to_have_text("00:42")
    panel, note = page.locator(".call-panel").bounding_box(), page.locator("#note").bounding_box()
    assert panel and note  # the note fills its panel: the client page's note rule once squeezed it sideways
    assert panel["width"] / 2 < note["width"] and note["x"] + note["width"] <= panel["x"] + panel["width"]

    page.fill("#note", "Уточнил тариф, оформили заказ")
    page.select_option("#disposition", "sale")
    page.press("#note", "Control+Enter")
    expect(page.locator("#toast")).to_have_text("Заметка сохранена.")
    with live_desk.sessions() as session:
        call = session.scalar(select(Call).where(Call.linkedid == linkedid))
        known_id = session.scalar(select(Client.id).where(Client.name == KNOWN_NAME))
        assert (call.disposition, call.client_id, call.outcome) == ("sale", known_id, "answered")
        notes = session.scalars(select(Interaction).where(Interaction.call_id == call.id)).all()
        assert [(n.note, n.client_id) for n in notes] == [("Уточнил тариф, оформили заказ", known_id)]

    page.goto("/calls")
    row = page.locator(f'tr[data-linkedid="{linkedid}"]')
    expect(row).to_contain_text(KNOWN_NAME)
    expect(row).to_contain_text("Анна Смирнова")
    expect(row).to_contain_text("Продажа")


def test_unknown_caller_is_created_from_the_pop(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    page: Page = new_desk_page("op2")
    ring(live_desk, "op2", "89161230001", "Maria Novikova")
    expect(page.locator("#new-caller-number")).to_have_text("+7 916 123-00-01")
    expect(page.locator("#new-phone")).to_have_value("+79161230001")
    expect(page.locator("#new-name")).to_have_value("Maria Novikova")  # from the caller ID, not typed again
    page.keyboard.press("n")
    expect(page.locator("#new-name")).to_be_focused()  # selected: what the operator types replaces it
    page.keyboard.type("Мария Новикова")
    page.click("#new-caller-form button[type=submit]")
    expect(page.locator("#client-name")).to_have_text("Мария Новикова")
    expect(page.locator("#note-target")).to_have_text("Мария Новикова")
    with live_desk.sessions() as session:
        owners = session.scalars(
            select(Client.name).join(ClientPhone).join(Phone).where(Phone.e164 == "+79161230001")
        ).all()
    assert owners == ["Мария Новикова"]


def test_a_withheld_number_pops_as_withheld_in_the_readers_words(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    """Asterisk says `anonymous`; the operator reads that the number is hidden, with nothing to ring back."""
    page: Page = new_desk_page("op2")
    ring(live_desk, "op2", "anonymous", "anonymous")
    expect(page.locator("#new-caller-number")).to_have_text("Номер скрыт")
    expect(page.locator("#caller-line")).to_have_text("Номер скрыт")
    expect(page.locator("#new-phone")).to_have_value("")
    expect(page.locator("#new-caller h3")).to_have_count(0)  # no request "with just the number"


def test_shared_number_asks_who_is_calling_and_logs_only_that_client(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    with live_desk.sessions() as session:
        shared = session.execute(
            select(Phone.e164).join(ClientPhone).group_by(Phone.e164).having(func.count() > 1).limit(1)
        ).scalar_one()
    page: Page = new_desk_page("op3")
    linkedid = ring(live_desk, "op3", shared)
    choices = page.locator("#chooser button.choose")
    expect(choices).to_have_count(2)
    second_id = int(choices.nth(1).get_attribute("data-client-id") or 0)
    page.keyboard.press("2")
    expect(page.locator(f'.client-card[data-client-id="{second_id}"]')).to_be_visible()
    page.fill("#note", "Спрашивала про счёт")
    page.click("#save-note")
    expect(page.locator("#toast")).to_have_text("Заметка сохранена.")
    with live_desk.sessions() as session:
        call = session.scalar(select(Call).where(Call.linkedid == linkedid))
        assert call.client_id == second_id
        assert session.scalars(select(Interaction.client_id).where(Interaction.call_id == call.id)).all() == [
            second_id
        ]


def test_hostile_caller_name_is_shown_as_text(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    page: Page = new_desk_page("op4")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    ring(live_desk, "op4", "+79227770011", HOSTILE)
    expect(page.locator("#caller-name")).to_have_text(HOSTILE)
    assert page.locator("#caller-line script").count() == 0
    assert dialogs == []


def test_another_operators_browser_never_shows_the_pop(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    anna: Page = new_desk_page("op1")
    dmitry: Page = new_desk_page("op2")
    ring(live_desk, "op1", KNOWN_NUMBER)
    expect(anna.locator("#client-name")).to_have_text(KNOWN_NAME)
    dmitry.wait_for_timeout(500)
    assert dmitry.locator("#client-name").count() == 0
    assert dmitry.locator("body").get_attribute("data-call-state") is None
    expect(dmitry.locator("#call-state")).to_have_text("Нет звонка")


def test_language_switch_and_keyboard_shortcuts(new_desk_page) -> None:  # type: ignore[no-untyped-def]
    page: Page = new_desk_page("super1")
    page.select_option("#language", "en")
    expect(page.locator("#call-state")).to_have_text("No call")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    expect(page.locator("#help")).to_contain_text("Save the after-call note")
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("Петров")
    page.keyboard.press("Enter")
    expect(page.locator("#client-list")).to_contain_text(KNOWN_NAME)
    page.wait_for_load_state("domcontentloaded")  # module scripts, which wire the switch, have run by then
    page.select_option("#language", "ru")
    expect(page.locator("html")).to_have_attribute("lang", "ru")


def test_reload_mid_call_shows_the_same_call(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    page: Page = new_desk_page("op3")
    linkedid = ring(live_desk, "op3", KNOWN_NUMBER, "Ivan Petrov")
    expect(page.locator("#client-name")).to_have_text(KNOWN_NAME)
    page.wait_for_timeout(1100)

    page.reload()
    page.wait_for_selector("body[data-socket=ready]")
    expect(page.locator("#client-name")).to_have_text(KNOWN_NAME)
    expect(page.locator("#call-state")).to_have_text("Звонит")
    assert page.locator("#call-timer").inner_text() != "00:00", "the ring timer goes on, it does not restart"

    with live_desk.sessions() as session:
        interface = session.scalar(select(Operator.interface).where(Operator.login == "op3"))
    live_desk.publish(CallEvent(kind=CallEventKind.ANSWERED, linkedid=linkedid, at=time.time(), queue="sales",
                                interface=interface, wait_seconds=3))
    expect(page.locator("#call-state")).to_have_text("Разговор")
    page.reload()
    page.wait_for_selector("body[data-socket=ready]")
    expect(page.locator("#call-state")).to_have_text("Разговор")
    expect(page.locator("#client-name")).to_have_text(KNOWN_NAME)

    answer_and_hang_up(live_desk, "op3", linkedid)
    expect(page.locator("#call-state")).to_have_text("Завершён")
    page.reload()
    page.wait_for_selector("body[data-socket=ready]")
    expect(page.locator("#call-state")).to_have_text("Нет звонка")


def test_client_page_edits_the_card_and_its_numbers(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    with live_desk.sessions.begin() as session:
        client = Client(name="Редактируемый Клиент", city="Челябинск")
        client.phone_links.append(ClientPhone(phone=Phone(e164="+79120001122", kind="mobile"), label="мобильный"))
        session.add(client)
        session.flush()
        client_id = client.id
    page: Page = new_desk_page("op1")
    page.goto(f"/clients/{client_id}")
    page.click("#client-edit")
    form = page.locator("#client-form")
    expect(form.locator("select[name=manager_id]")).to_have_count(0)  # an operator does not pick managers
    form.locator("input[name=city]").fill("Миасс")
    form.locator("input[name=email]").fill("edit@example.ru")
    form.locator("button[type=submit]").click()
    expect(page.locator("#toast")).to_have_text("Сохранено.")
    expect(page.locator(".client-card")).to_contain_text("Миасс")
    expect(page.locator(".client-card")).to_contain_text("edit@example.ru")

    page.keyboard.press("e")  # the shortcut opens the editor too
    page.fill("#phone-add input[name=number]", "12345")
    page.click("#phone-add button[type=submit]")
    expect(page.locator("#toast")).to_contain_text("Не сохранено")
    page.fill("#phone-add input[name=number]", "8 351 700-11-22")
    page.fill("#phone-add input[name=label]", "рабочий")
    page.click("#phone-add button[type=submit]")
    expect(page.locator('.phones-editor li[data-e164="+73517001122"]')).to_contain_text("рабочий")
    page.locator('.phones-editor li[data-e164="+79120001122"] .phone-remove').click()
    expect(page.locator('.phones-editor li[data-e164="+79120001122"]')).to_have_count(0)
    page.locator("#client-form button[type=button]").click()  # done
    expect(page.locator('.client-card button[data-e164="+73517001122"]')).to_be_visible()  # click-to-call
    page.fill("#client-note", "Приходил в офис за актом")
    page.press("#client-note", "Control+Enter")
    expect(page.locator("#timeline .interaction").first).to_contain_text("Приходил в офис за актом")
    expect(page.locator("#timeline .interaction").first).to_contain_text("Анна Смирнова")  # the author
    expect(page.locator("#client-note")).to_have_value("")
    with live_desk.sessions() as session:
        row = session.get(Client, client_id)
        assert (row.city, row.email) == ("Миасс", "edit@example.ru")
        assert [link.phone.e164 for link in row.phone_links] == ["+73517001122"]


def test_a_supervisor_merges_a_twin_into_the_card_from_the_client_page(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    with live_desk.sessions.begin() as session:
        shared = Phone(e164="+79125550201", kind="mobile")
        keep = Client(name="Двойников Дмитрий", city="Курган")
        keep.phone_links.append(ClientPhone(phone=shared))
        twin = Client(name="<i>Двойников</i> Д.", email="twin@example.ru")  # a name is text, not markup
        twin.phone_links += [ClientPhone(phone=shared), ClientPhone(phone=Phone(e164="+79125550202", kind="mobile"))]
        session.add_all([keep, twin])
        session.flush()
        keep_id, twin_id = keep.id, twin.id
    operator: Page = new_desk_page("op1")
    operator.goto(f"/clients/{keep_id}")
    expect(operator.locator("#client-card .client-card")).to_be_visible()
    expect(operator.locator("#duplicates")).to_be_hidden()  # operators do not merge

    page: Page = new_desk_page("super1")
    page.goto(f"/clients/{keep_id}")
    twin_row = page.locator(f"#duplicates li[data-id='{twin_id}']")
    expect(twin_row.locator(".client-name")).to_have_text("<i>Двойников</i> Д.")
    expect(twin_row).to_contain_text("общий номер")
    page.once("dialog", lambda dialog: dialog.accept())
    twin_row.locator("button.merge").click()
    expect(page.locator('.client-card button[data-e164="+79125550202"]')).to_be_visible()
    expect(page.locator("#duplicates")).to_be_hidden()
    expect(page.locator(".client-card")).to_contain_text("twin@example.ru")
    with live_desk.sessions() as session:
        assert session.get(Client, twin_id) is None


def filed_in(page: Page, department: str) -> int:
    """The id of the request the toast says was just filed in `department`."""
    toast = page.locator("#toast")
    expect(toast).to_have_text(re.compile(rf"Обращение №\d+ создано: {department}"))
    return int(re.search(r"№(\d+)", toast.inner_text()).group(1))  # type: ignore[union-attr]


def test_a_request_is_filed_from_the_popped_card_and_opens_in_the_inbox(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    """On the line with a managed client, the operator files a complaint from the card: it goes to the
    manager's department, lists on the card at once, and the card's link opens it in the inbox. Its
    Ctrl+Enter files the request and leaves the call's note alone."""
    page: Page = new_desk_page("op1")
    posted: list[str] = []
    page.on("request", lambda r: r.method == "POST" and posted.append(r.url))
    ring(live_desk, "op1", KNOWN_NUMBER)
    expect(page.locator("#client-name")).to_have_text(KNOWN_NAME)
    page.keyboard.press("r")
    subject = page.locator("#request-form input[name=subject]")
    expect(subject).to_be_focused()
    page.select_option("#request-form select[name=kind]", "complaint")
    subject.fill(HOSTILE)  # a subject is shown back as text, like a caller's name
    page.fill("#request-form textarea[name=body]", "Счёт пришёл дважды, просит вернуть")
    page.press("#request-form textarea[name=body]", "Control+Enter")
    request_id = filed_in(page, "Продажи")
    with live_desk.sessions() as session:
        filed = session.get(Request, request_id)
        op1 = session.scalar(select(Operator).where(Operator.login == "op1"))
        assert (filed.kind, filed.subject, filed.body, filed.client.name, filed.department.code, filed.assignee_id) == (
            "complaint", HOSTILE, "Счёт пришёл дважды, просит вернуть", KNOWN_NAME, "sales", op1.id)
        assert session.scalar(select(RequestEvent.author_id).where(RequestEvent.request_id == request_id)) == op1.id
    assert not [url for url in posted if url.endswith("/note")]  # the call's note was not saved by that key
    expect(page.locator("#request-form")).to_have_count(0)
    entry = page.locator(f'#card-requests li[data-request-id="{request_id}"]')
    expect(entry.locator("a")).to_have_text(HOSTILE)
    expect(entry).to_contain_text(re.compile(r"Продажи · открыто · \d\d\.\d\d\.\d{4}"))  # filed just now
    entry.locator("a").click()
    expect(page).to_have_url(re.compile(rf"/requests\?request={request_id}$"))
    expect(page.locator("#request-title")).to_have_text(f"#{request_id} {HOSTILE}")
    expect(page.locator("#request-client a")).to_have_text(KNOWN_NAME)
    expect(page.locator("#request-body")).to_have_text("Счёт пришёл дважды, просит вернуть")
    expect(page.locator('#inbox-departments a[aria-current="page"]')).to_have_text("Продажи")


def test_an_unknown_caller_gets_a_request_without_becoming_a_client(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    """Not every caller becomes a client: a request carries just their number, to ring them back."""
    page: Page = new_desk_page("op2")
    ring(live_desk, "op2", "89161230002")
    expect(page.locator("#new-caller-number")).to_have_text("+7 916 123-00-02")
    expect(page.locator("#new-caller h3")).to_have_text("Или обращение только с номером")
    page.keyboard.press("r")
    page.select_option("#request-form select[name=kind]", "callback")
    page.keyboard.type("Узнать про тарифы, перезвонить вечером")
    page.press("#request-form input[name=subject]", "Control+Enter")
    request_id = filed_in(page, "Продажи")
    with live_desk.sessions() as session:
        filed = session.get(Request, request_id)
        assert (filed.kind, filed.contact, filed.client_id) == ("callback", "+79161230002", None)
        assert session.scalar(select(func.count()).select_from(ClientPhone).join(Phone)
                              .where(Phone.e164 == "+79161230002")) == 0
    page.goto(f"/requests?request={request_id}")
    expect(page.locator("#request-client")).to_have_text("+79161230002")
    expect(page.locator(f'tr[data-request-id="{request_id}"] button[data-dial]')).to_have_text("☎ +7 916 123-00-02")


def test_a_client_is_added_by_hand_from_the_client_list(live_desk: LiveDesk, new_desk_page) -> None:  # type: ignore[no-untyped-def]
    """A walk-in or a letter: no call to pop a form, so the client list has one."""
    page: Page = new_desk_page("op1")
    page.goto("/clients")
    page.click("#new-client summary")
    form = page.locator("#new-client-form")
    form.locator("input[name=name]").fill("ООО «Василёк»")
    form.locator("select[name=kind]").select_option("company")
    form.locator("input[name=phone]").fill("не номер")
    form.locator("button[type=submit]").click()
    expect(page.locator("#toast")).to_contain_text("не номер")  # refused, with the reason, nothing made
    form.locator("input[name=phone]").fill("8 (351) 200-00-77")
    form.locator("input[name=city]").fill("Миасс")
    form.locator("button[type=submit]").click()
    expect(page.locator("#client-name")).to_have_text("ООО «Василёк»")
    expect(page.locator(".client-card .phone-call")).to_have_text("☎ +7 351 200-00-77")
    with live_desk.sessions() as session:
        made = session.scalars(select(Client).where(Client.name == "ООО «Василёк»")).all()
        assert [(c.kind, c.city, c.id) for c in made] == [("company", "Миасс", int(page.url.rsplit("/", 1)[1]))]
