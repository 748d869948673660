"""A free TCP port for a server a test starts: below the kernel's ephemeral range.

bind(0) hands out a port from the ephemeral range, the one outgoing connections take their local
ports from. Between picking such a port and a child process binding it, one of the many connections
a test stack opens (to Redis, PostgreSQL, the simulator) may take it: "Address already in use".
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port() -> int:
    """A port nothing listens on now, outside the range outgoing connections use."""
    top = _ephemeral_start()
    for _ in range(200):
        port = random.randrange(LOWEST, top) if top > LOWEST + 100 else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError(f"no free port between {LOWEST} and {top}")
