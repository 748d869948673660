"""Routing from the database: load the admin's rule set and the caller's facts, then `decide()`.

`route_call` is what the IVR (FastAGI) calls for every inbound call; it never raises for
bad input (unknown DID, a number that is not a phone number): it logs and routes to the
default department, because a caller must never be dropped by a configuration slip.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from callcard.refusal import Refusal
from crm_core.cards import clients_for_number
from crm_core.models import Client, Operator
from crm_core.models import Department as DepartmentRow
from crm_core.phones import try_normalize
from routing import rules
from routing.models import BlockedNumber, DidRoute, RoutingRule, RoutingSetting
from routing.rules import CallContext, Caller, Manager, QueueLoad, Route, RuleSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    key: str
    default: str
    kind: type  # int or str


SETTINGS = (
    Setting("default_department", "sales", str),
    Setting("collections_department", "collections", str),
    Setting("overflow_department", "", str),
    Setting("manager_ring_seconds", "15", int),
    Setting("vip_priority", "10", int),
    Setting("overflow_wait_seconds", "120", int),
    Setting("overflow_callers_waiting", "0", int),  # 0 = no limit on callers waiting
)


class RoutingConfigError(Refusal):
    """An admin's edit that would break routing (unknown department, bad number)."""


def load_settings(session: Session) -> dict[str, str]:
    stored = {key: value for key, value in session.execute(select(RoutingSetting.key, RoutingSetting.value))}
    return {s.key: stored.get(s.key, s.default) for s in SETTINGS}


def load_rule_set(session: Session) -> RuleSet:
    """The stored rule set; rules never configured are on, in the issue's default order."""
    departments = {
        d.code: rules.Department(d.code, d.queue) for d in session.scalars(select(DepartmentRow))
    }
    stored = {r.code: r for r in session.scalars(select(RoutingRule))}
    ranked = sorted(
        rules.RULE_CODES,
        key=lambda code: (stored[code].position if code in stored else rules.RULE_CODES.index(code)),
    )
    order = tuple(code for code in ranked if code not in stored or stored[code].enabled)
    maps: dict[str, dict[str, str]] = {"did": {}, "ivr": {}}
    for kind, number, code in session.execute(
        select(DidRoute.kind, DidRoute.number, DepartmentRow.code).join(DidRoute.department)
    ):
        maps.setdefault(kind, {})[number] = code
    values = load_settings(session)
    return RuleSet(
        departments=departments,
        default_department=values["default_department"],
        order=order,
        did_map=maps["did"],
        ivr_map=maps["ivr"],
        blocked=frozenset(session.scalars(select(BlockedNumber.e164))),
        collections_department=values["collections_department"],
        manager_ring_seconds=int(values["manager_ring_seconds"]),
        vip_priority=int(values["vip_priority"]),
        overflow_wait_seconds=int(values["overflow_wait_seconds"]),
        overflow_callers_waiting=int(values["overflow_callers_waiting"]),
        overflow_department=values["overflow_department"] or None,
    )


def caller_facts(session: Session, e164: str | None) -> Caller:
    """The one client owning the number; a shared number counts as unknown (no personal rules)."""
    if e164 is None:
        return Caller(None)
    matches = clients_for_number(session, e164)
    if len(matches) != 1:
        return Caller(e164)
    client = session.get(Client, matches[0].client_id)
    if client is None:
        return Caller(e164)
    manager = None
    if client.manager_id is not None:
        row = session.get(Operator, client.manager_id)
        if row is not None:
            dept = row.departments[0].code if row.departments else None
            manager = Manager(row.id, row.name, row.interface, dept, row.active)
    return Caller(e164, client.id, client.name, client.segment, client.debt_open, manager)


def route_call(
    session: Session,
    caller_e164: str | None,
    did: str,
    ivr_choice: str,
    now: datetime,
    load: Mapping[str, QueueLoad],
    region: str = "RU",
) -> Route:
    """Where this inbound call goes and why; the IVR sets channel variables from the Route."""
    rule_set = load_rule_set(session)
    e164 = try_normalize(caller_e164, region) if caller_e164 else None
    if caller_e164 and e164 is None:
        log.warning("routing: caller number %.40r is not a phone number; routed as unknown", caller_e164)
    if did and did not in rule_set.did_map:
        log.warning("routing: unknown DID %.64r; default department %s", did, rule_set.default_department)
    context = CallContext(caller_facts(session, e164), did, ivr_choice, now, rule_set, load)
    route = rules.decide(context)
    log.info("routing: %s → %s (%s)", e164 or "unknown caller", route.queue, route.explanation)
    return route


# --- admin edits ---------------------------------------------------------------------------


def save_rules(session: Session, order: list[str], enabled: set[str]) -> None:
    """Store the rule order and flags; `order` must name every rule exactly once."""
    if sorted(order) != sorted(rules.RULE_CODES):
        raise RoutingConfigError(f"the order must list each of {', '.join(rules.RULE_CODES)} once",
                                 "routing.err.order", rules=", ".join(rules.RULE_CODES))
    session.execute(delete(RoutingRule))
    session.add_all(RoutingRule(code=code, position=i, enabled=code in enabled) for i, code in enumerate(order))


def save_settings(session: Session, values: Mapping[str, str]) -> None:
    departments = set(session.scalars(select(DepartmentRow.code)))
    for setting in SETTINGS:
        value = values.get(setting.key, setting.default).strip()  # a key left out gets its default
        if setting.kind is int:
            if not value.isdigit() or int(value) > 86_400:
                raise RoutingConfigError(f"{setting.key}: a whole number of seconds or points, 0..86400",
                                         "routing.err.number", setting=setting.key)
        elif value and value not in departments:
            raise RoutingConfigError(f"{setting.key}: no department {value!r}", "routing.err.department",
                                     department=value)
        elif not value and setting.key != "overflow_department":
            raise RoutingConfigError(f"{setting.key}: a department is required", "routing.err.department_required",
                                     setting=setting.key)
        row = session.get(RoutingSetting, setting.key)
        if row is None:
            session.add(RoutingSetting(key=setting.key, value=value))
        else:
            row.value = value


def set_number_route(session: Session, kind: str, number: str, department_code: str | None) -> None:
    """Map a DID or an IVR digit to a department; None removes the mapping."""
    number = number.strip()
    if kind not in ("did", "ivr") or not number or len(number) > 64:
        raise RoutingConfigError("a DID or IVR digit of 1..64 characters is required", "routing.err.did")
    row = session.get(DidRoute, (kind, number))
    if department_code is None:
        if row is not None:
            session.delete(row)
        return
    dept_id = session.scalar(select(DepartmentRow.id).where(DepartmentRow.code == department_code))
    if dept_id is None:
        raise RoutingConfigError(f"no department {department_code!r}", "routing.err.department",
                                 department=department_code)
    if row is None:
        session.add(DidRoute(kind=kind, number=number, department_id=dept_id))
    else:
        row.department_id = dept_id


def block_number(session: Session, raw: str, reason: str, region: str = "RU") -> str:
    e164 = try_normalize(raw, region)
    if e164 is None:
        raise RoutingConfigError(f"{raw!r} is not a phone number", "api.bad_phone", number=raw)
    if session.get(BlockedNumber, e164) is None:
        session.add(BlockedNumber(e164=e164, reason=reason[:256]))
    return e164


def unblock_number(session: Session, e164: str) -> None:
    session.execute(delete(BlockedNumber).where(BlockedNumber.e164 == e164))
