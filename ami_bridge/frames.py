"""Incremental AMI frame parser: bytes from the socket in, whole messages out.

It sits on the hot path and faces untrusted input, so it never raises: bad bytes become
U+FFFD, lines without a colon are skipped, oversized lines or frames are dropped and the
parser resynchronises at the next blank line. UTF-8 is decoded incrementally, so a
character split across two reads keeps every byte.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterable, Iterator
from itertools import repeat

log = logging.getLogger(__name__)

BANNER_PREFIX = "Asterisk Call Manager/"
MAX_LINE = 8 * 1024
MAX_FRAME = 256 * 1024
_PADDED_LINE = re.compile(r"\n\s")  # a header name with whitespace before it (AmiMessage._scan)


class AmiMessage:
    """One AMI event or response: ordered headers, looked up case-insensitively.

    A frame from `FrameParser` whose first line is `Event:` keeps its text and lines, and is
    split into headers only when all of them are wanted: the tracker ignores many events by
    name, and of the others reads a few headers, each found in the text (`get`).
    """

    __slots__ = ("_event", "_first", "_headers", "_lines", "_text")

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self._headers: list[tuple[str, str]] | None = headers
        self._lines: list[str] | None = None
        self._text: str | None = None
        self._first: dict[str, str] | None = None
        self._event: str | None = None

    @classmethod
    def _unsplit(cls, text: str, lines: list[str]) -> AmiMessage:
        """A message from a frame's text and its lines, which each hold a colon, the first `Event:`."""
        msg = cls.__new__(cls)
        msg._headers = None
        msg._lines = lines
        msg._text = text
        msg._first = None
        msg._event = lines[0][6:].removeprefix(" ")
        return msg

    @classmethod
    def of(cls, **headers: str) -> AmiMessage:
        """Build a message from keyword headers (tests, synthetic list items)."""
        return cls(list(headers.items()))

    @property
    def headers(self) -> list[tuple[str, str]]:
        headers = self._headers
        if headers is None:
            headers = self._headers = [
                (name.strip(), value.removeprefix(" "))
                for name, _, value in (line.partition(":") for line in self._lines or ())
            ]
            self._lines = None
        return headers

    def may_contain(self, values: Iterable[str]) -> bool:
        """False only if no header holds any of `values` (say, the ActionIDs awaiting a reply);
        answered from the frame's text while its headers are unsplit, so it never splits them."""
        if self._text is None:
            return True
        text = self._text
        return any(value in text for value in values)

    def _index(self) -> dict[str, str]:
        """First value of each header, by lower-cased name (built on the first lookup)."""
        first = self._first
        if first is None:
            first = self._first = {}
            for name, value in self.headers:
                first.setdefault(name.lower(), value)
        return first

    def get(self, name: str, default: str = "") -> str:
        if self._first is None and self._text is not None:
            value = self._scan(name, default)
            if value is not None:
                return value
        return self._index().get(name.lower(), default)

    def _scan(self, name: str, default: str) -> str | None:
        """`get` on an unsplit frame without splitting it: a handled event has a few of its ~25
        headers read, and finding each in the text costs a fraction of splitting them all. None
        leaves it to the index: a line before may hold the header spelled or padded otherwise."""
        text = self._text
        assert text is not None
        key = name + ":"
        if text.startswith(key):
            start = len(key)
        else:
            line = text.find("\n" + key) + 1
            before = text[:line] if line else text
            if ("\n" + name.lower()) in ("\n" + before).lower() or _PADDED_LINE.search(before):
                return None
            if not line:
                return default
            start = line + len(key)
        end = text.find("\n", start)
        value = text[start:] if end < 0 else text[start:end]
        return value[1:] if value.startswith(" ") else value

    def getall(self, name: str) -> list[str]:
        """Every value of a repeated header such as `ChanVariable`, in order."""
        key = name.lower()
        return [value for header, value in self.headers if header.lower() == key]

    def variables(self) -> dict[str, str]:
        """Channel variables from `ChanVariable: NAME=value` lines (and `ChanVariable(<chan>):`)."""
        result: dict[str, str] = {}
        for header, value in self.headers:
            lowered = header.lower()
            if lowered == "chanvariable" or lowered.startswith("chanvariable("):
                name, _, val = value.partition("=")
                result[name] = val
        return result

    def __getitem__(self, name: str) -> str:
        return self._index()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index()

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.headers)

    def __len__(self) -> int:
        return len(self.headers)

    def __repr__(self) -> str:
        return f"AmiMessage({self.headers!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AmiMessage) and other.headers == self.headers

    __hash__ = None  # type: ignore[assignment]

    @property
    def event(self) -> str:
        event = self._event
        if event is None:
            event = self._event = self._index().get("event", "")
        return event

    @property
    def response(self) -> str:
        return self.get("Response")

    @property
    def action_id(self) -> str:
        return self.get("ActionID")

    @property
    def message(self) -> str:
        return self.get("Message")


