"""The lean HL7 ORU^R01 ingest path on PostgreSQL: an asyncio MLLP server on asyncpg.

`reference.ingest_hl7` is the reference (and the only path on SQLite). Here the common case —
an ORU^R01 with PID-3 identifiers and one OBR whose accession number is a known order of the
same patient, not a resend — is parsed once (python-hl7, with the reference's own field
helpers) and stored by ONE statement per message (`ingest_sql`):

- the order is read once, by accession number, and locked (FOR UPDATE); the patient check
  (PID-3 against the order's patient) and the resend check (MSH-10 + MSH-3/4 of a stored or
  resolved message) are sub-queries of it;
- the inbound message row, the observations (one multi-row INSERT from arrays), the status
  move (before receipt → received, and → final when every OBX-11 is F) as one UPDATE, the
  history rows, the audit rows, the outbox (notification) rows and the critical values with
  their urgent notification, outbox message and audit row are inserted from it: the same
  tables and the same rows as the reference's `workflow.system_received` / `system_final` /
  `critical.raise_for_observation` (tests/diagnostics/test_hl7_fast.py compares them); the
  moves' history rows, notifications, audit details and statuses are compiled from the
  reference's builders and enums (`workflow.WORKFLOW.history_row`, `workflow.notice`,
  `workflow.audit_detail`, `states.Status`), not copied.

Whatever the statement does not store (unknown accession, patient mismatch, a resend) and
whatever the lean parse does not take (unparseable, not ORU, no OBR, several OBR, no PID-3,
a frame refused by mllp.decode: NUL, character set, invalid MLLP block) goes, after the batch's
commit, to `reference.process_hl7` in a thread: the same quarantine, AE/AR acknowledgements
(hl7_rules) and resend handling. Framing, timeouts and character sets are mllp.serve's, shared
with the reference receiver.

Several messages waiting at once (busy connections) are written in one transaction by one of
`hl7_writers` writer tasks; each is acknowledged only after that commit. A batch that fails is
retried one message per transaction; a message that still fails goes to the reference path.
`hl7_processes` > 1 starts more receiver processes on the same port (SO_REUSEPORT).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import asyncpg
import hl7
from sqlalchemy import Text
from sqlalchemy.orm import Session

from yilianti.diagnostics import states
from yilianti.diagnostics.orders import workflow
from yilianti.diagnostics.reading import critical
from yilianti.diagnostics.receivers import ingest as reference
from yilianti.diagnostics.receivers import mllp
from yilianti.diagnostics.receivers.ingest import Hl7Outcome, _component, _field, _hl7_ts, _identifiers
from yilianti.kit import clock
from yilianti.kit.loopthread import LoopThread
from yilianti.kit.sqlcompile import column, sql, sql_in, sql_insert, sql_json

log = logging.getLogger(__name__)

FINAL_REASON = workflow.FINAL_REASON

# One message, one statement (`ingest_sql`). $1 accession, $2 MSH-10 (≤64, or NULL), $3/$4 MSH-3/4, $5 text,
# $6 sender, $7 issuer, $8 patient identifier, $9/$10 PID-3 authorities/values, $11 OBR-3,
# $12 now, $13 every OBX-11 is F, $14..$25 the observations' columns and critical value texts,
# $26 audit username, $27 MSH-10 as sent, $28 the number of observations.
_SQL = r"""
WITH o AS (
    SELECT d.id, d.status, d.patient_id, d.accession_number, d.item_name, d.priority,
           d.ordering_institution_id, d.ordering_user_id, d.reading_centre_institution_id,
           coalesce(d.ordered_at, d.created_at) AS started
    FROM diagnostic_order d WHERE d.accession_number = $1 FOR UPDATE
), chk AS (
    SELECT o.*,
        EXISTS (SELECT 1 FROM patient_identifier pi
                JOIN unnest($9::text[], $10::text[]) AS x(a, v) ON pi.%(ident_col)s = x.v AND (x.a = '' OR pi.authority = x.a)
                WHERE pi.patient_id = o.patient_id) AS patient_ok,
        ($2::text IS NOT NULL AND EXISTS (
            SELECT 1 FROM inbound_message m
            WHERE m.channel = 'hl7' AND m.control_id = $2 AND m.status IN ('stored', 'resolved')
              AND split_part(split_part(m.raw, E'\r', 1), '|', 3) = $3
              AND split_part(split_part(m.raw, E'\r', 1), '|', 4) = $4)) AS dup
    FROM o
), go AS MATERIALIZED (
    SELECT chk.*, p.name AS patient_name,
           chk.status IN %(before_receipt)s AS to_received,
           ($13::boolean AND chk.status IN %(before_final)s) AS to_final
    FROM chk LEFT JOIN patient p ON p.id = chk.patient_id
    WHERE chk.patient_ok AND NOT chk.dup
), ib AS (
    INSERT INTO inbound_message (channel, received_at, status, raw, control_id, accession_number, sender,
                                 order_id, patient_identifier, issuer, created_at)
    SELECT 'hl7', $12, 'stored', $5, $2, left($1, 32), $6, go.id, $8, $7, $12 FROM go
    RETURNING id
), src AS MATERIALIZED (
    SELECT u.*, nextval('lab_observation_id_seq'::regclass) AS oid
    FROM go, unnest($14::int[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[],
                    $21::text[], $22::text[], $23::text[], $24::timestamptz[], $25::text[])
         WITH ORDINALITY AS u(set_id, value_type, code, name, code_system, value, units, reference_range,
                              abnormal_flags, result_status, observed_at, crit, ord)
    ORDER BY u.ord
), obs AS (
    INSERT INTO lab_observation (id, order_id, inbound_message_id, set_id, value_type, code, code_system, name,
                                 value, units, reference_range, abnormal_flags, result_status, observed_at,
                                 created_at)
    SELECT src.oid, go.id, ib.id, src.set_id, src.value_type, src.code, src.code_system, src.name, src.value,
           src.units, src.reference_range, src.abnormal_flags, src.result_status, src.observed_at, $12
    FROM src, go, ib ORDER BY src.ord
    RETURNING id
), upd AS (
    UPDATE diagnostic_order d SET
        status = CASE WHEN go.to_final THEN %(final)s WHEN go.to_received THEN %(received)s ELSE d.status END,
        received_at = CASE WHEN go.to_received THEN $12 ELSE d.received_at END,
        tat_minutes = CASE WHEN go.to_final AND d.reported_at IS NULL
                           THEN greatest(0, floor(extract(epoch FROM ($12 - go.started)) / 60))::int
                           ELSE d.tat_minutes END,
        reported_at = CASE WHEN go.to_final AND d.reported_at IS NULL THEN $12 ELSE d.reported_at END,
        filler_order_number = coalesce($11, d.filler_order_number),
        updated_at = CASE WHEN go.to_received OR go.to_final OR $11 IS DISTINCT FROM d.filler_order_number
                          THEN $12 ELSE d.updated_at END
    FROM go WHERE d.id = go.id
    RETURNING d.id
), steps AS MATERIALIZED (
    SELECT go.*, s.n, s.from_status, s.to_status, s.reason
    FROM go CROSS JOIN LATERAL (VALUES
        (1, go.status, %(received)s, NULL::text, go.to_received),
        (2, CASE WHEN go.to_received THEN %(received)s ELSE go.status END, %(final)s, %(final_reason)s, go.to_final)
    ) AS s(n, from_status, to_status, reason, happens)
    WHERE s.happens
), hist AS (
    INSERT INTO diagnostic_order_history (%(history_columns)s)
    SELECT %(history_values)s
    FROM steps ORDER BY steps.n
    RETURNING id
), cv AS MATERIALIZED (
    SELECT src.oid, src.ord, left(src.crit, 300) AS value_text,
           nextval('critical_value_id_seq'::regclass) AS cid, go.*
    FROM src, go WHERE src.crit IS NOT NULL ORDER BY src.ord
), cvi AS (
    INSERT INTO critical_value (id, order_id, patient_id, observation_id, source, value_text, notified_to_user_id,
                                notified_at, created_at)
    SELECT cv.cid, cv.id, cv.patient_id, cv.oid, 'hl7', cv.value_text, cv.ordering_user_id, $12, $12
    FROM cv, obs WHERE obs.id = cv.oid ORDER BY cv.ord
    RETURNING id
), outbox_rows AS (
    INSERT INTO outbox (topic, payload, status, available_at, attempts, dedupe_key, created_at)
    SELECT r.topic, r.payload, 'pending', $12, 0, r.dedupe_key, $12 FROM (
        SELECT steps.n AS k, 0 AS sub, 'notify' AS topic,
            CASE WHEN steps.n = 1 THEN %(notice_received)s ELSE %(notice_final)s END AS payload,
            NULL::text AS dedupe_key
        FROM steps WHERE steps.n = 2 OR steps.reading_centre_institution_id IS NOT NULL
        UNION ALL
        SELECT 3, 2 * cv.ord, 'notify', json_build_object(
                'title', left('危急值：' || coalesce(cv.patient_name, '') || ' ' || cv.item_name || ' ' || cv.value_text,
                              200),
                'body', '请立即处理并确认', 'link', '/diagnostics/critical', 'user_id', cv.ordering_user_id,
                'institution_id', cv.ordering_institution_id, 'kind', 'critical', 'urgent', true, 'params', NULL),
            'critical-' || cv.cid
        FROM cv
        UNION ALL
        SELECT 3, 2 * cv.ord + 1, 'diagnostics.critical_value', json_build_object(
                'critical_value_id', cv.cid, 'order_id', cv.id, 'accession_number', cv.accession_number,
                'user_id', cv.ordering_user_id, 'institution_id', cv.ordering_institution_id, 'value', cv.value_text),
            'critical-out-' || cv.cid
        FROM cv
    ) AS r ORDER BY r.k, r.sub
    RETURNING id
), audit_rows AS (
    INSERT INTO audit_event (at, username, action, resource_type, resource_id, patient_id, reason, detail, channel)
    SELECT $12, r.username, r.action, r.resource_type, r.resource_id, r.patient_id, r.reason, r.detail, r.channel
    FROM (
        SELECT steps.n AS k, 0 AS sub, NULL::text AS username, 'diagnostics.' || steps.to_status AS action,
               'diagnostic_order' AS resource_type, steps.id::text AS resource_id, steps.patient_id,
               steps.reason, %(audit_detail)s AS detail,
               'system' AS channel
        FROM steps
        UNION ALL
        SELECT 3, cv.ord, NULL, 'diagnostics.critical_value', 'critical_value', cv.cid::text, cv.patient_id, NULL,
               json_build_object('order_id', cv.id, 'source', 'hl7', 'value', cv.value_text), 'system'
        FROM cv
        UNION ALL
        SELECT 4, 0, $26::text, 'diagnostics.result_received', 'diagnostic_order', go.id::text, go.patient_id, NULL,
               json_build_object('accession_number', go.accession_number, 'control_id', $27::text,
                                 'observations', $28::int, 'inbound_message_id', ib.id), 'hl7'
        FROM go, ib
    ) AS r ORDER BY r.k, r.sub
    RETURNING id
)
SELECT (SELECT count(*) FROM o) AS found, (SELECT bool_and(patient_ok) FROM chk) AS patient_ok,
       (SELECT bool_or(dup) FROM chk) AS dup, (SELECT id FROM ib) AS inbound_id,
       (SELECT count(*) FROM obs) AS n_obs, (SELECT count(*) FROM cvi) AS n_cv,
       (SELECT count(*) FROM upd) + (SELECT count(*) FROM hist) + (SELECT count(*) FROM outbox_rows)
       + (SELECT count(*) FROM audit_rows) AS n_rows
"""


# The rows of the status moves are the reference's builders (workflow.WORKFLOW.history_row, workflow.notice,
# workflow.audit_detail) compiled over the columns of `steps` (one row per move), the statuses the enum's.
_STEP = SimpleNamespace(id=column("steps.id"), item_name=column("steps.item_name", Text),
                        accession_number=column("steps.accession_number", Text), priority=column("steps.priority"),
                        reading_centre_institution_id=column("steps.reading_centre_institution_id"),
                        ordering_institution_id=column("steps.ordering_institution_id"),
                        ordering_user_id=column("steps.ordering_user_id"))
_HISTORY_COLUMNS, _HISTORY_VALUES = sql_insert(workflow.WORKFLOW.history_row(
    column("steps.id"), at=column("$12"), user_id=None, institution_id=None, from_status=column("steps.from_status"),
    to_status=column("steps.to_status"), reason=column("steps.reason"), detail={"channel": "hl7"}))
_PARTS = {
    "before_receipt": sql_in(states.BEFORE_RECEIPT),
    "before_final": sql_in(states.BEFORE_RECEIPT | {states.Status.received}),
    "received": sql(states.Status.received), "final": sql(states.Status.final), "final_reason": sql(FINAL_REASON),
    "history_columns": _HISTORY_COLUMNS, "history_values": _HISTORY_VALUES,
    "notice_received": sql_json(workflow.notice(states.Status.received, _STEP)),
    "notice_final": sql_json(workflow.notice(states.Status.final, _STEP, column("steps.reason"))),
    "audit_detail": sql_json(workflow.audit_detail(column("steps.from_status"), column("steps.to_status"),
                                                   column("steps.accession_number"), {"channel": "hl7"})),
}


def ingest_sql(ident_col: str) -> str:
    """`patient_identifier.value` in clear, or `value_bidx` where identifiers are encrypted (blind index)."""
    assert ident_col in ("value", "value_bidx")
    return _SQL % {**_PARTS, "ident_col": ident_col}


@dataclass
class Lean:
    """What the statement needs of one message (the reference's field mapping, parsed once)."""

    outcome: Hl7Outcome
    params: tuple[Any, ...]


STANDARD_MSH = "MSH|^~\\&|"


def segments(text: str) -> list[list[str]] | None:
    """Each segment as its fields, `seg[n]` being python-hl7's `str(segment[n])` (MSH-1 is "|").

    Messages with the standard separators (`MSH|^~\\&`) are split directly, which gives the same
    strings as python-hl7's parse (tests/diagnostics/test_hl7_fast.py checks it) in a fifth of the
    time; any other message is parsed by python-hl7. None: not parseable (the reference path)."""
    if text.startswith(STANDARD_MSH):
        out = [line.split("|") for line in text.split("\r")]
        out[0][1:1] = ["|"]  # python-hl7 numbers MSH-1 (the field separator) as a field
        return out
    if not text.startswith("MSH"):
        return None
    try:
        msg = hl7.parse(text)
        msg.segment("MSH")
    except Exception:  # noqa: BLE001 - the reference path answers AR
        return None
    return [[_field(seg, n) for n in range(len(seg))] for seg in msg]


def _f(seg: list[str], n: int) -> str:
    return seg[n] if len(seg) > n else ""


@lru_cache(maxsize=4096)
def _ts(value: str) -> datetime | None:
    return _hl7_ts(value)


def parse_lean(raw: str, sender: str | None) -> Lean | None:
    """The parameters of `ingest_sql` for an ORU^R01 with one OBR and PID-3; None → reference path."""
    text = reference.normalise_segments(raw)
    segs = segments(text)
    if segs is None:
        return None
    msh = segs[0]
    control_id = _f(msh, 10)
    outcome = Hl7Outcome("AA", None, control_id, _f(msh, 3), _f(msh, 4), _f(msh, 12) or "2.5.1")
    if not _f(msh, 9).startswith("ORU"):
        return None
    pid: list[str] | None = None
    obr: list[str] | None = None
    obx: list[list[str]] = []
    for seg in segs:
        kind = seg[0]
        if kind == "PID" and pid is None:
            pid = seg
        elif kind == "OBR":
            if obr is not None:
                return None  # several orders in one message: the reference path
            obr = seg
        elif kind == "OBX":
            if obr is None:
                return None  # OBX before OBR: AR by the reference path
            obx.append(seg)
    if obr is None or pid is None:
        return None
    pid3 = _identifiers(_f(pid, 3))
    accession = _component(_f(obr, 2), 0).strip()
    if not pid3 or not accession:
        return None
    filler = _component(_f(obr, 3), 0).strip()
    cols: list[list[Any]] = [[] for _ in range(12)]
    all_final = bool(obx)
    for seg in obx:
        code3 = _f(seg, 3)
        set_id = _f(seg, 1)
        code, name = _component(code3, 0)[:64] or "?", _component(code3, 1)[:200] or None
        value, units = _f(seg, 5) or None, _component(_f(seg, 6), 0)[:64] or None
        flags, status = _f(seg, 8)[:16] or None, _f(seg, 11)[:4] or None
        all_final = all_final and (status or "").upper() == "F"
        crit = (f"{name or code} {value or ''} {units or ''} ({flags})".strip()
                if critical.is_critical_flag(flags) else None)
        for col, v in zip(cols, (int(set_id) if set_id.isdigit() else None, _f(seg, 2)[:8] or None, code, name,
                                 _component(code3, 2)[:32] or None, value, units, _f(seg, 7)[:64] or None,
                                 flags, status, _ts(_f(seg, 14)), crit), strict=True):
            col.append(v)
    params = (
        accession, control_id[:64] or None, outcome.sending_app, outcome.sending_facility, text,
        (sender or f"{outcome.sending_app}@{outcome.sending_facility}")[:100],
        pid3[0][0][:64] or None, pid3[0][1][:64], [a for a, _ in pid3], [v for _, v in pid3],
        filler[:64] or None, None, all_final, *cols, outcome.sending_app or None, control_id, len(obx),
    )
    return Lean(outcome, params)


def _blind(lean: Lean) -> Lean | None:
    """PID-3 values as blind indexes; a value not in its indexed form (the reference compares the
    text as sent) → None, the reference path."""
    from yilianti.kit import crypto

    normalise, index = getattr(crypto, "normalise"), getattr(crypto, "blind_index")  # noqa: B009
    values = lean.params[9]
    if any(normalise("id", v) != v for v in values):
        return None
    params = list(lean.params)
    params[9] = [index("id", v) for v in values]
    return Lean(lean.outcome, tuple(params))


@dataclass
class Job:
    raw: mllp.Frame
    sender: str | None
    lean: Lean | None
    future: asyncio.Future[str]


class FastHl7Ingest:
    """Writer tasks over an asyncpg pool; `submit` returns the ACK text once the message is committed."""

    def __init__(self, dsn: str, factory: Callable[[], Session], *, writers: int = 4, max_batch: int = 32) -> None:
        self.dsn, self.factory = dsn, factory
        self.writers, self.max_batch = max(1, writers), max(1, max_batch)
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.pool: asyncpg.Pool | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.stats = {"lean": 0, "reference": 0, "batches": 0, "retried": 0}
        self.sql = ingest_sql("value")
        self.blind = False  # identifiers stored encrypted: PID-3 values are matched by their blind index

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=self.writers, command_timeout=60, reset=_no_reset,
            # one prepared statement, planned once per connection: the generic plan, and no sequential
            # scan chosen while the tables were still small (the resend check would then scan every message)
            server_settings={"timezone": "UTC", "application_name": "yilianti-hl7",
                             "plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"})
        async with self.pool.acquire() as conn:
            self.blind = bool(await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = 'patient_identifier' AND column_name = 'value_bidx'"))
        self.sql = ingest_sql("value_bidx" if self.blind else "value")
        self.tasks = [asyncio.create_task(self._writer()) for _ in range(self.writers)]

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), 5)
            except TimeoutError:
                self.pool.terminate()

    async def submit(self, frame: mllp.Frame | str, sender: str | None) -> str:
        if isinstance(frame, str):
            frame = mllp.Frame.of_text(frame)
        lean = parse_lean(frame.text, sender) if frame.text is not None else None
        if lean is not None and self.blind:
            lean = _blind(lean)
        if lean is None:
            self.stats["reference"] += 1
            return await asyncio.to_thread(reference.process_hl7, self.factory, frame, sender)
        lean.outcome.charset = frame.charset
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(Job(frame, sender, lean, fut))
        return await fut

    async def _writer(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                for job in batch:
                    if not job.future.done():
                        job.future.cancel()
                raise
            except Exception:  # noqa: BLE001 - never lose the writer; each message gets an answer
                log.exception("HL7 lean batch failed")
                for job in batch:
                    if not job.future.done():
                        job.future.set_result(await self._reference(job))

    async def _write(self, batch: list[Job]) -> None:
        assert self.pool is not None
        self.stats["batches"] += 1
        now = clock.now()
        results: list[Any] = []
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                for job in batch:
                    assert job.lean is not None
                    params = list(job.lean.params)
                    params[11] = now
                    results.append(await conn.fetchrow(self.sql, *params))
        except (asyncpg.PostgresError, OSError):
            if len(batch) == 1:
                log.warning("HL7 lean statement failed; reference path", exc_info=True)
                batch[0].future.set_result(await self._reference(batch[0]))
                return
            self.stats["retried"] += 1
            for job in batch:  # one message per transaction: one bad message does not hold the others
                await self._write([job])
            return
        for job, row in zip(batch, results, strict=True):
            if row["inbound_id"] is not None:
                self.stats["lean"] += 1
                assert job.lean is not None
                job.lean.outcome.inbound_id = row["inbound_id"]
                job.future.set_result(reference.build_ack(job.lean.outcome))
            else:  # unknown accession, patient mismatch, resend: nothing written; the reference decides
                job.future.set_result(await self._reference(job))

    async def _reference(self, job: Job) -> str:
        self.stats["reference"] += 1
        return await asyncio.to_thread(reference.process_hl7, self.factory, job.raw, job.sender)


async def _no_reset(conn: asyncpg.Connection) -> None:
    """These connections only run `ingest_sql` in explicit transactions: no RESET ALL round trip."""


async def _handle(ingest: FastHl7Ingest, options: mllp.MllpOptions, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    await mllp.serve(reader, writer, ingest.submit, options)


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def asyncpg_dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    from yilianti.config import normalise_db_url

    return make_url(normalise_db_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


class FastHl7Receiver(LoopThread):
    """Same interface as `Hl7Receiver` (start / stop / port): this process serves in a thread of its
    own event loop; `processes` - 1 more receiver processes share the port (SO_REUSEPORT)."""

    thread_name = "hl7-mllp-fast"
    ready_timeout = 30.0

    def __init__(self, factory: Callable[[], Session], host: str, port: int, *, database_url: str,
                 processes: int = 1, writers: int = 4, options: mllp.MllpOptions | None = None) -> None:
        self.factory, self.host, self.port = factory, host, port
        self.options = options or mllp.MllpOptions()
        super().__init__()
        self.database_url, self.processes, self.writers = database_url, max(1, processes), writers
        self.ingest: FastHl7Ingest | None = None
        self._server: asyncio.base_events.Server | None = None
        self._children: list[subprocess.Popen[bytes]] = []

    def new_loop(self) -> asyncio.AbstractEventLoop:
        return _new_loop()

    async def open(self) -> None:
        sock = bind_socket(self.host, self.port, reuse_port=self.processes > 1)
        self.port = sock.getsockname()[1]
        ingest = self.ingest = FastHl7Ingest(asyncpg_dsn(self.database_url), self.factory, writers=self.writers)
        await ingest.start()
        self._server = await asyncio.start_server(lambda r, w: _handle(ingest, self.options, r, w), sock=sock)

    async def close(self) -> None:
        assert self._server is not None and self.ingest is not None
        self._server.close()
        await self.ingest.close()

    def start(self) -> FastHl7Receiver:
        self.start_thread()
        for _ in range(self.processes - 1):
            self._children.append(subprocess.Popen(
                [sys.executable, "-m", "yilianti.diagnostics.receivers.hl7_fast", "--host", self.host, "--port", str(self.port),
                 "--database-url", self.database_url, "--writers", str(self.writers)],
                env=dict(os.environ, YILIANTI_DATABASE_URL=self.database_url)))
        return self

    def stop(self) -> None:
        for child in self._children:
            child.send_signal(signal.SIGTERM)
        for child in self._children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        self._children.clear()
        self.stop_thread()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is in requirements.lock
        return asyncio.new_event_loop()


def enabled(database_url: str) -> bool:
    from yilianti.config import normalise_db_url

    return normalise_db_url(database_url).startswith("postgresql")


def _child_main(argv: list[str] | None = None) -> int:
    """One more receiver process on the parent's port (SO_REUSEPORT); stops on SIGTERM / SIGINT."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--writers", type=int, default=4)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from sqlalchemy.orm import sessionmaker

    from yilianti import db as dbmod

    engine = dbmod.make_engine(a.database_url, pool_size=2, max_overflow=4)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    from yilianti.config import get_settings

    options = mllp.MllpOptions.from_settings(get_settings())  # the parent's environment

    async def serve() -> None:
        ingest = FastHl7Ingest(asyncpg_dsn(a.database_url), factory, writers=a.writers)
        await ingest.start()
        sock = bind_socket(a.host, a.port, reuse_port=True)
        server = await asyncio.start_server(lambda r, w: _handle(ingest, options, r, w), sock=sock)
        await stop.wait()
        server.close()
        await ingest.close()

    loop.run_until_complete(serve())
    loop.close()
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())


__all__ = ["ingest_sql", "FastHl7Ingest", "FastHl7Receiver", "enabled", "parse_lean"]
