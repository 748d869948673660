"""A campaign's list: the open debts its filters select, kept in step as debts change."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_core.models import Client, Debt
from routing.campaigns.lists import FilterError, check_filters, refresh_list, select_debts
from routing.campaigns.models import Campaign, CampaignDebt

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
# contract -> (days past due, total due, region, status)
DEBTS = {
    "A": (10, "500.00", "Москва", "active"),
    "B": (45, "1500.00", "Москва", "active"),
    "C": (90, "25000.00", "Свердловская обл.", "promised"),
    "D": (120, "3000.00", "Москва", "paid"),
    "E": (60, "999.99", "", "disputed"),
}


@pytest.fixture
def debts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions.begin() as s:
        client = Client(name="Должник", debt_open=True)
        rows = {contract: Debt(client=client, creditor="Банк", contract=contract, principal=Decimal(total),
                               total_due=Decimal(total), days_past_due=days, region=region, status=status)
                for contract, (days, total, region, status) in DEBTS.items()}
        s.add_all(rows.values())
        s.flush()
        return {contract: debt.id for contract, debt in rows.items()}


def _selected(sessions: sessionmaker[Session], debts: dict[str, int], filters: dict) -> set[str]:
    names = {debt_id: contract for contract, debt_id in debts.items()}
    with sessions() as s:
        return {names[debt_id] for debt_id in s.scalars(select_debts(Campaign(filters=filters)))}


@pytest.mark.parametrize(("filters", "expected"), [
    ({}, {"A", "B", "C", "E"}),  # every open debt; paid ones never
    ({"min_days": 45}, {"B", "C", "E"}),
    ({"min_days": "45", "max_days": "60"}, {"B", "E"}),  # bounds inclusive, as a form sends them
    ({"min_total": "1000", "max_total": "3 000,00"}, {"B"}),
    ({"max_total": 999.99}, {"A", "E"}),
    ({"regions": ["Москва", " "]}, {"A", "B"}),
    ({"statuses": ["promised", "disputed"]}, {"C", "E"}),
    ({"min_days": 30, "regions": ["Свердловская обл."], "statuses": ["active"]}, set()),
])
def test_filters_select_open_debts(sessions: sessionmaker[Session], debts: dict[str, int], filters: dict,
                                   expected: set[str]) -> None:
    assert _selected(sessions, debts, filters) == expected


@pytest.mark.parametrize(("filters", "message"), [
    ({"min_dpd": 30}, "unknown filter 'min_dpd'"),
    ({"min_days": "-5"}, "min_days must be a whole number"),
    ({"max_days": "ten"}, "max_days must be a whole number"),
    ({"min_total": "lots"}, "min_total must be an amount"),
    ({"statuses": ["paid"]}, "status 'paid' cannot be dialled"),
    ({"statuses": ["sleeping"]}, "unknown debt status 'sleeping'"),
])
def test_malformed_filters_are_refused_with_the_filter_named(filters: dict, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        check_filters(filters)


def _states(sessions: sessionmaker[Session], campaign_id: int, debts: dict[str, int]) -> dict[str, str]:
    names = {debt_id: contract for contract, debt_id in debts.items()}
    with sessions() as s:
        return {names[row.debt_id]: row.state for row in s.scalars(
            select(CampaignDebt).where(CampaignDebt.campaign_id == campaign_id))}


def test_refresh_adds_new_matches_and_excludes_debts_that_stop_matching(sessions: sessionmaker[Session],
                                                                        debts: dict[str, int]) -> None:
    with sessions.begin() as s:
        campaign = Campaign(name="30+", filters={"min_days": 30})
        s.add(campaign)
        s.flush()
        assert refresh_list(s, campaign, NOW) == 3
        campaign_id = campaign.id
    assert _states(sessions, campaign_id, debts) == {"B": "pending", "C": "pending", "E": "pending"}
    with sessions.begin() as s:
        s.get(Debt, debts["B"]).status = "paid"  # paid meanwhile
        s.get(Debt, debts["A"]).days_past_due = 31  # now overdue enough
        s.get(CampaignDebt, (campaign_id, debts["E"])).state = "done"  # dialled out: stays done
        s.get(Debt, debts["E"]).status = "closed"
        assert refresh_list(s, s.get(Campaign, campaign_id), NOW) == 2
    assert _states(sessions, campaign_id, debts) == {"A": "pending", "B": "excluded", "C": "pending", "E": "done"}
    with sessions.begin() as s:  # refreshing again changes nothing
        assert refresh_list(s, s.get(Campaign, campaign_id), NOW) == 2
    assert _states(sessions, campaign_id, debts) == {"A": "pending", "B": "excluded", "C": "pending", "E": "done"}


def test_refresh_with_a_bad_filter_changes_nothing(sessions: sessionmaker[Session], debts: dict[str, int]) -> None:
    with sessions.begin() as s:
        campaign = Campaign(name="broken", filters={"min_total": "много"})
        s.add(campaign)
        s.flush()
        with pytest.raises(FilterError):
            refresh_list(s, campaign, NOW)
        assert s.scalars(select(CampaignDebt)).all() == []


@pytest.mark.parametrize("typed", ["Свердловская обл.", "свердловская область", "66", "Свердловская область"])
def test_region_filter_finds_the_official_name_the_import_stores(typed: str) -> None:
    assert check_filters({"regions": [typed]})["regions"] == ["Свердловская область"]


def test_unrecognised_region_filter_is_kept_as_typed() -> None:
    assert check_filters({"regions": ["  Луна "]})["regions"] == ["Луна"]
