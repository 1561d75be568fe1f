"""What every domain's repository.py shares: fetch-or-404 and one way to page a list.

Pages and API routes never build queries themselves; they call a domain's repository (queries,
named for what they return) or its service (rules). The helpers here are the only place that
knows how a list is cut into pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import BigInteger, Boolean, ColumnElement, Select, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session

from yilianti.exceptions import InvalidInput, NotFound

T = TypeVar("T")
M = TypeVar("M")

MAX_PER_PAGE = 200


def get(db: Session, model: type[M], ident: Any) -> M | None:
    """The row of `model` with primary key `ident`, or None (a missing or blank id gives None)."""
    if ident is None:
        return None
    return db.get(model, ident)


def get_or_404(db: Session, model: type[M], ident: Any, message: str | None = None) -> M:
    """The row of `model` with primary key `ident`; NotFound (404) when there is none."""
    row = get(db, model, ident)
    if row is None:
        raise NotFound(message)
    return row


def get_or_422(db: Session, model: type[M], ident: Any, field: str, message: str = "所选记录不存在") -> M:
    """The row a request names by id in its body (a ward's institution, a booking's slot...); InvalidInput (422)
    on that field when there is none — a foreign key the database would refuse with a 500."""
    row = get(db, model, ident)
    if row is None:
        raise InvalidInput(fields={field: message})
    return row


def count(db: Session, stmt: Select[Any]) -> int:
    """How many rows `stmt` gives (its ordering dropped): the number a workbench shows for a list."""
    return int(db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)


_count = count  # `page` has a parameter of that name


@dataclass
class Page(Generic[T]):
    """One page of a list. `total` is None when the list was paged without counting (`count=False`):
    then `has_next` says whether a further page exists."""

    items: list[T]
    total: int | None
    page: int
    per_page: int
    more: bool = False

    @property
    def pages(self) -> int:
        if self.total is None:
            return self.page + (1 if self.more else 0)
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.more if self.total is None else self.page < self.pages


def bounds(page: int, per_page: int, max_per_page: int = MAX_PER_PAGE) -> tuple[int, int]:
    """The page number (at least 1) and page size (1 to `max_per_page`) actually used."""
    return max(page, 1), min(max(per_page, 1), max_per_page)


def page(db: Session, stmt: Select[Any], page: int = 1, per_page: int = 20, *, count: bool = True,
         scalars: bool = True, max_per_page: int = MAX_PER_PAGE) -> Page[Any]:
    """Page `stmt` (already ordered): rows `(page-1)*per_page` onwards, at most `per_page` of them.

    With `count` the total is counted over the same statement (without its ordering); without it, one
    row more is fetched to know whether a further page exists — cheaper on large tables such as the
    audit log. `scalars=False` pages rows of several columns (tuples) instead of entities.
    """
    page, per_page = bounds(page, per_page, max_per_page)
    offset = (page - 1) * per_page
    if count:
        total = _count(db, stmt)
        window = stmt.limit(per_page).offset(offset)
        items = list(db.scalars(window)) if scalars else [tuple(r) for r in db.execute(window)]
        return Page(items, int(total), page, per_page)
    window = stmt.limit(per_page + 1).offset(offset)
    rows = list(db.scalars(window)) if scalars else [tuple(r) for r in db.execute(window)]
    return Page(rows[:per_page], None, page, per_page, more=len(rows) > per_page)


class _InIds(ColumnElement[bool]):
    """`column IN (ids)`, compiled per dialect (in_ids)."""

    inherit_cache = False  # the ids are rendered at compile time: a statement holding them is not cached
    type = Boolean()

    def __init__(self, column: ColumnElement[Any], ids: Iterable[int]) -> None:
        self.column = column
        self.ids = sorted(set(ids))


def in_ids(column: Any, ids: Iterable[int]) -> ColumnElement[bool]:
    """`column IN ids` for a list that may hold thousands (an export's rows): on PostgreSQL one array parameter,
    `= ANY(%s)`, so the statement's text is the same whatever the count (psycopg parses a statement of a thousand
    placeholders anew each time: ~170 ms for the patient export's resident IDs); elsewhere the usual IN."""
    return _InIds(column, ids)


@compiles(_InIds)
def _in_ids(element: _InIds, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column.in_(element.ids), **kw))


@compiles(_InIds, "postgresql")
def _in_ids_pg(element: _InIds, compiler: Any, **kw: Any) -> str:
    array = bindparam(None, element.ids, type_=postgresql.ARRAY(BigInteger()))
    return str(compiler.process(element.column == any_(array), **kw))
