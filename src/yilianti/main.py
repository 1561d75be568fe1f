"""App factory: routers of every domain folder, sessions, errors, static files, offline API docs."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.middleware.sessions import SessionMiddleware

import yilianti
from yilianti import db as dbmod
from yilianti.cockpit.fastpath import FiguresRoute
from yilianti.config import Settings, get_settings
from yilianti.ops.logs import RequestId
from yilianti.ops.metrics import Timing
from yilianti.recognition.fastpath import RecognitionRoute
from yilianti.record.fastpath import RecordRoute
from yilianti.referral.fastpath import ReferralMoveRoute
from yilianti.scheduling.fastpath import BookingRoute
from yilianti.web import openapi_errors
from yilianti.web.edge import SESSION_COOKIE, Edge
from yilianti.web.errors import install_handlers
from yilianti.web.limit import InflightLimit
from yilianti.web.nul import RefuseNul

STATIC = Path(__file__).parent / "web" / "static"
log = logging.getLogger("yilianti")


def discover_routers() -> list[APIRouter]:
    """Every domain folder may have `pages.py` and `api.py` exposing `router`.

    A domain with several parts may split them into `<part>_api.py` / `<part>_pages.py` modules
    (consultation: joint wards) or into subpackages with their own `api.py` / `pages.py`
    (diagnostics: orders, imaging, ECG); those are picked up too, in name order.
    """
    routers = []
    for mod in sorted(pkgutil.iter_modules(yilianti.__path__), key=lambda m: m.name):
        if mod.ispkg:
            routers.extend(_routers_of(f"yilianti.{mod.name}"))
    return routers


def _routers_of(name: str) -> list[APIRouter]:
    """The routers of one package and of its subpackages, by module name (a subpackage as its name)."""
    routers = []
    package = importlib.import_module(name)
    for sub in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if sub.ispkg:
            routers.extend(_routers_of(f"{name}.{sub.name}"))
        elif sub.name in ("api", "pages") or sub.name.endswith(("_api", "_pages")):
            router = getattr(importlib.import_module(f"{name}.{sub.name}"), "router", None)
            if isinstance(router, APIRouter):
                routers.append(router)
    return routers


async def _replay_read_audits() -> None:
    """The read audits a killed web process journaled but did not write (audit/batch.py), written before serving."""
    from yilianti.audit import batch
    from yilianti.fastdb import pool as fastpool

    if not fastpool.on_postgresql() or not any(batch.journal_dir().glob("*.jsonl")):
        return
    try:
        await batch.replay()
    except Exception:
        logging.getLogger("yilianti").exception("replaying the read-audit journals failed; they are kept for the "
                                                "next start")


def create_app(settings: Settings | None = None, *, run_jobs: bool | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.resolved_data_keys()  # generated into var/data.keys (0600) on first run
    in_process_jobs = settings.run_jobs_in_process if run_jobs is None else run_jobs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _replay_read_audits()
        runner = None
        if in_process_jobs:
            from yilianti.worker.runner import JobRunner

            runner = JobRunner(dbmod.session_factory())
            runner.start()
        yield
        if runner is not None:
            runner.stop()
        from yilianti.audit import batch
        from yilianti.fastdb import pool as fastpool

        await batch.stop()  # queued read audits are written before the pool closes
        await fastpool.dispose()

    app = FastAPIOffline(
        title="Yilianti 医联体协同平台 API",
        version=yilianti.__version__,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
        description="JSON API of the medical-alliance platform. Errors: "
        '`{"error": code, "message": text, "fields": {...}}`; `Accept-Language: en` for English.',
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.resolved_secret_key(),
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_hours * 3600,
        same_site="lax",
        https_only=settings.production,
    )
    # at most as many requests in flight as the pool has connections (see web/limit.py)
    app.add_middleware(InflightLimit, limit=settings.db_pool_size + settings.db_max_overflow)
    # outermost: POST /api/v1/bookings with an API token is served before the stack above (scheduling/fastpath.py)
    app.add_middleware(BookingRoute)
    app.add_middleware(ReferralMoveRoute)  # and POST /api/v1/referrals/{id}/transition (referral/fastpath.py)
    app.add_middleware(RecognitionRoute)  # likewise GET /api/v1/recognition/lookup (recognition/fastpath.py)
    app.add_middleware(RecordRoute)  # and GET /api/v1/patients/{id}/record (record/fastpath.py)
    app.add_middleware(FiguresRoute)  # and GET /api/v1/cockpit/figures, cached (cockpit/fastpath.py)
    app.add_middleware(RefuseNul)  # no NUL character reaches a route, a hot path or the database (web/nul.py)
    app.add_middleware(Edge, settings=settings)  # security headers on every response, whoever served it (web/edge.py)
    app.add_middleware(RequestId)  # X-Request-ID in, out and in every log line of the request (ops/logs.py)
    app.add_middleware(Timing)  # outermost: latency by route for /metrics, whoever answered (ops/metrics.py)
    install_handlers(app)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for router in discover_routers():
        app.include_router(router)
    openapi_errors.install(app)  # the contract's error body for every /api/v1 error (web/openapi_errors.py)
    return app
