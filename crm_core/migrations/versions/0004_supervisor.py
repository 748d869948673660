"""Supervisor actions: the audit log, agents' queue memberships and logged-in state.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_login", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["operators.id"], name="fk_audit_log_actor_id_operators",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor_id"])
    op.create_table(
        "agent_states",
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("logged_in", sa.Boolean(), nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["operator_id"], ["operators.id"], name="fk_agent_states_operator_id_operators",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("operator_id", name="pk_agent_states"),
    )
    op.create_table(
        "agent_queues",
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("penalty", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("pause_reason", sa.String(64), nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["operator_id"], ["operators.id"], name="fk_agent_queues_operator_id_operators",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("operator_id", "queue", name="pk_agent_queues"),
    )


def downgrade() -> None:
    op.drop_table("agent_queues")
    op.drop_table("agent_states")
    op.drop_index("ix_audit_log_actor_id", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
