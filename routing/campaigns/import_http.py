"""Debt import over HTTP: supervisors and admins upload a CSV at /campaigns/import and watch it load.

The upload answers at once with a job id; the import (crm_core.debt_import) runs in a worker
thread and keeps its progress on the bus (`keep`), so whichever web worker the page polls at
`GET /api/debt-imports/{job}` sees it, and the rejected-rows CSV is downloaded from there too.
Operators get 403 (an attempted upload is audited as refused); every import and every download
of a report is audited.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from agent_desk.auth import (
    CurrentOperator,
    api_role,
    page_operator,
    session_language,
)
from agent_desk.i18n import translate
from agent_desk.pages import _render
from callcard.bus import Bus
from crm_core.audit import FAILED, OK, Actor, record
from crm_core.csv_import import ImportFailed, ImportFileError, ImportReport, RowError, rejected_csv
from crm_core.debt_import import import_debts

log = logging.getLogger(__name__)

router = APIRouter()
IMPORTING = ("supervisor", "admin")  # not department heads: an import writes to every department's client base
MAX_UPLOAD = 20 * 1024 * 1024
JOB_TTL = 3600.0  # a finished job's summary and report stay this long; a running one is refreshed
SHOWN_ROWS = 200  # rejected rows and warnings listed on the page; the CSV has them all
PROGRESS_WAIT = 5.0
JOB_ID = r"^[A-Za-z0-9_-]{16,32}$"
_UNSAFE_NAME = re.compile(r"[^\w.\- ]+")

JobId = Annotated[str, Path(pattern=JOB_ID)]


def _t(request: Request, key: str, **values: object) -> str:
    return translate(session_language(request), key, **values)


def _status_key(job_id: str) -> str:
    return f"debt-import:{job_id}"


def _report_key(job_id: str) -> str:
    return f"debt-import:{job_id}:report"


def _audit(sessions: sessionmaker[Session], operator: CurrentOperator, action: str, target: str,
           details: dict[str, Any], outcome: str = OK, error: str = "") -> None:
    record(sessions, Actor(operator.id, operator.login), action, target, details, outcome, error)


def importer(request: Request) -> CurrentOperator:
    """Logged in (401) as a supervisor or admin (403, audited), with the page's CSRF header (403)."""
    return api_role(request, IMPORTING, "role does not allow debt imports", csrf=True)


def watcher(request: Request) -> CurrentOperator:
    """Logged in (401) as a supervisor or admin (403)."""
    return api_role(request, IMPORTING)


def exporter(request: Request) -> CurrentOperator:
    """As `watcher`, but a wrong role's attempt at the report is audited as refused."""
    return api_role(request, IMPORTING, "role does not allow import reports")


Importer = Annotated[CurrentOperator, Depends(importer)]
Watcher = Annotated[CurrentOperator, Depends(watcher)]
Exporter = Annotated[CurrentOperator, Depends(exporter)]


@router.get("/campaigns/import", response_class=HTMLResponse, include_in_schema=False)
def import_page(request: Request,
                operator: Annotated[CurrentOperator, Depends(page_operator)]) -> HTMLResponse:
    """The upload form, the progress bar and the result; the CSV's columns are listed for the user."""
    if operator.role not in IMPORTING:
        return _render(request, "forbidden.html", operator, 403)
    return _render(request, "debt_import.html", operator, active="debt_import",
                   data={"max_upload": MAX_UPLOAD})


