"""Logging in through the real login form (CSRF and all), for HTTP-level tests."""

from __future__ import annotations

import re

import httpx
from starlette.testclient import TestClient

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def _landed(page: httpx.Response) -> str:
    assert page.url.path == "/desk", page.text[:200]
    return csrf_of(page.text)


def log_in(http: TestClient, login: str, password: str) -> str:
    """Log in; returns the session's CSRF token for state-changing requests."""
    token = csrf_of(http.get("/login").text)
    return _landed(http.post("/login", data={"login": login, "password": password, "csrf": token}))


async def alog_in(http: httpx.AsyncClient, login: str, password: str) -> str:
    """The same over an async client (tests that also drive the simulator in their loop)."""
    token = csrf_of((await http.get("/login")).text)
    return _landed(await http.post("/login", data={"login": login, "password": password, "csrf": token}))
