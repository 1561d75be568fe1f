"""The cockpit's JSON: an alliance's figures for a period (what the charts and a member system read)."""

from __future__ import annotations

from pydantic import BaseModel


class FigureOut(BaseModel):
    code: str
    name: str
    name_en: str
    unit: str
    value: float | None
    target: float | None
    status: str | None  # green | amber | red
    trend: str | None  # up | down | flat
    note: str | None  # why there is no value under a member or department filter
    by_month: dict[str, float | None]


class FiguresOut(BaseModel):
    alliance_id: int
    start: str  # YYYY-MM
    end: str
    member: int | None
    department: int | None
    figures: list[FigureOut]
