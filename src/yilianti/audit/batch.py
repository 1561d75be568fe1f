"""Read audits written in batches by the PostgreSQL hot paths (DOMAIN.md §4b), with a crash journal.

A read changes nothing, so its audit row need not share the request's transaction: DOMAIN.md
allows reads to reach the audit log "in batches flushed at least every second and at shutdown".
The hot paths (booking, referral moves, the recognition lookup) queue their read rows here; one
task per event loop writes the queue with a single COPY every `audit_flush_seconds` (≤ 1 s) and
the application's shutdown writes what is left. A failed write keeps the rows queued for the next
flush and logs the error (past `MAX_QUEUED` rows, as an error on every failed flush). Changes are
still audited in their own transaction, not here.

The journal: a queued row is also appended to a local file of this process (`Journal`, one line, one
write(2), before the hot path's answer is sent), so a web process killed with SIGKILL loses no read whose
answer went out. Each row carries the journal's sequence number; the COPY moves the journal's mark
(`audit_journal_mark`) to its last row in the same transaction, and at start (`replay`, from the app's
lifespan) the journals of processes that are gone — each live process holds an exclusive flock on its own —
are written from their mark on and removed: exactly once, however often replay is interrupted (the marks of
replayed journals stay, a row per crash).
fsync policy (`audit_journal_fsync`): "interval" (default) fsyncs the journal once per flush, so a killed
process loses nothing (its writes are in the kernel's page cache) and a machine that loses power at most the
reads of the last flush interval — DOMAIN.md's bound; "always" fsyncs before each answer, losing nothing even
then, at the cost of an fsync per read. A journal is emptied when everything in it is written and it has
grown past `JOURNAL_RESET_BYTES`, and removed at a clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.kit import clock

log = logging.getLogger("yilianti")
COLUMNS = ("at", "user_id", "username", "acting_institution_id", "action", "resource_type", "resource_id",
           "patient_id", "access_basis", "reason", "detail", "ip", "channel")
MAX_QUEUED = 50_000
JOURNAL_RESET_BYTES = 8 * 1024 * 1024
MARK = ("INSERT INTO audit_journal_mark (journal, seq) VALUES ($1, $2) "
        "ON CONFLICT (journal) DO UPDATE SET seq = EXCLUDED.seq")

Row = tuple[datetime, int | None, str | None, int | None, str, str, str | None, int | None, str | None,
            str | None, str | None, str | None, str | None]
_rows: list[Row] = []
_head = 1  # the journal sequence number of _rows[0] (the queue holds consecutive numbers)
_task: asyncio.Task[None] | None = None
_loop: asyncio.AbstractEventLoop | None = None
_lock: asyncio.Lock | None = None
written = 0  # rows written by this process (for tests and benchmarks)


def journal_dir() -> Path:
    s = get_settings()
    return Path(s.audit_journal_dir) if s.audit_journal_dir else s.var_dir / "audit-journal"


def _encode(row: Row) -> list[Any]:
    return [row[0].isoformat(), *row[1:]]


def _decode(values: list[Any]) -> Row:
    return (datetime.fromisoformat(values[0]), *values[1:])  # type: ignore[return-value]


class Journal:
    """This process's append-only journal: `<name>.jsonl`, a header line, then `[seq, *row]` per line."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.name = f"{os.getpid()}-{uuid.uuid4().hex[:16]}"
        self.path = directory / f"{self.name}.jsonl"
        self.always = get_settings().audit_journal_fsync == "always"
        # locked under a name replay does not look at, then renamed: never seen unlocked by another process
        tmp = directory / f".{self.name}.new"
        self.fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self.fd, (json.dumps({"journal": self.name, "columns": COLUMNS}) + "\n").encode())
        os.rename(tmp, self.path)
        self.seq = 0

    def append(self, row: Row) -> None:
        self.seq += 1
        os.write(self.fd, (json.dumps([self.seq, *_encode(row)], ensure_ascii=False) + "\n").encode())
        if self.always:
            os.fsync(self.fd)

    def sync(self) -> None:
        os.fsync(self.fd)

    def reset_if_large(self) -> None:
        """Empty the journal (everything in it is written: the caller checked, without awaiting since)."""
        if os.fstat(self.fd).st_size > JOURNAL_RESET_BYTES:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, (json.dumps({"journal": self.name, "columns": COLUMNS}) + "\n").encode())

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)


_journal: Journal | None = None


def _journal_for_append() -> Journal | None:
    global _journal, _head
    if _journal is None:
        try:
            _journal = Journal(journal_dir())
        except OSError:
            log.exception("the read-audit journal cannot be opened in %s: read audits are not journaled",
                          journal_dir())
            return None
        _head = _journal.seq + 1 - len(_rows)
    return _journal


def read(subject: Subject, resource_type: str, resource_id: object = None, *, patient_id: int | None,
         basis: str | None, reason: str | None = None, detail: dict[str, Any] | None = None,
         ip: str | None = None, at: datetime | None = None) -> None:
    """Queue one read audit row (the same columns `audit.service.record` writes) and journal it, before the
    caller answers. Call inside the event loop."""
    row: Row = (at or clock.now(), subject.user_id, subject.username, subject.acting_institution_id, "read",
                resource_type, None if resource_id is None else str(resource_id), patient_id, basis, reason,
                None if detail is None else json.dumps(detail, ensure_ascii=False), ip or subject.ip,
                subject.channel)
    journal = _journal_for_append()
    _rows.append(row)
    if journal is not None:
        journal.append(row)
    _ensure_flusher()


