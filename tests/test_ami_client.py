"""AmiClient on panoramisk 1.4 against a real TCP peer: one test per worked-around fault."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from ami_peer import FakeAsterisk, frame
from panoramisk import actions
from panoramisk.message import Message

from ami_bridge.client import AmiClient, AmiDisconnected, AmiError, AmiTimeout
from ami_bridge.frames import AmiMessage
from callcard.settings import Settings


def settings_for(peer: FakeAsterisk, **overrides: object) -> Settings:
    values: dict[str, object] = {"ami_port": peer.port, "ami_action_timeout": 0.5, "ami_reconnect_max": 0.2}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def peer() -> AsyncIterator[FakeAsterisk]:
    server = await FakeAsterisk().start()
    yield server
    await server.close()


@asynccontextmanager
async def running(client: AmiClient, *, wait_connected: bool = True) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    try:
        if wait_connected:
            await asyncio.wait_for(client.connected.wait(), 5)
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def collect(client: AmiClient, pattern: str = "*") -> list[AmiMessage]:
    seen: list[AmiMessage] = []
    client.register_event(pattern, seen.append)
    return seen


async def test_logs_in_with_settings_credentials(peer: FakeAsterisk) -> None:
    client = AmiClient(settings_for(peer))
    async with running(client):
        (login,) = peer.actions_named("Login")
        assert (login.get("Username"), login.get("Secret"), login.get("Events")) == (
            "crm",
            "crm-secret",
            "system,call,agent",
        )
        assert client.banner == "Asterisk Call Manager/11.0.0"


async def test_asks_asterisk_for_the_events_it_reads_before_the_snapshot(peer: FakeAsterisk) -> None:
    client = AmiClient(settings_for(peer), event_filter={"Hangup", "AgentCalled"})
    async with running(client):
        assert [a.get("Action") for a in peer.actions] == ["Login", "Filter", "Filter", "CoreShowChannels", "QueueStatus"]
        filters = peer.actions_named("Filter")
        assert sorted(f.get("MatchCriteria") for f in filters) == ["name(AgentCalled)", "name(Hangup)"]
        assert {f.get("Operation") for f in filters} == {"Add"}


async def test_a_refused_filter_leaves_every_event_on_for_good(peer: FakeAsterisk, caplog) -> None:  # type: ignore[no-untyped-def]
    """An AMI user without `write = system`: Asterisk refuses every filter, the session goes on."""
    peer.replies["Filter"] = {"Response": "Error", "Message": "Permission denied"}
    client = AmiClient(settings_for(peer), event_filter={"Hangup", "AgentCalled"})
    with caplog.at_level(logging.WARNING, logger="ami_bridge.client"):
        async with running(client):
            assert peer.connections == 1 and peer.actions_named("QueueStatus")
            await peer.drop_all()
            await wait_until(lambda: len(peer.actions_named("QueueStatus")) == 2)
    assert len(peer.actions_named("Filter")) == 2, "a refused filter is not asked for again"
    assert "Permission denied" in caplog.text and "write = system" in caplog.text


async def test_a_half_taken_filter_starts_the_session_over_without_one(peer: FakeAsterisk) -> None:
    """Some names taken and some refused would hide the refused ones' events for the whole session."""
    peer.replies["Filter"] = lambda action: {"Response": "Error", "Message": "Filter did not compile"} \
        if action.get("MatchCriteria") == "name(Hangup)" else {"Response": "Success", "Message": "Success"}
    client = AmiClient(settings_for(peer), event_filter={"Hangup", "AgentCalled"})
    async with running(client):
        await wait_until(lambda: client.connected.is_set() and peer.connections == 2)
        assert peer.actions_named("QueueStatus"), "the second session resynchronised"
    assert len(peer.actions_named("Filter")) == 2, "only the first session asked for filters"
    assert len(peer.actions_named("Login")) == 2


async def test_a_character_split_across_reads_keeps_every_letter(peer: FakeAsterisk) -> None:
    """(a) panoramisk decodes each chunk alone, errors ignored: a split letter vanished."""
    client = AmiClient(settings_for(peer))
    seen = collect(client, "NewCallerid")
    async with running(client):
        await peer.push(frame(Event="NewCallerid", CallerIDName="Пётр Иванов"), bytewise=True)
        await wait_until(lambda: seen)
    assert seen[0].get("CallerIDName") == "Пётр Иванов"
    assert client.parse_errors == 0


