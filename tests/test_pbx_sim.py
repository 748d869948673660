"""The PBX simulator over real TCP, checked against the Asterisk 22 recordings in ../shared/ami-traces.

A tiny raw-socket AMI client (no ami_bridge) reads frames; the simulator runs `SCALE` times
faster than real time, so a 15 s ring timeout takes 0.6 s.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from callcard.pbx_sim import PbxSimulator, default_config
from callcard.pbx_sim.model import AgentBehaviour, Pbx
from callcard.pbx_sim.scenario import demo_config, plan_call, run_demo_traffic
from callcard.pbx_sim.wire import RequestParser

SCALE = 25.0
Msg = list[tuple[str, str]]

TRACES = Path(__file__).resolve().parent.parent.parent / "shared" / "ami-traces"
# Events whose relative order within one call is stable in Asterisk (Hangup/Cdr/OriginateResponse are not).
CALL_FLOW = {"Newchannel", "DialBegin", "DialState", "DialEnd", "QueueCallerJoin", "MusicOnHoldStart",
             "AgentCalled", "AgentRingNoAnswer", "MusicOnHoldStop", "QueueCallerLeave", "AgentConnect",
             "BridgeCreate", "BridgeEnter", "AgentComplete", "QueueCallerAbandon"}


# --- recordings -----------------------------------------------------------------------

def parse_frames(data: bytes) -> list[Msg]:
    frames = []
    for block in data.split(b"\r\n\r\n"):
        lines = [ln for ln in block.decode().split("\r\n") if ln and not ln.startswith("Asterisk Call Manager/")]
        if lines:
            frames.append([(k, v) for k, _, v in (ln.partition(": ") for ln in lines)])
    return frames


def recording(name: str) -> list[Msg]:
    return parse_frames((TRACES / name).read_bytes())


def first(msg: Msg, key: str) -> str:
    return next((v for k, v in msg if k == key), "")


def keys(msg: Msg) -> tuple[str, ...]:
    return tuple(k for k, _ in msg)


def event_name(msg: Msg) -> str:
    return first(msg, "Event")


def recorded_layouts() -> dict[str, set[tuple[str, ...]]]:
    """Every header-name sequence seen per event type across all recordings."""
    layouts: dict[str, set[tuple[str, ...]]] = {}
    for path in TRACES.glob("*.ami"):
        for msg in parse_frames(path.read_bytes()):
            if event_name(msg):
                layouts.setdefault(event_name(msg), set()).add(keys(msg))
    return layouts


def call_flow(messages: list[Msg]) -> list[str]:
    return [f"{event_name(x)}:{first(x, 'DialStatus')}" for x in messages if event_name(x) in CALL_FLOW]


def assert_layouts_recorded(messages: list[Msg]) -> None:
    layouts = recorded_layouts()
    for msg in messages:
        name = event_name(msg)
        if name in layouts:
            assert keys(msg) in layouts[name], f"{name} header layout differs from the recording: {keys(msg)}"


# --- a tiny AMI client ----------------------------------------------------------------

class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = b""
        self.raw = b""

    @classmethod
    async def connect(cls, sim: PbxSimulator) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        client = cls(reader, writer)
        assert await reader.readuntil(b"\r\n") == b"Asterisk Call Manager/11.0.0\r\n"
        return client

    def send(self, *headers: tuple[str, str]) -> None:
        self.writer.write("".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def next(self, timeout: float = 2.0) -> Msg | None:
        """The next frame, or None at EOF."""
        while b"\r\n\r\n" not in self.buf:
            chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not chunk:
                return None
            self.raw += chunk
            self.buf += chunk
        block, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return parse_frames(block + b"\r\n\r\n")[0]

    async def until(self, done: Callable[[Msg], bool], timeout: float = 3.0) -> list[Msg]:
        got: list[Msg] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.next(max(0.01, deadline - time.monotonic()))
            assert msg is not None, "connection closed"
            got.append(msg)
            if done(msg):
                return got

    async def collect(self, seconds: float) -> list[Msg]:
        got: list[Msg] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self.next(left)
            except TimeoutError:
                break
            if msg is None:
                break
            got.append(msg)
        return got

    async def login(self, events: str = "on") -> list[Msg]:
        self.send(("Action", "Login"), ("ActionID", "crm-001"), ("Username", "crm"),
                  ("Secret", "crm-secret"), ("Events", events))
        return await self.until(lambda x: first(x, "Message") == "Authentication accepted")

    async def action(self, *headers: tuple[str, str]) -> tuple[Msg, list[Msg]]:
        """Send, return (reply, messages read before it)."""
        aid = dict(headers)["ActionID"]
        self.send(*headers)
        got = await self.until(lambda x: first(x, "ActionID") == aid and not event_name(x))
        return got[-1], got[:-1]

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def sim() -> AsyncIterator[PbxSimulator]:
    simulator = PbxSimulator(default_config(time_scale=SCALE))
    await simulator.start("127.0.0.1", 0)
    yield simulator
    await simulator.stop()


@pytest.fixture
async def ami(sim: PbxSimulator) -> AsyncIterator[Client]:
    client = await Client.connect(sim)
    await client.login()
    await client.until(lambda x: event_name(x) == "SuccessfulAuth")
    yield client
    client.close()


def originate(caller: str, queue: str, patience: int, call_id: str, cid: str = "") -> tuple[tuple[str, str], ...]:
    """The recorder's Originate, byte for byte as in the .md files."""
    return (("Action", "Originate"), ("ActionID", f"crm-orig-{call_id}"), ("Channel", "Local/s@inbound"),
            ("Application", "Wait"), ("Data", str(patience)), ("CallerID", cid or f'"{caller}" <{caller}>'),
            ("Timeout", "30000"), ("Async", "true"), ("Variable", f"CALLER={caller}"),
            ("Variable", f"QUEUE={queue}"), ("Variable", f"CRM_CALL_ID={call_id}"))


