"""PostgreSQL: the audit log, the inbound (HL7/DICOM) messages and the outbox partitioned by month
(declarative range partitioning on `at`, `received_at`, `created_at`); SQLite unchanged.

Each table is converted with its rows: the old table is renamed, a partitioned one made like it (same columns,
defaults, the same id sequence), one partition per month of the rows held (ten years at most; older rows go to
the default partition) and `YILIANTI_PARTITION_MONTHS_AHEAD` months ahead plus a default, the rows copied with
their ids unchanged (the audit hash chain still verifies), then the indexes, foreign keys and triggers (the audit
log's append-only ones, the outbox's NOTIFY) made again on the partitioned table. The primary key becomes
(id, partition key): a partitioned table's unique keys must hold the partition key. So
- the outbox's unique `dedupe_key` moves to `outbox_key` (one row per key, written by a trigger in the inserting
  transaction: a second message with a used key still fails, and the key outlives the retention of its row);
- `lab_observation.inbound_message_id` keeps its values but no longer has a foreign key.
Later months: the periodic job `archive.partitions` (archive/service.py), or `yilianti partitions`.

Revision ID: 0031
Revises: 0030
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

from yilianti.archive import repository as repo
from yilianti.config import get_settings

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None

OUTBOX_KEY_PG = (
    "CREATE TABLE outbox_key (dedupe_key varchar(128) PRIMARY KEY)",
    "INSERT INTO outbox_key SELECT dedupe_key FROM outbox WHERE dedupe_key IS NOT NULL",
    """CREATE FUNCTION yilianti_outbox_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.dedupe_key IS NOT NULL THEN
        INSERT INTO outbox_key (dedupe_key) VALUES (NEW.dedupe_key);
    END IF;
    RETURN NEW;
END;
$$""",
)


def _all(sql: str, **params: object) -> list[sa.Row]:  # type: ignore[type-arg]
    return list(op.get_bind().execute(text(sql), params))


def _convert(tbl: str, key: str) -> None:
    conn = op.get_bind()
    old = f"{tbl}_unpartitioned"
    op.execute(f"ALTER TABLE {tbl} RENAME TO {old}")
    indexes = [r[0] for r in _all(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = to_regclass(:t) "
        "AND NOT i.indisprimary AND NOT i.indisunique", t=old)]
    own_fks = _all("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE conrelid = to_regclass(:t) AND contype = 'f'", t=old)
    other_fks = _all("SELECT conrelid::regclass::text, conname FROM pg_constraint "
                     "WHERE confrelid = to_regclass(:t) AND contype = 'f'", t=old)
    triggers = [r[0] for r in _all("SELECT pg_get_triggerdef(oid) FROM pg_trigger "
                                   "WHERE tgrelid = to_regclass(:t) AND NOT tgisinternal", t=old)]
    seq = conn.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": old})
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY NONE")
    op.execute(f"CREATE TABLE {tbl} (LIKE {old} INCLUDING DEFAULTS) PARTITION BY RANGE ({key})")
    now = datetime.now(UTC).date()
    oldest = conn.scalar(text(f"SELECT min({key}) FROM {old}"))
    first = repo.month_start(max(oldest.astimezone(UTC).date(), date(now.year - 10, 1, 1)) if oldest else now)
    last = repo.month_start(now)
    for _ in range(get_settings().partition_months_ahead):
        last = repo.next_month(last)
    month = first
    while month <= last:
        repo.create_month(conn, tbl, month)
        month = repo.next_month(month)
    repo.create_default(conn, tbl)
    op.execute(f"INSERT INTO {tbl} SELECT * FROM {old}")
    for table_name, name in other_fks:
        op.execute(f"ALTER TABLE {table_name} DROP CONSTRAINT {name}")
    op.execute(f"DROP TABLE {old}")
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY {tbl}.id")
    op.execute(f"ALTER TABLE {tbl} ADD CONSTRAINT pk_{tbl} PRIMARY KEY (id, {key})")
    for ddl in indexes:
        op.execute(ddl.replace(f" ON public.{old} ", f" ON {tbl} ").replace(f" ON {old} ", f" ON {tbl} "))
    for name, ddl in own_fks:
        op.execute(f"ALTER TABLE {tbl} ADD CONSTRAINT {name} {ddl}")
    for ddl in triggers:
        op.execute(ddl.replace(f" ON public.{old} ", f" ON {tbl} ").replace(f" ON {old} ", f" ON {tbl} "))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE outbox DROP CONSTRAINT IF EXISTS uq_outbox_dedupe_key")
    op.execute("CREATE INDEX ix_outbox_dedupe_key ON outbox (dedupe_key) WHERE dedupe_key IS NOT NULL")
    for statement in OUTBOX_KEY_PG:
        op.execute(statement)
    op.execute("CREATE TRIGGER yilianti_outbox_key BEFORE INSERT ON outbox "
               "FOR EACH ROW EXECUTE FUNCTION yilianti_outbox_key()")
    for tbl, key in repo.PARTITIONED.items():
        _convert(tbl, key)


def _unconvert(tbl: str, key: str) -> None:
    old = f"{tbl}_partitioned"
    op.execute(f"ALTER TABLE {tbl} RENAME TO {old}")
    seq = op.get_bind().scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": old})
    indexes = [r[0] for r in _all(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = to_regclass(:t) "
        "AND NOT i.indisprimary AND NOT i.indisunique", t=old)]
    own_fks = _all("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE conrelid = to_regclass(:t) AND contype = 'f' AND conparentid = 0", t=old)
    triggers = [r[0] for r in _all("SELECT pg_get_triggerdef(oid) FROM pg_trigger "
                                   "WHERE tgrelid = to_regclass(:t) AND NOT tgisinternal", t=old)]
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY NONE")
    op.execute(f"CREATE TABLE {tbl} (LIKE {old} INCLUDING DEFAULTS)")
    op.execute(f"INSERT INTO {tbl} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old} CASCADE")
    op.execute(f"ALTER SEQUENCE {seq} OWNED BY {tbl}.id")
    op.execute(f"ALTER TABLE {tbl} ADD CONSTRAINT pk_{tbl} PRIMARY KEY (id)")
    for ddl in indexes:
        op.execute(ddl.replace(f" ON ONLY public.{old} ", f" ON {tbl} ").replace(f" ON public.{old} ", f" ON {tbl} "))
    for name, ddl in own_fks:
        op.execute(f"ALTER TABLE {tbl} ADD CONSTRAINT {name} {ddl}")
    for ddl in triggers:
        op.execute(ddl.replace(f" ON public.{old} ", f" ON {tbl} "))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for tbl, key in repo.PARTITIONED.items():
        _unconvert(tbl, key)
    op.execute("DROP TRIGGER IF EXISTS yilianti_outbox_key ON outbox")
    op.execute("DROP FUNCTION IF EXISTS yilianti_outbox_key()")
    op.execute("DROP TABLE outbox_key")
    op.execute("DROP INDEX IF EXISTS ix_outbox_dedupe_key")
    op.execute("ALTER TABLE outbox ADD CONSTRAINT uq_outbox_dedupe_key UNIQUE (dedupe_key)")
    op.execute("ALTER TABLE lab_observation ADD CONSTRAINT fk_lab_observation_inbound_message_id_inbound_message "
               "FOREIGN KEY (inbound_message_id) REFERENCES inbound_message (id) NOT VALID")
