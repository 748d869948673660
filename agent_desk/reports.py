"""Supervisor reports from Call rows: per queue, per agent, per day and hour, and the missed calls.

Only inbound calls count. One query fetches the period's calls; the figures are computed
in Python by `figures()`, so SQLite and PostgreSQL give the same numbers and hours fall in
the supervisor's time zone, not the database's. Definitions (per group of calls):

* offered: every inbound call; answered / abandoned / missed: by the call's outcome;
* service level: calls answered within T (20 s) of waiting / (answered + abandoned after
  more than T), in %: a caller who gave up within T is left out, as on the wall
  (routing/live.py), so both screens show the same figure; None when nothing counts;
* ASA: mean wait of answered calls; AHT: mean talk time of answered calls (callcard records
  no hold or wrap-up time); talk time: the sum of talk seconds;
* reviewed: answered calls with a quality review (crm_core.reviews); quality: their mean score.

The pause report is made from the pauses the wall service recorded (`agent_pauses`): per agent,
the seconds paused in the period per desk reason (`other`: a supervisor's own words, or none),
and the number of pauses; a pause still open counts up to now, and a supervisor's `logged out`
is not a pause.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from ami_bridge.tracker import normalize_interface
from crm_core import pause_reasons
from crm_core.agents import LOGGED_OUT, AgentPause
from crm_core.call_log import ENDED_IN_IVR
from crm_core.models import Call, Client, Operator, Request, as_utc, operator_departments, utcnow
from crm_core.reviews import CallReview
from routing.inbox.models import RequestEvent
from routing.inbox.service import AGAIN

SERVICE_LEVEL_SECONDS = 20
REPORTS = ("queues", "agents", "days", "hours", "missed", "pauses")
FIGURE_COLUMNS = ("offered", "answered", "abandoned", "missed", "service_level", "asa", "aht", "talk_time",
                  "reviewed", "quality")
MISSED_COLUMNS = ("started_at", "caller", "client", "queue", "outcome", "wait_seconds", "callback")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Period:
    """Whole days from `first` to `last` inclusive, in `tz`."""

    first: date
    last: date
    tz: tzinfo

    @property
    def start(self) -> datetime:
        """In UTC: SQLite compares stored UTC text and would drop another zone's offset."""
        return datetime.combine(self.first, time(), self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), self.tz).astimezone(UTC)


@dataclass(frozen=True)
class CallFacts:
    """What a report needs of one call."""

    started_at: datetime
    queue: str
    agent: str  # the operator's login, "" when nobody answered
    outcome: str
    wait_seconds: int | None
    talk_seconds: int | None
    score: int | None = None  # its quality review's


@dataclass(frozen=True)
class Figures:
    key: str
    offered: int
    answered: int
    abandoned: int
    missed: int
    service_level: float | None  # %, see the module docstring
    asa: float | None  # seconds
    aht: float | None  # seconds
    talk_time: int  # seconds
    reviewed: int = 0
    quality: float | None = None  # mean score, 1 to 5

    def row(self) -> list[object]:
        return [self.key, *(getattr(self, name) for name in FIGURE_COLUMNS)]


@dataclass(frozen=True)
class MissedCall:
    linkedid: str
    started_at: datetime
    caller: str
    client: str
    queue: str
    outcome: str
    wait_seconds: int | None
    callback: str  # open / done / none

    def row(self, tz: tzinfo) -> list[object]:
        return [self.started_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), self.caller, self.client, self.queue,
                self.outcome, self.wait_seconds, self.callback]


@dataclass(frozen=True)
class PauseFacts:
    agent: str  # login
    reason: str
    started_at: datetime
    ended_at: datetime | None  # None: still paused


@dataclass(frozen=True)
class PauseTimes:
    key: str  # the agent's login, or "total"
    pauses: int
    seconds: dict[str, int]  # per reason column in order: the reasons' codes, then "other"
    paused: int  # seconds, every reason

    def row(self) -> list[object]:
        return [self.key, self.pauses, *self.seconds.values(), self.paused]


def pause_columns(rows: list[PauseTimes]) -> tuple[str, ...]:
    """The report's columns after the agent: a count, the seconds per reason column, their sum."""
    return ("pauses", *rows[-1].seconds, "paused")


