"""Search parameters: declared once per resource type, parsed here, and published from the same table in the
CapabilityStatement and the OpenAPI (so what they say is what the server does).

Values follow the FHIR search syntax: a token is `system|code`, `|code` or `code`; a comma is OR, a repeated
parameter is AND; dates take a prefix (eq, ne, gt, lt, ge, le, sa, eb) and may be partial (2015, 2015-03);
a string matches the start of the value (`:contains` anywhere, `:exact` the whole). A parameter this server
does not know is refused (400), not silently ignored: a client must not believe it filtered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_

from yilianti.exceptions import AppError
from yilianti.fhir.wire import digits
from yilianti.kit import clock
from yilianti.kit.repository import MAX_PER_PAGE


class BadSearch(AppError):
    status, code, default_message = 400, "invalid_search", "检索参数无效"


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # token | string | date | reference
    doc: str
    modifiers: tuple[str, ...] = ()


COMMON = (Param("_id", "token", "logical id"),
          Param("_lastUpdated", "date", "when the resource last changed (meta.lastUpdated)"))
# result parameters that change nothing here: formats, and how to total (the total given is always exact;
# `_totalMethod` is what fhirpy's count() sends)
IGNORED = frozenset({"_format", "_pretty", "_totalMethod"})
DEFAULT_COUNT = 20
STRING_MODIFIERS = ("contains", "exact")


@dataclass
class Query:
    """A parsed search: each filter parameter's values (a list per repetition, OR within one), and paging."""

    params: dict[str, list[tuple[str | None, list[str]]]] = field(default_factory=dict)
    count: int = DEFAULT_COUNT
    page: int = 1
    includes: list[str] = field(default_factory=list)
    revincludes: list[str] = field(default_factory=list)
    total: bool = False  # count the matches (`_total=accurate`, or `_count=0`); else `next` says if more follow

    def each(self, name: str) -> list[tuple[str | None, list[str]]]:
        return self.params.get(name, [])


def _int(name: str, value: str, low: int, high: int) -> int:
    if not digits(value) or not low <= int(value) <= high:
        raise BadSearch("检索参数无效", fields={name: "应为允许范围内的整数"})
    return int(value)


def parse(items: list[tuple[str, str]], declared: dict[str, Param], *, includes: frozenset[str] = frozenset(),
          revincludes: frozenset[str] = frozenset()) -> Query:
    """The query string's (name, value) pairs against the resource type's declared parameters."""
    q = Query()
    for raw_name, value in items:
        name, _, modifier = raw_name.partition(":")
        if name == "_count":
            q.count = _int(name, value, 0, MAX_PER_PAGE)  # 0: the total only
        elif name == "_page":
            q.page = _int(name, value, 1, 1_000_000)
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise BadSearch("检索参数无效", fields={name: "应为 none、estimate 或 accurate"})
            q.total = value != "none"
        elif name in IGNORED:
            continue
        elif name in ("_include", "_revinclude"):
            allowed = includes if name == "_include" else revincludes
            if value not in allowed:
                raise BadSearch("不支持该包含参数", fields={name: value[:100]})
            (q.includes if name == "_include" else q.revincludes).append(value)
        elif name in declared:
            param = declared[name]
            if modifier and modifier not in param.modifiers:
                raise BadSearch("不支持该检索修饰符", fields={raw_name[:100]: modifier[:50]})
            values = [v for v in value.split(",") if v != ""]
            if not values or any(len(v) > 200 for v in values):
                raise BadSearch("检索参数无效", fields={name: "值为空或过长"})
            q.params.setdefault(name, []).append((modifier or None, values))
        else:
            raise BadSearch("不支持该检索参数", fields={raw_name[:100]: "不支持"})
    return q


# ------------------------------------------------------------------------------------------- value syntax


def token(value: str) -> tuple[str | None, str]:
    """`system|code` → (system, code); `|code` → ("", code); `code` → (None, code)."""
    if "|" in value:
        system, _, code = value.partition("|")
        return system, code
    return None, value


def reference(value: str, type_: str) -> int | None:
    """`Type/123`, a full URL ending so, or `123` → 123; None when it names another type or no integer id."""
    tail = value.rstrip("/").split("/")
    if len(tail) >= 2 and tail[-2] != type_:
        return None
    return int(tail[-1]) if digits(tail[-1]) and len(tail[-1]) < 16 else None


