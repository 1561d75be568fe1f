"""Rows → FHIR R4 resources (plain dicts; tests validate each with fhir.resources' R4B models).

Identifier systems name the platform's assigning authorities (models.patient.Authority); a member's record
number has the system `…/sid/mrn/<institution id>` and that institution as assigner. Coded values the platform
keeps in its own vocabulary (institution kind, title, membership role) are codings in the platform's code
systems with the Chinese label as display.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from yilianti.fhir.wire import CODE_SYSTEM, digits
from yilianti.kit import clock
from yilianti.kit.i18n import label
from yilianti.models.alliance import Alliance, Institution, Membership
from yilianti.models.audit import AuditEvent
from yilianti.models.chronic import ChronicFollowUp, ChronicRegistration
from yilianti.models.chronic_registry import ChronicRegistrationEvent
from yilianti.models.consultation import Consultation, ConsultationMessage
from yilianti.models.diagnostics import DiagnosticOrder, LabObservation
from yilianti.models.diagnostics import DiagnosticReport as DxReport
from yilianti.models.diagnostics import ImagingStudy as DxImagingStudy
from yilianti.models.patient import Authority, Consent, Patient, PatientIdentifier
from yilianti.models.referral import Referral
from yilianti.models.scheduling import Booking, ClinicSession, Schedule, Slot
from yilianti.models.workforce import PracticeSite, Practitioner

SID = "https://yilianti.org/fhir/sid/"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
MRN_PREFIX = "MRN:"
# authority → (identifier system, v2-0203 identifier type, its display)
AUTHORITIES: dict[str, tuple[str, str, str]] = {
    Authority.resident_id: (SID + "cn-ric", "NI", "居民身份证"),
    Authority.insurance: (SID + "cn-mi", "SN", "医保号"),
    Authority.health_card: (SID + "cn-ehc", "HC", "电子健康卡"),
    Authority.passport: (SID + "passport", "PPN", "护照"),
}
GENDER = {"男": "male", "女": "female", "未知": "unknown"}
SEX_OF_GENDER = {v: k for k, v in GENDER.items()}
GENDERS = frozenset({"male", "female", "other", "unknown"})
ALLIANCE_PREFIX = "alliance-"


def instant(value: datetime | None) -> str | None:
    """An instant as FHIR writes it (UTC, seconds)."""
    return None if value is None else clock.as_utc(value).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def meta(updated: datetime | None) -> dict[str, Any]:
    return {"lastUpdated": instant(updated)} if updated else {}


def ref(type_: str, id_: object, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"reference": f"{type_}/{id_}"}
    if display:
        out["display"] = display
    return out


def coding(table: str, code: str, kind: str) -> dict[str, Any]:
    """A code of the platform's own vocabulary with its Chinese label (kit.i18n) as display."""
    return {"system": CODE_SYSTEM + table, "code": code, "display": label(kind, code, "zh")}


def compact(resource: dict[str, Any]) -> dict[str, Any]:
    """Drop empty elements (FHIR forbids empty strings, lists and objects)."""
    return {k: v for k, v in resource.items() if v not in (None, "", [], {})}


# ---------------------------------------------------------------------------------------- identifiers


def identifier_system(authority: str) -> str:
    if authority.startswith(MRN_PREFIX):
        return f"{SID}mrn/{authority[len(MRN_PREFIX):]}"
    known = AUTHORITIES.get(authority)
    return known[0] if known else f"{SID}{authority.lower()}"


def authority_of(system: str) -> str | None:
    """The platform's authority an identifier system names (None: a system this server does not assign)."""
    for authority, (known, _, _) in AUTHORITIES.items():
        if system == known:
            return str(authority)
    if system.startswith(SID + "mrn/") and digits(system[len(SID) + 4:]):
        return MRN_PREFIX + system[len(SID) + 4:]
    return None


