"""A campaign's list: the open debts its filters select, kept as CampaignDebt rows so each debt
has its own place in the retry schedule and the list can be counted and reported on."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from crm_core.models import DEBT_STATUSES, OPEN_DEBT_STATUSES, Debt
from crm_core.regions import find_region
from routing.campaigns.models import Campaign, CampaignDebt

FILTER_KEYS = ("min_days", "max_days", "min_total", "max_total", "regions", "statuses")


class FilterError(ValueError):
    """A campaign filter is malformed; the message names it."""


def check_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The filters, typed: days as int, totals as Decimal, regions and statuses as lists."""
    unknown = set(filters) - set(FILTER_KEYS)
    if unknown:
        raise FilterError(f"unknown filter {sorted(unknown)[0]!r}; use {', '.join(FILTER_KEYS)}")
    out: dict[str, Any] = {}
    for key in ("min_days", "max_days"):
        value = filters.get(key)
        if value not in (None, ""):
            if not str(value).isdigit():
                raise FilterError(f"{key} must be a whole number of days, not {value!r}")
            out[key] = int(value)
    for key in ("min_total", "max_total"):
        value = filters.get(key)
        if value not in (None, ""):
            try:
                out[key] = Decimal(str(value).replace(",", ".").replace(" ", ""))
            except InvalidOperation:
                raise FilterError(f"{key} must be an amount, not {value!r}") from None
    regions = [_official(str(r)) for r in filters.get("regions") or () if str(r).strip()]
    statuses = [str(s) for s in filters.get("statuses") or ()]
    bad = [s for s in statuses if s not in OPEN_DEBT_STATUSES]
    if bad:
        raise FilterError(f"status {bad[0]!r} cannot be dialled; open statuses are {', '.join(OPEN_DEBT_STATUSES)}"
                          if bad[0] in DEBT_STATUSES else f"unknown debt status {bad[0]!r}")
    if regions:
        out["regions"] = regions
    if statuses:
        out["statuses"] = statuses
    return out


def _official(region: str) -> str:
    """The import stores a recognised region under its official name; "Свердловская обл." finds it too."""
    found = find_region(region)
    return found.name if found is not None else region.strip()


def select_debts(campaign: Campaign) -> Select[tuple[int]]:
    """Ids of the open debts the campaign's filters select."""
    f = check_filters(campaign.filters or {})
    query = select(Debt.id).where(Debt.status.in_(f.get("statuses", OPEN_DEBT_STATUSES)))
    if "min_days" in f:
        query = query.where(Debt.days_past_due >= f["min_days"])
    if "max_days" in f:
        query = query.where(Debt.days_past_due <= f["max_days"])
    if "min_total" in f:
        query = query.where(Debt.total_due >= f["min_total"])
    if "max_total" in f:
        query = query.where(Debt.total_due <= f["max_total"])
    if "regions" in f:
        query = query.where(Debt.region.in_(f["regions"]))
    return query


def refresh_list(session: Session, campaign: Campaign, now: datetime) -> int:
    """Add newly matching debts as pending, exclude those no longer matching; returns the list size."""
    matching = set(session.scalars(select_debts(campaign)))
    listed = {debt_id: state for debt_id, state in session.execute(
        select(CampaignDebt.debt_id, CampaignDebt.state).where(CampaignDebt.campaign_id == campaign.id))}
    for debt_id in sorted(matching - listed.keys()):
        session.add(CampaignDebt(campaign_id=campaign.id, debt_id=debt_id, state="pending"))
    gone = [debt_id for debt_id, state in listed.items() if debt_id not in matching and state == "pending"]
    if gone:
        session.execute(update(CampaignDebt).where(CampaignDebt.campaign_id == campaign.id,
                                                   CampaignDebt.debt_id.in_(gone)).values(state="excluded"))
    session.flush()
    return len(matching)
