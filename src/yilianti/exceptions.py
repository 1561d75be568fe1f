"""Domain errors carry their HTTP status; web/errors.py's handlers render them as JSON or HTML.

JSON body (CONTRACTS.md): {"error": code, "message": text, "fields": {field: text}}.
Messages are written in Chinese and translated by catalogue when the client asks for English.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from yilianti.kit.i18n import pick_locale, translate


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
    if path.startswith(("/api/", "/fhir/", "/dicomweb/", "/oauth/")) or path == "/fhir":
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
        body["fields"] = {k: translate(v, locale, **(params or {})) for k, v in fields.items()}
    return body


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
