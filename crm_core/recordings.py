"""Call recordings: where Asterisk's MixMonitor puts a call's file, and finding it again.

The dialplan (deploy/asterisk/extensions.conf) starts MixMonitor as a call begins, writing
`<YYYY>/<MM>/<DD>/<Linkedid>.wav` (the UTC day it started) under the recordings folder that
Asterisk and the web app share. The call log needs no column for it: the Linkedid and the call's
start name the file, and a file purged by the retention period is simply no longer there.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePosixPath

from callcard.waits import wait_any

log = logging.getLogger(__name__)

# Asterisk's uniqueids ("1795394611.0", "host-1795394611.0") and the dialler's ChannelIds
# ("dial-<hex>"): nothing that could climb out of the folder or hide a file.
_LINKEDID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# The bridge's clock and Asterisk's may differ, and MixMonitor on a click-to-call or campaign call
# starts once the first leg answers: the file's day is looked for this far either side of the start.
SLACK = timedelta(minutes=15)
_DAY = re.compile(r"\d{4}/\d{2}/\d{2}")


def relative_path(linkedid: str, started: datetime) -> PurePosixPath:
    """The file of a call that began recording at `started`; ValueError for an unsafe Linkedid."""
    if not _LINKEDID.fullmatch(linkedid) or ".." in linkedid:
        raise ValueError(f"not a Linkedid: {linkedid!r}")
    return PurePosixPath(f"{started.astimezone(UTC):%Y/%m/%d}/{linkedid}.wav")


def find(root: Path, linkedid: str, started: datetime) -> Path | None:
    """The call's recording under `root`, or None (recording off, not answered, purged, unsafe id)."""
    if started.tzinfo is None:  # as crm_core.models.as_utc; not imported: the simulator must not load the ORM
        started = started.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    days = sorted({started, started - SLACK, started + SLACK}, key=lambda d: abs(d - started))
    try:
        paths = dict.fromkeys(root / relative_path(linkedid, day) for day in days)
    except ValueError:
        return None
    return next((p for p in paths if p.is_file()), None)


def day_folders(root: Path) -> Iterator[tuple[date, Path]]:
    """Every `<YYYY>/<MM>/<DD>` folder under `root` with its day; anything else is left alone."""
    for folder in root.glob("*/*/*"):
        rel = folder.relative_to(root).as_posix()
        if folder.is_dir() and _DAY.fullmatch(rel):
            try:
                yield date.fromisoformat(rel.replace("/", "-")), folder
            except ValueError:
                continue


def purge(root: Path, keep_days: int, today: date) -> int:
    """Delete the day folders older than `keep_days` days; returns how many files went. A folder
    that cannot be deleted is logged and tried again next time."""
    cutoff = today - timedelta(days=keep_days)
    removed = 0
    for day, folder in sorted(day_folders(root)):
        if day >= cutoff:
            continue
        files = sum(1 for p in folder.iterdir() if p.is_file())
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            log.warning("recordings: could not delete %s: %s", folder, exc)
            continue
        removed += files
        for parent in (folder.parent, folder.parent.parent):  # an emptied month, then year
            if parent != root and not any(parent.iterdir()):
                parent.rmdir()
    return removed


async def keep_for(root: Path, days: int, stop: asyncio.Event, every: float = 3600.0) -> None:
    """Delete recordings older than `days` days now and every hour until `stop` (the worker's job)."""
    while not stop.is_set():
        try:
            removed = await asyncio.to_thread(purge, root, days, datetime.now(UTC).date())
            if removed:
                log.info("recordings: deleted %d older than %d days", removed, days)
        except OSError as exc:
            log.warning("recordings: %s unreadable: %s", root, exc)
        await wait_any(every, stop)
