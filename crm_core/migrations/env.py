"""Alembic environment: always online, on the connection `crm_core.migrate` hands over."""

from __future__ import annotations

from alembic import context

from crm_core import agents as _agent_models  # noqa: F401  (registers agent_states, agent_queues)
from crm_core import audit as _audit_models  # noqa: F401  (registers audit_log)
from crm_core.models import Base
from ivr import models as _ivr_models  # noqa: F401  (registers the IVR tables)
from routing import models as _routing_models  # noqa: F401  (registers the routing tables)
from routing.inbox import models as _inbox_models  # noqa: F401  (registers request_events)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
