"""When a debt is dialled again after an attempt: the campaign's retry rules per outcome, as data.

Pure: the compliance guard still has the last word on every call; these rules only say when the
dialler should *want* to try again, and when to give up on a debt for this campaign.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

# outcome -> minutes until the next try and how many attempts in all before the debt is done
DEFAULT_RETRY: Mapping[str, Mapping[str, int]] = {
    "no_answer": {"delay_minutes": 120, "max_attempts": 6},
    "busy": {"delay_minutes": 30, "max_attempts": 6},
    "failed": {"delay_minutes": 60, "max_attempts": 3},
    "machine": {"delay_minutes": 240, "max_attempts": 4},
    "abandoned": {"delay_minutes": 15, "max_attempts": 6},
}


class RetryRulesError(ValueError):
    """A campaign's retry rules are malformed; the message names the outcome and field."""


def retry_rules(data: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    """The campaign's rules over the defaults, validated: every value a positive whole number."""
    rules = {outcome: dict(rule) for outcome, rule in DEFAULT_RETRY.items()}
    for outcome, rule in (data or {}).items():
        if outcome not in DEFAULT_RETRY:
            raise RetryRulesError(f"retry rule for unknown outcome {outcome!r}: use one of {sorted(DEFAULT_RETRY)}")
        for field in ("delay_minutes", "max_attempts"):
            value = rule.get(field, rules[outcome][field])
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RetryRulesError(f"retry rule {outcome}.{field} must be a whole number >= 1, not {value!r}")
            rules[outcome][field] = value
    return rules


def next_attempt(rules: Mapping[str, Any] | None, outcome: str, attempts: int, now: datetime) -> datetime | None:
    """When to dial again after `attempts` calls ending in `outcome`; None: stop dialling this debt."""
    rule = retry_rules(rules).get(outcome)
    if rule is None or attempts >= rule["max_attempts"]:
        return None
    return now + timedelta(minutes=rule["delay_minutes"])
