"""Every table callcard has, registered on `Base.metadata`: import this before `create_all` or
an Alembic comparison, so no module's tables are missing because nobody imported it yet."""

from __future__ import annotations

from crm_core import agents as _agents  # noqa: F401  (agent_states, agent_queues)
from crm_core import audit as _audit  # noqa: F401  (audit_log)
from crm_core import pause_reasons as _pause_reasons  # noqa: F401  (pause_reasons)
from crm_core import reviews as _reviews  # noqa: F401  (call_reviews)
from crm_core.models import Base
from ivr import models as _ivr  # noqa: F401  (IVR menus and hours)
from routing import models as _routing  # noqa: F401  (routing rules, transfers, thresholds)
from routing.campaigns import models as _campaigns  # noqa: F401  (campaigns and the dialler's records)
from routing.inbox import models as _inbox  # noqa: F401  (request_events)

__all__ = ["Base"]
