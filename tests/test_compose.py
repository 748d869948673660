"""docker-compose.yml as CI can check it without Docker: parsed with PyYAML, then services, health,
start order, ports, variables and mounted files are held against Settings and .env.example."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcard.settings import Settings
from crm_core import recordings
from ivr.menu import CALLBACK_PROMPT, DepartmentSpec
from ivr.models import IvrMenu
from ivr.server import REJECTED_PROMPT

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = {"migrate", "bridge", "worker", "web", "ivr", "dialler"}
HEALTHCHECKED = {"postgres", "redis", "web", "asterisk"}
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def _setting_names() -> set[str]:
    return {f"CALLCARD_{f.name.upper()}" for f in fields(Settings)}


def test_every_service_has_an_image_or_a_build_and_the_app_is_one_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"asterisk", "postgres", "redis"} | APP_SERVICES <= set(services)
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
    assert {services[name]["image"] for name in APP_SERVICES} == {"callcard:latest"}
    assert (ROOT / "Dockerfile").is_file()
    assert services["web"]["command"][:3] == ["callcard", "run", "web"]
    assert int(services["web"]["command"][services["web"]["command"].index("--workers") + 1]) > 1
    for role in ("bridge", "worker", "ivr", "dialler"):
        assert services[role]["command"] == ["callcard", "run", role]
    assert services["migrate"]["command"] == ["callcard", "migrate"] and services["migrate"]["restart"] == "no"


def test_healthchecks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in HEALTHCHECKED:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        needs = {"postgres"} if name == "migrate" else {"redis"}
        if name not in ("migrate", "bridge"):
            needs.add("postgres")
        for other in needs:
            assert depends[other]["condition"] == "service_healthy", (name, other)
        if name != "migrate":
            assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert services["bridge"]["depends_on"]["asterisk"]["condition"] == "service_healthy"


def test_a_standby_bridge_waits_on_the_leader_lock(compose: dict[str, Any]) -> None:
    """Two bridge containers, one leading (ami_bridge/leader.py); a fixed host port would stop the second."""
    bridge = compose["services"]["bridge"]
    assert bridge["deploy"]["replicas"] == 2
    assert "ports" not in bridge


def test_ports_are_published(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "8000:8000" in services["web"]["ports"]
    assert "5060:5060/udp" in services["asterisk"]["ports"]
    rtp = (ROOT / "deploy/asterisk/rtp.conf").read_text()
    start, end = (int(re.search(rf"{key}\s*=\s*(\d+)", rtp).group(1)) for key in ("rtpstart", "rtpend"))  # type: ignore[union-attr]
    assert f"{start}-{end}:{start}-{end}/udp" in services["asterisk"]["ports"]


def test_every_callcard_variable_is_a_setting_and_in_env_example(compose: dict[str, Any],
                                                                  env_example: dict[str, str]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\bCALLCARD_[A-Z0-9_]+", text))
    assert used, "compose sets no CALLCARD_ variable"
    assert used <= _setting_names(), used - _setting_names()
    assert used <= set(env_example), used - set(env_example)
    assert set(VARIABLE.findall(text)) <= set(env_example), "every ${VAR} the compose file reads is in .env.example"
    for name in APP_SERVICES:
        assert compose["services"][name]["env_file"] == ".env"


def test_env_example_covers_every_setting_with_a_placeholder_for_secrets(env_example: dict[str, str]) -> None:
    assert _setting_names() <= set(env_example), _setting_names() - set(env_example)
    for name in ("CALLCARD_AMI_SECRET", "CALLCARD_SECRET_KEY", "POSTGRES_PASSWORD", "PHONE_PASSWORD"):
        assert env_example[name].startswith("change-me"), name
    Settings.from_env({k: v for k, v in env_example.items() if k.startswith("CALLCARD_")})  # every value parses


def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str | int) and SECRET_NAME.search(str(key)):
                    assert str(value).startswith("${"), f"{path}.{key} is written in the file"
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        elif isinstance(node, str):
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", node):
                assert password.startswith("${"), f"{path} has a password in a URL"

    walk(compose, "")


def test_mounted_deploy_files_exist_and_wire_ami_and_fastagi(compose: dict[str, Any]) -> None:
    mounted = [volume.split(":")[0] for service in compose["services"].values()
               for volume in service.get("volumes", []) if volume.startswith("./")]
    assert {"./deploy/asterisk/manager.conf", "./deploy/asterisk/queues.conf",
            "./deploy/asterisk/extensions.conf", "./deploy/asterisk/pjsip.conf"} <= set(mounted)
    for path in mounted:
        assert (ROOT / path).is_file(), path
    extensions = (ROOT / "deploy/asterisk/extensions.conf").read_text()
    ivr_port = Settings().agi_port
    assert f"IVR_AGI=agi://ivr:{ivr_port}/ivr" in extensions and "AGI(${IVR_AGI})" in extensions
    manager = (ROOT / "deploy/asterisk/manager.conf").read_text()
    assert '#tryinclude "manager_secret.conf"' in manager and not re.search(r"^\s*secret\s*=", manager, re.M)
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"].split("/")[0]
    assert f"permit = {subnet}/" in manager
    entrypoint = (ROOT / "deploy/asterisk/entrypoint.sh").read_text()
    assert "$CALLCARD_AMI_SECRET" in entrypoint and "manager_secret.conf" in entrypoint
    assert compose["services"]["asterisk"]["environment"]["CALLCARD_AMI_SECRET"].startswith("${CALLCARD_AMI_SECRET")


def test_recordings_are_one_volume_that_asterisk_writes_and_the_app_reads(compose: dict[str, Any]) -> None:
    """MixMonitor writes `callcard/…` under Asterisk's monitor folder, which is the `recordings` volume;
    web reads it (read-only) and worker deletes old days from it, both at CALLCARD_RECORDINGS_DIR, under
    the name crm_core.recordings looks for."""
    services = compose["services"]
    folder = compose["x-app"]["environment"]["CALLCARD_RECORDINGS_DIR"]
    assert "recordings" in compose["volumes"]
    assert "recordings:/var/spool/asterisk/monitor/callcard" in services["asterisk"]["volumes"]
    assert f"recordings:{folder}:ro" in services["web"]["volumes"]
    assert f"recordings:{folder}" in services["worker"]["volumes"]
    extensions = (ROOT / "deploy/asterisk/extensions.conf").read_text()
    (argument,) = re.findall(r"MixMonitor\((callcard/.+),b\)$", extensions, re.M)
    started = datetime(2026, 11, 24, 23, 59, tzinfo=UTC)
    name = (argument.replace("${STRFTIME(${EPOCH},UTC,%Y/%m/%d)}", started.strftime("%Y/%m/%d"))
            .replace("${LINKEDID}", "1795394611.0"))
    assert name == f"callcard/{recordings.relative_path('1795394611.0', started)}"
    assert extensions.count("Gosub(record,s,1)") == 4  # inbound, click-to-call (two patterns), campaign
    entrypoint = (ROOT / "deploy/asterisk/entrypoint.sh").read_text()
    assert "10001" in entrypoint and "umask 007" in entrypoint
    assert "--uid 10001" in (ROOT / "Dockerfile").read_text()


def test_every_prompt_the_ivr_and_the_dialplan_play_is_in_the_readme_table() -> None:
    """The centre records these files before going live: the README's list is the one they read."""
    menus = re.findall(r'greeting="(callcard/[\w-]+)"', (ROOT / "ivr" / "service.py").read_text())
    dialplan = re.findall(r"Playback\(([\w/-]+)\)", (ROOT / "deploy" / "asterisk" / "extensions.conf").read_text())
    played = {CALLBACK_PROMPT, REJECTED_PROMPT, DepartmentSpec.voicemail_prompt,
              IvrMenu.__table__.c.invalid_prompt.default.arg, *menus, *dialplan}
    assert len(played) >= 7 and menus and dialplan
    table = (ROOT / "README.md").read_text().split("## IVR (`/admin/ivr`)")[1].split("\n## ")[0]
    assert sorted(p for p in played if f"`{p}`" not in table) == []