def identifier(row: PatientIdentifier) -> dict[str, Any]:
    authority = row.authority
    if authority.startswith(MRN_PREFIX):
        out = {"use": "usual", "type": {"coding": [{"system": V2_0203, "code": "MR"}], "text": "病案号"},
               "system": identifier_system(authority), "value": row.value}
        inst = authority[len(MRN_PREFIX):]
        if digits(inst):
            out["assigner"] = ref("Organization", inst)
        return out
    system, type_code, text = AUTHORITIES.get(authority, (identifier_system(authority), "", authority))
    out = {"use": "official", "system": system, "value": row.value}
    if type_code:
        out["type"] = {"coding": [{"system": V2_0203, "code": type_code}], "text": text}
    return out


# -------------------------------------------------------------------------------------------- resources


def patient(p: Patient, identifiers: list[PatientIdentifier]) -> dict[str, Any]:
    contact = None
    if p.guardian_name:
        contact = [compact({"relationship": [{"text": p.guardian_relation}] if p.guardian_relation else None,
                            "name": {"text": p.guardian_name},
                            "telecom": [{"system": "phone", "value": p.guardian_phone}] if p.guardian_phone else None})]
    return compact({
        "resourceType": "Patient", "id": str(p.id), "meta": meta(p.created_at),
        "identifier": [identifier(i) for i in identifiers if i.value],
        "active": bool(p.active),
        "name": [{"use": "official", "text": p.name}],
        "telecom": [{"system": "phone", "value": p.phone, "use": "mobile"}] if p.phone else None,
        "gender": GENDER.get(p.sex, "unknown"),
        "birthDate": day(p.birth_date),
        "address": [compact({"text": p.address, "state": p.province, "city": p.city, "district": p.county,
                             "country": "CN"})] if p.address or p.province else None,
        "contact": contact,
        "managingOrganization": ref("Organization", p.registered_by_institution_id),
    })


def organization(inst: Institution, memberships: list[Membership]) -> dict[str, Any]:
    """An institution; `partOf` the first alliance it is a member of today (all of them: OrganizationAffiliation)."""
    return compact({
        "resourceType": "Organization", "id": str(inst.id), "meta": meta(inst.created_at),
        "identifier": [{"system": SID + "org-registration", "value": inst.code}] if inst.code else None,
        "active": bool(inst.active),
        "type": [{"coding": [coding("institution-kind", inst.kind, "kind")], "text": label("kind", inst.kind, "zh")}],
        "name": inst.name,
        "alias": [inst.short_name] if inst.short_name and inst.short_name != inst.name else None,
        "telecom": [{"system": "phone", "value": inst.phone, "use": "work"}] if inst.phone else None,
        "address": [compact({"text": inst.address, "state": inst.province, "city": inst.city,
                             "district": inst.county, "country": "CN"})],
        "partOf": ref("Organization", f"{ALLIANCE_PREFIX}{memberships[0].alliance_id}") if memberships else None,
    })


def alliance(a: Alliance) -> dict[str, Any]:
    return compact({
        "resourceType": "Organization", "id": f"{ALLIANCE_PREFIX}{a.id}", "meta": meta(a.created_at),
        "identifier": [{"system": SID + "alliance", "value": a.key}],
        "active": bool(a.active),
        "type": [{"coding": [coding("alliance-model", a.model, "model")], "text": "医联体"}],
        "name": a.name,
        "alias": [a.name_en] if a.name_en else None,
    })


def affiliation(m: Membership, today: date) -> dict[str, Any]:
    return compact({
        "resourceType": "OrganizationAffiliation", "id": str(m.id), "meta": meta(m.created_at),
        "active": m.is_current(today),
        "period": compact({"start": day(m.joined_on), "end": day(m.left_on)}),
        "organization": ref("Organization", f"{ALLIANCE_PREFIX}{m.alliance_id}"),
        "participatingOrganization": ref("Organization", m.institution_id),
        "code": [{"coding": [coding("member-role", m.role, "role")]}],
    })


