"""`yilianti demo | serve | worker | migrate | backup | restore | load-demo | create-user | client add|revoke | archive | partitions | empi link | keys rotate | audit verify | audit seal` (CONTRACTS.md)."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _settings():  # type: ignore[no-untyped-def]
    from yilianti.config import get_settings

    return get_settings()


def cmd_migrate(_args: argparse.Namespace) -> int:
    from yilianti.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    print(f"database migrated: {_safe_url(settings.database_url)}")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _load_demo() -> list:  # type: ignore[type-arg]
    from yilianti.archive import service as partitions
    from yilianti.db import session_factory
    from yilianti.demo.dataset import load_demo
    from yilianti.kit import clock

    with session_factory()() as db:
        accounts = load_demo(db)
        db.commit()
        partitions.run(db.connection(), clock.now())  # the demo's years of history into their months
        db.commit()
    return accounts


def cmd_load_demo(_args: argparse.Namespace) -> int:
    cmd_migrate(_args)
    accounts = _load_demo()
    _print_accounts(accounts)
    return 0


def _print_accounts(accounts: Sequence) -> None:  # type: ignore[type-arg]
    for a in accounts:
        print(f"demo account: username={a.username} password={a.password} role={a.role} "
              f"institution={a.institution_name}")
    sys.stdout.flush()


def _keys_fit() -> bool:
    """Refuse to start when the keys cannot read the personal data stored (patients/keys.py)."""
    from yilianti.db import make_engine
    from yilianti.patients.keys import stale_index_warning, stored_data_problem

    engine = make_engine(_settings().database_url)
    try:
        with engine.connect() as conn:
            problem = stored_data_problem(conn)
            warning = None if problem else stale_index_warning(conn)
    finally:
        engine.dispose()
    if warning:
        logging.getLogger("yilianti").warning(warning)
    if problem:
        print(f"error: not starting: {problem}", file=sys.stderr)
        return False
    return True


def _serve(run_jobs: bool) -> int:
    import uvicorn

    from yilianti.main import create_app

    if not _keys_fit():
        return 2
    settings = _settings()
    if settings.web_processes > 1:
        return _serve_processes(settings.web_processes, run_jobs)
    app = create_app(settings, run_jobs=run_jobs)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", proxy_headers=False,
                access_log=settings.access_log, log_config=None)  # our handler (ops/logs.py) formats uvicorn's lines
    return 0


def _reuseport_socket(host: str, port: int):  # type: ignore[no-untyped-def]
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _serve_one(index: int, run_jobs: bool) -> None:
    """One web process on its own SO_REUSEPORT socket (runs in a child process)."""
    import uvicorn

    from yilianti.main import create_app

    settings = _settings()
    _configure_logs()
    sock = _reuseport_socket(settings.host, settings.port)
    app = create_app(settings, run_jobs=run_jobs and index == 0)  # periodic jobs run once
    config = uvicorn.Config(app, log_level="info", proxy_headers=False, access_log=settings.access_log,
                            log_config=None)
    uvicorn.Server(config).run(sockets=[sock])


def _serve_processes(processes: int, run_jobs: bool) -> int:
    """`processes` web processes sharing the port: each binds its own SO_REUSEPORT socket, so the
    kernel spreads connections over them (uvicorn --workers' one shared socket lets one process accept
    most of a burst). SIGTERM / Ctrl-C stops them all; a process that dies stops the rest."""
    import multiprocessing
    import time

    settings = _settings()
    _reuseport_socket(settings.host, settings.port).close()  # fail fast and clearly if the port is taken
    from yilianti.ops.metrics import prepare_multiprocess

    # the processes' metrics add up in one directory: /metrics answers for all of them (ops/metrics.py)
    prepare_multiprocess(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(settings.var_dir / f"metrics-{settings.port}"))
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_serve_one, args=(i, run_jobs), name=f"yilianti-web-{i}")
                for i in range(processes)]
    for child in children:
        child.start()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    print(f"yilianti: {processes} web processes on {settings.host}:{settings.port} (SO_REUSEPORT)", flush=True)
    try:
        while not stopping and all(c.is_alive() for c in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: uvicorn finishes its requests and runs the lifespan shutdown
    for child in children:
        child.join(timeout=30)
    return 0 if stopping or all(c.exitcode in (0, -signal.SIGTERM) for c in children) else 1


def cmd_serve(_args: argparse.Namespace) -> int:
    return _serve(run_jobs=False)


def cmd_demo(_args: argparse.Namespace) -> int:
    settings = _settings()
    cmd_migrate(_args)
    print("loading demo data (kept if already present) ...", flush=True)
    accounts = _load_demo()
    print(f"Yilianti demo: http://{settings.host}:{settings.port}/  (API docs: /api/docs)")
    _print_accounts(accounts)
    from yilianti.diagnostics.receivers.start import start_all

    receivers = start_all(settings)
    try:
        return _serve(run_jobs=True)
    finally:
        receivers.stop()


def cmd_worker(args: argparse.Namespace) -> int:
    """The job queue's worker (procrastinate on PostgreSQL: run as many as you like, on any machine) and the
    HL7/DICOM receivers (not with `--no-receivers` or YILIANTI_WORKER_RECEIVERS=false: one worker listens on the
    MLLP/DICOM ports, the others run jobs only). On SQLite the in-process runner of the demo does the same work."""
    if not _keys_fit():
        return 2
    settings = _settings()
    if settings.worker_metrics_port:  # before anything counts: the HL7 child processes count too
        from yilianti.ops.metrics import prepare_multiprocess, serve_metrics

        prepare_multiprocess(os.environ.get("PROMETHEUS_MULTIPROC_DIR")
                             or str(settings.var_dir / f"metrics-worker-{settings.worker_metrics_port}"))
        serve_metrics(settings.host, settings.worker_metrics_port)
    from yilianti.db import session_factory
    from yilianti.diagnostics.receivers.start import Receivers, start_all

    with_receivers = settings.worker_receivers and not getattr(args, "no_receivers", False)
    receivers = start_all(settings) if with_receivers else Receivers()
    if not with_receivers:
        print("yilianti worker: no HL7/DICOM receivers (--no-receivers)", flush=True)
    try:
        if settings.database_url.startswith("sqlite"):
            from yilianti.worker.runner import JobRunner

            runner = JobRunner(session_factory())
            signal.signal(signal.SIGTERM, lambda *_: runner.stop())
            print("yilianti worker: delivering outbox messages and running periodic jobs (Ctrl-C stops)", flush=True)
            try:
                runner.loop()
            except KeyboardInterrupt:
                runner.stop()
        else:
            import asyncio

            from yilianti.worker.queue import run_worker

            print(f"yilianti worker: procrastinate, {settings.worker_concurrency} jobs at once "
                  "(SIGTERM / Ctrl-C stops after the running jobs)", flush=True)
            asyncio.run(run_worker(settings.database_url, session_factory(), settings.worker_concurrency))
    finally:
        receivers.stop()
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """A consistent backup (database dump, attachments, DICOM files, keys) with a manifest of checksums."""
    from pathlib import Path

    from yilianti.ops.backup import BackupError, backup

    try:
        manifest = backup(Path(args.output), _settings())
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = sum(manifest["counts"].values())
    print(f"backup written to {args.output}: {manifest['database']} at revision {manifest['revision']}, "
          f"{len(manifest['counts'])} tables, {rows} rows, {len(manifest['files'])} files "
          "(it holds the keys: keep it as safe as they are)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Into an empty database only; --verify compares row counts and decrypted samples with the manifest."""
    from pathlib import Path

    from yilianti.ops.backup import BackupError, restore, verify

    source = Path(args.input)
    settings = _settings()
    try:
        done = restore(source, settings)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"restored {done['database']} at revision {done['revision']} into {_safe_url(settings.database_url)}"
          + (f"; keys written: {', '.join(done['keys_written'])}" if done["keys_written"] else ""))
    if args.verify:
        result = verify(source, settings)
        for problem in result.problems:
            print(f"verify: {problem}", file=sys.stderr)
        if not result.ok:
            return 1
        print(f"verified: {result.tables} tables, {result.rows} rows and {result.samples} decrypted samples "
              "equal the backup's")
    print("next: `yilianti migrate` (when this release is newer than the backup), then start the services")
    return 0


