"""Supervisor wall: per-queue thresholds as data, agents' pause intervals.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "queue_thresholds",
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("service_seconds", sa.Integer(), nullable=True),
        sa.Column("service_level_target", sa.Float(), nullable=False),
        sa.Column("longest_wait_warn", sa.Integer(), nullable=False),
        sa.Column("longest_wait_alert", sa.Integer(), nullable=False),
        sa.Column("abandon_rate_warn", sa.Float(), nullable=False),
        sa.Column("abandon_rate_alert", sa.Float(), nullable=False),
        sa.Column("wrapup_seconds", sa.Integer(), nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("queue", name="pk_queue_thresholds"),
    )
    op.create_table(
        "agent_pauses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interface", sa.String(128), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_pauses"),
    )
    op.create_index("ix_agent_pauses_interface", "agent_pauses", ["interface"])
    op.create_index("ix_agent_pauses_started_at", "agent_pauses", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_agent_pauses_started_at", table_name="agent_pauses")
    op.drop_index("ix_agent_pauses_interface", table_name="agent_pauses")
    op.drop_table("agent_pauses")
    op.drop_table("queue_thresholds")
