"""Each pause reason keeps its colour in the pause report (pause_reasons.colour), so adding or
moving a reason no longer recolours the others; the reasons already stored take theirs in the
supervisor's order, as the report coloured them until now.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COLOURS = 8  # crm_core.pause_reasons.COLOURS when this was written


def upgrade() -> None:
    with op.batch_alter_table("pause_reasons") as batch:
        batch.add_column(sa.Column("colour", sa.Integer(), nullable=False, server_default="0"))
    conn = op.get_bind()
    codes = conn.execute(sa.text("SELECT code FROM pause_reasons ORDER BY active DESC, position, code")).scalars()
    for i, code in enumerate(codes.all()):
        conn.execute(sa.text("UPDATE pause_reasons SET colour = :colour WHERE code = :code"),
                     {"code": code, "colour": i % COLOURS})


def downgrade() -> None:
    with op.batch_alter_table("pause_reasons") as batch:
        batch.drop_column("colour")
