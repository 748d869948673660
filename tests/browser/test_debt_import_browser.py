"""The debt import page in Chromium: a supervisor picks a broken Windows-1251 CSV, the bar runs to
the end, the summary and every rejected line show (a hostile name as text, not markup), and the
rejected-rows report downloads."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from debt_files import HOSTILE, VALID, broken_csv, expected_rejections
from live_desk import LiveDesk
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from crm_core.models import Debt


def test_supervisor_imports_a_broken_file_and_downloads_the_rejected_rows(browser: Browser,
                                                                           live_desk: LiveDesk,
                                                                           tmp_path: Path) -> None:
    context = browser.new_context(base_url=live_desk.url, accept_downloads=True)
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=login]", "super1")
    page.fill("input[name=password]", live_desk.passwords["super1"])
    page.click("button[type=submit]")
    page.wait_for_url("**/desk")
    page.click("header a[href='/campaigns/import']")
    expect(page.locator("h1")).to_have_text("Загрузка долгов")

    source = tmp_path / "долги.csv"
    source.write_bytes(broken_csv(";").replace("2024-07-01", "2999-07-01").encode("cp1251"))
    page.set_input_files("#import-file", str(source))
    page.click("#import-start")
    expect(page.locator("#import-result")).to_be_visible(timeout=20_000)
    expect(page.locator("#import-progress")).to_have_attribute("value", "100")
    expect(page.locator("#import-message")).to_have_text("долги.csv загружен.")
    rejected = expected_rejections(";")
    expect(page.locator("#import-counts tr[data-count=created] td")).to_have_text(str(len(VALID)))
    expect(page.locator("#import-counts tr[data-count=rejected] td")).to_have_text(str(len(rejected)))
    rows = page.locator("#import-rejected tbody tr")
    expect(rows).to_have_count(len(rejected))
    hostile = page.locator("#import-rejected tr[data-line='15']")
    expect(hostile.locator("code")).to_contain_text(HOSTILE)  # shown as text
    assert page.locator("#import-result script").count() == 0
    expect(page.locator("#import-rejected tr[data-line='9']")).to_contain_text("номер страны KZ")
    expect(page.locator("#import-warnings")).to_contain_text("Якутия")

    with page.expect_download() as download:
        page.click("#import-report")
    listed = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig")),
                             delimiter=";"))
    assert [int(row[0]) for row in listed[1:]] == sorted(rejected)
    with live_desk.sessions() as s:
        assert VALID <= set(s.scalars(select(Debt.contract)))
    context.close()
