"""The desk's REST API under /api: the operator, clients, calls, notes, click-to-call, language.

Routes are thin: they check who asks, call crm_core in a worker thread (FastAPI runs
plain `def` routes there) and shape the answer with the models in `schemas`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent_desk import schemas
from agent_desk.auth import SUPERVISING, CurrentOperator, api_operator, api_role, api_writer, session_language
from agent_desk.i18n import explain, translate
from agent_desk.recordings_http import calls_in_view, playable, recordings_root
from ami_bridge.client import AmiDisconnected, AmiError, AmiTimeout
from callcard.refusal import Refusal
from crm_core import cards, clients
from crm_core.audit import OK, Actor, record
from crm_core.call_log import OUTCOMES
from crm_core.models import Call, Client, Operator, as_utc
from crm_core.phones import PhoneError, format_phone, normalize_phone, shown_number
from crm_core.visibility import Viewer, department_ids, handed_over, may_see_client

router = APIRouter(prefix="/api", tags=["desk"])

Reader = Annotated[CurrentOperator, Depends(api_operator)]
Writer = Annotated[CurrentOperator, Depends(api_writer)]


def merger(request: Request) -> CurrentOperator:
    """Logged in (401) in a supervising role (403, audited: merging deletes a client), with the CSRF header."""
    return api_role(request, SUPERVISING, "role does not allow merging clients", csrf=True)


Merger = Annotated[CurrentOperator, Depends(merger)]


def _session(request: Request) -> Session:
    return request.app.state.desk.sessions()


def _t(request: Request, key: str, **values: object) -> str:
    return translate(session_language(request), key, **values)


@router.get("/me", response_model=schemas.Me)
def me(operator: Reader) -> schemas.Me:
    return schemas.Me(**asdict(operator))


@router.get("/clients", response_model=list[schemas.ClientSummary])
def search(
    request: Request, operator: Reader, q: str = Query("", max_length=128), limit: int = Query(20, ge=1, le=100)
) -> list[schemas.ClientSummary]:
    region = request.app.state.desk.settings.default_region
    with _session(request) as session:
        return [client_summary(c) for c in clients.search_clients(session, q, limit, region, operator.viewer)]


@router.post("/clients", response_model=schemas.ClientCard, status_code=201)
def create(request: Request, operator: Writer, body: schemas.ClientIn) -> dict:
    """Create a client from the desk; a number that is not a phone number is a 422 that says so."""
    region = request.app.state.desk.settings.default_region
    with _session(request) as session:
        try:
            client = clients.create_client(
                session, body.name.strip(), body.kind, body.phones, region,
                segment=body.segment, email=body.email, city=body.city,
            )
        except (PhoneError, clients.InvalidInput) as exc:
            raise HTTPException(422, _invalid(request, exc)) from None
        session.commit()
        return cards.client_card(session, client.id)


@router.patch("/clients/{client_id}", response_model=schemas.ClientCard)
def edit(request: Request, operator: Writer, client_id: int, body: schemas.ClientUpdate) -> dict:
    """Change a client's fields; the personal manager only by a supervising role, audited."""
    changes = body.model_dump(exclude_unset=True)
    if "manager_id" in changes and operator.role not in SUPERVISING:
        raise HTTPException(403, _t(request, "api.manager_change"))
    with _session(request) as session:
        _check_visible(request, session, operator.viewer, client_id)
        manager = changes.get("manager_id")
        if manager is not None and not operator.sees_all and not department_ids(session, manager) & operator.departments:
            raise HTTPException(403, _t(request, "api.other_department_agent"))  # a head: their own people only
        before = session.scalar(select(Client.manager_id).where(Client.id == client_id))
        try:
            clients.update_client(session, client_id, changes)
        except clients.InvalidInput as exc:
            raise HTTPException(422, _invalid(request, exc)) from None
        session.commit()
        card = cards.client_card(session, client_id)
    if "manager_id" in changes and changes["manager_id"] != before:
        record(request.app.state.desk.sessions, Actor(operator.id, operator.login), "manager", f"client {client_id}",
               {"from": before, "to": changes["manager_id"]}, OK)
    return card


