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
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.models import Call, Client, Operator, Request, as_utc
from crm_core.reviews import CallReview

SERVICE_LEVEL_SECONDS = 20
REPORTS = ("queues", "agents", "days", "hours", "missed")
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
    """The period's ended inbound calls; only those of `queues` when given (a department head's)."""
    query = (
        select(Call.started_at, Call.queue, Operator.login, Call.outcome, Call.wait_seconds, Call.talk_seconds,
               CallReview.score)
        .outerjoin(Operator, Operator.id == Call.operator_id)
        .outerjoin(CallReview, CallReview.call_id == Call.id)
        .where(Call.direction == "inbound", Call.status == "ended", Call.started_at >= period.start,
               Call.started_at < period.end)
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
    """Abandoned and missed inbound calls, newest first, with their callback's status."""
    query = (
        select(Call.linkedid, Call.started_at, Call.caller_e164, Call.caller_raw, Client.name, Call.queue,
               Call.outcome, Call.wait_seconds, Request.status)
        .outerjoin(Client, Client.id == Call.client_id)
        .outerjoin(Request, Request.linkedid == Call.linkedid)
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


def export(session: Session, name: str, period: Period, queues: Collection[str] | None = None) -> bytes:
    """The CSV of one report."""
    if name == "missed":
        return to_csv(MISSED_COLUMNS, (m.row(period.tz) for m in missed_calls(session, period, queues=queues)))
    return to_csv((name.rstrip("s"), *FIGURE_COLUMNS), (f.row() for f in report(session, name, period, queues)))
