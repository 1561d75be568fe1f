"""Job runner: delivers outbox messages and runs periodic jobs.

In the demo it runs in-process (a thread started by the app); in production
`yilianti worker` runs it beside several web processes. On PostgreSQL several workers
can run at once: messages are claimed with FOR UPDATE SKIP LOCKED.
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
from yilianti.models.outbox import Notification
from yilianti.worker import repository

log = logging.getLogger("yilianti.worker")

Handler = Callable[[Session, dict[str, Any]], None]
HANDLERS: dict[str, Handler] = {}


@dataclass
class Periodic:
    name: str
    every_seconds: float
    fn: Callable[[Session], Any]
    last_run: float = 0.0


PERIODIC: dict[str, Periodic] = {}


def handler(topic: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        HANDLERS[topic] = fn
        return fn

    return deco


def periodic(name: str, every_seconds: float) -> Callable[[Callable[[Session], Any]], Callable[[Session], Any]]:
    def deco(fn: Callable[[Session], Any]) -> Callable[[Session], Any]:
        PERIODIC[name] = Periodic(name, every_seconds, fn)
        return fn

    return deco


@handler("notify")
def _deliver_notification(db: Session, payload: dict[str, Any]) -> None:
    db.add(Notification(
        user_id=payload.get("user_id"), institution_id=payload.get("institution_id"),
        kind=payload.get("kind") or "info", title=payload["title"], body=payload.get("body"),
        link=payload.get("link"), urgent=bool(payload.get("urgent")), params=payload.get("params"),
    ))


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


def run_pending(factory: sessionmaker[Session], batch: int = 50) -> int:
    """Deliver what is due. Returns how many messages were handled."""
    settings = get_settings()
    done = 0
    with factory() as db:
        ids = repository.due_ids(db, clock.now(), batch)
        db.rollback()
    for msg_id in ids:
        with factory() as db:
            msg = repository.claim(db, msg_id)
            if msg is None:
                db.rollback()
                continue
            fn = HANDLERS.get(msg.topic)
            try:
                if fn is None:
                    raise LookupError(f"no handler for topic {msg.topic}")
                with db.begin_nested():
                    fn(db, msg.payload)
                msg.status = "done"
                msg.processed_at = clock.now()
                done += 1
            except Exception as exc:  # a failing handler must not stop the others
                log.warning("outbox %s (%s) failed: %s", msg.id, msg.topic, exc)
                msg.attempts += 1
                msg.last_error = str(exc)[:2000]
                if msg.attempts >= settings.outbox_max_attempts:
                    msg.status = "failed"
                else:
                    msg.available_at = clock.now() + timedelta(seconds=2 ** msg.attempts)
            db.commit()
    return done


def run_periodic(factory: sessionmaker[Session], force: bool = False) -> list[str]:
    ran = []
    now = time.monotonic()
    for job in PERIODIC.values():
        if force or now - job.last_run >= job.every_seconds:
            job.last_run = now
            with factory() as db:
                try:
                    job.fn(db)
                    db.commit()
                    ran.append(job.name)
                except Exception:
                    db.rollback()
                    log.exception("periodic job %s failed", job.name)
    return ran


class JobRunner:
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
                run_pending(self.factory)
                run_periodic(self.factory)
            except Exception:
                log.exception("job loop error")
            self._stop.wait(self.poll)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
