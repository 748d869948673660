"""Requests that arrive from outside: the public web form and e-mail files (.eml).

Both become the same Request, with the client matched by e-mail or phone. Mail is parsed
with the standard `email` package; a wrong or missing charset is decoded with replacement
characters instead of failing, because one broken message must not stop an import.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from callcard.waits import wait_any
from crm_core.cards import clients_for_number
from crm_core.models import Client, Request
from crm_core.phones import try_normalize
from routing.inbox import service

log = logging.getLogger(__name__)

MAX_EML_BYTES = 2 * 1024 * 1024
MAX_BODY = 10_000
_PHONE_IN_TEXT = re.compile(r"(?:\+7|8)[\s\-()]*\d(?:[\s\-()]*\d){9}")


@dataclass(frozen=True)
class Incoming:
    subject: str
    body: str
    email: str = ""
    phone: str = ""
    kind: str = "question"


def match_client(session: Session, email: str, phone: str, region: str = "RU") -> int | None:
    """The one client with this e-mail, else the one owning this phone; None when unknown or ambiguous."""
    if email:
        ids = session.scalars(select(Client.id).where(func.lower(Client.email) == email.lower())).all()
        if len(ids) == 1:
            return ids[0]
    e164 = try_normalize(phone, region) if phone else None
    if e164:
        matches = clients_for_number(session, e164)
        if len(matches) == 1:
            return matches[0].client_id
    return None


def file_request(session: Session, incoming: Incoming, source: str, now: datetime, region: str = "RU") -> Request:
    client_id = match_client(session, incoming.email, incoming.phone, region)
    subject = incoming.subject.strip() or incoming.body.strip()[:80] or "(без темы)"
    return service.create_request(
        session, incoming.kind, subject, now, body=incoming.body[:MAX_BODY], source=source, client_id=client_id,
        contact=incoming.email or incoming.phone,
    )


def _text_of(message: EmailMessage) -> str:
    """The plain-text body (or HTML with tags stripped), decoded leniently."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:  # a charset name Python does not know
        text = payload.decode("utf-8", errors="replace")
    if part.get_content_type() == "text/html":
        text = re.sub(r"<[^>]+>", " ", text)
    return text.strip()


def parse_eml(data: bytes) -> Incoming:
    message = BytesParser(policy=policy.default).parsebytes(data[:MAX_EML_BYTES])
    assert isinstance(message, EmailMessage)
    try:
        subject = str(message.get("Subject", "") or "")
    except (ValueError, LookupError):  # undecodable encoded-word
        subject = ""
    try:
        sender = str(message.get("From", "") or "")
    except (ValueError, LookupError):
        sender = ""
    body = _text_of(message)
    found = _PHONE_IN_TEXT.search(body)
    return Incoming(subject=subject[:256], body=body[:MAX_BODY], email=parseaddr(sender)[1],
                    phone=found.group(0) if found else "")


def import_eml_dir(sessions: sessionmaker[Session], directory: Path, now: datetime, region: str = "RU") -> list[int]:
    """File every *.eml in `directory` as a request, one transaction each, then rename it to
    *.eml.done so a rerun (or a watched folder) never files it twice."""
    created = []
    for path in sorted(directory.glob("*.eml")):
        try:
            incoming = parse_eml(path.read_bytes())
        except Exception:
            log.exception("e-mail import: %s could not be parsed; left in place", path.name)
            continue
        with sessions.begin() as session:
            created.append(file_request(session, incoming, "email", now, region).id)
        path.rename(path.with_name(path.name + ".done"))
    return created


async def watch_eml_dir(sessions: sessionmaker[Session], directory: Path, stop: asyncio.Event,
                        every: float = 5.0, region: str = "RU",
                        clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
    """Import the drop folder every `every` seconds until `stop`; a round that fails (folder gone,
    database down) is logged and the next one tries again."""
    while not stop.is_set():
        try:
            created = await asyncio.to_thread(import_eml_dir, sessions, directory, clock(), region)
            if created:
                log.info("e-mail drop folder %s: filed requests %s", directory, created)
        except Exception:
            log.exception("e-mail drop folder %s: this round failed; retrying in %.0f s", directory, every)
        await wait_any(every, stop)
