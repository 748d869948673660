"""A session's AMI event filters (Action: Filter), as Asterisk 22 applies them; no I/O.

Two forms, both `Operation: Add`. The legacy one: `Filter: <regex>` searched in the event's
text, a leading `!` excludes. The structured one (Asterisk 18.25, 20.10, 21.5, 22.0 and later):
`MatchCriteria:` with any of `action(include|exclude)`, `name(<Event>)`, `header(<Header>)` and a
method (`regex`, the default, `exact`, `startsWith`, `endsWith`, `contains`, `none`) that says how
`Filter:`, if given, is matched: against the named header's value, else the event's text.

With no filters every event passes; with include filters, only what one of them matches; exclude
filters then drop what they match. Replies to actions, list items included, are never filtered:
only events broadcast to the sessions are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

_CRITERION = re.compile(r"\s*(action|name|header|method)\(([^()]*)\)\s*|\s*(\w+)\s*")
_METHODS: dict[str, Callable[[str, str], bool]] = {
    "exact": lambda subject, expression: subject == expression,
    "startswith": str.startswith,
    "starts_with": str.startswith,
    "endswith": str.endswith,
    "ends_with": str.endswith,
    "contains": lambda subject, expression: expression in subject,
}
_BAD_FORMAT = "Filter was formatted incorrectly.  Check the syntax of the filter given."


class FilterError(ValueError):
    """A filter Asterisk would refuse; the message is its reply's."""


@dataclass(frozen=True)
class _Filter:
    name: str | None  # lower-cased event name, None for any
    header: str | None  # lower-cased header name whose value is matched, None for the whole text
    match: Callable[[str], bool] | None  # None: the expression is not looked at

    def matches(self, event: str, text: str) -> bool:
        if self.name is not None and self.name != event.lower():
            return False
        subject: str | None = text
        if self.header is not None:
            subject = _header_value(text, self.header)
            if subject is None:
                return False
        return self.match is None or self.match(subject)


@dataclass
class EventFilters:
    include: list[_Filter] = field(default_factory=list)
    exclude: list[_Filter] = field(default_factory=list)

    def add(self, match_criteria: str, expression: str) -> None:
        """One `Action: Filter` with `Operation: Add`; raises FilterError where Asterisk replies Error."""
        exclude, name, header, method = False, None, None, "regex"
        if match_criteria.strip():
            for part in match_criteria.split(","):
                criterion = _CRITERION.fullmatch(part)
                if criterion is None:
                    raise FilterError(_BAD_FORMAT)
                kind, value, bare = criterion.groups()
                if bare is not None:  # a match method may stand alone: `name(Hangup),contains`
                    kind, value = "method", bare
                value = value.strip()
                if kind == "action" and value in ("include", "exclude"):
                    exclude = value == "exclude"
                elif kind == "name" and value:
                    name = value.lower()
                elif kind == "header" and value:
                    header = value.lower()
                elif kind == "method" and (value.lower() in _METHODS or value.lower() in ("regex", "none")):
                    method = value.lower()
                else:
                    raise FilterError(_BAD_FORMAT)
        elif expression.startswith("!"):
            exclude, expression = True, expression[1:]
        (self.exclude if exclude else self.include).append(_Filter(name, header, _matcher(method, expression)))

    def passes(self, event: str, text: str) -> bool:
        """Whether an event named `event`, whose wire form is `text`, reaches this session."""
        if self.include and not any(f.matches(event, text) for f in self.include):
            return False
        return not any(f.matches(event, text) for f in self.exclude)

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)


def _matcher(method: str, expression: str) -> Callable[[str], bool] | None:
    if method == "none" or not expression:
        return None
    if method == "regex":
        try:
            pattern = re.compile(expression)
        except re.error:
            raise FilterError("Filter did not compile.  Check the syntax of the filter given.") from None
        return lambda subject: pattern.search(subject) is not None
    compare = _METHODS[method]
    return lambda subject: compare(subject, expression)


def _header_value(text: str, header: str) -> str | None:
    for line in text.split("\r\n"):
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() == header:
            return value.removeprefix(" ")
    return None
