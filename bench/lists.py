"""B7: server time per list page and role (issue 16): p95 ≤ 300 ms at the demo's data size and at 100k patients.

    python bench/lists.py [--database-url URL] [--repeat 20] [--patients 100000] [--var-dir DIR [--loaded]]

Builds a fresh database (SQLite in a temp directory unless --database-url names an empty PostgreSQL
database), loads the demo, then for each role's demo account requests every list page it uses — the
workbench and its polled fragments, each workbench count's linked list, and the lists with a search,
a date range and an export — `--repeat` times, in process (Starlette's TestClient: the time is the
server's, with no network), and prints p50 / p95 / max per page and role, and the pages over target.
`--patients N` adds N generated patients (picker_search.insert_patients) registered at the grassroots
doctor's centre, all readable by its staff: the worst case of the patient list and of every access rule.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from html import unescape

HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0]) == HERE:
    sys.path.pop(0)  # bench/fhir.py would shadow the fhir.resources package the app imports

TARGET_MS = 300.0

ROLES = {  # role → demo account
    "grassroots doctor": "tj-community-doctor",
    "grassroots nurse": "tj-community-nurse",
    "lead-hospital doctor": "tj-lead-doctor",
    "reading-centre reader": "xianghe-reader",
    "coordinator": "tj-lead-coordinator",
    "institution admin": "tj-lead-admin",
    "alliance admin": "tj-alliance-admin",
    "auditor": "tj-auditor",
    "busy sender (保定)": "baoding-doctor",
}

COMMON = ["/", "/workbench/counts", "/workbench/live", "/api/v1/workbench", "/api/v1/notifications",
          "/notifications"]
CLINICAL = ["/referrals", "/referrals?side=sender&bucket=all", "/referrals?side=sender&bucket=all&q=王",
            "/referrals?side=receiver&bucket=all&from=2026-01-01&to=2026-12-31&status=closed",
            "/referrals?side=sender&bucket=all&format=xlsx", "/consultations?side=consultant&bucket=all",
            "/consultations?side=requester&bucket=all&format=xlsx", "/scheduling/bookings?tab=incoming",
            "/scheduling/bookings?tab=made&format=xlsx", "/scheduling/waitlist", "/scheduling/waitlist?tab=outgoing",
            "/transfers", "/patients", "/patients?q=王", "/patients?status=here&page=3", "/patients?q=王&format=xlsx",
            "/diagnostics/orders", "/diagnostics/critical"]
READER = ["/diagnostics/worklist", "/diagnostics/worklist?priority=stat", "/diagnostics/worklist?q=CT",
          "/diagnostics/worklist?status=received&format=xlsx"]
ADMIN = ["/empi/review", "/empi/review?status=all", "/empi/review?status=all&format=xlsx", "/audit/break-glass",
         "/audit", "/audit?page=3", "/audit?action=read", "/audit?action=read&format=xlsx"]


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def _load(patients: int) -> None:
    """A fresh database: the schema, the demo, then `patients` generated patients at the grassroots doctor's centre."""
    from sqlalchemy import select

    from yilianti import db as dbmod
    from yilianti.demo import dataset
    from yilianti.migrate import upgrade
    from yilianti.models.auth import RoleAssignment, User

    t0 = time.perf_counter()
    upgrade(os.environ["YILIANTI_DATABASE_URL"])
    with dbmod.session_factory()() as db:
        dataset.load_demo(db)
        db.commit()
        home = db.scalar(select(RoleAssignment.institution_id).join(User, User.id == RoleAssignment.user_id)
                         .where(User.username == ROLES["grassroots doctor"]).limit(1))
    print(f"demo loaded in {time.perf_counter() - t0:.0f} s ({os.environ['YILIANTI_DATABASE_URL'].split(':')[0]})",
          file=sys.stderr)
    if patients:
        from importlib.util import module_from_spec, spec_from_file_location

        spec = spec_from_file_location("picker_search", os.path.join(HERE, "picker_search.py"))
        assert spec is not None and spec.loader is not None
        picker_search = module_from_spec(spec)
        spec.loader.exec_module(picker_search)
        insert_patients = picker_search.insert_patients
        t0 = time.perf_counter()
        assert home is not None
        insert_patients(dbmod.get_engine(), home, patients, rid_offset=500_000)
        print(f"{patients} patients generated in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--patients", type=int, default=0, help="generated patients at the grassroots doctor's centre")
    ap.add_argument("--loaded", action="store_true", help="the database already holds a run's data: time only")
    ap.add_argument("--var-dir", default="", help="keep the keys here (a --loaded run needs the loading run's)")
    args = ap.parse_args()
    var = args.var_dir or tempfile.mkdtemp(prefix="ylt-bench-lists-")
    os.environ.setdefault("YILIANTI_VAR_DIR", var)
    os.environ["YILIANTI_DATABASE_URL"] = args.database_url or f"sqlite:///{var}/bench.db"
    os.environ["YILIANTI_RUN_JOBS_IN_PROCESS"] = "false"
    os.environ["YILIANTI_ACCESS_LOG"] = "false"
    os.environ.setdefault("YILIANTI_SECRET_KEY", "bench-secret")
    os.environ.setdefault("YILIANTI_PASSWORD_HASH_COST", "minimal")

    from fastapi.testclient import TestClient

    from yilianti.demo import loader
    from yilianti.main import create_app

    if not args.loaded:
        _load(args.patients)
    password = loader.DEMO_PASSWORD
    app = create_app(run_jobs=False)
    over: list[str] = []
    print(f"{'role':24} {'page':72} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
    with TestClient(app) as client:
        for role, username in ROLES.items():
            client.cookies.clear()
            page = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            r = client.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                            "next": "/"}, follow_redirects=False)
            assert r.status_code == 303, (username, r.status_code)
            home = client.get("/").text
            linked = sorted({unescape(h).split("#")[0] for h in re.findall(r'<a href="([^"]+)" id="wb-', home)})
            urls = list(dict.fromkeys(COMMON + linked + (CLINICAL if "doctor" in role or "nurse" in role
                                                         or role in ("coordinator", "reading-centre reader",
                                                                     "busy sender (保定)") else [])
                                      + (READER if "reader" in role else [])
                                      + (ADMIN if "admin" in role or role == "auditor" else [])))
            for url in urls:
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    resp = client.get(url, follow_redirects=False)
                    times.append((time.perf_counter() - start) * 1000)
                    if resp.status_code >= 500:
                        print(f"  {url}: {resp.status_code}", file=sys.stderr)
                p95 = _p(times, 0.95)
                mark = " *" if p95 > TARGET_MS else ""
                print(f"{role:24} {url[:72]:72} {statistics.median(times):7.1f} {p95:7.1f} {max(times):7.1f}{mark}")
                if p95 > TARGET_MS:
                    over.append(f"{role} {url} p95 {p95:.0f} ms")
    print(f"\npages over the {TARGET_MS:.0f} ms p95 target: {len(over)}")
    for line in over:
        print("  " + line)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
