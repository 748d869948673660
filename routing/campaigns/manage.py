"""Setting campaigns up and watching them: the form's validation, status changes, live figures,
the skipped-numbers report and the operators' ready flags.

The pages in `routing.campaigns.http` only translate and render; every rule lives here, so a
bad form is refused with every problem named at once (`CampaignFormError`) and nothing is saved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from crm_core.models import OPEN_DEBT_STATUSES, Client, Debt, Department, Operator, as_utc
from routing import compliance, pacing
from routing.campaigns.lists import FilterError, check_filters, refresh_list
from routing.campaigns.models import Campaign, CampaignDebt, CampaignOperator, DialAttempt, DialSkip
from routing.campaigns.retry import DEFAULT_RETRY, RetryRulesError, retry_rules

MAX_LINES = 500
RING_SECONDS = (10, 120)
MAX_DAYS = 100_000
MAX_TOTAL = Decimal("999999999999.99")
MAX_DELAY_MINUTES = 30 * 24 * 60
MAX_ATTEMPTS = 100
MAX_SCRIPT = 20_000
MAX_REGIONS = 200
CALLER_ID = re.compile(r"^\+?[0-9]{2,20}$")
CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
ABANDON_WINDOW = timedelta(days=30)
ABANDON_LIMIT = 0.03  # the law's and the industry's ceiling: 3 % of live-answered calls
# action -> (the statuses it may leave, the status it sets)
STATUS_CHANGES: Mapping[str, tuple[tuple[str, ...], str]] = {
    "start": (("draft", "paused"), "running"),
    "pause": (("running",), "paused"),
    "finish": (("draft", "running", "paused"), "finished"),
}


@dataclass(frozen=True)
class FormProblem:
    """One thing wrong with the form: the field, and `key`/`values` for the message in the page's language."""

    field: str
    key: str
    values: Mapping[str, object] = field(default_factory=dict)


class CampaignFormError(ValueError):
    """The campaign form has problems; all of them, so the supervisor fixes them in one go."""

    def __init__(self, problems: Sequence[FormProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.key}" for p in problems))
        self.problems = list(problems)


class StatusChangeError(ValueError):
    """The campaign cannot go that way from its status (a finished campaign stays finished)."""

    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"cannot {action} a {status} campaign")
        self.action = action
        self.status = status


class NotAssigned(LookupError):
    """The operator is not one of the campaign's operators."""


@dataclass(frozen=True)
class CampaignSpec:
    """A validated campaign form, ready to be stored."""

    name: str
    rule_set: str
    mode: str
    caller_id: str
    max_lines: int
    ring_seconds: int
    filters: dict[str, Any]
    schedule: dict[str, Any]
    retry: dict[str, dict[str, int]]
    script: str
    department_id: int | None
    operator_ids: tuple[int, ...]

    def stored(self) -> dict[str, Any]:
        """The campaign's own columns, JSON-safe (also what the audit log keeps)."""
        return {"name": self.name, "rule_set": self.rule_set, "mode": self.mode, "caller_id": self.caller_id,
                "max_lines": self.max_lines, "ring_seconds": self.ring_seconds, "filters": self.filters,
                "schedule": self.schedule, "retry": self.retry, "script": self.script,
                "department_id": self.department_id}