def _institution_or_error(db: Any, name: str) -> Any:
    """The institution named (or numbered) `name`; None after saying so on stderr."""
    from yilianti.alliance.repository import institution_by_name_or_id

    inst = institution_by_name_or_id(db, name)
    if inst is None:
        print(f"error: unknown institution {name!r}", file=sys.stderr)
    return inst


def _refused(exc: Any, fields: bool = True) -> int:
    """An AppError from a command's service call, on stderr; the exit status 2."""
    print(f"error: {exc.message} {exc.fields}" if fields else f"error: {exc.message}", file=sys.stderr)
    return 2


def cmd_create_user(args: argparse.Namespace) -> int:
    from yilianti.auth.service import create_user
    from yilianti.db import session_factory
    from yilianti.exceptions import AppError

    password = args.password or os.environ.get("YILIANTI_NEW_USER_PASSWORD") or getpass.getpass("password: ")
    with session_factory()() as db:
        inst_id = None
        if args.institution:
            inst = _institution_or_error(db, args.institution)
            if inst is None:
                return 2
            inst_id = inst.id
        if args.role != "system_admin" and inst_id is None:
            print("error: --institution is required for this role", file=sys.stderr)
            return 2
        try:
            user = create_user(db, None, args.username, password, args.display_name or args.username,
                               [(args.role, inst_id, None)])
            db.commit()
        except AppError as exc:
            return _refused(exc)
    print(f"created user {user.username} (id {user.id}) role={args.role}")
    return 0


