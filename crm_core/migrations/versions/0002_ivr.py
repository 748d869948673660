"""IVR: menus and options, department business hours, the holiday calendar, Call.ivr_path.

The Russian public holidays of 2026 and 2027 are loaded as data (admins edit them later):
1-8 January, 23 February, 8 March, 1 and 9 May, 12 June, 4 November, the days off that
art. 112 of the Labour Code moves to Monday when a holiday falls on a weekend, and the
2026 transfers of Government decree No. 1466 (3 Jan -> 9 Jan, 4 Jan -> 31 Dec).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NEW_YEAR = "Новогодние каникулы"
HOLIDAYS_2026_2027 = [
    *[(date(2026, 1, d), NEW_YEAR if d != 7 else "Рождество Христово") for d in range(1, 9)],
    (date(2026, 1, 9), "Перенос с 3 января"),
    (date(2026, 2, 23), "День защитника Отечества"),
    (date(2026, 3, 8), "Международный женский день"),
    (date(2026, 3, 9), "Перенос с 8 марта"),
    (date(2026, 5, 1), "Праздник Весны и Труда"),
    (date(2026, 5, 9), "День Победы"),
    (date(2026, 5, 11), "Перенос с 9 мая"),
    (date(2026, 6, 12), "День России"),
    (date(2026, 11, 4), "День народного единства"),
    (date(2026, 12, 31), "Перенос с 4 января"),
    *[(date(2027, 1, d), NEW_YEAR if d != 7 else "Рождество Христово") for d in range(1, 9)],
    (date(2027, 2, 23), "День защитника Отечества"),
    (date(2027, 3, 8), "Международный женский день"),
    (date(2027, 5, 1), "Праздник Весны и Труда"),
    (date(2027, 5, 3), "Перенос с 1 мая"),
    (date(2027, 5, 9), "День Победы"),
    (date(2027, 5, 10), "Перенос с 9 мая"),
    (date(2027, 6, 12), "День России"),
    (date(2027, 6, 14), "Перенос с 12 июня"),
    (date(2027, 11, 4), "День народного единства"),
]


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("ivr_path", sa.String(256), nullable=False, server_default=""))
    op.create_table(
        "ivr_menus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("did", sa.String(32), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("greeting", sa.String(128), nullable=False),
        sa.Column("invalid_prompt", sa.String(128), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("fallback_queue", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ivr_menus"),
        sa.UniqueConstraint("name", name="uq_ivr_menus_name"),
    )
    op.create_table(
        "ivr_options",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("menu_id", sa.Integer(), nullable=False),
        sa.Column("digit", sa.String(1), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("submenu_id", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["menu_id"], ["ivr_menus.id"], name="fk_ivr_options_menu_id_ivr_menus",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"],
                                name="fk_ivr_options_department_id_departments", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["submenu_id"], ["ivr_menus.id"], name="fk_ivr_options_submenu_id_ivr_menus",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_ivr_options"),
        sa.UniqueConstraint("menu_id", "digit", name="uq_ivr_options_menu_id"),
    )
    op.create_index("ix_ivr_options_menu_id", "ivr_options", ["menu_id"])
    op.create_table(
        "ivr_department_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("after_hours", sa.String(16), nullable=False),
        sa.Column("voicemail_prompt", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"],
                                name="fk_ivr_department_schedules_department_id_departments",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_ivr_department_schedules"),
        sa.UniqueConstraint("department_id", name="uq_ivr_department_schedules_department_id"),
    )
    op.create_table(
        "ivr_business_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("opens", sa.Time(), nullable=False),
        sa.Column("closes", sa.Time(), nullable=False),
        sa.ForeignKeyConstraint(["schedule_id"], ["ivr_department_schedules.id"],
                                name="fk_ivr_business_hours_schedule_id_ivr_department_schedules",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_ivr_business_hours"),
        sa.UniqueConstraint("schedule_id", "weekday", name="uq_ivr_business_hours_schedule_id"),
    )
    op.create_index("ix_ivr_business_hours_schedule_id", "ivr_business_hours", ["schedule_id"])
    holidays = op.create_table(
        "ivr_holidays",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ivr_holidays"),
        sa.UniqueConstraint("day", name="uq_ivr_holidays_day"),
    )
    op.bulk_insert(holidays, [{"day": day, "kind": "holiday", "name": name} for day, name in HOLIDAYS_2026_2027])


def downgrade() -> None:
    for table in ("ivr_holidays", "ivr_business_hours", "ivr_department_schedules", "ivr_options", "ivr_menus"):
        op.drop_table(table)
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("ivr_path")