class _Form:
    """Reads one submitted form, collecting problems instead of stopping at the first."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: list[FormProblem] = []

    def raw(self, name: str) -> str:
        value = self.data.get(name)
        if isinstance(value, list):
            value = value[0] if value else ""
        return str(value or "")

    def text(self, name: str) -> str:
        return self.raw(name).strip()

    def texts(self, name: str) -> list[str]:
        value = self.data.get(name)
        if value is None:
            return []
        return [str(v).strip() for v in (value if isinstance(value, list) else [value]) if str(v).strip()]

    def wrong(self, name: str, key: str, **values: object) -> None:
        self.problems.append(FormProblem(name, key, values))

    def whole(self, name: str, low: int, high: int, *, optional: bool = False) -> int | None:
        text = self.text(name)
        if not text and optional:
            return None
        if not text.isdigit() or not low <= int(text) <= high:
            self.wrong(name, "campaign.err.range", low=low, high=high)
            return None
        return int(text)

    def amount(self, name: str) -> Decimal | None:
        text = self.text(name).replace(" ", "").replace(",", ".")
        if not text:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = Decimal(-1)
        if not value.is_finite() or value < 0 or value > MAX_TOTAL or value != value.quantize(Decimal("0.01")):
            self.wrong(name, "campaign.err.amount")
            return None
        return value.quantize(Decimal("0.01"))


def read_form(data: Mapping[str, Any]) -> CampaignSpec:
    """The submitted campaign form (field -> text, or a list for repeated fields), validated.

    Raises CampaignFormError naming every problem; database checks (a taken name, a department or
    operator that does not exist) are `save_campaign`'s.
    """
    form = _Form(data)
    name = form.text("name")
    if not name:
        form.wrong("name", "campaign.err.name_required")
    elif len(name) > 128:
        form.wrong("name", "campaign.err.too_long", max=128)
    rule_set, mode = form.text("rule_set"), form.text("mode")
    if rule_set not in compliance.RULE_SETS:
        form.wrong("rule_set", "campaign.err.choice")
    if mode not in pacing.MODES:
        form.wrong("mode", "campaign.err.choice")
    caller_id = form.text("caller_id").replace(" ", "").replace("-", "")
    if caller_id and not CALLER_ID.match(caller_id):
        form.wrong("caller_id", "campaign.err.caller_id")
    max_lines = form.whole("max_lines", 1, MAX_LINES)
    ring_seconds = form.whole("ring_seconds", *RING_SECONDS)
    filters = _filters(form)
    schedule = _schedule(form)
    retry = _retry(form)
    script = form.raw("script").replace("\r\n", "\n")
    if len(script) > MAX_SCRIPT:
        form.wrong("script", "campaign.err.too_long", max=MAX_SCRIPT)
    department = form.text("department_id")
    if department and not department.isdigit():
        form.wrong("department_id", "campaign.err.choice")
    operators = form.texts("operators")
    if any(not op.isdigit() for op in operators):
        form.wrong("operators", "campaign.err.choice")
    if form.problems:
        raise CampaignFormError(form.problems)
    assert max_lines is not None and ring_seconds is not None
    return CampaignSpec(
        name=name, rule_set=rule_set, mode=mode, caller_id=caller_id, max_lines=max_lines,
        ring_seconds=ring_seconds, filters=filters, schedule=schedule, retry=retry, script=script,
        department_id=int(department) if department else None,
        operator_ids=tuple(sorted({int(op) for op in operators})))


def _filters(form: _Form) -> dict[str, Any]:
    min_days = form.whole("min_days", 0, MAX_DAYS, optional=True)
    max_days = form.whole("max_days", 0, MAX_DAYS, optional=True)
    if min_days is not None and max_days is not None and min_days > max_days:
        form.wrong("max_days", "campaign.err.order")
    min_total, max_total = form.amount("min_total"), form.amount("max_total")
    if min_total is not None and max_total is not None and min_total > max_total:
        form.wrong("max_total", "campaign.err.order")
    regions = [r for r in (part.strip() for part in re.split(r"[,\n;]", form.text("regions"))) if r]
    if len(regions) > MAX_REGIONS or any(len(r) > 128 for r in regions):
        form.wrong("regions", "campaign.err.regions", max=MAX_REGIONS)
    statuses = form.texts("statuses")
    if any(s not in OPEN_DEBT_STATUSES for s in statuses):
        form.wrong("statuses", "campaign.err.choice")
    filters: dict[str, Any] = {
        "min_days": min_days, "max_days": max_days,
        "min_total": None if min_total is None else str(min_total),
        "max_total": None if max_total is None else str(max_total),
        "regions": list(dict.fromkeys(regions)), "statuses": [s for s in OPEN_DEBT_STATUSES if s in statuses],
    }
    filters = {key: value for key, value in filters.items() if value not in (None, [])}
    try:
        check_filters(filters)  # the list's own reading of them must agree
    except FilterError as exc:
        form.wrong("filters", "campaign.err.filters", error=str(exc))
    return filters


def _schedule(form: _Form) -> dict[str, Any]:
    weekdays = form.texts("weekdays")
    days = sorted({int(d) for d in weekdays if d.isdigit() and int(d) < 7})
    if not days or len(days) != len(set(weekdays)):
        form.wrong("weekdays", "campaign.err.weekdays")
    start, end = form.text("start"), form.text("end")
    if not CLOCK.match(start) or not CLOCK.match(end) or start >= end:
        form.wrong("end", "campaign.err.hours")
    zone = form.text("time_zone")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        form.wrong("time_zone", "campaign.err.time_zone", zone=zone[:64])
    return {"weekdays": days, "start": start, "end": end, "time_zone": zone}


def _retry(form: _Form) -> dict[str, dict[str, int]]:
    rules: dict[str, dict[str, int]] = {}
    for outcome in DEFAULT_RETRY:
        delay = form.whole(f"retry_{outcome}_delay", 1, MAX_DELAY_MINUTES)
        attempts = form.whole(f"retry_{outcome}_max", 1, MAX_ATTEMPTS)
        if delay is not None and attempts is not None:
            rules[outcome] = {"delay_minutes": delay, "max_attempts": attempts}
    try:
        return retry_rules(rules)  # the rules' own check has the last word
    except RetryRulesError as exc:
        form.wrong("retry", "campaign.err.filters", error=str(exc))
        return rules


def form_values(campaign: Campaign | None) -> dict[str, Any]:
    """What the form shows: the campaign's settings, or a new campaign's defaults, as form fields."""
    if campaign is None:
        filters: dict[str, Any] = {"statuses": ["active"]}
        schedule: dict[str, Any] = {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "20:00",
                                    "time_zone": "Europe/Moscow"}
        values: dict[str, Any] = {"name": "", "rule_set": "ru_230fz", "mode": "progressive", "caller_id": "",
                                  "max_lines": 10, "ring_seconds": 30, "script": "", "department_id": "",
                                  "operators": []}
        retry = retry_rules(None)
    else:
        filters, schedule, retry = campaign.filters or {}, campaign.schedule or {}, retry_rules(campaign.retry)
        values = {"name": campaign.name, "rule_set": campaign.rule_set, "mode": campaign.mode,
                  "caller_id": campaign.caller_id, "max_lines": campaign.max_lines,
                  "ring_seconds": campaign.ring_seconds, "script": campaign.script,
                  "department_id": "" if campaign.department_id is None else str(campaign.department_id),
                  "operators": [str(op.id) for op in campaign.operators]}
    values.update({
        "min_days": filters.get("min_days", ""), "max_days": filters.get("max_days", ""),
        "min_total": filters.get("min_total", ""), "max_total": filters.get("max_total", ""),
        "regions": ", ".join(filters.get("regions", [])), "statuses": list(filters.get("statuses", [])),
        "weekdays": [str(d) for d in schedule.get("weekdays", [])], "start": schedule.get("start", ""),
        "end": schedule.get("end", ""), "time_zone": schedule.get("time_zone", ""),
    })
    for outcome, rule in retry.items():
        values[f"retry_{outcome}_delay"] = rule["delay_minutes"]
        values[f"retry_{outcome}_max"] = rule["max_attempts"]
    return {key: (str(value) if isinstance(value, int) else value) for key, value in values.items()}


def submitted_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """A refused form shown back exactly as it was typed, so nothing is lost."""
    repeated = ("statuses", "weekdays", "operators")
    values = {key: (list(value) if isinstance(value, list) else [value]) if key in repeated
              else (value[0] if isinstance(value, list) and value else value) for key, value in data.items()}
    for key in repeated:
        values.setdefault(key, [])
    return values


def save_campaign(session: Session, spec: CampaignSpec, campaign_id: int | None) -> tuple[Campaign, dict[str, Any]]:
    """Create or update a campaign and its operators; returns it with its settings before (for the audit).

    An operator who stays on the campaign keeps their ready flag; a removed one loses it with the row.
    """
    problems = []
    taken = session.scalar(select(Campaign.id).where(Campaign.name == spec.name))
    if taken is not None and taken != campaign_id:
        problems.append(FormProblem("name", "campaign.err.name_taken"))
    if spec.department_id is not None and session.get(Department, spec.department_id) is None:
        problems.append(FormProblem("department_id", "campaign.err.choice"))
    known = set(session.scalars(select(Operator.id).where(  # a campaign call rings the operator's phone
        Operator.id.in_(spec.operator_ids), Operator.active.is_(True), Operator.interface.is_not(None))))
    if known != set(spec.operator_ids):
        problems.append(FormProblem("operators", "campaign.err.choice"))
    campaign = session.get(Campaign, campaign_id) if campaign_id is not None else None
    if campaign_id is not None and campaign is None:
        raise LookupError(f"no campaign {campaign_id}")
    if problems:
        raise CampaignFormError(problems)
    before: dict[str, Any] = {}
    if campaign is None:
        campaign = Campaign(status="draft")
        session.add(campaign)
    else:
        before = {**{key: getattr(campaign, key) for key in spec.stored()},
                  "operators": sorted(op.id for op in campaign.operators)}
    for key, value in spec.stored().items():
        setattr(campaign, key, value)
    session.flush()
    links = {link.operator_id: link for link in session.scalars(
        select(CampaignOperator).where(CampaignOperator.campaign_id == campaign.id))}
    for operator_id, link in links.items():
        if operator_id not in spec.operator_ids:
            session.delete(link)
    for operator_id in spec.operator_ids:
        if operator_id not in links:
            session.add(CampaignOperator(campaign_id=campaign.id, operator_id=operator_id, ready=False))
    session.flush()
    session.expire(campaign, ["operators"])
    return campaign, before


def change_status(session: Session, campaign: Campaign, action: str, now: datetime) -> int | None:
    """Start, pause or finish; starting builds the list (returns its size). Finishing clears ready flags."""
    if action not in STATUS_CHANGES:
        raise StatusChangeError(action, campaign.status)
    leaves, status = STATUS_CHANGES[action]
    if campaign.status not in leaves:
        raise StatusChangeError(action, campaign.status)
    campaign.status = status
    if status == "finished":
        session.execute(update(CampaignOperator).where(CampaignOperator.campaign_id == campaign.id)
                        .values(ready=False))
    if status == "running":
        return refresh_list(session, campaign, now)
    return None


@dataclass(frozen=True)
class Figures:
    """A campaign at a glance: its list and today's calls (the centre's day), abandons over 30 days."""

    listed: int = 0  # on the list and not excluded
    pending: int = 0  # still to be dialled
    dialled_today: int = 0
    answered_today: int = 0  # the debtor picked up
    connected_today: int = 0  # an operator talked to them
    live_answers_30d: int = 0
    abandoned_30d: int = 0

    @property
    def abandon_rate(self) -> float:
        return self.abandoned_30d / self.live_answers_30d if self.live_answers_30d else 0.0

    @property
    def abandon_alert(self) -> bool:
        return self.abandon_rate > ABANDON_LIMIT


def campaign_zone(campaign: Campaign) -> ZoneInfo:
    try:
        return ZoneInfo((campaign.schedule or {}).get("time_zone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def figures(session: Session, campaign: Campaign, now: datetime) -> Figures:
    """Two queries: the list by state, the attempts since the earlier of today's start and 30 days ago.

    Abandons are counted as the dialler paces them: of the calls a debtor answered (answered or
    abandoned), the share nobody took.
    """
    local = now.astimezone(campaign_zone(campaign))
    # in UTC: SQLite compares the stored UTC wall time with the bound value's, whatever its zone
    today = datetime.combine(local.date(), time(0), local.tzinfo).astimezone(UTC)
    since = now - ABANDON_WINDOW
    states = dict(session.execute(
        select(CampaignDebt.state, func.count()).where(CampaignDebt.campaign_id == campaign.id)
        .group_by(CampaignDebt.state)).all())

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    is_today = DialAttempt.placed_at >= today
    in_window = DialAttempt.placed_at >= since
    row = session.execute(
        select(count(is_today), count(is_today & DialAttempt.answered_at.is_not(None)),
               count(is_today & DialAttempt.connected_at.is_not(None)),
               count(in_window & DialAttempt.outcome.in_(("answered", "abandoned"))),
               count(in_window & (DialAttempt.outcome == "abandoned")))
        .where(DialAttempt.campaign_id == campaign.id, DialAttempt.placed_at >= min(today, since))).one()
    return Figures(
        listed=sum(n for state, n in states.items() if state != "excluded"), pending=states.get("pending", 0),
        dialled_today=int(row[0]), answered_today=int(row[1]), connected_today=int(row[2]),
        live_answers_30d=int(row[3]), abandoned_30d=int(row[4]))


@dataclass(frozen=True)
class SkipRow:
    debtor: str
    contract: str
    phone: str
    code: str
    reason: str
    at: datetime
    next_allowed_at: datetime | None
    count: int

    def cells(self, zone: ZoneInfo) -> list[object]:
        return [self.debtor, self.contract, self.phone, self.code, self.reason, _local(self.at, zone),
                _local(self.next_allowed_at, zone), self.count]


SKIP_COLUMNS = ("debtor", "contract", "phone", "code", "reason", "at", "next_allowed_at", "count")


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return "" if moment is None else as_utc(moment).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def skipped(session: Session, campaign_id: int, code: str = "", limit: int | None = None) -> list[SkipRow]:
    """Numbers the dialler did not call, newest first, optionally of one verdict code."""
    query = (select(Client.name, Debt.contract, DialSkip.phone_e164, DialSkip.code, DialSkip.reason, DialSkip.at,
                    DialSkip.next_allowed_at, DialSkip.count)
             .join(Debt, Debt.id == DialSkip.debt_id).join(Client, Client.id == Debt.client_id)
             .where(DialSkip.campaign_id == campaign_id)
             .order_by(DialSkip.at.desc(), Debt.contract, DialSkip.phone_e164))
    if code:
        query = query.where(DialSkip.code == code)
    if limit is not None:
        query = query.limit(limit)
    return [SkipRow(r[0], r[1], r[2], r[3], r[4], as_utc(r[5]), as_utc(r[6]) if r[6] else None, r[7])
            for r in session.execute(query)]


def skip_codes(session: Session, campaign_id: int) -> list[tuple[str, int]]:
    """The verdict codes among the campaign's skips, with how many numbers each."""
    return list(session.execute(
        select(DialSkip.code, func.count()).where(DialSkip.campaign_id == campaign_id)
        .group_by(DialSkip.code).order_by(DialSkip.code)).all())


