"""The centre's own pause reasons: the codes the desk offers, named in both languages, each with an
optional limit in minutes, edited by supervisors (`/supervisor/thresholds`).

A code is what a pause stores (Asterisk's reason, `agent_pauses`, the report's columns), so a code
never changes and never goes: a reason no longer wanted is switched off, and its history keeps its
name. `problems` is pure, so the page and the API refuse the same nonsense with the same message keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Integer, String, Table, event, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from crm_core.models import Base

# Bus topic: a supervisor changed the reasons. The wall service reloads the limits; desks and walls
# take the message's list (`reasons`: every reason, as the supervisor API lists them) for their names.
PAUSES_TOPIC = "pauses"
CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
RESERVED = frozenset({"other", "ready", "out"})  # the report's column for free text; the desk's states
MAX_LIMIT_MINUTES = 24 * 60
MAX_NAME = 64
COLOURS = 8  # the pause report's colours (`seg-c0`..`seg-c7`); a reason keeps the one it was made with
# What a new centre starts with (migration 0012 inserts the same): code, Russian, English, minutes.
DEFAULTS = (("break", "Перерыв", "Break", 15), ("lunch", "Обед", "Lunch", 60), ("training", "Обучение", "Training", None),
            ("meeting", "Совещание", "Meeting", None), ("after_call", "Обработка звонка", "After-call work", 10))


class PauseReasonRow(Base):
    __tablename__ = "pause_reasons"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_ru: Mapped[str] = mapped_column(String(MAX_NAME))
    name_en: Mapped[str] = mapped_column(String(MAX_NAME))
    limit_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(default=True)
    colour: Mapped[int] = mapped_column(Integer, default=0)  # fixed when made: a report's colours never shift


@event.listens_for(PauseReasonRow.__table__, "after_create")
def _seed(table: Table, connection: Connection, **_: object) -> None:
    """A schema made by `create_all` (tests, a throwaway database) starts as a migrated one does."""
    connection.execute(insert(table), [{"code": c, "name_ru": ru, "name_en": en, "limit_minutes": m, "position": i,
                                         "active": True, "colour": i} for i, (c, ru, en, m) in enumerate(DEFAULTS)])


@dataclass(frozen=True)
class PauseReason:
    code: str
    name_ru: str
    name_en: str
    limit_minutes: int | None = None  # None: no limit
    active: bool = True
    colour: int | None = None  # the report's colour; None until stored (`save` gives a new reason the next one)

    def name(self, language: str) -> str:
        return self.name_en if language == "en" else self.name_ru


def problems(reasons: Sequence[PauseReason], stored: Sequence[str] = ()) -> list[str]:
    """i18n keys of what is wrong with this list of reasons (empty when it makes sense); `stored`
    are the codes already in use, each of which must stay in the list."""
    found: list[str] = []
    codes = [r.code for r in reasons]
    if any(not CODE.fullmatch(c) or c in RESERVED for c in codes):
        found.append("preason.err.code")
    if len(set(codes)) != len(codes):
        found.append("preason.err.twice")
    if set(stored) - set(codes):
        found.append("preason.err.gone")
    if any(not r.name_ru.strip() or not r.name_en.strip() or max(len(r.name_ru), len(r.name_en)) > MAX_NAME
           for r in reasons):
        found.append("preason.err.name")
    if any(r.limit_minutes is not None and not 1 <= r.limit_minutes <= MAX_LIMIT_MINUTES for r in reasons):
        found.append("preason.err.limit")
    if not any(r.active for r in reasons):
        found.append("preason.err.none")
    return found


def limits(reasons: Sequence[PauseReason]) -> dict[str, int]:
    """Seconds a pause may last, per reason in use that has a limit."""
    return {r.code: r.limit_minutes * 60 for r in reasons if r.active and r.limit_minutes}


def load(session: Session) -> list[PauseReason]:
    """Every reason, those in use first, each group in the supervisor's order."""
    rows = session.scalars(select(PauseReasonRow).order_by(PauseReasonRow.active.desc(), PauseReasonRow.position,
                                                           PauseReasonRow.code))
    return [PauseReason(r.code, r.name_ru, r.name_en, r.limit_minutes, r.active, r.colour) for r in rows]


def in_use(session: Session) -> list[PauseReason]:
    return [r for r in load(session) if r.active]


def colours(reasons: Sequence[PauseReason]) -> dict[str, int]:
    return {r.code: r.colour or 0 for r in reasons}


def names(reasons: Sequence[PauseReason], language: str) -> dict[str, str]:
    """Each reason's name in `language` by code; pass them all (`load`): old pauses carry switched-off ones."""
    return {r.code: r.name(language) for r in reasons}


def save(session: Session, reasons: Sequence[PauseReason]) -> list[dict[str, object]]:
    """Store the list in its order (check `problems` first); returns what was stored before, for the audit.
    A new reason takes the colour after the last one made, so no stored reason's colour changes."""
    rows = {r.code: r for r in session.scalars(select(PauseReasonRow))}
    before = [_as_dict(r) for r in sorted(rows.values(), key=lambda r: r.position)]
    made = len(rows)
    for position, reason in enumerate(reasons):
        row = rows.get(reason.code)
        if row is None:
            row, made = PauseReasonRow(code=reason.code, colour=made % COLOURS), made + 1
        row.name_ru, row.name_en = reason.name_ru.strip(), reason.name_en.strip()
        row.limit_minutes, row.active, row.position = reason.limit_minutes, reason.active, position
        session.add(row)
    return before


def _as_dict(row: PauseReasonRow) -> dict[str, object]:
    return {"code": row.code, "name_ru": row.name_ru, "name_en": row.name_en, "limit_minutes": row.limit_minutes,
            "active": row.active}