# --- login and malformed input --------------------------------------------------------

async def test_login_replies_and_events_have_recorded_layout(sim: PbxSimulator) -> None:
    client = await Client.connect(sim)
    got = await client.login()
    got += await client.until(lambda x: event_name(x) == "SuccessfulAuth")
    recorded = recording("inbound_answered.ami")[:3]
    assert [keys(x) for x in got] == [keys(x) for x in recorded]
    assert first(got[1], "Status") == "Fully Booted"
    client.close()


async def test_stop_ends_the_clock_even_when_a_command_wakes_it_in_the_same_turn() -> None:
    """In Python 3.11 wait_for lost that cancel, and the simulator's clock ticked on after stop."""
    simulator = PbxSimulator(default_config(time_scale=SCALE))
    await simulator.start("127.0.0.1", 0)
    await simulator.place_call("+79990000001", patience=600)
    await asyncio.sleep(0.05)  # the clock waits for the call's next deadline or a command
    simulator.snapshot()  # a command: it wakes the clock
    await asyncio.wait_for(simulator.stop(), 5)


async def test_wrong_secret_fails_after_delay_and_closes_without_goodbye() -> None:
    simulator = PbxSimulator(default_config(time_scale=1.0))
    await simulator.start("127.0.0.1", 0)
    try:
        client = await Client.connect(simulator)
        started = time.monotonic()
        client.send(("Action", "Login"), ("ActionID", "crm-login_failure-A-001"), ("Username", "crm"),
                    ("Secret", "wrong-secret"), ("Events", "on"))
        reply = await client.next(3.0)
        assert time.monotonic() - started >= 0.95
        assert reply == recording("login_failure.ami")[0]
        assert await client.next(1.0) is None
    finally:
        await simulator.stop()


async def test_actions_before_login_get_permission_denied(sim: PbxSimulator) -> None:
    client = await Client.connect(sim)
    client.send(("Action", "Ping"), ("ActionID", "crm-login_failure-B-001"))
    assert await client.next() == recording("login_failure.ami")[1]
    client.send(("Action", "QueueStatus"), ("ActionID", "q"))
    assert first(await client.next() or [], "Message") == "Permission denied"
    client.close()


