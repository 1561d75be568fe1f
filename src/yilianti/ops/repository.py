"""Queries of backup and restore (ops/backup.py): row counts, samples of encrypted columns, the schema revision,
an exported snapshot, whether a database is empty."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, inspect, select, text
from sqlalchemy.engine import Connection


def table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def counts(conn: Connection, tables: Sequence[Table]) -> dict[str, int]:
    """Rows of each table that exists."""
    present = table_names(conn)
    return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in tables if t.name in present}


def sample(conn: Connection, table: Table, columns: Sequence[str], ids: Sequence[Any] | None = None,
           limit: int = 20) -> list[Any]:
    """(id, decrypted columns…) of the first `limit` rows, or of the rows with these ids, by id."""
    pk = next(iter(table.primary_key.columns))
    stmt = select(pk, *(table.c[c] for c in columns)).order_by(pk)
    stmt = stmt.where(pk.in_(ids)) if ids is not None else stmt.limit(limit)
    return list(conn.execute(stmt).all())


def revision(conn: Connection) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    if "alembic_version" not in table_names(conn):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def export_snapshot(conn: Connection) -> str:
    """Start a read-only REPEATABLE READ transaction and export its snapshot (for pg_dump --snapshot)."""
    conn.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    return str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())
