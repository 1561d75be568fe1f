"""Local (Asia/Shanghai) days in SQL: `local_date(column)` is the SQL twin of `clock.to_local(value).date()`
for a UTC timestamp column, on PostgreSQL (timestamptz) and SQLite (naive UTC text). China has kept UTC+8 all
year since 1991, so SQLite's fixed offset is exact for every date the platform holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Date
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class local_date(FunctionElement[Any]):  # noqa: N801 - reads as the SQL function it stands for
    type = Date()
    inherit_cache = True
    name = "local_date"


@compiles(local_date, "postgresql")
def _pg(element: local_date, compiler: Any, **kw: Any) -> str:
    return f"(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'Asia/Shanghai')::date"


@compiles(local_date)
def _default(element: local_date, compiler: Any, **kw: Any) -> str:  # SQLite
    return f"date({compiler.process(element.clauses, **kw)}, '+8 hours')"


class month_start(FunctionElement[Any]):  # noqa: N801 - reads as the SQL function it stands for
    """The first day of a date's month: the SQL twin of `d.replace(day=1)` for a date expression (a
    `local_date`)."""

    type = Date()
    inherit_cache = True
    name = "month_start"


@compiles(month_start, "postgresql")
def _pg_month(element: month_start, compiler: Any, **kw: Any) -> str:
    return f"CAST(date_trunc('month', CAST({compiler.process(element.clauses, **kw)} AS timestamp)) AS date)"


@compiles(month_start)
def _default_month(element: month_start, compiler: Any, **kw: Any) -> str:  # SQLite
    return f"date({compiler.process(element.clauses, **kw)}, 'start of month')"