async def test_a_failing_event_callback_keeps_the_connection(peer: FakeAsterisk, caplog) -> None:  # type: ignore[no-untyped-def]
    """(b) an exception in a callback used to escape data_received and close the transport."""
    client = AmiClient(settings_for(peer))

    def broken(msg: AmiMessage) -> None:
        raise RuntimeError("consumer bug")

    async def broken_async(msg: AmiMessage) -> None:
        raise RuntimeError("async consumer bug")

    client.register_event("Hangup", broken)
    client.register_event("Hangup", broken_async)
    seen = collect(client, "Hangup")
    async with running(client):
        with caplog.at_level(logging.ERROR, logger="ami_bridge.client"):
            await peer.push(frame(Event="Hangup", Uniqueid="1.1") + frame(Event="Hangup", Uniqueid="1.2"))
            await wait_until(lambda: len(seen) == 2)
            await asyncio.sleep(0.05)
        assert (await client.send_action({"Action": "Ping"})).response == "Success"
    assert peer.connections == 1
    assert "consumer bug" in caplog.text and "async callback failed" in caplog.text


async def test_originate_without_async_resolves_on_the_queued_reply(peer: FakeAsterisk) -> None:
    """(c) panoramisk's Action.multi raises KeyError 'async' on this reply."""
    broken = actions.Action({"Action": "Originate"})
    broken.responses.append(Message({"Response": "Success", "Message": "Originate successfully queued"}))
    with pytest.raises(KeyError):
        broken.multi  # noqa: B018 - the upstream fault this client works around
    peer.replies["Originate"] = {"Response": "Success", "Message": "Originate successfully queued"}
    peer.replies["QueueAdd"] = {"Response": "Success", "Message": "Added interface to queue"}
    client = AmiClient(settings_for(peer))
    async with running(client):
        reply = await client.send_action({"Action": "Originate", "Channel": "Local/101@agents"})
        assert reply.message == "Originate successfully queued"
        reply = await client.send_action(
            {"Action": "Atxfer", "Channel": "Local/101@agents-1;1", "Exten": "102"}
        )
        assert reply.response == "Success"
        await client.queue_add("collections", "Local/106@agents/n", member_name="Operator 106")


async def test_originate_response_is_routed_as_an_event(peer: FakeAsterisk) -> None:
    peer.replies["Originate"] = {"Response": "Success", "Message": "Originate successfully queued"}
    originated: list[tuple[str, str]] = []
    client = AmiClient(settings_for(peer), on_originate=lambda a, c: originated.append((a, c)))
    seen = collect(client, "OriginateResponse")
    async with running(client):
        action_id = await client.originate(
            "Local/89991234561@outbound",
            context="connect-agent",
            exten="101",
            caller_id='"Callcard" <3512000000>',
            variables={"CRM_CALL_ID": "out-1"},
            channel_id="out-1",
        )
        (sent,) = peer.actions_named("Originate")
        assert (sent.get("Async"), sent.get("ChannelId"), sent.get("Timeout")) == ("true", "out-1", "30000")
        assert sent.getall("Variable") == ["CRM_CALL_ID=out-1"] and sent.action_id == action_id
        await peer.push(
            frame(
                Event="OriginateResponse",
                ActionID=action_id,
                Response="Failure",
                Reason="5",
                Uniqueid="<unknown>",
            )
        )
        await wait_until(lambda: seen)
    assert originated == [(action_id, "out-1")]
    assert (seen[0].response, seen[0].get("Reason")) == ("Failure", "5")


async def test_an_unanswered_action_times_out(peer: FakeAsterisk) -> None:
    """(d) panoramisk actions wait forever."""
    peer.silent.add("Hangup")
    client = AmiClient(settings_for(peer, ami_action_timeout=0.2))
    async with running(client):
        with pytest.raises(AmiTimeout, match=r"Hangup .* no reply within 0.2 s"):
            await client.hangup("Local/101@agents-00000001;1")
        assert (await client.send_action({"Action": "Ping"})).response == "Success"


async def test_pending_actions_fail_when_the_connection_drops(peer: FakeAsterisk) -> None:
    """(d) in-flight futures never resolved on disconnect."""
    peer.silent.add("Redirect")
    client = AmiClient(settings_for(peer, ami_action_timeout=5.0))
    async with running(client):
        pending = asyncio.create_task(client.redirect("Local/s@inbound-1;2", "queues", "support"))
        await wait_until(lambda: peer.actions_named("Redirect"))
        await peer.drop_all()
        with pytest.raises(AmiDisconnected):
            await asyncio.wait_for(pending, 2)


async def test_commands_fail_fast_while_disconnected(peer: FakeAsterisk) -> None:
    client = AmiClient(settings_for(peer))
    with pytest.raises(AmiDisconnected, match="not connected"):
        await client.queue_pause("Local/101@agents/n", True)


