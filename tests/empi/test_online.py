"""Match on every registration, the review queue, do-not-match, merge and unmerge (DOMAIN.md §5b)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from tests import builders as b
from tests.empi.helpers import count, open_candidates, register, world
from yilianti.empi import service as empi
from yilianti.empi.matching import RULES_V4 as CURRENT  # this module matches online by v4 (pytestmark)
from yilianti.exceptions import Conflict, NotFound
from yilianti.models.audit import AuditEvent
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.empi import DoNotMatch, MergeEvent, PatientRecord
from yilianti.models.patient import CareRelationship, Consent, Patient, PatientIdentifier

# built on rules v4's weights and thresholds (v5 has its own: test_rules_v5.py)
pytestmark = pytest.mark.usefixtures("rules_v4")


def test_twins_with_the_same_birth_date_address_and_guardian_phone_stay_two_persons(db):  # type: ignore[no-untyped-def]
    w = world(db)
    a = register(db, w.d_town, "李子涵", guardian_phone="13700001111", phone=None, guardian_name="李强")
    c = register(db, w.d_county, "李子轩", guardian_phone="13700001111", phone=None, guardian_name="李强")
    assert a.patient.id != c.patient.id
    assert c.link == "new" and not c.existing
    assert open_candidates(db) == []  # not even a review: siblings on one phone are the known danger


def test_same_resident_id_with_a_typo_in_the_name_links(db):  # type: ignore[no-untyped-def]
    w = world(db)
    rid = b.resident_id(date(2016, 5, 20), region="131024")
    first = register(db, w.d_town, "赵一鸣", rid=rid, mrn="QK001")
    second = register(db, w.d_child, "赵一明", rid=rid, mrn="BCH9", phone="13611112222", address="北京市西城区南礼士路56号")
    assert second.patient.id == first.patient.id and second.link == "resident_id"
    records = db.scalars(select(PatientRecord).where(PatientRecord.patient_id == first.patient.id)).all()
    assert sorted(r.name for r in records) == ["赵一明", "赵一鸣"]  # each member's registration kept as entered
    cares = set(db.scalars(select(CareRelationship.institution_id)
                           .where(CareRelationship.patient_id == first.patient.id)))
    assert cares == {w.township.id, w.children.id}


def test_same_resident_id_with_a_clearly_different_name_goes_to_review(db):  # type: ignore[no-untyped-def]
    """Neither linked nor refused with an error that would reveal whose ID it is (issue 18): a new person, and
    the pair open in the identity-review queue."""
    w = world(db)
    rid = b.resident_id(date(2016, 5, 20), region="131024")
    first = register(db, w.d_town, "赵一鸣", rid=rid)
    second = register(db, w.d_county, "钱多多", rid=rid)
    assert second.patient.id != first.patient.id
    assert len(open_candidates(db)) == 1


def test_same_details_without_an_id_at_another_member_auto_link(db):  # type: ignore[no-untyped-def]
    w = world(db)
    first = register(db, w.d_town, "孙浩然")
    second = register(db, w.d_county, "孫 浩然")  # traditional character and a space
    assert second.patient.id == first.patient.id and second.link == "score"
    rec = db.scalar(select(PatientRecord).where(PatientRecord.institution_id == w.county.id))
    assert rec.link_method == "score" and rec.link_score >= 15 and rec.rules_version == CURRENT.version


def test_two_different_valid_ids_never_link_even_with_everything_else_equal(db):  # type: ignore[no-untyped-def]
    w = world(db)
    a = register(db, w.d_town, "周明", rid=b.resident_id(date(2016, 5, 20), seq=1))
    c = register(db, w.d_county, "周明", rid=b.resident_id(date(2016, 5, 20), seq=2))
    assert a.patient.id != c.patient.id and open_candidates(db) == []


def _review_pair(db, w):  # type: ignore[no-untyped-def]
    """A homophone name, same birth date and address, another phone: the review band."""
    a = register(db, w.d_town, "王小明", consent="all", mrn="QK100")
    c = register(db, w.d_county, "王晓明", phone="13822223333", mrn="XH200")
    return a, c


def test_uncertain_match_gives_a_new_person_and_an_explained_review_entry(db):  # type: ignore[no-untyped-def]
    w = world(db)
    a, c = _review_pair(db, w)
    assert c.patient.id != a.patient.id and c.review_candidates == 1
    [cand] = open_candidates(db)
    assert 8 <= cand.score < 15 and cand.rules_version == CURRENT.version
    assert cand.explanation["birth_date"] > 0 and cand.explanation["phone"] < 0 and cand.explanation["name"] == 6.0
    views = empi.candidates(db, w.steward)
    assert [v.candidate.id for v in views] == [cand.id]
    assert {views[0].institution, views[0].other_institution} == {"渠口镇卫生院", "香河县人民医院"}


def test_a_steward_of_another_institution_does_not_see_the_candidate(db):  # type: ignore[no-untyped-def]
    w = world(db)
    _review_pair(db, w)
    [cand] = open_candidates(db)
    other = b.institution(db, "无关医院")
    outsider = b.subject_for(db, b.user(db, other, "institution_admin"))
    assert empi.candidates(db, outsider) == []
    with pytest.raises(NotFound):
        empi.confirm(db, outsider, cand.id)


def _rows_of(db, patient_id: int) -> dict[str, set[Any]]:  # type: ignore[no-untyped-def]
    """Every row pointing at the person, found independently per table (what a merge must move)."""
    out: dict[str, set[Any]] = {}
    for table, col, pk in empi.patient_references():
        ids = set(db.scalars(select(pk).where(col == patient_id)))
        if ids:
            out[f"{table.name}.{col.name}"] = ids
    return out


def test_confirm_merges_then_unmerge_restores_every_row(db):  # type: ignore[no-untyped-def]
    w = world(db)
    a, c = _review_pair(db, w)
    db.add(DiagnosticOrder(accession_number="ACC-EMPI-1", patient_id=c.patient.id, ordering_institution_id=w.county.id,
                           kind="lab", item_code="GLU", item_name="血糖"))
    db.flush()
    before_a, before_c = _rows_of(db, a.patient.id), _rows_of(db, c.patient.id)
    assert {"patient_identifier.patient_id", "care_relationship.patient_id", "patient_record.patient_id",
            "diagnostic_order.patient_id"} <= set(before_c)
    [cand] = open_candidates(db)
    event = empi.confirm(db, w.steward, cand.id, note="同一患儿，家长确认")
    assert event is not None and event.survivor_id == a.patient.id and event.merged_id == c.patient.id
    db.expire_all()
    assert _rows_of(db, c.patient.id) == {}
    assert db.get(Patient, c.patient.id).active is False
    mrns = set(db.scalars(select(PatientIdentifier.value).where(PatientIdentifier.patient_id == a.patient.id)))
    assert {"QK100", "XH200"} <= mrns
    assert db.scalar(select(DiagnosticOrder.patient_id).where(DiagnosticOrder.accession_number == "ACC-EMPI-1")) \
        == a.patient.id
    assert count(db, AuditEvent, AuditEvent.action == "empi_merge") == 2
    # a row created on the survivor after the merge stays with the survivor
    db.add(Consent(patient_id=a.patient.id, scope="all", granted_at=event.at))
    db.flush()
    empi.unmerge(db, w.steward, event.id, reason="家长更正：不是同一个孩子")
    db.expire_all()
    after_a, after_c = _rows_of(db, a.patient.id), _rows_of(db, c.patient.id)
    assert after_c == before_c
    assert {k: v for k, v in after_a.items() if k != "consent.patient_id"} == \
        {k: v for k, v in before_a.items() if k != "consent.patient_id"}
    assert len(after_a["consent.patient_id"]) == len(before_a["consent.patient_id"]) + 1
    assert db.get(Patient, c.patient.id).active is True
    assert db.get(MergeEvent, event.id).undone_at is not None
    assert count(db, AuditEvent, AuditEvent.action == "empi_unmerge") == 2
    with pytest.raises(Conflict):
        empi.unmerge(db, w.steward, event.id, reason="再来一次")


def test_reject_adds_do_not_match_and_later_registrations_respect_it(db):  # type: ignore[no-untyped-def]
    w = world(db)
    a, c = _review_pair(db, w)
    [cand] = open_candidates(db)
    dnm = empi.reject(db, w.steward, cand.id, note="双胞胎之一，不同的人")
    assert dnm is not None and {dnm.patient_a_id, dnm.patient_b_id} == {a.patient.id, c.patient.id}
    with pytest.raises(Conflict):
        empi.confirm(db, w.steward, cand.id)
    # the second child comes to 北京儿童医院: auto-links to its own person, and is NOT queued against the first
    third = register(db, w.d_child, "王晓明", phone="13822223333")
    assert third.patient.id == c.patient.id and third.link == "score"
    assert open_candidates(db) == []
    with pytest.raises(Conflict):
        empi.merge(db, w.steward, a.patient.id, c.patient.id, reason="手工合并")
    assert count(db, DoNotMatch) == 1


def test_without_the_do_not_match_the_same_registration_would_be_queued(db):  # type: ignore[no-untyped-def]
    """Control for the test above: the suppression comes from the do-not-match pair."""
    w = world(db)
    a, c = _review_pair(db, w)
    third = register(db, w.d_child, "王晓明", phone="13822223333")
    assert third.patient.id == c.patient.id
    assert len(open_candidates(db)) == 2  # the original pair and the new record against 王小明


def test_a_doctor_cannot_use_the_review_queue(db):  # type: ignore[no-untyped-def]
    from yilianti.exceptions import Forbidden

    w = world(db)
    with pytest.raises(Forbidden):
        empi.candidates(db, w.d_town)


def test_persons_registered_before_the_online_index_are_backfilled_and_found(db):  # type: ignore[no-untyped-def]
    from sqlalchemy import delete

    from yilianti.empi.backfill import backfill

    w = world(db)
    old = register(db, w.d_town, "欧阳娜娜", rid=b.resident_id(date(2016, 5, 20), seq=7, male=False), sex="女")
    db.execute(delete(PatientRecord))  # as before migration 0009
    assert backfill(db.connection()) == 1 and backfill(db.connection()) == 0
    rec = db.scalar(select(PatientRecord))
    assert rec.patient_id == old.patient.id and rec.link_method == "backfill" and rec.name_key == "ouyang|nana"
    again = register(db, w.d_county, "欧阳娜娜", sex="女")  # no ID this time: found by its blocking keys
    assert again.patient.id == old.patient.id and again.link == "score"
