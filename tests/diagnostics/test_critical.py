"""Critical values: raised by a reader or an HL7 flag, acknowledged, escalated to the department head."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.diagnostics.helpers import dx_world, ordered, received
from yilianti.diagnostics.reading import critical
from yilianti.diagnostics.reading import service as reading
from yilianti.diagnostics.receivers import ingest
from yilianti.exceptions import Conflict, Forbidden, NotFound
from yilianti.kit import clock
from yilianti.models.diagnostics import CriticalValue, InboundMessage, LabObservation
from yilianti.models.outbox import OutboxMessage
from yilianti.models.patient import PatientIdentifier


def _urgent_to(db: Session, user_id: int | None) -> list[str]:
    rows = db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify")).all()
    return [r.payload["title"] for r in rows if r.payload.get("user_id") == user_id and r.payload.get("urgent")]


def test_reader_ticks_critical_ordering_doctor_is_notified_and_acknowledges(db: Session) -> None:
    w = dx_world(db)
    order = received(db, w)
    reading.claim(db, w.reader, order.id)
    reading.sign(db, w.reader, order.id, findings="左侧基底节区高密度影", conclusion="脑出血", critical=True)
    cv = db.scalar(select(CriticalValue).where(CriticalValue.order_id == order.id))
    assert cv is not None and cv.source == "reader" and cv.notified_to_user_id == w.site_doc.user_id
    assert any("危急值" in t for t in _urgent_to(db, w.site_doc.user_id))
    assert db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "diagnostics.critical_value")) is not None
    rows = critical.list_for(db, w.site_doc)
    assert [r.cv.id for r in rows] == [cv.id] and rows[0].can_acknowledge
    assert not critical.list_for(db, w.reader)[0].can_acknowledge  # the centre sees it but cannot acknowledge
    with pytest.raises(Forbidden):  # visible to the reading centre, acknowledged by the ordering site: 403
        critical.acknowledge(db, w.reader, cv.id)
    with pytest.raises(NotFound):  # invisible to an unrelated institution: 404, as for one that does not exist
        critical.acknowledge(db, w.outsider_doc, cv.id)
    with pytest.raises(NotFound):
        critical.acknowledge(db, w.site_doc, cv.id + 1000)
    critical.acknowledge(db, w.site_doc, cv.id, "已电话通知患者立即转诊")
    assert cv.acknowledged_by_user_id == w.site_doc.user_id
    assert critical.list_for(db, w.site_doc) == []
    with pytest.raises(Conflict):
        critical.acknowledge(db, w.site_doc, cv.id)


def test_unacknowledged_value_escalates_to_the_department_head_after_ten_minutes(db: Session) -> None:
    w = dx_world(db)
    order = received(db, w)
    t0 = clock.now()
    with clock.frozen(t0):
        reading.claim(db, w.reader, order.id)
        reading.sign(db, w.reader, order.id, findings="f", conclusion="大面积肺栓塞", critical=True)
    with clock.frozen(t0 + timedelta(minutes=9)):
        assert critical.escalate_overdue(db) == 0
    with clock.frozen(t0 + timedelta(minutes=11)):
        assert critical.escalate_overdue(db) == 1
        assert critical.escalate_overdue(db) == 0  # only once
    cv = db.scalar(select(CriticalValue).where(CriticalValue.order_id == order.id))
    assert cv is not None and cv.escalated_to_user_id == w.head.user_id
    assert any("超时未确认" in t for t in _urgent_to(db, w.head.user_id))


HL7 = "\r".join([
    "MSH|^~\\&|LIS|XHXRMYY|YILIANTI|XH|20261123090000||ORU^R01|{cid}|P|2.5.1",
    "PID|1||{rid}^^^CN-RIC||赵桂兰",
    "OBR|1|{acc}|F-1|LAB-K^血钾",
    "OBX|1|NM|2823-3^血钾^LN||6.8|mmol/L|3.5-5.3|HH|||F",
    "OBX|2|NM|2951-2^血钠^LN||140|mmol/L|137-147|N|||F",
])


def _rid(db: Session, patient_id: int) -> str:
    return db.scalars(select(PatientIdentifier.value).where(PatientIdentifier.patient_id == patient_id)).first() or ""


def test_hl7_hh_flag_raises_a_critical_value_and_final_results(db: Session) -> None:
    w = dx_world(db)
    order = ordered(db, w, item=w.tsh)
    outcome = ingest.ingest_hl7(db, HL7.format(cid="C1", rid=_rid(db, w.patient.id), acc=order.accession_number))
    assert outcome.code == "AA"
    assert order.status == "final" and order.reported_at is not None
    cvs = db.scalars(select(CriticalValue).where(CriticalValue.order_id == order.id)).all()
    assert len(cvs) == 1 and cvs[0].source == "hl7" and "6.8" in cvs[0].value_text
    assert cvs[0].observation_id is not None


def test_unknown_accession_is_quarantined_with_the_suggested_patient_and_resolved_in_one_click(db: Session) -> None:
    w = dx_world(db)
    order = ordered(db, w, item=w.tsh)
    outcome = ingest.ingest_hl7(db, HL7.format(cid="C2", rid=_rid(db, w.patient.id), acc="LIS-99999"))
    assert outcome.code == "AE"
    inbound = db.get(InboundMessage, outcome.inbound_id)
    assert inbound is not None and inbound.status == "quarantined"
    assert inbound.suggested_patient_id == w.patient.id and inbound.patient_identifier
    assert [o.id for o in ingest.candidate_orders(db, w.reader, inbound)] == [order.id]
    ingest.resolve(db, w.reader, inbound.id, order.id)
    assert inbound.status == "resolved" and inbound.order_id == order.id
    assert inbound.resolved_by_user_id == w.reader.user_id
    assert len(db.scalars(select(LabObservation).where(LabObservation.order_id == order.id)).all()) == 2
    assert order.status == "final"
    with pytest.raises(Conflict):
        ingest.resolve(db, w.reader, inbound.id, order.id)


def test_quarantined_message_can_be_rejected_by_a_person(db: Session) -> None:
    w = dx_world(db)
    outcome = ingest.ingest_hl7(db, HL7.format(cid="C3", rid="110105190001010000", acc="NOPE"))
    inbound = db.get(InboundMessage, outcome.inbound_id)
    assert inbound is not None and inbound.suggested_patient_id is None
    ingest.reject_inbound(db, w.reader, inbound.id, "外院误发")
    assert inbound.status == "discarded" and "外院误发" in (inbound.reason or "")


def test_dicom_with_unknown_accession_is_suggested_and_attached(db: Session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pydicom

    from tests.diagnostics.media_helpers import sample
    from yilianti.models.diagnostics import ImagingStudy

    w = dx_world(db)
    order = ordered(db, w)
    ds = pydicom.dcmread(str(sample("CT_small.dcm")))
    ds.AccessionNumber = "PACS-0001"
    ds.PatientID = _rid(db, w.patient.id)
    ds.IssuerOfPatientID = "CN-RIC"
    path = tmp_path / "ct.dcm"
    ds.save_as(str(path))
    outcome = ingest.ingest_dicom(db, ds, path, calling_ae="QUKOU_CT")
    assert outcome.status == "quarantined"
    inbound = db.get(InboundMessage, outcome.inbound_id)
    assert inbound is not None and inbound.suggested_patient_id == w.patient.id
    assert order.status == "ordered"
    ingest.resolve(db, w.reader, inbound.id, order.id)
    study = db.scalar(select(ImagingStudy).where(ImagingStudy.order_id == order.id))
    assert study is not None and study.accession_number == order.accession_number and study.instance_count == 1
    assert inbound.status == "resolved" and order.status == "received"
    # resolved once: a second click is refused
    with pytest.raises(Conflict):
        ingest.resolve(db, w.reader, inbound.id, order.id)
