"""Layers: page and route modules call services and repositories, never build queries themselves.

Issue 15 ("one rule, one place"): queries live in `<domain>/repository.py` (shared helpers in
`kit/repository.py`); a page or API route calling `select()` or `db.get()` is a query that a second
page will copy. This test reads the modules with `ast`, so it needs no database. The PostgreSQL
fast paths (`*/fastpath.py`) are exempt: they are a different fetch strategy, not a page.

Service modules are held to the same rule: their queries go into the domain's repository.py too.
Those not yet moved are listed in `SERVICES_STILL_QUERYING`, a list that can only shrink: a module
missing from it may not query, and a listed module that no longer queries fails until it is struck off.
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


# ------------------------------------------------------------------------------------ service modules

# Modules that query by their role, not by accident: the schema and its migrations, the engine set-up,
# the shared kit (kit/repository.py, kit/workflow.py's one transition), the demo loaders, the modules of
# rules written as clause builders, which evaluate them (authz/policy.py's `decide`, scheduling/rules.py's
# `share_alliance` and `_may_use_reserve`: the clause is the rule, so its one evaluation stays beside it),
# and the two maintenance commands that rewrite tables in raw SQL on a Connection — empi/backfill.py (run by
# migration 0009, at that schema, not the models') and patients/keys.py (every encrypted column, table by
# table).
QUERYING_BY_ROLE = frozenset({"db.py", "authz/policy.py", "scheduling/rules.py", "empi/backfill.py",
                              "patients/keys.py"})
QUERYING_BY_ROLE_DIRS = frozenset({"migrations", "models", "kit", "demo"})

# Service modules whose queries have not yet moved into their domain's repository.py. Only ever strike
# entries off: test_services_still_querying_is_honest fails when a listed module no longer queries. Empty
# since issue 15 moved the last of them: a new query goes into repository.py, not onto this list.
SERVICES_STILL_QUERYING: frozenset[str] = frozenset()


def _rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def service_modules() -> list[Path]:
    """Every module that is neither a page/route, a repository, a fast path nor a module querying by role."""
    return sorted(p for p in SRC.rglob("*.py")
                  if not _is_route_module(p) and p.name not in ("repository.py", "fastpath.py")
                  and _rel(p).split("/")[0] not in QUERYING_BY_ROLE_DIRS and _rel(p) not in QUERYING_BY_ROLE)


def test_there_are_service_modules_to_check() -> None:
    names = {_rel(p) for p in service_modules()}
    assert {"referral/service.py", "scheduling/booking.py", "diagnostics/orders/workflow.py"} <= names
    assert not any(n.endswith(("repository.py", "fastpath.py", "pages.py", "api.py")) for n in names)


@pytest.mark.parametrize("path", [p for p in service_modules() if _rel(p) not in SERVICES_STILL_QUERYING],
                         ids=_rel)
def test_service_modules_do_not_query(path: Path) -> None:
    found = violations(path.read_text(encoding="utf-8"))
    assert not found, (f"{_rel(path)} queries the database itself; move the query into the domain's "
                       f"repository.py:\n  " + "\n  ".join(found))


def test_services_still_querying_is_honest() -> None:
    """The allowance only shrinks: each listed module exists and still queries (else strike it off)."""
    modules = {_rel(p): p for p in service_modules()}
    missing = sorted(m for m in SERVICES_STILL_QUERYING if m not in modules)
    assert not missing, f"listed in SERVICES_STILL_QUERYING but not a service module (strike off): {missing}"
    clean = sorted(m for m in SERVICES_STILL_QUERYING if not violations(modules[m].read_text(encoding="utf-8")))
    assert not clean, f"no longer query the database; strike them off SERVICES_STILL_QUERYING: {clean}"
