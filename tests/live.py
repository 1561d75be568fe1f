"""A real uvicorn server on a database of its own, for the PostgreSQL hot-path tests.

The hot paths (booking, referral moves, recognition lookup) are pure-ASGI routes with their own
asyncpg pool: they are tested as member systems use them — over HTTP with API tokens, real commits.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from yilianti import db as dbmod
from yilianti.auth.security import new_api_token
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.migrate import upgrade
from yilianti.models import ApiToken


def api_token(db: Session, subject: Subject) -> str:
    token, prefix, hashed = new_api_token()
    db.add(ApiToken(user_id=subject.user_id, institution_id=subject.acting_institution_id, name="his",
                    prefix=prefix, token_hash=hashed))
    return token


@contextmanager
def live_server(test_db: Any, **overrides: Any) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """Serve the app on a fresh migrated database with these settings; yields (base URL, session factory)."""
    import uvicorn

    from yilianti.main import create_app

    url = test_db.new_database_url()
    upgrade(url)
    settings = get_settings()
    overrides = {"database_url": url, **overrides}
    saved = {name: getattr(settings, name) for name in overrides}
    for name, value in overrides.items():
        setattr(settings, name, value)
    engine = dbmod.make_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    previous = (dbmod._engine, dbmod._factory)
    dbmod.set_session_factory(factory, engine)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(run_jobs=False), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", factory
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
        dbmod._engine, dbmod._factory = previous
        for name, value in saved.items():
            setattr(settings, name, value)


def fast_and_reference(url: str, token: str, setting: str, stats: Counter[str],
                       params: dict[str, object] | None = None,
                       lang: str = "zh") -> tuple[httpx.Response, httpx.Response, int]:
    """GET url with the hot path on (settings.<setting>), then off (the reference route); and how many requests
    the hot path served (its `stats["statement"]`) — the reference request must not have taken it."""
    settings = get_settings()
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": lang}
    before = stats["statement"]
    setattr(settings, setting, True)
    fast = httpx.get(url, params=params, headers=headers, timeout=30)  # type: ignore[arg-type]
    served = stats["statement"] - before
    setattr(settings, setting, False)
    try:
        ref = httpx.get(url, params=params, headers=headers, timeout=30)  # type: ignore[arg-type]
    finally:
        setattr(settings, setting, True)
    assert stats["statement"] - before == served  # the reference request did not take the fast path
    return fast, ref, served


CLI = [sys.executable, "-c", "import sys; from yilianti.cli import main; sys.exit(main())"]


@contextmanager
def serving(env: dict[str, str], nodes: int = 1) -> Iterator[list[tuple[subprocess.Popen[bytes], str]]]:
    """`yilianti serve` in `nodes` processes of their own (started together) with these environment variables,
    ready; yields [(the process, its base URL)]; each stopped with SIGTERM at the end unless already gone. Their
    output goes to log files beside YILIANTI_AUDIT_JOURNAL_DIR (shown when one does not start)."""
    started = []
    for _ in range(nodes):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = Path(env["YILIANTI_AUDIT_JOURNAL_DIR"]).parent / f"serve-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([*CLI, "serve"], env={**env, "YILIANTI_PORT": str(port)}, stdout=out,
                                    stderr=subprocess.STDOUT)
        started.append((proc, f"http://127.0.0.1:{port}", log))
    try:
        deadline = time.monotonic() + 120  # a loaded machine takes long to import and build the app
        for proc, base, log in started:
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.2)
        yield [(proc, base) for proc, base, _log in started]
    finally:
        for proc, _base, _log in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _base, _log in started:
            proc.wait(timeout=60)
