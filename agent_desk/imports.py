"""CSV imports over HTTP: supervisors and admins upload a file on the import's page and watch it load.

The upload answers at once with a job id; the import (crm_core.csv_import and the kind's own
module) runs in a worker thread and keeps its progress on the bus (`keep`), so whichever web worker
the page polls at `GET {api}/{job}` sees it, and the rejected-rows CSV is downloaded from there too.
Operators get 403 (an attempted upload is audited as refused); every import and every download of
a report is audited. The debt import (routing.campaigns.import_http) and the client-base import
(agent_desk.client_import_http) are two ImportKinds of the same routes.

The routes are made per kind inside import_router, so this module keeps its annotations evaluated
(no `from __future__ import annotations`): FastAPI reads each route's Depends from them.
"""

import asyncio
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from agent_desk.auth import CurrentOperator, api_role, page_operator, session_language
from agent_desk.i18n import translate
from agent_desk.pages import _render
from callcard.bus import Bus
from crm_core.audit import FAILED, OK, Actor, record
from crm_core.csv_import import ImportFailed, ImportFileError, ImportReport, RowError, rejected_csv

log = logging.getLogger(__name__)

IMPORTING = ("supervisor", "admin")  # not department heads: an import writes to every department's client base
MAX_UPLOAD = 20 * 1024 * 1024
JOB_TTL = 3600.0  # a finished job's summary and report stay this long; a running one is refreshed
SHOWN_ROWS = 200  # rejected rows and warnings listed on the page; the CSV has them all
PROGRESS_WAIT = 5.0
JOB_ID = r"^[A-Za-z0-9_-]{16,32}$"
_UNSAFE_NAME = re.compile(r"[^\w.\- ]+")

JobId = Annotated[str, Path(pattern=JOB_ID)]


@dataclass(frozen=True)
class ImportKind:
    """One kind of file: where its page and API live, what it is called, and the function that
    imports it (`run(sessions, data, region=, progress=, lang=, name=) -> ImportReport`)."""

    name: str  # "debt": audit action debt_import, bus keys debt-import:{job}
    page: str
    api: str
    texts: str  # i18n prefix of the kind's own wording: {texts}.title, .intro, .col.*, .created, .key
    columns: tuple[str, ...]  # listed on the page, each with {texts}.col.{column}
    key: str  # message code of the rejected-rows report's key column
    stem: str  # the report's file name when the upload had none
    back: tuple[str, str]  # the page's link back: href, i18n key
    active: str  # the top bar's link this page is under
    run: Callable[..., ImportReport]


def _t(request: Request, key: str, **values: object) -> str:
    return translate(session_language(request), key, **values)


def _audit(sessions: sessionmaker[Session], operator: CurrentOperator, action: str, target: str,
           details: dict[str, Any], outcome: str = OK, error: str = "") -> None:
    record(sessions, Actor(operator.id, operator.login), action, target, details, outcome, error)


def import_router(kind: ImportKind, tags: list[str]) -> APIRouter:
    """The kind's page, upload, status and rejected-rows routes."""
    router = APIRouter()
    status_key = f"{kind.name}-import:{{}}".format
    report_key = f"{kind.name}-import:{{}}:report".format

    def importer(request: Request) -> CurrentOperator:
        """Logged in (401) as a supervisor or admin (403, audited), with the page's CSRF header (403)."""
        return api_role(request, IMPORTING, f"role does not allow {kind.name} imports", csrf=True)

    def watcher(request: Request) -> CurrentOperator:
        """Logged in (401) as a supervisor or admin (403)."""
        return api_role(request, IMPORTING)

    def exporter(request: Request) -> CurrentOperator:
        """As `watcher`, but a wrong role's attempt at the report is audited as refused."""
        return api_role(request, IMPORTING, "role does not allow import reports")

    @router.get(kind.page, response_class=HTMLResponse, include_in_schema=False)
    def import_page(request: Request,
                    operator: Annotated[CurrentOperator, Depends(page_operator)]) -> HTMLResponse:
        """The upload form, the progress bar and the result; the CSV's columns are listed for the user."""
        if operator.role not in IMPORTING:
            return _render(request, "forbidden.html", operator, 403)
        return _render(request, "import.html", operator, active=kind.active, kind=kind,
                       data={"max_upload": MAX_UPLOAD, "api": kind.api, "texts": kind.texts})

    @router.post(kind.api, status_code=202, tags=tags)
    async def start_import(request: Request, operator: Annotated[CurrentOperator, Depends(importer)],
                           name: Annotated[str, Query(max_length=255)] = "") -> dict[str, str]:
        """Upload a CSV as the request body; the answer names the job to poll."""
        data = await _body(request)
        name = _UNSAFE_NAME.sub("_", name).strip()[:128] or f"{kind.stem}.csv"
        job_id = secrets.token_urlsafe(18)
        desk = request.app.state.desk
        job = _Job(kind, job_id, name, data, operator, session_language(request), desk.sessions, desk.bus,
                   desk.settings.default_region, status_key(job_id), report_key(job_id))
        await job.keep({"state": "running", "done": 0, "total": 0, "name": name})
        task = asyncio.create_task(job.run(), name=f"{kind.name}-import-{job_id}")
        jobs: set[asyncio.Task[None]] | None = getattr(request.app.state, "import_jobs", None)
        if jobs is None:
            jobs = request.app.state.import_jobs = set()
        jobs.add(task)  # held until done, so the task is not collected mid-import
        task.add_done_callback(jobs.discard)
        return {"job_id": job_id}

    @router.get(kind.api + "/{job_id}", tags=tags)
    async def import_status(request: Request, operator: Annotated[CurrentOperator, Depends(watcher)],
                            job_id: JobId) -> dict[str, Any]:
        """running (done/total lines), done (counts, rejected rows and warnings) or failed (error)."""
        return await _kept(request, status_key(job_id), "status")

    @router.get(kind.api + "/{job_id}/rejected.csv", tags=tags)
    async def rejected_report(request: Request, operator: Annotated[CurrentOperator, Depends(exporter)],
                              job_id: JobId) -> Response:
        """The rejected rows with line numbers, reasons and the original rows (audited as an export)."""
        status = await _kept(request, status_key(job_id), "status")
        data = (await _kept(request, report_key(job_id), "csv"))["csv"].encode("utf-8")
        target = f"{kind.name} import {status.get('name', '')}"[:128]
        await asyncio.to_thread(_audit, request.app.state.desk.sessions, operator, "export", target,
                                {"job": job_id, "bytes": len(data)})
        stem = str(status.get("name", "")).rsplit(".", 1)[0] or kind.stem
        disposition = (f"attachment; filename=\"{kind.stem}.rejected.csv\"; "
                       f"filename*=UTF-8''{quote(stem)}.rejected.csv")
        return Response(data, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition})

    return router


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


