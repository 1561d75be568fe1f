"""The job queue on PostgreSQL: procrastinate's schema (pinned 3.10.0, shipped beside the migrations in
sql/procrastinate-3.10.0.sql) and a NOTIFY when outbox rows are written, so `yilianti worker` wakes at once;
the outbox keeps the request id of the request that queued each message (ops/logs.py); `periodic_run` holds
one row per periodic job and period that ran (a period runs once even when procrastinate defers it twice).

The outbox stays the transactional hand-off (written in the request's transaction); procrastinate runs the
jobs that deliver it and the periodic jobs (worker/queue.py). SQLite has no procrastinate: the demo's
in-process runner runs the same task definitions. A later procrastinate release is adopted by a migration
that applies procrastinate's own files in its sql/migrations newer than 3.10.0.

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import op

from yilianti.models.base import UTCDateTime

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

SCHEMA = Path(__file__).resolve().parent.parent / "sql" / "procrastinate-3.10.0.sql"

OUTBOX_NOTIFY = """
CREATE FUNCTION yilianti_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('yilianti_outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER yilianti_outbox_inserted AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION yilianti_outbox_notify();
"""


def _run_script(sql: str) -> None:
    """Several statements at once, without parameter parsing (the script has `%` in format strings):
    psycopg runs a query without parameters as it is, in the migration's transaction."""
    dbapi = op.get_bind().connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        cur.execute(sql)
    finally:
        cur.close()


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("request_id", sa.String(64), nullable=True))
    op.create_table(
        "periodic_run",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("period", sa.BigInteger(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", "period", name=op.f("pk_periodic_run")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    _run_script(SCHEMA.read_text(encoding="utf-8"))
    _run_script(OUTBOX_NOTIFY)


def downgrade() -> None:
    op.drop_table("periodic_run")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("request_id")
    if op.get_bind().dialect.name != "postgresql":
        return
    _run_script("""
DROP TRIGGER IF EXISTS yilianti_outbox_inserted ON outbox;
DROP FUNCTION IF EXISTS yilianti_outbox_notify();
DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,
    procrastinate_workers CASCADE;
DO $$
DECLARE f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%' LOOP
        EXECUTE 'DROP ROUTINE ' || f.sig || ' CASCADE';
    END LOOP;
END;
$$;
DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type, procrastinate_job_status;
""")
