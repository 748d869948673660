"""The calls live on each desk, kept so that a reloaded page shows the same call.

Why here and not in the popper's memory: production runs several web processes and one popper
on the Redis bus, so the socket that reconnects is rarely in the popper's process. The popper
keeps, per operator, each live call's pop (while ringing) and its `answered` state (while
talking) in the bus's keyed store (a Redis hash with a TTL, or a dict for memory://), under
the operator's own desk topic; anything else (ring stopped, answered elsewhere, abandoned,
transferred, ended) forgets the call. The popper keeps before it publishes and the socket
subscribes before it reads, so a message is never missed; at worst it arrives twice, which
the desk handles as a repeat.
"""

from __future__ import annotations

from typing import Any

from callcard.bus import Bus

LIVE_TTL = 4 * 3600.0  # longer than any call; a dead popper's calls vanish after this


def _key(topic: str) -> str:
    return f"live.{topic}"


async def remember(bus: Bus, topic: str, message: dict[str, Any]) -> None:
    """Record what one desk delivery means for that desk's live calls."""
    linkedid = str(message.get("linkedid", ""))
    if not linkedid:
        return
    if message.get("type") == "pop":
        await bus.keep(_key(topic), f"{linkedid}:pop", message, LIVE_TTL)
    elif message.get("type") == "call_state":
        if message.get("state") == "answered" and message.get("mine"):
            await bus.keep(_key(topic), f"{linkedid}:state", message, LIVE_TTL)
        else:
            await bus.forget(_key(topic), f"{linkedid}:pop", f"{linkedid}:state")


async def live_messages(bus: Bus, topic: str) -> list[dict[str, Any]]:
    """The messages that rebuild the desk: each live call's pop, then its state, oldest call first,
    marked `replayed` so the desk restores the timers instead of restarting them."""
    kept = await bus.kept(_key(topic))
    pops = sorted((m for f, m in kept.items() if f.endswith(":pop")), key=lambda m: m.get("at") or 0)
    out: list[dict[str, Any]] = []
    for pop in pops:
        out.append({**pop, "replayed": True})
        state = kept.get(f"{pop['linkedid']}:state")
        if state is not None:
            out.append({**state, "replayed": True})
    return out
