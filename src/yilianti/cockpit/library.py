"""The indicator library file (`library.yaml`) and its rows in the database.

`sync` makes the `indicator` table say what the file says — new indicators added, definitions updated,
nothing the alliances set (their targets) touched. `yilianti migrate` runs it after the migrations, so an
upgrade brings the new library with the new code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from yilianti.cockpit import repository
from yilianti.cockpit.measures import MEASURES
from yilianti.models.cockpit import Indicator

LIBRARY = Path(__file__).with_name("library.yaml")
UNITS = ("count", "ratio", "times", "change", "hours", "minutes", "yuan", "per10k", "yesno")
DIRECTIONS = ("up", "down", "none")
FIELDS = ("group", "name", "name_en", "definition", "numerator", "denominator", "unit", "direction", "level",
          "source", "data_source", "default_target", "target_source", "growth_of")


@lru_cache
def entries() -> tuple[dict[str, Any], ...]:
    """The library file's entries, checked: a unit and direction it knows, measures that exist."""
    raw = yaml.safe_load(LIBRARY.read_text(encoding="utf-8"))
    out = []
    for sort, entry in enumerate(raw):
        e = {"level": "alliance", "source": "computed", "numerator": None, "denominator": None,
             "default_target": None, "target_source": None, "growth_of": None, **entry, "sort": sort}
        if e["unit"] not in UNITS or e["direction"] not in DIRECTIONS:
            raise ValueError(f"indicator {e['code']}: unit {e['unit']!r} or direction {e['direction']!r} unknown")
        for m in (e["numerator"], e["denominator"]):
            if m is not None and m not in MEASURES:
                raise ValueError(f"indicator {e['code']}: measure {m!r} is not in cockpit/measures.py")
        if e["source"] == "computed" and e["numerator"] is None:
            raise ValueError(f"indicator {e['code']}: a computed indicator needs a numerator")
        out.append(e)
    return tuple(out)


def sync(db: Session) -> int:
    """Insert or update every library entry; the number of rows added or changed."""
    existing = {i.code: i for i in repository.library(db)}
    changed = 0
    for e in entries():
        row = existing.get(e["code"])
        if row is None:
            row = Indicator(code=e["code"])
            db.add(row)
        values = {f: e[f] for f in (*FIELDS, "sort")}
        if any(getattr(row, f, None) != v for f, v in values.items()):
            for f, v in values.items():
                setattr(row, f, v)
            changed += 1
    db.flush()
    return changed
