"""A personal manager's clients: the agents page counts them, "my clients" lists them, a hand-over
moves them, and visibility asks who manages a client; without an index each read every client.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_clients_manager_id", "clients", ["manager_id"])


def downgrade() -> None:
    op.drop_index("ix_clients_manager_id", table_name="clients")
