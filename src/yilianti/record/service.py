"""The shared longitudinal record and the "who looked at my record" report (DOMAIN.md §4b).

Record: every source in `record.sources.SOURCES` returns the person's rows of one kind;
they are merged newest first and filtered by the access decision of `authz.policy.decide`:
- own institution's data (it is involved in the entry) with a care relationship or grant;
- every member's data only with the patient's sharing consent in force for an alliance the
  viewer's institution belongs to (or scope all), or under break-glass;
- anything else: 404 for the whole record.
Each read writes one audit event (basis `own`, `shared` when other members' data were shown,
`grant` or `break_glass`) with the kinds and entries shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from yilianti.alliance.repository import institution_names
from yilianti.audit import repository as audit_repo
from yilianti.audit import service as audit
from yilianti.auth.repository import display_names
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.empi import repository as empi_repo
from yilianti.exceptions import NotFound
from yilianti.kit import repository as kit
from yilianti.models.audit import AuditEvent
from yilianti.models.diagnostics import DiagnosticOrder, DiagnosticReport, LabObservation
from yilianti.models.patient import Patient
from yilianti.patients import repository as patients_repo
from yilianti.record import repository
from yilianti.record.sources import SOURCES, Entry, order_institutions

PER_SOURCE = 200
READ_ACTIONS = ("read", "search", "export", "print")


@dataclass
class RecordView:
    patient: Patient
    access: policy.PatientAccess
    entries: list[Entry]
    institutions: dict[int, str]
    hidden_other_members: int  # entries that exist at other members but are not shown (no consent)
    kinds: list[str]


def shared_record(db: Session, subject: Subject, patient_id: int, kinds: list[str] | None = None,
                  limit: int = 200) -> RecordView:
    access = policy.decide(db, subject, patient_id)
    patient = kit.get(db, Patient, patient_id)
    if access is None or patient is None:
        raise NotFound()
    wanted = wanted_kinds(kinds)
    inst = subject.acting_institution_id
    assert inst is not None  # decide() answers None for a subject without an acting institution
    entries, hidden, others = arrange(lambda kind: SOURCES[kind].fn(db, patient_id, PER_SOURCE), wanted, inst,
                                      access.shared, limit)
    basis, detail = read_audit(access.basis, wanted, entries, others, access.grant_id)
    audit.record(db, subject, "read", "shared_record", patient_id, patient_id=patient_id, basis=basis,
                 detail=detail)
    ids = {e.source_institution_id for e in entries} | {i for e in entries for i in e.institutions}
    names = institution_names(db, ids)
    return RecordView(patient, access, entries, names, hidden, wanted)


def wanted_kinds(kinds: list[str] | None) -> list[str]:
    """The kinds a read covers, in the order asked (every registered kind when none is)."""
    return [k for k in (kinds or []) if k in SOURCES] or list(SOURCES)


def arrange(rows_of: Callable[[str], list[Entry]], wanted: list[str], inst: int, shared: bool,
            limit: int) -> tuple[list[Entry], int, list[int]]:
    """The entries a viewer at `inst` sees, newest first and cut to `limit`; how many were hidden (other
    members' entries without the shared record); the other members whose entries are shown."""
    entries: list[Entry] = []
    hidden = 0
    for kind in wanted:
        for entry in rows_of(kind):
            if policy.entry_visible(entry.institutions, inst, shared):
                entries.append(entry)
            else:
                hidden += 1
    entries.sort(key=lambda e: (e.at, e.ref), reverse=True)
    entries = entries[:limit]
    others = sorted({e.source_institution_id for e in entries if inst not in e.institutions})
    return entries, hidden, others


def read_audit(access_basis: str, wanted: list[str], entries: list[Entry], others: list[int],
               grant_id: int | None) -> tuple[str, dict[str, Any]]:
    """The basis and detail of a record read's audit row (`shared` when other members' entries were shown)."""
    basis = policy.read_basis(access_basis, bool(others))
    return basis, {"kinds": wanted, "entries": len(entries), "other_institutions": others, "grant_id": grant_id}


def entry_out(e: Entry, names: dict[int, str]) -> dict[str, Any]:
    return {"kind": e.kind, "at": e.at, "source_institution_id": e.source_institution_id,
            "source_institution": names.get(e.source_institution_id, ""), "title": e.title, "detail": e.detail,
            "status": e.status, "ref": e.ref, "link": e.link, "hr_mark": str(e.extra.get("hr") or "")}


# ------------------------------------------------------------------------------ who looked


@dataclass
class AccessLogRow:
    event: AuditEvent
    institution: str
    user: str


def _may_see_access_log(db: Session, subject: Subject, patient_id: int) -> bool:
    if subject.audits_everything:
        return True
    if subject.has("auditor"):  # the patients cared for inside the auditor's scope
        scope = audit_repo.visible_scope(db, subject)
        return scope is None or patients_repo.in_care_of_any(db, patient_id, scope)
    inst = subject.acting_institution_id
    if inst is None:
        return False
    if subject.is_clinical:
        access = policy.decide(db, subject, patient_id)
        if access is not None and access.basis == "own":
            return True
    if subject.has("institution_admin"):
        return patients_repo.in_care_of(db, patient_id, inst)
    return False


def access_log(db: Session, subject: Subject, patient_id: int, reads_only: bool = True,
               limit: int = 200, offset: int = 0) -> tuple[Patient, list[AccessLogRow]]:
    """Who looked at this patient's data: institution, user, time, basis (for care institutions and auditors)."""
    patient = kit.get(db, Patient, patient_id)
    if patient is None or not _may_see_access_log(db, subject, patient_id):
        raise NotFound()
    ids = empi_repo.merged_into(db, [patient_id])  # a merged person's history belongs to the survivor too
    events = audit_repo.events_of_patients(db, ids, READ_ACTIONS if reads_only else None, limit, offset)
    names = institution_names(db, {e.acting_institution_id for e in events})
    users = display_names(db, {e.user_id for e in events})
    audit.record(db, subject, "read", "access_log", patient_id, patient_id=patient_id,
                 basis="auditor" if subject.audits_everything or subject.has("auditor") else "own",
                 detail={"events": len(events)})
    rows = [AccessLogRow(e, names.get(e.acting_institution_id or 0, ""),
                         users.get(e.user_id or 0, e.username or "")) for e in events]
    return patient, rows


def parse_kinds(value: str | list[str] | None) -> list[str]:
    if not value:
        return []
    parts = value if isinstance(value, list) else value.split(",")
    return [p.strip() for p in parts if p.strip() in SOURCES]


# ------------------------------------------------------------------------------ details opened from the record


@dataclass
class OrderDetail:
    """A result or report opened from the record: read-only, through the record's access decision."""

    patient: Patient
    order: DiagnosticOrder
    report: DiagnosticReport | None
    observations: list[LabObservation]
    studies: int
    ecgs: int
    names: dict[int, str]
    basis: str


def _record_access(db: Session, subject: Subject, patient_id: int) -> tuple[Patient, policy.PatientAccess, int]:
    access = policy.decide(db, subject, patient_id)
    patient = kit.get(db, Patient, patient_id)
    if access is None or patient is None or subject.acting_institution_id is None:
        raise NotFound()
    return patient, access, subject.acting_institution_id


def open_order(db: Session, subject: Subject, patient_id: int, order_id: int, *, view: str = "report") -> OrderDetail:
    """Another member's (or one's own) result as the record shows it: the full signed report, the lab values,
    whether images and an ECG exist. 404 unless the record would show this order's entries to the viewer
    (`policy.entry_visible`); each opening is audited (`view`: report | images | ecg), basis `shared` for another
    member's data."""
    patient = kit.get(db, Patient, patient_id)
    order = repository.order_of_patient(db, patient_id, order_id)
    if patient is None or order is None:
        raise NotFound()
    _access, basis = policy.require_entry(db, subject, patient_id, order_institutions(order), action="read",
                                          resource_type="diagnostic_order", resource_id=order.id,
                                          detail={"view": f"shared_record.{view}"})
    studies, ecgs = repository.media_of(db, order.id)
    names = institution_names(db, (order.ordering_institution_id, order.reading_centre_institution_id))
    return OrderDetail(patient, order, repository.signed_report(db, order.id), repository.observations_of(db, order.id),
                       studies, ecgs, names, basis)


@dataclass
class TrendPoint:
    at: Any
    value: float | None
    text: str
    units: str
    reference_range: str
    flags: str
    institution: str
    order_id: int


@dataclass
class Trend:
    patient: Patient
    code: str
    name: str
    units: str
    points: list[TrendPoint]
    hidden: int  # values at other members not shown (no shared record)


def lab_trend(db: Session, subject: Subject, patient_id: int, code: str) -> Trend:
    """One lab test's values over time, as far as the record shows them to the viewer; audited."""
    patient, access, inst = _record_access(db, subject, patient_id)
    rows = repository.lab_series(db, patient_id, code)
    shown = [(ob, o) for ob, o in rows if policy.entry_visible(order_institutions(o), inst, access.shared)]
    others = sorted({o.reading_centre_institution_id or o.ordering_institution_id for _ob, o in shown
                     if inst not in order_institutions(o)})
    basis = "shared" if access.basis == "own" and others else access.basis
    audit.record(db, subject, "read", "lab_trend", code[:64], patient_id=patient_id, basis=basis,
                 detail={"code": code, "points": len(shown), "other_institutions": others})
    ids = {o.reading_centre_institution_id or o.ordering_institution_id for _ob, o in shown}
    names = institution_names(db, ids)
    points = [TrendPoint(ob.observed_at or ob.created_at, number(ob.value), ob.value or "", ob.units or "",
                         ob.reference_range or "", ob.abnormal_flags or "",
                         names.get(o.reading_centre_institution_id or o.ordering_institution_id, ""), o.id)
              for ob, o in shown]
    name = next((ob.name for ob, _o in reversed(shown) if ob.name), code)
    units = next((p.units for p in reversed(points) if p.units), "")
    return Trend(patient, code, name, units, points, len(rows) - len(shown))


def number(value: str | None) -> float | None:
    """A lab value as a number ("4.8", "<0.01" → 0.01, "阴性" → None)."""
    text = (value or "").strip().lstrip("<>≤≥=~").strip()
    try:
        return float(text)
    except ValueError:
        return None
