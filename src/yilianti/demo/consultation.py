"""Demo teleconsultation and joint-ward data (issue 8), all made through the services.

天津市儿科医联体 (天津市儿童医院 leading, 河西区桃园街社区卫生服务中心 a member):
- case A: the community doctor (tj-community-doctor, 赵海燕) asks 张文博 (tj-lead-doctor) about an
  asthmatic child with palpitations, the child's ECG attached (a diagnostic order of the same
  patient, kind ecg); the expert signs advice well within the urgent deadline; the community
  doctor closes it (rating 5, referral avoided);
- case B: a second child: the expert recommends referral; the community doctor converts the case
  into an up-referral in one click (the case ends as converted, the referral is submitted);
- case C: a routine request to the 儿童呼吸科 pool, assigned by the case assigner
  (tj-lead-coordinator) to 张文博 and waiting for him;
- a joint ward at 桃园街 (儿科联合病房) co-managed with 天津市儿童医院: 赵海燕 in the centre's team,
  张文博 in the lead-hospital team, one child admitted, rounds by both teams.
The monthly report (/consultations/report) counts A (answered in time, avoided) and B (converted).

`load(db)` flushes, never commits, and records the marker audit event ("demo_load_consultation").
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import service as auth_service
from yilianti.authz.subject import Subject
from yilianti.consultation import flows, joint, service
from yilianti.consultation.schemas import AssignIn, CloseOutIn, ConsultationIn, MessageIn, OpinionIn
from yilianti.demo import loader
from yilianti.diagnostics.orders import workflow
from yilianti.kit import clock
from yilianti.models.alliance import Department, Institution
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import User
from yilianti.models.consultation import Consultation
from yilianti.models.diagnostics import DiagnosticItem, DiagnosticOrder, ItemPrice
from yilianti.models.patient import CareRelationship, Patient

__all__ = ["ECG_ITEM", "MARKER_ACTION", "is_loaded", "load"]

MARKER_ACTION = "demo_load_consultation"
LEAD, COMMUNITY = loader.LEAD, loader.COMMUNITY
ECG_ITEM = "常规12导联心电图"


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION,
                                                 AuditEvent.resource_type == loader.MARKER_RESOURCE).limit(1)) is not None


def _subject(db: Session, username: str, institution_id: int | None = None) -> Subject:
    user = db.scalar(select(User).where(User.username == username))
    assert user is not None, username
    return auth_service.build_subject(db, user, institution_id)


def _at(days_ago: int, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(clock.today_local() - timedelta(days=days_ago), time(hh, mm), clock.SHANGHAI)


def _children(db: Session, institution_id: int) -> list[int]:
    return list(dict.fromkeys(db.scalars(
        select(Patient.id).join(CareRelationship, CareRelationship.patient_id == Patient.id)
        .where(CareRelationship.institution_id == institution_id, CareRelationship.ended_at.is_(None),
               Patient.guardian_name.is_not(None)).order_by(Patient.id))))


def _ecg(db: Session, doctor: Subject, patient_id: int, lead_id: int) -> DiagnosticOrder:
    """The child's ECG: ordered through the diagnostics workflow when the lead's centre offers a
    priced ECG item to the community, else recorded as an ECG order of the community."""
    item = db.scalar(select(DiagnosticItem).join(ItemPrice, ItemPrice.item_id == DiagnosticItem.id).where(
        DiagnosticItem.kind == "ecg", DiagnosticItem.active.is_(True),
        DiagnosticItem.reading_centre_institution_id == lead_id,
        ItemPrice.institution_id == doctor.acting_institution_id).limit(1))
    if item is not None:
        return workflow.place_order(db, doctor, patient_id=patient_id, item_id=item.id,
                                    clinical_question="哮喘患儿雾化后心悸，查心电图")
    assert doctor.acting_institution_id is not None
    order = DiagnosticOrder(
        accession_number=workflow.new_accession(db), patient_id=patient_id,
        ordering_institution_id=doctor.acting_institution_id, reading_centre_institution_id=lead_id,
        performing_institution_id=doctor.acting_institution_id, kind="ecg", modality="ECG", item_code="ECG12",
        item_name=ECG_ITEM, status="acquired", ordering_user_id=doctor.user_id,
        ordering_practitioner_id=doctor.practitioner_id, ordered_at=clock.now(), acquired_at=clock.now(),
        clinical_question="哮喘患儿雾化后心悸，查心电图")
    db.add(order)
    db.flush()
    audit.record(db, doctor, "create", "diagnostic_order", order.id, patient_id=patient_id,
                 detail={"accession_number": order.accession_number, "demo": True})
    _waveform(db, doctor, order)
    return order


def _waveform(db: Session, doctor: Subject, order: DiagnosticOrder) -> None:
    """A real 12-lead waveform for the viewer: pydicom's bundled waveform_ecg.dcm, read from the
    package folder (never get_testdata_file, which may go online); skipped when unavailable."""
    from pathlib import Path

    try:
        import pydicom

        from yilianti.diagnostics.ecg import service as ecg
    except ImportError:  # pragma: no cover - the ECG module is optional for this demo
        return
    path = Path(pydicom.data.__file__).parent / "test_files" / "waveform_ecg.dcm"
    if path.exists():
        ecg.store(db, doctor, order, ecg.parse_dicom(path.read_bytes()), "dicom", filename="桃园街-心电图.dcm")


def load(db: Session) -> None:
    inst = {i.name: i for i in db.scalars(select(Institution).where(Institution.name.in_([LEAD, COMMUNITY])))}
    lead, community = inst[LEAD], inst[COMMUNITY]
    doctor = _subject(db, "tj-community-doctor")
    expert = _subject(db, "tj-lead-doctor", lead.id)
    coordinator = _subject(db, "tj-lead-coordinator")
    resp = db.scalar(select(Department).where(Department.institution_id == lead.id, Department.name == "儿童呼吸科"))
    children = _children(db, community.id)
    assert len(children) >= 4 and expert.practitioner_id is not None
    a_patient, b_patient, c_patient, ward_patient = children[0], children[1], children[2], children[3]

    def ask(patient_id: int, **kw: object) -> Consultation:
        data = {"patient_id": patient_id, "consulted_institution_id": lead.id,
                "department_id": resp.id if resp else None, "consent_confirmed": True,
                "consent_note": "监护人（母亲）当面签署远程会诊知情同意书", **kw}
        return service.request(db, doctor, ConsultationIn.model_validate(data))

    with loader.history_kept_in_app(db):
        # case A: ECG attached, signed advice within the deadline, closed with the referral avoided
        with clock.frozen(_at(10, 9, 0)):
            ecg = _ecg(db, doctor, a_patient, lead.id)
        with clock.frozen(_at(10, 9, 20)):
            a = ask(a_patient, urgency="urgent", expert_practitioner_ids=[expert.practitioner_id], order_ids=[ecg.id],
                    question="7岁哮喘患儿，雾化沙丁胺醇后心悸2天，心电图示窦性心动过速（HR 128次/分），"
                             "是否需要调整平喘方案？是否需要转诊？",
                    clinical_summary="咳嗽气喘3天，双肺散在哮鸣音，SpO2 96%。沙丁胺醇雾化 每日3次。无晕厥，无胸痛。")
        with clock.frozen(_at(10, 10, 5)):
            service.acknowledge(db, expert, a.id)
        with clock.frozen(_at(10, 10, 30)):
            service.post_message(db, expert, a.id, MessageIn(body="请问近期是否加用了茶碱类药物？"))
        with clock.frozen(_at(10, 11, 0)):
            service.post_message(db, doctor, a.id, MessageIn(body="未使用茶碱，仅沙丁胺醇雾化和布地奈德。"))
        with clock.frozen(_at(10, 14, 10)):
            service.sign_opinion(db, expert, a.id, OpinionIn(
                outcome="advice", text="心电图为窦性心动过速，考虑β2受体激动剂反应，无心律失常证据。"
                                       "建议沙丁胺醇减为按需使用，继续布地奈德雾化；3天后社区复诊，复查心电图。暂不需转诊。"))
        with clock.frozen(_at(9, 10, 0)):
            service.close_out(db, doctor, a.id, CloseOutIn(
                rating=5, action_taken="按会诊意见调整雾化方案，3天后复查心电图心率 96 次/分，患儿在社区继续管理",
                avoided_referral=True))

        # case B: referral recommended → converted into an up-referral in one click
        # (today, so the new referral waits for triage within its deadline instead of showing as overdue)
        with clock.frozen(clock.now() - timedelta(hours=5)):
            b = ask(b_patient, urgency="routine", expert_practitioner_ids=[expert.practitioner_id],
                    question="5岁患儿反复喘息半年，规范吸入治疗后仍每月发作，是否需要到上级医院进一步评估？",
                    clinical_summary="近半年喘息发作6次，2次需全身激素。过敏原：尘螨阳性。胸片未见异常。")
        with clock.frozen(clock.now() - timedelta(hours=3)):
            service.sign_opinion(db, expert, b.id, OpinionIn(
                outcome="recommend_referral", text="难治性喘息，建议转诊至我院儿童呼吸科门诊，完善肺功能、"
                                                   "呼出气一氧化氮和支气管镜评估。"))
        with clock.frozen(clock.now() - timedelta(hours=2)):
            flows.convert_to_referral(db, doctor, b.id)

    # case C: a pool request, assigned by the case assigner, waiting for the expert
    with clock.frozen(clock.now() - timedelta(hours=3)):
        c = ask(c_patient, urgency="routine",
                question="9岁患儿慢性咳嗽6周，胸片正常，是否考虑咳嗽变异性哮喘？需要做哪些检查？",
                clinical_summary="夜间及运动后咳嗽明显，无发热。")
    with clock.frozen(clock.now() - timedelta(hours=2)):
        service.assign(db, coordinator, c.id, AssignIn(practitioner_ids=[expert.practitioner_id]))

    # the joint ward at 桃园街, co-managed by the lead hospital's team
    admin = _subject(db, "tj-community-admin")
    with clock.frozen(_at(30, 9, 0)):
        ward = joint.create_ward(db, admin, joint.WardIn(name="儿科联合病房", lead_institution_id=lead.id, beds=12,
                                                         specialty="儿科", note="天津市儿童医院儿童呼吸科团队每周二、五查房"))
        if doctor.practitioner_id is not None:
            joint.add_member(db, admin, ward.id, doctor.practitioner_id, "主管医师")
        joint.add_member(db, admin, ward.id, expert.practitioner_id, "查房专家")
    with clock.frozen(_at(3, 8, 30)):
        adm = joint.admit(db, doctor, ward.id, ward_patient, bed_no="3床", diagnosis="支气管肺炎（恢复期）")
    with clock.frozen(_at(2, 9, 0)):
        joint.add_round(db, doctor, adm.id, "体温36.8℃，咳嗽减轻，双肺少许湿啰音，继续阿莫西林克拉维酸钾口服。")
    with clock.frozen(_at(2, 15, 0)):
        joint.add_round(db, expert, adm.id, "联合查房：恢复良好，建议疗程满7天后复查血常规，出院后社区随访。")

    audit.record(db, None, MARKER_ACTION, loader.MARKER_RESOURCE, "consultation",
                 detail={"cases": [a.id, b.id, c.id], "joint_ward": ward.id})
    db.flush()
