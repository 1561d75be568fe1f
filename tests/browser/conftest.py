"""Browser tests: Debian's chromium driven by Playwright against a live server.

The server runs uvicorn in a thread on a free port, on a database of its own (real
commits). Without /usr/bin/chromium the tests are skipped with a visible reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker

CHROMIUM = os.environ.get("YILIANTI_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-sync", "--disable-quic"]


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.browser)
            if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
                item.add_marker(pytest.mark.skip(
                    reason=f"NOTICE: browser test skipped: {CHROMIUM} not installed (apt-get install chromium)"))


@dataclass
class LiveServer:
    url: str
    factory: sessionmaker[Session]

    def seed(self, fn: Callable[[Session], object]) -> object:
        with self.factory() as db:
            result = fn(db)
            db.commit()
            return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(test_db) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    import uvicorn

    from yilianti import db as dbmod
    from yilianti.main import create_app
    from yilianti.migrate import upgrade

    url = test_db.new_database_url()
    upgrade(url)
    engine = dbmod.make_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    previous = (dbmod._engine, dbmod._factory)
    dbmod.set_session_factory(factory, engine)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(run_jobs=False), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "live server did not start"
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", factory)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
        dbmod._engine, dbmod._factory = previous


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    pg = context.new_page()
    pg.set_default_timeout(15000)
    yield pg
    context.close()


def login(page, base: str, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login")
    page.fill("#f-username", username)
    page.fill("#f-password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def pick_patient(page, typed: str, name: str, field: str = "patient_id") -> None:  # type: ignore[no-untyped-def]
    """Choose a patient in the type-ahead picker (patients/_picker.html): type, wait for the match, click it."""
    page.fill(f"#pick-{field}", typed)
    page.click(f"#pick-results-{field} .pick-option:has-text('{name}')")
    page.wait_for_selector(f"#picked-{field}:has-text('{name}')")
