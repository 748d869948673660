"""Routing rules, transfers, typed requests with SLA and history, department heads, open-debt flag.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("departments") as batch:
        batch.add_column(sa.Column("head_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_departments_head_id_operators", "operators", ["head_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("debt_open", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("clients") as batch:
        batch.alter_column("debt_open", server_default=None)
    with op.batch_alter_table("requests") as batch:
        batch.alter_column("client_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="question"))
        batch.add_column(sa.Column("body", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="desk"))
        batch.add_column(sa.Column("contact", sa.String(256), nullable=False, server_default=""))
        batch.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("due_at", TZ, nullable=True))
        batch.add_column(sa.Column("closed_at", TZ, nullable=True))
        batch.add_column(sa.Column("escalated_at", TZ, nullable=True))
        batch.add_column(sa.Column("linkedid", sa.String(64), nullable=True))
        batch.create_foreign_key(
            "fk_requests_assignee_id_operators", "operators", ["assignee_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_unique_constraint("uq_requests_linkedid", ["linkedid"])
        batch.create_index("ix_requests_due_at", ["due_at"])
    with op.batch_alter_table("requests") as batch:
        for name in ("kind", "body", "source", "contact"):
            batch.alter_column(name, server_default=None)
    op.create_table(
        "request_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["operators.id"], name="fk_request_events_author_id_operators", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name="fk_request_events_request_id_requests", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_request_events"),
    )
    op.create_index("ix_request_events_request_id", "request_events", ["request_id"])
    op.create_table(
        "routing_rules",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_routing_rules"),
    )
    op.create_table(
        "routing_settings",
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_routing_settings"),
    )
    op.create_table(
        "did_routes",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name="fk_did_routes_department_id_departments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("kind", "number", name="pk_did_routes"),
    )
    op.create_table(
        "blocked_numbers",
        sa.Column("e164", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("e164", name="pk_blocked_numbers"),
    )
    op.create_table(
        "call_transfers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("linkedid", sa.String(64), nullable=False),
        sa.Column("from_operator_id", sa.Integer(), nullable=True),
        sa.Column("to_department_id", sa.Integer(), nullable=True),
        sa.Column("to_operator_id", sa.Integer(), nullable=True),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["from_operator_id"], ["operators.id"], name="fk_call_transfers_from_operator_id_operators",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["to_department_id"], ["departments.id"], name="fk_call_transfers_to_department_id_departments",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["to_operator_id"], ["operators.id"], name="fk_call_transfers_to_operator_id_operators",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_call_transfers"),
    )
    op.create_index("ix_call_transfers_linkedid", "call_transfers", ["linkedid"])


def downgrade() -> None:
    for table in ("call_transfers", "blocked_numbers", "did_routes", "routing_settings", "routing_rules",
                  "request_events"):
        op.drop_table(table)
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_due_at")
        batch.drop_constraint("uq_requests_linkedid", type_="unique")
        batch.drop_constraint("fk_requests_assignee_id_operators", type_="foreignkey")
        for name in ("linkedid", "escalated_at", "closed_at", "due_at", "assignee_id", "contact", "source",
                     "body", "kind"):
            batch.drop_column(name)
        batch.alter_column("client_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("debt_open")
    with op.batch_alter_table("departments") as batch:
        batch.drop_constraint("fk_departments_head_id_operators", type_="foreignkey")
        batch.drop_column("head_id")