def pause_times(pauses: Iterable[PauseFacts], start: datetime, end: datetime,
                codes: Iterable[str]) -> list[PauseTimes]:
    """Seconds paused within [start, end) per agent and reason column (`codes`, then "other" for
    any other words), agents in order, then the total (pure); a pause counts for its agent when
    some of it falls in the period."""
    columns = (*codes, "other")
    per_agent: dict[str, dict[str, int]] = {}
    counts: dict[str, int] = {}
    for pause in pauses:
        if pause.reason == LOGGED_OUT:
            continue
        since, until = max(pause.started_at, start), min(pause.ended_at or end, end)
        if until <= since:
            continue
        column = pause.reason if pause.reason in columns else "other"
        times = per_agent.setdefault(pause.agent, dict.fromkeys(columns, 0))
        times[column] += round((until - since).total_seconds())
        counts[pause.agent] = counts.get(pause.agent, 0) + 1
    rows = [PauseTimes(agent, counts[agent], times, sum(times.values())) for agent, times in sorted(per_agent.items())]
    total = {c: sum(r.seconds[c] for r in rows) for c in columns}
    return rows + [PauseTimes("total", sum(counts.values()), total, sum(total.values()))]


@dataclass(frozen=True)
class Person:
    login: str
    device: str | None  # their phone now, normalised


def pause_facts(session: Session, start: datetime, end: datetime, people: dict[int, Person]) -> list[PauseFacts]:
    """The pauses overlapping [start, end) of `people` (by operator id): those stored as theirs, and
    those of their present device that no operator was stored for."""
    devices = {p.device: op_id for op_id, p in people.items() if p.device}
    rows = session.execute(
        select(AgentPause.operator_id, AgentPause.interface, AgentPause.reason, AgentPause.started_at,
               AgentPause.ended_at)
        .where(AgentPause.operator_id.in_(people)
               | (AgentPause.operator_id.is_(None) & AgentPause.interface.in_(devices)),
               AgentPause.started_at < end, AgentPause.ended_at.is_(None) | (AgentPause.ended_at > start))
        .order_by(AgentPause.started_at))
    return [PauseFacts(people[op_id if op_id is not None else devices[device]].login, reason, as_utc(started),
                       as_utc(ended) if ended is not None else None)
            for op_id, device, reason, started, ended in rows]


def pause_people(session: Session, departments: Collection[int] | None = None) -> dict[int, Person]:
    """Every operator, or those of `departments` (a department head's), for `pause_facts`."""
    people = select(Operator.id, Operator.login, Operator.interface)
    if departments is not None:
        people = people.where(Operator.id.in_(select(operator_departments.c.operator_id).where(
            operator_departments.c.department_id.in_(departments))))
    return {op_id: Person(login, normalize_interface(interface) if interface else None)
            for op_id, login, interface in session.execute(people)}


def pause_report(session: Session, period: Period, now: datetime,
                 departments: Collection[int] | None = None) -> list[PauseTimes]:
    """Up to `now`, of the agents of `departments` when given (a department head's); a column for
    each reason in use, and for a switched-off one that was used in the period."""
    end = min(period.end, now)
    facts = pause_facts(session, period.start, end, pause_people(session, departments))
    used = {f.reason for f in facts}
    codes = [r.code for r in pause_reasons.load(session) if r.active or r.code in used]
    return pause_times(facts, period.start, end, codes)


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def figures(key: str, calls: Iterable[CallFacts], threshold: int = SERVICE_LEVEL_SECONDS) -> Figures:
    """The figures of one group of calls (pure)."""
    calls = list(calls)
    answered = [c for c in calls if c.outcome == "answered"]
    waits = [c.wait_seconds or 0 for c in answered]
    talks = [c.talk_seconds or 0 for c in answered]
    in_time = sum(1 for w in waits if w <= threshold)
    late_abandons = sum(1 for c in calls if c.outcome == "abandoned" and (c.wait_seconds or 0) > threshold)
    counted = len(answered) + late_abandons
    scores = [c.score for c in answered if c.score is not None]
    return Figures(
        key=key,
        offered=len(calls),
        answered=len(answered),
        abandoned=sum(1 for c in calls if c.outcome == "abandoned"),
        missed=sum(1 for c in calls if c.outcome == "missed"),
        service_level=round(100 * in_time / counted, 1) if counted else None,
        asa=_mean(waits),
        aht=_mean(talks),
        talk_time=sum(talks),
        reviewed=len(scores),
        quality=_mean(scores),
    )


def grouped(calls: Sequence[CallFacts], key: Callable[[CallFacts], str]) -> list[Figures]:
    """Figures per key, keys in order, plus a last row `total` over every call."""
    groups: dict[str, list[CallFacts]] = {}
    for call in calls:
        groups.setdefault(key(call), []).append(call)
    return [figures(k, groups[k]) for k in sorted(groups)] + [figures("total", calls)]


