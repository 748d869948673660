"""Security headers on every HTTP response.

The Content-Security-Policy lets a page run only scripts and styles from callcard itself (no inline
script, no handler attribute, no other site): a caller ID that ever slipped past escaping could
still not run. Pages cannot be framed (clickjacking), types are not sniffed, and no referrer leaves
for another site. The API's documentation pages load Swagger UI and ReDoc from their CDN with inline
scripts and hold no data, so they are served without the policy.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
    "media-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
))
ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
          (b"referrer-policy", b"same-origin"))
WITH_POLICY = (*ALWAYS, (b"content-security-policy", CSP.encode()))
DOCS = ("/api/docs", "/redoc", "/docs/oauth2-redirect")


class SecurityHeaders:
    """Pure ASGI (no BaseHTTPMiddleware: it buffers streamed CSV downloads' tasks); websockets pass."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = ALWAYS if scope["path"].startswith(DOCS) else WITH_POLICY

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, sending)
