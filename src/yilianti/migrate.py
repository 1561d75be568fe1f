"""Run Alembic migrations programmatically (the CLI, the demo and the tests all use this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from yilianti.cockpit import library
from yilianti.config import get_settings
from yilianti.db import make_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str | None = None, connection: Connection | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url, connection), revision)
    if revision == "head":
        sync_reference_data(url, connection)


def sync_reference_data(url: str | None = None, connection: Connection | None = None) -> None:
    """Reference data that ships with the code (the cockpit's indicator library), brought up to date after the
    schema: rows the file defines are added or updated, rows users made are not touched."""
    if connection is not None:
        with Session(bind=connection) as db:
            library.sync(db)
            db.commit()  # joins the caller's transaction: the caller commits
        return
    engine = make_engine(url or get_settings().database_url, timeouts=False)
    try:
        with Session(engine) as db:
            library.sync(db)
            db.commit()
    finally:
        engine.dispose()
