"""The real servers tests use, and the one rule for their absence: skip locally, fail in CI.

A module of its own (not conftest.py) so test files can import it: two conftest modules
(tests/ and tests/browser/) would shadow each other under the same name.
"""

from __future__ import annotations

import os
import socket

import pytest

PG_URL = os.environ.get("CALLCARD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CALLCARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (CI, CALLCARD_REQUIRE_SERVICES=1) when a real server the test needs is not there."""
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CALLCARD_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} and CALLCARD_REQUIRE_SERVICES=1")
    pytest.skip(reason)
