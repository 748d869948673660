"""Asterisk's rules for a session's event filters (callcard.pbx_sim.filters), without sockets."""

from __future__ import annotations

import pytest

from callcard.pbx_sim.filters import EventFilters, FilterError

HANGUP = "Event: Hangup\r\nPrivilege: call,all\r\nChannel: PJSIP/101-00000001\r\n"
DAHDI_HANGUP = "Event: Hangup\r\nPrivilege: call,all\r\nChannel: DAHDI/1-1\r\n"
CEL = "Event: CEL\r\nPrivilege: call,all\r\nEventName: CHAN_START\r\n"


def filters(*rules: tuple[str, str]) -> EventFilters:
    result = EventFilters()
    for criteria, regex in rules:
        result.add(criteria, regex)
    return result


def test_no_filters_pass_everything() -> None:
    assert filters().passes("CEL", CEL) and not filters()


def test_include_filters_pass_only_what_one_of_them_matches() -> None:
    by_name = filters(("name(Hangup)", ""), ("action(include),name(AgentCalled)", ""))
    assert by_name.passes("Hangup", HANGUP) and not by_name.passes("CEL", CEL)
    by_regex = filters(("", "Event: CEL"))
    assert by_regex.passes("CEL", CEL) and not by_regex.passes("Hangup", HANGUP)
    name_and_regex = filters(("name(Hangup)", "Channel: PJSIP/"))
    assert name_and_regex.passes("Hangup", HANGUP) and not name_and_regex.passes("Hangup", DAHDI_HANGUP)


def test_exclude_filters_drop_what_they_match_even_when_included() -> None:
    legacy = filters(("", "!Channel: DAHDI.*"))
    assert legacy.passes("CEL", CEL) and not legacy.passes("Hangup", DAHDI_HANGUP)
    both = filters(("name(Hangup)", ""), ("action(exclude),name(Hangup)", "DAHDI"))
    assert both.passes("Hangup", HANGUP) and not both.passes("Hangup", DAHDI_HANGUP)
    assert not both.passes("CEL", CEL), "with include filters, what none includes is dropped"


def test_a_header_and_a_method_match_one_header_s_value() -> None:
    starts = filters(("name(Hangup),header(Channel),startsWith", "PJSIP/"))
    assert starts.passes("Hangup", HANGUP) and not starts.passes("Hangup", DAHDI_HANGUP)
    exact = filters(("header(EventName),method(exact)", "CHAN_START"))
    assert exact.passes("CEL", CEL) and not exact.passes("Hangup", HANGUP), "no such header: no match"
    assert not filters(("header(EventName),exact", "CHAN")).passes("CEL", CEL)
    assert filters(("header(channel),contains", "DAHDI")).passes("Hangup", DAHDI_HANGUP), "header names: any case"
    assert filters(("name(CEL),none", "whatever")).passes("CEL", CEL), "method none ignores the expression"


@pytest.mark.parametrize(("criteria", "regex", "message"), [
    ("", "Event: (", "did not compile"),
    ("name(Hangup", "", "formatted incorrectly"),
    ("action(maybe)", "", "formatted incorrectly"),
    ("name(Hangup),colour(red)", "", "formatted incorrectly"),
    ("name(Hangup),sometimes", "", "formatted incorrectly"),
])
def test_filters_asterisk_refuses(criteria: str, regex: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        EventFilters().add(criteria, regex)
