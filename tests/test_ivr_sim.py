"""IVR calls end to end: the PBX simulator runs AGI() against the real FastAGI server over TCP,
the caller presses scripted keys, and the outcome shows on AMI (queue joined, variables set)
and in the database (Call.ivr_path by Linkedid, callback requests)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from test_pbx_sim import Client, assert_layouts_recorded, event_name, first

from callcard.pbx_sim import PbxSimulator, default_config
from crm_core.models import Call, ClientPhone, Department, Phone, Request
from crm_core.models import Client as CrmClient
from ivr.models import IvrMenu, IvrOption
from ivr.server import FastAgiServer, IvrApplication
from ivr.service import seed_default_menu

SCALE = 25.0
CALLER = "+73511234567"
WEDNESDAY_NOON = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)  # 12:00 in Moscow: every department open
SUNDAY_NOON = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)  # sales closed (callback), service closed (voicemail)
Msg = list[tuple[str, str]]


@dataclass
class Rig:
    sim: PbxSimulator
    ami: Client
    sessions: sessionmaker[Session]
    clock: list[datetime]
    client_id: int

    async def call(self, dtmf: str | Sequence[tuple[float, str]], patience: float = 120.0,
                   did: str = "", caller: str = CALLER) -> tuple[str, list[Msg]]:
        """Place an IVR call; AMI messages of that call up to its queue join or its hangup."""
        linkedid = await self.sim.place_call(caller, "Ivan Petrov", patience=patience, did=did, ivr=True,
                                             dtmf=dtmf)

        def done(msg: Msg) -> bool:
            return first(msg, "Linkedid") == linkedid and (
                event_name(msg) == "QueueCallerJoin"
                or (event_name(msg) == "Hangup" and first(msg, "Channel").endswith(";1")))

        messages = await self.ami.until(done, timeout=10)
        return linkedid, [x for x in messages if first(x, "Linkedid") == linkedid]

    async def call_row(self, linkedid: str) -> Call:
        """The Call row once the IVR has stored its path (it may finish after the hangup is seen)."""
        for _ in range(100):
            with self.sessions() as session:
                row = session.scalar(select(Call).where(Call.linkedid == linkedid))
            if row is not None and row.ivr_path:
                return row
            await asyncio.sleep(0.02)
        raise AssertionError(f"no Call row with an ivr_path for {linkedid}")


@pytest.fixture
async def rig(sessions: sessionmaker[Session]) -> AsyncIterator[Rig]:
    with sessions.begin() as session:
        session.add_all([Department(code="sales", name="Продажи", queue="sales"),
                         Department(code="service", name="Сервис", queue="support"),
                         Department(code="collections", name="Взыскание", queue="collections")])
        client = CrmClient(name="Иван Петров")
        client.phone_links = [ClientPhone(phone=Phone(e164=CALLER, kind="landline"))]
        session.add(client)
        session.flush()
        client_id = client.id
        seed_default_menu(session)
    clock = [WEDNESDAY_NOON]
    agi = FastAgiServer(IvrApplication(sessions, clock=lambda: clock[0]))
    await agi.start("127.0.0.1", 0)
    sim = PbxSimulator(default_config(time_scale=SCALE), agi_address=("127.0.0.1", agi.port))
    await sim.start("127.0.0.1", 0)
    ami = await Client.connect(sim)
    await ami.login()
    yield Rig(sim, ami, sessions, clock, client_id)
    ami.close()
    await sim.stop()
    await agi.stop()


def var_sets(messages: list[Msg]) -> dict[str, str]:
    return {first(x, "Variable"): first(x, "Value") for x in messages if event_name(x) == "VarSet"}


def joined(messages: list[Msg]) -> str:
    return next((first(x, "Queue") for x in messages if event_name(x) == "QueueCallerJoin"), "")


@pytest.mark.parametrize(("dtmf", "queue", "department", "path"), [
    ("1", "sales", "sales", "main>1>sales"),
    ("2", "support", "service", "main>2>service"),
    ("3", "collections", "collections", "main>3>collections"),
    ("0", "sales", "sales", "main>0>operator"),  # no choice: routing's DID/default department
    ("40", "sales", "sales", "main>4>more>0>operator"),
])
async def test_each_digit_routes_to_its_queue_and_the_path_is_stored(
        rig: Rig, dtmf: str, queue: str, department: str, path: str) -> None:
    linkedid, messages = await rig.call(dtmf)
    assert joined(messages) == queue
    variables = var_sets(messages)
    assert variables["QUEUE"] == queue and variables["IVR_PRIORITY"] == "0"
    assert variables.get("DEPARTMENT", "") == department
    assert variables["CLIENT_ID"] == str(rig.client_id) and variables["AGISTATUS"] == "SUCCESS"
    row = await rig.call_row(linkedid)
    assert row.ivr_path == path and row.client_id == rig.client_id
    commands = [first(x, "Command") for x in messages if event_name(x) == "AGIExecStart"]
    assert commands[0] == "GET FULL VARIABLE ${CHANNEL(linkedid)}"
    assert commands[1] == "GET DATA callcard/ivr-main 5000 1"
    assert_layouts_recorded(messages)


async def test_callback_from_the_sub_menu_creates_a_request_and_hangs_up(rig: Rig) -> None:
    linkedid, messages = await rig.call("41")
    assert joined(messages) == ""
    assert "HANGUP" in [first(x, "Command") for x in messages if event_name(x) == "AGIExecStart"]
    assert (await rig.call_row(linkedid)).ivr_path == "main>4>more>1>callback"
    with rig.sessions() as session:
        request = session.scalars(select(Request)).one()
        sales = session.scalar(select(Department.id).where(Department.code == "sales"))
    assert (request.subject, request.client_id, request.department_id) == ("Перезвонить", rig.client_id, sales)


@pytest.mark.parametrize(("now", "queue", "path"), [
    (WEDNESDAY_NOON, "sales", "main>4>more>1>callback>withheld"),  # sales open: put through instead
    (SUNDAY_NOON, "", "main>4>more>1>callback>withheld>voicemail"),  # closed: its message, then goodbye
])
async def test_a_withheld_number_asking_for_a_callback_is_not_promised_one(
        rig: Rig, now: datetime, queue: str, path: str) -> None:
    rig.clock[0] = now
    linkedid, messages = await rig.call("41", caller="anonymous")
    assert joined(messages) == queue
    streamed = [first(x, "Command") for x in messages if event_name(x) == "AGIExecStart"
                and first(x, "Command").startswith("STREAM FILE")]
    assert streamed == ([] if queue else ['STREAM FILE callcard/ivr-closed-sales ""'])
    assert (await rig.call_row(linkedid)).ivr_path == path
    with rig.sessions() as session:
        assert session.scalars(select(Request)).all() == []


async def test_no_input_repeats_the_greeting_then_falls_back_to_the_operator_queue(rig: Rig) -> None:
    linkedid, messages = await rig.call("")
    asks = [first(x, "Command") for x in messages if event_name(x) == "AGIExecStart"
            and first(x, "Command").startswith("GET DATA")]
    assert len(asks) == 3  # the greeting and two retries (max_retries=2)
    assert joined(messages) == "sales"
    assert (await rig.call_row(linkedid)).ivr_path == "main>fallback"


async def test_wrong_digit_plays_the_invalid_prompt_and_the_next_digit_counts(rig: Rig) -> None:
    linkedid, messages = await rig.call([(1.0, "9"), (3.0, "2")])
    commands = [first(x, "Command") for x in messages if event_name(x) == "AGIExecStart"]
    assert 'STREAM FILE callcard/ivr-invalid "0123456789*#"' in commands
    assert joined(messages) == "support"
    assert (await rig.call_row(linkedid)).ivr_path == "main>2>service"


async def test_wrong_digits_every_time_end_in_the_fallback_queue(rig: Rig) -> None:
    linkedid, messages = await rig.call([(1.0, "9"), (1.0, "8"), (1.0, "7")])
    assert joined(messages) == "sales"
    assert (await rig.call_row(linkedid)).ivr_path == "main>fallback"


async def test_caller_hanging_up_mid_menu_is_logged_with_its_path(rig: Rig) -> None:
    linkedid, messages = await rig.call("", patience=3.0)
    assert joined(messages) == ""
    assert any(event_name(x) == "Hangup" for x in messages)
    row = await rig.call_row(linkedid)
    assert row.ivr_path == "main>hangup" and row.client_id == rig.client_id


@pytest.mark.parametrize(("dtmf", "path", "requests"), [
    ("1", "main>1>sales>callback", 1),
    ("2", "main>2>service>voicemail", 0),
])
async def test_out_of_hours_gives_a_callback_request_or_voicemail(
        rig: Rig, dtmf: str, path: str, requests: int) -> None:
    rig.clock[0] = SUNDAY_NOON
    linkedid, messages = await rig.call(dtmf)
    assert joined(messages) == ""
    with rig.sessions() as session:  # stored before the goodbye: the call's end finds it
        assert session.scalar(select(Call.ivr_path).where(Call.linkedid == linkedid)) == path
    assert (await rig.call_row(linkedid)).ivr_path == path
    with rig.sessions() as session:
        assert len(session.scalars(select(Request)).all()) == requests


async def test_unknown_did_is_logged_and_the_default_menu_answers(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    linkedid, messages = await rig.call("3", did="74950001122")
    assert "no menu is set up for DID '74950001122'; the default menu 'main' answers" in caplog.text
    assert joined(messages) == "collections"
    assert (await rig.call_row(linkedid)).ivr_path == "main>3>collections"


async def test_menu_edits_apply_to_the_next_call_without_a_restart(rig: Rig) -> None:
    with rig.sessions.begin() as session:
        option = session.scalar(select(IvrOption).join(IvrMenu, IvrOption.menu_id == IvrMenu.id)
                                .where(IvrMenu.name == "main", IvrOption.digit == "1"))
        assert option is not None
        option.department_id = session.scalar(select(Department.id).where(Department.code == "collections"))
        option.priority = 5
    linkedid, messages = await rig.call("1")
    assert joined(messages) == "collections" and var_sets(messages)["IVR_PRIORITY"] == "5"
    assert (await rig.call_row(linkedid)).ivr_path == "main>1>collections"


async def test_call_goes_on_to_its_queue_when_no_fastagi_server_listens(
        sessions: sessionmaker[Session]) -> None:
    sim = PbxSimulator(default_config(time_scale=SCALE), agi_address=("127.0.0.1", 1))
    await sim.start("127.0.0.1", 0)
    ami = await Client.connect(sim)
    await ami.login()
    try:
        linkedid = await sim.place_call(CALLER, queue="collections", ivr=True, dtmf="1")
        messages = await ami.until(lambda x: event_name(x) == "QueueCallerJoin", timeout=5)
    finally:
        ami.close()
        await sim.stop()
    assert joined(messages) == "collections"
    assert var_sets([x for x in messages if first(x, "Linkedid") == linkedid])["AGISTATUS"] == "FAILURE"
