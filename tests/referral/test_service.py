"""The referral loop as both sides see it: up, down with follow-up tasks, access, races, overdue alerts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.referral.helpers import book, drive, history_count, received_up, setup, submitted_up, up_data
from yilianti.authz import policy
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit.i18n import translate
from yilianti.models.outbox import OutboxMessage
from yilianti.referral import service
from yilianti.referral.schemas import ReferralIn
from yilianti.referral.states import Side


def _notified(db: Session, institution_id: int) -> list[str]:
    rows = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify")).all()
    # titles are i18n codes with params: check what a Chinese reader sees
    return [translate(r.payload["title"], "zh", **(r.payload.get("params") or {}))
            for r in rows if r.payload.get("institution_id") == institution_id]


def test_full_loop_up_then_down_with_follow_up_tasks(db: Session) -> None:
    w, patient = setup(db)
    # the specialist cannot see the patient before accepting
    assert policy.decide(db, w.lead_doc, patient.id) is None
    up = submitted_up(db, w, patient)
    assert up.status == "submitted" and up.due_at is not None
    assert any("已提交" in t for t in _notified(db, w.lead.id))
    assert [r.id for r in service.worklist(db, w.lead_doc, service.WorklistFilter(Side.receiver, "to_triage"))] == [up.id]
    assert [r.id for r in service.worklist(db, w.comm_doc, service.WorklistFilter(Side.sender, "to_triage"))] == [up.id]

    service.receive(db, w.lead_doc, up.id)
    service.accept(db, w.lead_doc, up.id)
    assert policy.decide(db, w.lead_doc, patient.id) is not None  # responsibility moved: access granted
    assert service.worklist_counts(db, w.lead_doc, Side.receiver)["awaiting_booking"] == 1
    booking_id = book(db, w, patient)
    service.schedule(db, w.lead_doc, up.id, booking_id=booking_id)
    assert up.booking_id == booking_id
    assert service.worklist_counts(db, w.comm_doc, Side.sender)["awaiting_arrival"] == 1
    with pytest.raises(InvalidInput) as early:  # the booked day is three days ahead: only with a reason
        service.arrive(db, w.lead_doc, up.id)
    assert "reason" in early.value.fields and early.value.params["day"] == w.day.isoformat()
    service.arrive(db, w.lead_doc, up.id, reason="患儿病情加重，家长提前带来就诊")
    assert service.history(db, w.comm_doc, up.id)[-1].reason == "患儿病情加重，家长提前带来就诊"
    service.return_outcome(db, w.lead_doc, up.id, "社区获得性肺炎，住院7天后好转，建议下转社区康复")
    assert any("已回传结果" in t for t in _notified(db, w.community.id))
    service.close(db, w.comm_doc, up.id)
    steps = [(h.from_status, h.to_status) for h in service.history(db, w.comm_doc, up.id)]
    assert steps == [(None, "draft"), ("draft", "submitted"), ("submitted", "received"), ("received", "accepted"),
                     ("accepted", "scheduled"), ("scheduled", "arrived"), ("arrived", "outcome_returned"),
                     ("outcome_returned", "closed")]
    assert up.due_at is None
    assert [r.id for r in service.worklist(db, w.comm_doc, service.WorklistFilter(Side.sender, "closed"))] == [up.id]

    # the lead refers the patient back down, with a follow-up plan
    down = service.draft_and_submit(db, w.lead_doc, ReferralIn.model_validate({
        "direction": "down", "patient_id": patient.id, "to_institution_id": w.community.id,
        "linked_referral_id": up.id, "reason": "肺炎恢复期，下转社区继续康复", "summary": {
            "diagnoses": [{"icd10": "j18.9", "text": "肺炎（恢复期）"}]},
        "follow_up_plan": {"items": [{"due_in_days": 7, "text": "复查血常规"}, {"due_in_days": 30, "text": "复查胸片"}]},
    }))
    assert down.summary["diagnoses"][0]["icd10"] == "J18.9"
    service.receive(db, w.comm_doc, down.id)
    service.accept(db, w.comm_doc, down.id)
    tasks = service.follow_up_tasks(db, w.comm_doc)
    today = clock.today_local()
    assert [(t.text, t.due_on) for t in tasks] == [("复查血常规", today + timedelta(days=7)),
                                                   ("复查胸片", today + timedelta(days=30))]
    assert all(t.patient_id == patient.id and t.referral_id == down.id for t in tasks)
    assert service.follow_up_tasks(db, w.lead_doc) == []
    service.complete_task(db, w.comm_doc, tasks[0].id)
    assert [t.text for t in service.follow_up_tasks(db, w.comm_doc)] == ["复查胸片"]


def test_validation_changes_nothing(db: Session) -> None:
    w, patient = setup(db)
    with pytest.raises(InvalidInput) as exc:
        service.create_draft(db, w.comm_doc, up_data(w, patient, to_institution_id=w.outsider.id))
    assert "to_institution_id" in exc.value.fields
    with pytest.raises(InvalidInput) as exc:
        service.create_draft(db, w.comm_doc, up_data(w, patient, follow_up_plan={"items": [
            {"due_in_days": 7, "text": "复查"}]}))
    assert "follow_up_plan" in exc.value.fields
    with pytest.raises(ValueError, match="ICD-10"):
        up_data(w, patient, summary={"diagnoses": [{"icd10": "肺炎", "text": "肺炎"}]})
    # a patient the sender cannot see is not found
    other = setup(db, tag="乙")[1]
    with pytest.raises(NotFound):
        service.create_draft(db, w.comm_doc, up_data(w, other))
    assert service.worklist(db, w.comm_doc, service.WorklistFilter(Side.sender)) == []


def test_wrong_side_is_403_and_outsider_is_404(db: Session) -> None:
    w, patient = setup(db)
    ref = received_up(db, w, patient)
    with pytest.raises(Forbidden):
        service.accept(db, w.comm_doc, ref.id)  # the sender cannot accept its own referral
    with pytest.raises(NotFound):
        service.accept(db, w.out_doc, ref.id)
    with pytest.raises(NotFound):
        service.get(db, w.second_doc, ref.id)
    with pytest.raises(Forbidden):
        service.cancel(db, w.lead_doc, ref.id, "接收方不能在此时取消")
    assert ref.status == "received" and history_count(db, ref.id) == 3


def test_expected_status_race_second_gets_409(db: Session) -> None:
    w, patient = setup(db)
    ref = received_up(db, w, patient)
    service.accept(db, w.lead_doc, ref.id, expected_status="received")
    with pytest.raises(Conflict) as exc:
        service.reject(db, w.lead_doc, ref.id, "no_bed", expected_status="received")
    assert exc.value.code == "referral_state_conflict"
    assert ref.status == "accepted" and ref.reject_code is None
    # a stale expectation is refused even when the move itself would be allowed
    with pytest.raises(Conflict):
        service.cancel(db, w.comm_doc, ref.id, "患者改变主意", expected_status="received")


def test_reject_needs_a_coded_reason(db: Session) -> None:
    w, patient = setup(db)
    ref = received_up(db, w, patient)
    with pytest.raises(InvalidInput) as exc:
        service.reject(db, w.lead_doc, ref.id, "other")
    assert "comment" in exc.value.fields
    with pytest.raises(InvalidInput):
        service.reject(db, w.lead_doc, ref.id, "bogus")
    assert ref.status == "received"
    service.reject(db, w.lead_doc, ref.id, "no_capability", "本院无小儿心外科")
    assert (ref.status, ref.reject_code) == ("rejected", "no_capability")
    assert any("已拒绝" in t for t in _notified(db, w.community.id))


def test_cancel_ends_grants(db: Session) -> None:
    w, patient = setup(db)
    ref = received_up(db, w, patient)
    service.accept(db, w.lead_doc, ref.id)
    assert policy.decide(db, w.lead_doc, patient.id) is not None
    service.cancel(db, w.comm_doc, ref.id, "患者已在外院住院")
    assert policy.decide(db, w.lead_doc, patient.id) is None


def test_forward_creates_a_linked_referral_to_another_member(db: Session) -> None:
    w, patient = setup(db)
    ref = received_up(db, w, patient)
    new = service.forward(db, w.lead_doc, ref.id, w.second.id, "本院床位已满，转至妇幼保健院")
    assert ref.status == "forwarded" and ref.forwarded_to_id == new.id
    assert (new.status, new.linked_referral_id, new.from_institution_id, new.to_institution_id) == (
        "submitted", ref.id, w.lead.id, w.second.id)
    assert [r.id for r in service.worklist(db, w.second_doc, service.WorklistFilter(Side.receiver, "to_triage"))] == [new.id]


def test_schedule_rejects_a_booking_of_another_patient(db: Session) -> None:
    w, patient = setup(db)
    ref = drive(db, w, patient, "accepted")
    from tests import builders as b

    other = b.patient(db, w.comm_doc, name="赵小川", resident_id=b.resident_id(seq=7, male=False))
    with pytest.raises(InvalidInput) as exc:
        service.schedule(db, w.lead_doc, ref.id, booking_id=book(db, w, other))
    assert "booking_id" in exc.value.fields and ref.status == "accepted"


def test_overdue_sweep_alerts_both_sides_once_per_step(db: Session) -> None:
    w, patient = setup(db)
    ref = submitted_up(db, w, patient, priority="emergency")
    assert ref.due_at is not None and ref.due_at - clock.now() <= timedelta(minutes=30)
    assert service.sweep_overdue(db) == 0
    later = clock.now() + timedelta(hours=1)
    assert [r.id for r in service.worklist(db, w.comm_doc, service.WorklistFilter(Side.sender, "overdue"))] == []
    assert service.sweep_overdue(db, later) == 1
    assert service.sweep_overdue(db, later + timedelta(minutes=5)) == 0  # once per step
    for inst in (w.community.id, w.lead.id):
        assert sum("已超时" in t for t in _notified(db, inst)) == 1
    # the next step, once overdue, alerts again
    service.receive(db, w.lead_doc, ref.id)
    assert service.sweep_overdue(db, clock.now() + timedelta(hours=2)) == 1
    assert sum("已超时" in t for t in _notified(db, w.lead.id)) == 2


def test_sweep_is_a_registered_periodic_job() -> None:
    from yilianti.worker.runner import PERIODIC, load_job_modules

    load_job_modules()
    assert "referral.sweep_overdue" in PERIODIC


def test_history_is_append_only_at_the_database(db: Session) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    w, patient = setup(db)
    ref = submitted_up(db, w, patient)
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.execute(text("UPDATE referral_history SET to_status = 'closed' WHERE referral_id = :id"), {"id": ref.id})
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.execute(text("DELETE FROM referral_history WHERE referral_id = :id"), {"id": ref.id})
    assert history_count(db, ref.id) == 2
