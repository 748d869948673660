"""Calls the IVR ended itself (a callback promised, a closed department's message, a blocked number
turned away) get their own outcome, `ivr`, instead of `missed`: they were no call an agent missed.
The calls already logged take it from their stored IVR path.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# ivr.menu.IVR_ENDINGS when this was written: the last step of such a call's path
ENDED_BY_IVR = ("ivr_path = 'rejected' OR ivr_path LIKE '%>callback' OR ivr_path LIKE '%>voicemail' "
                "OR ivr_path LIKE '%>rejected'")


def upgrade() -> None:
    op.execute(sa.text(f"UPDATE calls SET outcome = 'ivr' WHERE outcome = 'missed' AND ({ENDED_BY_IVR})"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE calls SET outcome = 'missed' WHERE outcome = 'ivr'"))
