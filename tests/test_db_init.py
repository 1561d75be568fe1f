"""The engine is created once even when the first requests arrive together."""

from __future__ import annotations

import threading

from yilianti import db as dbmod


def test_concurrent_first_use_creates_one_engine(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    created: list[object] = []
    real = dbmod.make_engine

    def counting(url: str, **kw):  # type: ignore[no-untyped-def]
        engine = real(url, **kw)
        created.append(engine)
        return engine

    monkeypatch.setattr(dbmod, "make_engine", counting)
    monkeypatch.setattr(dbmod, "_engine", None)
    monkeypatch.setattr(dbmod, "_factory", None)
    start = threading.Barrier(16)
    factories: list[object] = []

    def first_use() -> None:
        start.wait()
        factories.append(dbmod.session_factory())

    threads = [threading.Thread(target=first_use) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 1 and len({id(f) for f in factories}) == 1
    created[0].dispose()  # type: ignore[attr-defined]
