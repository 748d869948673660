"""Outbound debtor campaigns: debts and their contact ledger, debtor facts for the collection-law
guard, phone statuses, campaigns and the dialler's attempts and skips.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rule_set", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("caller_id", sa.String(length=32), nullable=False),
        sa.Column("max_lines", sa.Integer(), nullable=False),
        sa.Column("ring_seconds", sa.Integer(), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("retry", sa.JSON(), nullable=False),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
            name=op.f("fk_campaigns_department_id_departments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("name", name=op.f("uq_campaigns_name")),
    )
    op.create_table(
        "debts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("creditor", sa.String(length=256), nullable=False),
        sa.Column("contract", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("total_due", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("days_past_due", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("promised_amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("promised_date", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_debts_client_id_clients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_debts")),
        sa.UniqueConstraint("contract", name=op.f("uq_debts_contract")),
    )
    op.create_index(op.f("ix_debts_client_id"), "debts", ["client_id"], unique=False)
    op.create_index(op.f("ix_debts_status"), "debts", ["status"], unique=False)
    op.create_table(
        "campaign_debts",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("debt_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_debts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["debt_id"], ["debts.id"], name=op.f("fk_campaign_debts_debt_id_debts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("campaign_id", "debt_id", name=op.f("pk_campaign_debts")),
    )
    op.create_index(
        "ix_campaign_debts_due", "campaign_debts", ["campaign_id", "state", "next_at"], unique=False
    )
    op.create_table(
        "campaign_operators",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_operators_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_campaign_operators_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "operator_id", name=op.f("pk_campaign_operators")),
    )
    op.create_table(
        "debt_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("debt_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("phone_e164", sa.String(length=20), nullable=False),
        sa.Column("linkedid", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["debt_id"], ["debts.id"], name=op.f("fk_debt_contacts_debt_id_debts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_debt_contacts")),
        sa.UniqueConstraint("linkedid", name=op.f("uq_debt_contacts_linkedid")),
    )
    op.create_index("ix_debt_contacts_debt_at", "debt_contacts", ["debt_id", "at"], unique=False)
    op.create_table(
        "dial_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("debt_id", sa.Integer(), nullable=False),
        sa.Column("phone_e164", sa.String(length=20), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("disposition", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_dial_attempts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["debt_id"], ["debts.id"], name=op.f("fk_dial_attempts_debt_id_debts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_dial_attempts_operator_id_operators"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dial_attempts")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_dial_attempts_channel_id")),
    )
    op.create_index(op.f("ix_dial_attempts_campaign_id"), "dial_attempts", ["campaign_id"], unique=False)
    op.create_index(op.f("ix_dial_attempts_debt_id"), "dial_attempts", ["debt_id"], unique=False)
    op.create_index(op.f("ix_dial_attempts_placed_at"), "dial_attempts", ["placed_at"], unique=False)
    op.create_table(
        "dial_skips",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("debt_id", sa.Integer(), nullable=False),
        sa.Column("phone_e164", sa.String(length=20), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_allowed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_dial_skips_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["debt_id"], ["debts.id"], name=op.f("fk_dial_skips_debt_id_debts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("campaign_id", "debt_id", "phone_e164", name=op.f("pk_dial_skips")),
    )
    with op.batch_alter_table("client_phones") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="valid"))
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(64), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("contact_refused", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("protection", sa.String(32), nullable=False, server_default=""))
    # Existing rows got their values; new ones get the models' defaults, as for every other column.
    with op.batch_alter_table("client_phones") as batch:
        batch.alter_column("status", server_default=None)
    with op.batch_alter_table("clients") as batch:
        for column in ("time_zone", "contact_refused", "protection"):
            batch.alter_column(column, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        for column in ("protection", "contact_refused", "time_zone"):
            batch.drop_column(column)
    with op.batch_alter_table("client_phones") as batch:
        batch.drop_column("status")
    op.drop_table("dial_skips")
    op.drop_index(op.f("ix_dial_attempts_placed_at"), table_name="dial_attempts")
    op.drop_index(op.f("ix_dial_attempts_debt_id"), table_name="dial_attempts")
    op.drop_index(op.f("ix_dial_attempts_campaign_id"), table_name="dial_attempts")
    op.drop_table("dial_attempts")
    op.drop_index("ix_debt_contacts_debt_at", table_name="debt_contacts")
    op.drop_table("debt_contacts")
    op.drop_table("campaign_operators")
    op.drop_index("ix_campaign_debts_due", table_name="campaign_debts")
    op.drop_table("campaign_debts")
    op.drop_index(op.f("ix_debts_status"), table_name="debts")
    op.drop_index(op.f("ix_debts_client_id"), table_name="debts")
    op.drop_table("debts")
    op.drop_table("campaigns")
