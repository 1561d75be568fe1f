"""`yilianti worker` on PostgreSQL: procrastinate 3.10 runs the task definitions of worker/runner.py.

- The outbox stays the transactional hand-off: a request writes its rows in its own transaction; a trigger
  (migration 0027) NOTIFYs `yilianti_outbox` on commit. Each worker listens and defers one `outbox.drain` job
  (queueing lock: at most one waits). A drain claims batches with FOR UPDATE SKIP LOCKED (`deliver_batch`);
  when a batch is full it defers another drain first, so every free worker joins in.
- `outbox.sweep` every 2 s defers a drain when messages are due without a wake-up (back-off retries, delayed
  messages, a NOTIFY missed while a worker was down).
- Every `@periodic` job is a procrastinate periodic task: the period's job is deferred once across all workers
  (procrastinate_periodic_defers is unique per task and timestamp), and `lock` keeps two runs of one task
  from overlapping. procrastinate forgets a period once the next is deferred, so a worker whose scheduler
  wakes late (a busy machine) can defer an old period again: the run claims its period in `periodic_run`
  in its own transaction and skips a period that already ran — once per period is a database constraint.
- `queue.recover_stalled` (every minute) ends the jobs of workers killed mid-job (no heartbeat for 60 s), so
  their locks are freed; their outbox rows were never committed and are delivered again by the next drain.
- `queue.remove_old_jobs` (hourly) deletes finished jobs after a day; failures stay for the admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
from procrastinate import App, PsycopgConnector, builtin_tasks
from procrastinate import exceptions as pexc
from procrastinate import jobs as pjobs
from procrastinate.tasks import Task
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from yilianti.config import normalise_db_url
from yilianti.kit import clock
from yilianti.worker import repository
from yilianti.worker.runner import BATCH, PERIODIC, Periodic, deliver_batch, load_job_modules, run_job

log = logging.getLogger("yilianti.worker")

DRAIN = "outbox.drain"
DRAIN_SECONDS = 20.0  # a drain hands over to a fresh job after this long (a worker stopping waits less)
WAKE_CHANNEL = "yilianti_outbox"


def conninfo(database_url: str) -> str:
    """libpq's form of the database URL (procrastinate's pool and the listener use psycopg directly)."""
    return make_url(normalise_db_url(database_url)).set(drivername="postgresql").render_as_string(
        hide_password=False)


def cron_of(every_seconds: float) -> str:
    """A cron line for a period: seconds (6th field, croniter) below a minute, then minutes, hours, days."""
    s = max(1, round(every_seconds))
    if s < 60:
        return "* * * * * *" if s == 1 else f"* * * * * */{s}"
    if s < 3600:
        return f"*/{s // 60} * * * *"
    if s < 86400:
        return f"0 */{s // 3600} * * *"
    return "0 3 * * *"  # daily: 03:00 UTC (11:00 in Shanghai is quiet enough; nothing daily today)


def build_app(database_url: str, factory: sessionmaker[Session], pool_size: int = 4) -> App:
    """The procrastinate app with the outbox drain, the sweep, the upkeep tasks and every periodic job."""
    load_job_modules()
    app = App(connector=PsycopgConnector(conninfo=conninfo(database_url), min_size=1, max_size=pool_size))

    @app.task(name=DRAIN, queueing_lock=DRAIN)
    async def drain() -> int:
        delivered, fanned, started = 0, False, time.monotonic()
        while True:
            claimed, done = await asyncio.to_thread(deliver_batch, factory, BATCH)
            delivered += done
            if claimed < BATCH:
                return delivered
            overtime = time.monotonic() - started > DRAIN_SECONDS
            if not fanned or overtime:  # more are waiting: another drain, for the next free worker
                await defer(drain)
                fanned = True
            if overtime:
                return delivered

    @app.periodic(cron="* * * * * */2", periodic_id="outbox.sweep")
    @app.task(name="outbox.sweep", queueing_lock="outbox.sweep")
    async def sweep(timestamp: int) -> None:
        if await asyncio.to_thread(_any_due, factory):
            await defer(drain)

    @app.periodic(cron="* * * * *", periodic_id="queue.recover_stalled")
    @app.task(name="queue.recover_stalled", queueing_lock="queue.recover_stalled", pass_context=True)
    async def recover_stalled(context: Any, timestamp: int) -> int:
        stalled = await context.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=60)
        for job in stalled:
            log.warning("job %s (%s) stalled on a worker that stopped answering: ended as failed",
                        job.id, job.task_name)
            await context.app.job_manager.finish_job_by_id_async(job.id, pjobs.Status.FAILED, delete_job=False)
        return len(list(stalled))

    @app.periodic(cron="17 * * * *", periodic_id="queue.remove_old_jobs")
    @app.task(name="queue.remove_old_jobs", queueing_lock="queue.remove_old_jobs", pass_context=True)
    async def remove_old_jobs(context: Any, timestamp: int) -> None:
        await builtin_tasks.remove_old_jobs(context, max_hours=24)
        await asyncio.to_thread(_forget_periods, factory)

    for job in PERIODIC.values():
        task = app.task(name=job.name, queueing_lock=job.name, lock=job.name)(_periodic_fn(factory, job))
        app.periodic(cron=cron_of(job.every_seconds), periodic_id=job.name)(task)
    app.drain_task = drain  # type: ignore[attr-defined]
    return app


def _periodic_fn(factory: sessionmaker[Session], job: Periodic) -> Callable[[int], None]:
    def run(timestamp: int) -> None:  # a sync task: procrastinate runs it in a thread
        run_job(factory, job, period=timestamp)

    run.__name__ = job.name.replace(".", "_")
    return run


def _forget_periods(factory: sessionmaker[Session]) -> None:
    with factory() as db:
        repository.forget_periods(db, clock.now() - timedelta(days=1))
        db.commit()


def _any_due(factory: sessionmaker[Session]) -> bool:
    with factory() as db:
        return repository.any_due(db, clock.now())


async def defer(task: Task[Any, Any, Any]) -> None:
    """Defer a job of a task with a queueing lock; one already waiting is enough."""
    with contextlib.suppress(pexc.AlreadyEnqueued):
        await task.defer_async()


async def _wake_on_outbox(database_url: str, drain: Task[Any, Any, Any]) -> None:
    """LISTEN for committed outbox rows and defer a drain: at most 20 defers a second however many commits."""
    wake = asyncio.Event()
    wake.set()  # what was written while no worker listened

    async def deferrer() -> None:
        while True:
            await wake.wait()
            wake.clear()
            try:
                await defer(drain)
            except Exception:
                log.exception("could not defer an outbox drain")
            await asyncio.sleep(0.05)

    runner = asyncio.create_task(deferrer())
    try:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo(database_url), autocommit=True) as conn:
                    await conn.execute(f"LISTEN {WAKE_CHANNEL}")
                    wake.set()
                    async for _ in conn.notifies():
                        wake.set()
            except psycopg.OperationalError as exc:
                log.warning("outbox listener lost its connection (%s); reconnecting", exc)
                await asyncio.sleep(2)
    finally:
        runner.cancel()


async def run_worker(database_url: str, factory: sessionmaker[Session], concurrency: int) -> None:
    """One worker process: procrastinate's worker (stops on SIGINT/SIGTERM) and the outbox listener."""
    logging.getLogger("procrastinate").setLevel(logging.WARNING)  # a line per job start and end, every second
    app = build_app(database_url, factory, pool_size=concurrency + 2)
    async with app.open_async():
        listener = asyncio.create_task(_wake_on_outbox(database_url, app.drain_task))  # type: ignore[attr-defined]
        try:
            await app.run_worker_async(concurrency=concurrency, name=f"yilianti@{socket.gethostname()}",
                                       install_signal_handlers=True)
        finally:
            listener.cancel()
