"""Log lines as text or as one JSON object per line (CALLCARD_LOG_FORMAT), never with a secret in them.

Every line passes through a redactor that replaces the AMI secret, the session key and any
password written in a URL (`scheme://user:password@host`) with `***`, whoever logged it: our
code, panoramisk, uvicorn or SQLAlchemy. JSON lines carry time, level, logger, message and any
`extra={...}` fields the call site passed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from callcard.settings import Settings

MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary words; such a secret is no secret anyway
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]*):([^@\s]+)@")
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
QUIET_LOGGERS = ("alembic", "uvicorn.access")  # a line per migration or request is noise


def secrets_of(settings: Settings) -> list[str]:
    """The values that must never appear in a log line."""
    found = [settings.ami_secret, settings.secret_key]
    for url in (settings.database_url, settings.bus_url):
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            found += [password, unquote(password)]
    return found


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _URL_PASSWORD.sub(rf"\1:{MASK}@", text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def safe_url(url: str) -> str:
    """The URL without its password, for printing."""
    return _URL_PASSWORD.sub(rf"\1:{MASK}@", url)


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redact(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                line[name] = self._plain(value)
        if record.exc_info:
            line["exc"] = self._redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = self._redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False)

    def _plain(self, value: object) -> object:
        """An extra field as JSON can carry it, redacted when it is text."""
        if isinstance(value, bool | int | float) or value is None:
            return value
        return self._redact(value if isinstance(value, str) else str(value))


def configure_logging(settings: Settings, *, verbose: bool = False) -> None:
    """One stderr handler in the chosen format on the root logger, unless it has handlers already
    (a host such as pytest that captures logs keeps its own)."""
    redact = Redactor(secrets_of(settings))
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(redact) if settings.log_format == "json" else TextFormatter(redact))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    if not verbose:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
