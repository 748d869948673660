"""Quality reviews of answered calls: a score from 1 to 5 and a comment, one per call.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_reviews",
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name="fk_call_reviews_call_id_calls", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reviewer_id"], ["operators.id"], name="fk_call_reviews_reviewer_id_operators",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("call_id", name="pk_call_reviews"),
    )


def downgrade() -> None:
    op.drop_table("call_reviews")
