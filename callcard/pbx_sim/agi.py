"""The simulated channel's side of FastAGI: the `agi_*` environment and Asterisk's command replies.

Pure: `AgiLeg.execute` takes the simulated time a command arrives and returns what Asterisk
would answer, when, and the AMI events around it. The caller's key presses are a script of
(absolute simulated time, digit); a prompt takes `PROMPT_SECONDS` to play.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callcard.pbx_sim import messages as m
from callcard.pbx_sim.messages import Message

if TYPE_CHECKING:
    from callcard.pbx_sim.model import Channel

PROMPT_SECONDS = 2.0
ENDPOS_PER_SECOND = 8000  # 8 kHz samples, as endpos counts them
DEAD_CHANNEL = "511 Command Not Permitted on a dead channel or intercept routine"
# The recording's environment keys, in Asterisk 22's order.
ENV_KEYS = ("network", "network_script", "request", "channel", "language", "type", "uniqueid", "version",
            "callerid", "calleridname", "callingpres", "callingani2", "callington", "callingtns", "dnid",
            "rdnis", "context", "extension", "priority", "enhanced", "accountcode", "threadid")


def key_script(dtmf: str | Sequence[tuple[float, str]], start: float) -> list[tuple[float, str]]:
    """Absolute key press times: a string is one digit per second; pairs are (delay after the
    previous press, digits pressed together)."""
    steps = [(1.0, d) for d in dtmf] if isinstance(dtmf, str) else list(dtmf)
    keys, at = [], start
    for delay, digits in steps:
        at += delay
        keys += [(at, d) for d in digits]
    return keys


@dataclass(frozen=True)
class AgiStep:
    """Asterisk's answer to one command: reply lines sent at simulated time `at`."""

    reply: list[str]
    at: float
    start_events: list[Message] = field(default_factory=list)
    end_events: list[Message] = field(default_factory=list)
    hangup: bool = False  # the AGI asked the PBX to hang the channel up


