"""Critical transfer service: the neonatal timeline, chest-pain indicators, order and access rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.transfer.helpers import dispatched, neonatal_in, tworld
from yilianti.authz import policy
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.models.outbox import OutboxMessage
from yilianti.models.transfer import TransferMilestone
from yilianti.transfer import service
from yilianti.transfer.schemas import AcceptIn, CancelIn, MilestoneIn

START = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)  # 08:30 in Beijing


def _count(db: Session, transfer_id: int) -> int:
    return db.scalar(select(func.count()).select_from(TransferMilestone)
                     .where(TransferMilestone.transfer_id == transfer_id)) or 0


def test_neonatal_transfer_takes_2_h_40_min(db: Session) -> None:
    w = tworld(db)
    with clock.frozen(START):
        t = dispatched(db, w)
        assert t.case_no == "ZY20261120-0001" and t.status == "dispatched"
        # the destination now sees the patient through the transfer grant
        assert policy.decide(db, w.cap_doc, w.patient.id) is not None
        steps = [("team_departed", 10, w.cap_doc), ("arrived_at_origin", 60, w.cap_doc),
                 ("assessed", 25, w.cap_doc), ("departed_with_patient", 10, w.lf_doc),
                 ("arrived", 50, w.cap_doc), ("handed_over", 5, w.cap_doc)]
        for kind, minutes, who in steps:
            clock.advance(timedelta(minutes=minutes))
            service.record_milestone(db, who, t.id, MilestoneIn(kind=kind))  # type: ignore[arg-type]
        view = service.view(db, w.lf_doc, t.id)
    m = view["metrics"]
    assert t.status == "handed_over"
    assert m.total_minutes == 160 and service.duration_parts(m.total_minutes) == (2, 40)
    assert [(leg.kind, leg.minutes_since_previous) for leg in m.legs] == [
        ("requested", None), ("team_departed", 10), ("arrived_at_origin", 60), ("assessed", 25),
        ("departed_with_patient", 10), ("arrived", 50), ("handed_over", 5)]
    assert m.indicators == []  # neonatal transfers have no chest-pain/stroke targets
    assert view["allowed"] == []
    # the other side heard of each step through the outbox
    assert (db.scalar(select(func.count()).select_from(OutboxMessage)) or 0) >= 9


def test_chest_pain_indicators_against_targets(db: Session) -> None:
    w = tworld(db)
    with clock.frozen(START):
        t = dispatched(db, w, network="chest_pain", diagnosis="急性ST段抬高型心肌梗死（下壁）",
                       vitals={"hr": 52, "bp_sys": 92, "bp_dia": 58, "spo2": 95, "gcs": 15})
        fmc = START - timedelta(minutes=20)
        service.record_milestone(db, w.lf_doc, t.id, MilestoneIn(kind="first_medical_contact", at=fmc))
        service.record_milestone(db, w.lf_doc, t.id, MilestoneIn(kind="first_ecg", at=fmc + timedelta(minutes=8)))
        clock.advance(timedelta(minutes=70))
        service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind="door"))
        clock.advance(timedelta(minutes=95))
        service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind="balloon"))
        ind = {i.key: i for i in service.view(db, w.cap_doc, t.id)["metrics"].indicators}
    assert (ind["fmc_to_ecg"].minutes, ind["fmc_to_ecg"].target, ind["fmc_to_ecg"].met) == (8, 10, True)
    assert (ind["door_to_balloon"].minutes, ind["door_to_balloon"].target, ind["door_to_balloon"].met) == (95, 90, False)
    assert ind["door_to_needle"].minutes is None and ind["door_to_needle"].met is None


def test_out_of_order_and_repeated_and_future_milestones_change_nothing(db: Session) -> None:
    w = tworld(db)
    with clock.frozen(START):
        t = dispatched(db, w)
        before = _count(db, t.id)
        with pytest.raises(Conflict) as exc:
            service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind="arrived"))
        assert exc.value.code == "milestone_out_of_order"
        clock.advance(timedelta(minutes=30))
        service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind="team_departed"))
        with pytest.raises(Conflict):
            service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind="team_departed"))
        # late entry earlier than the previous step, and a time in the future
        with pytest.raises(InvalidInput) as bad:
            service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind="arrived_at_origin",
                                                                      at=START + timedelta(minutes=10)))
        assert "at" in bad.value.fields
        with pytest.raises(InvalidInput):
            service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind="arrived_at_origin",
                                                                      at=START + timedelta(hours=2)))
        # chest-pain markers do not belong to a neonatal transfer
        with pytest.raises(InvalidInput):
            service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind="first_ecg"))
        assert _count(db, t.id) == before + 1
        # a late entry between the two is fine
        service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind="arrived_at_origin",
                                                                  at=START + timedelta(minutes=31)))


def test_access_sides_and_cancel(db: Session) -> None:
    w = tworld(db)
    t = service.request(db, w.lf_doc, neonatal_in(w))
    with pytest.raises(NotFound):
        service.get(db, w.out_doc, t.id)
    with pytest.raises(Forbidden):
        service.accept(db, w.lf_doc, t.id, AcceptIn())
    with pytest.raises(Conflict):  # not dispatched yet
        service.record_milestone(db, w.lf_doc, t.id, MilestoneIn(kind="team_departed"))
    service.accept(db, w.cap_doc, t.id, AcceptIn())
    assert t.accepting_physician and t.accepting_practitioner_id is not None
    service.cancel(db, w.lf_doc, t.id, CancelIn(reason="患儿病情好转，暂不转运"))
    assert t.status == "cancelled"
    assert policy.decide(db, w.cap_doc, w.patient.id) is None  # the transfer grant ended
    with pytest.raises(Conflict):
        service.cancel(db, w.lf_doc, t.id, CancelIn(reason="再次取消"))


def test_request_rules(db: Session) -> None:
    w = tworld(db)
    with pytest.raises(InvalidInput) as exc:
        service.request(db, w.lf_doc, neonatal_in(w, destination_institution_id=w.outsider.id))
    assert "destination_institution_id" in exc.value.fields
    with pytest.raises(InvalidInput) as exc:
        service.request(db, w.out_doc, neonatal_in(w, destination_institution_id=w.capital.id))
    assert "patient_id" in exc.value.fields
    with clock.frozen(START):
        first = service.request(db, w.lf_doc, neonatal_in(w))
        second = service.request(db, w.lf_doc, neonatal_in(w))
    assert (first.case_no, second.case_no) == ("ZY20261120-0001", "ZY20261120-0002")
    assert [x.id for x in service.list_for(db, w.cap_doc)] == [second.id, first.id]
