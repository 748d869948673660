"""The menu engine: a pure state machine that turns AGI results into the next IVR step.

It never awaits and never touches the database: the FastAGI handler feeds it the result of
each command it asked for and performs the step it returns, until an `Outcome`. The menus
and the departments' open/closed state arrive as a frozen `IvrPlan`, read once per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ivr.agi import AgiResult

DIGITS = "0123456789*#"
CALLBACK_PROMPT = "callcard/ivr-callback"  # "we will call you back"
# The last step of a stored path when the IVR ended the call itself, with a goodbye: the caller was
# answered (a callback promised, the closed department's message, a blocked number turned away), so
# the call is no missed call for the follow-up rules to ring back.
IVR_ENDINGS = ("callback", "voicemail", "rejected")


@dataclass(frozen=True)
class OptionSpec:
    """What a digit does; `target` is a department code (department/callback) or a menu name (menu)."""

    action: str
    target: str = ""
    priority: int = 0


@dataclass(frozen=True)
class MenuSpec:
    name: str
    greeting: str
    invalid_prompt: str
    timeout_seconds: int
    max_retries: int
    fallback_queue: str
    options: Mapping[str, OptionSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class DepartmentSpec:
    code: str
    queue: str
    open: bool = True
    after_hours: str = "callback"  # callback / voicemail
    voicemail_prompt: str = "callcard/ivr-closed"


@dataclass(frozen=True)
class IvrPlan:
    entry: str
    menus: Mapping[str, MenuSpec]
    departments: Mapping[str, DepartmentSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class Say:
    """Play a prompt the caller may interrupt with a digit (AGI STREAM FILE)."""

    prompt: str

    def command(self) -> str:
        return f'STREAM FILE {self.prompt} "{DIGITS}"'


@dataclass(frozen=True)
class Ask:
    """Play a prompt and wait for one digit (AGI GET DATA)."""

    prompt: str
    timeout_ms: int

    def command(self) -> str:
        return f"GET DATA {self.prompt} {self.timeout_ms} 1"


@dataclass(frozen=True)
class Outcome:
    """Where the call goes: `queue`, `callback` (a request is created), `voicemail` or `hangup`."""

    kind: str
    path: str
    queue: str = ""
    department: str = ""
    priority: int = 0
    prompt: str = ""


Step = Say | Ask | Outcome


def without_callback(outcome: Outcome, department: DepartmentSpec | None) -> Outcome:
    """A callback for a caller whose number is withheld, which nobody could ring: the caller goes
    to the department's queue while it is open, else hears its closed message."""
    path = f"{outcome.path}>withheld"
    if department is not None and department.open:
        return Outcome("queue", path, queue=department.queue, department=department.code)
    prompt = department.voicemail_prompt if department is not None else DepartmentSpec.voicemail_prompt
    return Outcome("voicemail", f"{path}>voicemail", department=outcome.department, prompt=prompt)


def ended_by_ivr(path: str) -> bool:
    """Whether a stored path (`Call.ivr_path`) is one the IVR ended itself (IVR_ENDINGS)."""
    return path.rpartition(">")[2] in IVR_ENDINGS


def after_hours(path: str, department: DepartmentSpec) -> Outcome:
    """What a closed department does with a caller: its voicemail prompt, or a callback request."""
    if department.after_hours == "voicemail":
        return Outcome("voicemail", f"{path}>voicemail", department=department.code,
                       prompt=department.voicemail_prompt)
    return Outcome("callback", f"{path}>callback", department=department.code, prompt=CALLBACK_PROMPT)


class MenuEngine:
    """One caller's walk through the menus; `start()` then `feed(result)` until an `Outcome`."""

    def __init__(self, plan: IvrPlan) -> None:
        self._plan = plan
        self._menu = plan.menus[plan.entry]
        self._path = [self._menu.name]
        self._attempts = 0
        self._step: Step | None = None

    @property
    def path(self) -> str:
        return ">".join(self._path)

    def start(self) -> Step:
        return self._do(self._ask())

    def feed(self, result: AgiResult) -> Step:
        """The AGI result of the command of the current step."""
        if result.result == "-1" or result.code != 200:
            return self.hangup()
        if isinstance(self._step, Say):
            code = int(result.result) if result.result.lstrip("-").isdigit() else 0
            return self._do(self._choose(chr(code)) if code > 0 else self._ask())
        digits = result.result
        return self._do(self._choose(digits[0]) if digits else self._retry(self._ask()))

    def hangup(self) -> Outcome:
        """The caller hung up before an outcome."""
        return self._do(Outcome("hangup", self._walk("hangup")))

    def _do(self, step: Step) -> Step:
        self._step = step
        return step

    def _ask(self) -> Ask:
        return Ask(self._menu.greeting, self._menu.timeout_seconds * 1000)

    def _walk(self, *steps: str) -> str:
        self._path += steps
        return self.path

    def _retry(self, again: Step) -> Step:
        """A timeout or a wrong digit: repeat up to `max_retries` times, then the operator queue."""
        self._attempts += 1
        if self._attempts > self._menu.max_retries:
            return Outcome("queue", self._walk("fallback"), queue=self._menu.fallback_queue)
        return again

    def _choose(self, digit: str) -> Step:
        option = self._menu.options.get(digit)
        if option is None or not self._valid(option):
            return self._retry(Say(self._menu.invalid_prompt))
        if option.action == "menu":
            self._menu = self._plan.menus[option.target]
            self._attempts = 0
            self._walk(digit, self._menu.name)
            return self._ask()
        if option.action == "operator":
            return Outcome("queue", self._walk(digit, "operator"), queue=self._menu.fallback_queue,
                           priority=option.priority)
        if option.action == "callback":
            return Outcome("callback", self._walk(digit, "callback"), department=option.target,
                           prompt=CALLBACK_PROMPT)
        department = self._plan.departments[option.target]
        self._walk(digit, department.code)
        if department.open:
            return Outcome("queue", self.path, queue=department.queue, department=department.code,
                           priority=option.priority)
        closed = after_hours(self.path, department)
        self._walk(closed.kind)
        return closed

    def _valid(self, option: OptionSpec) -> bool:
        if option.action == "menu":
            return option.target in self._plan.menus
        if option.action == "department":
            return option.target in self._plan.departments
        return option.action in ("operator", "callback")
