"""Debt import over HTTP: supervisors and admins upload a debt CSV at /campaigns/import and watch it
load (agent_desk.imports runs it; crm_core.debt_import reads it)."""

from __future__ import annotations

from agent_desk.imports import ImportKind, import_router
from crm_core.debt_import import import_debts

DEBTS = ImportKind(
    name="debt", page="/campaigns/import", api="/api/debt-imports", texts="import",
    columns=("contract", "creditor", "debtor", "kind", "region", "phones", "principal", "total_due", "currency",
             "days_past_due", "due_date", "status", "email"),
    key="col.contract", stem="debts", back=("/campaigns", "nav.campaigns"), active="debt_import",
    run=import_debts,
)
router = import_router(DEBTS, ["campaigns"])
