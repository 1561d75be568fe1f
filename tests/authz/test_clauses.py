"""The access rules are one set of clauses (authz.policy): `decide` (ORM), `readable` (lists), `readable_ids`
(the readable set counted), `shared_readable` (the shared record over many patients), the scalar `basis` of the
booking statement and the `access` CTE of the record / recognition statements must agree on a matrix of care
relationship × grant × booking × consent cases — on SQLite through the ORM, on PostgreSQL also as the text the
hot paths compile (kit/sqlcompile)."""

from __future__ import annotations

import itertools
import re
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.kit import clock
from yilianti.kit.sqlcompile import Params, sql
from yilianti.models.alliance import Membership
from yilianti.models.patient import AccessGrant, CareRelationship, Consent, Patient
from yilianti.models.scheduling import Booking, ClinicSession, Schedule, Slot
from yilianti.scheduling import rules

CARE = ("none", "active", "ended")
GRANT = ("none", "valid", "expired", "revoked", "other_user", "break_glass", "no_shared")
BOOKING = ("none", "upcoming", "cancelled", "old")
CONSENT = ("none", "all", "alliance", "left_alliance", "future_alliance", "withdrawn")


def _expected(care: str, grant: str, booking: str, consent: str) -> tuple[str | None, bool]:
    consent_ok = consent in ("all", "alliance")
    if care == "active":
        return "own", consent_ok
    if grant == "break_glass":
        return "break_glass", True
    if grant == "valid":
        return "grant", consent_ok
    if grant == "no_shared":
        return "grant", False
    if booking == "upcoming":
        return "grant", consent_ok
    return None, False


@pytest.fixture
def world(db: Session) -> dict[str, Any]:
    site = b.institution(db, "判定医院")
    other = b.institution(db, "登记医院")
    current = b.alliance(db, (site, "lead"), (other, "member"))
    left = b.alliance(db, (other, "lead"))
    future = b.alliance(db, (other, "lead"))
    today = clock.today_local()
    db.add_all([Membership(alliance_id=left.id, institution_id=site.id, role="member", joined_on=date(2020, 1, 1),
                           left_on=today),
                Membership(alliance_id=future.id, institution_id=site.id, role="member",
                           joined_on=today + timedelta(days=1))])
    doctor, colleague = b.user(db, site, "doctor"), b.user(db, site, "doctor")
    schedule = Schedule(institution_id=site.id, kind="specialist", name="专家门诊")
    db.add(schedule)
    db.flush()
    return {"site": site, "other": other, "alliances": {"alliance": current, "left_alliance": left,
                                                        "future_alliance": future},
            "subject": b.subject_for(db, doctor), "colleague": colleague, "schedule": schedule}


def _session(db: Session, schedule: Schedule, ends: datetime) -> tuple[ClinicSession, Slot]:
    session = ClinicSession(schedule_id=schedule.id, day=clock.to_local(ends).date(), starts_at=ends - timedelta(hours=4),
                            ends_at=ends, capacity=1)
    db.add(session)
    db.flush()
    slot = Slot(session_id=session.id, seq=1, pool="public", booked=True)
    db.add(slot)
    db.flush()
    return session, slot


def _case(db: Session, w: dict[str, Any], n: int, care: str, grant: str, booking: str, consent: str) -> int:
    now = clock.now()
    site = w["site"].id
    patient = Patient(name=f"矩阵{n}", sex="未知", registered_by_institution_id=w["other"].id)
    db.add(patient)
    db.flush()
    pid = patient.id
    if care != "none":
        db.add(CareRelationship(patient_id=pid, institution_id=site, kind="registered", started_at=now - timedelta(days=9),
                                ended_at=now - timedelta(days=1) if care == "ended" else None))
    if grant != "none":
        db.add(AccessGrant(
            patient_id=pid, institution_id=site, kind="break_glass" if grant == "break_glass" else "referral",
            reason="矩阵", includes_shared=grant != "no_shared", starts_at=now - timedelta(days=2),
            expires_at=now - timedelta(hours=1) if grant == "expired" else now + timedelta(days=3),
            revoked_at=now - timedelta(hours=1) if grant == "revoked" else None, needs_review=False,
            user_id=w["colleague"].id if grant == "other_user" else w["subject"].user_id if n % 2 else None))
    if booking != "none":
        ends = now - timedelta(days=8) if booking == "old" else now + timedelta(days=2)
        session, slot = _session(db, w["schedule"], ends)
        db.add(Booking(number=f"M-{n}-{pid}", session_id=session.id, slot_id=slot.id, patient_id=pid, pool="public",
                       status="cancelled" if booking == "cancelled" else "booked",
                       booked_by_institution_id=w["other"].id, created_at=now))
    if consent != "none":
        alliance = w["alliances"].get(consent)
        db.add(Consent(patient_id=pid, scope="all" if alliance is None else "alliance",
                       alliance_id=alliance.id if alliance is not None else None, granted_at=now - timedelta(days=1),
                       withdrawn_at=now - timedelta(hours=1) if consent == "withdrawn" else None))
    db.flush()
    return pid


