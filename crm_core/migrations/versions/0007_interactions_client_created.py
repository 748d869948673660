"""A client's notes by time: the card reads a client's newest notes, and a busy company has thousands.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_interactions_client_created", "interactions", ["client_id", "created_at"])
    op.drop_index("ix_interactions_client_id", table_name="interactions")


def downgrade() -> None:
    op.create_index("ix_interactions_client_id", "interactions", ["client_id"])
    op.drop_index("ix_interactions_client_created", table_name="interactions")
