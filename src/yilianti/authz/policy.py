"""Who may see a patient's data — one policy for pages, API and member systems (DOMAIN.md §4b).

- A care relationship (registered there, an active referral/consultation/transfer/order,
  a family-doctor contract) lets the institution's clinical staff see its own data.
- With the patient's sharing consent in force for an alliance the institution belongs to
  (or for all), they also see the shared record from every member.
- An explicit, unexpired, unrevoked grant (referral, consultation, break-glass) works like
  a care relationship for its holder until it ends.
- A booking into one of the institution's sessions is its grant for the patient it will
  receive: from the booking until 7 days after the session, ended by cancelling the booking
  (audited as basis "grant", as the booking grant rows that bookings wrote until 2026-11-23;
  those rows stay valid until they expire or the booking is cancelled).
- Everything else is "not found" (404): existence does not leak.
Every decision that lets someone read is audited by the caller through `require_patient`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.config import get_settings
from yilianti.exceptions import Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.models.alliance import Membership
from yilianti.models.patient import (
    AccessGrant,
    CareRelationship,
    Consent,
    ConsentScope,
    GrantKind,
    Patient,
    PatientIdentifier,
)
from yilianti.models.scheduling import Booking, BookingStatus, ClinicSession, Schedule

BOOKING_ACCESS = timedelta(days=7)  # a booking lets its site see the patient until 7 days after the session


def booking_basis_sql(patient: str, institution: str, now: str) -> str:
    """`_booking_basis` as an SQL condition for the hot paths' raw statements (their parameter placeholders,
    or a row's columns). Written as a scalar subquery, not EXISTS: evaluated for many rows (a batch of
    bookings), an EXISTS may be planned as a hash of every booking, built on every execution."""
    return (f"(SELECT true FROM booking b JOIN clinic_session bs ON bs.id = b.session_id "
            f"JOIN schedule bsc ON bsc.id = bs.schedule_id "
            f"WHERE b.patient_id = {patient} AND b.status <> 'cancelled' AND bsc.institution_id = {institution} "
            f"AND bs.ends_at > {now} - interval '{BOOKING_ACCESS.days} days' LIMIT 1) IS NOT NULL")


def access_sql(patient: str, institution: str, user: str, now: str, today: str) -> str:
    """`decide` as SQL for the hot paths' raw statements: CTEs `care`, `gr` and `acc`, where `acc` is one row
    (basis own | break_glass | grant | NULL when not visible, includes_shared, consent in force, grant_id).
    The caller derives `shared` as `decide` does: own → consent; else includes_shared and (break-glass or consent)."""
    return f"""care AS (
  SELECT EXISTS (SELECT 1 FROM care_relationship c WHERE c.patient_id = {patient}
                 AND c.institution_id = {institution} AND c.ended_at IS NULL) AS own
),
gr AS (
  SELECT g.id, g.kind, g.includes_shared FROM access_grant g, care
  WHERE NOT care.own AND g.patient_id = {patient} AND g.institution_id = {institution}
    AND (g.user_id IS NULL OR g.user_id = {user}) AND g.revoked_at IS NULL
    AND g.starts_at <= {now} AND g.expires_at > {now}
  ORDER BY g.expires_at DESC LIMIT 1
),
acc AS (
  SELECT CASE WHEN care.own THEN 'own' WHEN gr.kind = 'break_glass' THEN 'break_glass'
              WHEN gr.kind IS NOT NULL THEN 'grant'
              WHEN {booking_basis_sql(patient, institution, now)} THEN 'grant' END AS basis,
         coalesce(gr.includes_shared, true) AS includes_shared,
         EXISTS (SELECT 1 FROM consent k WHERE k.patient_id = {patient} AND k.withdrawn_at IS NULL
                   AND k.granted_at <= {now}
                   AND (k.scope = 'all' OR (k.scope = 'alliance' AND k.alliance_id IN (
                        SELECT m.alliance_id FROM membership m WHERE m.institution_id = {institution}
                          AND (m.left_on IS NULL OR m.left_on > {today}))))) AS consent,
         gr.id AS grant_id
  FROM care LEFT JOIN gr ON true
)"""


def shared_of(basis: str, includes_shared: bool, consent: bool) -> bool:
    """`decide`'s `shared` from an `access_sql` row: own → consent; a grant → includes_shared and consent;
    break-glass → includes_shared (an emergency sees everything)."""
    if basis == "own":
        return bool(consent)
    return bool(includes_shared) and (basis == "break_glass" or bool(consent))


@dataclass(frozen=True)
class PatientAccess:
    patient_id: int
    basis: str  # own | grant | break_glass
    shared: bool  # the shared record from other members is visible too
    grant_id: int | None = None


def _active_care(subject: Subject) -> ColumnElement[bool]:
    return exists().where(
        CareRelationship.patient_id == Patient.id,
        CareRelationship.institution_id == subject.acting_institution_id,
        CareRelationship.ended_at.is_(None),
    )


def _active_grant(subject: Subject) -> ColumnElement[bool]:
    now = clock.now()
    return exists().where(
        AccessGrant.patient_id == Patient.id,
        AccessGrant.institution_id == subject.acting_institution_id,
        or_(AccessGrant.user_id.is_(None), AccessGrant.user_id == subject.user_id),
        AccessGrant.revoked_at.is_(None),
        AccessGrant.starts_at <= now,
        AccessGrant.expires_at > now,
    )


def _booking_basis(subject: Subject, patient: InstrumentedAttribute[int] | int) -> ColumnElement[bool]:
    """A booking (not cancelled) of the patient into a session of the acting institution that
    ended less than BOOKING_ACCESS ago — what the booking grant row expressed."""
    return exists().where(
        Booking.patient_id == patient,
        Booking.status != BookingStatus.cancelled,
        ClinicSession.id == Booking.session_id,
        ClinicSession.ends_at > clock.now() - BOOKING_ACCESS,
        Schedule.id == ClinicSession.schedule_id,
        Schedule.institution_id == subject.acting_institution_id,
    )


def readable(subject: Subject) -> ColumnElement[bool]:
    """SQL filter on `Patient` for every list or search: the one place scoping is applied."""
    if not subject.is_clinical:
        return and_(Patient.id.is_(None), Patient.id.is_not(None))  # nothing
    return or_(_active_care(subject), _active_grant(subject), _booking_basis(subject, Patient.id))


def consent_in_force(db: Session, patient_id: int, institution_id: int) -> bool:
    today = clock.today_local()
    member_alliances = select(Membership.alliance_id).where(
        Membership.institution_id == institution_id,
        or_(Membership.left_on.is_(None), Membership.left_on > today),
    )
    row = db.scalar(
        select(Consent.id).where(
            Consent.patient_id == patient_id,
            Consent.withdrawn_at.is_(None),
            Consent.granted_at <= clock.now(),
            or_(Consent.scope == ConsentScope.all,
                and_(Consent.scope == ConsentScope.alliance, Consent.alliance_id.in_(member_alliances))),
        ).limit(1)
    )
    return row is not None


def decide(db: Session, subject: Subject, patient_id: int) -> PatientAccess | None:
    if not subject.is_clinical:
        return None
    inst = subject.acting_institution_id
    assert inst is not None
    has_care = db.scalar(
        select(CareRelationship.id).where(
            CareRelationship.patient_id == patient_id,
            CareRelationship.institution_id == inst,
            CareRelationship.ended_at.is_(None),
        ).limit(1)
    )
    if has_care is not None:
        return PatientAccess(patient_id, "own", consent_in_force(db, patient_id, inst))
    now = clock.now()
    grant = db.scalar(
        select(AccessGrant).where(
            AccessGrant.patient_id == patient_id,
            AccessGrant.institution_id == inst,
            or_(AccessGrant.user_id.is_(None), AccessGrant.user_id == subject.user_id),
            AccessGrant.revoked_at.is_(None),
            AccessGrant.starts_at <= now,
            AccessGrant.expires_at > now,
        ).order_by(AccessGrant.expires_at.desc()).limit(1)
    )
    if grant is None:
        if db.scalar(select(_booking_basis(subject, patient_id))):
            return PatientAccess(patient_id, "grant", consent_in_force(db, patient_id, inst))
        return None
    basis = "break_glass" if grant.kind == GrantKind.break_glass else "grant"
    # break-glass is an emergency: it sees everything; other grants honour consent
    shared = grant.includes_shared and (basis == "break_glass" or consent_in_force(db, patient_id, inst))
    return PatientAccess(patient_id, basis, shared, grant.id)


def require_patient(db: Session, subject: Subject, patient_id: int, *, action: str = "read",
                    resource_type: str = "patient", resource_id: object = None,
                    detail: dict | None = None) -> PatientAccess:  # type: ignore[type-arg]
    """Check access to one patient and audit the read; 404 when not visible."""
    access = decide(db, subject, patient_id)
    if access is None:
        raise NotFound()
    audit.record(db, subject, action, resource_type, resource_id if resource_id is not None else patient_id,
                 patient_id=patient_id, basis=access.basis, detail=detail)
    return access


def grant_access(db: Session, actor: Subject | None, *, patient_id: int, institution_id: int, kind: str,
                 reason: str, expires_in: timedelta | None = None, user_id: int | None = None,
                 source: tuple[str, int] | None = None, includes_shared: bool = True) -> AccessGrant:
    """An explicit, expiring, audited grant (referral and consultation create these)."""
    now = clock.now()
    grant = AccessGrant(
        patient_id=patient_id, institution_id=institution_id, user_id=user_id, kind=kind, reason=reason,
        includes_shared=includes_shared,
        source_type=source[0] if source else None, source_id=source[1] if source else None,
        granted_by_user_id=actor.user_id if actor else None, starts_at=now,
        expires_at=now + (expires_in or timedelta(days=get_settings().grant_default_days)),
        needs_review=kind == GrantKind.break_glass,
    )
    db.add(grant)
    db.flush()
    audit.record(db, actor, "grant", "access_grant", grant.id, patient_id=patient_id, reason=reason,
                 detail={"institution_id": institution_id, "kind": kind, "user_id": user_id,
                         "expires_at": grant.expires_at.isoformat()})
    return grant


def end_grants(db: Session, actor: Subject | None, source_type: str, source_id: int) -> int:
    """A cancelled or closed referral/consultation ends its temporary grants."""
    now = clock.now()
    grants = db.scalars(select(AccessGrant).where(
        AccessGrant.source_type == source_type, AccessGrant.source_id == source_id,
        AccessGrant.revoked_at.is_(None))).all()
    for grant in grants:
        grant.revoked_at = now
        audit.record(db, actor, "revoke", "access_grant", grant.id, patient_id=grant.patient_id)
    return len(grants)


def break_glass(db: Session, subject: Subject, authority: str, value: str, reason: str) -> AccessGrant:
    """Emergency access: a clinician without a relationship states a reason; flagged for review.

    The patient is found by an exact identifier (e.g. the full resident ID the patient or
    the ambulance crew gives), never by browsing, so break-glass cannot be used to search.
    """
    if not subject.has("doctor", "nurse", "coordinator"):
        raise Forbidden("只有临床人员可以使用紧急访问")
    if len(reason.strip()) < 10:
        raise InvalidInput(fields={"reason": "请写明紧急访问的理由（至少10个字）"})
    patient_id = db.scalar(select(PatientIdentifier.patient_id).where(
        PatientIdentifier.authority == authority, PatientIdentifier.value == value.strip().upper()))
    if patient_id is None:
        raise NotFound("未找到该证件号对应的患者")
    assert subject.acting_institution_id is not None
    hours = get_settings().break_glass_hours
    return grant_access(db, subject, patient_id=patient_id, institution_id=subject.acting_institution_id,
                        kind=GrantKind.break_glass, reason=reason.strip(), expires_in=timedelta(hours=hours),
                        user_id=subject.user_id)
