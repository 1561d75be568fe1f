"""The audit hash chain: a removed or altered audit row is found, even by someone with database rights.

The audit rows are sealed in links (`audit_seal`), each one covering the rows after the previous link
(`after_id` < id <= `to_id`) with a 16-byte digest per row and the hash of the previous link, SM3 under
YILIANTI_CRYPTO_SUITE=sm, else SHA-256 (kit.crypto.digest). Writers are untouched: the ORM audits, the
hot paths' INSERT and the batched COPY (audit/batch.py) keep their speed; the job runner seals what
was committed since the last link every YILIANTI_AUDIT_SEAL_SECONDS (`audit.seal`, audit/tasks.py).
Ids on PostgreSQL are taken before commit, so a link only reaches ids every writer of which has
finished (`Horizon`); on SQLite one writer at a time makes every committed id final.

After each link is committed its head (link id, last row, hash) is appended outside the database:
to YILIANTI_AUDIT_HEAD (a file, var/audit-head.log by default) or to syslog. `verify` walks the chain
and compares its end with that external head, so deleting the newest rows together with their links
is found too. Rows newer than the last link (a few seconds' worth) are reported as not yet sealed.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Row
from sqlalchemy.orm import Session

from yilianti.audit import repository
from yilianti.config import get_settings
from yilianti.kit import clock, crypto
from yilianti.models.audit import AuditSeal

log = logging.getLogger("yilianti.audit")

GENESIS = "0" * 64
DIGEST_BYTES = 16
MAX_ROWS = 20_000  # rows per link
HEAD_MARK = "yilianti-audit-head "


# ---------------------------------------------------------------- what is hashed


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def row_digest(algorithm: str, row: Sequence[Any]) -> bytes:
    """The digest of one audit row: every column named in repository.CHAIN_COLUMN_NAMES, the time as UTC text."""
    data = json.dumps([_canonical(v) for v in row], ensure_ascii=False, separators=(",", ":"), default=str)
    return crypto.digest(algorithm, data.encode())[:DIGEST_BYTES]


def link_hash(algorithm: str, prev_hash: str, after_id: int, to_id: int, count: int, ids: str,
              digests: bytes) -> str:
    head = f"{algorithm}|{prev_hash}|{after_id}|{to_id}|{count}|{ids}|".encode()
    return crypto.digest(algorithm, head + digests).hex()


def runs(ids: Sequence[int]) -> str:
    """[1, 2, 3, 5] → "1-3,5" (ids are mostly consecutive)."""
    out: list[str] = []
    start = prev = None
    for i in ids:
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            out.append(f"{start}-{prev}" if prev != start else str(start))
        start = prev = i
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else str(start))
    return ",".join(out)


def expand(text_runs: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text_runs.split(",")):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


# ---------------------------------------------------------------- sealing

class Horizon:
    """Up to which id every audit row is final. PostgreSQL hands out ids before commit, so a row with a
    smaller id may still appear: the last id given out is noted at one run, the transactions writing at
    the next, and that id is final once all of those have ended (a run later, or more)."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, frozenset[int] | None]] = []

    def step(self, db: Session) -> int | None:
        if db.get_bind().dialect.name != "postgresql":
            return repository.newest_audit_id(db)
        running = repository.running_writers(db)
        last = repository.last_audit_id_given(db)
        final: int | None = None
        kept: list[tuple[int, frozenset[int] | None]] = []
        for upto, writers in self._pending:
            if writers is not None and not (writers & running):
                final = upto if final is None else max(final, upto)
            else:
                kept.append((upto, running if writers is None else writers))
        self._pending = [(u, w) for u, w in kept if final is None or u > final]
        self._pending.append((last, None))
        return final


