"""Demo data for patient identity: one child linked across three members, review-queue pairs."""

from __future__ import annotations

from sqlalchemy import select

from yilianti.auth import service as auth_service
from yilianti.demo import empi as demo_empi
from yilianti.models.auth import User
from yilianti.models.empi import MatchCandidate, PatientRecord
from yilianti.models.patient import Patient
from yilianti.record import service as record


def test_linked_child_has_entries_from_three_members_and_the_queue_has_pairs(db):  # type: ignore[no-untyped-def]
    assert demo_empi.is_loaded(db)
    child = db.scalar(select(Patient).where(Patient.name == demo_empi.LINKED_PATIENT))
    methods = {r.link_method for r in db.scalars(select(PatientRecord).where(PatientRecord.patient_id == child.id))}
    assert methods == {"new", "resident_id", "score"}
    user = db.scalar(select(User).where(User.username == "bch-doctor"))
    view = record.shared_record(db, auth_service.build_subject(db, user, None), child.id)
    assert {view.institutions[e.source_institution_id] for e in view.entries} == {
        "渠口镇卫生院", "香河县人民医院", "首都医科大学附属北京儿童医院"}
    assert view.access.shared
    pairs = db.scalars(select(MatchCandidate).where(MatchCandidate.status == "open")).all()
    names = {frozenset((db.get(PatientRecord, c.record_id).name, db.get(PatientRecord, c.other_record_id).name))
             for c in pairs}
    assert {frozenset(("王小明", "王晓明")), frozenset(("张伟",)), frozenset(("李思琪", "李思齐"))} <= names
