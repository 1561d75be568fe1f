"""Demo data for patient identity and the shared record (issue 5), made through the services.

- One child, 陈思远, known at three members: registered with her resident ID at 渠口镇卫生院
  (consent to share with all members; a blood count), then at 香河县人民医院 (same ID →
  the same person; a chest X-ray with a signed report), then at 北京儿童医院 without the ID
  card (same name, birth date, phone and address → linked by score; an ultrasound report).
  Log in as bch-doctor, open the patient and "共享健康档案": every member's entries, labelled.
- Three review-queue pairs (a homophone name with another phone, a common name with day and
  month swapped, a homophone with no phone) between these members, for `admin` at /empi/review.
`load(db)` flushes, never commits, and records the marker audit event ("demo_load_empi").
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import service as auth_service
from yilianti.authz.subject import Subject
from yilianti.demo import loader
from yilianti.kit import clock
from yilianti.models.alliance import Institution
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import User
from yilianti.models.diagnostics import DiagnosticOrder, DiagnosticReport, LabObservation
from yilianti.patients import service as patient_service

__all__ = ["LINKED_PATIENT", "MARKER_ACTION", "PATIENTS", "WITHOUT_ID", "is_loaded", "load"]

MARKER_ACTION = "demo_load_empi"
LINKED_PATIENT = "陈思远"
PATIENTS = 1 + 6  # the linked child, then the six registrations of the review-queue pairs
WITHOUT_ID = 6  # the review-queue pairs were registered without a resident ID (else they could not be uncertain)
TOWNSHIP, COUNTY, BCH = loader.TOWNSHIP, loader.COUNTY, "首都医科大学附属北京儿童医院"
HOME = "河北省廊坊市香河县渠口镇王店子村东街18号"


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION,
                                                 AuditEvent.resource_type == loader.MARKER_RESOURCE).limit(1)) is not None


def _at(days_ago: int, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(clock.today_local() - timedelta(days=days_ago), time(hh, mm), clock.SHANGHAI)


def _subject(db: Session, username: str, institution: Institution) -> Subject | None:
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        return None
    return auth_service.build_subject(db, user, institution.id)


def _register(db: Session, who: Subject, at: datetime, **data: Any) -> int:
    payload = {"consent_scope": "none", **data}
    with clock.frozen(at):
        return patient_service.register(db, who, patient_service.RegistrationIn.model_validate(payload)).patient.id


def _order(db: Session, patient_id: int, inst: Institution, acc: str, kind: str, code: str, name: str,
           at: datetime, modality: str | None = None) -> DiagnosticOrder:
    order = DiagnosticOrder(accession_number=acc, patient_id=patient_id, ordering_institution_id=inst.id,
                            performing_institution_id=inst.id, kind=kind, modality=modality, item_code=code,
                            item_name=name, status="reported", ordered_at=at, reported_at=at + timedelta(hours=2),
                            created_at=at, updated_at=at)
    db.add(order)
    db.flush()
    return order


def load(db: Session) -> None:
    inst = {i.name: i for i in db.scalars(select(Institution).where(Institution.name.in_((TOWNSHIP, COUNTY, BCH))))}
    if len(inst) < 3:
        return
    town = _subject(db, "qukou-doctor", inst[TOWNSHIP])
    county = _subject(db, "xianghe-doctor", inst[COUNTY])
    bch = _subject(db, "bch-doctor", inst[BCH])
    if town is None or county is None or bch is None:
        return
    rid = loader.resident_id_for("131024", date(2019, 6, 12), 482)  # even order: female
    child = {"name": LINKED_PATIENT, "sex": "女", "birth_date": "2019-06-12", "phone": "13931607258",
             "address": HOME, "guardian_name": "陈国强", "guardian_relation": "父亲", "guardian_phone": "13931607258"}
    pid = _register(db, town, _at(120, 9), **child, resident_id=rid, mrn="MZ2026906120", consent_scope="all")
    cbc = _order(db, pid, inst[TOWNSHIP], "DEMO-EMPI-QK1", "lab", "CBC", "血常规", _at(120, 9, 30))
    for code, label, value, units, flag, rng in (("WBC", "白细胞", "13.2", "10^9/L", "H", "4.0-12.0"),
                                                 ("HGB", "血红蛋白", "118", "g/L", None, "110-160"),
                                                 ("CRP", "C反应蛋白", "26", "mg/L", "H", "0-10")):
        db.add(LabObservation(order_id=cbc.id, code=code, name=label, value=value, units=units, abnormal_flags=flag,
                              reference_range=rng, result_status="F", observed_at=_at(120, 11), created_at=_at(120, 11)))
    assert _register(db, county, _at(118, 10), **child, resident_id=rid) == pid
    xray = _order(db, pid, inst[COUNTY], "DEMO-EMPI-XH1", "imaging", "DR-CHEST", "胸部正位片(DR)", _at(118, 10, 40),
                  modality="DX")
    db.add(DiagnosticReport(order_id=xray.id, findings="两肺纹理增多、模糊，右下肺野见斑片状模糊影。",
                            conclusion="右下肺炎可能，建议抗感染治疗后复查。", status="final",
                            signed_at=_at(118, 13), created_at=_at(118, 12)))
    # at 北京儿童医院 the father has no ID card with him: linked on name, birth date, phone and address
    linked = _register(db, bch, _at(30, 8, 30), **child, mrn="MZ2026773012")
    assert linked == pid, "the demo child should link by score at 北京儿童医院"
    us = _order(db, pid, inst[BCH], "DEMO-EMPI-BCH1", "imaging", "US-HEART", "心脏彩超", _at(30, 9, 10), modality="US")
    db.add(DiagnosticReport(order_id=us.id, findings="各房室内径正常，房间隔连续完整，未见明显分流。",
                            conclusion="心脏结构及功能未见明显异常。", status="final", signed_at=_at(30, 11),
                            created_at=_at(30, 10, 30)))

    # review queue: uncertain pairs for a steward (admin) to confirm or reject
    _register(db, town, _at(20, 9), name="王小明", sex="男", birth_date="2017-09-03", phone="13831645502",
              address="河北省廊坊市香河县渠口镇西街6号")
    _register(db, county, _at(19, 15), name="王晓明", sex="男", birth_date="2017-09-03", phone="15903162271",
              address="河北省廊坊市香河县淑阳镇北街15号")  # another town (rules v5 would link the same address)
    _register(db, county, _at(15, 10), name="张伟", sex="男", birth_date="2016-03-07", phone="13703160814",
              address="河北省廊坊市香河县淑阳镇新华大街21号")
    _register(db, bch, _at(14, 9), name="张伟", sex="男", birth_date="2016-07-03", phone="13520117736",
              address="北京市西城区南礼士路56号")
    _register(db, town, _at(10, 8), name="李思琪", sex="女", birth_date="2020-01-21",
              address="河北省廊坊市香河县渠口镇渠口村南街3号", guardian_name="李建军", guardian_relation="父亲")
    _register(db, bch, _at(9, 14), name="李思齐", sex="女", birth_date="2020-01-21",
              address="北京市西城区南礼士路56号", guardian_name="李建军", guardian_relation="父亲")
    audit.record(db, None, MARKER_ACTION, loader.MARKER_RESOURCE, "v1", channel="cli",
                 detail={"linked_patient_id": pid})
    db.flush()
