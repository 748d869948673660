"""Phone numbers: every form a caller ID or an operator may type becomes one E.164 string, or a PhoneError."""

from __future__ import annotations

import pytest

from crm_core.phones import (
    MAX_INPUT,
    PhoneError,
    caller_id_name,
    format_phone,
    normalize_phone,
    phone_kind,
    try_normalize,
)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+73511234567", "+73511234567"),
        ("83517654321", "+73517654321"),  # Russian trunk prefix, as in the recordings
        ("3511234567", "+73511234567"),  # national number without the trunk prefix
        ("0073511234567", "+73511234567"),  # international 00 prefix
        ("8 (351) 765-43-21", "+73517654321"),
        ("+7 912 345-67-89", "+79123456789"),
        ("8-912-345-67-89", "+79123456789"),
        ("8.351.123.45.67", "+73511234567"),
        ("  +7 (351) 123 45 67  ", "+73511234567"),
        ("+７３５１１２３４５６７", "+73511234567"),  # full-width digits from a pasted document
        ("8 800 555-35-35", "+78005553535"),
    ],
)
def test_russian_number_forms_normalise_to_e164(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164
    assert try_normalize(raw) == e164


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "abc",
        "<unknown>",
        "anonymous",
        "1234567",  # a local number without its area code is ambiguous
        "735112345678",  # one digit too many
        "+7351123456789012",
        "１２３",
        "<script>alert(1)</script>",
        "'; DROP TABLE clients;--",
        "+7351\x001234567",
        "\n+7351 Injected: header",
    ],
)
def test_garbage_and_hostile_text_is_a_phone_error(raw: str) -> None:
    with pytest.raises(PhoneError):
        normalize_phone(raw)
    assert try_normalize(raw) is None


def test_too_long_input_is_refused_before_parsing() -> None:
    raw = "+7" + "1" * MAX_INPUT
    with pytest.raises(PhoneError, match="too long"):
        normalize_phone(raw)
    assert try_normalize("9" * 100_000) is None


def test_error_message_names_the_input() -> None:
    with pytest.raises(PhoneError, match="'12345'"):
        normalize_phone("12345")


def test_kind_and_display() -> None:
    assert phone_kind("+79123456789") == "mobile"
    assert phone_kind("+73511234567") == "landline"
    assert format_phone("+73517654321") == "+7 351 765-43-21"
    assert format_phone("not a number") == "not a number"


@pytest.mark.parametrize(("name", "number", "shown"), [
    ("Ivan Petrov", "83517654321", "Ivan Petrov"),
    ("89823729238", "89823729238", ""),  # a trunk that repeats the number as the name
    ("+7 (982) 372-92-38", "89823729238", ""),
    ("anonymous", "anonymous", ""),
    ("Unknown Caller", "83512400000", ""),  # placeholders for no name
    ("PRIVATE", "", ""),
    ("  ", "", ""),
    ("Отдел 2", "101", "Отдел 2"),
    ("<script>1</script>", "1", "<script>1</script>"),  # a name is kept as given; pages escape it
])
def test_caller_id_name_drops_only_a_repeated_number(name: str, number: str, shown: str) -> None:
    assert caller_id_name(name, number) == shown