@router.post("/clients/{client_id}/notes", response_model=schemas.ClientPage, status_code=201)
def add_note(request: Request, operator: Writer, client_id: int, body: schemas.ClientNoteIn) -> dict:
    """A note outside any call; answers with the card and the timeline it now heads."""
    with _session(request) as session:
        _check_visible(request, session, operator.viewer, client_id)
        try:
            clients.add_note(session, client_id, operator.id, body.note)
        except clients.InvalidInput as exc:
            raise HTTPException(422, _invalid(request, exc)) from None
        session.commit()
        return client_page(request, session, client_id, operator)


@router.post("/clients/{client_id}/phones", response_model=schemas.ClientCard, status_code=201)
def add_number(request: Request, operator: Writer, client_id: int, body: schemas.PhoneIn) -> dict:
    """Link one more number to a client; one that is not a phone number is a 422 that says why."""
    with _session(request) as session:
        _check_visible(request, session, operator.viewer, client_id)
        try:
            clients.add_phone(session, session.get(Client, client_id), body.number,
                              request.app.state.desk.settings.default_region, body.label.strip())
        except (PhoneError, clients.InvalidInput) as exc:
            raise HTTPException(422, _invalid(request, exc)) from None
        session.commit()
        return cards.client_card(session, client_id)


@router.delete("/clients/{client_id}/phones/{e164}", response_model=schemas.ClientCard)
def remove_number(request: Request, operator: Writer, client_id: int, e164: str) -> dict:
    with _session(request) as session:
        _check_visible(request, session, operator.viewer, client_id)
        if not clients.remove_phone(session, client_id, e164):
            raise HTTPException(404, _t(request, "api.not_found"))
        session.commit()
        return cards.client_card(session, client_id)


@router.post("/clients/{client_id}/merge", response_model=schemas.ClientPage)
def merge(request: Request, operator: Merger, client_id: int, body: schemas.MergeIn) -> dict:
    """Fold a duplicate into this client (crm_core.clients.merge_clients): supervising roles only,
    both clients within their reach; audited with the duplicate's name, as it is gone afterwards."""
    with _session(request) as session:
        _check_visible(request, session, operator.viewer, client_id)
        _check_visible(request, session, operator.viewer, body.duplicate_id)
        name = session.scalar(select(Client.name).where(Client.id == body.duplicate_id))
        try:
            clients.merge_clients(session, client_id, body.duplicate_id)
        except clients.InvalidInput as exc:
            raise HTTPException(422, _invalid(request, exc)) from None
        session.commit()
        page = client_page(request, session, client_id, operator)
    record(request.app.state.desk.sessions, Actor(operator.id, operator.login), "merge", f"client {client_id}",
           {"duplicate": body.duplicate_id, "name": name}, OK)
    return page


@router.get("/clients/{client_id}", response_model=schemas.ClientPage)
def client(request: Request, operator: Reader, client_id: int) -> dict:
    with _session(request) as session:
        return client_page(request, session, client_id, operator)


