"""Order → report workflow: ordering, access, worklist, claim, signatures, amendments, TAT."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.diagnostics.helpers import dx_world, ordered, received
from yilianti.authz import policy
from yilianti.diagnostics.orders import workflow
from yilianti.diagnostics.reading import service as reading
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.models.diagnostics import DiagnosticOrderHistory
from yilianti.models.outbox import OutboxMessage


def _titles(db: Session, institution_id: int) -> list[str]:
    rows = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify")).all()
    return [r.payload["title"] for r in rows if r.payload.get("institution_id") == institution_id]


def test_order_takes_the_site_price_and_grants_the_centre_access(db: Session) -> None:
    w = dx_world(db)
    assert policy.decide(db, w.reader, w.patient.id) is None
    order = ordered(db, w, priority="urgent")
    assert order.accession_number.startswith("DX") and len(order.accession_number) == 14
    assert order.price_fen == 16000 and order.fee_standard == "乡镇卫生院"
    assert order.reading_centre_institution_id == w.county.id and order.status == "ordered"
    assert order.due_at == order.ordered_at + timedelta(minutes=120)  # type: ignore[operator]
    assert policy.decide(db, w.reader, w.patient.id) is not None
    assert any("新检查申请" in t for t in _titles(db, w.county.id))
    # a second order gets another accession number
    assert ordered(db, w).accession_number != order.accession_number


def test_ordering_refused_without_price_or_for_an_unknown_patient(db: Session) -> None:
    w = dx_world(db)
    with pytest.raises(NotFound):  # the outsider cannot see the patient
        workflow.place_order(db, w.outsider_doc, patient_id=w.patient.id, item_id=w.ct.id)
    workflow.set_price(db, w.admin, w.ct.id, w.township.id, 0)
    from yilianti.models.diagnostics import ItemPrice
    db.delete(db.scalar(select(ItemPrice).where(ItemPrice.item_id == w.tsh.id)))
    db.flush()
    with pytest.raises(InvalidInput) as err:
        workflow.place_order(db, w.site_doc, patient_id=w.patient.id, item_id=w.tsh.id)
    assert "收费标准" in err.value.fields["item_id"]
    with pytest.raises(Forbidden):
        workflow.set_price(db, w.site_doc, w.ct.id, w.township.id, 100)


def test_full_loop_reader_signs_and_site_sees_final_with_tat(db: Session) -> None:
    w = dx_world(db)
    start = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    with clock.frozen(start):
        order = received(db, w)
    assert order.status == "received" and order.received_at is not None
    rows = reading.worklist(db, w.reader)
    assert [r.order.id for r in rows] == [order.id] and rows[0].patient_name == "赵桂兰"
    assert reading.worklist(db, w.site_doc) == []  # the township has no worklist of its own orders
    with clock.frozen(start + timedelta(minutes=95)):
        reading.claim(db, w.reader, order.id)
        report = reading.sign(db, w.reader, order.id, findings="脑实质未见明显异常密度影。",
                               conclusion="头颅CT平扫未见明显异常。", measurements={"midline_shift_mm": 0})
    assert report.status == "final" and report.signed_by_user_id == w.reader.user_id
    assert order.status == "final" and order.tat_minutes == 95 and order.reported_at is not None
    assert any("已出报告" in t for t in _titles(db, w.township.id))
    mine = workflow.site_orders(db, w.site_doc)
    assert [(r.order.id, r.order.status) for r in mine] == [(order.id, "final")]
    steps = [(h.from_status, h.to_status) for h in workflow.history(db, w.site_doc, order.id)]
    assert steps == [(None, "ordered"), ("ordered", "acquired"), ("acquired", "transmitted"),
                     ("transmitted", "received"), ("received", "claimed"), ("claimed", "final")]
    # the outsider sees nothing of it
    with pytest.raises(NotFound):
        workflow.get(db, w.outsider_doc, order.id)


def test_trainee_report_needs_a_second_signature_by_a_non_trainee(db: Session) -> None:
    w = dx_world(db)
    order = received(db, w)
    reading.claim(db, w.trainee, order.id)
    report = reading.sign(db, w.trainee, order.id, findings="所见", conclusion="初步诊断")
    assert report.status == "preliminary" and order.status == "reported" and order.reported_at is None
    assert [r.order.id for r in reading.worklist(db, w.reader)] == [order.id]  # still to be signed
    with pytest.raises(Forbidden):
        reading.second_sign(db, w.trainee, order.id)
    report = reading.second_sign(db, w.reader, order.id, conclusion="审核后诊断")
    assert report.status == "final" and report.second_signer_user_id == w.reader.user_id
    assert report.conclusion == "审核后诊断" and order.status == "final" and order.reported_at is not None


def test_claim_is_exclusive_and_can_be_released(db: Session) -> None:
    w = dx_world(db)
    order = received(db, w)
    reading.claim(db, w.reader, order.id)
    with pytest.raises(Conflict) as err:
        reading.claim(db, w.reader2, order.id)
    assert err.value.code == "diagnostic_already_claimed"
    with pytest.raises(Conflict):  # the other reader cannot write on it
        reading.save_report(db, w.reader2, order.id, findings="x", conclusion="y")
    with pytest.raises(Forbidden):
        reading.release(db, w.reader2, order.id)
    reading.release(db, w.reader, order.id)
    assert order.status == "received" and order.claimed_by_user_id is None
    reading.claim(db, w.reader2, order.id)
    assert order.claimed_by_user_id == w.reader2.user_id


def test_site_cannot_read_and_centre_cannot_transmit(db: Session) -> None:
    w = dx_world(db)
    order = ordered(db, w)
    with pytest.raises(Forbidden):
        workflow.mark_transmitted(db, w.reader, order.id)
    with pytest.raises(Conflict):  # not received yet
        reading.claim(db, w.reader, order.id)
    workflow.mark_received(db, w.reader, order.id)
    with pytest.raises(Forbidden):
        reading.claim(db, w.site_doc, order.id)
    with pytest.raises(Conflict):  # a stale expected status
        workflow.mark_acquired(db, w.site_doc, order.id, expected_status="ordered")


def test_cancel_ends_the_centre_grant(db: Session) -> None:
    w = dx_world(db)
    order = ordered(db, w)
    with pytest.raises(InvalidInput):
        workflow.cancel(db, w.site_doc, order.id, " ")
    workflow.cancel(db, w.site_doc, order.id, "患者拒绝检查")
    assert order.status == "cancelled"
    assert policy.decide(db, w.reader, w.patient.id) is None


def test_amendment_keeps_the_previous_text_in_history(db: Session) -> None:
    w = dx_world(db)
    order = received(db, w)
    reading.claim(db, w.reader, order.id)
    reading.sign(db, w.reader, order.id, findings="A", conclusion="旧结论")
    report = reading.amend(db, w.reader, order.id, findings="A2", conclusion="新结论", reason="左右侧写错")
    assert report.status == "amended" and report.version == 2 and order.status == "amended"
    last = db.scalars(select(DiagnosticOrderHistory).where(DiagnosticOrderHistory.order_id == order.id)
                      .order_by(DiagnosticOrderHistory.id.desc())).first()
    assert last is not None and last.detail and last.detail["previous"]["conclusion"] == "旧结论"


def test_worklist_puts_stat_first_and_flags_overdue(db: Session) -> None:
    w = dx_world(db)
    t0 = clock.now()
    with clock.frozen(t0):
        routine = received(db, w)
    with clock.frozen(t0 + timedelta(minutes=10)):
        stat = received(db, w, priority="stat")
    with clock.frozen(t0 + timedelta(minutes=180)):
        rows = reading.worklist(db, w.reader)
    assert [r.order.id for r in rows] == [stat.id, routine.id]
    assert rows[1].overdue and rows[1].waiting_minutes == 180


def test_tat_median_and_p90_per_item_and_month(db: Session) -> None:
    w = dx_world(db)
    t0 = clock.now()
    for minutes in (30, 60, 90, 120, 600):
        with clock.frozen(t0):
            order = received(db, w)
        with clock.frozen(t0 + timedelta(minutes=minutes)):
            reading.claim(db, w.reader, order.id)
            reading.sign(db, w.reader, order.id, findings="f", conclusion="c")
    rows = reading.tat_stats(db, w.reader, by="item")
    assert len(rows) == 1 and rows[0].key == "头颅CT平扫" and rows[0].count == 5
    assert rows[0].median == 90 and rows[0].p90 == pytest.approx(408) and rows[0].over_target == 1
    by_centre = reading.tat_stats(db, w.site_doc, by="centre")
    assert by_centre[0].key == w.county.name and by_centre[0].count == 5
    monthly = reading.tat_monthly(db, w.reader)
    assert sum(m.count for m in monthly) == 5 and all(m.key == "" for m in monthly)
    assert reading.tat_stats(db, w.outsider_doc) == []


def test_department_head_assigns_a_study_to_one_reader(db: Session) -> None:
    w = dx_world(db)
    order = received(db, w)
    with pytest.raises(Forbidden):  # a plain reader does not assign
        reading.assign(db, w.reader2, order.id, w.reader.user_id)
    with pytest.raises(NotFound):  # an administrator without a clinical role does not see the study
        reading.assign(db, w.admin, order.id, w.reader2.user_id)
    with pytest.raises(InvalidInput):  # only a reader of the centre
        reading.assign(db, w.reader, order.id, w.site_doc.user_id)
    reading.assign(db, w.reader, order.id, w.reader2.user_id)
    assert order.status == "claimed" and order.claimed_by_user_id == w.reader2.user_id
    with pytest.raises(Conflict):
        reading.claim(db, w.reader, order.id)
    report = reading.sign(db, w.reader2, order.id, findings="f", conclusion="c")
    assert report.signed_by_user_id == w.reader2.user_id
