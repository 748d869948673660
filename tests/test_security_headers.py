"""Every HTTP response carries the security headers; the API's documentation pages (Swagger UI and
ReDoc from their CDN, no data) go without the Content-Security-Policy. Pages keeping to the policy
is checked in Chromium (tests/browser/test_supervisor_browser.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from agent_desk.app import create_app
from agent_desk.headers import CSP
from callcard.bus import MemoryBus
from callcard.settings import Settings


@pytest.fixture
def http(sessions) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(create_app(Settings(secret_key="t"), sessions, MemoryBus()))


@pytest.mark.parametrize("path", ["/login", "/desk", "/api/calls", "/static/common.js", "/healthz", "/no-such-page"])
def test_pages_api_and_static_files_carry_the_policy(http: TestClient, path: str) -> None:
    response = http.get(path, follow_redirects=False)
    assert response.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP and "unsafe-inline" not in CSP
    assert (response.headers["x-content-type-options"], response.headers["x-frame-options"],
            response.headers["referrer-policy"]) == ("nosniff", "DENY", "same-origin")


def test_the_api_documentation_goes_without_the_policy(http: TestClient) -> None:
    docs = http.get("/api/docs")
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers
    assert docs.headers["x-frame-options"] == "DENY"
