"""An index on a department's requests by status: the inbox lists a department's unfinished
requests, and every desk counts its departments' overdue ones when it loads.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_requests_department_status", "requests", ["department_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_requests_department_status", table_name="requests")