MALFORMED = [
    b"ActionID: crm-bad-0\r\nFoo: bar\r\n\r\n",
    b"Action: NoSuchAction\r\nActionID: crm-bad-1\r\n\r\n",
    b"Action: Ping\r\nActionID: crm-bad-2\r\nthis line has no colon\r\n\r\n",
    b"Action: Ping\nActionID: crm-bad-3\n\n",
    b"\r\n",
    b"Action: Ping\r\nActionID: crm-bad-long\r\nX-Long: " + b"x" * 2000 + b"\r\n\r\n",
    b"action: ping\r\nactionid: crm-bad-4\r\n\r\n",
    b"Action: Originate\r\nActionID: crm-bad-5\r\nExten: 101\r\n\r\n",
    b"Action: Hangup\r\nActionID: crm-bad-6\r\nChannel: Local/nosuch@agents-00000000;1\r\n\r\n",
    b"Action: Login\r\nActionID: crm-bad-7\r\nUsername: crm\r\nSecret: crm-secret\r\n\r\n",
    b"Action: Ping\r\n\r\n",
    b"Action: Command\r\nActionID: crm-cmd-1\r\nCommand: core show version\r\n\r\n",
]


async def test_malformed_input_answered_like_recording(ami: Client) -> None:
    recorded = [x for x in recording("login_failure.ami")
                if not event_name(x) and first(x, "ActionID") != "crm-cmd-2"][3:-1]
    replies = []
    for data in MALFORMED:
        ami.send_raw(data)
        replies += [x for x in await ami.until(lambda x: not event_name(x)) if not event_name(x)]
    assert len(replies) == len(recorded)
    for got, want in zip(replies, recorded, strict=True):
        assert keys(got) == keys(want)
        assert [(k, v) for k, v in got if k != "Timestamp"] == [(k, v) for k, v in want if k != "Timestamp"]


async def test_bad_requests_raise_request_bad_format_events(ami: Client) -> None:
    ami.send_raw(b"Action: NoSuchAction\r\nActionID: x\r\n\r\n")
    got = await ami.until(lambda x: event_name(x) == "RequestBadFormat")
    assert first(got[-1], "RequestType") == "Action: NoSuchAction"
    assert_layouts_recorded(got)


def test_parser_keeps_utf8_split_across_reads_and_flags_long_lines() -> None:
    parser = RequestParser()
    data = "Action: Originate\r\nCallerID: \"Иван\" <1>\r\n\r\n".encode()
    cut = data.index("в".encode()) + 1
    assert parser.feed(data[:cut]) == []
    (req,) = parser.feed(data[cut:])
    assert req.get("callerid") == '"Иван" <1>'
    (long,) = parser.feed(b"Action: Ping\r\nX: " + b"y" * 5000 + b"\r\n\r\n")
    assert long.too_long and long.get("Action") == "Ping"


async def test_command_output_follows_form(ami: Client) -> None:
    reply, _ = await ami.action(("Action", "Command"), ("ActionID", "c1"), ("Command", "core show version"))
    assert keys(reply) == ("Response", "ActionID", "Message", "Output")
    assert first(reply, "Output").startswith("Asterisk 22.10.1")


# --- calls ----------------------------------------------------------------------------

async def test_answered_queue_call_matches_recording(ami: Client) -> None:
    reply, _ = await ami.action(*originate("+73511234567", "sales", 30, "ans-0001",
                                           '"Ivan Petrov" <+73511234567>'))
    assert first(reply, "Message") == "Originate successfully queued"
    got = await ami.until(lambda x: event_name(x) == "QueueMemberStatus" and first(x, "Status") == "1")
    recorded = recording("inbound_answered.ami")
    assert call_flow(got) == call_flow(recorded)
    assert_layouts_recorded(got)
    for name in ("Hangup", "Cdr", "Newchannel", "OriginateResponse", "BridgeLeave", "LocalBridge"):
        assert sum(event_name(x) == name for x in got) == sum(event_name(x) == name for x in recorded), name
    complete = next(x for x in got if event_name(x) == "AgentComplete")
    assert (first(complete, "Reason"), first(complete, "HoldTime"), first(complete, "TalkTime")) == ("agent", "0", "3")
    assert first(complete, "MemberName") == "Operator 101"
    linked = {first(x, "Linkedid") for x in got if first(x, "Linkedid")}
    assert linked == {first(next(x for x in got if event_name(x) == "Newchannel"), "Uniqueid")}


