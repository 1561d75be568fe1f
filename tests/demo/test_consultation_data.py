"""The demo teleconsultation and joint-ward data (demo/consultation.py), on the package's one load."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.consultation import repository
from yilianti.demo import loader
from yilianti.kit import clock
from yilianti.models.alliance import Institution
from yilianti.models.auth import User
from yilianti.models.consultation import Consultation, JointWard, JointWardAdmission, RoundRecord
from yilianti.models.referral import Referral


def _inst(db: Session, name: str) -> int:
    return db.scalar(select(Institution.id).where(Institution.name == name))  # type: ignore[return-value]


def test_done_when_ecg_question_answered_in_time_and_a_second_case_converted(db: Session) -> None:
    community, lead = _inst(db, loader.COMMUNITY), _inst(db, loader.LEAD)
    cases = list(db.scalars(select(Consultation).where(Consultation.requesting_institution_id == community,
                                                       Consultation.consulted_institution_id == lead)
                            .order_by(Consultation.id)))
    a, b = cases[0], cases[1]
    expert = db.scalar(select(User).where(User.username == "tj-lead-doctor"))
    assert expert is not None
    # A: ECG of the same patient attached, signed by the 天津市儿童医院 expert within the deadline
    [(link, order)] = repository.orders(db, a.id)
    assert order.kind == "ecg" and order.patient_id == a.patient_id and link.purpose == "attachment"
    from yilianti.diagnostics.ecg import service as ecg

    rec = ecg.latest(db, order.id)
    assert rec is not None and len(rec.leads) == 12  # a real 12-lead waveform for the viewer
    [opinion] = repository.opinions(db, a.id)
    assert opinion.practitioner_id == expert.practitioner_id and len(opinion.signature) == 64
    assert a.first_answered_at is not None and a.answer_due_at is not None
    assert a.first_answered_at <= a.answer_due_at
    assert (a.status, a.avoided_referral, a.rating) == ("closed", True, 5)
    # B: converted into an up-referral carrying the question
    ref = db.get(Referral, b.referral_id)
    assert b.status == "converted" and ref is not None and ref.status == "submitted"
    assert ref.to_institution_id == lead and b.question in ref.reason
    # the report counts both
    rows = repository.figures(db, clock.today_local().replace(month=1, day=1), clock.today_local(), by="member",
                           institution_ids=[community])
    [row] = [r for r in rows if r.key == str(community)]
    assert row.avoided >= 1 and row.converted >= 1 and row.within_deadline >= 1


def test_joint_ward_rounds_by_both_teams(db: Session) -> None:
    ward = db.scalar(select(JointWard).where(JointWard.institution_id == _inst(db, loader.COMMUNITY)))
    assert ward is not None and ward.lead_institution_id == _inst(db, loader.LEAD)
    adm = db.scalar(select(JointWardAdmission).where(JointWardAdmission.joint_ward_id == ward.id))
    assert adm is not None
    teams = [r.team for r in db.scalars(select(RoundRecord).where(RoundRecord.admission_id == adm.id)
                                        .order_by(RoundRecord.at))]
    assert teams == ["local", "lead"]
