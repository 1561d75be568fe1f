"""The hot path of the shared-record read for member systems on PostgreSQL (B3), on asyncpg.

`GET /api/v1/patients/{id}/record` with an API token. `record.service.shared_record` is the
reference (and the only implementation on SQLite and for browser sessions); this answers the same
bytes with:

- ONE prepared statement: the access decision (`authz.policy.access`, the clauses of `policy.decide`) and,
  only when the patient is visible, each wanted kind's newest rows (the same columns, order and
  bound as its source in `record/sources.py` and `recognition/record.py`), each as a JSON array;
- HR marks and institution names from the recognition catalogue snapshot of this process
  (`recognition.fastpath`, reloaded every few seconds), decided as `recognition.service.hr_marks`;
- the read's audit row (the same columns and detail `shared_record` writes) queued on `audit.batch`,
  written by COPY within a second (DOMAIN.md §4b).

Entries are built, filtered by the access decision (other members' entries only with the shared
record visible), merged newest first and cut to `limit` exactly as the reference does. What it cannot
decide goes to the regular route unchanged: no bearer token, a query the route would judge, a kind
without a statement here (a source another domain registered later), a patient not visible (the
reference answers 404), an institution the snapshot does not know yet, or a statement error.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import asyncpg
from sqlalchemy import ColumnElement, Select, func, literal_column, select
from starlette.types import Scope

from yilianti.audit import batch
from yilianti.authz import policy
from yilianti.authz.policy import shared_of
from yilianti.authz.subject import Subject
from yilianti.chronic import repository
from yilianti.chronic.record import plan_entry
from yilianti.config import get_settings
from yilianti.diagnostics.states import RESULTED, SIGNED
from yilianti.exceptions import AppError
from yilianti.fastdb.pool import fetchrow, on_postgresql
from yilianti.fastdb.route import FastRoute
from yilianti.fastdb.subject import client_ip, route_subject
from yilianti.kit import clock
from yilianti.kit.schemas import LIMIT_MAX, parse_id
from yilianti.kit.sqlcompile import Params, sql
from yilianti.recognition import fastpath as recognition_fast
from yilianti.recognition.service import RETEST_REASONS, source_of
from yilianti.record import service
from yilianti.record.service import PER_SOURCE
from yilianti.record.sources import Entry, ids_of

PATH = re.compile(r"/api/v1/patients/([0-9]{1,18})/record")
stats: Counter[str] = Counter()
__all__ = ["RecordRoute", "KINDS", "record", "stats"]


def enabled() -> bool:
    return get_settings().record_fast_path and on_postgresql()


# ------------------------------------------------------------------------------------ the statement

P = Params(patient="bigint", institution="bigint", user="bigint", now="timestamptz", today="date", kinds="text[]")
_PATIENT = P.text("patient")
_SIGNED = ", ".join(f"'{s}'" for s in sorted(SIGNED))  # report statuses (diagnostics.states), as SQL constants
_ORDER_HR = ("o.item_code", "o.kind", "o.status", "o.reported_at", "o.performing_institution_id")
# kind → (the columns, in the order its builder below unpacks them; FROM … WHERE … ORDER BY as its source)
KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    # record/sources.py bookings: newest session first
    "booking": (("b.id", "s.starts_at", "sc.institution_id", "b.booked_by_institution_id", "sc.name", "b.number",
                 "b.status"),
                "booking b JOIN clinic_session s ON s.id = b.session_id JOIN schedule sc ON sc.id = s.schedule_id "
                f"WHERE b.patient_id = {_PATIENT} ORDER BY s.starts_at DESC"),
    # record/sources.py referrals
    "referral": (("r.id", "coalesce(r.submitted_at, r.created_at)", "r.from_institution_id", "r.to_institution_id",
                  "r.status", "r.direction", "r.reason", "r.summary -> 'diagnoses'"),
                 f"referral r WHERE r.patient_id = {_PATIENT} ORDER BY r.created_at DESC"),
    # record/sources.py transfers
    "transfer": (("t.id", "t.created_at", "t.origin_institution_id", "t.destination_institution_id", "t.diagnosis",
                  "t.case_no", "t.status"),
                 f"critical_transfer t WHERE t.patient_id = {_PATIENT} ORDER BY t.created_at DESC"),
    # record/sources.py diagnostic_orders
    "diagnostic_order": (("o.id", "coalesce(o.ordered_at, o.created_at)", "o.ordering_institution_id",
                          "o.reading_centre_institution_id", "o.item_name", "o.accession_number", *_ORDER_HR),
                         f"diagnostic_order o WHERE o.patient_id = {_PATIENT} ORDER BY o.created_at DESC"),
    # record/sources.py lab_results
    "lab_result": (("ob.id", "coalesce(ob.observed_at, ob.created_at)", "o.ordering_institution_id",
                    "o.reading_centre_institution_id", "ob.name", "ob.code", "ob.value", "ob.units", "ob.abnormal_flags",
                    "ob.result_status", "o.item_name", "o.id", *_ORDER_HR),
                   "lab_observation ob JOIN diagnostic_order o ON o.id = ob.order_id "
                   f"WHERE o.patient_id = {_PATIENT} ORDER BY ob.created_at DESC"),
    # record/sources.py reports: signed reports only
    "report": (("rp.id", "coalesce(rp.signed_at, rp.created_at)", "o.ordering_institution_id",
                "o.reading_centre_institution_id", "rp.conclusion", "rp.status", "o.item_name", "o.id", *_ORDER_HR),
               "diagnostic_report rp JOIN diagnostic_order o ON o.id = rp.order_id "
               f"WHERE o.patient_id = {_PATIENT} AND rp.status IN ({_SIGNED}) ORDER BY rp.created_at DESC"),
    # recognition/record.py recognition_decisions
    "recognition": (("d.id", "d.decided_at", "d.institution_id", "d.reused_institution_id", "i.name", "d.decision",
                     "d.reused_result_date", "d.reason_code", "d.reason_text"),
                    "recognition_decision d JOIN recognition_item i ON i.id = d.item_id "
                    f"WHERE d.patient_id = {_PATIENT} ORDER BY d.decided_at DESC"),
}


def _plans() -> Select[Any]:
    """chronic/record.py chronic_plans: its domain's statement (`chronic.repository.plan_rows`), with the
    family-doctor institutions as one array column."""
    doctors = repository.family_doctor_institutions(P.patient, P.today).subquery()
    family = select(func.coalesce(func.array_agg(doctors.c.institution_id), literal_column("'{}'::bigint[]")))
    return repository.plan_rows(P.patient).add_columns(family.scalar_subquery())


# kinds whose source's statement is a Core statement of its domain: compiled here, not restated
STATEMENTS: dict[str, Select[Any]] = {"chronic_plan": _plans()}


def _statement() -> str:
    acc = policy.access(P.patient, P.institution, P.user, P.now, P.today)
    parts: list[ColumnElement[Any]] = []
    sources = {kind: (", ".join(f"{c} AS c{i}" for i, c in enumerate(columns)), f"{rest} LIMIT {PER_SOURCE}",
                      len(columns)) for kind, (columns, rest) in KINDS.items()}
    for kind, stmt in STATEMENTS.items():
        columns = [c.label(f"c{i}") for i, c in enumerate(stmt.selected_columns)]
        sources[kind] = ("*", f"({sql(stmt.with_only_columns(*columns).limit(PER_SOURCE))}) y", len(columns))
    for kind, (named, rest, width) in sources.items():
        array = ", ".join(f"x.c{i}" for i in range(width))
        parts.append(literal_column(
            f"CASE WHEN acc.basis IS NOT NULL AND '{kind}' = ANY({P.text('kinds')}) THEN "
            f"(SELECT coalesce(json_agg(json_build_array({array})), '[]') "
            f"FROM (SELECT {named} FROM {rest}) x) END").label(kind))
    return sql(select(acc.c.basis, acc.c.includes_shared, acc.c.consent, acc.c.grant_id, *parts).select_from(acc))


RECORD = _statement()


# ------------------------------------------------------------------------------------ entries
# Each builder makes the `record.sources.Entry` rows its source makes, from that kind's JSON array.


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


class _Marks:
    """HR marks of orders (`Catalogue.hr_label` on the result's local date), remembered per order."""

    def __init__(self, cat: recognition_fast.Catalogue) -> None:
        self.cat = cat
        self.done: dict[int, str] = {}

    def of(self, order_id: int, ordering: int, centre: int | None, item_code: str, kind: str, status: str,
           reported_at: str | None, performing: int | None) -> str:
        hit = self.done.get(order_id)
        if hit is None:
            item = self.cat.by_code(item_code)
            hit = self.done[order_id] = "" if item is None or reported_at is None or status not in RESULTED else \
                self.cat.hr_label(source_of(kind, ordering, centre, performing), item[0],
                                  clock.to_local(_ts(reported_at)).date())
        return hit


def _bookings(rows: list[list[Any]], marks: _Marks) -> list[Entry]:
    return [Entry("booking", _ts(at), inst, ids_of(inst, by), name, number, status, f"booking:{bid}",
                  f"/bookings/{bid}/slip") for bid, at, inst, by, name, number, status in rows]


def _referrals(rows: list[list[Any]], marks: _Marks) -> list[Entry]:
    out = []
    for rid, at, origin, to, status, direction, reason, diagnoses in rows:
        involved = ids_of(origin) if status == "draft" else ids_of(origin, to)
        out.append(Entry("referral", _ts(at), origin, involved,
                         ("上转" if direction == "up" else "下转") + "：" + (reason or "")[:80],
                         str(diagnoses or ""), status, f"referral:{rid}", f"/referrals/{rid}"))
    return out


def _transfers(rows: list[list[Any]], marks: _Marks) -> list[Entry]:
    return [Entry("transfer", _ts(at), origin, ids_of(origin, dest), (diagnosis or "")[:80], case_no, status,
                  f"transfer:{tid}", f"/transfers/{tid}") for tid, at, origin, dest, diagnosis, case_no, status in rows]


def _orders(rows: list[list[Any]], marks: _Marks) -> list[Entry]:
    out = []
    for oid, at, ordering, centre, item_name, accession, code, kind, status, reported, performing in rows:
        out.append(Entry("diagnostic_order", _ts(at), ordering, ids_of(ordering, centre, performing), item_name,
                         accession, status, f"diagnostic_order:{oid}",
                         extra={"hr": marks.of(oid, ordering, centre, code, kind, status, reported, performing)}))
    return out


def _labs(rows: list[list[Any]], marks: _Marks) -> list[Entry]:
    out = []
    for (obid, at, ordering, centre, name, code, value, units, flags, result_status, item_name, oid, item_code, kind,
         status, reported, performing) in rows:
        shown = " ".join(x for x in (value, units) if x)
        flag = f" [{flags}]" if flags else ""
        out.append(Entry("lab_result", _ts(at), centre or ordering, ids_of(ordering, centre),
                         f"{name or code}: {shown}{flag}", item_name, result_status, f"lab_observation:{obid}",
                         extra={"hr": marks.of(oid, ordering, centre, item_code, kind, status, reported, performing)}))
    return out


def _reports(rows: list[list[Any]], marks: _Marks) -> list[Entry]:
    out = []
    for (rpid, at, ordering, centre, conclusion, status, item_name, oid, item_code, kind, order_status, reported,
         performing) in rows:
        out.append(Entry("report", _ts(at), centre or ordering, ids_of(ordering, centre), item_name,
                         (conclusion or "")[:200], status, f"diagnostic_report:{rpid}",
                         extra={"hr": marks.of(oid, ordering, centre, item_code, kind, order_status, reported,
                                               performing)}))
    return out


def _decisions(rows: list[list[Any]], marks: _Marks) -> list[Entry]:
    out = []
    for did, at, inst, reused_inst, item_name, decision, reused_date, reason_code, reason_text in rows:
        if decision == "reuse":
            title = f"{item_name}：互认（采用已有结果）"
            detail = f"结果日期 {reused_date or ''}"  # a JSON date is its ISO form
        else:
            title = f"{item_name}：重新检查"
            detail = RETEST_REASONS.get(reason_code or "", "") + (f"（{reason_text}）" if reason_text else "")
        out.append(Entry("recognition", _ts(at), inst, ids_of(inst, reused_inst), title, detail, decision,
                         f"recognition_decision:{did}", f"/recognition/decisions/{did}"))
    return out


def _plan_entries(rows: list[list[Any]], marks: _Marks) -> list[Entry]:
    return [plan_entry(rid, _ts(at), inst, team_inst, condition, icd10, status, due, doctors)
            for rid, at, inst, team_inst, condition, icd10, status, due, doctors in rows]


BUILD = {"booking": _bookings, "referral": _referrals, "transfer": _transfers, "diagnostic_order": _orders,
         "lab_result": _labs, "report": _reports, "recognition": _decisions, "chronic_plan": _plan_entries}


def _at(value: datetime) -> str:
    """As the response model writes a UTC datetime (pydantic: ISO 8601, "Z")."""
    text = value.isoformat()  # the statement's session runs in UTC: "+00:00"
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# ------------------------------------------------------------------------------------ the read


async def record(subject: Subject, patient_id: int, kinds: list[str], limit: int,
                 ip: str | None = None) -> dict[str, Any] | AppError | None:
    """The RecordOut of the reference route, or None when the reference must answer; raises Busy (no connection)."""
    inst_id = subject.acting_institution_id
    if inst_id is None or not subject.is_clinical:
        return None
    wanted = service.wanted_kinds(kinds)
    if any(k not in BUILD for k in wanted):
        return None  # a source registered by another domain that has no statement here
    cat = await recognition_fast.snapshot()  # the same process snapshot the lookup uses
    now, today = clock.now(), clock.today_local()
    row = await fetchrow(RECORD, *P.args(patient=patient_id, institution=inst_id, user=subject.user_id, now=now,
                                        today=today, kinds=list(set(wanted))))
    if row is None or row["basis"] is None:
        return None  # not visible: the reference answers 404
    basis = row["basis"]
    shared = shared_of(basis, row["includes_shared"], row["consent"])
    marks = _Marks(cat)
    built: dict[str, list[Entry]] = {}

    def rows_of(kind: str) -> list[Entry]:  # each kind built once, however often it is asked for
        if kind not in built:
            built[kind] = BUILD[kind](json.loads(row[kind]), marks)
        return built[kind]

    entries, hidden, others = service.arrange(rows_of, wanted, inst_id, shared, limit)
    names = cat.names
    if any(e.source_institution_id not in names for e in entries):
        return None  # an institution newer than the snapshot: the reference reads the names
    audit_basis, detail = service.read_audit(basis, wanted, entries, others, row["grant_id"])
    batch.read(subject, "shared_record", patient_id, patient_id=patient_id, basis=audit_basis, detail=detail,
               ip=ip, at=now)
    return {"patient_id": patient_id, "access_basis": basis, "shared_record_visible": shared, "kinds": wanted,
            "hidden_other_members": hidden,
            "entries": [{**service.entry_out(e, names), "at": _at(e.at)} for e in entries]}


# ------------------------------------------------------------------------------------ the ASGI route


def _query(scope: Scope) -> tuple[list[str], int] | None:
    """The route's `kind` (repeatable, comma-separated) and `limit` as FastAPI reads them; None to let it judge."""
    try:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True,
                         strict_parsing=False)
    except ValueError:
        return None
    limit = 200
    values = query.get("limit")
    if values:
        raw = values[-1]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or not 1 <= int(raw) <= LIMIT_MAX:
            return None  # the route answers 422 (kit.schemas.Limit)
        limit = int(raw)
    return service.parse_kinds([k for part in query.get("kind", []) for k in part.split(",")]), limit


class RecordRoute(FastRoute):
    """Pure ASGI: `GET /api/v1/patients/{id}/record` with a bearer token, served before the framework stack."""

    method = "GET"
    stats = stats

    def claim(self, scope: Scope) -> Any:
        match = PATH.fullmatch(scope["path"])
        return parse_id(match.group(1)) if match is not None and enabled() else None

    async def serve(self, scope: Scope, token: str, claimed: Any, body: bytes) -> dict[str, Any] | AppError | None:
        query = _query(scope)
        if query is None:
            return None
        subject = await route_subject(scope, token)
        if subject is None or not subject.is_clinical:
            return None
        try:
            return await record(subject, claimed, query[0], query[1], client_ip(scope))
        except (asyncpg.PostgresError, OSError):
            return None

    def dump(self, out: dict[str, Any]) -> bytes:
        return _encode(out).encode()


# as the route's JSONResponse writes the response model's dump: compact, UTF-8
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
