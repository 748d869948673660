"""Initial schema: the tables of crm_core.models as of the first release.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "departments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_departments"),
        sa.UniqueConstraint("code", name="uq_departments_code"),
    )
    op.create_table(
        "operators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("interface", sa.String(128), nullable=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_operators"),
        sa.UniqueConstraint("interface", name="uq_operators_interface"),
        sa.UniqueConstraint("login", name="uq_operators_login"),
    )
    op.create_table(
        "phones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("e164", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_phones"),
    )
    op.create_index("ix_phones_e164", "phones", ["e164"], unique=True)
    op.create_table(
        "clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("segment", sa.String(32), nullable=False),
        sa.Column("email", sa.String(256), nullable=False),
        sa.Column("city", sa.String(128), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("manager_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["manager_id"], ["operators.id"], name="fk_clients_manager_id_operators", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_clients"),
    )
    op.create_index("ix_clients_name", "clients", ["name"])
    op.create_table(
        "operator_departments",
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"],
            name="fk_operator_departments_department_id_departments", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"],
            name="fk_operator_departments_operator_id_operators", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("operator_id", "department_id", name="pk_operator_departments"),
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("linkedid", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("caller_e164", sa.String(20), nullable=True),
        sa.Column("caller_raw", sa.String(128), nullable=False),
        sa.Column("caller_name", sa.String(256), nullable=False),
        sa.Column("did", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("agent_interface", sa.String(128), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("answered_at", TZ, nullable=True),
        sa.Column("ended_at", TZ, nullable=True),
        sa.Column("wait_seconds", sa.Integer(), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("disposition", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_calls_client_id_clients", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name="fk_calls_department_id_departments",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name="fk_calls_operator_id_operators", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_calls"),
        sa.UniqueConstraint("linkedid", name="uq_calls_linkedid"),
    )
    op.create_index("ix_calls_caller_e164", "calls", ["caller_e164"])
    op.create_index("ix_calls_client_started", "calls", ["client_id", "started_at"])
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_table(
        "client_phones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("phone_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_client_phones_client_id_clients", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["phone_id"], ["phones.id"], name="fk_client_phones_phone_id_phones", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_client_phones"),
        sa.UniqueConstraint("client_id", "phone_id", name="uq_client_phones_client_id"),
    )
    op.create_index("ix_client_phones_client_id", "client_phones", ["client_id"])
    op.create_index("ix_client_phones_phone_id", "client_phones", ["phone_id"])
    op.create_table(
        "contact_persons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("position", sa.String(128), nullable=False),
        sa.Column("email", sa.String(256), nullable=False),
        sa.Column("phone_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_contact_persons_client_id_clients", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["phone_id"], ["phones.id"], name="fk_contact_persons_phone_id_phones", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_contact_persons"),
    )
    op.create_index("ix_contact_persons_client_id", "contact_persons", ["client_id"])
    op.create_index("ix_contact_persons_phone_id", "contact_persons", ["phone_id"])
    op.create_table(
        "requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_requests_client_id_clients", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name="fk_requests_department_id_departments",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_requests"),
    )
    op.create_index("ix_requests_client_id", "requests", ["client_id"])
    op.create_table(
        "interactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["operators.id"], name="fk_interactions_author_id_operators", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name="fk_interactions_call_id_calls", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_interactions_client_id_clients", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_interactions"),
    )
    op.create_index("ix_interactions_call_id", "interactions", ["call_id"])
    op.create_index("ix_interactions_client_id", "interactions", ["client_id"])


def downgrade() -> None:
    for table in (
        "interactions", "requests", "contact_persons", "client_phones", "calls",
        "operator_departments", "clients", "phones", "operators", "departments",
    ):
        op.drop_table(table)
