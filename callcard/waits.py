"""Waiting in the long-running loops. Not `asyncio.wait_for`: in Python 3.11 a cancel that comes as
the awaited thing finishes is lost, and a loop told to stop runs on; `asyncio.wait` and
`asyncio.timeout` keep it."""

from __future__ import annotations

import asyncio


async def wait_any(seconds: float, *events: asyncio.Event) -> bool:
    """Sleep up to `seconds`; True as soon as one of `events` is set."""
    if seconds > 0 and not any(e.is_set() for e in events):
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
    return any(e.is_set() for e in events)
