"""Phone numbers: everything is stored and matched as E.164, parsed with `phonenumbers`."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from callcard.refusal import Refusal

MAX_INPUT = 64


class PhoneError(Refusal):
    """The text is not a phone number we can store or match."""


_KINDS = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "landline",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "landline",
    PhoneNumberType.TOLL_FREE: "tollfree",
    PhoneNumberType.VOIP: "voip",
}


def normalize_phone(raw: str, region: str = "RU") -> str:
    """Return the E.164 form of `raw` (`+7…`, `8…`, local forms accepted) or raise PhoneError.

    Russian `8` trunk prefix is handled by the RU metadata: `8 351 765-43-21` -> `+73517654321`.
    """
    text = (raw or "").strip()
    if not text:
        raise PhoneError("empty phone number", "api.no_phone")
    if len(text) > MAX_INPUT:
        raise PhoneError(f"phone number too long ({len(text)} characters)", "api.bad_phone",
                         number=text[:MAX_INPUT] + "…")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise PhoneError(f"not a phone number: {raw!r} ({exc})", "api.bad_phone", number=text) from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(f"not a valid phone number: {raw!r}", "api.bad_phone", number=text)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def try_normalize(raw: str, region: str = "RU") -> str | None:
    """E.164 or None: for caller IDs, where odd input is expected and must not stop a call."""
    text = (raw or "").strip()
    return None if len(text) > MAX_INPUT else _normalized(text, region)


@lru_cache(maxsize=4096)
def _normalized(text: str, region: str) -> str | None:
    """Cached (keys are at most MAX_INPUT characters): each call's number is parsed by the card,
    the call log and the wall, ~0.1 ms each, and callers call again."""
    try:
        return normalize_phone(text, region)
    except PhoneError:
        return None


_NUMBER_ONLY = re.compile(r"[+\d\s().-]*")
_PLACEHOLDERS = {"unknown", "unknown caller", "<unknown>", "anonymous", "private", "restricted", "unavailable"}


def caller_id_name(name: str, number: str = "") -> str:
    """The caller ID name worth showing beside the number: "" when it only repeats a number, as
    many trunks send (`89823729238`, `anonymous` for `anonymous`), or is a placeholder for none."""
    name = name.strip()
    if name == number or _NUMBER_ONLY.fullmatch(name) or name.lower() in _PLACEHOLDERS:
        return ""
    return name


def shown_number(raw: str, e164: str | None) -> str:
    """A caller's number as people write it: "" when withheld (nothing, or `anonymous` and the
    like, for the page to say so in its language), the raw text when it is no phone number (an
    internal extension)."""
    if e164:
        return format_phone(e164)
    text = (raw or "").strip()
    return "" if text.lower() in _PLACEHOLDERS else text


def phone_kind(e164: str) -> str:
    """mobile / landline / tollfree / voip / other, for display next to the number."""
    number = phonenumbers.parse(e164, None)
    return _KINDS.get(phonenumbers.number_type(number), "other")


@lru_cache(maxsize=16384)
def format_phone(e164: str) -> str:
    """Human form in international notation (`+7 351 765-43-21`); cached, since a card formats
    every phone of every client on a number while it rings."""
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
