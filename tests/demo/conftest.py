"""The demo data set is loaded once for the whole package (both modules read the same load)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from yilianti import db as dbmod
from yilianti.demo import dataset


@pytest.fixture(scope="package")
def db(test_db) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    """Overrides the per-test session: one load for the package, rolled back at the end."""
    connection = test_db.engine.connect()
    outer = connection.begin()
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    previous = (dbmod._engine, dbmod._factory)
    dbmod.set_session_factory(factory, test_db.engine)
    session = factory()
    try:
        dataset.load_demo(session)
        session.commit()  # a savepoint inside the outer transaction
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()
        dbmod._engine, dbmod._factory = previous
