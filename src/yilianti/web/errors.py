"""The app's exception handlers: every error becomes the JSON body (CONTRACTS.md) or the error page.

JSON body: {"error": code, "message": text, "fields": {field: text}}, translated by catalogue when
the client asks for English (exceptions.error_body).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from yilianti.exceptions import AppError, Unauthenticated, error_body, field_message, wants_json
from yilianti.fhir.wire import outcome_response
from yilianti.kit.paths import is_fhir_path
from yilianti.web.faults import RETRY_AFTER_SECONDS, fault_of
from yilianti.web.render import render_page

log = logging.getLogger("yilianti")


def render_error(request: Request, status: int, body: dict[str, Any]) -> Response:
    if is_fhir_path(request.url.path):  # FHIR clients read an OperationOutcome (fhir/wire.py)
        return outcome_response(status, body)
    if wants_json(request):
        return JSONResponse(body, status_code=status)
    if status == 401:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return render_page(request, "error.html", {"status": status, "body": body}, status_code=status)


def _allowed(request: Request) -> str:
    """Every method the path answers (Starlette's 405 names only the first route of the path)."""
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def _foreign_key(exc: IntegrityError) -> bool:
    """A foreign-key violation (PostgreSQL's SQLSTATE 23503, SQLite's message), not a unique one."""
    return getattr(exc.orig, "sqlstate", None) == "23503" or "FOREIGN KEY" in str(exc.orig)


async def credentials_ended(request: Request) -> AppError | None:
    """For an /api/v1 request refused before its credentials were checked (a body FastAPI could not read or
    validate, a CSRF or NUL refusal, a path no route serves): the 401 to answer instead when those credentials
    are not in force — a session ended by its logout or expiry, a revoked or expired token. The edge (web/edge.py)
    answers requests without any credentials; whether a signed cookie's session is still in force is a database
    question, asked here on the error path only. None when the subject was resolved or its credentials hold."""
    if not request.url.path.startswith("/api/v1/") or getattr(request.state, "subject", None) is not None:
        return None
    from starlette.concurrency import run_in_threadpool

    from yilianti import db as dbmod
    from yilianti.auth.deps import resolve_subject

    def check() -> AppError | None:
        try:
            with dbmod.session_factory()() as db:
                return Unauthenticated() if resolve_subject(db, request) is None else None
        except Unauthenticated as ended:
            return ended
        except Exception:  # noqa: BLE001 - a database fault: the original answer stands
            return None

    return await run_in_threadpool(check)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        if exc.status != 401 and (ended := await credentials_ended(request)) is not None:
            exc = ended
        return render_error(request, exc.status, error_body(request, exc.code, exc.message, exc.fields, exc.params))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if (ended := await credentials_ended(request)) is not None:
            return await _app_error(request, ended)
        fields: dict[str, str] = {}
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
            # a body that is not JSON: the field is the body, not the character offset FastAPI puts in its loc
            name = "body" if err.get("type") == "json_invalid" else ".".join(loc) or "body"
            fields.setdefault(name, field_message(err))
        body = error_body(request, "invalid_input", "输入有误，请检查标出的字段", fields)
        return render_error(request, 422, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        error = getattr(exc, "error", None)  # raised while a body was read (web/nul.py): the AppError it carries
        if isinstance(error, AppError):
            return await _app_error(request, error)
        if exc.status_code != 401 and (ended := await credentials_ended(request)) is not None:
            return await _app_error(request, ended)
        code, message = {
            404: ("not_found", "未找到该资源，或您无权查看"),
            405: ("method_not_allowed", "不支持该请求方法"),
            401: ("unauthenticated", "请先登录"),
            403: ("forbidden", "您没有执行此操作的权限"),
        }.get(exc.status_code, ("http_error", str(exc.detail)))
        response = render_error(request, exc.status_code, error_body(request, code, message))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        if exc.status_code == 405:
            response.headers["Allow"] = _allowed(request)
        return response

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> Response:
        # a row the database refused that no service check caught (a missing reference, a race on a unique key):
        # the client's input, not a server fault; logged as an error all the same, to be fixed where the rule
        # belongs (tests/fuzz/run_schemathesis.py fails on these lines too)
        log.error("integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
        if _foreign_key(exc):
            return render_error(request, 422, error_body(request, "invalid_input", "所选记录不存在"))
        return render_error(request, 409, error_body(request, "conflict", "操作与当前状态冲突"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        fault = fault_of(exc)
        if fault is not None:  # refused, timed out, no pooled connection: retry later, nothing was written
            log.warning("database unavailable on %s %s: %r", request.method, request.url.path, exc)
            response = render_error(request, 503, error_body(request, fault.code, fault.message))
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return render_error(request, 500, error_body(request, "internal_error", "服务器内部错误，已记录，请稍后重试"))