_PREFIX = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(.*)$", re.DOTALL)  # any text: a line break is the date's 400
YEARS = range(1800, 2201)  # dates a search may name: beyond them the arithmetic (a day later, UTC) overflows
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def _range(text: str, name: str) -> tuple[date, date] | tuple[datetime, datetime]:
    """The range [start, end) a partial date (as days) or a dateTime (as instants; no zone = Beijing) covers."""
    m = _DATE.match(text)
    try:
        if m:
            y, mo, d = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
            if y not in YEARS:
                raise ValueError(text)
            first = date(y, mo, d)
            if m.group(3):
                return first, first + timedelta(days=1)
            if m.group(2):
                return first, date(y + (mo == 12), mo % 12 + 1, 1)
            return first, date(y + 1, 1, 1)
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if at.year not in YEARS:
            raise ValueError(text)
    except (ValueError, OverflowError):
        raise BadSearch("日期格式无效", fields={name: text[:50]}) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=clock.SHANGHAI)
    return at, at + timedelta(seconds=1)


def _prefixed(raw: str) -> tuple[str, str]:
    """A date parameter's comparison prefix (eq when none) and the rest, which _range then judges."""
    m = _PREFIX.match(raw)
    assert m is not None  # (.*) under DOTALL matches every text
    return m.group(1) or "eq", m.group(2)


def _as(value: date, instant: bool) -> Any:
    """A day as the column compares it: itself for a DATE, its Beijing midnight for an instant."""
    if isinstance(value, datetime):
        return value if instant else clock.to_local(value).date()
    return datetime.combine(value, time(0), tzinfo=clock.SHANGHAI) if instant else value


def date_clause(column: Any, values: list[str], name: str, *, is_date: bool = False) -> ColumnElement[bool]:
    """OR of the values against a DATE column (`is_date`) or an instant (timezone-aware) column."""
    parts = []
    for raw in values:
        prefix, text = _prefixed(raw)
        start, end = _range(text, name)
        lo, hi = _as(start, not is_date), _as(end, not is_date)
        parts.append({"eq": and_(column >= lo, column < hi), "ap": and_(column >= lo, column < hi),
                      "ne": or_(column < lo, column >= hi), "gt": column >= hi, "sa": column >= hi,
                      "ge": column >= lo, "lt": column < lo, "eb": column < lo, "le": column < hi}[prefix])
    return or_(*parts)


def period_matches(start: datetime, end: datetime | None, values: list[str], name: str) -> bool:
    """A date parameter against a Period [start, end) (end None: still open), as FHIR searches a Period: eq (and
    ap) when the period overlaps the value's range, gt/ge/lt/le when the range above/below the value meets the
    period, sa when it starts after the value, eb when it ended before it; OR of the values."""
    for raw in values:
        prefix, text = _prefixed(raw)
        lo_, hi_ = _range(text, name)
        lo, hi = _as(lo_, True), _as(hi_, True)
        overlaps = start < hi and (end is None or end > lo)
        if {"eq": overlaps, "ap": overlaps, "ne": not overlaps, "gt": end is None or end > hi,
            "ge": end is None or end > lo, "lt": start < lo, "le": start < hi, "sa": start >= hi,
            "eb": end is not None and end <= lo}[prefix]:
            return True
    return False


def string_clause(column: Any, modifier: str | None, values: list[str]) -> ColumnElement[bool]:
    if modifier == "exact":
        return or_(*(column == v for v in values))
    if modifier == "contains":
        return or_(*(column.contains(v, autoescape=True) for v in values))
    return or_(*(column.startswith(v, autoescape=True) for v in values))


def ids_clause(column: Any, values: list[str]) -> ColumnElement[bool]:
    ids = [int(v) for v in values if digits(v) and len(v) < 16]
    return column.in_(ids) if ids else false()


def filters(q: Query, builders: dict[str, Callable[[str | None, list[str]], ColumnElement[bool]]]
            ) -> list[ColumnElement[bool]]:
    """One condition per repetition of each parameter (AND), each the OR of its values."""
    return [builders[name](modifier, values) for name, reps in q.params.items() for modifier, values in reps]


def date_matches(value: datetime | None, values: list[str], name: str) -> bool:
    """`date_clause` for a value in hand (a list already filtered by the record's rules): OR of the values."""
    if value is None:
        return False
    at = clock.as_utc(value)
    for raw in values:
        prefix, text = _prefixed(raw)
        start, end = _range(text, name)
        lo, hi = _as(start, True), _as(end, True)
        if {"eq": lo <= at < hi, "ap": lo <= at < hi, "ne": not lo <= at < hi, "gt": at >= hi, "sa": at >= hi,
            "ge": at >= lo, "lt": at < lo, "eb": at < lo, "le": at < hi}[prefix]:
            return True
    return False
