"""Alembic environment: always online, on the connection `crm_core.migrate` hands over."""

from __future__ import annotations

from alembic import context

from crm_core.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