@router.get("/calls", response_model=list[schemas.CallRow])
def calls(
    request: Request,
    operator: Reader,
    outcome: Annotated[str | None, Query(pattern="^(" + "|".join(OUTCOMES) + ")$")] = None,
    operator_id: int | None = None,
    number: Annotated[str | None, Query(max_length=64)] = None,
    queue: Annotated[str | None, Query(max_length=64)] = None,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> list[schemas.CallRow]:
    """The calls the operator may see; another operator's calls are a supervisor's view (a department
    head's for the people of their departments). `number`: the caller's, in any form."""
    with _session(request) as session:
        if not may_view_calls_of(session, operator, operator_id):
            raise HTTPException(403, _t(request, "api.forbidden"))
        rows = clients.list_calls(session, outcome=outcome, operator_id=operator_id, number=number or None,
                                  queue=queue or None, region=request.app.state.desk.settings.default_region,
                                  limit=limit, offset=offset, visible_to=operator.viewer)
        return [call_row(row) for row in rows]


@dataclass(frozen=True)
class CallFilterQuery:
    """The call log's filters as a page or an export receives them (a day in the browser's `tz`)."""

    outcome: Annotated[str, Query(max_length=16)] = ""
    queue: Annotated[str, Query(max_length=64)] = ""
    agent: Annotated[str, Query(max_length=12)] = ""
    number: Annotated[str, Query(max_length=64)] = ""
    day: Annotated[str, Query(max_length=10)] = ""
    tz: Annotated[str, Query(max_length=64)] = ""
    reviewed: Annotated[str, Query(max_length=3)] = ""  # yes / no: a supervising role's quality sampling


@dataclass(frozen=True)
class CallFilter:
    """The filters checked: `list_calls` arguments, and `query` to repeat them in links."""

    calls: dict[str, Any]
    query: dict[str, str]


def call_filter(session: Session, operator: CurrentOperator, given: CallFilterQuery, region: str) -> CallFilter:
    """An unknown outcome, a bad day and an agent the operator may not see are dropped, not refused:
    the page then shows what it can. Only a supervising role filters by review (an operator would
    learn which of their colleagues' calls were reviewed)."""
    outcome = given.outcome if given.outcome in OUTCOMES else ""
    agent_id = int(given.agent) if given.agent.isdigit() else None
    if not may_view_calls_of(session, operator, agent_id):
        agent_id = None
    since, until = _day_bounds(given.day, given.tz)
    number = given.number.strip()
    reviewed = given.reviewed if given.reviewed in ("yes", "no") and operator.role in SUPERVISING else ""
    calls = {"outcome": outcome or None, "operator_id": agent_id, "queue": given.queue or None,
             "number": number or None, "since": since, "until": until, "region": region,
             "reviewed": {"yes": True, "no": False}.get(reviewed)}
    query = {"outcome": outcome, "queue": given.queue, "agent": str(agent_id or ""), "number": number,
             "day": given.day if since else "", "tz": given.tz, "reviewed": reviewed}
    return CallFilter(calls, query)


def zone_of(tz: str) -> ZoneInfo:
    """The browser's zone a form sent; UTC when it sent none or no zone."""
    try:
        return ZoneInfo(tz) if tz else ZoneInfo("UTC")
    except (ValueError, ZoneInfoNotFoundError):
        return ZoneInfo("UTC")


def _day_bounds(day: str, tz: str) -> tuple[datetime | None, datetime | None]:
    """The day's start and the next day's in `tz` (UTC when it is no zone); none for no day."""
    try:
        first = date.fromisoformat(day)
    except ValueError:
        return None, None
    zone = zone_of(tz)
    start, end = datetime.combine(first, time(), zone), datetime.combine(first + timedelta(days=1), time(), zone)
    return start.astimezone(UTC), end.astimezone(UTC)  # UTC: SQLite compares the stored text


def may_view_calls_of(session: Session, operator: CurrentOperator, other_id: int | None) -> bool:
    if other_id in (None, operator.id) or operator.sees_all:
        return True
    return operator.role == "department_head" and bool(department_ids(session, other_id) & operator.departments)


@router.post("/calls/{linkedid}/note", response_model=schemas.NoteOut)
def note(request: Request, operator: Writer, linkedid: str, body: schemas.NoteIn) -> schemas.NoteOut:
    """The after-call note, logged against the one client the operator chose (or none)."""
    with _session(request) as session:
        handled_by = session.scalar(select(Call.operator_id).where(Call.linkedid == linkedid))
        if handled_by not in (None, operator.id) and not operator.sees_all and session.scalar(
            select(Call.id).where(Call.linkedid == linkedid, handed_over(operator.id))
        ) is None:
            raise HTTPException(403, _t(request, "api.not_your_call"))
        if body.client_id is not None and not _may_note(session, operator.viewer, linkedid, body.client_id):
            raise HTTPException(403, _t(request, "api.other_department"))
        try:
            clients.save_call_note(
                session, linkedid, operator.id, body.note, body.disposition, client_id=body.client_id
            )
        except clients.ClientNotFound:
            raise HTTPException(404, _t(request, "api.not_found")) from None
        except clients.InvalidInput as exc:
            raise HTTPException(422, _invalid(request, exc)) from None
        session.commit()
    return schemas.NoteOut(linkedid=linkedid, client_id=body.client_id, disposition=body.disposition)


@router.post(
    "/dial",
    response_model=schemas.DialOut,
    responses={502: {"description": "the PBX refused the call"}, 503: {"description": "no telephony"}},
)
async def dial(request: Request, operator: Writer, body: schemas.DialIn) -> schemas.DialOut:
    """Click-to-call: the operator's phone rings first, then Asterisk dials the client."""
    dialer = request.app.state.desk.dialer
    if dialer is None:
        raise HTTPException(503, _t(request, "api.no_dialer"))
    if not operator.interface:
        raise HTTPException(409, _t(request, "api.no_interface"))
    try:
        number = normalize_phone(body.number, request.app.state.desk.settings.default_region)
    except PhoneError as exc:
        raise HTTPException(422, _invalid(request, exc)) from None
    try:
        action_id = await dialer.click_to_call(operator.interface, number)
    except (AmiTimeout, AmiDisconnected):  # the PBX is away: worth retrying, nothing was dialled
        raise HTTPException(503, _t(request, "api.pbx_unavailable")) from None
    except AmiError as exc:  # Asterisk answered `Response: Error`: its message says why
        raise HTTPException(502, _t(request, "api.dial_refused", error=str(exc))) from None
    return schemas.DialOut(number=number, action_id=action_id)


@router.post("/language", response_model=schemas.LanguageOut)
def language(request: Request, operator: Writer, body: schemas.LanguageIn) -> schemas.LanguageOut:
    """Remembered on the operator (next login) and in the session (this one)."""
    with _session(request) as session:
        row = session.get(Operator, operator.id)
        if row is not None:
            row.language = body.language
            session.commit()
    request.session["lang"] = body.language
    return schemas.LanguageOut(language=body.language)


# ---- shaping, shared with the HTML pages --------------------------------------------------


def _may_note(session: Session, viewer: Viewer, linkedid: str, client_id: int) -> bool:
    """A note goes to a client the operator may see, or to one the call's number belongs to (the
    call itself shows that client's card on the desk)."""
    if may_see_client(session, viewer, client_id):
        return True
    caller = session.scalar(select(Call.caller_e164).where(Call.linkedid == linkedid))
    return caller is not None and client_id in {m.client_id for m in cards.clients_for_number(session, caller)}


def client_page(request: Request, session: Session, client_id: int, operator: CurrentOperator) -> dict:
    """A client's card and timeline, and which of its calls the operator may play: 404 when there is
    no such client, 403 when it is another department's (crm_core.visibility)."""
    _check_visible(request, session, operator.viewer, client_id)
    try:
        card = cards.client_card(session, client_id)
    except cards.ClientNotFound:
        raise HTTPException(404, _t(request, "api.not_found")) from None
    timeline = clients.timeline(session, client_id, 200)
    root = recordings_root(request)
    talks = [item["linkedid"] for item in timeline if item["type"] == "call" and item["talk_seconds"]]
    # a visible client's call may be another department's
    calls = session.scalars(calls_in_view(operator, Call.linkedid.in_(talks))).all() if root and talks else []
    return {"card": card, "timeline": timeline, "recorded": sorted(playable(root, session, operator, calls))}


def _invalid(request: Request, error: Refusal) -> str:
    return explain(session_language(request), error)


def _check_visible(request: Request, session: Session, viewer: Viewer, client_id: int) -> None:
    """404 when there is no such client, 403 when it is another department's (crm_core.visibility)."""
    if not may_see_client(session, viewer, client_id):
        if session.get(Client, client_id) is None:
            raise HTTPException(404, _t(request, "api.not_found"))
        raise HTTPException(403, _t(request, "api.other_department"))


def client_summary(client: Client) -> schemas.ClientSummary:
    phones = [
        schemas.Phone(e164=link.phone.e164, display=format_phone(link.phone.e164), kind=link.phone.kind,
                      label=link.label)
        for link in client.phone_links
    ]
    return schemas.ClientSummary(
        id=client.id, name=client.name, kind=client.kind, segment=client.segment, city=client.city, phones=phones
    )


def call_row(call: Call) -> schemas.CallRow:
    return schemas.CallRow(
        linkedid=call.linkedid,
        started_at=as_utc(call.started_at),
        direction=call.direction,
        caller_raw=call.caller_raw,
        caller_e164=call.caller_e164,
        caller_display=shown_number(call.caller_raw, call.caller_e164),
        caller_name=call.caller_name,
        client_id=call.client_id,
        client_name=call.client.name if call.client else None,
        queue=call.queue,
        operator_id=call.operator_id,
        operator_name=call.operator.name if call.operator else None,
        status=call.status,
        outcome=call.outcome,
        wait_seconds=call.wait_seconds,
        talk_seconds=call.talk_seconds,
        disposition=call.disposition,
    )