def practitioner(p: Practitioner) -> dict[str, Any]:
    return compact({
        "resourceType": "Practitioner", "id": str(p.id), "meta": meta(p.created_at),
        "identifier": [{"system": SID + "practitioner-licence", "value": p.licence_no}] if p.licence_no else None,
        "active": bool(p.active),
        "name": [{"use": "official", "text": p.name}],
        "telecom": [{"system": "phone", "value": p.phone, "use": "work"}] if p.phone else None,
        "gender": GENDER.get(p.sex or ""),
        "qualification": [{"code": {"coding": [{"system": CODE_SYSTEM + "professional-title", "code": p.title,
                                                "display": p.title}], "text": p.title},
                           "issuer": ref("Organization", p.home_institution_id)}] if p.title else None,
    })


HOME_ROLE, SITE_ROLE = "home-", "site-"
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PERIOD_TIMES = {"am": ("08:00:00", "12:00:00"), "pm": ("13:30:00", "17:30:00")}


def home_role(p: Practitioner, department_name: str | None) -> dict[str, Any]:
    """The practitioner's home institution (多点执业: the first-registered site)."""
    return compact({
        "resourceType": "PractitionerRole", "id": f"{HOME_ROLE}{p.id}", "meta": meta(p.created_at),
        "active": bool(p.active),
        "practitioner": ref("Practitioner", p.id, p.name),
        "organization": ref("Organization", p.home_institution_id),
        "code": [{"text": p.title}] if p.title else None,
        "specialty": [{"text": s} for s in (p.specialty, department_name) if s] or None,
        "location": [ref("Location", p.home_institution_id)],
    })


def site_role(s: PracticeSite, practitioner_name: str, department_name: str | None, today: date) -> dict[str, Any]:
    """A visiting practice site (另一执业地点): weekday and half-day as availableTime, dates as period."""
    available = None
    if s.weekday:
        times = _PERIOD_TIMES.get(s.period)
        slot: dict[str, Any] = {"daysOfWeek": [_WEEKDAYS[s.weekday - 1]]}
        if times:
            slot["availableStartTime"], slot["availableEndTime"] = times
        else:
            slot["allDay"] = True
        available = [slot]
    in_force = (s.starts_on is None or s.starts_on <= today) and (s.ends_on is None or s.ends_on >= today)
    return compact({
        "resourceType": "PractitionerRole", "id": f"{SITE_ROLE}{s.id}", "meta": meta(s.created_at),
        "active": in_force,
        "period": compact({"start": day(s.starts_on), "end": day(s.ends_on)}),
        "practitioner": ref("Practitioner", s.practitioner_id, practitioner_name),
        "organization": ref("Organization", s.institution_id),
        "specialty": [{"text": department_name}] if department_name else None,
        "location": [ref("Location", s.institution_id)],
        "availableTime": available,
        "availabilityExceptions": s.note,
    })


def location(inst: Institution) -> dict[str, Any]:
    """An institution's site (where its sessions are held)."""
    return compact({
        "resourceType": "Location", "id": str(inst.id), "meta": meta(inst.created_at),
        "status": "active" if inst.active else "inactive",
        "name": inst.name,
        "alias": [inst.short_name] if inst.short_name and inst.short_name != inst.name else None,
        "mode": "instance",
        "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                                     "code": "si", "display": "Site"}]},
        "telecom": [{"system": "phone", "value": inst.phone, "use": "work"}] if inst.phone else None,
        "address": compact({"text": inst.address, "state": inst.province, "city": inst.city,
                            "district": inst.county, "country": "CN"}),
        "managingOrganization": ref("Organization", inst.id, inst.name),
    })


# ------------------------------------------------------------------------------ scheduling (slice 3)

APPOINTMENT_STATUS = {"booked": "booked", "arrived": "arrived", "no_show": "noshow", "cancelled": "cancelled"}
SLOT_STATUSES = frozenset({"busy", "free", "busy-unavailable", "busy-tentative", "entered-in-error"})


def slot_times(slot: Slot, session: ClinicSession) -> tuple[datetime, datetime]:
    """A timed slot's own start and an equal share of the session; a slot by number (按序号) is the session."""
    if slot.starts_at is None or not session.capacity:
        return session.starts_at, session.ends_at
    length = (clock.as_utc(session.ends_at) - clock.as_utc(session.starts_at)) / session.capacity
    return slot.starts_at, clock.as_utc(slot.starts_at) + length


