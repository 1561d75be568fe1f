"""The down-referral as grassroots sites work (issue 16 item 6): received without a booked slot (walk-in or
a family doctor's home visit), linked to the up-referral it closes, carrying diagnoses, medication,
allergies and the plan; the receiving site records arrival."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.orm import Session

from tests import builders as b
from tests.referral.helpers import drive, setup, up_data
from yilianti.exceptions import Conflict, InvalidInput
from yilianti.models.referral import Referral
from yilianti.referral import service
from yilianti.referral.schemas import ReferralIn
from yilianti.referral.states import Side, Status, moves_for


def _down(db: Session, w, patient, up: Referral) -> Referral:  # type: ignore[no-untyped-def]
    return service.draft_and_submit(db, w.lead_doc, ReferralIn.model_validate({
        "direction": "down", "patient_id": patient.id, "to_institution_id": w.community.id,
        "linked_referral_id": up.id, "reason": "肺炎恢复期，回社区康复随访",
        "summary": {"diagnoses": [{"icd10": "J18.9", "text": "肺炎（恢复期）"}], "medications": ["阿莫西林 0.5g tid"],
                    "allergies": ["青霉素"]},
        "follow_up_plan": {"items": [{"due_in_days": 7, "text": "复查血常规"}]}}))


def test_a_down_referral_closes_its_up_referral_and_arrives_without_a_slot(db: Session) -> None:
    w, patient = setup(db)
    up = drive(db, w, patient, "outcome_returned")
    down = _down(db, w, patient, up)
    db.refresh(up)
    assert up.status == Status.closed  # the down-referral answers it
    assert service.history(db, w.lead_doc, up.id)[-1].reason == f"患者已下转（转诊单 #{down.id}）"
    service.receive(db, w.comm_doc, down.id)
    service.accept(db, w.comm_doc, down.id)
    # the community centre waits for the patient: no slot to book
    assert Status.arrived in moves_for(Status.accepted, "down", Side.receiver)
    assert Status.arrived not in moves_for(Status.accepted, "up", Side.receiver)
    waiting = service.worklist(db, w.comm_doc, service.WorklistFilter(Side.receiver, "awaiting_arrival"))
    assert [r.id for r in waiting] == [down.id]
    with pytest.raises(InvalidInput) as err:
        service.arrive(db, w.comm_doc, down.id)
    assert "arrival_mode" in err.value.fields
    arrived = service.arrive(db, w.comm_doc, down.id, mode="home_visit")
    assert arrived.status == Status.arrived
    assert service.history(db, w.comm_doc, down.id)[-1].detail == {"mode": "home_visit"}


def test_an_up_referral_still_needs_its_slot(db: Session) -> None:
    w, patient = setup(db)
    up = service.draft_and_submit(db, w.comm_doc, up_data(w, patient))
    service.receive(db, w.lead_doc, up.id)
    service.accept(db, w.lead_doc, up.id)
    with pytest.raises(Conflict):
        service.arrive(db, w.lead_doc, up.id, mode="walk_in")


def test_the_community_doctor_records_a_walk_in_on_the_page(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    w, patient = setup(db)
    up = drive(db, w, patient, "outcome_returned")
    down = _down(db, w, patient, up)
    service.receive(db, w.comm_doc, down.id)
    service.accept(db, w.comm_doc, down.id)
    b.login(client, w.comm_doc.username)
    page = client.get(f"/referrals/{down.id}").text
    handover = page.split('id="handover"')[1].split('id="timeline"')[0]
    for text in ("J18.9", "阿莫西林 0.5g tid", "青霉素", "复查血常规", f"#{up.id}"):
        assert text in handover, text
    assert 'id="form-arrive-unbooked"' in page and 'value="home_visit"' in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = client.post(f"/referrals/{down.id}/arrive", data={"csrf_token": csrf, "expected_status": "accepted",
                                                          "arrival_mode": "walk_in"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"]).text
    assert "已登记到诊" in page and "直接到诊（未预约）" in page.split('id="timeline"')[1]
