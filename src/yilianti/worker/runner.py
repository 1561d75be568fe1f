"""The task definitions (outbox topic handlers and periodic jobs) and the in-process runner.

Domains register handlers with `@handler(topic)` and periodic jobs with `@periodic(name, every_seconds)` in
their tasks.py. Two runners run the same definitions:
- `yilianti worker` on PostgreSQL: procrastinate workers (worker/queue.py) — LISTEN/NOTIFY, FOR UPDATE SKIP
  LOCKED, each periodic job once per period across all workers;
- the demo (SQLite, or `run_jobs_in_process`): `JobRunner`, a thread in the web process.
Both deliver the outbox with `deliver_batch`: a batch of due messages claimed (SKIP LOCKED on PostgreSQL),
handled and marked done in one transaction; when a handler fails (or a topic acts outside the database), the
batch is redone one message per transaction, so a failure is counted on its message (back-off 2^attempts s,
then `failed`: the failed-jobs page /admin/jobs) and the others are delivered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from yilianti.config import get_settings
from yilianti.kit import clock
from yilianti.models.outbox import Notification, OutboxMessage
from yilianti.ops import logs, metrics
from yilianti.worker import repository

log = logging.getLogger("yilianti.worker")

Handler = Callable[[Session, dict[str, Any]], None]
HANDLERS: dict[str, Handler] = {}
# topics whose handler acts outside the database (an SMS gateway, e-mail): never redone after it succeeded
EXTERNAL: set[str] = set()
BATCH = 200


@dataclass
class Periodic:
    name: str
    every_seconds: float
    fn: Callable[[Session], Any]
    last_run: float = 0.0


PERIODIC: dict[str, Periodic] = {}


def handler(topic: str, *, external: bool = False) -> Callable[[Handler], Handler]:
    """Registers the handler of an outbox topic. `external=True` for a handler that acts outside the database
    (sends an SMS): its messages are delivered one per transaction, never inside a batch that may be redone."""

    def deco(fn: Handler) -> Handler:
        HANDLERS[topic] = fn
        if external:
            EXTERNAL.add(topic)
        return fn

    return deco


def periodic(name: str, every_seconds: float) -> Callable[[Callable[[Session], Any]], Callable[[Session], Any]]:
    def deco(fn: Callable[[Session], Any]) -> Callable[[Session], Any]:
        PERIODIC[name] = Periodic(name, every_seconds, fn)
        return fn

    return deco


# called with each notification's payload after its in-app row, in the same transaction: other channels queue
# their deliveries here (notifications/tasks.py: SMS and e-mail by the users' preferences)
AFTER_NOTIFY: list[Callable[[Session, dict[str, Any]], Any]] = []


@handler("notify")
def _deliver_notification(db: Session, payload: dict[str, Any]) -> None:
    db.add(Notification(
        user_id=payload.get("user_id"), institution_id=payload.get("institution_id"),
        kind=payload.get("kind") or "info", title=payload["title"], body=payload.get("body"),
        link=payload.get("link"), urgent=bool(payload.get("urgent")), params=payload.get("params"),
    ))
    for after in AFTER_NOTIFY:
        after(db, payload)


def load_job_modules() -> None:
    """Import every domain's tasks module so its handlers and periodic jobs register."""
    import importlib
    import pkgutil

    import yilianti

    for mod in pkgutil.iter_modules(yilianti.__path__):
        if mod.ispkg:
            try:
                importlib.import_module(f"yilianti.{mod.name}.tasks")
            except ModuleNotFoundError as exc:
                if exc.name != f"yilianti.{mod.name}.tasks":
                    raise


def _handle(db: Session, msg: OutboxMessage) -> None:
    fn = HANDLERS.get(msg.topic)
    if fn is None:
        raise LookupError(f"no handler for topic {msg.topic}")
    with logs.request_id(msg.request_id):
        fn(db, msg.payload)


