"""API shapes shared by every domain."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from annotated_types import Interval
from pydantic import AfterValidator, BaseModel, WithJsonSchema

# Every integer a client sends is bounded here, so that none reaches the database out of its column's range
# (an id beyond 64 bits was a 500 on both databases). Ids are BIGINT; their bound is the largest integer a
# JSON client counts exactly (JavaScript's Number.MAX_SAFE_INTEGER), which is also exact in the published
# OpenAPI (its numbers are doubles). tests/web/test_bad_input.py checks every request integer has a bound.
ID_MAX = 2**53 - 1
INT_MAX = 2**31 - 1  # an INTEGER column

Id = Annotated[int, Interval(ge=1, le=ID_MAX)]
"""A row id in a path, query or body: 1 … ID_MAX (0, negative or larger ids are 422 before any query)."""
LIMIT_MAX = 500
Limit = Annotated[int, Interval(ge=1, le=LIMIT_MAX)]
"""How many rows a list answers at most."""
Offset = Annotated[int, Interval(ge=0, le=INT_MAX)]
"""How many rows a list skips."""
PageNo = Annotated[int, Interval(ge=1, le=1_000_000)]
"""A page number (kit.repository.page)."""
Count = Annotated[int, Interval(ge=0, le=INT_MAX)]
"""A non-negative count or amount stored in an INTEGER column."""

BEIJING = timedelta(hours=8)
_OFFSET_MIN, _OFFSET_MAX = timedelta(hours=-12), timedelta(hours=14)  # the offsets the world's clocks use


def _local_time(value: time) -> time:
    if value.tzinfo is not None:
        if value.utcoffset() != BEIJING:
            raise ValueError("时间应为北京时间 HH:MM（不带时区）")
        value = value.replace(tzinfo=None)
    return value


LocalTime = Annotated[time, AfterValidator(_local_time), WithJsonSchema(
    {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(\+08:00)?$",
     "description": "a time of day in Beijing time, HH:MM[:SS]", "examples": ["08:00"]})]
"""A time of day on the platform's clock (Asia/Shanghai): no offset, or +08:00 (dropped). Another offset
("09:36:40+17:23") is 422 — it was a 500 on PostgreSQL."""


def _instant(value: datetime) -> datetime:
    offset = value.utcoffset()
    if offset is not None and not _OFFSET_MIN <= offset <= _OFFSET_MAX:
        raise ValueError("时区偏移应在 -12:00 到 +14:00 之间")
    if not 1900 <= value.year <= 2199:
        raise ValueError("日期时间应在 1900–2199 年之间")
    return value


Day = Annotated[date, Interval(ge=date(1900, 1, 1), le=date(2199, 12, 31))]
"""A calendar day a client sends (a range's start or end, a joining day...): years 1900–2199, so that a day
added to it cannot overflow (9999-12-31 was a 500)."""

Instant = Annotated[datetime, AfterValidator(_instant)]
"""A moment a client sends: an offset that clocks use (-12:00 … +14:00; none = Beijing time by each service's
rule) and a year in 1900–2199, so that converting it to UTC or Beijing time cannot overflow."""


class HistoryOut(BaseModel):
    """One history row of a workflow (kit/workflow.py): who moved it, when, from and to which status, why."""

    at: datetime
    user_id: int | None
    acting_institution_id: int | None
    from_status: str | None
    to_status: str
    reason: str | None
    detail: dict[str, Any] | None = None


def parse_id(raw: str) -> int | None:
    """`raw` as an `Id` (ASCII digits, 1 … ID_MAX), or None: the hot paths' pure-ASGI routes read ids with it and
    leave anything else to the regular route, which answers 422 as every route does."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 16:
        return None
    value = int(raw)
    return value if 1 <= value <= ID_MAX else None
