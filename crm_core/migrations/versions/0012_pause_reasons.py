"""The centre's own pause reasons (crm_core.pause_reasons), seeded with the five the desk offered
until now and the limits that were CALLCARD_PAUSE_LIMITS's defaults.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SEEDED = [
    ("break", "Перерыв", "Break", 15),
    ("lunch", "Обед", "Lunch", 60),
    ("training", "Обучение", "Training", None),
    ("meeting", "Совещание", "Meeting", None),
    ("after_call", "Обработка звонка", "After-call work", 10),
]


def upgrade() -> None:
    table = op.create_table(
        "pause_reasons",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("name_ru", sa.String(64), nullable=False),
        sa.Column("name_en", sa.String(64), nullable=False),
        sa.Column("limit_minutes", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
    )
    op.bulk_insert(table, [{"code": code, "name_ru": ru, "name_en": en, "limit_minutes": limit, "position": i,
                            "active": True} for i, (code, ru, en, limit) in enumerate(SEEDED)])


def downgrade() -> None:
    op.drop_table("pause_reasons")