def _one_by_one(factory: sessionmaker[Session], ids: list[int]) -> int:
    """The messages one per transaction: a failure is counted on its message only, and a message whose
    handler succeeded is committed before the next one runs."""
    max_attempts = get_settings().outbox_max_attempts
    done = 0
    for msg_id in ids:
        with factory() as db:
            msg = next(iter(repository.claim_due(db, clock.now(), 1, [msg_id])), None)
            if msg is None:  # delivered meanwhile by another worker, or given up
                db.rollback()
                continue
            try:
                with db.begin_nested():
                    _handle(db, msg)
                msg.status = repository.DONE
                msg.processed_at = clock.now()
                done += 1
                metrics.OUTBOX_DELIVERED.inc()
            except Exception as exc:  # a failing handler must not stop the others
                with logs.request_id(msg.request_id):
                    log.warning("outbox %s (%s) failed: %s", msg.id, msg.topic, exc)
                metrics.JOB_FAILURES.labels(msg.topic).inc()
                msg.attempts += 1
                msg.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                if msg.attempts >= max_attempts:
                    msg.status = repository.FAILED
                else:
                    msg.available_at = clock.now() + timedelta(seconds=2 ** msg.attempts)
            db.commit()
    return done


def deliver_batch(factory: sessionmaker[Session], limit: int = BATCH) -> tuple[int, int]:
    """Claim up to `limit` due messages and deliver them. Returns (claimed, delivered)."""
    with factory() as db:
        msgs = repository.claim_due(db, clock.now(), limit)
        if not msgs:
            db.rollback()
            return 0, 0
        ids = [m.id for m in msgs]
        if any(m.topic in EXTERNAL for m in msgs):
            db.rollback()
            return len(ids), _one_by_one(factory, ids)
        try:
            for msg in msgs:
                _handle(db, msg)
            repository.mark_done(db, ids, clock.now())
            db.commit()
            metrics.OUTBOX_DELIVERED.inc(len(ids))
            return len(ids), len(ids)
        except Exception:
            db.rollback()
    return len(ids), _one_by_one(factory, ids)


def run_pending(factory: sessionmaker[Session], batch: int = BATCH) -> int:
    """Deliver one batch of what is due. Returns how many messages were delivered."""
    return deliver_batch(factory, batch)[1]


def run_job(factory: sessionmaker[Session], job: Periodic, period: int | None = None) -> Any:
    """One run of a periodic job in a transaction of its own. With `period` (the queue's runs), the run
    first claims that period (worker/repository.claim_period): a period that already ran is skipped."""
    with factory() as db:
        if period is not None and not repository.claim_period(db, job.name, period, clock.now()):
            db.rollback()
            log.info("periodic job %s: period %s already ran", job.name, period)
            return None
        try:
            result = job.fn(db)
            db.commit()
            return result
        except Exception:
            db.rollback()
            log.exception("periodic job %s failed", job.name)
            metrics.JOB_FAILURES.labels(job.name).inc()
            raise


def run_periodic(factory: sessionmaker[Session], force: bool = False) -> list[str]:
    ran = []
    now = time.monotonic()
    for job in PERIODIC.values():
        if force or now - job.last_run >= job.every_seconds:
            job.last_run = now
            try:
                run_job(factory, job)
                ran.append(job.name)
            except Exception:  # logged by run_job; the other jobs still run
                pass
    return ran


class JobRunner:
    """The in-process runner of the demo: one thread delivering the outbox and running the periodic jobs."""

    def __init__(self, factory: sessionmaker[Session], poll_seconds: float | None = None) -> None:
        self.factory = factory
        self.poll = poll_seconds or get_settings().job_poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        load_job_modules()
        self._thread = threading.Thread(target=self.loop, name="yilianti-jobs", daemon=True)
        self._thread.start()

    def loop(self) -> None:
        load_job_modules()
        while not self._stop.is_set():
            try:
                while deliver_batch(self.factory)[0] == BATCH and not self._stop.is_set():
                    pass  # a full batch: more are waiting
                run_periodic(self.factory)
            except Exception:
                log.exception("job loop error")
            self._stop.wait(self.poll)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
