"""One Settings object, read from `CALLCARD_*` environment variables and passed where needed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

LOG_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """A CALLCARD_ variable holds a value the app cannot use."""


@dataclass(frozen=True)
class Settings:
    # Storage and bus
    database_url: str = "sqlite:///var/callcard.db"
    bus_url: str = "memory://"
    bus_prefix: str = "callcard:"  # Redis key and channel prefix: several centres (or test runs) on one Redis
    # Reliability on Redis: one leading bridge per Asterisk, the call log fed from a stream
    leader_ttl: float = 3.0  # seconds of the bridge's lease: renewed every third, given up at half
    call_stream_maxlen: int = 1_000_000  # call events kept in the stream (approximate trimming)
    call_log_consumer: str = ""  # the call logger's name in the stream's consumer group; "" = host name
    # Asterisk Manager Interface
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str = "crm"
    ami_secret: str = "crm-secret"
    ami_events: str = "system,call,agent"  # what the bridge reads; `on` adds dialplan/cdr/cel traffic
    ami_action_timeout: float = 5.0
    ami_reconnect_max: float = 30.0
    # Web
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    secret_key: str = "change-me-demo-only"
    secure_cookies: bool = False
    default_language: str = "ru"
    # Phone numbers
    default_region: str = "RU"
    # FastAGI IVR server (Asterisk's AGI(agi://host:port/ivr) connects here)
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # E-mail drop folder: *.eml files put here become requests (polled every few seconds; "" = off)
    eml_dir: str = ""
    # Call recordings: the folder Asterisk's MixMonitor writes and the web app reads ("" = none),
    # and the days they are kept (0 = until someone deletes them)
    recordings_dir: str = ""
    recording_days: int = 0
    # PBX simulator (demo and tests)
    sim_call_interval: float = 6.0
    # Operations: Prometheus port of the processes other than web (0 = none), log lines as text or json
    metrics_port: int = 0
    log_format: str = "text"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from `CALLCARD_<FIELD>` variables; overrides win over the environment."""
        env = os.environ if env is None else env
        if "CALLCARD_PAUSE_LIMITS" in env:  # read until pause reasons were the centre's own
            raise SettingsError("CALLCARD_PAUSE_LIMITS is no longer read: each pause reason's limit is set with the "
                                "reason on /supervisor/thresholds; remove the variable")
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"CALLCARD_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _convert(f.name, f.type, raw)
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.log_format not in LOG_FORMATS:
            raise SettingsError(f"CALLCARD_LOG_FORMAT={settings.log_format!r}: use one of {', '.join(LOG_FORMATS)}")
        if settings.leader_ttl < 0.3:
            raise SettingsError(f"CALLCARD_LEADER_TTL={settings.leader_ttl:g}: the lease needs at least 0.3 s")
        if settings.recording_days < 0:
            raise SettingsError(f"CALLCARD_RECORDING_DAYS={settings.recording_days}: 0 keeps them, or a number of days")
        if settings.call_stream_maxlen < 1000:
            raise SettingsError(f"CALLCARD_CALL_STREAM_MAXLEN={settings.call_stream_maxlen}: keep at least 1000 events")
        return settings


def require_shared_bus(settings: Settings, role: str) -> None:
    """A part run in a process of its own meets the others only on Redis; memory:// would leave
    it talking to itself, so it refuses to start rather than run deaf."""
    if not settings.bus_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(
            f"`callcard run {role}` needs a bus shared with the other processes: set "
            f"CALLCARD_BUS_URL=redis://host:6379/0 (now {settings.bus_url!r}); `callcard serve` runs "
            "every part in one process on memory://"
        )


def _convert(name: str, type_name: object, raw: str) -> object:
    kind = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", "str")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
    except ValueError:
        raise SettingsError(f"CALLCARD_{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw
