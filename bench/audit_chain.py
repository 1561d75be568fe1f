"""The audit hash chain's own cost: rows sealed per second and rows verified per second.

    python bench/audit_chain.py [--rows 200000] [--suite standard|sm] [--url postgresql://postgres@127.0.0.1:5432]

Creates and drops the database `ylt_bench_chain`, writes `--rows` audit rows shaped like the hot
paths' read audits (one INSERT … SELECT generate_series), then times `chain.seal_all` (what the job
runner does in steps of at most 20,000 rows) and `chain.verify`. The writers never wait for the
sealer (it only reads audit_event), so this is the sealer's budget, not the hot paths'.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

DBNAME = "ylt_bench_chain"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--suite", choices=["standard", "sm"], default="standard")
    args = ap.parse_args()
    os.environ.update(YILIANTI_VAR_DIR=tempfile.mkdtemp(), YILIANTI_CRYPTO_SUITE=args.suite,
                      YILIANTI_SECRET_KEY="bench")
    from yilianti.audit import chain
    from yilianti.config import normalise_db_url
    from yilianti.db import make_engine
    from yilianti.migrate import upgrade

    admin = create_engine(normalise_db_url(args.url), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)"))
        c.execute(text(f"CREATE DATABASE {DBNAME}"))
    url = make_url(normalise_db_url(args.url)).set(database=DBNAME).render_as_string(hide_password=False)
    try:
        upgrade(url)
        engine = make_engine(url, timeouts=False)  # a 200,000-row INSERT and a whole-log walk
        with engine.begin() as c:
            c.execute(text(
                "INSERT INTO audit_event (at, user_id, username, acting_institution_id, action, resource_type, "
                "resource_id, patient_id, access_basis, detail, ip, channel) "
                "SELECT now() - make_interval(secs => :n - g), NULL, 'doctor' || (g % 300), NULL, 'read', "
                "'recognition_lookup', g::text, g % 100000, 'shared', "
                "json_build_object('item', '甲功三项', 'results', g % 7), '10.0.0.' || (g % 250), 'api' "
                "FROM generate_series(1, :n) g"), {"n": args.rows})
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        t = time.perf_counter()
        links = chain.seal_all(factory, timeout=3600)
        seal_s = time.perf_counter() - t
        t = time.perf_counter()
        with factory() as db:
            report = chain.verify(db)
        verify_s = time.perf_counter() - t
        engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)"))
        admin.dispose()
    print(f"suite={args.suite} rows={args.rows} links={links}: sealed {args.rows / seal_s:,.0f} rows/s "
          f"({seal_s:.1f} s), verified {report.rows / verify_s:,.0f} rows/s ({verify_s:.1f} s), ok={report.ok}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
