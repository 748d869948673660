"""Attempts per key in a sliding window, counted in the bus's kept store so that every web worker
shares the count (a Redis hash on the Redis bus; the process's dict on memory://).

Each attempt is one kept entry whose TTL is the window. An attempt over the limit is refused and
not kept, so hammering a blocked key neither extends the block nor grows the store; `undo` takes
back an attempt that should not count (a successful login from a busy office address) and
`clear` forgets a key's attempts (a successful login for that login).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from callcard.bus import Bus


def retry_after(others: Iterable[float], now: float, limit: int, window: float) -> float | None:
    """Seconds until one more attempt fits, given the other attempts' times; None when it fits now."""
    live = sorted(at for at in others if at > now - window)
    if len(live) < limit:
        return None
    return max(0.0, live[len(live) - limit] + window - now)


@dataclass(frozen=True)
class Attempt:
    key: str
    field: str
    wait: float | None  # None: allowed; else seconds until the next attempt may be made

    @property
    def retry_after(self) -> str:
        """The Retry-After header's value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.wait or 0)))


class RateLimit:
    """At most `limit` attempts per key in any `window` seconds."""

    def __init__(self, bus: Bus, name: str, limit: int, window: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.bus, self.name, self.limit, self.window, self.clock = bus, name, limit, window, clock

    def _key(self, key: str) -> str:
        return f"ratelimit:{self.name}:{key}"

    async def attempt(self, key: str) -> Attempt:
        """Count one attempt (kept first, then counted, so concurrent workers never both slip past)."""
        stored, field, now = self._key(key), secrets.token_hex(8), self.clock()
        await self.bus.keep(stored, field, {"at": now}, self.window)
        others = [m.get("at") for f, m in (await self.bus.kept(stored)).items() if f != field]
        wait = retry_after((at for at in others if isinstance(at, int | float)), now, self.limit, self.window)
        if wait is not None:
            await self.bus.forget(stored, field)
        return Attempt(stored, field, wait)

    async def undo(self, attempt: Attempt) -> None:
        await self.bus.forget(attempt.key, attempt.field)

    async def clear(self, key: str) -> None:
        stored = self._key(key)
        fields = list(await self.bus.kept(stored))
        if fields:
            await self.bus.forget(stored, *fields)
