"""Layers: page and route modules call services and repositories, never build queries themselves.

Issue 15 ("one rule, one place"): queries live in `<domain>/repository.py` (shared helpers in
`kit/repository.py`); a page or API route calling `select()` or `db.get()` is a query that a second
page will copy. This test reads the modules with `ast`, so it needs no database. The PostgreSQL
fast paths (`*/fastpath.py`) are exempt: they are a different fetch strategy, not a page.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "yilianti"
DB_CALLS = frozenset({"get", "execute", "scalar", "scalars", "query"})
QUERY_BUILDERS = frozenset({"select", "insert", "update", "delete", "text"})


def _is_route_module(path: Path) -> bool:
    name = path.name
    return name in ("pages.py", "api.py") or name.endswith(("_pages.py", "_api.py"))


def route_modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if _is_route_module(p) and p.name != "fastpath.py")


def _is_session(node: ast.expr) -> bool:
    """`db`, `session`, or `<something>.db` — the names a database session goes by (`request.session`
    is the cookie session, a dict)."""
    if isinstance(node, ast.Name):
        return node.id in ("db", "session")
    return isinstance(node, ast.Attribute) and node.attr == "db"


def violations(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found += [f"line {node.lineno}: imports {a.name} from {node.module}"
                      for a in node.names if a.name in QUERY_BUILDERS]
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in QUERY_BUILDERS:
                found.append(f"line {node.lineno}: calls {f.id}()")
            elif isinstance(f, ast.Attribute) and f.attr in DB_CALLS and _is_session(f.value):
                found.append(f"line {node.lineno}: calls db.{f.attr}()")
    return found


def test_the_check_sees_queries() -> None:
    bad = (
        "from sqlalchemy import func, select\n"
        "def page(db):\n"
        "    a = db.get(Patient, 1)\n"
        "    b = db.scalars(select(Patient))\n"
        "    c = request.state.db.execute(q)\n"
        "    return db.scalar(q)\n"
    )
    assert len(violations(bad)) == 6
    good = ("from yilianti.kit import repository as kit\n"
            "def page(request, db):\n"
            "    request.session.get('csrf')\n"
            "    return kit.get(db, Patient, 1)\n")
    assert violations(good) == []


def test_there_are_route_modules_to_check() -> None:
    names = {str(p.relative_to(SRC)) for p in route_modules()}
    assert {"web/pages.py", "recognition/pages.py", "diagnostics/orders/api.py", "referral/api.py"} <= names
    assert not any(n.endswith("fastpath.py") for n in names)


@pytest.mark.parametrize("path", route_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_route_modules_do_not_query(path: Path) -> None:
    found = violations(path.read_text(encoding="utf-8"))
    assert not found, (f"{path.relative_to(SRC)} queries the database itself; move the query into the "
                       f"domain's repository.py (shared helpers: kit/repository.py):\n  " + "\n  ".join(found))


def test_one_name_for_the_query_modules() -> None:
    """Queries live in repository.py: no queries.py / service_query.py beside it."""
    strays = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                    if p.name in ("queries.py", "query.py", "service_query.py"))
    assert strays == []
