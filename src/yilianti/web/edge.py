"""The outermost web layer (pure ASGI, in front of the hot paths and the framework): what every
response of the platform carries whatever served it.

- Security headers: a Content-Security-Policy that allows scripts from /static only (no inline
  script or on*= handler: web/static/js/app.js binds the pages' behaviours), no framing
  (X-Frame-Options and frame-ancestors), nosniff, a same-origin Referrer-Policy, and
  Cache-Control: no-store on everything but /static (patient pages and the API) unless the route
  chose its own (private image caching of the viewer).
- An /api/v1 request without credentials (no bearer token, no signed session cookie) is answered 401
  before its body is read.
- Request bodies are bounded (request_max_bytes; multipart uploads upload_max_bytes): 413 in the
  contract's body, from the declared length or as soon as the bytes read pass the bound.
- Failures no handler answered become the contract's body: 503 with Retry-After when the database is
  unavailable (web/faults.py), 500 otherwise; an error the app already answered (Starlette re-raises
  after its 500 page) does not close the keep-alive connection.
"""

from __future__ import annotations

import json
import logging
from base64 import b64decode

from fastapi import Request
from itsdangerous import BadSignature, TimestampSigner
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yilianti.config import Settings, get_settings
from yilianti.exceptions import AppError, Unauthenticated, error_body
from yilianti.fastdb.route import bearer
from yilianti.web.errors import render_error
from yilianti.web.faults import RETRY_AFTER_SECONDS, BodyTooLarge, fault_of

log = logging.getLogger("yilianti")
API = "/api/v1/"
SESSION_COOKIE = "ylt_session"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# the offline Swagger UI (fastapi_offline) starts itself with an inline script; it shows no patient data
DOCS_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
DOCS_PATHS = ("/api/docs", "/docs/oauth2-redirect")
# the OHIF viewer (diagnostics/dicomweb/pages.py) is a vendor build: its page starts with inline scripts, its image
# codecs are WebAssembly and its workers come from blob: URLs; it still connects to this origin only (/dicomweb)
OHIF_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:") \
    .replace("connect-src 'self'", "connect-src 'self' blob: data:") + "; worker-src 'self' blob:"
OHIF_PATHS = ("/ohif/",)

_COMMON = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
_PAGE = [(b"content-security-policy", CSP.encode()), *_COMMON]
_DOCS = [(b"content-security-policy", DOCS_CSP.encode()), *_COMMON]
_OHIF = [(b"content-security-policy", OHIF_CSP.encode()), *_COMMON]
_NO_STORE = (b"cache-control", b"no-store")


def security_headers(path: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The response's headers with the security headers added (a route's own Cache-Control is kept)."""
    added = _DOCS if path.startswith(DOCS_PATHS) else _OHIF if path.startswith(OHIF_PATHS) else _PAGE
    names = {name.lower() for name, _ in headers}
    out = [*headers, *(h for h in added if h[0] not in names)]
    if b"cache-control" not in names and not path.startswith("/static/"):
        out.append(_NO_STORE)
    return out


class _Exchange:
    """What has been sent of one response."""

    __slots__ = ("answered", "started", "completed")

    def __init__(self) -> None:
        self.answered = False  # by the edge itself (413): the app's own answer is dropped
        self.started = False
        self.completed = False


class Edge:
    """Pure ASGI middleware, added last so that it wraps everything (the hot paths' FastRoutes too)."""

    def __init__(self, app: ASGIApp, settings: Settings | None = None) -> None:
        self.app = app
        settings = settings or get_settings()
        self.body_max = settings.request_max_bytes
        self.upload_max = settings.upload_max_bytes
        self.sessions = TimestampSigner(settings.resolved_secret_key())
        self.session_max_age = settings.session_max_age_hours * 3600

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith(API) and not path.startswith(DOCS_PATHS) and not self._credentials(scope):
            # before the body is read or parsed: a POST without credentials is a 401, not a 403/422
            await self._error(scope, receive, send, Unauthenticated())
            return
        limit = self._limit(scope)
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._error(scope, receive, send, BodyTooLarge())
            return
        exchange = _Exchange()
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            if exchange.answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not exchange.started:
                    # answered here (an exception would become the framework's 400 "error parsing the body");
                    # the app is told the client left, and whatever it sends after is dropped
                    exchange.answered = exchange.started = exchange.completed = True
                    await self._error(scope, receive, send, BodyTooLarge())
                    return {"type": "http.disconnect"}
            return message

        async def send_secured(message: Message) -> None:
            if exchange.answered:
                return
            if message["type"] == "http.response.start":
                exchange.started = True
                message = {**message, "headers": security_headers(path, list(message.get("headers", ())))}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                exchange.completed = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, send_secured)
        except Exception as exc:
            if exchange.completed:
                # the app's handler already answered (Starlette re-raises after its 500 page): the connection
                # stays open for the client's next request instead of being closed by the server
                return
            if exchange.started:
                raise
            fault = fault_of(exc)
            if isinstance(exc, AppError):
                error: AppError = exc
            elif fault is not None:
                log.warning("database unavailable on %s %s: %r", scope["method"], path, exc)
                error = fault
            else:
                log.exception("unexpected error on %s %s", scope["method"], path)
                error = AppError("服务器内部错误，已记录，请稍后重试", code="internal_error", status=500)
            await self._error(scope, receive, send, error)

    def _limit(self, scope: Scope) -> int:
        content_type = _header(scope, b"content-type") or ""
        # a form upload, or DICOM instances sent by STOW-RS (multipart/related)
        return self.upload_max if content_type.startswith(("multipart/form-data", "multipart/related")) \
            else self.body_max

    def _credentials(self, scope: Scope) -> bool:
        """A bearer token, or a session cookie signed by us that names a signed-in user (whether that session
        is still in force is the app's check, against the database)."""
        if bearer(scope):
            return True
        cookie = _header(scope, b"cookie")
        if not cookie or SESSION_COOKIE not in cookie:
            return False
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE:
                try:
                    data = json.loads(b64decode(self.sessions.unsign(value, max_age=self.session_max_age)))
                except (BadSignature, ValueError):
                    return False
                return isinstance(data, dict) and bool(data.get("uid")) and bool(data.get("sid"))
        return False

    async def _error(self, scope: Scope, receive: Receive, send: Send, error: AppError) -> None:
        request = Request(scope)
        response = render_error(request, error.status,
                                error_body(request, error.code, error.message, error.fields, error.params))
        if error.status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        if error.status == 413:
            response.headers["Connection"] = "close"  # the rest of the body is not read

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": security_headers(scope.get("path", ""),
                                                                  list(message.get("headers", ())))}
            await send(message)

        await response(scope, receive, secured)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
