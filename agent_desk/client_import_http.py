"""Client-base import over HTTP: supervisors and admins upload a client CSV at /clients/import and
watch it load (agent_desk.imports runs it; crm_core.client_import reads it)."""

from __future__ import annotations

from agent_desk.imports import ImportKind, import_router
from crm_core.client_import import import_clients

CLIENTS = ImportKind(
    name="client", page="/clients/import", api="/api/client-imports", texts="client_import",
    columns=("id", "name", "kind", "phones", "email", "segment", "city", "notes", "manager"),
    key="col.name", stem="clients", back=("/clients", "nav.clients"), active="clients",
    run=import_clients,
)
router = import_router(CLIENTS, ["clients"])