def seal(db: Session, upto: int | None, *, limit: int = MAX_ROWS) -> AuditSeal | None:
    """Seal the rows after the chain's newest link, up to id `upto` (at most `limit` of them), as one link."""
    if upto is None:
        return None
    head = repository.lock_chain(db)
    after, prev_hash = (head.to_id, head.hash) if head is not None else (0, GENESIS)
    if upto <= after:
        return None
    rows = repository.rows_to_seal(db, after, upto, limit)
    if not rows:
        return None
    to_id = rows[-1][0] if len(rows) == limit else upto
    algorithm = crypto.chain_algorithm()
    digests = b"".join(row_digest(algorithm, r) for r in rows)
    ids = runs([r[0] for r in rows])
    link = AuditSeal(sealed_at=clock.now(), after_id=after, to_id=to_id, row_count=len(rows), ids=ids,
                     digests=digests, algorithm=algorithm, prev_hash=prev_hash,
                     hash=link_hash(algorithm, prev_hash, after, to_id, len(rows), ids, digests))
    db.add(link)
    db.flush()
    return link


_horizon = Horizon()


def seal_committed(db: Session, horizon: Horizon | None = None) -> int:
    """The job: seal what is final, one committed link per MAX_ROWS rows, then publish the new heads."""
    upto = (horizon or _horizon).step(db)
    made = 0
    while seal(db, upto) is not None:
        db.commit()
        made += 1
    db.commit()
    publish_new(db)
    return made


def seal_all(factory: Any, timeout: float = 60.0) -> int:
    """Seal every row committed before the call (waits for the writers then in progress; CLI and tests)."""
    horizon = Horizon()
    with factory() as db:
        target = repository.newest_audit_id(db) or 0
    made, deadline = 0, time.monotonic() + timeout
    while True:
        with factory() as db:
            made += seal_committed(db, horizon)
            head = repository.newest_sealed_id(db)
        if head >= target:
            return made
        if time.monotonic() > deadline:
            raise TimeoutError(f"audit rows up to {target} not final after {timeout:.0f} s (a transaction is open)")
        time.sleep(0.05)


# ---------------------------------------------------------------- the head outside the database


def head_target() -> str:
    target = get_settings().audit_head.strip()
    return target or str(get_settings().var_dir / "audit-head.log")


def head_line(link: AuditSeal) -> str:
    return HEAD_MARK + json.dumps({"link": link.id, "to_id": link.to_id, "rows": link.row_count,
                                   "algorithm": link.algorithm, "hash": link.hash,
                                   "sealed_at": _canonical(link.sealed_at)}, sort_keys=True)


def read_heads(path: str | Path) -> list[dict[str, Any]]:
    """The heads recorded in a head file (or a syslog file holding the same lines), oldest first."""
    heads = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            at = line.find(HEAD_MARK)
            if at < 0:
                continue
            try:
                heads.append(json.loads(line[at + len(HEAD_MARK):]))
            except ValueError:
                continue
    return heads


def _last_in_file(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            tail = fh.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(tail):
        at = line.find(HEAD_MARK)
        if at >= 0:
            try:
                return int(json.loads(line[at + len(HEAD_MARK):])["link"])
            except (ValueError, KeyError):
                continue
    return 0


_syslog: logging.Logger | None = None
_syslog_last: int | None = None


def publish_new(db: Session) -> int:
    """Append the heads of the links not yet recorded outside the database (after their commit)."""
    global _syslog, _syslog_last
    target = head_target()
    newest = repository.newest_link_id(db)
    if target == "syslog":
        if _syslog is None:
            _syslog = logging.getLogger("yilianti.audit.head")
            _syslog.propagate = False
            _syslog.setLevel(logging.INFO)  # whatever the root logger's level
            handler = logging.handlers.SysLogHandler(address="/dev/log")
            handler.setFormatter(logging.Formatter("yilianti: %(message)s"))
            _syslog.addHandler(handler)
        last = _syslog_last if _syslog_last is not None else newest - 1
    else:  # an empty or missing file (first run, or rotated by logrotate) starts at the newest link
        last = _last_in_file(Path(target)) or max(newest - 1, 0)
    links = repository.links_after(db, last)
    if not links:
        return 0
    if target == "syslog":
        assert _syslog is not None
        for link in links:
            _syslog.info(head_line(link))
        _syslog_last = links[-1].id
    else:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(head_line(link) + "\n" for link in links))
            fh.flush()
            os.fsync(fh.fileno())
    return len(links)


# ---------------------------------------------------------------- verification


