"""The monthly partitions of the tables that grow for years, on PostgreSQL (migration 0031): their names and
bounds, creating a month, moving rows that landed in the default partition into their months, and the
retention deletes. Months are UTC calendar months; a partition is `<table>_pYYYYMM`, the catch-all
`<table>_pdefault` (rows of a month without its partition, e.g. a back-dated import, until moved)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Connection, column, table, text

# table -> partition key
PARTITIONED: dict[str, str] = {"audit_event": "at", "inbound_message": "received_at", "outbox": "created_at"}

OUTBOX_KEY = table("outbox_key", column("dedupe_key"))


def month_start(day: date) -> date:
    return date(day.year, day.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(tbl: str, month: date) -> str:
    return f"{tbl}_p{month:%Y%m}"


def is_partitioned(conn: Connection, tbl: str) -> bool:
    return conn.scalar(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": tbl}) == "p"


def months(conn: Connection, tbl: str, *, schema: str | None = None) -> list[date]:
    """The months that have a partition, oldest first (`schema`: of the archive's table)."""
    names = conn.scalars(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": f"{schema}.{tbl}" if schema else tbl})
    prefix = f"{tbl}_p"
    return sorted(date(int(n[-6:-2]), int(n[-2:]), 1) for n in names
                  if n.startswith(prefix) and n[len(prefix):].isdigit())


def _bounds(month: date) -> str:
    return f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') TO ('{next_month(month).isoformat()} 00:00:00+00')"


def create_month(conn: Connection, tbl: str, month: date) -> None:
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {partition_name(tbl, month)} PARTITION OF {tbl} {_bounds(month)}"))


def create_default(conn: Connection, tbl: str) -> None:
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {tbl}_pdefault PARTITION OF {tbl} DEFAULT"))


def months_of_rows(conn: Connection, source: str, key: str) -> list[date]:
    """The UTC months of the rows in `source` (a table or partition)."""
    return [d.date() if isinstance(d, datetime) else d for d in conn.scalars(text(
        f"SELECT DISTINCT date_trunc('month', {key} AT TIME ZONE 'UTC') FROM {source} ORDER BY 1"))]


def default_has_rows(conn: Connection, tbl: str) -> bool:
    return conn.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {tbl}_pdefault)")) is True


def rehome_default(conn: Connection, tbl: str, key: str) -> list[date]:
    """Move the rows of the default partition into partitions of their months (created): the default is
    detached, a new empty one attached, the months created and the rows inserted again with their ids — the
    audit log's rows unchanged, so its hash chain still verifies. Holds the table's lock for the copy."""
    found = months_of_rows(conn, f"{tbl}_pdefault", key)
    conn.execute(text(f"LOCK TABLE {tbl} IN ACCESS EXCLUSIVE MODE"))
    conn.execute(text(f"ALTER TABLE {tbl} DETACH PARTITION {tbl}_pdefault"))
    conn.execute(text(f"ALTER TABLE {tbl}_pdefault RENAME TO {tbl}_pdefault_moving"))
    create_default(conn, tbl)
    for month in found:
        create_month(conn, tbl, month)
    if tbl == "outbox":
        # its insert trigger registers each dedupe key in outbox_key, where a moved row's key already is: moving a
        # row is not enqueuing it again (under this lock no enqueue can take the key meanwhile)
        conn.execute(OUTBOX_KEY.delete().where(OUTBOX_KEY.c.dedupe_key.in_(
            text(f"SELECT dedupe_key FROM {tbl}_pdefault_moving WHERE dedupe_key IS NOT NULL"))))
    conn.execute(text(f"INSERT INTO {tbl} SELECT * FROM {tbl}_pdefault_moving"))
    conn.execute(text(f"DROP TABLE {tbl}_pdefault_moving"))
    return found


def partition_keeps_rows(conn: Connection, part: str, keep: str) -> bool:
    return conn.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {part} WHERE {keep})")) is True


def drop_partition(conn: Connection, tbl: str, part: str) -> None:
    conn.execute(text(f"ALTER TABLE {tbl} DETACH PARTITION {part}"))
    conn.execute(text(f"DROP TABLE {part}"))


def delete_rows(conn: Connection, source: str, key: str, before: datetime, removable: str) -> int:
    result = conn.execute(text(f"DELETE FROM {source} WHERE {key} < :before AND ({removable})"), {"before": before})
    return int(result.rowcount or 0)



# ------------------------------------------------------------------------------------------ the archive
ARCHIVE = "yilianti_archive"  # the schema of the archived months: <schema>.<table>, partitioned like the live one


# the live table's guard the archive keeps (migration 0001): archived audit rows stay append-only
APPEND_ONLY = {"audit_event": "audit_event_append_only"}


def ensure_archive(conn: Connection, tbl: str, key: str) -> None:
    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {ARCHIVE}"))
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {ARCHIVE}.{tbl} (LIKE {tbl} INCLUDING DEFAULTS) "
                      f"PARTITION BY RANGE ({key})"))
    if tbl in APPEND_ONLY:
        conn.execute(text(f"CREATE OR REPLACE TRIGGER {tbl}_no_update BEFORE UPDATE OR DELETE ON {ARCHIVE}.{tbl} "
                          f"FOR EACH ROW EXECUTE FUNCTION {APPEND_ONLY[tbl]}()"))


def archive_exists(conn: Connection, tbl: str) -> bool:
    return conn.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{ARCHIVE}.{tbl}"}) is True


def move_month(conn: Connection, tbl: str, month: date, *, to_archive: bool) -> None:
    """A month's partition detached from the live table and attached to the archive's (or back): no row is
    copied, the rows keep their ids and values (the audit chain still verifies over both)."""
    part = partition_name(tbl, month)
    live = str(conn.scalar(text("SELECT current_schema()")))
    source, target, schema = (tbl, f"{ARCHIVE}.{tbl}", ARCHIVE) if to_archive else (f"{ARCHIVE}.{tbl}", tbl, live)
    qualified = part if to_archive else f"{ARCHIVE}.{part}"
    conn.execute(text(f"ALTER TABLE {source} DETACH PARTITION {qualified}"))
    conn.execute(text(f"ALTER TABLE {qualified} SET SCHEMA {schema}"))
    conn.execute(text(f"ALTER TABLE {target} ATTACH PARTITION {schema}.{part} {_bounds(month)}"))
