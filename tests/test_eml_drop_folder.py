"""The e-mail drop folder: with CALLCARD_EML_DIR set, the running stack files every *.eml put in
the folder as a request within a few seconds, and marks it done so it is never filed twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from callcard.runtime import start_stack, stop_stack
from callcard.settings import Settings
from crm_core.db import make_engine, make_sessionmaker
from crm_core.models import Base, Request

MAIL = (b"From: Stranger <someone@example.org>\r\nSubject: =?utf-8?b?0JLQvtC/0YDQvtGB?=\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nCall me back: 8 351 765-43-21\r\n")


async def test_a_mail_dropped_in_the_watched_folder_becomes_a_request(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'callcard.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    sessions = make_sessionmaker(engine)
    drop = tmp_path / "mail"
    drop.mkdir()
    settings = Settings(database_url=url, eml_dir=str(drop), ami_port=1, agi_port=0, ami_reconnect_max=1.0)
    stack = await start_stack(settings, with_web=False)
    try:
        await asyncio.sleep(0.2)  # the folder is empty at the first look
        (drop / "question.eml.part").write_bytes(MAIL)  # written under another name, then moved in
        (drop / "question.eml.part").rename(drop / "question.eml")
        for _ in range(100):  # the runtime looks every few seconds
            with sessions() as session:
                filed = session.scalars(select(Request)).all()
            if filed:
                break
            await asyncio.sleep(0.1)
        assert [(r.source, r.subject, r.contact, r.client_id) for r in filed] == [
            ("email", "Вопрос", "someone@example.org", None)]
        assert sorted(p.name for p in drop.iterdir()) == ["question.eml.done"]
    finally:
        await stop_stack(stack)
        engine.dispose()
