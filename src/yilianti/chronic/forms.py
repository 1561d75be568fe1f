"""What the chronic-care pages share to read a form: its text values, dates, integers and decimals with the
field errors of a half-typed value (the form then comes back with the input kept)."""

from __future__ import annotations

import math
from datetime import date

from fastapi import Request


async def values(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


def day(values: dict[str, str], name: str, errors: dict[str, str]) -> date | None:
    text = values.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[name] = "日期格式应为 YYYY-MM-DD"
        return None


def integer(values: dict[str, str], name: str, errors: dict[str, str]) -> int | None:
    text = values.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 6:
        errors[name] = "请填写整数"
        return None
    return int(text)


def decimal(values: dict[str, str], name: str, errors: dict[str, str]) -> float | None:
    text = values.get(name, "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not math.isfinite(number) or len(text) > 10:  # NaN, inf and absurd lengths are not readings
        errors[name] = "请填写数字"
        return None
    return number