def schedule(s: Schedule) -> dict[str, Any]:
    actors = [ref("Location", s.institution_id)]
    if s.practitioner_id:
        actors.insert(0, ref("Practitioner", s.practitioner_id))
    return compact({
        "resourceType": "Schedule", "id": str(s.id), "meta": meta(s.created_at),
        "active": bool(s.active),
        "serviceCategory": [{"coding": [coding("schedule-kind", s.kind, "schedule.kind")]}],
        "specialty": [{"text": s.specialty}] if s.specialty else None,
        "actor": actors,
        "comment": s.name,
    })


def slot(s: Slot, session: ClinicSession, status: str) -> dict[str, Any]:
    """`status` as the caller sees it: free only when the slot is open to the caller's pools (reserved pool: the
    alliance's eligible members)."""
    start, end = slot_times(s, session)
    return compact({
        "resourceType": "Slot", "id": str(s.id),
        "meta": {"tag": [{"system": CODE_SYSTEM + "slot-pool", "code": s.pool,
                          "display": "医联体预留号源" if s.pool == "reserved" else "公共号源"}]},
        "identifier": [{"system": SID + "slot-seq", "value": f"{session.id}-{s.seq}"}],
        "schedule": ref("Schedule", session.schedule_id),
        "status": status,
        "start": instant(start),
        "end": instant(end),
        "comment": f"第{s.seq}号",
    })


def appointment(b: Booking, session: ClinicSession, s: Slot, site_id: int, practitioner_id: int | None
                ) -> dict[str, Any]:
    start, end = slot_times(s, session)
    participants = [{"actor": ref("Patient", b.patient_id), "required": "required", "status": "accepted"},
                    {"actor": ref("Location", site_id), "required": "required", "status": "accepted"}]
    if practitioner_id:
        participants.append({"actor": ref("Practitioner", practitioner_id), "required": "required",
                             "status": "accepted"})
    return compact({
        "resourceType": "Appointment", "id": str(b.id), "meta": meta(b.cancelled_at or b.created_at),
        "identifier": [{"system": SID + "booking-number", "value": b.number}],
        "status": APPOINTMENT_STATUS.get(b.status, "booked"),
        "cancelationReason": {"text": b.cancel_reason} if b.cancel_reason else None,
        "start": instant(start), "end": instant(end),
        "created": instant(b.created_at),
        "slot": [ref("Slot", b.slot_id)],
        "comment": b.note,
        "participant": participants,
    })


# ------------------------------------------------------------------------------ referral (slice 3): BSeR style

# the platform's referral status → Task.status (the exact status travels in Task.businessStatus)
TASK_STATUS = {"draft": "draft", "submitted": "requested", "received": "received", "accepted": "accepted",
               "rejected": "rejected", "returned": "rejected", "scheduled": "in-progress", "arrived": "in-progress",
               "outcome_returned": "in-progress", "closed": "completed", "cancelled": "cancelled",
               "did_not_attend": "failed", "forwarded": "completed"}
# Task.status a client may set → the move it means, where one status means one move
TASK_MOVES = {"requested": "submitted", "received": "received", "accepted": "accepted", "rejected": "rejected",
              "cancelled": "cancelled", "failed": "did_not_attend", "completed": "closed"}
REQUEST_STATUS = {"draft": "draft", "closed": "completed", "forwarded": "completed", "did_not_attend": "completed",
                  "cancelled": "revoked", "rejected": "revoked"}
REQUEST_PRIORITY = {"routine": "routine", "urgent": "urgent", "emergency": "stat"}
REFERRAL_STATUS_SYSTEM = CODE_SYSTEM + "referral-status"
REJECT_SYSTEM = CODE_SYSTEM + "referral-reject"


