"""Clients' name keys (crm_core.models.name_key): twins spelt another way are found by an index.

The key of every existing client is computed here, in batches: SQL has no portable way to sort a
name's words.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crm_core.models import name_key

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BATCH = 10_000


def upgrade() -> None:
    op.add_column("clients", sa.Column("name_key", sa.String(256), server_default="", nullable=False))
    clients = sa.table("clients", sa.column("id", sa.Integer), sa.column("name", sa.String),
                       sa.column("name_key", sa.String))
    bind = op.get_bind()
    after = 0
    while rows := bind.execute(sa.select(clients.c.id, clients.c.name).where(clients.c.id > after)
                               .order_by(clients.c.id).limit(BATCH)).all():
        bind.execute(clients.update().where(clients.c.id == sa.bindparam("key")),
                     [{"key": i, "name_key": name_key(name)} for i, name in rows])
        after = rows[-1][0]
    op.create_index("ix_clients_name_key", "clients", ["name_key"])


def downgrade() -> None:
    op.drop_index("ix_clients_name_key", table_name="clients")
    op.drop_column("clients", "name_key")
