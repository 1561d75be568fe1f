"""No copied rule or workflow (issue 15): pylint's similarity checker over src/ finds no run of six or more
identical lines (comments, docstrings, imports and signatures aside) in two places.

Migrations are frozen history and the demo data set is data written as code: both are left out. A run the
checker finds is either a rule or a piece of machinery written twice — give it one home and call it — or,
rarely, two things that only look alike; those are listed in ALIKE with the reason, so the list is reviewed.
"""

from __future__ import annotations

from pathlib import Path

from pylint.checkers.symilar import Symilar

import yilianti

SRC = Path(yilianti.__file__).parent
LEFT_OUT = {"migrations", "demo"}
MIN_LINES = 6
# frozenset of the two files → why they may share a run
ALIKE: dict[frozenset[str], str] = {}


def _runs() -> list[tuple[int, tuple[str, ...]]]:
    sim = Symilar(min_lines=MIN_LINES, ignore_comments=True, ignore_docstrings=True, ignore_imports=True,
                  ignore_signatures=True)
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if LEFT_OUT & set(relative.parts):
            continue
        with path.open(encoding="utf-8") as stream:
            sim.append_stream(str(relative), stream)
    runs = []
    for lines, places in sim._compute_sims():
        where = tuple(sorted(f"{lineset.name}:{int(start) + 1}-{int(end)}" for lineset, start, end in places))
        if frozenset(lineset.name for lineset, _, _ in places) not in ALIKE:
            runs.append((lines, where))
    return runs


def test_no_run_of_code_stands_in_two_places() -> None:
    runs = _runs()
    assert not runs, "copied code (give it one home):\n" + "\n".join(f"{n} lines: {' ~ '.join(w)}" for n, w in runs)
