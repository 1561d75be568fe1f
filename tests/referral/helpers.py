"""Builders for referral tests: the scheduling world (lead, community, outsider) plus a patient."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import builders as b
from tests.scheduling.helpers import World, world
from yilianti.models.patient import Patient
from yilianti.models.referral import Referral, ReferralHistory
from yilianti.referral import service
from yilianti.referral.schemas import ReferralIn


def setup(db: Session, tag: str = "") -> tuple[World, Patient]:
    w = world(db, tag=tag)
    patient = b.patient(db, w.comm_doc, name="李小雨")
    return w, patient


def up_data(w: World, patient: Patient, **kw: object) -> ReferralIn:
    data: dict[str, object] = {
        "direction": "up", "patient_id": patient.id, "to_institution_id": w.lead.id,
        "reason": "反复发热咳嗽一周，抗感染治疗效果不佳", "priority": "routine", "target_service": "门诊",
        "summary": {"diagnoses": [{"icd10": "J18.9", "text": "肺炎"}], "key_results": "胸片：右下肺斑片影",
                    "medications": ["阿莫西林"], "allergies": ["青霉素皮试阴性"]},
    }
    data.update(kw)
    return ReferralIn.model_validate(data)


def submitted_up(db: Session, w: World, patient: Patient, **kw: object) -> Referral:
    return service.draft_and_submit(db, w.comm_doc, up_data(w, patient, **kw))


def received_up(db: Session, w: World, patient: Patient, **kw: object) -> Referral:
    ref = submitted_up(db, w, patient, **kw)
    return service.receive(db, w.lead_doc, ref.id)


def history_count(db: Session, referral_id: int) -> int:
    return db.scalar(select(func.count()).select_from(ReferralHistory)
                     .where(ReferralHistory.referral_id == referral_id)) or 0


def book(db: Session, w: World, patient: Patient) -> int:
    from yilianti.scheduling import booking
    from yilianti.scheduling.schemas import BookingIn

    return booking.book(db, w.comm_doc, BookingIn(session_id=w.session.id, patient_id=patient.id)).id


# how to reach each status, step by step (actor: "s" sender, "r" receiver)
def drive(db: Session, w: World, patient: Patient, target: str) -> Referral:
    ref = service.create_draft(db, w.comm_doc, up_data(w, patient))
    paths: dict[str, list[str]] = {
        "draft": [], "submitted": ["submit"], "received": ["submit", "receive"],
        "accepted": ["submit", "receive", "accept"], "rejected": ["submit", "receive", "reject"],
        "returned": ["submit", "receive", "return"], "forwarded": ["submit", "receive", "forward"],
        "scheduled": ["submit", "receive", "accept", "schedule"],
        "arrived": ["submit", "receive", "accept", "schedule", "arrive"],
        "did_not_attend": ["submit", "receive", "accept", "schedule", "dna"],
        "outcome_returned": ["submit", "receive", "accept", "schedule", "arrive", "outcome"],
        "closed": ["submit", "receive", "accept", "schedule", "arrive", "outcome", "close"],
        "cancelled": ["cancel"],
    }
    for step in paths[target]:
        if step == "submit":
            service.submit(db, w.comm_doc, ref.id)
        elif step == "receive":
            service.receive(db, w.lead_doc, ref.id)
        elif step == "accept":
            service.accept(db, w.lead_doc, ref.id)
        elif step == "reject":
            service.reject(db, w.lead_doc, ref.id, "no_bed")
        elif step == "return":
            service.return_with_advice(db, w.lead_doc, ref.id, "建议先完善胸部CT后再转诊")
        elif step == "forward":
            service.forward(db, w.lead_doc, ref.id, w.second.id, "本院床位紧张，转妇幼保健院")
        elif step == "schedule":
            service.schedule(db, w.lead_doc, ref.id, booking_id=book(db, w, patient))
        elif step == "arrive":
            service.arrive(db, w.lead_doc, ref.id, reason="患儿提前到院")  # the booked day is ahead
        elif step == "dna":
            service.did_not_attend(db, w.lead_doc, ref.id)
        elif step == "outcome":
            service.return_outcome(db, w.lead_doc, ref.id, "社区获得性肺炎，已调整抗生素，建议下转康复")
        elif step == "close":
            service.close(db, w.comm_doc, ref.id)
        elif step == "cancel":
            service.cancel(db, w.comm_doc, ref.id, "患者选择自行就医")
    db.refresh(ref)
    assert ref.status == target
    return ref
