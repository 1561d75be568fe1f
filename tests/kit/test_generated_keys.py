"""Generated secrets (secret.key, data.keys, index.key): many starters at once agree on one value."""

from __future__ import annotations

import threading
from pathlib import Path

from yilianti.config import _read_or_create


def test_simultaneous_first_runs_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "var" / "data.keys"
    seen: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(16)
    counter = iter(range(1000))

    def run() -> None:
        start.wait()
        try:
            seen.append(_read_or_create(path, lambda: f"key-{next(counter)}"))
        except BaseException as exc:  # the old code raised FileExistsError for the losers
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(seen) == 16 and len(set(seen)) == 1
    assert path.read_text().strip() == seen[0] and oct(path.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.keys"]  # no temporary files left
    assert _read_or_create(path, lambda: "other") == seen[0]  # later runs read it
