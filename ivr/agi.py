"""The FastAGI protocol: reading the `agi_*` environment, sending commands, parsing replies.

Written instead of panoramisk's `fast_agi`, which spins the event loop forever when Asterisk
(or anything else) closes the socket before the blank line that ends the environment, and
cannot run plain-function handlers on Python 3.11. Here end of file, a line too long, a
silent peer and garbage lines all end in a specific exception or a logged warning.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_ENV_LINES = 256
# ASCII digits only (`\d` takes any script's), and an endpos int() can convert: a longer one leaves
# the reply unparsed like any other malformed result.
_REPLY = re.compile(r"^([0-9]{3})(?:[ -](.*))?$")
_RESULT = re.compile(r"^result=(\S*)(?: \((.*)\))?(?: endpos=(-?[0-9]{1,18}))?\s*$")


class AgiError(Exception):
    """A FastAGI session cannot go on: protocol violation, unknown command, silent peer."""


class AgiEnvironmentError(AgiError):
    """The `agi_*` environment did not arrive whole."""


class AgiHangup(AgiError):
    """The channel is gone (Asterisk sent HANGUP or refused a command on a dead channel)."""


@dataclass(frozen=True)
class AgiEnvironment:
    """The `agi_*` variables in the order Asterisk sent them, plus any lines that made no sense."""

    variables: dict[str, str]
    garbage: tuple[str, ...] = ()

    def get(self, name: str, default: str = "") -> str:
        return self.variables.get(name if name.startswith("agi_") else f"agi_{name}", default)

    @property
    def request(self) -> str:
        return self.get("request")

    @property
    def uniqueid(self) -> str:
        return self.get("uniqueid")

    @property
    def dnid(self) -> str:
        """The dialled number, '' when Asterisk does not know it."""
        value = self.get("dnid")
        return "" if value == "unknown" else value


@dataclass(frozen=True)
class AgiResult:
    """One `200 result=N (data) endpos=M` reply; `code` is 200 unless the command failed."""

    code: int
    result: str = ""
    data: str | None = None
    endpos: int | None = None
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, line: str) -> AgiResult:
        match = _REPLY.match(line)
        if match is None:
            raise AgiError(f"not an AGI reply: {line[:200]!r}")
        code, rest = int(match.group(1)), match.group(2) or ""
        found = _RESULT.match(rest) if code == 200 else None
        if found is None:
            return cls(code, text=rest)
        endpos = found.group(3)
        return cls(code, found.group(1), found.group(2), int(endpos) if endpos else None, rest)


async def read_environment(reader: asyncio.StreamReader, timeout: float = 5.0) -> AgiEnvironment:
    """Read `agi_name: value` lines up to the blank line; other lines are kept aside as garbage."""
    variables: dict[str, str] = {}
    garbage: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            for _ in range(MAX_ENV_LINES):
                raw = await reader.readline()
                if not raw.endswith(b"\n"):
                    raise AgiEnvironmentError(
                        f"peer closed the connection after {len(variables) + len(garbage)} environment "
                        "lines, before the blank line that ends the AGI environment")
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    return AgiEnvironment(variables, tuple(garbage))
                key, colon, value = line.partition(":")
                if colon and key.startswith("agi_") and " " not in key:
                    variables[key] = value[1:] if value.startswith(" ") else value
                else:
                    garbage.append(line)
    except TimeoutError:
        raise AgiEnvironmentError(f"no blank line ending the AGI environment within {timeout:g} s") from None
    except ValueError:  # asyncio's line limit (64 KiB) was exceeded
        raise AgiEnvironmentError("an AGI environment line is longer than 64 KiB") from None
    raise AgiEnvironmentError(f"more than {MAX_ENV_LINES} AGI environment lines")


class AgiChannel:
    """One FastAGI session from the server's side: `command()` sends a line and reads its reply."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, env: AgiEnvironment,
                 reply_timeout: float = 300.0) -> None:
        self.env = env
        self.hung_up = False
        self._reader = reader
        self._writer = writer
        self._reply_timeout = reply_timeout

    async def command(self, text: str) -> AgiResult:
        """Send one command; a `HANGUP` notice is noted and skipped, a dead channel raises AgiHangup."""
        if "\n" in text or "\r" in text:
            raise AgiError(f"an AGI command is one line: {text[:80]!r}")
        self._writer.write(text.encode() + b"\n")
        await self._writer.drain()
        while True:
            line = await self._readline(text)
            if line == "HANGUP":
                self.hung_up = True
                continue
            result = AgiResult.parse(line)
            if result.code == 520 and line.startswith("520-"):  # usage text follows, up to "520 End..."
                while not (await self._readline(text)).startswith("520 "):
                    pass
            if result.code == 511:
                self.hung_up = True
                raise AgiHangup(f"{text!r} refused: the channel has hung up")
            if result.code != 200:
                raise AgiError(f"{text!r} failed: {line}")
            return result

    async def _readline(self, command: str) -> str:
        try:
            async with asyncio.timeout(self._reply_timeout):
                raw = await self._reader.readline()
        except TimeoutError:
            raise AgiError(f"no reply to {command!r} within {self._reply_timeout:g} s") from None
        except ValueError:  # asyncio's line limit was exceeded; the rest of the reply is unusable
            raise AgiError(f"a reply to {command!r} is longer than the stream's line limit "
                           "(64 KiB unless set otherwise)") from None
        if not raw.endswith(b"\n"):
            self.hung_up = True
            raise AgiHangup(f"Asterisk closed the connection while {command!r} ran")
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def get_variable(self, name: str) -> str | None:
        """The variable's value, None when unset (`200 result=0`)."""
        result = await self.command(f"GET VARIABLE {name}")
        return result.data if result.result == "1" else None

    async def get_full_variable(self, expression: str) -> str | None:
        """An expression such as `${CHANNEL(linkedid)}` evaluated on the channel."""
        result = await self.command(f"GET FULL VARIABLE {expression}")
        return result.data if result.result == "1" else None

    async def set_variable(self, name: str, value: str) -> None:
        await self.command(f'SET VARIABLE {name} "{_quote(value)}"')

    async def hangup(self) -> None:
        await self.command("HANGUP")


def _quote(value: str) -> str:
    """A value inside AGI double quotes: backslash and quote escaped, no line breaks."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
