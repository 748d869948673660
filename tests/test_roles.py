"""Process roles: the bridge's commands over the bus, refusing memory:// for a separate part, the
operations endpoints, and log lines that never carry a secret."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent_desk.app import create_app
from ami_bridge.client import AmiError, AmiTimeout
from ami_bridge.frames import AmiMessage
from ami_bridge.remote import RemoteBridge, serve_bridge_commands
from ami_bridge.service import Bridge, CallNotLive
from callcard.bus import MemoryBus, RedisBus
from callcard.cli import main
from callcard.logs import JsonFormatter, Redactor, secrets_of
from callcard.pbx_sim.model import default_config
from callcard.pbx_sim.server import PbxSimulator
from callcard.runtime import AmiDialer, start_stack
from callcard.settings import Settings, SettingsError


async def test_a_process_without_the_bridge_commands_it_over_the_bus(bus_pair) -> None:  # type: ignore[no-untyped-def]
    bridge_bus, web_bus = bus_pair  # with Redis: the bridge's process and a web worker's
    sim = PbxSimulator(default_config())
    await sim.start("127.0.0.1", 0)
    bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=2.0), bridge_bus)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(bridge.run(stop)),
             asyncio.create_task(serve_bridge_commands(bridge, AmiDialer(bridge).click_to_call, bridge_bus, stop))]
    remote = RemoteBridge(web_bus, timeout=3.0)
    try:
        await asyncio.wait_for(bridge.client.connected.wait(), 5)
        await asyncio.sleep(0.1)  # the command server subscribes
        summary = await remote.queue_summary()
        assert all(isinstance(item, AmiMessage) for item in summary)
        assert {item.get("Queue") for item in summary} == {"sales", "support", "collections"}
        assert (await remote.click_to_call("Local/101@agents", "+73517654321")).startswith("callcard-orig-")
        assert await remote.on_phone("Local/106@agents") is False
        assert await remote.operator_on_line("no-such-call") is False
        with pytest.raises(CallNotLive, match="no-such-call"):  # the bridge's own class, raised again here
            await remote.transfer_to_queue("no-such-call", "support")
        with pytest.raises(AmiError, match="Need 'Queue' and 'Interface'"):  # Asterisk's reply, as is
            await remote.commands.queue_remove("", "Local/101@agents/n")
        await remote.commands.queue_pause("Local/101@agents/n", True, "sales", "lunch")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        await remote.close()
        await sim.stop()
        await bridge_bus.close()
        if web_bus is not bridge_bus:
            await web_bus.close()


async def test_nobody_serving_the_bridge_commands_is_a_timeout_not_a_hang() -> None:
    remote = RemoteBridge(MemoryBus(), timeout=0.2)
    with pytest.raises(AmiTimeout, match="no answer on bridge.commands within 0.2 s"):
        await remote.click_to_call("PJSIP/101", "+73517654321")
    await remote.close()


def test_a_separate_part_refuses_the_in_process_bus(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CALLCARD_BUS_URL", "memory://")
    for role in ("bridge", "worker", "web", "ivr", "dialler"):
        assert main(["run", role]) == 2
        assert f"`callcard run {role}` needs a bus shared with the other processes: set " \
               "CALLCARD_BUS_URL=redis://" in capsys.readouterr().err


def test_several_parts_share_a_process_but_uvicorn_workers_need_web_alone(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CALLCARD_BUS_URL", "memory://")
    assert main(["run", "bridge", "worker"]) == 2
    assert "`callcard run bridge worker` needs a bus shared with the other processes" in capsys.readouterr().err
    monkeypatch.setenv("CALLCARD_BUS_URL", "redis://127.0.0.1:1/0")  # refused before anything connects
    assert main(["run", "worker", "web", "--workers", "2"]) == 2
    assert "--workers 2 needs `web` alone" in capsys.readouterr().err


async def test_start_stack_names_an_unknown_part() -> None:
    with pytest.raises(ValueError, match=r"unknown parts \['web'\]"):
        await start_stack(Settings(), parts={"web"})


def test_health_readiness_and_metrics_need_no_login(sessions, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(Settings(secret_key="t"), sessions, MemoryBus())) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {"status": "ok"}
        metrics = http.get("/metrics")
        assert metrics.status_code == 200 and "callcard_pops_sent_total" in metrics.text
    dead = RedisBus("redis://127.0.0.1:1/0")  # nothing listens on port 1
    with TestClient(create_app(Settings(secret_key="t"), sessions, dead)) as http:
        answer = http.get("/readyz")
        assert answer.status_code == 503 and set(answer.json()["failed"]) == {"bus"}


def test_log_format_is_checked() -> None:
    with pytest.raises(SettingsError, match="CALLCARD_LOG_FORMAT='xml': use one of text, json"):
        Settings.from_env({"CALLCARD_LOG_FORMAT": "xml"})


def test_json_lines_carry_extra_fields_and_no_secret() -> None:
    settings = Settings(ami_secret="ami-Secret-1", database_url="postgresql://u:db%40Pass@h/db",
                        bus_url="redis://:bus-Pass-1@r:6379/0")
    formatter = JsonFormatter(Redactor(secrets_of(settings)))
    try:
        raise RuntimeError("login with ami-Secret-1 failed")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "connect %s as %s", (settings.database_url,
                                   "crm"), sys.exc_info())
    record.queue = "sales"
    record.url = "redis://:bus-Pass-1@r:6379/0"
    line = json.loads(formatter.format(record))
    assert line["message"] == "connect postgresql://u:***@h/db as crm"
    assert (line["level"], line["logger"], line["queue"], line["url"]) == ("ERROR", "x", "sales", "redis://:***@r:6379/0")
    assert "ami-Secret-1" not in line["exc"] and "login with *** failed" in line["exc"]
    assert "db@Pass" not in json.dumps(line)


@pytest.mark.parametrize("bus", ["redis"], indirect=True)  # the fixture skips or fails without Redis
async def test_a_refused_login_logged_in_debug_shows_no_secret(bus: object, tmp_path: Path) -> None:
    """The bridge at debug level, its AMI secret refused: every line is JSON, no line has a secret."""
    sim = PbxSimulator(default_config(), secret="the-right-one")
    await sim.start("127.0.0.1", 0)
    redis_url = os.environ.get("CALLCARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    env = {**os.environ, "CALLCARD_BUS_URL": redis_url, "CALLCARD_BUS_PREFIX": "callcard-logs-test:",
           "CALLCARD_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "CALLCARD_AMI_PORT": str(sim.port),
           "CALLCARD_AMI_SECRET": "wrong-Secret-99", "CALLCARD_SECRET_KEY": "session-Key-99",
           "CALLCARD_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "callcard.cli", "-v", "run", "bridge",
                                                env=env, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            while not any("CALLCARD_AMI_USERNAME/SECRET" in line for line in lines):
                line = (await proc.stderr.readline()).decode()
                assert line, "the bridge exited:\n" + "".join(lines)
                lines.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), 10)
        await proc.wait()
        await sim.stop()
    text = "".join(lines) + rest.decode()
    assert "wrong-Secret-99" not in text and "session-Key-99" not in text, text
    parsed = [json.loads(line) for line in text.splitlines() if line]
    assert any(line["level"] == "DEBUG" for line in parsed)
    assert any("CALLCARD_AMI_USERNAME/SECRET" in line["message"] for line in parsed), text
