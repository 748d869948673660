"""The client-base import in Chromium: a supervisor goes from the client list to the import page,
loads a Windows-1251 file from the old CRM, watches the bar reach the end, reads the refused rows
(a hostile name as text, not markup) and finds the imported client by name."""

from __future__ import annotations

from pathlib import Path

from live_desk import LiveDesk
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from crm_core.models import Client

HOSTILE = '<img src=x onerror="document.title=1">Злоумышленник'
ROWS = [
    "ФИО;Телефоны;Город;Менеджер",
    "Импортова Ирина Петровна;8 (912) 555-01-01;Пермь;op1",
    "ООО «Импорт-Сервис»;+7 912 555-01-02, +7 912 555-01-03;Тула;",
    f"{HOSTILE};12345;;",
    "Беспечный Борис;+7 912 555-01-04;;no_such_login",
]


def test_supervisor_imports_a_client_base_and_finds_the_new_client(browser: Browser, live_desk: LiveDesk,
                                                                   tmp_path: Path) -> None:
    page = browser.new_context(base_url=live_desk.url).new_page()
    page.goto("/login")
    page.fill("input[name=login]", "super1")
    page.fill("input[name=password]", live_desk.passwords["super1"])
    page.click("button[type=submit]")
    page.wait_for_url("**/desk")
    page.click("header a[href='/clients']")
    page.click("#client-import")
    expect(page.locator("h1")).to_have_text("Загрузка клиентов")
    expect(page.locator("#import-format code").first).to_have_text("id")

    source = tmp_path / "база.csv"
    source.write_bytes(("\r\n".join(ROWS) + "\r\n").encode("cp1251"))
    page.set_input_files("#import-file", str(source))
    page.click("#import-start")
    expect(page.locator("#import-result")).to_be_visible(timeout=20_000)
    expect(page.locator("#import-progress")).to_have_attribute("value", "100")
    expect(page.locator("#import-message")).to_have_text("база.csv загружен.")
    expect(page.locator("#import-counts tr[data-count=created] th")).to_have_text("Новых клиентов")
    expect(page.locator("#import-counts tr[data-count=created] td")).to_have_text("2")
    expect(page.locator("#import-counts tr[data-count=rejected] td")).to_have_text("2")
    expect(page.locator("#import-rejected thead th").nth(1)).to_have_text("Имя")
    hostile = page.locator("#import-rejected tr[data-line='4']")
    expect(hostile.locator("td").nth(1)).to_have_text(HOSTILE)  # shown as text
    expect(hostile).to_contain_text("«12345» — не номер телефона")
    expect(page.locator("#import-rejected tr[data-line='5']")).to_contain_text("no_such_login — не логин")
    assert page.locator("#import-result img").count() == 0 and page.title() != "1"

    page.fill("header input[name=q]", "Импортова")
    page.keyboard.press("Enter")
    expect(page.locator("#client-list .client-name")).to_have_text(["Импортова Ирина Петровна"])
    expect(page.locator("#client-list .phones button")).to_have_count(1)
    with live_desk.sessions() as s:
        firm = s.scalars(select(Client).where(Client.name == "ООО «Импорт-Сервис»")).one()
        assert (firm.city, len(firm.phone_links)) == ("Тула", 2)
    page.context.close()