async def test_reconnects_and_resyncs_after_every_login(peer: FakeAsterisk) -> None:
    """(e) panoramisk reconnects without telling anyone which calls still exist."""
    peer.list_items["CoreShowChannels"] = [
        {"Event": "CoreShowChannel", "Channel": "Local/s@inbound-1;2", "Uniqueid": "1.2", "Linkedid": "1.1"}
    ]
    peer.list_items["QueueStatus"] = [{"Event": "QueueParams", "Queue": "sales"}]
    resyncs: list[tuple[list[AmiMessage], list[AmiMessage]]] = []
    client = AmiClient(settings_for(peer), on_resync=lambda c, q: resyncs.append((c, q)), min_backoff=0.02)
    async with running(client):
        await peer.drop_all()
        await wait_until(lambda: len(resyncs) == 2)
    assert peer.connections == 2 and client.logins == 2
    channels, queues = resyncs[-1]
    assert [c.get("Uniqueid") for c in channels] == ["1.2"]
    assert [q.get("Queue") for q in queues] == ["sales"]
    assert [a.get("Action") for a in peer.actions[:3]] == ["Login", "CoreShowChannels", "QueueStatus"]


async def test_reconnect_backoff_grows_and_is_capped(peer: FakeAsterisk, caplog) -> None:  # type: ignore[no-untyped-def]
    """The delays the client chose (from its log lines) double up to the cap, and the peer saw at
    least that long between attempts (a busy machine only makes the gaps longer)."""
    peer.drop_next = 5
    client = AmiClient(settings_for(peer, ami_reconnect_max=0.8), min_backoff=0.1)
    with caplog.at_level(logging.WARNING, logger="ami_bridge.client"):
        async with running(client, wait_connected=False):
            await asyncio.wait_for(client.connected.wait(), 10)
    delays = [float(m) for m in re.findall(r"retrying in ([0-9.]+) s", caplog.text)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 0.8]
    gaps = [b - a for a, b in zip(peer.connect_times, peer.connect_times[1:], strict=False)]
    assert len(gaps) == 5
    assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=True))


async def test_login_failure_is_logged_and_retried(peer: FakeAsterisk, caplog) -> None:  # type: ignore[no-untyped-def]
    """(f) a refused login left panoramisk connected-but-useless."""
    client = AmiClient(settings_for(peer, ami_secret="wrong-secret"), min_backoff=0.02)
    with caplog.at_level(logging.ERROR, logger="ami_bridge.client"):
        async with running(client, wait_connected=False):
            await wait_until(lambda: peer.connections >= 2)
            assert not client.connected.is_set()
            peer.secret = "wrong-secret"
            await asyncio.wait_for(client.connected.wait(), 5)
    assert "refused (Authentication failed)" in caplog.text
    assert "CALLCARD_AMI_USERNAME/SECRET" in caplog.text


async def test_error_reply_raises_with_asterisks_message(peer: FakeAsterisk) -> None:
    peer.replies["QueueRemove"] = {"Response": "Error", "Message": "Unable to remove interface: Not there"}
    client = AmiClient(settings_for(peer))
    async with running(client):
        with pytest.raises(AmiError, match="Not there"):
            await client.queue_remove("collections", "Local/106@agents/n")


async def test_commands_build_the_recorded_actions(peer: FakeAsterisk) -> None:
    client = AmiClient(settings_for(peer))
    async with running(client):
        await client.queue_pause("Local/106@agents/n", True, reason="lunch")
        await client.queue_pause("Local/201@noanswer/n", False, queue="support")
        await client.redirect("Local/s@inbound-00000002;2", "queues", "support")
    pause_all, unpause = peer.actions_named("QueuePause")
    assert (
        "Queue" not in pause_all and pause_all.get("Reason") == "lunch" and pause_all.get("Paused") == "true"
    )
    assert (unpause.get("Queue"), unpause.get("Paused")) == ("support", "false")
    (redirect,) = peer.actions_named("Redirect")
    assert (redirect.get("Context"), redirect.get("Exten"), redirect.get("Priority")) == (
        "queues",
        "support",
        "1",
    )


async def test_line_breaks_in_values_cannot_inject_headers(peer: FakeAsterisk) -> None:
    client = AmiClient(settings_for(peer))
    async with running(client):
        with pytest.raises(ValueError, match="line breaks"):
            await client.originate(
                "Local/1@outbound",
                application="Wait",
                data="1",
                caller_id="x\r\nAction: Hangup\r\nChannel: all",
            )
    assert peer.actions_named("Originate") == [] and peer.actions_named("Hangup") == []


async def test_unanswered_ping_drops_a_dead_session(peer: FakeAsterisk) -> None:
    client = AmiClient(settings_for(peer, ami_action_timeout=0.1), min_backoff=0.02)
    client.ping_interval = 0.05
    async with running(client):
        peer.silent.add("Ping")
        await wait_until(lambda: peer.connections >= 2)
