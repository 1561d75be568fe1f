"""Reads and searches of FHIR resources: the same repositories and policy clauses as the pages.

A patient is read through patients.service.get_patient (authz.policy.require_patient: 404 when not visible,
the read audited with its basis); a patient search is filtered by policy.readable and audited with the ids it
returned, as the pages' search is. Directory resources (Organization, Practitioner, PractitionerRole,
Location, OrganizationAffiliation) are visible to every signed-in user, as the directory pages are.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError
from sqlalchemy import ColumnElement, and_, false, func, not_, or_, true
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.audit.repository import AuditFilter
from yilianti.auth import clients
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.chronic import record as chronic_record
from yilianti.chronic import repository as chronic_repo
from yilianti.consultation import repository as consultation_repo
from yilianti.consultation import service as consultations
from yilianti.empi import matching, online
from yilianti.exceptions import AppError, Conflict, Forbidden, InvalidInput, NotFound, parse_input
from yilianti.fhir import groups, mapping, repository
from yilianti.fhir.search import (
    COMMON,
    YEARS,
    BadSearch,
    Param,
    Query,
    date_clause,
    date_matches,
    filters,
    ids_clause,
    period_matches,
    reference,
    string_clause,
    token,
)
from yilianti.fhir.wire import PreconditionFailed, digits, etag_matches, versioned
from yilianti.kit import clock, validate
from yilianti.kit import repository as kit
from yilianti.kit.repository import MAX_PER_PAGE
from yilianti.models.alliance import Alliance, Institution, Membership
from yilianti.models.diagnostics import DiagnosticOrder, LabObservation
from yilianti.models.diagnostics import DiagnosticReport as DxReport
from yilianti.models.diagnostics import ImagingStudy as DxImagingStudy
from yilianti.models.patient import Authority, Consent, Patient
from yilianti.models.referral import Referral
from yilianti.models.scheduling import Booking, ClinicSession, Schedule, SessionStatus, Slot
from yilianti.models.workforce import PracticeSite, Practitioner
from yilianti.patients import repository as patient_repo
from yilianti.patients import service as patients
from yilianti.patients.service import masked_query
from yilianti.recognition import service as recognition
from yilianti.record import service as record
from yilianti.referral import repository as referral_repo
from yilianti.referral import service as referrals
from yilianti.referral.states import Status as ReferralStatus
from yilianti.scheduling import booking
from yilianti.scheduling.schemas import BookingIn

Resource = dict[str, Any]
Builder = Callable[[str | None, list[str]], ColumnElement[bool]]


@dataclass
class Found:
    resources: list[Resource]
    total: int | None
    has_next: bool
    included: list[Resource] = field(default_factory=list)


@dataclass(frozen=True)
class Kind:
    """One resource type: its search parameters (the CapabilityStatement's and the OpenAPI's), read and search."""

    type: str
    params: dict[str, Param]
    read: Callable[[Session, Subject, str], Resource]
    search: Callable[[Session, Subject, Query], Found]
    doc: str = ""
    create: Callable[[Session, Subject, Any], Resource] | None = None
    update: Callable[[Session, Subject, str, Any], Resource] | None = None


def _params(*extra: Param) -> dict[str, Param]:
    return {p.name: p for p in (*COMMON, *extra)}


def int_id(value: str, prefix: str = "") -> int:
    """A logical id (`123`, or `<prefix>123`) as the row id; NotFound for anything else."""
    rest = value[len(prefix):] if prefix and value.startswith(prefix) else (None if prefix else value)
    if rest is None or not digits(rest) or len(rest) > 15 or int(rest) == 0:
        raise NotFound()
    return int(rest)


def _page(total: int, q: Query) -> bool:
    return q.page * q.count < total


def _bool(column: Any, values: list[str]) -> ColumnElement[bool]:
    if any(v not in ("true", "false") for v in values):
        raise BadSearch("检索参数无效", fields={"active": "应为 true 或 false"})
    return or_(*(column.is_(v == "true") for v in values))


def _common(id_column: Any, updated_column: Any) -> dict[str, Builder]:
    return {"_id": lambda _m, v: ids_clause(id_column, v),
            "_lastUpdated": lambda _m, v: date_clause(updated_column, v, "_lastUpdated")}


def _refs(column: Any, type_: str) -> Builder:
    def clause(_m: str | None, values: list[str]) -> ColumnElement[bool]:
        ids = [i for i in (reference(v, type_) for v in values) if i is not None]
        return column.in_(ids) if ids else false()
    return clause


# ------------------------------------------------------------------------------------------------ Patient

PATIENT_PARAMS = _params(
    Param("identifier", "token", "resident ID, health card, insurance number or a member's record number: "
                                 "system|value or value"),
    Param("name", "string", "name (starts with; :contains, :exact)", ("contains", "exact")),
    Param("birthdate", "date", "birth date, with prefixes (ge2015-01-01)"),
    Param("phone", "token", "mobile phone number (exact)"),
    Param("gender", "token", "male | female | unknown"),
)


def _identifier(_m: str | None, values: list[str]) -> ColumnElement[bool]:
    parts = []
    for raw in values:
        system, value = token(raw)
        if not value:
            raise BadSearch("检索参数无效", fields={"identifier": "缺少证件号"})
        if system:
            authority = mapping.authority_of(system)
            parts.append(repository.holding_identifier(authority, [value]) if authority else false())
        else:
            parts.append(repository.holding_identifier(None, [value]))
    return or_(*parts)


def _gender(_m: str | None, values: list[str]) -> ColumnElement[bool]:
    if any(token(v)[1] not in mapping.GENDERS for v in values):
        raise BadSearch("检索参数无效", fields={"gender": "应为 male、female、other 或 unknown"})
    return Patient.sex.in_([mapping.SEX_OF_GENDER.get(token(v)[1], "") for v in values])


PATIENT_FILTERS: dict[str, Builder] = {
    **_common(Patient.id, Patient.created_at),
    "identifier": _identifier,
    "name": lambda m, v: string_clause(Patient.name, m, v),
    "birthdate": lambda _m, v: date_clause(Patient.birth_date, v, "birthdate", is_date=True),
    "phone": lambda _m, v: repository.with_phone([token(x)[1] for x in v]),
    "gender": _gender,
}


def read_patient(db: Session, subject: Subject, id_: str) -> Resource:
    patient, _access = patients.get_patient(db, subject, int_id(id_))  # policy.require_patient: 404, audited
    if not patient.active:
        raise NotFound()
    return mapping.patient(patient, patient.identifiers)


def search_patients(db: Session, subject: Subject, q: Query) -> Found:
    page = repository.patients_page(db, subject, filters(q, PATIENT_FILTERS), q.page, q.count, q.total)
    shown = " ".join(f"{k}={','.join(v)}" for k, reps in q.params.items() for _m, v in reps)
    audit.record(db, subject, "search", "patient", None,
                 detail={"q": masked_query(shown), "results": [p.id for p in page.items]})
    return Found([mapping.patient(p, p.identifiers) for p in page.items], page.total, page.has_next)


# ------------------------------------------------------------------------------------------- Organization

ORG_PARAMS = _params(
    Param("name", "string", "name (starts with; :contains, :exact)", ("contains", "exact")),
    Param("identifier", "token", "registration code of an institution, key of an alliance"),
    Param("type", "token", "institution kind (general, township, …) or alliance model (county_community, …)"),
    Param("partof", "reference", "institutions that are members of this alliance today (Organization/alliance-1)"),
    Param("active", "token", "true | false"),
)


def _alliance_ids(values: list[str]) -> list[int]:
    ids = []
    for v in values:
        tail = v.rstrip("/").split("/")[-1]
        if tail.startswith(mapping.ALLIANCE_PREFIX) and digits(tail[len(mapping.ALLIANCE_PREFIX):]):
            ids.append(int(tail[len(mapping.ALLIANCE_PREFIX):]))
    return ids


def _codes(column: Any) -> Builder:
    return lambda _m, v: column.in_([token(x)[1] for x in v])


ORG_INSTITUTION_FILTERS: dict[str, Builder] = {
    **_common(Institution.id, Institution.created_at),
    "name": lambda m, v: or_(string_clause(Institution.name, m, v), string_clause(Institution.short_name, m, v)),
    "identifier": _codes(Institution.code),
    "type": _codes(Institution.kind),
    "active": lambda _m, v: _bool(Institution.active, v),
    "partof": lambda _m, v: repository.member_of(_alliance_ids(v), clock.today_local()),
}
ORG_ALLIANCE_FILTERS: dict[str, Builder] = {
    "_id": lambda _m, v: Alliance.id.in_(_alliance_ids(v)),
    "_lastUpdated": lambda _m, v: date_clause(Alliance.created_at, v, "_lastUpdated"),
    "name": lambda m, v: string_clause(Alliance.name, m, v),
    "identifier": _codes(Alliance.key),
    "type": _codes(Alliance.model),
    "active": lambda _m, v: _bool(Alliance.active, v),
}


def _org_filters(q: Query) -> tuple[list[ColumnElement[bool]], list[ColumnElement[bool]] | None]:
    """Conditions on institutions, and on alliances (None when a parameter no alliance can match is given:
    an alliance is part of nothing)."""
    alliances = None if "partof" in q.params else filters(q, ORG_ALLIANCE_FILTERS)
    return filters(q, ORG_INSTITUTION_FILTERS), alliances


def read_organization(db: Session, subject: Subject, id_: str) -> Resource:
    if id_.startswith(mapping.ALLIANCE_PREFIX):
        return mapping.alliance(kit.get_or_404(db, Alliance, int_id(id_, mapping.ALLIANCE_PREFIX)))
    inst = kit.get_or_404(db, Institution, int_id(id_))
    today = clock.today_local()
    return mapping.organization(inst, repository.current_memberships(db, [inst.id], today)[inst.id])


def search_organizations(db: Session, subject: Subject, q: Query) -> Found:
    inst_where, alliance_where = _org_filters(q)
    insts, alliances, total = repository.organizations_page(db, inst_where, alliance_where, q.page, q.count)
    members = repository.current_memberships(db, [i.id for i in insts], clock.today_local())
    resources = [mapping.organization(i, members[i.id]) for i in insts] + [mapping.alliance(a) for a in alliances]
    return Found(resources, total, _page(total, q))


# ------------------------------------------------------------------------------------------------ Location

LOCATION_PARAMS = _params(
    Param("name", "string", "name (starts with; :contains, :exact)", ("contains", "exact")),
    Param("organization", "reference", "the institution the site belongs to"),
    Param("address-city", "string", "city", ("contains", "exact")),
)
LOCATION_FILTERS: dict[str, Builder] = {
    **_common(Institution.id, Institution.created_at),
    "name": lambda m, v: string_clause(Institution.name, m, v),
    "organization": _refs(Institution.id, "Organization"),
    "address-city": lambda m, v: string_clause(Institution.city, m, v),
}


def read_location(db: Session, subject: Subject, id_: str) -> Resource:
    return mapping.location(kit.get_or_404(db, Institution, int_id(id_)))


def search_locations(db: Session, subject: Subject, q: Query) -> Found:
    page = repository.institutions_page(db, filters(q, LOCATION_FILTERS), q.page, q.count)
    return Found([mapping.location(i) for i in page.items], page.total, page.has_next)


# ---------------------------------------------------------------------------------- OrganizationAffiliation

AFFILIATION_PARAMS = _params(
    Param("primary-organization", "reference", "the alliance (Organization/alliance-1)"),
    Param("participating-organization", "reference", "the member institution"),
)
AFFILIATION_FILTERS: dict[str, Builder] = {
    **_common(Membership.id, Membership.created_at),
    "primary-organization": lambda _m, v: Membership.alliance_id.in_(_alliance_ids(v)),
    "participating-organization": _refs(Membership.institution_id, "Organization"),
}


def read_affiliation(db: Session, subject: Subject, id_: str) -> Resource:
    return mapping.affiliation(kit.get_or_404(db, Membership, int_id(id_)), clock.today_local())


def search_affiliations(db: Session, subject: Subject, q: Query) -> Found:
    page = repository.memberships_page(db, filters(q, AFFILIATION_FILTERS), q.page, q.count)
    today = clock.today_local()
    return Found([mapping.affiliation(m, today) for m in page.items], page.total, page.has_next)


# -------------------------------------------------------------------------------------------- Practitioner

PRACTITIONER_PARAMS = _params(
    Param("name", "string", "name (starts with; :contains, :exact)", ("contains", "exact")),
    Param("identifier", "token", "practising licence number"),
    Param("active", "token", "true | false"),
)
PRACTITIONER_FILTERS: dict[str, Builder] = {
    **_common(Practitioner.id, Practitioner.created_at),
    "name": lambda m, v: string_clause(Practitioner.name, m, v),
    "identifier": _codes(Practitioner.licence_no),
    "active": lambda _m, v: _bool(Practitioner.active, v),
}


def read_practitioner(db: Session, subject: Subject, id_: str) -> Resource:
    return mapping.practitioner(kit.get_or_404(db, Practitioner, int_id(id_)))


def search_practitioners(db: Session, subject: Subject, q: Query) -> Found:
    page = repository.practitioners_page(db, filters(q, PRACTITIONER_FILTERS), q.page, q.count)
    return Found([mapping.practitioner(p) for p in page.items], page.total, page.has_next)


# ---------------------------------------------------------------------------------------- PractitionerRole

ROLE_PARAMS = {p.name: p for p in (
    Param("_id", "token", "logical id (home-<practitioner> or site-<practice site>)"),
    Param("practitioner", "reference", "the practitioner"),
    Param("organization", "reference", "the institution of the role (home or visiting site)"),
)}


def _role_ids(values: list[str], prefix: str) -> list[int]:
    return [int(v[len(prefix):]) for v in values if v.startswith(prefix) and digits(v[len(prefix):])
            and len(v) - len(prefix) < 16]


def _role_filters(q: Query) -> tuple[list[ColumnElement[bool]], list[ColumnElement[bool]]]:
    home: list[ColumnElement[bool]] = []
    site: list[ColumnElement[bool]] = []
    for name, reps in q.params.items():
        for _modifier, values in reps:
            if name == "_id":
                home.append(Practitioner.id.in_(_role_ids(values, mapping.HOME_ROLE)))
                site.append(PracticeSite.id.in_(_role_ids(values, mapping.SITE_ROLE)))
            elif name == "practitioner":
                home.append(_refs(Practitioner.id, "Practitioner")(None, values))
                site.append(_refs(PracticeSite.practitioner_id, "Practitioner")(None, values))
            elif name == "organization":
                home.append(_refs(Practitioner.home_institution_id, "Organization")(None, values))
                site.append(_refs(PracticeSite.institution_id, "Organization")(None, values))
    return home or [true()], site or [true()]


def _roles(db: Session, homes: list[Practitioner], sites: list[PracticeSite]) -> list[Resource]:
    departments = repository.department_names(db, [p.department_id for p in homes] + [s.department_id for s in sites])
    names = repository.practitioner_names(db, [s.practitioner_id for s in sites])
    today = clock.today_local()
    return ([mapping.home_role(p, departments.get(p.department_id or 0)) for p in homes]
            + [mapping.site_role(s, names.get(s.practitioner_id, ""), departments.get(s.department_id or 0), today)
               for s in sites])


def read_role(db: Session, subject: Subject, id_: str) -> Resource:
    if id_.startswith(mapping.HOME_ROLE):
        return _roles(db, [kit.get_or_404(db, Practitioner, int_id(id_, mapping.HOME_ROLE))], [])[0]
    return _roles(db, [], [kit.get_or_404(db, PracticeSite, int_id(id_, mapping.SITE_ROLE))])[0]


def search_roles(db: Session, subject: Subject, q: Query) -> Found:
    home_where, site_where = _role_filters(q)
    homes, sites, total = repository.roles_page(db, home_where, site_where, q.page, q.count)
    return Found(_roles(db, homes, sites), total, _page(total, q))


# ------------------------------------------------------------------------------ scheduling (slice 3)

SCHEDULE_PARAMS = _params(
    Param("actor", "reference", "the expert (Practitioner/<n>) or the site (Location/<n>)"),
    Param("active", "token", "true | false"),
)


def _actor(_m: str | None, values: list[str]) -> ColumnElement[bool]:
    ids = {t: [i for i in (reference(v, t) for v in values if v.startswith(t + "/") or "/" + t + "/" in v)
               if i is not None] for t in ("Practitioner", "Location")}
    return or_(Schedule.practitioner_id.in_(ids["Practitioner"]), Schedule.institution_id.in_(ids["Location"]))


SCHEDULE_FILTERS: dict[str, Builder] = {
    **_common(Schedule.id, Schedule.created_at),
    "actor": _actor,
    "active": lambda _m, v: _bool(Schedule.active, v),
}


def read_schedule(db: Session, subject: Subject, id_: str) -> Resource:
    return mapping.schedule(kit.get_or_404(db, Schedule, int_id(id_)))


def search_schedules(db: Session, subject: Subject, q: Query) -> Found:
    page = repository.schedules_page(db, filters(q, SCHEDULE_FILTERS), q.page, q.count)
    return Found([mapping.schedule(s) for s in page.items], page.total, page.has_next)


SLOT_PARAMS = {p.name: p for p in (
    Param("_id", "token", "logical id"),
    Param("schedule", "reference", "the schedule"),
    Param("start", "date", "slot start, with prefixes (ge2026-12-08)"),
    Param("status", "token", "free | busy | busy-unavailable (session cancelled or started)"),
)}


def _open_session() -> ColumnElement[bool]:
    return and_(ClinicSession.status == SessionStatus.open, ClinicSession.starts_at > clock.now())


def _slot_status(_m: str | None, values: list[str]) -> ColumnElement[bool]:
    codes = [token(v)[1] for v in values]
    if any(c not in mapping.SLOT_STATUSES for c in codes):
        raise BadSearch("检索参数无效", fields={"status": "应为 free、busy 或 busy-unavailable"})
    return or_(*({"free": and_(Slot.booked.is_(False), _open_session()), "busy": Slot.booked.is_(True),
                  "busy-unavailable": and_(Slot.booked.is_(False), not_(_open_session()))}.get(c, false())
                 for c in codes))


SLOT_FILTERS: dict[str, Builder] = {
    "_id": lambda _m, v: ids_clause(Slot.id, v),
    "schedule": _refs(ClinicSession.schedule_id, "Schedule"),
    "start": lambda _m, v: date_clause(func.coalesce(Slot.starts_at, ClinicSession.starts_at), v, "start"),
    "status": _slot_status,
}


def _slot(slot: Slot, session: ClinicSession) -> Resource:
    open_ = session.status == SessionStatus.open and clock.as_utc(session.starts_at) > clock.now()
    status = "busy" if slot.booked else "free" if open_ else "busy-unavailable"
    return mapping.slot(slot, session, status)


def read_slot(db: Session, subject: Subject, id_: str) -> Resource:
    row = repository.slot_with_session(db, int_id(id_))
    if row is None:
        raise NotFound()
    return _slot(*row)


def search_slots(db: Session, subject: Subject, q: Query) -> Found:
    page = repository.slots_page(db, filters(q, SLOT_FILTERS), q.page, q.count)
    return Found([_slot(s, c) for s, c in page.items], page.total, page.has_next)


APPOINTMENT_PARAMS = _params(
    Param("patient", "reference", "the patient"),
    Param("date", "date", "when the appointment starts (its session's start), with prefixes"),
    Param("status", "token", "booked | arrived | noshow | cancelled"),
    Param("identifier", "token", "booking number"),
)
_BOOKING_STATUS = {v: k for k, v in mapping.APPOINTMENT_STATUS.items()}


def _appointment_status(_m: str | None, values: list[str]) -> ColumnElement[bool]:
    codes = [token(v)[1] for v in values]
    if any(c not in _BOOKING_STATUS for c in codes):
        raise BadSearch("检索参数无效", fields={"status": "应为 booked、arrived、noshow 或 cancelled"})
    return Booking.status.in_([_BOOKING_STATUS[c] for c in codes])


APPOINTMENT_FILTERS: dict[str, Builder] = {
    **_common(Booking.id, Booking.created_at),
    "patient": _refs(Booking.patient_id, "Patient"),
    "date": lambda _m, v: date_clause(ClinicSession.starts_at, v, "date"),
    "status": _appointment_status,
    "identifier": _codes(Booking.number),
}


def _appointment(b: Booking, session: ClinicSession, slot: Slot, sched: Schedule) -> Resource:
    return mapping.appointment(b, session, slot, sched.institution_id, sched.practitioner_id)


def read_appointment(db: Session, subject: Subject, id_: str) -> Resource:
    """A booking as its two sides see it (booking.get_booking: the booking and the receiving site; audited)."""
    b = booking.get_booking(db, subject, int_id(id_))[0]
    return _appointment(b, *repository.appointment_parts(db, b))


def search_appointments(db: Session, subject: Subject, q: Query) -> Found:
    where = filters(q, APPOINTMENT_FILTERS) + ([] if subject.is_clinical else [false()])
    page = repository.appointments_page(db, subject.acting_institution_id, where, q.page, q.count, q.total)
    if page.items:
        audit.record(db, subject, "search", "booking", None,
                     detail={"patients": sorted({b.patient_id for b, _, _, _ in page.items})[:200]})
    return Found([_appointment(*row) for row in page.items], page.total, page.has_next)


class BadResource(AppError):
    status, code, default_message = 400, "invalid_resource", "资源内容无效"


def _one_reference(refs: list[str], type_: str, field: str) -> int:
    ids = [i for i in (reference(r, type_) for r in refs if r.split("/")[-2:-1] == [type_]) if i is not None]
    if len(ids) != 1:
        raise InvalidInput(fields={field: "应引用且只引用一个资源"})
    return ids[0]


def parse_resource(body: Any, type_: str) -> Any:
    """The body as fhir.resources' R4B model of `type_`; 400 OperationOutcome naming what is wrong."""
    if not isinstance(body, dict) or body.get("resourceType") != type_:
        raise BadResource(fields={"resourceType": "资源类型不符"})
    try:
        return get_fhir_model_class(type_).model_validate(body)
    except (ValidationError, ValueError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else [{"loc": ("body",), "msg": str(exc)}]
        raise BadResource(fields={".".join(str(p) for p in e["loc"])[:100] or "body": "格式不正确"
                                  for e in errors[:10]}) from None


def create_appointment(db: Session, subject: Subject, body: Any) -> Resource:
    """POST Appointment on a free Slot: the booking service books it (no overbooking: the slot row is claimed
    conditionally; the reserved pool only for the alliance's eligible members), audited as every booking."""
    model = parse_resource(body, "Appointment")
    if model.status not in ("proposed", "pending", "booked"):
        raise InvalidInput(fields={"status": "新预约的状态应为 booked"})
    slot_id = _one_reference([r.reference or "" for r in model.slot or []], "Slot", "slot")
    patient_id = _one_reference([p.actor.reference or "" for p in model.participant if p.actor], "Patient",
                                "participant")
    row = repository.slot_with_session(db, slot_id)
    if row is None:
        raise InvalidInput(fields={"slot": "所选记录不存在"})
    data = parse_input(BookingIn, {"session_id": row[1].id, "patient_id": patient_id, "slot_id": slot_id,
                                   "note": model.comment})
    made = booking.book(db, subject, data)
    return _appointment(made, *repository.appointment_parts(db, made))


def update_appointment(db: Session, subject: Subject, id_: str, body: Any) -> Resource:
    """PUT Appointment: a status move the booking service makes (cancelled, arrived, noshow) or none; any
    other change is refused (a booking moves to another slot by cancelling and booking again)."""
    model = parse_resource(body, "Appointment")
    if model.id is not None and model.id != id_:
        raise BadResource(fields={"id": "与地址中的编号不一致"})
    current = read_appointment(db, subject, id_)
    if model.status == current["status"]:
        return current
    booking_id = int_id(id_)
    if model.status == "cancelled":
        reason = model.cancelationReason.text if model.cancelationReason else ""
        booking.cancel(db, subject, booking_id, reason or "")
    elif model.status == "arrived":
        booking.mark_arrived(db, subject, booking_id)
    elif model.status == "noshow":
        booking.mark_no_show(db, subject, booking_id)
    else:
        raise Conflict("预约不能改为该状态")
    return read_appointment(db, subject, id_)


# ------------------------------------------------------------------------------ referral (slice 3): BSeR style

REFERRAL_PARAMS = _params(
    Param("patient", "reference", "the patient"),
    Param("requester", "reference", "the sending institution (Organization/<n>)"),
    Param("owner", "reference", "Task: the receiving institution (Organization/<n>)"),
    Param("status", "token", "Task.status (requested, received, accepted, ...) or ServiceRequest.status"),
    Param("business-status", "token", "the platform's referral status (submitted, received, scheduled, ...)"),
    Param("focus", "reference", "Task: the ServiceRequest it fulfils"),
)
_TASK_STATUSES = {v: [k for k, w in mapping.TASK_STATUS.items() if w == v] for v in mapping.TASK_STATUS.values()}
_REQUEST_STATUSES = {v: [k for k, w in mapping.REQUEST_STATUS.items() if w == v]
                     for v in mapping.REQUEST_STATUS.values()}
_REQUEST_STATUSES["active"] = [s.value for s in ReferralStatus if s.value not in mapping.REQUEST_STATUS]


def _referral_status(table: dict[str, list[str]]) -> Builder:
    def clause(_m: str | None, values: list[str]) -> ColumnElement[bool]:
        codes = [token(v)[1] for v in values]
        if any(c not in table for c in codes):
            raise BadSearch("检索参数无效", fields={"status": "取值不在允许范围内"})
        return Referral.status.in_([s for c in codes for s in table[c]])
    return clause


def _referral_filters(status: Builder) -> dict[str, Builder]:
    return {
        **_common(Referral.id, Referral.updated_at),
        "patient": _refs(Referral.patient_id, "Patient"),
        "requester": _refs(Referral.from_institution_id, "Organization"),
        "owner": _refs(Referral.to_institution_id, "Organization"),
        "status": status,
        "business-status": _codes(Referral.status),
        "focus": _refs(Referral.id, "ServiceRequest"),
    }


TASK_FILTERS = _referral_filters(_referral_status(_TASK_STATUSES))
REQUEST_FILTERS = _referral_filters(_referral_status(_REQUEST_STATUSES))


def _referral(db: Session, subject: Subject, id_: str) -> Referral:
    """The referral as its two sides see it (404 for anyone else), its read audited."""
    ref = referrals.get(db, subject, int_id(id_))[0]
    audit.record(db, subject, "read", "referral", ref.id, patient_id=ref.patient_id, basis="own")
    return ref


def _search_referrals(db: Session, subject: Subject, q: Query, where: dict[str, Builder],
                      to_resource: Callable[[Referral], Resource]) -> Found:
    conditions = filters(q, where) + ([] if subject.is_clinical else [false()])
    page = repository.referrals_page(db, subject.acting_institution_id, conditions, q.page, q.count, q.total)
    if page.items:
        audit.record(db, subject, "search", "referral", None,
                     detail={"patients": sorted({r.patient_id for r in page.items})[:200]})
    return Found([to_resource(r) for r in page.items], page.total, page.has_next)


def read_service_request(db: Session, subject: Subject, id_: str) -> Resource:
    return mapping.service_request(_referral(db, subject, id_))


def search_service_requests(db: Session, subject: Subject, q: Query) -> Found:
    return _search_referrals(db, subject, q, REQUEST_FILTERS, mapping.service_request)


def read_task(db: Session, subject: Subject, id_: str) -> Resource:
    return mapping.task(_referral(db, subject, id_))


def search_tasks(db: Session, subject: Subject, q: Query) -> Found:
    return _search_referrals(db, subject, q, TASK_FILTERS, mapping.task)


def _target(model: Any) -> str:
    """The move a Task update asks for: its businessStatus (the platform's status), else its status where one
    Task.status means one move."""
    for c in (model.businessStatus.coding or []) if model.businessStatus else []:
        if c.system == mapping.REFERRAL_STATUS_SYSTEM and c.code:
            return str(c.code)
    if model.status in mapping.TASK_MOVES:
        return mapping.TASK_MOVES[model.status]
    raise InvalidInput(fields={"businessStatus": "请用 businessStatus 指明转诊状态"})


def _output_booking(model: Any) -> int | None:
    for out in model.output or []:
        reference_ = out.valueReference.reference if out.valueReference else None
        if reference_ and reference(reference_, "Appointment") is not None:
            return reference(reference_, "Appointment")
    return None


def update_task(db: Session, subject: Subject, id_: str, body: Any) -> Resource:
    """PUT Task: the referral moves through its state machine (referral.service.apply_move, the pages' and the JSON
    API's one entry); a move the machine refuses is 409, a move of the other side 403."""
    model = parse_resource(body, "Task")
    if model.id is not None and model.id != id_:
        raise BadResource(fields={"id": "与地址中的编号不一致"})
    ref = _referral(db, subject, id_)
    target = _target(model)
    if target == ref.status:
        return mapping.task(ref)
    reason = model.statusReason.text if model.statusReason and model.statusReason.text else None
    reject_code = next((c.code for c in (model.statusReason.coding or []) if model.statusReason
                        and c.system == mapping.REJECT_SYSTEM), None) if model.statusReason else None
    outcome = next((o.valueString for o in model.output or [] if o.valueString), None)
    if target not in {s.value for s in ReferralStatus}:
        raise InvalidInput(fields={"businessStatus": "取值不在允许范围内"})
    referrals.apply_move(db, subject, ref.id, target, expected_status=ref.status,
                         reason=outcome if target == "outcome_returned" else reason, reject_code=reject_code,
                         booking_id=_output_booking(model), arrival_mode="booked" if target == "arrived" else None)
    return mapping.task(referrals.get(db, subject, ref.id)[0])


# ----------------------------------------------------------------------------------------------- Consent

CONSENT_PARAMS = _params(
    Param("patient", "reference", "the patient"),
    Param("status", "token", "active | inactive (withdrawn)"),
)


def _consent_status(_m: str | None, values: list[str]) -> ColumnElement[bool]:
    codes = {token(v)[1] for v in values}
    if not codes <= {"active", "inactive"}:
        raise BadSearch("检索参数无效", fields={"status": "应为 active 或 inactive"})
    return or_(*({"active": Consent.withdrawn_at.is_(None), "inactive": Consent.withdrawn_at.is_not(None)}[c]
                 for c in codes))


CONSENT_FILTERS: dict[str, Builder] = {
    **_common(Consent.id, Consent.created_at),
    "patient": _refs(Consent.patient_id, "Patient"),
    "status": _consent_status,
}


def read_consent(db: Session, subject: Subject, id_: str) -> Resource:
    row = kit.get_or_404(db, Consent, int_id(id_))
    policy.require_patient(db, subject, row.patient_id, resource_type="consent", resource_id=row.id)
    return mapping.consent(row)


def search_consents(db: Session, subject: Subject, q: Query) -> Found:
    page = repository.consents_page(db, subject, filters(q, CONSENT_FILTERS), q.page, q.count, q.total)
    if page.items:
        audit.record(db, subject, "search", "consent", None,
                     detail={"patients": sorted({c.patient_id for c in page.items})[:200]})
    return Found([mapping.consent(c) for c in page.items], page.total, page.has_next)


# ------------------------------------------------------------------------------------------ Communication
# Teleconsultation messages, as the consultation's two sides see them (consultation.service.read: 404 for
# anyone else, each case read audited).

COMMUNICATION_PARAMS = {p.name: p for p in (
    Param("patient", "reference", "the patient (required: the messages of their consultations the caller takes part in)"),
    Param("sent", "date", "when the message was sent, with prefixes"),
)}


def _case_messages(db: Session, subject: Subject, consultation_id: int) -> list[Resource]:
    case = consultations.read(db, subject, consultation_id)[0]
    return [mapping.communication(m, case) for m in consultation_repo.messages(db, consultation_id)]


def read_communication(db: Session, subject: Subject, id_: str) -> Resource:
    row = repository.message_with_case(db, int_id(id_))
    if row is None:
        raise NotFound()
    case = consultations.read(db, subject, row[1])[0]
    return mapping.communication(row[0], case)


def search_communications(db: Session, subject: Subject, q: Query) -> Found:
    patients_ = {i for _m, values in q.each("patient") for i in (reference(v, "Patient") for v in values) if i}
    if len(patients_) != 1:
        raise BadSearch("检索参数无效", fields={"patient": "请指定一位患者"})
    out: list[Resource] = []
    for case_id in repository.consultation_ids_of_patient(db, patients_.pop()):
        try:
            out += _case_messages(db, subject, case_id)
        except NotFound:
            continue  # a case the caller is on neither side of
    return _page_of([r for r in out if _matches(q, {"sent": _when_text(r.get("sent"))})], q)


def _when_text(sent: str | None) -> Callable[[list[str]], bool]:
    return _when(datetime.fromisoformat(sent.replace("Z", "+00:00")) if sent else None)


# -------------------------------------------------------------------------------------------- AuditEvent

AUDIT_PARAMS = {p.name: p for p in (
    Param("patient", "reference", "whose data was touched"),
    Param("subtype", "token", "the platform's action: read, search, create, update, grant, ..."),
    Param("date", "date", "day of the event (eq, ge, le; Beijing days)"),
)}
AUDIT_ROLES = ("system_admin", "auditor", "alliance_admin", "institution_admin")


def _audit_filter(q: Query) -> AuditFilter:
    f = AuditFilter()
    for name, reps in q.params.items():
        for _m, values in reps:
            if name == "patient":
                f.patient_id = reference(values[0], "Patient") or -1
            elif name == "subtype":
                f.action = token(values[0])[1]
            elif name == "date":
                for v in values:
                    prefix, day_ = (v[:2], v[2:]) if v[:2] in ("ge", "le", "eq") else ("eq", v)
                    try:
                        when = date.fromisoformat(day_)
                        if when.year not in YEARS:
                            raise ValueError(day_)
                    except ValueError:
                        raise BadSearch("日期格式无效", fields={"date": v[:50]}) from None
                    if prefix in ("ge", "eq"):
                        f.date_from = when
                    if prefix in ("le", "eq"):
                        f.date_to = when
    return f


def _auditor(subject: Subject) -> None:
    if not subject.has(*AUDIT_ROLES):
        raise Forbidden()


def read_audit_event(db: Session, subject: Subject, id_: str) -> Resource:
    _auditor(subject)
    row = repository.audit_event_visible(db, subject, int_id(id_))
    if row is None:
        raise NotFound()
    return mapping.audit_event(row)


def search_audit_events(db: Session, subject: Subject, q: Query) -> Found:
    """The audit log as the auditor's page shows it (audit.service.search: scoped, the search itself audited)."""
    _auditor(subject)
    page = audit.search(db, subject, _audit_filter(q), q.page, q.count)
    return Found([mapping.audit_event(e) for e in page.items], page.total, page.has_next)


# ------------------------------------------------------------------------------ diagnostics (slice 4)
# Signed reports, lab results and imaging studies are read as the shared record shows them
# (record.service: the viewer's own orders, every member's with the patient's sharing consent, break-glass);
# a search names its patient and reads the record (one audit row with the kinds and entries shown), a read
# opens the order from the record (record.service.open_order: 404 unless the record would show it; audited).

DIAGNOSTIC_PARAMS = {p.name: p for p in (
    Param("patient", "reference", "the patient (required: results are read from the patient's record)"),
    Param("category", "token", "RAD | EC | LAB (v2-0074), or imaging | ecg | lab"),
    Param("code", "token", "the item's code (diagnostic-item) or, for an Observation, the test code (LOINC or local)"),
    Param("date", "date", "when the result was issued or observed, with prefixes"),
)}
IMAGING_PARAMS = {p.name: p for p in (
    Param("patient", "reference", "the patient (required: studies are read from the patient's record)"),
    Param("modality", "token", "CT, MR, DX, US ..."),
)}


def _record_ids(db: Session, subject: Subject, q: Query, kind: str, prefix: str) -> list[int]:
    """Ids of the entries of one kind the patient's shared record shows the caller ([] when not visible)."""
    patients_ = [i for _m, values in q.each("patient") for i in (reference(v, "Patient") for v in values) if i]
    if len(set(patients_)) != 1:
        raise BadSearch("检索参数无效", fields={"patient": "请指定一位患者"})
    try:
        view = record.shared_record(db, subject, patients_[0], kinds=[kind])
    except NotFound:
        return []
    return [int(e.ref.split(":", 1)[1]) for e in view.entries if e.ref.startswith(prefix + ":")]


def _marks(db: Session, orders: list[DiagnosticOrder]) -> dict[int, str]:
    return {oid: mark.label for oid, mark in recognition.hr_marks(db, orders).items()} if orders else {}


def _matches(q: Query, checks: dict[str, Callable[[list[str]], bool]]) -> bool:
    return all(checks[name](values) for name, reps in q.params.items() if name in checks for _m, values in reps)


def _codes_in(have: set[str]) -> Callable[[list[str]], bool]:
    """A token parameter's check against the codes a row has."""
    return lambda values: bool({token(x)[1] for x in values} & have)


def _when(at: datetime | None) -> Callable[[list[str]], bool]:
    return lambda values: date_matches(at, values, "date")


def _page_of(resources: list[Resource], q: Query) -> Found:
    start = (q.page - 1) * q.count
    return Found(resources[start:start + q.count], len(resources), start + q.count < len(resources))


def _category_of(order: DiagnosticOrder) -> set[str]:
    return {order.kind, mapping.REPORT_CATEGORY.get(order.kind, ("OTH",))[0]}


def _reports(db: Session, rows: list[tuple[DxReport, DiagnosticOrder]]) -> list[Resource]:
    marks = _marks(db, [o for _, o in rows])
    results = repository.observation_ids_of(db, [o.id for _, o in rows])
    return [mapping.diagnostic_report(r, o, marks.get(o.id, ""), results.get(o.id, [])) for r, o in rows]


def search_diagnostic_reports(db: Session, subject: Subject, q: Query) -> Found:
    rows = repository.reports_with_orders(db, _record_ids(db, subject, q, "report", "diagnostic_report"))
    kept = [(r, o) for r, o in rows if _matches(q, {
        "category": _codes_in(_category_of(o)), "code": _codes_in({o.item_code}),
        "date": _when(r.signed_at)})]
    return _page_of(_reports(db, kept), q)


def _opened(db: Session, subject: Subject, order: DiagnosticOrder | None, view: str) -> record.OrderDetail:
    if order is None:
        raise NotFound()
    return record.open_order(db, subject, order.patient_id, order.id, view=view)


def read_diagnostic_report(db: Session, subject: Subject, id_: str) -> Resource:
    rows = repository.reports_with_orders(db, [int_id(id_)])
    detail = _opened(db, subject, rows[0][1] if rows else None, "report")
    if detail.report is None or detail.report.id != rows[0][0].id:
        raise NotFound()  # not signed yet: the record shows signed reports only
    return _reports(db, rows)[0]


def _observations(db: Session, rows: list[tuple[LabObservation, DiagnosticOrder]]) -> list[Resource]:
    marks = _marks(db, list({o.id: o for _, o in rows}.values()))
    return [mapping.observation(b, o, marks.get(o.id, "")) for b, o in rows]


def search_observations(db: Session, subject: Subject, q: Query) -> Found:
    rows = repository.observations_with_orders(db, _record_ids(db, subject, q, "lab_result", "lab_observation"))
    kept = [(b, o) for b, o in rows if _matches(q, {
        "category": _codes_in(_category_of(o) | {"laboratory"}), "code": _codes_in({b.code, o.item_code}),
        "date": _when(b.observed_at or b.created_at)})]
    return _page_of(_observations(db, kept), q)


def read_observation(db: Session, subject: Subject, id_: str) -> Resource:
    rows = repository.observations_with_orders(db, [int_id(id_)])
    _opened(db, subject, rows[0][1] if rows else None, "report")
    return _observations(db, rows)[0]


def _studies(db: Session, rows: list[tuple[DxImagingStudy, DiagnosticOrder]]) -> list[Resource]:
    series = repository.series_counts(db, [s.id for s, _ in rows])
    return [mapping.imaging_study(s, o, o.patient_id, series.get(s.id, 0), "/dicomweb") for s, o in rows]


def search_imaging_studies(db: Session, subject: Subject, q: Query) -> Found:
    orders = _record_ids(db, subject, q, "diagnostic_order", "diagnostic_order")
    rows = [(s, o) for s, o in repository.studies_of_orders(db, orders)
            if _matches(q, {"modality": _codes_in({s.modality or ""})})]
    return _page_of(_studies(db, rows), q)


def read_imaging_study(db: Session, subject: Subject, id_: str) -> Resource:
    study = kit.get_or_404(db, DxImagingStudy, int_id(id_))
    rows = repository.studies_of_orders(db, [study.order_id] if study.order_id else [])
    rows = [(s, o) for s, o in rows if s.id == study.id]
    _opened(db, subject, rows[0][1] if rows else None, "images")  # a study in quarantine has no order: 404
    return _studies(db, rows)[0]


# ------------------------------------------------------------------------------------------- CarePlan
# A chronic registry enrolment and its follow-ups, as the shared record shows it (chronic/record.py: the managing
# institution and the patient's family-doctor team read their own; other members with the shared record); a
# search names its patient and reads the record (one audit row), a read decides on the one plan
# (policy.require_entry, audited).

CARE_PLAN_PARAMS = {p.name: p for p in (
    Param("patient", "reference", "the patient (required: plans are read from the patient's record)"),
    Param("status", "token", "active | on-hold | revoked | completed"),
    Param("category", "token", "the registry: hypertension | diabetes_t2 | smi | tb"),
    Param("date", "date", "the plan's period (enrolment to its end when transferred, deceased or closed; open while "
          "under care) against the date, as FHIR searches a Period (eq: overlaps)"),
)}


def _care_plans(db: Session, ids: list[int]) -> list[Resource]:
    regs, follow_ups, teams, doctors = chronic_repo.plan_parts(db, ids)
    events = chronic_repo.plan_events(db, list(regs))
    names = repository.names(db, Institution, {r.institution_id for r in regs.values()})
    return [mapping.care_plan(r, follow_ups[r.id], names.get(r.institution_id, ""), teams.get(r.team_id or 0),
                              doctors.get(r.responsible_user_id or 0), events[r.id]) for i in ids if (r := regs.get(i))]


def _in_period(resource: Resource) -> Callable[[list[str]], bool]:
    """The date check against the plan's period: from its start's Beijing midnight to the midnight after its end."""
    period = resource["period"]
    start = datetime.combine(date.fromisoformat(period["start"]), time(0), tzinfo=clock.SHANGHAI)
    end = datetime.combine(date.fromisoformat(period["end"]) + timedelta(days=1), time(0), tzinfo=clock.SHANGHAI) \
        if "end" in period else None
    return lambda values: period_matches(start, end, values, "date")


def search_care_plans(db: Session, subject: Subject, q: Query) -> Found:
    plans = _care_plans(db, _record_ids(db, subject, q, chronic_record.KIND, "chronic_registration"))
    kept = [r for r in plans if _matches(q, {
        "status": _codes_in({r["status"]}), "category": _codes_in({c["code"] for c in r["category"][0]["coding"]}),
        "date": _in_period(r)})]
    return _page_of(kept, q)


def read_care_plan(db: Session, subject: Subject, id_: str) -> Resource:
    reg = chronic_repo.registration(db, int_id(id_))
    if reg is None:
        raise NotFound()
    involved = frozenset(chronic_repo.plan_involved(db, reg, clock.today_local()))
    policy.require_entry(db, subject, reg.patient_id, involved, action="read", resource_type="chronic_registration",
                         resource_id=reg.id, detail={"view": "fhir.CarePlan"})
    return _care_plans(db, [reg.id])[0]


# ------------------------------------------------------------------------------------------------ Group
# A family-doctor team's contracted residents and an institution's chronic registries (fhir/groups.py), read-only,
# for its own staff and system clients; `Group/{id}/$export` exports their members.

GROUP_PARAMS = {p.name: p for p in (
    Param("_id", "token", "logical id (team-<team>, registry-<institution>-<condition>)"),
    Param("code", "token", "a registry's condition: hypertension | diabetes_t2 | smi | tb"),
)}


def read_group(db: Session, subject: Subject, id_: str) -> Resource:
    return groups.resources(db, subject, [groups.find(db, subject, id_)])[0]


def search_groups(db: Session, subject: Subject, q: Query) -> Found:
    found = [g for g in groups.of_institution(db, subject)
             if _matches(q, {"_id": _codes_in({g.id}), "code": _codes_in({g.condition or ""})})]
    start = (q.page - 1) * q.count
    page = found[start:start + q.count]
    return Found(groups.resources(db, subject, page), len(found), start + q.count < len(found))


# ------------------------------------------------------------------------------------- Patient/$match

GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


@dataclass
class Match:
    patient: Patient
    grade: str  # certain | probable | possible
    score: float  # 0–1 (certain 1; the EMPI's weight mapped onto its auto-link and review thresholds)


def _unit_score(weight: float, rules: Any) -> float:
    span = max(rules.auto_link - rules.review, 1e-9)
    if weight >= rules.auto_link:
        return round(min(0.99, 0.8 + 0.19 * min(1.0, (weight - rules.auto_link) / span)), 3)
    return round(0.5 + 0.3 * max(0.0, (weight - rules.review) / span), 3)


def _parameter(body: Any, name: str) -> Any:
    for p in body.get("parameter") or [] if isinstance(body, dict) else []:
        if isinstance(p, dict) and p.get("name") == name:
            return p
    return None


def match_patients(db: Session, subject: Subject, body: Any) -> list[Match]:
    """Patient/$match on the master patient index: a valid resident ID or a health card held by a person is a
    certain match; otherwise the EMPI's online rules (empi.online.decide) give probable (≥ auto-link) and
    possible (review band) persons. Only persons the caller may see are answered (policy.decide); the
    search is audited with them."""
    parse_resource(body, "Parameters")
    given = _parameter(body, "resource")
    patient = parse_resource(given.get("resource") if given else None, "Patient")
    only_certain = bool((_parameter(body, "onlyCertainMatches") or {}).get("valueBoolean", False))
    count = (_parameter(body, "count") or {}).get("valueInteger") or 10
    if not isinstance(count, int) or not 1 <= count <= 50:
        raise InvalidInput(fields={"count": "应为 1 到 50 的整数"})
    rid = card = None
    for ident in patient.identifier or []:
        authority = mapping.authority_of(ident.system or "")
        if authority == Authority.resident_id and ident.value:
            rid = ident.value.strip().upper()
        elif authority == Authority.health_card and ident.value:
            card = ident.value.strip()
    if rid is not None:
        try:
            rid = validate.resident_id(rid).number
        except ValueError:
            rid = None  # an ID failing its check digit is weak evidence: matched on the other fields
    found: dict[int, Match] = {}
    for authority, value in ((Authority.resident_id, rid), (Authority.health_card, card)):
        owner = patient_repo.identifier_owner(db, authority, value) if value else None
        if owner is not None and owner not in found:
            found[owner] = Match(kit.get_or_404(db, Patient, owner), "certain", 1.0)
    if not only_certain:
        name = " ".join(n.text or "".join([*(n.family and [n.family] or []), *(n.given or [])])
                        for n in patient.name or [])[:50].strip()
        phones = [t.value for t in patient.telecom or [] if t.system in (None, "phone") and t.value]
        demo = online.Demographics(name=name, sex=mapping.SEX_OF_GENDER.get(patient.gender or "", None),
                                   birth_date=patient.birthDate if isinstance(patient.birthDate, date) else None,
                                   phone=phones[0] if phones else None,
                                   address=(patient.address[0].text if patient.address else None), rid=rid)
        rules = matching.fs_rules(online.RULES) if online.RULES.fellegi_sunter else online.RULES
        decision = online.decide(db, demo) if name else online.Decision(None, None)
        scored = ([online.Scored(decision.link_to, 0, decision.score or rules.auto_link, {})]
                  if decision.link_to is not None else []) + decision.review
        for c in scored:
            if c.patient_id not in found:
                grade = "probable" if c.score >= rules.auto_link else "possible"
                found[c.patient_id] = Match(kit.get_or_404(db, Patient, c.patient_id), grade,
                                            _unit_score(c.score, rules))
    visible = [m for m in found.values() if m.patient.active and policy.decide(db, subject, m.patient.id)]
    visible.sort(key=lambda m: -m.score)
    visible = visible[:count]
    audit.record(db, subject, "search", "patient", None,
                 detail={"q": "$match", "results": [m.patient.id for m in visible]})
    return visible


def match_bundle(db: Session, matches: list[Match], base: str) -> Resource:
    identifiers = repository.identifiers_by_patient(db, [m.patient.id for m in matches])
    entries = [{"fullUrl": f"{base}/Patient/{m.patient.id}",
                "resource": mapping.patient(m.patient, identifiers.get(m.patient.id, [])),
                "search": {"extension": [{"url": GRADE, "valueCode": m.grade}], "mode": "match", "score": m.score}}
               for m in matches]
    return compact_bundle({"resourceType": "Bundle", "type": "searchset", "total": len(matches), "entry": entries})


def compact_bundle(bundle: Resource) -> Resource:
    return {k: v for k, v in bundle.items() if v != []}


KINDS: dict[str, Kind] = {k.type: k for k in (
    Kind("Patient", PATIENT_PARAMS, read_patient, search_patients,
         "patients the caller's institution may see (care relationship, grant); reads and searches audited"),
    Kind("Organization", ORG_PARAMS, read_organization, search_organizations,
         "institutions (partOf their alliance) and alliances (id alliance-<n>)"),
    Kind("OrganizationAffiliation", AFFILIATION_PARAMS, read_affiliation, search_affiliations,
         "alliance memberships: role, join and leave dates"),
    Kind("Location", LOCATION_PARAMS, read_location, search_locations, "institution sites"),
    Kind("Practitioner", PRACTITIONER_PARAMS, read_practitioner, search_practitioners, "clinicians"),
    Kind("PractitionerRole", ROLE_PARAMS, read_role, search_roles,
         "home institution (home-<practitioner>) and visiting practice sites (site-<n>, 多点执业)"),
    Kind("Schedule", SCHEDULE_PARAMS, read_schedule, search_schedules,
         "expert, clinic and device schedules at member sites"),
    Kind("Slot", SLOT_PARAMS, read_slot, search_slots,
         "bookable places of a session; meta.tag names the pool (reserved for the alliance's members, or public)"),
    Kind("Appointment", APPOINTMENT_PARAMS, read_appointment, search_appointments,
         "bookings the caller's institution made or will receive; POST on a free Slot books it; PUT moves the "
         "status (cancelled, arrived, noshow) with If-Match", create_appointment, update_appointment),
    Kind("Consent", CONSENT_PARAMS, read_consent, search_consents,
         "sharing consents of the patients the caller may see (scope: one alliance or all members)"),
    Kind("DiagnosticReport", DIAGNOSTIC_PARAMS, read_diagnostic_report, search_diagnostic_reports,
         "signed reports as the patient's shared record shows them (HR mark as a meta tag)"),
    Kind("Observation", DIAGNOSTIC_PARAMS, read_observation, search_observations,
         "lab results as the patient's shared record shows them (HR mark as a meta tag)"),
    Kind("ImagingStudy", IMAGING_PARAMS, read_imaging_study, search_imaging_studies,
         "studies of the orders the patient's shared record shows; images at /dicomweb"),
    Kind("Communication", COMMUNICATION_PARAMS, read_communication, search_communications,
         "teleconsultation messages, for the consultation's two sides"),
    Kind("AuditEvent", AUDIT_PARAMS, read_audit_event, search_audit_events,
         "the audit log, read-only, for auditors and administrators within their scope (IHE BALP style)"),
    Kind("CarePlan", CARE_PLAN_PARAMS, read_care_plan, search_care_plans,
         "chronic care plans (registry enrolments) with their planned follow-ups, as the patient's shared record "
         "shows them"),
    Kind("Group", GROUP_PARAMS, read_group, search_groups,
         "patient groups of the caller's institution: a family-doctor team's contracted residents (team-<n>) and a "
         "chronic registry (registry-<institution>-<condition>); Group/{id}/$export for system clients"),
    Kind("ServiceRequest", REFERRAL_PARAMS, read_service_request, search_service_requests,
         "referrals (up and down) the caller's institution sent or receives"),
    Kind("Task", REFERRAL_PARAMS, read_task, search_tasks,
         "the referral's workflow (HL7 BSeR style): businessStatus is the platform's status; PUT with If-Match "
         "moves it through the state machine (409 when refused)", update=update_task),
)}


# ------------------------------------------------------------------------------- _include / _revinclude

# `Type:param` → (element holding the reference, the referenced type): the common pairs
INCLUDES: dict[str, dict[str, tuple[str, str]]] = {
    "Patient": {"Patient:organization": ("managingOrganization", "Organization")},
    "Organization": {"Organization:partof": ("partOf", "Organization")},
    "PractitionerRole": {"PractitionerRole:practitioner": ("practitioner", "Practitioner"),
                         "PractitionerRole:organization": ("organization", "Organization"),
                         "PractitionerRole:location": ("location", "Location")},
    "Slot": {"Slot:schedule": ("schedule", "Schedule")},
    "Appointment": {"Appointment:patient": ("participant", "Patient"), "Appointment:slot": ("slot", "Slot"),
                    "Appointment:practitioner": ("participant", "Practitioner")},
    "ServiceRequest": {"ServiceRequest:patient": ("subject", "Patient"),
                       "ServiceRequest:requester": ("requester", "Organization")},
    "Task": {"Task:focus": ("focus", "ServiceRequest"), "Task:patient": ("for", "Patient"),
             "Task:owner": ("owner", "Organization")},
    "Consent": {"Consent:patient": ("patient", "Patient")},
    "CarePlan": {"CarePlan:patient": ("subject", "Patient")},
}
# on a search of the key: resources of `Type` whose `param` references a match
REVINCLUDES: dict[str, frozenset[str]] = {
    "Patient": frozenset({"Appointment:patient", "Consent:patient", "Task:patient", "ServiceRequest:patient"}),
    "Practitioner": frozenset({"PractitionerRole:practitioner"}),
    "Organization": frozenset({"PractitionerRole:organization",
                               "OrganizationAffiliation:participating-organization"}),
    "Schedule": frozenset({"Slot:schedule"}),
    "ServiceRequest": frozenset({"Task:focus"}),
}


def _references(value: Any, type_: str) -> list[str]:
    """Every `reference` to `type_` inside an element (a reference, a list, or a structure holding them)."""
    if isinstance(value, list):
        return [r for v in value for r in _references(v, type_)]
    if isinstance(value, dict):
        ref_ = value.get("reference")
        if isinstance(ref_, str) and ref_.startswith(type_ + "/"):
            return [ref_]
        return [r for v in value.values() if isinstance(v, dict | list) for r in _references(v, type_)]
    return []


def included(db: Session, subject: Subject, type_: str, resources: list[Resource], q: Query) -> list[Resource]:
    """The resources `_include` and `_revinclude` ask for, each read through its own kind's read or search (the
    same access rules and audit as a direct request); what the caller may not see is left out."""
    out: dict[str, Resource] = {}
    for spec in q.includes:
        element, target = INCLUDES[type_][spec]
        if not clients.permits(subject.scopes, target, "read"):
            continue  # the token's scopes do not cover the type: not read (nor audited) at all
        for ref_ in dict.fromkeys(r for res in resources for r in _references(res.get(element), target)):
            if ref_ in out:
                continue
            try:
                out[ref_] = KINDS[target].read(db, subject, ref_.split("/", 1)[1])
            except NotFound:
                continue
    ids = [f"{type_}/{r['id']}" for r in resources]
    for spec in q.revincludes:
        source, param = spec.split(":", 1)
        if not ids:
            break
        if not clients.permits(subject.scopes, source, "read"):
            continue
        found = KINDS[source].search(db, subject, Query(params={param: [(None, ids)]}, count=MAX_PER_PAGE))
        for res in found.resources:
            out.setdefault(f"{res['resourceType']}/{res['id']}", res)
    mine = {f"{type_}/{r['id']}" for r in resources}
    return [r for key, r in out.items() if key not in mine]


RECORD_TYPES = ("DiagnosticReport", "Observation", "ImagingStudy", "CarePlan")  # read from the patient's shared record


def everything(db: Session, subject: Subject, id_: str, types: Collection[str] | None = None) -> list[Resource]:
    """Patient/$everything: the patient and what references them — consents, appointments, referrals (as
    ServiceRequest and Task), signed reports, lab results, imaging studies and chronic care plans — each read
    through its own kind's search, so under the same rules and audit as a direct request (the patient itself
    through policy.require_patient: 404 when not visible; the results through the shared record's rules).
    Only the types the subject's scopes cover (and of those, `types` when given) are read at all: a type left out
    is neither queried nor audited."""
    def wanted(type_: str) -> bool:
        return clients.permits(subject.scopes, type_, "read") and (types is None or type_ in types)

    patient = read_patient(db, subject, id_)
    q = Query(revincludes=sorted(r for r in REVINCLUDES["Patient"] if wanted(r.split(":")[0])))
    out = [patient, *included(db, subject, "Patient", [patient], q)]
    for type_ in (t for t in RECORD_TYPES if wanted(t)):
        page = 1
        while True:
            found = KINDS[type_].search(db, subject, Query(params={"patient": [(None, [f"Patient/{patient['id']}"])]},
                                                           count=MAX_PER_PAGE, page=page))
            out += found.resources
            if not found.has_next:
                break
            page += 1
    return out


# ------------------------------------------------------------------------------------ versions (vread, _history)


PAST_VERSIONS = frozenset({"Task"})  # the types whose earlier versions are kept (vread answers them)


def versions(db: Session, kind: Kind, subject: Subject, id_: str) -> list[Resource]:
    """The versions of a resource the caller may read, newest first, each with its meta.versionId: the current
    one (every type: the tables keep no older rows), and for a Task its earlier steps from the referral's history
    (referral_history, append-only)."""
    current = versioned(kind.read(db, subject, id_))[0]
    out = [current]
    if kind.type in PAST_VERSIONS:
        steps = referral_repo.history(db, int(current["id"]))
        earlier = steps[:-1] if steps and steps[-1].to_status == current["businessStatus"]["coding"][0]["code"] \
            else steps
        out += [versioned(mapping.task_at(current, step.to_status, step.at))[0] for step in reversed(earlier)]
    return out


def vread(db: Session, kind: Kind, subject: Subject, id_: str, version: str) -> Resource:
    """One version by its versionId, as it was read (without the id: `wire.versioned` sets it again)."""
    for resource in versions(db, kind, subject, id_):
        if resource["meta"]["versionId"] == version:
            meta = {k: v for k, v in resource["meta"].items() if k != "versionId"}
            return {k: v for k, v in resource.items() if k != "meta"} | ({"meta": meta} if meta else {})
    raise NotFound("该版本不存在")


# ------------------------------------------------------------------------------------ transaction Bundle

TRANSACTION_STATUS = {"POST": "201 Created", "PUT": "200 OK", "GET": "200 OK"}


def _entry(db: Session, subject: Subject, index: int, entry: Any) -> tuple[str, Resource]:
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict) or not isinstance(request.get("url"), str):
        raise BadResource(fields={f"Bundle.entry[{index}].request": "缺少 method 和 url"})
    method, url = str(request.get("method", "")).upper(), request["url"].split("?")[0].strip("/")
    parts = url.split("/")[-2:] if "/" in url else [url]
    kind = KINDS.get(parts[0])
    id_ = parts[1] if len(parts) == 2 else None
    if kind is not None and method == "POST" and id_ is None and kind.create:
        return method, kind.create(db, subject, entry.get("resource"))
    if kind is not None and method == "PUT" and id_ and kind.update:
        if_match = request.get("ifMatch")
        if if_match is not None and not etag_matches(str(if_match), versioned(kind.read(db, subject, id_))[1]):
            raise PreconditionFailed()
        return method, kind.update(db, subject, id_, entry.get("resource"))
    if kind is not None and method == "GET" and id_:
        return method, kind.read(db, subject, id_)
    raise BadResource(fields={f"Bundle.entry[{index}].request": "不支持该操作"})


def transaction(db: Session, subject: Subject, body: Any) -> Resource:
    """All entries in the request's one unit of work: the first refused raises, and the session rolls back what
    the entries before it did (bookings, referral moves); the error names the entry."""
    bundle = parse_resource(body, "Bundle")
    if bundle.type != "transaction":
        raise BadResource(fields={"Bundle.type": "仅支持 transaction"})
    out = []
    for index, entry in enumerate(body.get("entry") or []):
        try:
            method, resource = _entry(db, subject, index, entry)
        except AppError as exc:
            exc.fields = {f"Bundle.entry[{index}]": exc.message, **exc.fields}
            raise
        resource, etag = versioned(resource)
        out.append({"resource": resource, "response": {"status": TRANSACTION_STATUS[method], "etag": etag,
                                                        "location": f"{resource['resourceType']}/{resource['id']}"}})
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": out} if out else \
        {"resourceType": "Bundle", "type": "transaction-response"}
