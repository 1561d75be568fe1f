"""Builders for consultation tests: a community centre asking a lead hospital, plus an outsider."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.authz.subject import Subject
from yilianti.consultation import service
from yilianti.consultation.schemas import ConsultationIn, OpinionIn
from yilianti.kit import clock
from yilianti.models.alliance import Department, Institution
from yilianti.models.consultation import Consultation
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.patient import Patient
from yilianti.models.workforce import Practitioner

_acc = itertools.count(1)


@dataclass
class World:
    lead: Institution
    community: Institution
    outsider: Institution
    cardiology: Department
    expert: Practitioner
    expert2: Practitioner
    junior: Practitioner
    comm_doc: Subject
    coordinator: Subject
    expert_doc: Subject
    expert2_doc: Subject
    lead_doc: Subject  # a doctor of the lead hospital not on the case
    out_doc: Subject
    patient: Patient
    other_patient: Patient


def world(db: Session, tag: str = "") -> World:
    lead = b.institution(db, "天津市儿童医院" + tag, kind="specialty", level=3, province="天津")
    community = b.institution(db, "桃园街社区卫生服务中心" + tag, kind="community_center", level=1, province="天津")
    outsider = b.institution(db, "联盟外医院" + tag, level=2)
    b.alliance(db, (lead, "lead"), (community, "member"), name="天津儿科医联体" + tag)
    b.alliance(db, (outsider, "member"), name="其他医联体" + tag)
    cardiology = b.department(db, lead, "心内科")
    expert = b.practitioner(db, lead, "赵心怡", "主任医师", licence=date(2008, 7, 1))
    expert.department_id = cardiology.id
    expert2 = b.practitioner(db, lead, "钱立新", "副主任医师", licence=date(2012, 7, 1))
    expert2.department_id = cardiology.id
    junior = b.practitioner(db, lead, "孙小年", "住院医师", licence=clock.today_local() - timedelta(days=400))
    junior.department_id = cardiology.id
    b.user(db, lead, "doctor", practitioner_id=junior.id)
    s = lambda inst, *roles, **kw: b.subject_for(db, b.user(db, inst, *roles, **kw))  # noqa: E731
    comm_doc = s(community, "doctor")
    patient = b.patient(db, comm_doc, name="刘晨曦", birth=date(2016, 5, 4))
    other = b.patient(db, comm_doc, name="周其他", birth=date(2014, 1, 9))
    return World(lead, community, outsider, cardiology, expert, expert2, junior, comm_doc,
                 s(lead, "coordinator"), s(lead, "doctor", practitioner_id=expert.id),
                 s(lead, "doctor", practitioner_id=expert2.id), s(lead, "doctor"), s(outsider, "doctor"),
                 patient, other)


def ecg_order(db: Session, inst: Institution, patient: Patient, name: str = "常规12导联心电图") -> DiagnosticOrder:
    o = DiagnosticOrder(accession_number=f"T-ECG-{next(_acc):06d}", patient_id=patient.id,
                        ordering_institution_id=inst.id, reading_centre_institution_id=inst.id, kind="ecg",
                        modality="ECG", item_code="ECG12", item_name=name, status="reported")
    db.add(o)
    db.flush()
    return o


def request_data(w: World, **kw: Any) -> ConsultationIn:
    data: dict[str, Any] = {
        "patient_id": w.patient.id, "consulted_institution_id": w.lead.id, "department_id": w.cardiology.id,
        "question": "8岁患儿心悸2周，心电图示频发室性早搏，是否需要进一步检查或转诊？",
        "clinical_summary": "体温正常，心率 110 次/分，无晕厥史。", "urgency": "routine", "consent_confirmed": True,
    }
    data.update(kw)
    return ConsultationIn.model_validate(data)


def requested(db: Session, w: World, **kw: Any) -> Consultation:
    return service.request(db, w.comm_doc, request_data(w, **kw))


def answered(db: Session, w: World, outcome: str = "advice", **kw: Any) -> Consultation:
    c = requested(db, w, expert_practitioner_ids=[w.expert.id], **kw)
    service.acknowledge(db, w.expert_doc, c.id)
    service.sign_opinion(db, w.expert_doc, c.id, OpinionIn(outcome=outcome, text="考虑良性室早，建议24小时动态心电图，暂不需转诊"))
    return c