def _matrix() -> list[tuple[str, str, str, str]]:
    # every care × grant × booking case, the consents cycling through them; then every consent with care and booking
    cases = [(c, g, bk, CONSENT[i % len(CONSENT)])
             for i, (c, g, bk) in enumerate(itertools.product(CARE, GRANT, BOOKING))]
    cases += [("active", "none", "none", k) for k in CONSENT] + [("none", "none", "upcoming", k) for k in CONSENT]
    return cases


def _access_row(db: Session, subject: Subject, pid: int) -> Any:
    """The `access` CTE through the ORM (any database)."""
    acc = policy.access(pid, subject.acting_institution_id, subject.user_id, clock.now(), clock.today_local())
    return db.execute(select(acc)).one()


_P = Params(patient="bigint", institution="bigint", user="bigint", now="timestamptz", today="date")
_acc = policy.access(_P.patient, _P.institution, _P.user, _P.now, _P.today)
COMPILED = sql(select(_acc.c.basis, _acc.c.includes_shared, _acc.c.consent, _acc.c.grant_id,
                      policy.basis(_P.patient, _P.institution, _P.user, _P.now).label("scalar_basis")).select_from(_acc))


def _compiled_row(db: Session, subject: Subject, pid: int) -> Any:
    """The compiled text the hot paths run, through the driver: `$n` as its named parameters."""
    text = re.sub(r"\$(\d+)", r"%(p\1)s", COMPILED.replace("%", "%%"))
    values = _P.args(patient=pid, institution=subject.acting_institution_id, user=subject.user_id, now=clock.now(),
                     today=clock.today_local())
    return db.connection().exec_driver_sql(text, {f"p{i}": v for i, v in enumerate(values, start=1)}).one()


def test_decide_readable_and_the_compiled_clauses_agree(db: Session, world: dict[str, Any]) -> None:
    subject: Subject = world["subject"]
    inst = subject.acting_institution_id
    cases = {_case(db, world, n, *case): case for n, case in enumerate(_matrix())}
    visible = set(db.scalars(select(Patient.id).where(Patient.id.in_(cases), policy.readable(subject))))
    sharing = set(db.scalars(select(Patient.id).where(Patient.id.in_(cases), policy.shared_readable(subject))))
    ids = policy.readable_ids(subject).subquery()
    assert visible == set(db.scalars(select(ids.c[0]).where(ids.c[0].in_(cases))))  # the counted set: the same
    postgres = db.get_bind().dialect.name == "postgresql"
    for pid, case in cases.items():
        basis, shared = _expected(*case)
        access = policy.decide(db, subject, pid)
        got = (access.basis, access.shared) if access else (None, False)
        assert got == (basis, shared), case
        assert (pid in visible) == (basis is not None), case
        assert (pid in sharing) == shared, case  # the record's rule over many patients (DICOMweb's searches)
        scalar = db.scalar(select(policy.basis(pid, inst, subject.user_id, clock.now())))
        assert scalar == basis, case
        rows = [_access_row(db, subject, pid)]
        if postgres:
            compiled = _compiled_row(db, subject, pid)
            assert compiled.scalar_basis == basis, case
            rows.append(compiled)
        for row in rows:
            assert row.basis == basis, case
            if basis is not None:
                assert policy.shared_of(row.basis, row.includes_shared, row.consent) == shared, case
                assert row.grant_id == (access.grant_id if access else None), case


def test_membership_in_force_is_one_clause(db: Session, world: dict[str, Any]) -> None:
    """`current_on` (SQL) and `Membership.is_current` (Python) agree, and the rules built on it follow it."""
    from yilianti.alliance.repository import current_on

    today = clock.today_local()
    site = world["site"].id
    rows = db.scalars(select(Membership).where(Membership.institution_id == site)).all()
    in_force = set(db.scalars(select(Membership.id).where(Membership.institution_id == site, current_on(today))))
    assert {m.id for m in rows if m.is_current(today)} == in_force
    assert len(rows) == 3 and len(in_force) == 1  # the current alliance; not the one left today, not the future one
    other = world["other"].id
    assert rules.share_alliance(db, site, other)
    for key in ("left_alliance", "future_alliance"):
        alone = b.institution(db)
        db.add(Membership(alliance_id=world["alliances"][key].id, institution_id=alone.id, role="member"))
        db.flush()
        assert not rules.share_alliance(db, site, alone.id), key
