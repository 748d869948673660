"""Per-queue wall thresholds as data: read by the wall service, edited by supervisors.

A queue without a row uses `Thresholds()` (the defaults in routing.live). `problems` is
pure, so the page and the API refuse the same nonsense (an alert limit milder than its
warning, a negative time) with the same message keys.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.live import Thresholds
from routing.models import QueueThreshold

THRESHOLDS_TOPIC = "thresholds"  # bus topic: a supervisor changed them, the wall reloads
FIELDS = tuple(f.name for f in fields(Thresholds))


def problems(limits: Thresholds) -> list[str]:
    """i18n keys of what is wrong with these limits; empty when they make sense."""
    found = []
    if limits.service_seconds is not None and not 1 <= limits.service_seconds <= 600:
        found.append("thr.err.service_seconds")
    if not 0 <= limits.service_level_target <= 100:
        found.append("thr.err.target")
    if not 0 <= limits.longest_wait_warn <= limits.longest_wait_alert:
        found.append("thr.err.longest_wait")
    if not 0 <= limits.abandon_rate_warn <= limits.abandon_rate_alert <= 100:
        found.append("thr.err.abandon_rate")
    if not 0 <= limits.wrapup_seconds <= 3600:
        found.append("thr.err.wrapup")
    return found


def load(session: Session) -> dict[str, Thresholds]:
    """Every queue's stored thresholds."""
    return {row.queue: Thresholds(**{name: getattr(row, name) for name in FIELDS})
            for row in session.scalars(select(QueueThreshold))}


def save(session: Session, queue: str, limits: Thresholds, at: datetime) -> dict[str, object]:
    """Store one queue's thresholds; returns what they were before (for the audit), {} if defaults."""
    row = session.get(QueueThreshold, queue)
    before = {name: getattr(row, name) for name in FIELDS} if row is not None else {}
    if row is None:
        row = QueueThreshold(queue=queue)
        session.add(row)
    for name, value in asdict(limits).items():
        setattr(row, name, value)
    row.changed_at = at
    return before