def service_request(r: Referral) -> dict[str, Any]:
    return compact({
        "resourceType": "ServiceRequest", "id": str(r.id), "meta": meta(r.updated_at),
        "identifier": [{"system": SID + "referral", "value": str(r.id)}],
        "status": REQUEST_STATUS.get(r.status, "active"),
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005",
                                  "display": "Patient referral"}],
                      "text": "上转" if r.direction == "up" else "下转"}],
        "priority": REQUEST_PRIORITY.get(r.priority, "routine"),
        "code": {"text": r.target_service or "转诊"},
        "subject": ref("Patient", r.patient_id),
        "authoredOn": instant(r.submitted_at or r.created_at),
        "requester": ref("Organization", r.from_institution_id),
        "performer": [ref("Practitioner", r.to_practitioner_id)] if r.to_practitioner_id
        else [ref("Organization", r.to_institution_id)],
        "reasonCode": [{"text": r.reason}],
        "replaces": [ref("ServiceRequest", r.linked_referral_id)] if r.linked_referral_id else None,
    })


def task(r: Referral) -> dict[str, Any]:
    reason = r.reject_comment if r.status in ("rejected", "returned") else None
    status_reason: dict[str, Any] | None = None
    if r.reject_code:
        status_reason = {"coding": [coding("referral-reject", r.reject_code, "referral.reject")], "text": reason}
    elif reason:
        status_reason = {"text": reason}
    outputs: list[dict[str, Any]] = []
    if r.booking_id:
        outputs.append({"type": {"text": "预约"}, "valueReference": ref("Appointment", r.booking_id)})
    if r.outcome_note:
        outputs.append({"type": {"text": "诊疗结果"}, "valueString": r.outcome_note})
    return compact({
        "resourceType": "Task", "id": str(r.id), "meta": meta(r.updated_at),
        "basedOn": [ref("ServiceRequest", r.id)],
        "status": TASK_STATUS.get(r.status, "requested"),
        "statusReason": status_reason,
        "businessStatus": {"coding": [{"system": REFERRAL_STATUS_SYSTEM, "code": r.status,
                                       "display": label("referral.status", r.status, "zh")}]},
        "intent": "order",
        "priority": REQUEST_PRIORITY.get(r.priority, "routine"),
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "focus": ref("ServiceRequest", r.id),
        "for": ref("Patient", r.patient_id),
        "authoredOn": instant(r.created_at),
        "lastModified": instant(r.updated_at),
        "requester": ref("Organization", r.from_institution_id),
        "owner": ref("Organization", r.to_institution_id),
        "restriction": {"period": {"end": instant(r.due_at)}} if r.due_at else None,
        "output": outputs or None,
    })


def task_at(current: dict[str, Any], status: str, at: datetime) -> dict[str, Any]:
    """An earlier version of a referral's Task, from one step of its history (referral_history): the status and
    business status it had, modified then; the other elements as they are now (the steps record no more)."""
    earlier = {k: v for k, v in current.items() if k not in ("statusReason", "output", "meta")}
    return compact({**earlier, "meta": meta(at), "status": TASK_STATUS.get(status, "requested"),
                    "businessStatus": {"coding": [{"system": REFERRAL_STATUS_SYSTEM, "code": status,
                                                   "display": label("referral.status", status, "zh")}]},
                    "lastModified": instant(at)})


def consent(c: Consent) -> dict[str, Any]:
    """Sharing consent (共享授权): permit sharing the record with one alliance's members, or with all."""
    actor = None
    if c.alliance_id:
        actor = [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                       "code": "IRCP", "display": "information recipient"}]},
                  "reference": ref("Organization", f"{ALLIANCE_PREFIX}{c.alliance_id}")}]
    return compact({
        "resourceType": "Consent", "id": str(c.id), "meta": meta(c.withdrawn_at or c.created_at),
        "status": "inactive" if c.withdrawn_at else "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}],
                      "text": "医联体内共享诊疗记录"}],
        "patient": ref("Patient", c.patient_id),
        "dateTime": instant(c.granted_at),
        "organization": [ref("Organization", c.recorded_at_institution_id)] if c.recorded_at_institution_id else None,
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": compact({"type": "permit",
                              "period": compact({"start": instant(c.granted_at), "end": instant(c.withdrawn_at)}),
                              "actor": actor}),
    })


