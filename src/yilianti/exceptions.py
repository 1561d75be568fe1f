"""Domain errors carry their HTTP status; one set of handlers renders JSON or HTML.

JSON body (CONTRACTS.md): {"error": code, "message": text, "fields": {field: text}}.
Messages are written in Chinese and translated by catalogue when the client asks for English.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from yilianti.kit.i18n import pick_locale, translate

log = logging.getLogger("yilianti")


class AppError(Exception):
    status = 400
    code = "bad_request"
    default_message = "请求无效"

    def __init__(
        self,
        message: str | None = None,
        *,
        fields: dict[str, str] | None = None,
        code: str | None = None,
        status: int | None = None,
        **params: Any,
    ) -> None:
        self.message = message or self.default_message
        self.fields = fields or {}
        self.params = params
        if code:
            self.code = code
        if status:
            self.status = status
        super().__init__(self.message)


class NotFound(AppError):
    status, code, default_message = 404, "not_found", "未找到该资源，或您无权查看"


class Forbidden(AppError):
    status, code, default_message = 403, "forbidden", "您没有执行此操作的权限"


class Unauthenticated(AppError):
    status, code, default_message = 401, "unauthenticated", "请先登录"


class Conflict(AppError):
    status, code, default_message = 409, "conflict", "操作与当前状态冲突"


class InvalidInput(AppError):
    status, code, default_message = 422, "invalid_input", "输入有误，请检查标出的字段"


class Locked(AppError):
    status, code, default_message = 423, "account_locked", "账号已被临时锁定，请稍后再试"


def wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path.startswith("/fhir/"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def request_locale(request: Request) -> str:
    """Pages are Chinese unless the user chose English (cookie); the API follows Accept-Language."""
    accept = request.headers.get("accept-language") if wants_json(request) else None
    return pick_locale(request.cookies.get("lang"), accept)


def error_body(request: Request, code: str, message: str, fields: dict[str, str] | None = None,
               params: dict[str, Any] | None = None) -> dict[str, Any]:
    locale = request_locale(request)
    body: dict[str, Any] = {"error": code, "message": translate(message, locale, **(params or {}))}
    if fields:
        body["fields"] = {k: translate(v, locale) for k, v in fields.items()}
    return body


def render_error(request: Request, status: int, body: dict[str, Any]) -> Response:
    if wants_json(request):
        return JSONResponse(body, status_code=status)
    if status == 401:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    from yilianti.web.render import render_page

    return render_page(request, "error.html", {"status": status, "body": body}, status_code=status)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return render_error(request, exc.status, error_body(request, exc.code, exc.message, exc.fields, exc.params))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        fields: dict[str, str] = {}
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
            name = ".".join(loc) or "body"
            fields.setdefault(name, field_message(err))
        body = error_body(request, "invalid_input", "输入有误，请检查标出的字段", fields)
        return render_error(request, 422, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code, message = {
            404: ("not_found", "未找到该资源，或您无权查看"),
            405: ("method_not_allowed", "不支持该请求方法"),
            401: ("unauthenticated", "请先登录"),
            403: ("forbidden", "您没有执行此操作的权限"),
        }.get(exc.status_code, ("http_error", str(exc.detail)))
        return render_error(request, exc.status_code, error_body(request, code, message))

    @app.exception_handler(SATimeoutError)
    async def _pool_busy(request: Request, exc: SATimeoutError) -> Response:
        log.warning("database pool exhausted on %s %s", request.method, request.url.path)
        response = render_error(request, 503, error_body(request, "busy", "系统繁忙，请稍后重试"))
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return render_error(request, 500, error_body(request, "internal_error", "服务器内部错误，已记录，请稍后重试"))


def field_message(err: Any) -> str:
    """One pydantic error → a short Chinese message (translated later by catalogue)."""
    kind = err.get("type", "")
    if kind == "missing" or (err.get("input") is None and kind.endswith("_type")):
        return "必填"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "应为整数"
    if kind in ("float_parsing", "float_type"):
        return "应为数字"
    if kind.startswith("date"):
        return "日期格式应为 YYYY-MM-DD"
    if kind.startswith("time"):
        return "时间格式应为 HH:MM"
    if kind == "bool_parsing":
        return "应为是或否"
    if kind == "string_too_long":
        return "内容过长"
    if kind == "string_too_short":
        return "内容过短"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return "数值超出允许范围"
    if kind in ("enum", "literal_error"):
        return "取值不在允许范围内"
    if kind == "json_invalid":
        return "JSON 格式不正确"
    if kind == "value_error":
        original = (err.get("ctx") or {}).get("error")
        if original is not None and hasattr(original, "message"):
            return str(original.message)
        return str(err.get("msg", "格式不正确")).removeprefix("Value error, ")
    return "格式不正确"


M = TypeVar("M", bound=BaseModel)


def parse_input(model: type[M], data: Any, model_field: dict[str, str] | None = None) -> M:
    """Validate form or dict data; errors become InvalidInput with one message per field.

    `model_field` maps a model-level message (no field in its location) to the field it
    concerns, so that the page can show it beside that field.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for err in exc.errors():
            msg = field_message(err)
            name = ".".join(str(p) for p in err["loc"]) or (model_field or {}).get(msg, "_form")
            fields.setdefault(name, msg)
        raise InvalidInput(fields=fields) from None
