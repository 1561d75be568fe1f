"""Read audits written in batches by the PostgreSQL hot paths (DOMAIN.md §4b).

A read changes nothing, so its audit row need not share the request's transaction: DOMAIN.md
allows reads to reach the audit log "in batches flushed at least every second and at shutdown".
The hot paths (booking, referral moves, the recognition lookup) queue their read rows here; one
task per event loop writes the queue with a single COPY every `audit_flush_seconds` (≤ 1 s) and
the application's shutdown writes what is left. A failed write keeps the rows queued for the next
flush and logs the error (past `MAX_QUEUED` rows, as an error on every failed flush). Changes are
still audited in their own transaction, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime
from typing import Any

from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.kit import clock

log = logging.getLogger("yilianti")
COLUMNS = ("at", "user_id", "username", "acting_institution_id", "action", "resource_type", "resource_id",
           "patient_id", "access_basis", "reason", "detail", "ip", "channel")
MAX_QUEUED = 50_000

Row = tuple[datetime, int | None, str | None, int | None, str, str, str | None, int | None, str | None,
            str | None, str | None, str | None, str | None]
_rows: list[Row] = []
_task: asyncio.Task[None] | None = None
_loop: asyncio.AbstractEventLoop | None = None
_lock: asyncio.Lock | None = None
written = 0  # rows written by this process (for tests and benchmarks)


def read(subject: Subject, resource_type: str, resource_id: object = None, *, patient_id: int | None,
         basis: str | None, reason: str | None = None, detail: dict[str, Any] | None = None,
         ip: str | None = None, at: datetime | None = None) -> None:
    """Queue one read audit row (the same columns `audit.service.record` writes). Call inside the event loop."""
    _rows.append((at or clock.now(), subject.user_id, subject.username, subject.acting_institution_id, "read",
                  resource_type, None if resource_id is None else str(resource_id), patient_id, basis, reason,
                  None if detail is None else json.dumps(detail, ensure_ascii=False), ip or subject.ip,
                  subject.channel))
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


async def flush() -> int:
    """Write every queued row with one COPY; returns how many were written."""
    global written
    if not _rows:
        return 0
    from yilianti.fastdb import pool as fastpool

    lock = _lock if _lock is not None and _loop is asyncio.get_running_loop() else asyncio.Lock()
    async with lock:
        batch = _rows[:]
        del _rows[:len(batch)]
        if not batch:
            return 0
        try:
            connections = await fastpool.pool()
            async with connections.acquire() as conn:
                await conn.copy_records_to_table("audit_event", records=batch, columns=COLUMNS)
        except BaseException:
            log.exception("writing %d read audit rows failed; they stay queued", len(batch))
            _rows[:0] = batch
            if len(_rows) > MAX_QUEUED:
                log.error("read audit queue holds %d rows: the audit log is not being written", len(_rows))
            raise
        written += len(batch)
        return len(batch)


async def stop() -> None:
    """At shutdown: stop the flusher and write what is queued."""
    global _task, _loop, _lock
    task, _task = _task, None
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if _rows:
        try:
            await flush()
        except Exception:
            log.error("%d read audit rows could not be written at shutdown", len(_rows))
    _loop, _lock = None, None