def cmd_empi_link(args: argparse.Namespace) -> int:
    from yilianti.empi.batch import main as link_main

    return link_main(args.input, args.output, args.review, args.rules, args.links, args.weights)


def cmd_empi_train(args: argparse.Namespace) -> int:
    from yilianti.empi.train import main as train_main

    return train_main(args.input, args.output, None if args.input else _settings().database_url)


def cmd_empi_backfill(_args: argparse.Namespace) -> int:
    from yilianti.db import make_engine
    from yilianti.empi.backfill import backfill

    engine = make_engine(_settings().database_url)
    with engine.begin() as conn:
        n = backfill(conn)
    engine.dispose()
    print(f"source records created for {n} persons")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from yilianti.db import make_engine
    from yilianti.patients.keys import rotate_all

    engine = make_engine(_settings().database_url)
    with engine.connect() as conn:
        done = rotate_all(conn, reindex=args.reindex, commit=conn.commit)
        conn.commit()
    engine.dispose()
    print(f"re-encrypted under the newest key: {sum(done.values())} values "
          + ", ".join(f"{k}={v}" for k, v in done.items()))
    return 0


def cmd_dicom_metadata(args: argparse.Namespace) -> int:
    """Make the WADO-RS metadata documents of instances stored before they were made at ingest."""
    from sqlalchemy.orm import Session

    from yilianti.db import make_engine
    from yilianti.diagnostics.dicomweb.service import backfill_metadata

    engine = make_engine(_settings().database_url)
    made = failed = 0
    with Session(engine) as db:
        for made, failed in backfill_metadata(db, args.batch):
            print(f"dicom-metadata: {made} made, {failed} unreadable", file=sys.stderr, flush=True)
    engine.dispose()
    print(f"dicom-metadata: {made} documents made, {failed} instances unreadable (their files are missing or "
          "not DICOM; the WADO-RS metadata of those answers 404)")
    return 0


