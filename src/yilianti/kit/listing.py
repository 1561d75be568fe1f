"""One way every list filters: search, date range, status, paging (with the total) and xlsx export.

A list page reads its `ListParams` from the URL (`q`, `from`, `to`, `status`, `page`, `per_page`,
`format=xlsx`), hands the domain's query to `ListParams.apply` with the columns it searches, the
column its dates refer to and the statuses it knows, then pages it with `kit.repository.page` — or,
for `format=xlsx`, exports every filtered row (`export_rows`, no page cut). The filters live in the
URL, so a workbench count links to exactly the rows it counted and an export is what the screen shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from io import BytesIO
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Date, DateTime, Select, or_
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from yilianti.kit import clock
from yilianti.kit.repository import Page, page

PER_PAGE = 50
PER_PAGE_CHOICES = (10, 20, 50, 100, 200)
EXPORT_MAX_ROWS = 100_000  # an xlsx sheet this size is already ~10 MB; beyond it, narrow the filter
PARAMS = ("q", "from", "to", "status", "page", "per_page")


def parse_day(value: str | None) -> date | None:
    """A typed day (YYYY-MM-DD), or None when blank or not a day."""
    try:
        return date.fromisoformat((value or "").strip()) if value and value.strip() else None
    except ValueError:
        return None  # a half-typed date filters nothing rather than failing the list


def _int(value: str | None, default: int) -> int:
    value = (value or "").strip()
    return int(value) if value.isdigit() else default


def day_bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """Local (Asia/Shanghai) days as UTC instants: [start 00:00, end+1 00:00)."""
    lo = datetime.combine(start, time(), clock.SHANGHAI).astimezone(UTC) if start else None
    hi = datetime.combine(end + timedelta(days=1), time(), clock.SHANGHAI).astimezone(UTC) if end else None
    return lo, hi


@dataclass(frozen=True)
class ListParams:
    q: str = ""
    start: date | None = None
    end: date | None = None
    status: str = ""
    page: int = 1
    per_page: int = PER_PAGE
    export: bool = False
    extra: tuple[tuple[str, str], ...] = ()  # the list's own parameters (tab, side...), kept in every link

    @classmethod
    def of(cls, query: Mapping[str, str], *, keep: Iterable[str] = ()) -> ListParams:
        """From a request's query parameters; `keep` names the list's own parameters to carry along."""
        per_page = _int(query.get("per_page"), PER_PAGE)
        return cls(q=(query.get("q") or "").strip()[:100], start=parse_day(query.get("from")), end=parse_day(query.get("to")),
                   status=(query.get("status") or "").strip(), page=max(_int(query.get("page"), 1), 1),
                   per_page=per_page if per_page in PER_PAGE_CHOICES else PER_PAGE,
                   export=query.get("format") == "xlsx",
                   extra=tuple((k, query[k]) for k in keep if query.get(k)))

    def only(self, statuses: Iterable[str]) -> ListParams:
        """The same parameters with a status outside `statuses` dropped (an old link filters nothing)."""
        return self if not self.status or self.status in set(statuses) else replace(self, status="")

    def apply(self, stmt: Select[Any], *, search: Sequence[Any] = (), day: Any = None, status: Any = None,
              exact: Sequence[Any] = ()) -> Select[Any]:
        """`stmt` narrowed by the filters: `q` as a substring of any `search` column (or equal to one of
        the `exact` columns: numbers, codes), `from`/`to` on the `day` column (a date, or a UTC datetime
        taken by local days), `status` on the `status` column."""
        if self.q and (search or exact):
            like = f"%{self.q.replace('%', '').replace('_', '')}%"
            terms: list[ColumnElement[bool]] = [c.ilike(like) for c in search]
            terms += [c == (int(self.q) if _is_int_column(c) else self.q) for c in exact
                      if not _is_int_column(c) or self.q.isdigit()]
            stmt = stmt.where(or_(*terms)) if terms else stmt
        if day is not None and (self.start or self.end):
            if isinstance(getattr(day, "type", None), Date) and not isinstance(day.type, DateTime):
                if self.start:
                    stmt = stmt.where(day >= self.start)
                if self.end:
                    stmt = stmt.where(day <= self.end)
            else:
                lo, hi = day_bounds(self.start, self.end)
                if lo:
                    stmt = stmt.where(day >= lo)
                if hi:
                    stmt = stmt.where(day < hi)
        if status is not None and self.status:
            stmt = stmt.where(status == self.status)
        return stmt

    def pairs(self, **changes: Any) -> list[tuple[str, str]]:
        """The query parameters of this list, with `changes` (None removes one)."""
        values: dict[str, Any] = dict(self.extra)
        values.update({"q": self.q, "from": self.start.isoformat() if self.start else "",
                       "to": self.end.isoformat() if self.end else "", "status": self.status,
                       "page": self.page if self.page > 1 else "",
                       "per_page": self.per_page if self.per_page != PER_PAGE else ""})
        values.update(changes)
        return [(k, str(v)) for k, v in values.items() if v not in (None, "")]

    def url(self, path: str, **changes: Any) -> str:
        query = urlencode(self.pairs(**changes))
        return f"{path}?{query}" if query else path

    def clear_url(self, path: str) -> str:
        """The same list without search, dates, status or page."""
        query = urlencode(list(self.extra))
        return f"{path}?{query}" if query else path

    def export_url(self, path: str) -> str:
        return self.url(path, page=None, format="xlsx")

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.start or self.end or self.status)


def _is_int_column(column: Any) -> bool:
    try:
        return column.type.python_type is int
    except (AttributeError, NotImplementedError):
        return False


def export_rows(db: Session, stmt: Select[Any], *, scalars: bool = True) -> list[Any]:
    """Every row of the filtered list for an export (no page cut, at most EXPORT_MAX_ROWS)."""
    window = stmt.limit(EXPORT_MAX_ROWS)
    return list(db.scalars(window)) if scalars else [tuple(r) for r in db.execute(window)]


def page_or_export(db: Session, stmt: Select[Any], lp: ListParams, *, scalars: bool = True) -> Page[Any]:
    """One page of the filtered list with its total, or — for `format=xlsx` — every filtered row as one page."""
    if lp.export:
        rows = export_rows(db, stmt, scalars=scalars)
        return Page(rows, len(rows), 1, max(len(rows), 1))
    return page(db, stmt, lp.page, lp.per_page, scalars=scalars)


def xlsx(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]],
         cell: Callable[[Any], Any] | None = None) -> bytes:
    """An .xlsx workbook of one sheet: a bold header row, then `rows` (datetimes in local time)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=title[:31] or "Sheet1")
    header = []
    for h in headers:
        c = WriteOnlyCell(ws, value=h)
        c.font = Font(bold=True)
        header.append(c)
    ws.append(header)
    for row in rows:
        ws.append([_cell(v if cell is None else cell(v)) for v in row])
    out = BytesIO()
    wb.save(out)
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return clock.to_local(value).replace(tzinfo=None)
    if value is None or isinstance(value, int | float | str | date):
        return value
    return str(value)


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