class FrameParser:
    """Feed it raw socket chunks; it returns the messages completed by each chunk."""

    def __init__(self, max_line: int = MAX_LINE, max_frame: int = MAX_FRAME) -> None:
        self.max_line = max_line
        self.max_frame = max_frame
        self.banner = ""
        self.errors = 0  # dropped frames, ignored lines, invalid UTF-8: for /metrics
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        # The unfinished frame, kept as read and joined only when it ends, so a read costs its own
        # size however much is held (byte-sized reads of a big frame would otherwise be quadratic).
        self._parts: list[str] = []
        self._held = 0  # characters in _parts
        self._line = 0  # characters after the last LF in _parts: 0 with _held > 0 means it ends in LF
        self._pending_cr = False
        self._skipping = False

    def _decode(self, data: bytes) -> str:
        """Strictly, so that only bytes that are not UTF-8 count as an error; those are decoded again
        with U+FFFD in their place. (A caller name may hold a real U+FFFD, sent as valid UTF-8.)"""
        state = self._decoder.getstate()
        try:
            return self._decoder.decode(data)
        except UnicodeDecodeError:
            self._decoder.setstate(state)
            self._decoder.errors = "replace"
            try:
                text = self._decoder.decode(data)
            finally:
                self._decoder.errors = "strict"
            self.errors += 1
            log.warning("AMI: invalid UTF-8 in input replaced with U+FFFD")
            return text

    def feed(self, data: bytes) -> list[AmiMessage]:
        text = self._decode(data)
        if self._pending_cr:
            text = "\r" + text
        self._pending_cr = text.endswith("\r")
        if self._pending_cr:
            text = text[:-1]
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        if self._skipping:
            text = self._skip(text)
        ends_in_lf = self._held > 0 and self._line == 0
        if "\n\n" not in text and not (ends_in_lf and text.startswith("\n")):
            self._hold(text)
            return []
        frames = ("".join(self._parts) + text if self._parts else text).split("\n\n")
        self._parts, self._held, self._line = [], 0, 0
        self._hold(frames.pop())
        messages = []
        for frame in frames:
            if frame:
                msg = self._parse_frame(frame)
                if msg is not None:
                    messages.append(msg)
        return messages

    def _skip(self, text: str) -> str:
        """Drop text up to and including the next blank line, which ends the bad frame; return the rest."""
        buf = "".join(self._parts) + text  # while skipping, at most the LF that may start a blank line
        self._parts, self._held, self._line = [], 0, 0
        end = buf.find("\n\n")
        if end < 0:
            if buf.endswith("\n"):
                self._parts, self._held = ["\n"], 1
            return ""
        self._skipping = False
        log.info("AMI: resynchronised after a dropped frame")
        return buf[end + 2 :]

    def _hold(self, text: str) -> None:
        """Keep the start of an unfinished frame; drop it as soon as it breaks the line or frame limit."""
        if not text:
            return
        self._parts.append(text)
        self._held += len(text)
        newline = text.rfind("\n")
        self._line = self._line + len(text) if newline < 0 else len(text) - newline - 1
        if self._held - (self._line == 0) > self.max_frame:  # a final LF may start the ending blank line
            self._drop(f"frame over {self.max_frame} bytes")
        elif self._line > self.max_line:
            self._drop(f"line over {self.max_line} bytes")
        else:
            return
        self._skipping = True
        self._parts, self._held = (["\n"], 1) if self._line == 0 else ([], 0)
        self._line = 0

    def _drop(self, reason: str) -> None:
        self.errors += 1
        log.warning("AMI: dropped a message (%s); resynchronising at the next blank line", reason)

    def _parse_frame(self, frame: str) -> AmiMessage | None:
        if frame.startswith("Event:") and len(frame) <= self.max_line and len(frame) <= self.max_frame:
            lines = frame.split("\n")
            if all(map(str.__contains__, lines, repeat(":"))):  # nothing to drop, log or count: split the headers later
                return AmiMessage._unsplit(frame, lines)
        if len(frame) > self.max_frame:
            self._drop(f"frame over {self.max_frame} bytes")
            return None
        headers: list[tuple[str, str]] = []
        banner = ""
        for line in frame.split("\n"):
            if len(line) > self.max_line:
                self._drop(f"line over {self.max_line} bytes")
                return None
            name, colon, value = line.partition(":")
            if colon:
                headers.append((name.strip(), value.removeprefix(" ")))
            elif not headers and line.startswith(BANNER_PREFIX):
                banner = line.strip()  # taken only if the frame is not dropped, as when it is cut short
            elif line.strip():
                self.errors += 1
                log.info("AMI: ignored a line without a colon: %.80r", line)
        if banner:
            self.banner = banner
        return AmiMessage(headers) if headers else None