@dataclass
class Report:
    links: int = 0
    rows: int = 0
    unsealed: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(db: Session, head_file: str | None = None, out: TextIO | None = None, from_link: int = 1) -> Report:
    """Walk the chain over the audit rows (from link `from_link`, trusting the links before it, checked
    by an earlier run); every finding names the row or link where it is."""
    report = Report()
    prev_hash, prev_to, prev_id = GENESIS, 0, 0
    if from_link > 1:
        first = repository.link(db, from_link)
        if first is None:
            report.problems.append(f"link {from_link} is missing")
            return report
        prev_hash, prev_to, prev_id = first.prev_hash, first.after_id, from_link - 1
        report.notes.append(f"checked from link {from_link} (rows after {first.after_id}); the links before it "
                            "were not checked by this run")
    rows = repository.all_chain_rows(db, after=prev_to)
    pending: Row[Any] | None = next(rows, None)
    link_hashes: dict[int, tuple[str, int]] = {}
    heads = _external_heads(head_file, report)
    wanted = {int(h["link"]) for h in heads[-1:]}
    for link in repository.all_links(db, after=prev_id):
        report.links += 1
        where = f"link {link.id} (rows {link.after_id + 1}–{link.to_id}, sealed {clock.fmt_local(link.sealed_at, with_seconds=True)})"
        if link.prev_hash != prev_hash or link.after_id != prev_to:
            report.problems.append(f"{where}: does not follow link {prev_id} — a link before it was removed or "
                                   "altered")
        if link_hash(link.algorithm, link.prev_hash, link.after_id, link.to_id, link.row_count, link.ids,
                     link.digests) != link.hash:
            report.problems.append(f"{where}: the link itself was altered")
        sealed = dict(zip(expand(link.ids), (link.digests[i:i + DIGEST_BYTES]
                                             for i in range(0, len(link.digests), DIGEST_BYTES)), strict=False))
        while pending is not None and pending[0] <= link.to_id:
            row_id = pending[0]
            expected = sealed.pop(row_id, None)
            if row_id <= link.after_id:
                report.problems.append(f"row {row_id}: outside every link (inserted into sealed history)")
            elif expected is None:
                report.problems.append(f"row {row_id}: added after {where} sealed its range")
            elif row_digest(link.algorithm, pending) != expected:
                report.problems.append(f"row {row_id}: altered since {where}")
            report.rows += 1
            pending = next(rows, None)
        for row_id in sealed:
            report.problems.append(f"row {row_id}: deleted (sealed by {where})")
        if link.id in wanted:
            link_hashes[link.id] = (link.hash, link.to_id)
        prev_hash, prev_to, prev_id = link.hash, link.to_id, link.id
        if out is not None and report.links % 1000 == 0:
            print(f"audit verify: {report.links} links, {report.rows} rows", file=out, flush=True)
    while pending is not None:
        report.unsealed += 1
        pending = next(rows, None)
    _compare_head(heads[-1] if heads else None, link_hashes, prev_id, report)
    return report


def _external_heads(head_file: str | None, report: Report) -> list[dict[str, Any]]:
    source = head_file or head_target()
    if source == "syslog":
        report.notes.append("the external head is in syslog: give the syslog file with --head to compare")
        return []
    try:
        return read_heads(source)
    except FileNotFoundError:
        report.notes.append(f"no external head file {source}")
        return []


def _compare_head(head: dict[str, Any] | None, found: dict[int, tuple[str, int]], newest: int,
                  report: Report) -> None:
    if head is None:
        if newest:
            report.problems.append("the chain's head recorded outside the database is missing: the newest rows "
                                   "cannot be confirmed")
        return
    link_id = int(head["link"])
    if link_id not in found:
        report.problems.append(f"link {link_id} (rows up to {head.get('to_id')}, hash {str(head.get('hash'))[:16]}…), "
                               "recorded outside the database, is missing: the newest rows and their links "
                               "were removed")
    elif found[link_id][0] != head.get("hash"):
        report.problems.append(f"link {link_id} differs from the head recorded outside the database: rewritten")
    elif newest > link_id:
        report.notes.append(f"{newest - link_id} link(s) after the external head (link {link_id}) are not yet "
                            "confirmed outside the database")
