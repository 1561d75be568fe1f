"""The outermost web layer (pure ASGI, in front of the hot paths and the framework): what every
response of the platform carries whatever served it.

- Security headers: a Content-Security-Policy that allows scripts from /static only (no inline
  script or on*= handler: web/static/js/app.js binds the pages' behaviours), no framing
  (X-Frame-Options and frame-ancestors), nosniff, a same-origin Referrer-Policy, and
  Cache-Control: no-store on everything but /static (patient pages and the API) unless the route
  chose its own (private image caching of the viewer).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# the offline Swagger UI (fastapi_offline) starts itself with an inline script; it shows no patient data
DOCS_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
DOCS_PATHS = ("/api/docs", "/docs/oauth2-redirect")

_COMMON = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
_PAGE = [(b"content-security-policy", CSP.encode()), *_COMMON]
_DOCS = [(b"content-security-policy", DOCS_CSP.encode()), *_COMMON]
_NO_STORE = (b"cache-control", b"no-store")


def security_headers(path: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The response's headers with the security headers added (a route's own Cache-Control is kept)."""
    added = _DOCS if path.startswith(DOCS_PATHS) else _PAGE
    names = {name.lower() for name, _ in headers}
    out = [*headers, *(h for h in added if h[0] not in names)]
    if b"cache-control" not in names and not path.startswith("/static/"):
        out.append(_NO_STORE)
    return out


class Edge:
    """Pure ASGI middleware, added last so that it wraps everything (the hot paths' FastRoutes too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": security_headers(path, list(message.get("headers", ())))}
            await send(message)

        await self.app(scope, receive, send_secured)
