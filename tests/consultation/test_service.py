"""Teleconsultation as both sides see it: request, assignment, opinion, conversion, close-out, access, deadlines."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import builders as b
from tests.consultation.helpers import answered, ecg_order, request_data, requested, world
from yilianti.authz import policy
from yilianti.consultation import flows, repository, service
from yilianti.consultation.schemas import AssignIn, CloseOutIn, MessageIn, OpinionIn
from yilianti.consultation.states import Side
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.models.consultation import ConsultationOrder
from yilianti.models.outbox import OutboxMessage
from yilianti.models.patient import AccessGrant
from yilianti.models.referral import Referral


def _titles(db: Session, **match: object) -> list[str]:
    rows = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify")).all()
    return [r.payload["title"] for r in rows if all(r.payload.get(k) == v for k, v in match.items())]


def test_request_without_consent_is_refused(db: Session) -> None:
    w = world(db)
    with pytest.raises(InvalidInput) as exc:
        requested(db, w, consent_confirmed=False)
    assert exc.value.fields == {"consent_confirmed": "请先确认患者（或监护人）已知情同意远程会诊"}
    assert service.worklist(db, w.comm_doc, service.WorklistFilter(Side.requester, "all")) == []


def test_unqualified_expert_is_refused_at_request_and_at_assignment(db: Session) -> None:
    w = world(db)
    with pytest.raises(InvalidInput) as exc:
        requested(db, w, expert_practitioner_ids=[w.junior.id])
    assert exc.value.fields["expert_practitioner_ids"] == "该医师独立执业年限不足，不能承担会诊"
    assert exc.value.message.format(**exc.value.params) == "孙小年：独立执业未满3年，不能承担会诊"
    c = requested(db, w)
    with pytest.raises(InvalidInput) as exc:
        service.assign(db, w.coordinator, c.id, AssignIn(practitioner_ids=[w.junior.id]))
    assert "年限不足" in exc.value.fields["practitioner_ids"] and exc.value.params["years"] == 3
    assert c.status == "requested"
    nurse = b.practitioner(db, w.lead, "周护士", "主管护师", licence=date(2005, 7, 1))
    with pytest.raises(InvalidInput) as exc:
        requested(db, w, expert_practitioner_ids=[nurse.id])
    assert exc.value.fields["expert_practitioner_ids"] == "该人员不是执业医师，不能承担会诊"
    # the form only offers qualified experts
    offered = {p.id for p in service.qualified_experts(db, w.lead.id)}
    assert w.expert.id in offered and w.junior.id not in offered


def test_attachment_of_another_patient_is_refused(db: Session) -> None:
    w = world(db)
    mine, theirs = ecg_order(db, w.community, w.patient), ecg_order(db, w.community, w.other_patient)
    with pytest.raises(InvalidInput) as exc:
        requested(db, w, order_ids=[mine.id, theirs.id])
    assert exc.value.fields["order_ids"] == "该检查属于其他患者，不能作为本会诊的附件"
    assert theirs.accession_number in exc.value.message.format(**exc.value.params)
    c = requested(db, w, order_ids=[mine.id])
    with pytest.raises(InvalidInput):
        service.link_order(db, w.comm_doc, c.id, theirs.id)
    assert [o.id for _, o in repository.orders(db, c.id)] == [mine.id]


def test_econsult_loop_with_ecg_grants_and_close_out(db: Session) -> None:
    w = world(db)
    ecg = ecg_order(db, w.community, w.patient)
    c = requested(db, w, order_ids=[ecg.id])
    assert c.status == "requested" and c.case_no and c.case_no.startswith("HZ")
    assert c.answer_due_at == c.created_at + timedelta(hours=48)
    # the consulted side: the assigner sees it, a doctor not on the case does not, nor does the outsider
    assert [x.id for x in service.worklist(db, w.coordinator, service.WorklistFilter(Side.consultant, "to_assign"))] == [c.id]
    with pytest.raises(NotFound):
        service.get(db, w.lead_doc, c.id)
    with pytest.raises(NotFound):
        service.get(db, w.out_doc, c.id)
    assert policy.decide(db, w.expert_doc, w.patient.id) is None
    with pytest.raises(Forbidden):
        service.assign(db, w.comm_doc, c.id, AssignIn(practitioner_ids=[w.expert.id]))

    service.assign(db, w.coordinator, c.id, AssignIn(practitioner_ids=[w.expert.id]))
    assert c.status == "assigned"
    assert policy.decide(db, w.expert_doc, w.patient.id) is not None  # temporary access for the consultant
    assert policy.decide(db, w.expert2_doc, w.patient.id) is None  # only for the assigned expert
    assert any(c.case_no in t for t in _titles(db, user_id=w.expert_doc.user_id))
    with pytest.raises(NotFound):  # another expert of the lead hospital, not on the case
        service.sign_opinion(db, w.expert2_doc, c.id, OpinionIn(outcome="advice", text="不在本案"))

    service.acknowledge(db, w.expert_doc, c.id)
    assert c.status == "acknowledged"
    service.sign_opinion(db, w.expert_doc, c.id, OpinionIn(outcome="more_info", text="请补充24小时动态心电图结果"))
    assert c.status == "more_info_needed" and c.first_answered_at is not None
    service.post_message(db, w.comm_doc, c.id, MessageIn(body="动态心电图：室早 1200 次/24h，无连发"))
    op = service.sign_opinion(db, w.expert_doc, c.id, OpinionIn(outcome="advice", text="良性室早，3个月后复查"))
    assert c.status == "answered" and c.outcome == "advice" and len(op.signature) == 64
    assert [m.body for m in repository.messages(db, c.id)] == ["动态心电图：室早 1200 次/24h，无连发"]
    with pytest.raises(Forbidden):  # the requester keeps the decision: the expert cannot close
        service.close_out(db, w.expert_doc, c.id, CloseOutIn(rating=5, action_taken="x" * 3, avoided_referral=True))

    # answered: waiting for the requester to close it out (the workbench's count of that tab)
    to_close = service.WorklistFilter(Side.requester, "to_close")
    assert [x.id for x in service.worklist(db, w.comm_doc, to_close)] == [c.id]
    assert service.worklist_count(db, w.comm_doc, Side.requester, "to_close") == 1
    service.close_out(db, w.comm_doc, c.id, CloseOutIn(rating=5, action_taken="社区随访，暂不转诊", avoided_referral=True))
    assert (c.status, c.rating, c.avoided_referral) == ("closed", 5, True)
    assert service.worklist(db, w.comm_doc, to_close) == []
    assert policy.decide(db, w.expert_doc, w.patient.id) is None  # the grant ended with the case
    steps = [(h.from_status, h.to_status) for h in service.history(db, w.comm_doc, c.id)]
    assert steps == [(None, "requested"), ("requested", "assigned"), ("assigned", "acknowledged"),
                     ("acknowledged", "more_info_needed"), ("more_info_needed", "answered"), ("answered", "closed")]
    with pytest.raises(Conflict):
        service.post_message(db, w.comm_doc, c.id, MessageIn(body="还有问题"))


def test_conversion_carries_content_and_leaves_case_converted(db: Session) -> None:
    w = world(db)
    ecg = ecg_order(db, w.community, w.patient)
    c = answered(db, w, outcome="recommend_referral", order_ids=[ecg.id])
    assert policy.decide(db, w.expert_doc, w.patient.id) is not None
    with pytest.raises(Forbidden):
        flows.convert_to_referral(db, w.expert_doc, c.id)
    c, ref = flows.convert_to_referral(db, w.comm_doc, c.id)
    assert c.status == "converted" and c.referral_id == ref.id
    ref = db.get(Referral, ref.id)
    assert ref is not None and (ref.direction, ref.status, ref.patient_id) == ("up", "submitted", w.patient.id)
    assert ref.to_institution_id == w.lead.id and ref.to_department_id == w.cardiology.id
    assert ref.to_practitioner_id == w.expert.id
    assert c.question in ref.reason and "暂不需转诊" in ref.reason and c.case_no in ref.reason
    assert "心率 110" in ref.summary["key_results"] and ecg.accession_number in ref.summary["key_results"]
    # the consultation grant ended; the lead sees the patient now through the referral's own triage grant
    grants = db.scalars(select(AccessGrant).where(AccessGrant.patient_id == w.patient.id)).all()
    assert {(g.source_type, g.revoked_at is None) for g in grants} == {("consultation", False), ("referral", True)}
    with pytest.raises(Conflict):  # converting twice is refused
        flows.convert_to_referral(db, w.comm_doc, c.id)
    assert db.scalar(select(ConsultationOrder.id).where(ConsultationOrder.consultation_id == c.id)) is not None


def test_conversion_is_one_unit_of_work(db: Session) -> None:
    """When the referral cannot be created, the case stays answered (nothing half done)."""
    w = world(db)
    c = answered(db, w)
    w.patient.active = True
    from yilianti.models.alliance import Membership

    for m in db.scalars(select(Membership).where(Membership.institution_id == w.lead.id)):
        m.left_on = clock.today_local()  # the lead left the alliance meanwhile
    db.flush()
    with pytest.raises(InvalidInput), db.begin_nested():
        flows.convert_to_referral(db, w.comm_doc, c.id)
    db.expire_all()
    assert service.get(db, w.comm_doc, c.id)[0].status == "answered"
    assert db.scalar(select(Referral.id).where(Referral.patient_id == w.patient.id)) is None


def test_cancel_ends_grants_and_wrong_moves_conflict(db: Session) -> None:
    w = world(db)
    c = requested(db, w, expert_practitioner_ids=[w.expert.id])
    assert c.status == "assigned"
    with pytest.raises(Conflict):
        service.close_out(db, w.comm_doc, c.id, CloseOutIn(rating=3, action_taken="未答复", avoided_referral=False))
    with pytest.raises(Conflict):
        service.acknowledge(db, w.expert_doc, c.id, expected_status="requested")
    service.cancel(db, w.comm_doc, c.id, "患者已自行就诊")
    assert c.status == "cancelled"
    assert policy.decide(db, w.expert_doc, w.patient.id) is None


def test_mdt_needs_a_time_and_takes_several_experts(db: Session) -> None:
    w = world(db)
    with pytest.raises(InvalidInput) as exc:
        requested(db, w, kind="mdt")
    assert "scheduled_at" in exc.value.fields
    at = clock.now() + timedelta(days=2)
    c = requested(db, w, kind="mdt", scheduled_at=at.isoformat())
    assert c.answer_due_at == at + timedelta(hours=48)
    service.assign(db, w.coordinator, c.id, AssignIn(practitioner_ids=[w.expert.id, w.expert2.id],
                                                     lead_practitioner_id=w.expert2.id))
    roles = {p.practitioner_id: p.role for p in repository.participants(db, c.id)}
    assert roles == {w.expert.id: "member", w.expert2.id: "lead"}
    assert policy.decide(db, w.expert_doc, w.patient.id) is not None
    assert policy.decide(db, w.expert2_doc, w.patient.id) is not None
    e = requested(db, w)
    with pytest.raises(InvalidInput):
        service.assign(db, w.coordinator, e.id, AssignIn(practitioner_ids=[w.expert.id, w.expert2.id]))


def test_deadlines_by_urgency_and_overdue_sweep(db: Session) -> None:
    w = world(db)
    start = clock.now()
    with clock.frozen(start):
        c = requested(db, w, urgency="urgent")
        assert c.answer_due_at == start + timedelta(hours=24)
        assert c.due_at == start + timedelta(hours=6)  # to be assigned within a quarter of the window
        assert service.sweep_overdue(db) == 0
    with clock.frozen(start + timedelta(hours=7)):
        assert service.worklist_counts(db, w.comm_doc, Side.requester)["overdue"] == 1
        assert service.sweep_overdue(db) == 1
        assert service.sweep_overdue(db) == 0  # once per step
        titles = _titles(db, kind="consultation_overdue")
        assert len(titles) == 2 and all("已超时（待分派）" in t for t in titles)
        service.assign(db, w.coordinator, c.id, AssignIn(practitioner_ids=[w.expert.id]))
        assert c.due_at == start + timedelta(hours=12)
    with clock.frozen(start + timedelta(hours=13)):
        assert service.sweep_overdue(db) == 1  # the acknowledgement step is late now: the expert is told
        assert any("已超时（已分派）" in t for t in _titles(db, user_id=w.expert_doc.user_id))


def test_video_link_from_template(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from yilianti.config import get_settings

    w = world(db)
    c = requested(db, w)
    monkeypatch.setattr(get_settings(), "video_url_template", "")
    assert service.video_link(c) is None
    monkeypatch.setattr(get_settings(), "video_url_template", "https://video.example/room/{case_no}")
    assert service.video_link(c) == f"https://video.example/room/{c.case_no}"


def test_request_target_checks(db: Session) -> None:
    w = world(db)
    with pytest.raises(InvalidInput) as exc:
        service.request(db, w.comm_doc, request_data(w, consulted_institution_id=w.outsider.id, department_id=None,
                                                      specialty="心内科"))
    assert exc.value.fields["consulted_institution_id"] == "被邀请机构与本机构不在同一医联体"
    with pytest.raises(NotFound):  # a patient the outsider cannot see
        service.request(db, w.out_doc, request_data(w))


def test_cloud_outpatient_orders_at_the_consulted_centre(db: Session) -> None:
    from yilianti.models.diagnostics import DiagnosticItem, DiagnosticOrder, ItemPrice

    w = world(db)
    ecg = DiagnosticItem(code="ECG12", name="常规12导联心电图", kind="ecg", modality="ECG",
                         reading_centre_institution_id=w.lead.id, expected_tat_minutes=60)
    other = DiagnosticItem(code="CT-H", name="头颅CT平扫", kind="imaging", modality="CT",
                           reading_centre_institution_id=w.community.id)
    db.add_all([ecg, other])
    db.flush()
    db.add_all([ItemPrice(item_id=ecg.id, institution_id=w.community.id, price_fen=2500),
                ItemPrice(item_id=other.id, institution_id=w.community.id, price_fen=9000)])
    db.flush()
    c = requested(db, w, kind="cloud", expert_practitioner_ids=[w.expert.id])
    assert [r.item.id for r in service.orderable_items(db, c)] == [ecg.id]
    with pytest.raises(InvalidInput):
        service.order_exam(db, w.comm_doc, c.id, other.id)
    with pytest.raises(Forbidden):
        service.order_exam(db, w.expert_doc, c.id, ecg.id)
    order = service.order_exam(db, w.comm_doc, c.id, ecg.id)
    assert isinstance(order, DiagnosticOrder)
    assert (order.patient_id, order.ordering_institution_id, order.reading_centre_institution_id) == (
        w.patient.id, w.community.id, w.lead.id)
    assert [(co.purpose, o.id) for co, o in repository.orders(db, c.id)] == [("ordered", order.id)]
    assert c.case_no in (order.clinical_question or "")
