"""SQLAlchemy Core clauses compiled into the positional SQL of the asyncpg hot paths.

A rule is one clause builder in the domain that owns it (ARCHITECTURE.md "One rule, one place"). The ORM
path passes it ORM columns or Python values; a hot path passes it the placeholders of its statement
(`Params`) and compiles it — once, at import — into PostgreSQL text (`sql`), with constants such as
statuses rendered from the enums and the statement's parameters left as asyncpg's `$n`.

    P = Params(patient="bigint", now="timestamptz")
    STATEMENT = sql(select(...).where(policy.care(P.patient, P.institution)))
    await conn.fetch(STATEMENT, *P.args(patient=1, now=clock.now()))
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ClauseElement,
    ColumnElement,
    Date,
    DateTime,
    Interval,
    Text,
    literal_column,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

_DIALECT = postgresql.dialect()
_TYPES: dict[str, TypeEngine[Any]] = {"bigint": BigInteger(), "text": Text(), "timestamptz": DateTime(timezone=True),
                                      "date": Date(), "boolean": Boolean()}


def sql(clause: ClauseElement) -> str:
    """PostgreSQL text of a Core statement or clause: constants inline, placeholders (`Params`) as they are."""
    return str(clause.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))


def column(text: str, type_: str | TypeEngine[Any] | None = None) -> ColumnElement[Any]:
    """A column of the surrounding hand-written statement (e.g. `r.patient_id`) as a clause argument."""
    return literal_column(text, _TYPES.get(type_) if isinstance(type_, str) else type_)


def minus(at: Any, delta: timedelta) -> Any:
    """`at - delta` for a Python datetime (computed here) or a SQL expression (an interval constant)."""
    if isinstance(at, ColumnElement):
        return at - literal_column(f"interval '{int(delta.total_seconds())} seconds'", Interval())
    return at - delta


class Params:
    """The named parameters of one asyncpg statement, in order: `P.name` is its `$n::type` placeholder
    (a ColumnElement for the clause builders, `str(P.name)` in hand-written text); `args` maps named
    values to the positional list asyncpg wants."""

    def __init__(self, **types: str) -> None:
        self.names = tuple(types)
        self._columns = {name: literal_column(f"${i}::{type_}", _TYPES.get(type_.removesuffix("[]")))
                         for i, (name, type_) in enumerate(types.items(), start=1)}

    def __getattr__(self, name: str) -> ColumnElement[Any]:
        try:
            return self._columns[name]
        except KeyError:
            raise AttributeError(name) from None

    def text(self, name: str) -> str:
        return str(self._columns[name])

    def args(self, **values: Any) -> list[Any]:
        missing = set(self.names) ^ set(values)
        if missing:
            raise TypeError(f"statement parameters missing or unknown: {sorted(missing)}")
        return [values[name] for name in self.names]
