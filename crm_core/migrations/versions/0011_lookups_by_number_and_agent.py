"""Lookups by number and by agent: a missed call finds its number's open callback (requests.contact),
the missed-call report finds a call's callback through its `again` event (request_events kind,
value), and an agent's calls of the day are read by operator and start (the desk's day, /calls).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_requests_contact", "requests", ["contact"])
    op.create_index("ix_request_events_kind_value", "request_events", ["kind", "value"])
    op.create_index("ix_calls_operator_started", "calls", ["operator_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_calls_operator_started", table_name="calls")
    op.drop_index("ix_request_events_kind_value", table_name="request_events")
    op.drop_index("ix_requests_contact", table_name="requests")