@dataclass
class AgiLeg:
    """One channel running AGI(): its request URL, the caller's keys and patience."""

    request: str
    did: str
    keys: list[tuple[float, str]]
    give_up_at: float
    thread_id: int
    command_ids: int = 0
    hangup_sent: bool = False

    def environment(self, ch: Channel) -> bytes:
        values = {
            "network": "yes", "network_script": self.request.split("/", 3)[-1], "request": self.request,
            "channel": ch.name, "language": "en", "type": ch.name.split("/", 1)[0], "uniqueid": ch.uniqueid,
            "version": "22.10.1", "callerid": ch.cid_num, "calleridname": ch.cid_name, "callingpres": "0",
            "callingani2": "0", "callington": "0", "callingtns": "0", "dnid": self.did or "unknown",
            "rdnis": "unknown", "context": ch.context, "extension": ch.exten, "priority": str(ch.priority),
            "enhanced": "0.0", "accountcode": "", "threadid": str(self.thread_id),
        }
        return "".join(f"agi_{k}: {values[k]}\n" for k in ENV_KEYS).encode() + b"\n"

    def dead(self) -> list[str]:
        """Replies on a hung-up channel: one HANGUP notice first, then 511 for every command."""
        lines = [] if self.hangup_sent else ["HANGUP"]
        self.hangup_sent = True
        return lines + [DEAD_CHANNEL]

    def execute(self, ch: Channel, now: float, command: str) -> AgiStep:
        self.command_ids += 1
        cid = str(278458939 + self.command_ids)
        start = [m.agi_exec(ch, "AGIExecStart", cid, command)]
        reply, at, vars_set, hangup = self._answer(ch, now, command)
        if at >= self.give_up_at:  # the caller hangs up while this command runs
            reply, at, vars_set = "200 result=-1", self.give_up_at, []
        code = reply.split(" ", 1)[0]
        end = [m.var_set(ch, k, v) for k, v in vars_set]
        end.append(m.agi_exec(ch, "AGIExecEnd", cid, command, code, "Success" if code == "200" else "Failure"))
        return AgiStep([reply], at, start, end, hangup)

    def _answer(self, ch: Channel, now: float, command: str) -> tuple[str, float, list[tuple[str, str]], bool]:
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        upper = [w.upper() for w in words[:3]]
        args = words[len(upper):]
        match upper:
            case ["GET", "FULL", "VARIABLE"]:
                return f"200 result=1 ({self._expand(ch, args[0] if args else '')})", now, [], False
            case ["GET", "VARIABLE", *_]:
                name = words[2] if len(words) > 2 else ""
                value = ch.variables.get(name)
                return ("200 result=0" if value is None else f"200 result=1 ({value})"), now, [], False
            case ["SET", "VARIABLE", *_] if len(words) >= 4:
                ch.variables[words[2]] = words[3]
                return "200 result=1", now, [(words[2], words[3])], False
            case ["STREAM", "FILE", *_] if len(words) >= 3:
                escape = words[3] if len(words) > 3 else ""
                key = self._press(now, now + PROMPT_SECONDS, escape)
                if key is None:
                    return f"200 result=0 endpos={int(PROMPT_SECONDS * ENDPOS_PER_SECOND)}", \
                        now + PROMPT_SECONDS, [], False
                at, digit = key
                return f"200 result={ord(digit)} endpos={int((at - now) * ENDPOS_PER_SECOND)}", at, [], False
            case ["GET", "DATA", *_] if len(words) >= 3:
                timeout = int(words[3]) / 1000 if len(words) > 3 else 6.0
                return self._get_data(now, timeout, int(words[4]) if len(words) > 4 else 1024)
            case ["WAIT", "FOR", "DIGIT"]:
                timeout = int(args[0]) / 1000 if args and int(args[0]) >= 0 else self.give_up_at - now
                key = self._press(now, now + timeout, "0123456789*#")
                if key is None:
                    return "200 result=0", now + timeout, [], False
                return f"200 result={ord(key[1])}", key[0], [], False
            case ["EXEC", *_] if len(words) >= 2:
                app = words[1].lower()
                if app in ("playback", "background"):
                    key = self._press(now, now + PROMPT_SECONDS, "0123456789*#") if app == "background" else None
                    return "200 result=0", key[0] if key else now + PROMPT_SECONDS, \
                        [("PLAYBACKSTATUS", "SUCCESS")] if app == "playback" else [], False
                return "200 result=0", now, [], False
            case ["CHANNEL", "STATUS", *_]:
                return f"200 result={ch.state}", now, [], False
            case ["HANGUP", *_]:
                return "200 result=1", now, [], True
            case ["VERBOSE", *_] | ["ANSWER", *_]:
                return "200 result=1" if upper[0] == "VERBOSE" else "200 result=0", now, [], False
            case ["NOOP", *_]:
                return "200 result=0", now, [], False
        return "510 Invalid or unknown command", now, [], False

    def _press(self, start: float, end: float, escape: str) -> tuple[float, str] | None:
        """The first key pressed by `end` (buffered keys count from `start`), consumed."""
        for i, (at, digit) in enumerate(self.keys):
            if at <= end and digit in escape:
                del self.keys[i]
                return max(at, start), digit
            if at > end:
                break
        return None

    def _get_data(self, now: float, timeout: float, max_digits: int) -> tuple[str, float, list[tuple[str, str]], bool]:
        digits, deadline = "", now + PROMPT_SECONDS + timeout
        while len(digits) < max_digits:
            key = self._press(now, deadline, "0123456789*#")
            if key is None:
                return f"200 result={digits} (timeout)", deadline, [], False
            now, digit = key
            if digit == "#":
                break
            digits += digit
            deadline = now + timeout
        return f"200 result={digits}", now, [], False

    @staticmethod
    def _expand(ch: Channel, expression: str) -> str:
        known = {"${CHANNEL(linkedid)}": ch.linkedid, "${CHANNEL(uniqueid)}": ch.uniqueid,
                 "${CALLERID(num)}": ch.cid_num, "${CALLERID(name)}": ch.cid_name}
        if expression in known:
            return known[expression]
        if expression.startswith("${") and expression.endswith("}"):
            return ch.variables.get(expression[2:-1], "")
        return expression