_AUDIT_ACTION = {"read": "R", "search": "E", "create": "C", "update": "U", "delete": "D", "grant": "C", "cancel": "U",
                 "revoke": "U", "merge": "U"}


def audit_event(e: AuditEvent) -> dict[str, Any]:
    """One row of the platform's audit log in the style of IHE BALP (read-only)."""
    entities = []
    if e.patient_id:
        entities.append({"what": ref("Patient", e.patient_id),
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
                         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}})
    if e.resource_type and e.resource_id:
        entities.append({"what": {"identifier": {"system": f"{SID}resource/{e.resource_type}",
                                                 "value": e.resource_id}},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"}})
    who: dict[str, Any] = {"display": e.username or "system"}
    if e.user_id:
        who["identifier"] = {"system": SID + "user", "value": str(e.user_id)}
    return compact({
        "resourceType": "AuditEvent", "id": str(e.id),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                 "display": "RESTful Operation"},
        "subtype": [{"system": CODE_SYSTEM + "audit-action", "code": e.action}],
        "action": _AUDIT_ACTION.get(e.action, "E"),
        "recorded": instant(e.at),
        "outcome": "0",
        "purposeOfEvent": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                        "code": "ETREAT"}], "text": e.reason}]
        if e.access_basis == "break_glass" else None,
        "agent": [compact({"who": who, "requestor": True,
                           "network": {"address": e.ip, "type": "2"} if e.ip else None,
                           "policy": [f"{CODE_SYSTEM}access-basis#{e.access_basis}"] if e.access_basis else None})],
        "source": {"observer": ref("Organization", e.acting_institution_id) if e.acting_institution_id
                   else {"display": "Yilianti"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]},
        "entity": entities or None,
    })


# ------------------------------------------------------------------------------ diagnostics (slice 4)

REPORT_CATEGORY = {"imaging": ("RAD", "Radiology"), "ecg": ("EC", "Electrocardiac (e.g., EKG,  EEC, Holter)"),
                   "lab": ("LAB", "Laboratory")}
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBX_STATUS = {"F": "final", "P": "preliminary", "C": "corrected", "X": "cancelled", "R": "registered",
              "I": "registered", "D": "entered-in-error", "W": "entered-in-error", "A": "amended"}
HR_SYSTEM = CODE_SYSTEM + "recognition-mark"


def hr_tag(mark: str) -> dict[str, Any]:
    """The mutual-recognition mark (检查检验结果互认, e.g. "HR 京津冀") as a meta tag, when the result carries one."""
    return {"tag": [{"system": HR_SYSTEM, "code": "HR", "display": mark}]} if mark else {}


def _item_code(order: DiagnosticOrder, loinc: str | None = None) -> dict[str, Any]:
    codings = [{"system": CODE_SYSTEM + "diagnostic-item", "code": order.item_code, "display": order.item_name}]
    if loinc:
        codings.insert(0, {"system": "http://loinc.org", "code": loinc})
    return {"coding": codings, "text": order.item_name}


def diagnostic_report(rp: DxReport, order: DiagnosticOrder, mark: str, observation_ids: list[int]) -> dict[str, Any]:
    code, display = REPORT_CATEGORY.get(order.kind, ("OTH", "Other"))
    return compact({
        "resourceType": "DiagnosticReport", "id": str(rp.id),
        "meta": {**meta(rp.updated_at), **hr_tag(mark)},
        "identifier": [{"system": SID + "accession", "value": order.accession_number}],
        "status": rp.status if rp.status in ("preliminary", "final", "amended") else "partial",
        "category": [{"coding": [{"system": V2_0074, "code": code, "display": display}]}],
        "code": _item_code(order),
        "subject": ref("Patient", order.patient_id),
        "effectiveDateTime": instant(order.acquired_at or order.ordered_at),
        "issued": instant(rp.signed_at),
        "performer": [ref("Organization", order.reading_centre_institution_id or order.ordering_institution_id)],
        "resultsInterpreter": [ref("Practitioner", p) for p in (rp.signed_by_practitioner_id,
                                                                  rp.second_signer_practitioner_id) if p] or None,
        "result": [ref("Observation", i) for i in observation_ids] or None,
        "conclusion": "\n".join(x for x in (rp.findings and f"检查所见：{rp.findings}",
                                             rp.conclusion and f"诊断意见：{rp.conclusion}") if x) or None,
    })


