"""One shape for input a person has to correct, whichever part refuses it."""

from __future__ import annotations


class Refusal(ValueError):
    """The message, in English, is for logs and tests; `key` and `values` (when given) say the same
    in the reader's language (agent_desk.i18n.explain)."""

    def __init__(self, message: str, key: str = "", **values: object) -> None:
        super().__init__(message)
        self.key = key
        self.values = values
