"""Operations endpoints, open without a session: `/healthz`, `/readyz`, `/metrics`.

`/healthz` says the worker answers (liveness: restart it if not); `/readyz` says it can serve
(the database answers a query and the bus a ping), so a load balancer or compose waits for it.
None of them shows data beyond counts; keep `/metrics` off the public side of the proxy.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from callcard import metrics

router = APIRouter(tags=["operations"])

READY_TIMEOUT = 3.0  # seconds each dependency gets to answer


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    desk = request.app.state.desk

    def database() -> None:
        with desk.sessions() as session:
            session.execute(text("SELECT 1"))

    async def bus() -> None:
        ping = getattr(desk.bus, "ping", None)  # memory:// is always there
        if ping is not None:
            await ping()

    checks = {"database": asyncio.to_thread(database), "bus": bus()}
    failed: dict[str, str] = {}
    for name, check in checks.items():
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await check
        except Exception as exc:
            failed[name] = type(exc).__name__
    if failed:
        return JSONResponse({"status": "unavailable", "failed": failed}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics")
async def prometheus() -> Response:
    return Response(await asyncio.to_thread(metrics.render), media_type=metrics.CONTENT_TYPE)