def observation(ob: LabObservation, order: DiagnosticOrder, mark: str) -> dict[str, Any]:
    loinc = ob.code if (ob.code_system or "").upper() in ("LN", "LOINC") else None
    number = None
    try:
        number = float(ob.value) if ob.value and ob.value_type in (None, "NM", "SN") else None
    except ValueError:
        number = None
    value: dict[str, Any] = {}
    if number is not None:
        value["valueQuantity"] = compact({"value": number, "unit": ob.units})
    elif ob.value:
        value["valueString"] = ob.value
    coding = [{"system": "http://loinc.org" if loinc else CODE_SYSTEM + "lab-code", "code": ob.code,
               "display": ob.name}]
    return compact({
        "resourceType": "Observation", "id": str(ob.id),
        "meta": {**meta(ob.created_at), **hr_tag(mark)},
        "status": OBX_STATUS.get((ob.result_status or "F").upper(), "final"),
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [compact(coding[0])], "text": ob.name or ob.code},
        "subject": ref("Patient", order.patient_id),
        "effectiveDateTime": instant(ob.observed_at or order.acquired_at),
        "issued": instant(ob.created_at),
        "performer": [ref("Organization", order.reading_centre_institution_id or order.ordering_institution_id)],
        **value,
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                        "code": ob.abnormal_flags}]}] if ob.abnormal_flags in ("H", "L", "HH", "LL", "N", "A", "AA") else None,
        "referenceRange": [{"text": ob.reference_range}] if ob.reference_range else None,
        "identifier": [{"system": SID + "accession", "value": order.accession_number}],
    })


def imaging_study(s: DxImagingStudy, order: DiagnosticOrder | None, patient_id: int, series: int,
                  dicomweb: str) -> dict[str, Any]:
    return compact({
        "resourceType": "ImagingStudy", "id": str(s.id), "meta": meta(s.received_at),
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{s.study_instance_uid}"},
                       *([{"system": SID + "accession", "value": s.accession_number}] if s.accession_number else [])],
        "status": "available",
        "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": s.modality}]
        if s.modality else None,
        "subject": ref("Patient", patient_id),
        "started": instant(datetime.combine(s.study_date, time(0), tzinfo=clock.SHANGHAI)) if s.study_date else None,
        "numberOfSeries": series or None,
        "numberOfInstances": s.instance_count or None,
        "description": s.description,
        "procedureCode": [{"text": order.item_name}] if order else None,
        "location": None,
        "note": [{"text": f"DICOMweb: {dicomweb}/studies/{s.study_instance_uid}"}],
    })


def communication(m: ConsultationMessage, c: Consultation) -> dict[str, Any]:
    """A message of a teleconsultation (远程会诊), between the requesting site and the consulted one."""
    other = c.consulted_institution_id if m.institution_id == c.requesting_institution_id else c.requesting_institution_id
    return compact({
        "resourceType": "Communication", "id": str(m.id), "meta": meta(m.at),
        "status": "completed",
        "category": [{"coding": [{"system": CODE_SYSTEM + "communication-category", "code": "consultation"}],
                      "text": "远程会诊"}],
        "subject": ref("Patient", c.patient_id),
        "topic": {"text": c.case_no} if c.case_no else None,
        "sent": instant(m.at),
        "sender": ref("Organization", m.institution_id) if m.institution_id else None,
        "recipient": [ref("Organization", other)],
        "payload": [{"contentString": m.body}],
    })


# ------------------------------------------------------------------------------------------- CarePlan
# A chronic registry enrolment (chronic.models: ChronicRegistration) and its follow-ups: the patient's chronic
# care plan. The registry's condition is a contained Condition (ICD-10) the plan addresses; the family-doctor
# team and the responsible doctor a contained CareTeam, its author.

ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
CARE_PLAN_STATUS = {"under_care": "active", "lost": "on-hold", "transferred": "revoked", "deceased": "revoked"}
FOLLOW_UP_STATUS = {"open": "scheduled", "done": "completed"}
CHRONIC_CONDITION_SYSTEM = CODE_SYSTEM + "chronic-condition"


