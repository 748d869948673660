"""A pause stores whose device it was (agent_pauses.operator_id), so an agent's pauses stay theirs
when phones are swapped; the pauses already stored are given to their device's present operator,
whom the report credited them to until now.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_pauses") as batch:
        batch.add_column(sa.Column("operator_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_agent_pauses_operator_id_operators", "operators", ["operator_id"], ["id"],
                                 ondelete="SET NULL")
        batch.create_index("ix_agent_pauses_operator_id", ["operator_id"])
    op.execute("UPDATE agent_pauses SET operator_id = (SELECT MIN(o.id) FROM operators o"
               " WHERE o.interface = agent_pauses.interface)")


def downgrade() -> None:
    with op.batch_alter_table("agent_pauses") as batch:
        batch.drop_index("ix_agent_pauses_operator_id")
        batch.drop_constraint("fk_agent_pauses_operator_id_operators", type_="foreignkey")
        batch.drop_column("operator_id")