def cmd_audit_seal(_args: argparse.Namespace) -> int:
    from sqlalchemy.orm import sessionmaker

    from yilianti.audit import chain
    from yilianti.db import make_engine

    engine = make_engine(_settings().database_url)
    made = chain.seal_all(sessionmaker(bind=engine, expire_on_commit=False))
    engine.dispose()
    print(f"audit seal: {made} new link(s); head written to {chain.head_target()}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from yilianti.audit import chain
    from yilianti.db import make_engine

    if args.head and not os.path.exists(args.head):
        print(f"error: no such head file {args.head}", file=sys.stderr)
        return 2
    engine = make_engine(_settings().database_url)
    with Session(engine) as db:
        report = chain.verify(db, args.head, out=sys.stderr, from_link=args.from_link)
    engine.dispose()
    for problem in report.problems:
        print(f"FAIL {problem}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"audit verify: {report.links} links, {report.rows} rows sealed, {report.unsealed} not yet sealed: "
          + ("OK" if report.ok else f"{len(report.problems)} problem(s)"))
    return 0 if report.ok else 1


def cmd_cockpit_rebuild(args: argparse.Namespace) -> int:
    """Rebuild the cockpit's daily rollups of a range of days (default: about three years to yesterday), half a
    year at a time for every alliance, committing each; progress on stderr, a summary on stdout."""
    import time as _time
    from datetime import date, timedelta

    from sqlalchemy.orm import Session

    from yilianti.cockpit import rollup
    from yilianti.db import make_engine
    from yilianti.kit import clock

    try:
        end = date.fromisoformat(args.to) if args.to else clock.today_local() - timedelta(days=1)
        start = date.fromisoformat(args.from_) if args.from_ else end - timedelta(days=rollup.HORIZON_DAYS)
    except ValueError:
        print("error: dates are YYYY-MM-DD", file=sys.stderr)
        return 2
    if start > end:
        print("error: --from is after --to", file=sys.stderr)
        return 2
    began = _time.monotonic()
    engine = make_engine(_settings().database_url)
    with Session(engine) as db:
        written = rollup.rebuild(db, start, end, args.alliance or None, commit=db.commit)
        db.commit()
    engine.dispose()
    print(f"cockpit rebuild: {start} – {end}: {written} rollup rows in {_time.monotonic() - began:.1f} s")
    return 0


def cmd_partitions(_args: argparse.Namespace) -> int:
    from yilianti.archive import service as partitions
    from yilianti.db import make_engine
    from yilianti.kit import clock

    engine = make_engine(_settings().database_url)
    if engine.dialect.name != "postgresql":
        print("partitions: SQLite keeps its tables whole; nothing to do")
        return 0
    with engine.begin() as conn:
        upkeep = partitions.run(conn, clock.now())
    engine.dispose()
    print(f"partitions: {len(upkeep.created)} created ({', '.join(upkeep.created) or '-'}); rows moved out of the "
          f"default partition for {sum(upkeep.moved.values())} month(s); {len(upkeep.dropped)} month(s) dropped by "
          f"retention ({', '.join(upkeep.dropped) or '-'}); rows deleted by retention: "
          + (", ".join(f"{t} {n}" for t, n in upkeep.deleted.items()) or "0"))
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    """Old months of the audit log, inbound messages and outbox moved to the archive schema (or one brought back)."""
    from datetime import date

    from yilianti.archive import service as partitions
    from yilianti.db import make_engine
    from yilianti.kit import clock

    settings = _settings()
    engine = make_engine(settings.database_url)
    if engine.dialect.name != "postgresql":
        print("archive: SQLite keeps its tables whole; nothing to archive")
        return 0
    tables = [args.table] if args.table else None
    try:
        with engine.begin() as conn:
            if args.restore:
                try:
                    month = date(int(args.restore[:4]), int(args.restore[5:7]), 1)
                except ValueError:
                    print("archive: --restore takes a month, YYYY-MM")
                    return 2
                done = partitions.restore(conn, month, tables)
                print(f"archive: {len(done.moved)} partition(s) back in the live tables "
                      f"({', '.join(done.moved) or '-'})")
            elif args.list:
                for tbl, months in partitions.archived_months(conn).items():
                    print(f"{tbl}: {', '.join(f'{m:%Y-%m}' for m in months) or '-'}")
            else:
                after = settings.archive_after_months if args.months is None else args.months
                done = partitions.archive(conn, clock.now(), after, tables)
                print(f"archive: {len(done.moved)} month partition(s) older than {after} month(s) archived "
                      f"({', '.join(done.moved) or '-'}); {len(done.kept)} kept live, holding open rows "
                      f"({', '.join(done.kept) or '-'})")
    finally:
        engine.dispose()
    return 0


def cmd_client_add(args: argparse.Namespace) -> int:
    from yilianti.auth import clients
    from yilianti.db import session_factory
    from yilianti.exceptions import AppError

    jwks = Path(args.jwks).read_text(encoding="utf-8") if args.jwks else None
    with session_factory()() as db:
        inst = _institution_or_error(db, args.institution)
        if inst is None:
            return 2
        try:
            done = clients.register(db, None, inst.id, args.name, " ".join(args.scope), jwks, args.secret)
            db.commit()
        except AppError as exc:
            return _refused(exc)
    print(f"client_id: {done.client.client_id}")
    print(f"institution: {inst.name} (id {inst.id})  scope: {done.client.scope}")
    if done.secret:
        print(f"client_secret: {done.secret}  (shown once)")
    return 0


def cmd_client_revoke(args: argparse.Namespace) -> int:
    from yilianti.auth import clients
    from yilianti.auth.repository import client_named
    from yilianti.db import session_factory
    from yilianti.exceptions import AppError

    with session_factory()() as db:
        client = client_named(db, args.client_id)
        if client is None:
            print(f"error: unknown client {args.client_id!r}", file=sys.stderr)
            return 2
        try:
            clients.revoke(db, None, client)
            db.commit()
        except AppError as exc:
            return _refused(exc, fields=False)
    print(f"revoked {args.client_id}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yilianti", description="Yilianti 医联体协同平台")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="migrate, load demo data if absent, serve with in-process jobs").set_defaults(
        fn=cmd_demo)
    sub.add_parser("serve", help="web app only").set_defaults(fn=cmd_serve)
    wk = sub.add_parser("worker", help="background jobs (production) and the HL7/DICOM receivers")
    wk.add_argument("--no-receivers", action="store_true",
                    help="jobs only: leave the MLLP/DICOM ports to another worker (or YILIANTI_WORKER_RECEIVERS=false)")
    wk.set_defaults(fn=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=cmd_migrate)
    bk = sub.add_parser("backup", help="database, attachments, DICOM files and keys, with a manifest of checksums")
    bk.add_argument("--output", required=True, metavar="DIR", help="a new (or empty) directory")
    bk.set_defaults(fn=cmd_backup)
    rs = sub.add_parser("restore", help="restore a backup into an empty database")
    rs.add_argument("--input", required=True, metavar="DIR", help="a directory written by `yilianti backup`")
    rs.add_argument("--verify", action="store_true", help="compare row counts and decrypted samples with the backup")
    rs.set_defaults(fn=cmd_restore)
    sub.add_parser("load-demo", help="load the demo data set (idempotent)").set_defaults(fn=cmd_load_demo)
    cu = sub.add_parser("create-user", help="create an account")
    cu.add_argument("--username", required=True)
    cu.add_argument("--password", help="or YILIANTI_NEW_USER_PASSWORD, or asked interactively")
    cu.add_argument("--display-name")
    cu.add_argument("--role", required=True, choices=["system_admin", "alliance_admin", "institution_admin",
                                                      "doctor", "nurse", "reader", "coordinator", "auditor",
                                                      "health_commission"])
    cu.add_argument("--institution", help="institution name or id")
    cu.set_defaults(fn=cmd_create_user)
    cl = sub.add_parser("client", help="OAuth2 system clients of the FHIR API (SMART Backend Services)")
    cl_sub = cl.add_subparsers(dest="client_command", required=True)
    ca = cl_sub.add_parser("add", help="register a member system's client for one institution")
    ca.add_argument("--institution", required=True, help="institution name or id")
    ca.add_argument("--name", required=True, help="the connecting system")
    ca.add_argument("--scope", nargs="+", default=["system/*.read"], help="system/*.read, system/Patient.read …")
    ca.add_argument("--jwks", metavar="FILE", help="its public keys (JSON Web Key Set) for RS384/ES384 assertions")
    ca.add_argument("--secret", action="store_true", help="generate a client secret (printed once)")
    ca.set_defaults(fn=cmd_client_add)
    cr = cl_sub.add_parser("revoke", help="deactivate a client (its tokens stop at once)")
    cr.add_argument("client_id")
    cr.set_defaults(fn=cmd_client_revoke)
    empi = sub.add_parser("empi", help="master patient index tools")
    empi_sub = empi.add_subparsers(dest="empi_command", required=True)
    el = empi_sub.add_parser("link", help="stand-alone batch record linkage of a CSV file")
    el.add_argument("--input", required=True, help="CSV: record_id,source,name,sex,birth_date,id_number,phone,address")
    el.add_argument("--output", required=True, help="CSV written: record_id,person_id")
    el.add_argument("--review", help="CSV written: record_id_a,record_id_b,score (review band)")
    el.add_argument("--rules", help="matching rules version (default: the current one; v1 for the old rules)")
    el.add_argument("--links", help="CSV written: record_id_a,record_id_b,method,score,rules_version per link")
    el.add_argument("--weights", help="rules v5: trained weights (yilianti empi train); default: estimated from --input")
    el.set_defaults(fn=cmd_empi_link)
    et = empi_sub.add_parser("train", help="estimate the v5 matching weights from the index (or a CSV)")
    et.add_argument("--input", help="CSV of records (as empi link); default: the database's patient records")
    et.add_argument("--output", help="weights file written (default: YILIANTI_EMPI_WEIGHTS, else ./empi_weights_v5.json)")
    et.set_defaults(fn=cmd_empi_train)
    empi_sub.add_parser("backfill", help="source records for persons registered before the online index").set_defaults(
        fn=cmd_empi_backfill)
    keys = sub.add_parser("keys", help="encryption keys of personal data")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    kr = keys_sub.add_parser("rotate", help="re-encrypt personal data under the newest YILIANTI_DATA_KEYS key")
    kr.add_argument("--reindex", action="store_true", help="also recompute the blind indexes (index key changed)")
    kr.set_defaults(fn=cmd_keys_rotate)
    sub.add_parser("partitions", help="PostgreSQL: create the coming months' partitions, move rows out of the "
                   "default partitions, apply the HL7 and outbox retention (the worker does it hourly)"
                   ).set_defaults(fn=cmd_partitions)
    dm = sub.add_parser("dicom-metadata", help="make the WADO-RS metadata of DICOM instances stored before it was "
                        "made at ingest (idempotent; reads serve it from then on)")
    dm.add_argument("--batch", type=int, default=200, help="instances per transaction")
    dm.set_defaults(fn=cmd_dicom_metadata)
    ar = sub.add_parser("archive", help="PostgreSQL: move closed months older than the retention out of the live "
                        "tables into the archive schema (still verified by `audit verify`; --restore brings one back)")
    ar.add_argument("--months", type=int, help="archive months that ended this many months ago (default: "
                    "YILIANTI_ARCHIVE_AFTER_MONTHS; 0 archives nothing)")
    ar.add_argument("--table", choices=["audit_event", "inbound_message", "outbox"], help="only this table")
    ar.add_argument("--restore", metavar="YYYY-MM", help="bring this archived month back into the live tables")
    ar.add_argument("--list", action="store_true", help="the archived months per table")
    ar.set_defaults(fn=cmd_archive)
    audit = sub.add_parser("audit", help="the audit log's hash chain")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    av = audit_sub.add_parser("verify", help="walk the hash chain; exit 1 naming each removed or altered row")
    av.add_argument("--head", help="file holding the external heads (default: YILIANTI_AUDIT_HEAD; a syslog file "
                                   "works too)")
    av.add_argument("--from-link", type=int, default=1, metavar="N",
                    help="start at link N (the links before it were verified by an earlier run)")
    av.set_defaults(fn=cmd_audit_verify)
    audit_sub.add_parser("seal", help="seal every committed audit row now (the job runner does it continuously)"
                         ).set_defaults(fn=cmd_audit_seal)
    cockpit = sub.add_parser("cockpit", help="the alliance cockpit's daily rollups")
    cockpit_sub = cockpit.add_subparsers(dest="cockpit_command", required=True)
    cr = cockpit_sub.add_parser("rebuild", help="rebuild the daily rollups of a range of days (progress on stderr)")
    cr.add_argument("--from", dest="from_", metavar="YYYY-MM-DD", help="first day (default: about three years ago)")
    cr.add_argument("--to", metavar="YYYY-MM-DD", help="last day (default: yesterday)")
    cr.add_argument("--alliance", type=int, action="append", metavar="ID", help="only this alliance (repeatable)")
    cr.set_defaults(fn=cmd_cockpit_rebuild)
    return parser


def _configure_logs() -> None:
    from yilianti.ops import logs

    logs.configure(_settings().log_format)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    _configure_logs()
    args = build_parser().parse_args(argv)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