class _Job:
    """One upload being imported: the thread does the work, the bus carries where it is."""

    def __init__(self, kind: ImportKind, job_id: str, name: str, data: bytes, operator: CurrentOperator,
                 lang: str, sessions: sessionmaker[Session], bus: Bus, region: str, status_key: str,
                 report_key: str) -> None:
        self.kind, self.job_id, self.name, self.data, self.operator = kind, job_id, name, data, operator
        self.lang, self.sessions, self.bus, self.region = lang, sessions, bus, region
        self.status_key, self.report_key = status_key, report_key
        self.action = f"{kind.name}_import"
        self.loop: asyncio.AbstractEventLoop | None = None

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            report = await asyncio.to_thread(
                self.kind.run, self.sessions, self.data, region=self.region, progress=self.progress,
                lang=self.lang, name=self.name)
        except (ImportFileError, ImportFailed) as exc:
            error = exc.text(self.lang) if isinstance(exc, ImportFileError) else str(exc)
            await asyncio.to_thread(_audit, self.sessions, self.operator, self.action, self.name,
                                    {"job": self.job_id, "bytes": len(self.data)}, FAILED, error)
            await self.keep({"state": "failed", "name": self.name, "error": error})
            return
        except Exception as exc:  # a bug must still end the job on the page, not leave it running
            log.exception("%s %s failed", self.action, self.job_id)
            await self.keep({"state": "failed", "name": self.name, "error": f"{exc.__class__.__name__}"})
            return
        csv_text = rejected_csv(report.rejected, self.kind.key, self.lang, report.delimiter).decode("utf-8")
        await self.bus.keep(self.report_key, "csv", {"csv": csv_text}, JOB_TTL)
        await asyncio.to_thread(_audit, self.sessions, self.operator, self.action, self.name,
                                {"job": self.job_id, "bytes": len(self.data), "encoding": report.encoding,
                                 **report.counts()})
        await self.keep(self._summary(report))  # last: "done" means audited and downloadable

    def progress(self, done: int, total: int) -> None:
        """Called in the import's thread; waits for the bus so updates arrive in order."""
        assert self.loop is not None
        state = {"state": "running", "done": done, "total": total, "name": self.name}
        published = asyncio.run_coroutine_threadsafe(self.keep(state), self.loop)
        try:
            published.result(PROGRESS_WAIT)
        except Exception:  # the bar is not worth failing an import for; a late one must not land after "done"
            published.cancel()
            log.warning("%s %s: progress not published", self.action, self.job_id, exc_info=True)

    async def keep(self, state: dict[str, Any]) -> None:
        await self.bus.keep(self.status_key, "status", state, JOB_TTL)

    def _summary(self, report: ImportReport) -> dict[str, Any]:
        return {
            "state": "done", "name": self.name, "encoding": report.encoding,
            "counts": report.counts(),
            "rejected": [_row(row, self.lang) for row in report.rejected[:SHOWN_ROWS]],
            "warnings": [{"line": w.line, "key": w.key, "text": w.reason.text(self.lang)}
                         for w in report.warnings[:SHOWN_ROWS]],
        }


def _row(row: RowError, lang: str) -> dict[str, Any]:
    return {"line": row.line, "key": row.key, "reasons": [r.text(lang) for r in row.reasons], "raw": row.raw[:500]}


async def _kept(request: Request, key: str, field: str) -> dict[str, Any]:
    found = (await request.app.state.desk.bus.kept(key)).get(field)
    if found is None:
        raise HTTPException(404, _t(request, "import.no_job"))
    return found
