"""Server-rendered pages: one Jinja2 Environment per locale (gettext-style `_` is bound per locale)."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from yilianti.config import get_settings
from yilianti.exceptions import request_locale
from yilianti.kit import clock, listing
from yilianti.kit.i18n import find_label, label, translate

TEMPLATES = Path(__file__).parent / "templates"


def _fmt_dt(value: datetime | None, seconds: bool = False) -> str:
    return clock.fmt_local(value, seconds) if value else ""


def _fmt_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return clock.to_local(value).strftime("%Y-%m-%d")
    return value.isoformat()


def mask_id(value: str | None) -> str:
    """Show a resident ID as 110105********002X."""
    if not value:
        return ""
    if len(value) > 10:
        return value[:6] + "*" * (len(value) - 10) + value[-4:]
    # short identifiers (record numbers, insurance numbers): the last four only
    return "*" * (len(value) - 4) + value[-4:] if len(value) > 4 else "*" * len(value)


def mask_phone(value: str | None) -> str:
    if not value:
        return ""
    if len(value) == 11:
        return value[:3] + "****" + value[-4:]
    # landlines, numbers with separators or a country code: never shown whole in a list
    return value[:3] + "*" * (len(value) - 7) + value[-4:] if len(value) > 8 else "*" * (len(value) - 2) + value[-2:]


def age_parts(birth: date | None, today: date | None = None) -> tuple[int, str] | None:
    """Age as a Chinese clinic shows it: years from 1 year on, months under 1 year, days under 1 month."""
    if birth is None:
        return None
    today = today or clock.today_local()
    if birth > today:
        return None
    years = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    if years >= 1:
        return years, "{n}岁"
    months = (today.year - birth.year) * 12 + today.month - birth.month - (today.day < birth.day)
    if months >= 1:
        return months, "{n}个月"
    return (today - birth).days, "{n}天"


@lru_cache
def environment(locale: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.ChainableUndefined,
    )

    def _(text: str, **params: object) -> str:
        return translate(text, locale, **params)

    def age(birth: date | None) -> str:
        parts = age_parts(birth)
        return translate(parts[1], locale, n=parts[0]) if parts else ""

    def _label(code: object, kind: str) -> str:
        return label(kind, code, locale)

    env.globals.update(_=_, locale=locale, fmt_dt=_fmt_dt, fmt_date=_fmt_date, mask_id=mask_id,
                       mask_phone=mask_phone)
    env.filters.update(label=_label, dt=_fmt_dt, d=_fmt_date, mask_id=mask_id, mask_phone=mask_phone, age=age)
    return env


def render_page(request: Request, template: str, context: dict[str, Any] | None = None,
                status_code: int = 200) -> HTMLResponse:
    locale = request_locale(request)
    env = environment(locale)
    ctx: dict[str, Any] = {
        "request": request,
        "subject": getattr(request.state, "subject", None),
        "csrf_token": request.session.get("csrf", "") if "session" in request.scope else "",
        "path": request.url.path,
        "unread": getattr(request.state, "unread", 0),
        "poll_seconds": get_settings().poll_seconds,
    }
    if context:
        ctx.update(context)
    done = request.query_params.get("done")
    if done and "flash" not in ctx:  # after a POST the page says what was done (locale/*/done.json)
        section = request.url.path.strip("/").split("/")[0]
        ctx["flash"] = find_label(f"done.{section}", done, locale) or find_label("done", done, locale)
    html = env.get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status_code)


def t(request: Request, text: str, **params: object) -> str:
    return translate(text, request_locale(request), **params)


def xlsx_response(title: str, headers: list[str], rows: list[Any] | list[tuple[Any, ...]], name: str) -> Response:
    """A list's filtered rows as an .xlsx download (kit/listing.py builds the workbook)."""
    stamp = clock.to_local(clock.now()).strftime("%Y%m%d-%H%M")
    return Response(listing.xlsx(title, headers, rows), media_type=listing.XLSX_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.xlsx"'})
