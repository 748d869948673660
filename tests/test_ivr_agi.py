"""The FastAGI server against the recorded Asterisk 22 session, and the faults it must survive.

The replay sends exactly the recorded Asterisk-side bytes (`<<<` lines of
ivr_fastagi.fastagi.txt) over TCP to `FastAgiServer` running the recorder's script, and
checks every byte the server sends against the `>>>` lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from ivr.agi import AgiChannel, AgiResult
from ivr.server import FastAgiServer

TRANSCRIPT = Path(__file__).resolve().parent.parent.parent / "shared" / "ami-traces" / "ivr_fastagi.fastagi.txt"


def recorded_session() -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(environment bytes Asterisk sent, [(server line, Asterisk's reply)]) with LF kept."""
    env, exchanges = b"", []
    for line in TRANSCRIPT.read_bytes().split(b"\n"):
        tag, data = line[:4], line[4:] + b"\n"
        if tag == b"<<< " and not exchanges:
            env += data
        elif tag == b">>> ":
            exchanges.append((data, b""))
        elif tag == b"<<< ":
            exchanges[-1] = (exchanges[-1][0], data)
    return env, exchanges


async def recorder_script(agi: AgiChannel, seen: dict[str, object]) -> None:
    """What the recorder's tiny FastAGI server did, through our AgiChannel."""
    seen["env"] = agi.env
    seen["verbose"] = await agi.command('VERBOSE "CRM IVR: request received" 1')
    seen["caller"] = await agi.get_variable("CALLER")
    seen["cid"] = await agi.get_full_variable("${CALLERID(num)}")
    seen["missing"] = await agi.get_variable("NO_SUCH_VARIABLE")
    await agi.command("SET VARIABLE QUEUE collections")
    await agi.command("SET VARIABLE CRM_CALL_ID ivr-0001-routed")
    seen["playback"] = await agi.command("EXEC Playback silence/1")
    seen["status"] = await agi.command("CHANNEL STATUS")
    await agi.command("NOOP ivr-done")


async def start(handler, **kwargs) -> FastAgiServer:  # type: ignore[no-untyped-def]
    server = FastAgiServer(handler, **kwargs)
    await server.start("127.0.0.1", 0)
    return server


async def test_recorded_fastagi_session_replays_byte_for_byte() -> None:
    env, exchanges = recorded_session()
    assert len(exchanges) == 9
    seen: dict[str, object] = {}
    server = await start(lambda agi: recorder_script(agi, seen))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(env)
        for sent_by_server, reply in exchanges:
            assert await asyncio.wait_for(reader.readline(), 2) == sent_by_server
            writer.write(reply)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # "=== server closed the connection"
        writer.close()
    finally:
        await server.stop()
    variables = seen["env"].variables  # type: ignore[attr-defined]
    assert list(variables)[:3] == ["agi_network", "agi_network_script", "agi_request"]
    assert len(variables) == 22 and variables["agi_accountcode"] == ""
    assert variables["agi_uniqueid"] == "1795394630.9" and seen["env"].dnid == ""  # type: ignore[attr-defined]
    assert seen["verbose"] == AgiResult(200, "1")
    assert seen["caller"] == seen["cid"] == "+73511234567"
    assert seen["missing"] is None
    assert seen["playback"] == AgiResult(200, "0") and seen["status"] == AgiResult(200, "6")


@pytest.mark.parametrize(("line", "parsed"), [
    ("200 result=1 (+73511234567)", AgiResult(200, "1", "+73511234567")),
    ("200 result=0", AgiResult(200, "0")),
    ("200 result=50 endpos=8000", AgiResult(200, "50", None, 8000)),
    ("200 result= (timeout)", AgiResult(200, "", "timeout")),
    ("200 result=1 (8 (351) 123-45-67)", AgiResult(200, "1", "8 (351) 123-45-67")),
    ("510 Invalid or unknown command", AgiResult(510)),
])
def test_agi_reply_lines_parse(line: str, parsed: AgiResult) -> None:
    assert AgiResult.parse(line) == parsed


async def test_peer_closing_before_the_blank_line_ends_the_session_without_spinning(
        caplog: pytest.LogCaptureFixture) -> None:
    """panoramisk's fast_agi loops forever on b'' here; the loop must stay free and say why."""
    called: list[object] = []
    server = await start(called.append)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network: yes\nagi_request: agi://127.0.0.1/ivr\nagi_chan")
        writer.close()
        started = time.monotonic()
        for _ in range(50):  # a spinning session would starve these sleeps
            await asyncio.sleep(0.01)
        assert time.monotonic() - started < 1.5
        assert not server._sessions and not called
    finally:
        await server.stop()
    assert "peer closed the connection after 2 environment lines, before the blank line" in caplog.text


async def test_garbage_environment_lines_are_logged_and_the_rest_is_used(
        caplog: pytest.LogCaptureFixture) -> None:
    envs: list[object] = []
    server = await start(lambda agi: envs.append(agi.env))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.0\nagi_request: agi://x/ivr\r\nno colon here\nagi_uniqueid: 1.2\n\n")
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
    finally:
        await server.stop()
    env = envs[0]
    assert env.variables == {"agi_request": "agi://x/ivr", "agi_uniqueid": "1.2"}  # type: ignore[attr-defined]
    assert "ignored 2 environment lines that are not agi_ variables" in caplog.text
    assert "GET / HTTP/1.0" in caplog.text


async def test_silent_peer_is_dropped_after_the_environment_timeout(caplog: pytest.LogCaptureFixture) -> None:
    server = await start(lambda agi: None, env_timeout=0.2)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network: yes\n")
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
    finally:
        await server.stop()
    assert "no blank line ending the AGI environment within 0.2 s" in caplog.text


async def test_plain_function_handlers_run_and_close_the_session() -> None:
    """panoramisk wraps handlers with asyncio.coroutine, gone in Python 3.11; plain functions work here."""
    requests: list[str] = []

    def handler(agi: AgiChannel) -> None:
        requests.append(agi.env.request)

    env, _ = recorded_session()
    server = await start(handler)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(env)
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
    finally:
        await server.stop()
    assert requests == ["agi://127.0.0.1:4573/ivr"]


async def test_hangup_notice_then_dead_channel_raises_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def handler(agi: AgiChannel) -> None:
        await agi.command("STREAM FILE callcard/ivr-main \"0123456789\"")

    env, _ = recorded_session()
    server = await start(handler)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(env)
        assert (await reader.readline()).startswith(b"STREAM FILE")
        writer.write(b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n")
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
    finally:
        await server.stop()
    assert "refused: the channel has hung up" in caplog.text