def care_plan(reg: ChronicRegistration, follow_ups: list[ChronicFollowUp], institution: str, team: str | None,
              doctor: str | None, events: list[ChronicRegistrationEvent]) -> dict[str, Any]:
    """`events`: the registration's status and phase changes, oldest first. An ended plan (revoked: transferred or
    deceased; completed: a TB treatment closed) ends on the day of the change that ended it."""
    status = "completed" if reg.condition == "tb" and reg.tb_phase == "completed" \
        else CARE_PLAN_STATUS.get(reg.status, "unknown")
    ending = {("phase", "completed")} if status == "completed" else {("status", reg.status)} if status == "revoked" \
        else set()
    end = max((e.effective_on for e in events if (e.kind, e.to_value) in ending), default=None)
    condition = coding("chronic.condition", reg.condition, "chronic.condition")
    contained: list[dict[str, Any]] = [compact({
        "resourceType": "Condition", "id": "condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "code": {"coding": [{"system": ICD10_SYSTEM, "code": reg.icd10, "display": condition["display"]}],
                 "text": condition["display"]},
        "subject": ref("Patient", reg.patient_id), "recordedDate": day(reg.enrolled_on)})]
    if team or doctor:
        contained.append(compact({
            "resourceType": "CareTeam", "id": "team", "name": team,
            "subject": ref("Patient", reg.patient_id),
            "participant": [{"role": [{"text": "责任医生"}], "member": {"display": doctor}}] if doctor else None,
            "managingOrganization": [ref("Organization", reg.institution_id, institution)]}))
    updated = max([reg.created_at, *(f.created_at for f in follow_ups), *(f.done_at for f in follow_ups if f.done_at),
                   *(e.created_at for e in events)])
    activities = [{"detail": compact({
        "code": {"coding": [coding("chronic.reason", f.reason, "chronic.reason")]},
        "status": FOLLOW_UP_STATUS.get(f.status, "unknown"),
        "scheduledPeriod": {"start": day(f.due_on), "end": day(f.due_on)},
        "location": None,
        "description": f"已随访 {day(f.done_on)}" if f.done_on else None,
        "performer": [ref("Organization", f.institution_id)]})} for f in follow_ups]
    return compact({
        "resourceType": "CarePlan", "id": str(reg.id), "meta": meta(updated), "contained": contained,
        "identifier": [{"system": SID + "chronic-registration", "value": str(reg.id)}],
        "status": status, "intent": "plan",
        "category": [{"coding": [condition], "text": condition["display"]}],
        "title": f"{condition['display']}管理计划",
        "subject": ref("Patient", reg.patient_id),
        "period": compact({"start": day(reg.enrolled_on), "end": day(end) if end else None}),
        "created": instant(reg.created_at),
        "author": {"reference": "#team"} if team or doctor else ref("Organization", reg.institution_id, institution),
        "careTeam": [{"reference": "#team"}] if team or doctor else None,
        "addresses": [{"reference": "#condition", "display": f"{reg.icd10} {condition['display']}"}],
        "activity": activities,
    })


# ------------------------------------------------------------------------------------------------ Group


def group(id_: str, name: str, institution_id: int, institution: str, condition: str | None,
          members: list[int]) -> dict[str, Any]:
    """A group of patients (fhir/groups.py): a family-doctor team's contracted residents, or a registry."""
    code = coding("chronic.condition", condition, "chronic.condition") if condition else None
    return compact({
        "resourceType": "Group", "id": id_, "active": True, "type": "person", "actual": True,
        "code": {"coding": [code], "text": code["display"]} if code else None, "name": name,
        "managingEntity": ref("Organization", institution_id, institution), "quantity": len(members),
        "member": [{"entity": ref("Patient", p)} for p in members],
    })