def call_facts(session: Session, period: Period, queues: Collection[str] | None = None) -> list[CallFacts]:
    """The period's ended inbound calls, but those the IVR served (no call for an agent); only
    those of `queues` when given (a department head's)."""
    query = (
        select(Call.started_at, Call.queue, Operator.login, Call.outcome, Call.wait_seconds, Call.talk_seconds,
               CallReview.score)
        .outerjoin(Operator, Operator.id == Call.operator_id)
        .outerjoin(CallReview, CallReview.call_id == Call.id)
        .where(Call.direction == "inbound", Call.status == "ended", Call.outcome != ENDED_IN_IVR,
               Call.started_at >= period.start, Call.started_at < period.end)
        .order_by(Call.started_at)
    )
    if queues is not None:
        query = query.where(Call.queue.in_(queues))
    rows = session.execute(query).all()
    return [CallFacts(as_utc(r[0]), r[1], r[2] or "", r[3] or "", r[4], r[5], r[6]) for r in rows]


def report(session: Session, name: str, period: Period, queues: Collection[str] | None = None) -> list[Figures]:
    """One of the figure reports: queues, agents, days or hours (of `queues` only, when given)."""
    calls = call_facts(session, period, queues)
    keys: dict[str, Callable[[CallFacts], str]] = {
        "queues": lambda c: c.queue or "—",
        "agents": lambda c: c.agent,
        "days": lambda c: c.started_at.astimezone(period.tz).strftime("%Y-%m-%d"),
        "hours": lambda c: c.started_at.astimezone(period.tz).strftime("%Y-%m-%d %H:00"),
    }
    if name == "agents":  # calls nobody answered belong to no agent
        calls = [c for c in calls if c.agent]
    return grouped(calls, keys[name])


def callback_status(request_status: str | None) -> str:
    """The callback Request of a missed call: none, open (open or in progress), done (closed)."""
    if request_status is None:
        return "none"
    return "done" if request_status == "closed" else "open"


def missed_calls(session: Session, period: Period, limit: int = 1000,
                 queues: Collection[str] | None = None) -> list[MissedCall]:
    """Abandoned and missed inbound calls, newest first, with their callback's status: the call's own
    callback, or the one already open for the number that it joined (an `again` event)."""
    joined = aliased(Request)
    query = (
        select(Call.linkedid, Call.started_at, Call.caller_e164, Call.caller_raw, Client.name, Call.queue,
               Call.outcome, Call.wait_seconds, func.coalesce(Request.status, joined.status))
        .outerjoin(Client, Client.id == Call.client_id)
        .outerjoin(Request, Request.linkedid == Call.linkedid)
        .outerjoin(RequestEvent, (RequestEvent.kind == AGAIN) & (RequestEvent.value == Call.linkedid))
        .outerjoin(joined, joined.id == RequestEvent.request_id)
        .where(Call.direction == "inbound", Call.outcome.in_(("abandoned", "missed")),
               Call.started_at >= period.start, Call.started_at < period.end)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
    )
    if queues is not None:
        query = query.where(Call.queue.in_(queues))
    rows = session.execute(query).all()
    return [MissedCall(r[0], as_utc(r[1]), r[2] or r[3], r[4] or "", r[5], r[6], r[7], callback_status(r[8]))
            for r in rows]


def safe_cell(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 with a BOM (Excel then reads Cyrillic right), CRLF, quoted where needed, formula-safe."""
    return b"".join(csv_chunks(header, rows))


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[object]], per_chunk: int = 1000) -> Iterator[bytes]:
    """`to_csv` in pieces of `per_chunk` rows, for a streamed download of any size."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    out.write("\ufeff")
    writer.writerow(header)
    for count, row in enumerate(rows, 1):
        writer.writerow([safe_cell(v) for v in row])
        if count % per_chunk == 0:
            yield _drained(out)
    yield _drained(out)


def _drained(out: io.StringIO) -> bytes:
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text.encode("utf-8")


def export(session: Session, name: str, period: Period, queues: Collection[str] | None = None,
           departments: Collection[int] | None = None) -> bytes:
    """The CSV of one report; the pause report is of `departments`' agents when given."""
    if name == "pauses":
        rows = pause_report(session, period, utcnow(), departments)
        return to_csv(("agent", *pause_columns(rows)), (p.row() for p in rows))
    if name == "missed":
        return to_csv(MISSED_COLUMNS, (m.row(period.tz) for m in missed_calls(session, period, queues=queues)))
    return to_csv((name.rstrip("s"), *FIGURE_COLUMNS), (f.row() for f in report(session, name, period, queues)))
