"""Splitting a client's AMI byte stream into requests, with Asterisk's tolerance rules.

Bare LF is a line end, header names are case-insensitive, a line without a colon is ignored,
a blank line ends a message (a stray one is an empty message), and a line over the 1 KiB
input buffer spoils its whole message (`line too long`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LINE = 1024


@dataclass
class Request:
    headers: list[tuple[str, str]] = field(default_factory=list)
    too_long: bool = False

    def has(self, name: str) -> bool:
        return any(k.lower() == name.lower() for k, _ in self.headers)

    def get(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), default)

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class RequestParser:
    """Feed raw bytes, get complete requests; UTF-8 is decoded per whole line, never per chunk."""

    def __init__(self) -> None:
        self._buf = b""
        self._current = Request()
        self._skip_rest_of_line = False

    def feed(self, data: bytes) -> list[Request]:
        self._buf += data
        done: list[Request] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_LINE:
                    self._current.too_long = True
                    self._skip_rest_of_line = True
                    self._buf = b""
                return done
            line, self._buf = self._buf[:end], self._buf[end + 1:]
            if self._skip_rest_of_line:
                self._skip_rest_of_line = False
                continue
            line = line.rstrip(b"\r")
            if len(line) > MAX_LINE:
                self._current.too_long = True
                continue
            if not line:
                done.append(self._current)
                self._current = Request()
                continue
            key, colon, value = line.decode("utf-8", "replace").partition(":")
            if colon:
                self._current.headers.append((key.strip(), value.strip()))