def my_campaigns(session: Session, operator_id: int) -> list[dict[str, Any]]:
    """The unfinished campaigns the operator is assigned to, with their ready flag."""
    rows = session.execute(
        select(Campaign.id, Campaign.name, Campaign.mode, Campaign.status, CampaignOperator.ready)
        .join(CampaignOperator, CampaignOperator.campaign_id == Campaign.id)
        .where(CampaignOperator.operator_id == operator_id, Campaign.status != "finished")
        .order_by(Campaign.name, Campaign.id))
    return [{"id": i, "name": n, "mode": m, "status": s, "ready": r} for i, n, m, s, r in rows]


def set_ready(session: Session, campaign_id: int, operator_id: int, ready: bool) -> None:
    """The operator's ready flag in one campaign of theirs; a finished campaign takes no one."""
    link = session.get(CampaignOperator, (campaign_id, operator_id))
    if link is None:
        raise NotAssigned(f"operator {operator_id} is not in campaign {campaign_id}")
    campaign = session.get(Campaign, campaign_id)
    if ready and campaign is not None and campaign.status == "finished":
        raise StatusChangeError("ready", campaign.status)
    link.ready = ready


def clear_ready(session: Session, operator_id: int) -> int:
    """Not ready anywhere: their desk has gone, so the dialler must not hand them a debtor."""
    result = session.execute(update(CampaignOperator)
                             .where(CampaignOperator.operator_id == operator_id, CampaignOperator.ready.is_(True))
                             .values(ready=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