def pending() -> int:
    return len(_rows)


def _ensure_flusher() -> None:
    global _task, _loop, _lock
    loop = asyncio.get_running_loop()
    if _task is not None and _loop is loop and not _task.done():
        return
    _loop, _lock = loop, asyncio.Lock()
    _task = loop.create_task(_run(), name="yilianti-audit-batch")


async def _run() -> None:
    interval = min(1.0, max(0.05, get_settings().audit_flush_seconds))
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(Exception):  # logged in flush; the loop keeps going
            await flush()


async def _write(conn: Any, rows: list[Row], journal: str | None, last: int) -> None:
    """The rows and the journal's mark, in one transaction."""
    async with conn.transaction():
        await conn.copy_records_to_table("audit_event", records=rows, columns=COLUMNS)
        if journal is not None:
            await conn.execute(MARK, journal, last)


async def flush() -> int:
    """Write every queued row with one COPY (and move the journal's mark); returns how many were written."""
    global written, _head
    if not _rows:
        return 0
    from yilianti.fastdb import pool as fastpool

    lock = _lock if _lock is not None and _loop is asyncio.get_running_loop() else asyncio.Lock()
    async with lock:
        batch = _rows[:]
        del _rows[:len(batch)]
        if not batch:
            return 0
        journal, first = _journal, _head
        try:
            if journal is not None:
                await asyncio.to_thread(journal.sync)
            async with fastpool.connection() as conn:  # one the server cut is closed, not handed to a request
                await _write(conn, batch, journal.name if journal else None, first + len(batch) - 1)
        except BaseException:
            log.exception("writing %d read audit rows failed; they stay queued", len(batch))
            _rows[:0] = batch
            if len(_rows) > MAX_QUEUED:
                log.error("read audit queue holds %d rows: the audit log is not being written", len(_rows))
            raise
        _head = first + len(batch)
        written += len(batch)
        if journal is not None and not _rows:  # no await since the check: nothing unwritten is in the journal
            journal.reset_if_large()
        return len(batch)


async def stop() -> None:
    """At shutdown: stop the flusher and write what is queued; the journal goes once all of it is written (else
    it stays for the next start's replay)."""
    global _task, _loop, _lock, _journal, _head
    task, _task = _task, None
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if _rows:
        try:
            await flush()
        except Exception:
            log.error("%d read audit rows could not be written at shutdown; they stay in the journal for the next "
                      "start", len(_rows))
    journal = _journal
    if journal is not None and not _rows:
        _journal, _head = None, 1
        journal.remove()
        with contextlib.suppress(Exception):  # a mark left behind is harmless: replay starts from it
            from yilianti.fastdb import pool as fastpool

            async with (await fastpool.pool()).acquire() as conn:
                await conn.execute("DELETE FROM audit_journal_mark WHERE journal = $1", journal.name)
    _loop, _lock = None, None


# ------------------------------------------------------------------------------------------- replay at start


def _journal_rows(fd: int) -> tuple[str | None, list[tuple[int, Row]]]:
    """A journal's name (from its header) and its rows; a line cut short by the crash is left out."""
    with os.fdopen(os.dup(fd), "rb") as f:
        lines = f.read().split(b"\n")
    name, rows = None, []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            name = value.get("journal")
        elif isinstance(value, list) and len(value) == len(COLUMNS) + 1:
            rows.append((int(value[0]), _decode(value[1:])))
    return name, rows


async def replay(directory: Path | None = None) -> int:
    """Write the rows of the journals left by processes that are gone (no flock held) from their marks on, then
    remove them; returns how many rows were written. Idempotent: the mark moves with the rows."""
    directory = directory or journal_dir()
    if not directory.is_dir():
        return 0
    from yilianti.fastdb import pool as fastpool

    total = 0
    for path in sorted(directory.glob("*.jsonl")):
        if _journal is not None and path == _journal.path:
            continue
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:  # replayed by another process meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live process's journal
                continue
            if not path.exists():
                continue
            name, rows = _journal_rows(fd)
            name = name or path.stem
            if rows:
                async with (await fastpool.pool()).acquire() as conn, conn.transaction():
                    mark = await conn.fetchval("SELECT seq FROM audit_journal_mark WHERE journal = $1 FOR UPDATE",
                                               name) or 0
                    todo = [row for seq, row in rows if seq > mark]
                    if todo:
                        await conn.copy_records_to_table("audit_event", records=todo, columns=COLUMNS)
                        await conn.execute(MARK, name, max(seq for seq, _ in rows))
                total += len(todo)
                if todo:
                    log.warning("read-audit journal %s: %d rows written after the process that made it ended",
                                name, len(todo))
            os.unlink(path)  # its mark stays (a row per crash): the journal found again writes nothing twice
        finally:
            os.close(fd)
    return total