async def _body(request: Request) -> bytes:
    """The uploaded file, refused (413) past MAX_UPLOAD without reading the rest."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD:
        raise HTTPException(413, _t(request, "import.too_big", mb=MAX_UPLOAD // 2**20))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD:
            raise HTTPException(413, _t(request, "import.too_big", mb=MAX_UPLOAD // 2**20))
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/api/debt-imports", status_code=202, tags=["campaigns"])
async def start_import(request: Request, operator: Importer,
                       name: Annotated[str, Query(max_length=255)] = "") -> dict[str, str]:
    """Upload a debt CSV as the request body; the answer names the job to poll."""
    data = await _body(request)
    name = _UNSAFE_NAME.sub("_", name).strip()[:128] or "debts.csv"
    job_id = secrets.token_urlsafe(18)
    desk = request.app.state.desk
    await desk.bus.keep(_status_key(job_id), "status",
                        {"state": "running", "done": 0, "total": 0, "name": name}, JOB_TTL)
    job = _Job(job_id, name, data, operator, session_language(request), desk.sessions, desk.bus,
               desk.settings.default_region)
    task = asyncio.create_task(job.run(), name=f"debt-import-{job_id}")
    jobs: set[asyncio.Task[None]] | None = getattr(request.app.state, "debt_import_jobs", None)
    if jobs is None:
        jobs = request.app.state.debt_import_jobs = set()
    jobs.add(task)  # held until done, so the task is not collected mid-import
    task.add_done_callback(jobs.discard)
    return {"job_id": job_id}


class _Job:
    """One upload being imported: the thread does the work, the bus carries where it is."""

    def __init__(self, job_id: str, name: str, data: bytes, operator: CurrentOperator, lang: str,
                 sessions: sessionmaker[Session], bus: Bus, region: str) -> None:
        self.job_id, self.name, self.data, self.operator, self.lang = job_id, name, data, operator, lang
        self.sessions, self.bus, self.region = sessions, bus, region
        self.loop: asyncio.AbstractEventLoop | None = None

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            report = await asyncio.to_thread(
                import_debts, self.sessions, self.data, region=self.region, progress=self.progress,
                lang=self.lang, name=self.name)
        except (ImportFileError, ImportFailed) as exc:
            error = exc.text(self.lang) if isinstance(exc, ImportFileError) else str(exc)
            await asyncio.to_thread(_audit, self.sessions, self.operator, "debt_import", self.name,
                                    {"job": self.job_id, "bytes": len(self.data)}, FAILED, error)
            await self._keep({"state": "failed", "name": self.name, "error": error})
            return
        except Exception as exc:  # a bug must still end the job on the page, not leave it running
            log.exception("debt import %s failed", self.job_id)
            await self._keep({"state": "failed", "name": self.name, "error": f"{exc.__class__.__name__}"})
            return
        csv_text = rejected_csv(report.rejected, "col.contract", self.lang, report.delimiter).decode("utf-8")
        await self.bus.keep(_report_key(self.job_id), "csv", {"csv": csv_text}, JOB_TTL)
        await asyncio.to_thread(_audit, self.sessions, self.operator, "debt_import", self.name,
                                {"job": self.job_id, "bytes": len(self.data), "encoding": report.encoding,
                                 **report.counts()})
        await self._keep(self._summary(report))  # last: "done" means audited and downloadable

    def progress(self, done: int, total: int) -> None:
        """Called in the import's thread; waits for the bus so updates arrive in order."""
        assert self.loop is not None
        state = {"state": "running", "done": done, "total": total, "name": self.name}
        published = asyncio.run_coroutine_threadsafe(self._keep(state), self.loop)
        try:
            published.result(PROGRESS_WAIT)
        except Exception:  # the bar is not worth failing an import for; a late one must not land after "done"
            published.cancel()
            log.warning("debt import %s: progress not published", self.job_id, exc_info=True)

    async def _keep(self, state: dict[str, Any]) -> None:
        await self.bus.keep(_status_key(self.job_id), "status", state, JOB_TTL)

    def _summary(self, report: ImportReport) -> dict[str, Any]:
        return {
            "state": "done", "name": self.name, "encoding": report.encoding,
            "counts": report.counts(),
            "rejected": [_row(row, self.lang) for row in report.rejected[:SHOWN_ROWS]],
            "warnings": [{"line": w.line, "key": w.key, "text": w.reason.text(self.lang)}
                         for w in report.warnings[:SHOWN_ROWS]],
        }


def _row(row: RowError, lang: str) -> dict[str, Any]:
    return {"line": row.line, "key": row.key, "reasons": [r.text(lang) for r in row.reasons],
            "raw": row.raw[:500]}


async def _kept(request: Request, key: str, field: str) -> dict[str, Any]:
    found = (await request.app.state.desk.bus.kept(key)).get(field)
    if found is None:
        raise HTTPException(404, _t(request, "import.no_job"))
    return found


@router.get("/api/debt-imports/{job_id}", tags=["campaigns"])
async def import_status(request: Request, operator: Watcher, job_id: JobId) -> dict[str, Any]:
    """running (done/total lines), done (counts, rejected rows and warnings) or failed (error)."""
    return await _kept(request, _status_key(job_id), "status")


@router.get("/api/debt-imports/{job_id}/rejected.csv", tags=["campaigns"])
async def rejected_report(request: Request, operator: Exporter, job_id: JobId) -> Response:
    """The rejected rows with line numbers, reasons and the original rows (audited as an export)."""
    status = await _kept(request, _status_key(job_id), "status")
    data = (await _kept(request, _report_key(job_id), "csv"))["csv"].encode("utf-8")
    target = f"debt import {status.get('name', '')}"[:128]
    await asyncio.to_thread(_audit, request.app.state.desk.sessions, operator, "export", target,
                            {"job": job_id, "bytes": len(data)})
    stem = str(status.get("name", "")).rsplit(".", 1)[0] or "debts"
    disposition = f"attachment; filename=\"debts.rejected.csv\"; filename*=UTF-8''{quote(stem)}.rejected.csv"
    return Response(data, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition})
