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

from collections.abc import Iterable, Mapping
from datetime import timedelta
from enum import StrEnum
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
    cast,
    func,
    literal,
    literal_column,
    null,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

_DIALECT = postgresql.dialect()
_TYPES: dict[str, TypeEngine[Any]] = {"bigint": BigInteger(), "text": Text(), "timestamptz": DateTime(timezone=True),
                                      "date": Date(), "boolean": Boolean()}


def sql(clause: Any) -> str:
    """PostgreSQL text of a Core statement or clause, or of a Python value (an enum member by its value; a dict
    becomes json_build_object(…)): constants inline, placeholders (`Params`) as they are."""
    return str(_expr(clause).compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))


def _expr(v: Any) -> ClauseElement:
    if isinstance(v, ClauseElement):
        return v
    if isinstance(v, Mapping):
        return _json(v)
    if v is None:
        return null()
    return literal(v.value if isinstance(v, StrEnum) else v)


def _json(value: Mapping[str, Any]) -> ColumnElement[Any]:
    args: list[Any] = []
    for key, v in value.items():
        args.append(literal(key, Text))
        args.append(_expr(v))
    return func.json_build_object(*args)


def sql_json(value: Mapping[str, Any]) -> str:
    """A payload (a dict of values and column expressions, nested dicts allowed) as json_build_object(…)."""
    return sql(_json(value))


def sql_insert(values: Mapping[str, Any]) -> tuple[str, str]:
    """A row builder's values as the column list and the select list of an INSERT … SELECT."""
    return ", ".join(values), ", ".join(sql(v) for v in values.values())


def sql_in(statuses: Iterable[StrEnum]) -> str:
    """Statuses as a SQL list, `('a', 'b')`, in the enum's order (taken from the enum, not written twice)."""
    chosen = set(statuses)
    ordered = [s for s in type(next(iter(chosen))) if s in chosen]
    return "(" + ", ".join(sql(s.value) for s in ordered) + ")"


def as_text(value: Any) -> Any:
    """`str(value)` for a Python value, a cast to text for a column expression: a row builder serves both."""
    return cast(value, Text) if isinstance(value, ColumnElement) else str(value)


def column(text: str, type_: str | TypeEngine[Any] | type[TypeEngine[Any]] | None = None) -> ColumnElement[Any]:
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
