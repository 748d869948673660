"""One Settings object, read from `CALLCARD_*` environment variables and passed where needed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields


class SettingsError(ValueError):
    """A CALLCARD_ variable holds a value the app cannot use."""


@dataclass(frozen=True)
class Settings:
    # Storage and bus
    database_url: str = "sqlite:///var/callcard.db"
    bus_url: str = "memory://"
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
    # PBX simulator (demo and tests)
    sim_call_interval: float = 6.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from `CALLCARD_<FIELD>` variables; overrides win over the environment."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"CALLCARD_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _convert(f.name, f.type, raw)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


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