async def test_abandoned_call_matches_recording_and_hangup_reply_comes_first(ami: Client) -> None:
    await ami.action(*originate("83517654321", "support", 60, "abn-0001"))
    got = await ami.until(lambda x: event_name(x) == "DialState")
    channel = first(next(x for x in got if event_name(x) == "QueueCallerJoin"), "Channel")
    await asyncio.sleep(5 / SCALE)
    reply, before = await ami.action(("Action", "Hangup"), ("ActionID", "crm-h"), ("Channel", channel),
                                     ("Cause", "16"))
    assert keys(reply) == ("Response", "ActionID", "Message") and first(reply, "Message") == "Channel Hungup"
    assert before == []
    got += await ami.until(lambda x: event_name(x) == "QueueMemberStatus" and first(x, "Status") == "1")
    recorded = recording("inbound_abandoned.ami")
    assert call_flow(got) == call_flow(recorded)
    assert_layouts_recorded(got)
    abandon = next(x for x in got if event_name(x) == "QueueCallerAbandon")
    assert int(first(abandon, "HoldTime")) in (4, 5, 6)
    for name in ("Hangup", "Cdr", "HangupRequest", "SoftHangupRequest"):
        assert sum(event_name(x) == name for x in got) == sum(event_name(x) == name for x in recorded), name


async def test_ring_timeout_reports_milliseconds_then_rings_next_member(sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/101@agents/n", None)
    await sim.place_call("83512000001", queue="sales")
    got = await ami.until(lambda x: event_name(x) == "AgentConnect", timeout=5)
    called = [first(x, "MemberName") for x in got if event_name(x) == "AgentCalled"]
    assert called == ["Operator 101", "Operator 102"]
    rna = next(x for x in got if event_name(x) == "AgentRingNoAnswer")
    assert first(rna, "RingTime") == "15000"
    statuses = [first(x, "DialStatus") for x in got if event_name(x) == "DialEnd" and "agents" in first(x, "DestChannel")]
    assert statuses[:3] == ["NOANSWER", "CANCEL", "ANSWER"]
    assert int(first(got[-1], "HoldTime")) in (16, 17, 18)
    assert_layouts_recorded(got)


async def test_human_operator_answers_and_hangs_up(sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/101@agents/n", None, talk=999)
    linkedid = await sim.place_call("+73511234567", "Ivan Petrov", queue="sales")
    await ami.until(lambda x: event_name(x) == "DialState")
    (call,) = sim.snapshot().calls
    assert (call.linkedid, call.state, call.agent) == (linkedid, "ringing", "Local/101@agents/n")
    await asyncio.sleep(3 / SCALE)
    await sim.answer("Local/101@agents/n")
    connect = (await ami.until(lambda x: event_name(x) == "AgentConnect"))[-1]
    assert first(connect, "RingTime") in ("2", "3", "4")
    assert sim.snapshot().calls[0].state == "talking"
    await sim.hangup_agent("Local/101@agents/n")
    complete = (await ami.until(lambda x: event_name(x) == "AgentComplete"))[-1]
    assert first(complete, "Reason") == "agent"
    await ami.until(lambda x: event_name(x) == "Hangup" and first(x, "Channel").endswith(";1")
                    and "inbound" in first(x, "Channel"))
    snap = sim.snapshot()
    assert snap.calls == [] and snap.channels == []


async def test_caller_hanging_up_mid_talk_completes_with_reason_caller(sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/104@agents/n", 0.0, talk=600)
    await sim.place_call("83510000000", queue="collections", patience=10)
    got = await ami.until(lambda x: event_name(x) == "AgentComplete", timeout=3)
    complete = got[-1]
    assert first(complete, "Reason") == "caller"
    assert first(complete, "DestChannel").startswith("Local/104@agents-")
    assert int(first(complete, "TalkTime")) in (9, 10, 11)


async def test_redirect_moves_waiting_caller_to_another_queue(sim: PbxSimulator, ami: Client) -> None:
    await sim.place_call("83512000002", queue="support", patience=120)
    joined = (await ami.until(lambda x: event_name(x) == "DialState"))[0:]
    channel = first(next(x for x in joined if event_name(x) == "QueueCallerJoin"), "Channel")
    reply, before = await ami.action(("Action", "Redirect"), ("ActionID", "r1"), ("Channel", channel),
                                     ("Context", "queues"), ("Exten", "sales"), ("Priority", "1"))
    assert first(reply, "Message") == "Redirect successful" and before == []
    got = await ami.until(lambda x: event_name(x) == "AgentConnect")
    flow = [(event_name(x), first(x, "Queue")) for x in got
            if event_name(x) in {"QueueCallerAbandon", "QueueCallerLeave", "QueueCallerJoin", "AgentConnect"}]
    assert flow == [("QueueCallerAbandon", "support"), ("QueueCallerLeave", "support"),
                    ("QueueCallerJoin", "sales"), ("QueueCallerLeave", "sales"), ("AgentConnect", "sales")]
    assert all(first(x, "Channel") == channel for x in got if event_name(x).startswith("QueueCaller"))
    assert sim.snapshot().calls[0].queue == "sales"


async def test_redirect_of_a_talking_caller_completes_with_reason_transfer(sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/101@agents/n", 0.0, talk=600)
    await sim.place_call("83512000003", queue="sales", patience=600)
    channel = first((await ami.until(lambda x: event_name(x) == "AgentConnect"))[-1], "Channel")
    reply, _ = await ami.action(("Action", "Redirect"), ("ActionID", "r2"), ("Channel", channel),
                                ("Context", "queues"), ("Exten", "collections"), ("Priority", "1"))
    assert first(reply, "Message") == "Redirect successful"
    got = await ami.until(lambda x: event_name(x) == "AgentConnect")
    complete = next(x for x in got if event_name(x) == "AgentComplete")
    assert (first(complete, "Reason"), first(complete, "Queue")) == ("transfer", "sales")
    assert first(got[-1], "Queue") == "collections" and first(got[-1], "MemberName") == "Operator 104"


async def test_redirect_and_hangup_errors(ami: Client) -> None:
    reply, _ = await ami.action(("Action", "Redirect"), ("ActionID", "r3"), ("Channel", "Local/x@y-1;2"),
                                ("Context", "queues"), ("Exten", "sales"))
    assert first(reply, "Message") == "Channel does not exist: Local/x@y-1;2"
    reply, _ = await ami.action(("Action", "Hangup"), ("ActionID", "h3"), ("Channel", "Local/x@y-1;2"))
    assert first(reply, "Message") == "No such channel"


async def test_cyrillic_caller_name_goes_out_as_utf8(sim: PbxSimulator, ami: Client) -> None:
    name = "Иван Петров"
    await ami.action(*originate("+73511234567", "sales", 30, "cyr-1", f'"{name}" <+73511234567>'))
    await sim.place_call("+73517654321", "Мария Сидорова", queue="collections")
    got = await ami.until(lambda x: first(x, "CallerIDName") == "Мария Сидорова" and event_name(x) == "AgentConnect")
    assert f"CallerIDName: {name}\r\n".encode() in ami.raw
    assert "DestCallerIDName: Мария Сидорова\r\n".encode() in ami.raw
    assert any(first(x, "CallerIDName") == name for x in got)


# --- list and member actions ----------------------------------------------------------

def replies_for(msgs: list[Msg], aid: str) -> list[Msg]:
    return [x for x in msgs if first(x, "ActionID") == aid]


async def test_list_actions_have_the_recorded_eventlist_shape(sim: PbxSimulator, ami: Client) -> None:
    for n in (1, 2):
        await ami.action(*originate(f"8351200000{n}", "support", 120, f"qs-000{n}"))
    await ami.until(lambda x: event_name(x) == "QueueCallerJoin" and first(x, "Position") == "2")
    recorded = recording("queue_status.ami")
    cases = [("crm-queue_status-002", ("Action", "QueueStatus")),
             ("crm-queue_status-003", ("Action", "QueueStatus"), ("Queue", "support")),
             ("crm-queue_status-004", ("Action", "QueueSummary")),
             ("crm-queue_status-005", ("Action", "CoreShowChannels"))]
    for aid, *headers in cases:
        ami.send(headers[0], ("ActionID", aid), *headers[1:])
        got = await ami.until(lambda x, a=aid: first(x, "EventList") == "Complete" and first(x, "ActionID") == a)
        mine, want = replies_for(got, aid), replies_for(recorded, aid)
        assert [keys(x) for x in mine[:1] + mine[-1:]] == [keys(x) for x in want[:1] + want[-1:]], aid
        assert first(mine[-1], "ListItems") == first(want[-1], "ListItems"), aid
        assert sorted(event_name(x) for x in mine) == sorted(event_name(x) for x in want), aid
        layouts = {(event_name(x), keys(x)) for x in want}
        assert all((event_name(x), keys(x)) in layouts for x in mine[1:-1]), aid
    members = [x for x in replies_for(recorded, "crm-queue_status-002") if event_name(x) == "QueueMember"]
    assert all(first(x, "Name") and first(x, "Location") for x in members)


QUEUE_MEMBER_STEPS = [
    ("crm-queue_status-006", ("Queue", "support"), ("Interface", "Local/201@noanswer/n"), ("Paused", "true"),
     ("Reason", "training")),
    ("crm-queue_status-008", ("Queue", "support"), ("Interface", "Local/201@noanswer/n"), ("Paused", "false")),
    ("crm-queue_status-009", ("Queue", "collections"), ("Interface", "Local/106@agents/n"), ("Penalty", "2"),
     ("MemberName", "Operator 106"), ("StateInterface", "Local/106@agents"), ("Paused", "false")),
    ("crm-queue_status-010", ("Interface", "Local/106@agents/n"), ("Paused", "true"), ("Reason", "lunch")),
    ("crm-queue_status-011", ("Interface", "Local/106@agents/n"), ("Penalty", "5"), ("Queue", "collections")),
    ("crm-queue_status-013", ("Queue", "collections"), ("Interface", "Local/106@agents/n")),
    ("crm-queue_status-014", ("Queue", "collections"), ("Interface", "Local/106@agents/n")),
    ("crm-queue_status-015", ("Queue", "collections"), ("Interface", "Local/106@agents/n")),
    ("crm-queue_status-016", ("Queue", "nosuchqueue"), ("Interface", "Local/101@agents/n"), ("Paused", "true")),
]
STEP_ACTIONS = {"006": "QueuePause", "008": "QueuePause", "009": "QueueAdd", "010": "QueuePause",
                "011": "QueuePenalty", "013": "QueueAdd", "014": "QueueRemove", "015": "QueueRemove",
                "016": "QueuePause"}


async def test_queue_member_actions_reply_and_notify_like_recording(ami: Client) -> None:
    recorded = recording("queue_status.ami")
    member_events = {"QueueMemberPause", "QueueMemberAdded", "QueueMemberPenalty", "QueueMemberRemoved"}
    want_events = [x for x in recorded if event_name(x) in member_events]
    got_events: list[Msg] = []
    for aid, *headers in QUEUE_MEMBER_STEPS:
        reply, _ = await ami.action(("Action", STEP_ACTIONS[aid[-3:]]), ("ActionID", aid), *headers)
        want = replies_for(recorded, aid)[0]
        assert (keys(reply), first(reply, "Response"), first(reply, "Message")) == \
            (keys(want), first(want, "Response"), first(want, "Message")), aid
        got_events += [x for x in await ami.collect(0.05) if event_name(x) in member_events]
    assert [keys(x) for x in got_events] == [keys(x) for x in want_events]
    compared = ("Event", "Queue", "MemberName", "Interface", "Membership", "Penalty", "Paused", "PausedReason")
    assert [[first(x, k) for k in compared] for x in got_events] == \
        [[first(x, k) for k in compared] for x in want_events]


# --- sessions -------------------------------------------------------------------------

async def test_events_off_and_class_masks(sim: PbxSimulator) -> None:
    quiet, agents_only = await Client.connect(sim), await Client.connect(sim)
    await quiet.login("off")
    await agents_only.login("system,agent")
    assert event_name(await agents_only.next() or []) == "FullyBooted"
    await sim.place_call("83510000001", queue="sales")
    await asyncio.sleep(8 / SCALE)
    reply, before = await quiet.action(("Action", "Ping"), ("ActionID", "p"))
    assert before == [] and first(reply, "Ping") == "Pong"
    seen = await agents_only.collect(0.1)
    assert seen and {first(x, "Privilege") for x in seen} == {"agent,all"}
    quiet.close()
    agents_only.close()


async def test_filter_action_sends_a_session_only_the_events_it_named(sim: PbxSimulator) -> None:
    """Action: Filter as Asterisk 22 takes it: per session, events only; replies and list items pass."""
    filtered, everything = await Client.connect(sim), await Client.connect(sim)
    await filtered.login("system,call,agent")
    await everything.login("system,call,agent")
    for i, name in enumerate(("AgentCalled", "Hangup")):
        reply, _ = await filtered.action(("Action", "Filter"), ("ActionID", f"f{i}"), ("Operation", "Add"),
                                         ("MatchCriteria", f"action(include),name({name})"))
        assert first(reply, "Response") == "Success", reply
    await filtered.collect(0.1)
    await everything.collect(0.1)
    await sim.place_call("83510000001", queue="sales")
    await asyncio.sleep(8 / SCALE)
    reply, before = await filtered.action(("Action", "CoreShowChannels"), ("ActionID", "list"))
    await filtered.until(lambda x: event_name(x) == "CoreShowChannelsComplete")  # a list item, named by no filter
    assert "AgentCalled" in {event_name(x) for x in before} <= {"AgentCalled", "Hangup"}
    assert first(reply, "EventList") == "start"
    seen = {event_name(x) for x in await everything.collect(0.1)}
    assert {"AgentCalled", "Newchannel", "CEL", "DialBegin"} <= seen, "another session's filters are not this one's"
    filtered.close()
    everything.close()


async def test_filter_action_errors_like_asterisk(ami: Client) -> None:
    for aid, headers, message in [
        ("bad-op", (("Operation", "Remove"), ("Filter", "Event: Hangup")), "Unknown operation"),
        ("bad-regex", (("Operation", "Add"), ("Filter", "Event: (")), "Filter did not compile"),
        ("bad-criteria", (("Operation", "Add"), ("MatchCriteria", "name(Hangup),colour(red)")), "formatted incorrectly"),
    ]:
        reply, _ = await ami.action(("Action", "Filter"), ("ActionID", aid), *headers)
        assert first(reply, "Response") == "Error" and message in first(reply, "Message"), reply


async def test_drop_connections_closes_client_sockets(sim: PbxSimulator, ami: Client) -> None:
    other = await Client.connect(sim)
    sim.drop_connections()
    for client in (ami, other):
        try:
            assert await client.next(1.0) is None
        except ConnectionResetError:
            pass
    again = await Client.connect(sim)
    await again.login()
    again.close()


# --- pure model and scenario ----------------------------------------------------------

def test_reported_hold_and_talk_times_are_whole_simulated_seconds() -> None:
    config = default_config(time_scale=1000.0)
    pbx = Pbx(config, start=1_795_394_611.0)
    pbx.agents["Local/101@agents/n"] = AgentBehaviour(answer_after=7.0, talk=42.0)
    call, events = pbx.originate_inbound(1_795_394_611.2, "+73511234567", "", 120.0, [("QUEUE", "sales")])
    while (deadline := pbx.next_deadline()) is not None:
        events += pbx.advance(deadline)
    connect = next(x for x in events if event_name(x) == "AgentConnect")
    complete = next(x for x in events if event_name(x) == "AgentComplete")
    assert (first(connect, "HoldTime"), first(connect, "RingTime")) == ("7", "7")
    assert (first(complete, "HoldTime"), first(complete, "TalkTime")) == ("7", "42")
    assert call.linkedid == "1795394611.0" and first(connect, "DestUniqueid") == "1795394611.2"
    assert pbx.snapshot().calls == []


def test_demo_config_maps_operators_and_plans_mixed_traffic() -> None:
    config = demo_config()
    interfaces = {x.interface for q in config.queues for x in q.members}
    assert interfaces == {f"Local/{n}@agents/n" for n in (101, 102, 103, 104)}
    rng = random.Random(7)
    plans = [plan_call(rng, [("+73511234567", "Ivan Petrov")], ["sales", "support"]) for _ in range(200)]
    assert any(p.name == "" for p in plans) and any(p.name == "Ivan Petrov" for p in plans)
    assert any(p.patience < 5 for p in plans) and {p.queue for p in plans} == {"sales", "support"}


async def test_demo_traffic_places_calls_until_cancelled() -> None:
    simulator = PbxSimulator(demo_config(time_scale=SCALE))
    await simulator.start("127.0.0.1", 0)
    try:
        task = asyncio.create_task(run_demo_traffic(simulator, 0.02, random.Random(1), [("+7351", "Ann")]))
        await asyncio.sleep(0.15)
        task.cancel()
        snap = simulator.snapshot()
        assert snap.calls or any(m.calls_taken for m in snap.members)
    finally:
        await simulator.stop()
