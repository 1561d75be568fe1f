"""Upkeep of the monthly partitions (PostgreSQL; SQLite has none and needs none): partitions created
`YILIANTI_PARTITION_MONTHS_AHEAD` months ahead, rows that landed in a default partition moved into their
months, and the retention of HL7 messages (`YILIANTI_HL7_RETENTION_DAYS`) and delivered outbox rows
(`YILIANTI_OUTBOX_RETENTION_DAYS`): a whole month older than the retention holding nothing to keep is
dropped at once, otherwise its removable rows are deleted. The audit log is never removed here — its old
months are archived by hand (docs/partitioning.md), keeping the chain's links that cover them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection

from yilianti.archive import repository as repo
from yilianti.config import get_settings
from yilianti.worker.repository import DONE

# what retention may remove, per table (SQL over the table's own columns); the audit log: nothing
REMOVABLE: dict[str, str] = {
    "outbox": f"status = '{DONE}'",
    # handled HL7 messages; a quarantined (AE) or refused (AR) one waits for a person, DICOM rows name files
    "inbound_message": "channel = 'hl7' AND status NOT IN ('quarantined', 'rejected')",
}


@dataclass
class Upkeep:
    created: list[str] = field(default_factory=list)
    moved: dict[str, int] = field(default_factory=dict)  # table -> months moved out of its default partition
    dropped: list[str] = field(default_factory=list)
    deleted: dict[str, int] = field(default_factory=dict)


def ensure(conn: Connection, now: datetime, ahead: int | None = None, upkeep: Upkeep | None = None) -> Upkeep:
    """Partitions from this month to `ahead` months on, and the default partitions emptied into months."""
    upkeep = upkeep or Upkeep()
    ahead = get_settings().partition_months_ahead if ahead is None else ahead
    for tbl, key in repo.PARTITIONED.items():
        if not repo.is_partitioned(conn, tbl):
            continue
        if repo.default_has_rows(conn, tbl):
            upkeep.moved[tbl] = len(repo.rehome_default(conn, tbl, key))
        have = set(repo.months(conn, tbl))
        month = repo.month_start(now.astimezone(UTC).date())
        for _ in range(ahead + 1):
            if month not in have:
                repo.create_month(conn, tbl, month)
                upkeep.created.append(repo.partition_name(tbl, month))
            month = repo.next_month(month)
    return upkeep


def apply_retention(conn: Connection, now: datetime, upkeep: Upkeep | None = None) -> Upkeep:
    upkeep = upkeep or Upkeep()
    settings = get_settings()
    for tbl, days in (("outbox", settings.outbox_retention_days), ("inbound_message", settings.hl7_retention_days)):
        if not days or not repo.is_partitioned(conn, tbl):
            continue
        before = now - timedelta(days=days)
        removable, key = REMOVABLE[tbl], repo.PARTITIONED[tbl]
        for month in repo.months(conn, tbl):
            part = repo.partition_name(tbl, month)
            if _month_end(month) > before:
                continue
            if repo.partition_keeps_rows(conn, part, f"NOT ({removable})"):
                upkeep.deleted[tbl] = upkeep.deleted.get(tbl, 0) + repo.delete_rows(conn, part, key, before, removable)
            else:
                repo.drop_partition(conn, tbl, part)
                upkeep.dropped.append(part)
        # the month the cut-off falls in: row by row
        cut = repo.partition_name(tbl, repo.month_start(before.astimezone(UTC).date()))
        if repo.month_start(before.astimezone(UTC).date()) in repo.months(conn, tbl):
            upkeep.deleted[tbl] = upkeep.deleted.get(tbl, 0) + repo.delete_rows(conn, cut, key, before, removable)
    return upkeep


def _month_end(month: date) -> datetime:
    end = repo.next_month(month)
    return datetime(end.year, end.month, 1, tzinfo=UTC)


def run(conn: Connection, now: datetime) -> Upkeep:
    """The periodic job and `yilianti partitions`: both steps, on PostgreSQL only."""
    if conn.dialect.name != "postgresql":
        return Upkeep()
    return apply_retention(conn, now, ensure(conn, now))



# ------------------------------------------------------------------------------------------ `yilianti archive`
# rows still open: a month holding any of them stays live (nothing is archived from the middle of a month)
OPEN: dict[str, str | None] = {
    "audit_event": None,  # every audit row is closed; the log is archived, never removed
    "outbox": f"status <> '{DONE}'",  # pending or failed: someone may still retry it
    # waiting for a person (quarantined, refused), and DICOM rows (they name the stored files)
    "inbound_message": "status IN ('quarantined', 'rejected') OR channel = 'dicom'",
}


@dataclass
class Archived:
    moved: list[str] = field(default_factory=list)  # partitions now in the archive (or back, on restore)
    kept: list[str] = field(default_factory=list)  # old months left live: they hold open rows


def archive(conn: Connection, now: datetime, months: int, tables: list[str] | None = None) -> Archived:
    """Move each month that ended more than `months` months ago, and holds no open row, from the live table
    to the archive's (schema `yilianti_archive`, partitioned alike): the live tables, their indexes and every
    list stop carrying them; the rows stay in the database, unchanged, readable through `restore` and by
    `yilianti audit verify`, which walks the archived audit rows with the live ones."""
    done = Archived()
    if conn.dialect.name != "postgresql" or months <= 0:
        return done
    cut = repo.month_start(now.astimezone(UTC).date())
    for _ in range(months):
        cut = date(cut.year - (cut.month == 1), (cut.month - 2) % 12 + 1, 1)
    for tbl in tables or list(repo.PARTITIONED):
        if not repo.is_partitioned(conn, tbl):
            continue
        for month in repo.months(conn, tbl):
            if month >= cut:
                break
            part = repo.partition_name(tbl, month)
            open_rows = OPEN[tbl]
            if open_rows and repo.partition_keeps_rows(conn, part, open_rows):
                done.kept.append(part)
                continue
            repo.ensure_archive(conn, tbl, repo.PARTITIONED[tbl])
            repo.move_month(conn, tbl, month, to_archive=True)
            done.moved.append(part)
    return done


def restore(conn: Connection, month: date, tables: list[str] | None = None) -> Archived:
    """Bring an archived month back into the live tables (an auditor's request for old history): its rows
    show again on every page; the next `archive` moves it out again."""
    done = Archived()
    for tbl in tables or list(repo.PARTITIONED):
        if repo.archive_exists(conn, tbl) and month in repo.months(conn, tbl, schema=repo.ARCHIVE):
            repo.move_month(conn, tbl, month, to_archive=False)
            done.moved.append(repo.partition_name(tbl, month))
    return done


def archived_months(conn: Connection) -> dict[str, list[date]]:
    return {tbl: repo.months(conn, tbl, schema=repo.ARCHIVE) for tbl in repo.PARTITIONED
            if conn.dialect.name == "postgresql" and repo.archive_exists(conn, tbl)}
