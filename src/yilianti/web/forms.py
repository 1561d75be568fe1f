"""Helpers for HTML forms: field errors in the user's language, safe redirects."""

from __future__ import annotations

from fastapi import Request

from yilianti.exceptions import AppError, request_locale
from yilianti.kit.i18n import translate


def errors_of(request: Request, exc: AppError) -> dict[str, str]:
    locale = request_locale(request)
    errors = {k: translate(v, locale, **exc.params) for k, v in exc.fields.items()}  # a field's {day}, {n}...
    if not errors:
        errors["_form"] = translate(exc.message, locale, **exc.params)
    return errors


def safe_next(value: str | None, default: str = "/") -> str:
    """Only local paths, so a login link cannot send the user to another site."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def opt_int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None
