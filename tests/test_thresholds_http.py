"""Per-queue wall thresholds over HTTP on SQLite and PostgreSQL: supervisors edit them (CSRF,
audited, nonsense refused with a clear message), operators cannot, and a running wall service
picks a change up from the bus for its next snapshot, without a restart."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web_login import alog_in

from agent_desk.app import create_app
from callcard.bus import MemoryBus
from callcard.settings import Settings
from crm_core.audit import AuditEntry
from crm_core.models import Department, Operator
from crm_core.passwords import hash_password
from routing.live import Thresholds
from routing.models import QueueThreshold
from routing.wall import WallService

PASSWORD = "pw-demo-1"
LIMITS = {"service_seconds": 15, "service_level_target": 90, "longest_wait_warn": 10, "longest_wait_alert": 20,
          "abandon_rate_warn": 3, "abandon_rate_alert": 6, "wrapup_seconds": 0}


async def test_supervisor_edits_thresholds_and_the_running_wall_uses_them(sessions: sessionmaker[Session]) -> None:
    pw = hash_password(PASSWORD)
    with sessions.begin() as s:
        s.add_all([Department(code="sales", name="Sales", queue="sales"),
                   Operator(login="super1", name="Olga", role="supervisor", password_hash=pw, language="en"),
                   Operator(login="op1", name="Anna", password_hash=pw)])
    bus, stop = MemoryBus(), asyncio.Event()
    wall = WallService(sessions, bus)
    running = asyncio.create_task(wall.run(stop))
    app = create_app(Settings(secret_key="t", default_language="en"), sessions, bus)
    url = "/api/supervisor/thresholds/sales"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk",
                                     follow_redirects=True) as http:
            csrf = await alog_in(http, "op1", PASSWORD)
            assert (await http.put(url, json=LIMITS, headers={"X-CSRF-Token": csrf})).status_code == 403
            assert (await http.get("/supervisor/thresholds")).status_code == 403
            await http.post("/logout", data={"csrf": csrf})
            http.cookies.clear()

            csrf = await alog_in(http, "super1", PASSWORD)
            assert (await http.put(url, json=LIMITS)).status_code == 403  # no CSRF header
            bad = await http.put(url, json={**LIMITS, "longest_wait_alert": 5}, headers={"X-CSRF-Token": csrf})
            assert bad.status_code == 422
            assert bad.json()["detail"] == "The longest-wait red limit must not be below the amber one."
            page = await http.get("/supervisor/thresholds")
            assert page.status_code == 200 and 'data-queue="sales"' in page.text and "<legend>Sales " in page.text

            ok = await http.put(url, json=LIMITS, headers={"X-CSRF-Token": csrf})
            assert ok.status_code == 200, ok.text
            assert ok.json()["message"] == "Thresholds of sales saved; the wall uses them from its next update."
            listed = (await http.get("/api/supervisor/thresholds")).json()["queues"]
            assert listed == [{"queue": "sales", "name": "Sales", "custom": True, **LIMITS}]

        deadline = time.monotonic() + 5
        while wall.state.thresholds.get("sales") != Thresholds(**LIMITS):
            assert time.monotonic() < deadline, "the wall service did not reload the thresholds"
            await asyncio.sleep(0.02)
        figures = wall.state.figures(time.time())
        assert figures["queues"] == [] or all(q["thresholds"]["longest_wait_alert"] == 20 for q in figures["queues"])
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)

    with sessions() as s:
        assert s.get(QueueThreshold, "sales").longest_wait_alert == 20
        audit = [(e.actor_login, e.action, e.target, e.outcome, e.details)
                 for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert [row[:4] for row in audit] == [("op1", "forbidden", url, "refused"),
                                          ("super1", "thresholds", "sales", "refused"),
                                          ("super1", "thresholds", "sales", "ok")]
    assert audit[2][4] == {"before": {}, "after": LIMITS}
