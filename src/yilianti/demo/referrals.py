"""Demo referral and critical-transfer data (issue 4), all made through the services.

Every step is taken by a demo account (a Subject from auth.service.build_subject) under a
frozen clock, so the history rows, deadlines and audit events carry past times:

- 天津市儿科医联体: a child referred up from 桃园街 to 天津市儿童医院 (accepted, booked into a past
  儿童呼吸 session, arrived, outcome returned, closed), then referred back down with a follow-up
  plan accepted by 桃园街 yesterday (its tasks are open there); one submitted referral and one
  returned with advice;
- 广阳区人民医院城市医联体: rehabilitation patients sent down to 银河北路 (through a reserved bed,
  the whole loop) and chronic patients sent down to 解放道 (accepted, follow-up tasks open); one
  up-referral from 银河北路 left un-received for two days (overdue, swept), one received;
- 北京儿童医院托管保定市儿童医院: up-referrals 保定 → 北京儿童医院 and down-referrals back over the
  past five months (beds on both sides), one accepted and awaiting a booking, one rejected (no bed);
- critical transfers: the 京廊儿科医联体 neonatal transfer (廊坊市儿童医院 → 首都儿科研究所附属儿童医院,
  2 h 40 min from request to handover), a 廊坊市胸痛专科联盟 chest-pain transfer (first contact →
  ECG 8 min, door-to-balloon 85 min) and a transfer in progress (东丽医院 → 天津市儿童医院).

`load(db)` flushes, never commits, and records the marker audit event ("demo_load_referrals").
"""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import service as auth_service
from yilianti.authz.subject import Subject
from yilianti.demo import loader
from yilianti.kit import clock
from yilianti.models.alliance import Alliance, Department, Institution
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import User
from yilianti.models.patient import CareRelationship, Patient
from yilianti.models.referral import Referral
from yilianti.models.scheduling import ClinicSession, Schedule, SessionStatus, Ward
from yilianti.models.workforce import Practitioner
from yilianti.patients import service as patient_service
from yilianti.referral import service as referral
from yilianti.referral.schemas import ReferralIn
from yilianti.scheduling import beds as beds_rules
from yilianti.scheduling import booking, rules
from yilianti.scheduling.schemas import BedReservationIn, BookingIn, WardIn
from yilianti.transfer import service as transfer
from yilianti.transfer.schemas import AcceptIn, DispatchIn, MilestoneIn, TransferIn

__all__ = ["MARKER_ACTION", "NEONATAL_NOTE", "PATIENTS", "is_loaded", "load"]

MARKER_ACTION = "demo_load_referrals"
SEED = loader.SEED + 2
PATIENTS = 9 + 1 + 16 + 1 + 1  # 广阳区, 银河北路, 保定, the newborn at 廊坊市儿童医院, the 120 patient

TJ_LEAD, TJ_COMMUNITY, DONGLI = loader.LEAD, loader.COMMUNITY, loader.SECONDARY
GUANGYANG, JIEFANG, YINHE = "广阳区人民医院", "解放道办事处社区卫生服务中心", "银河北路办事处社区卫生服务中心"
BCH, BAODING = "首都医科大学附属北京儿童医院", "北京儿童医院保定医院(保定市儿童医院)"
JINGLANG_LEAD, LF_CHILDREN = "首都儿科研究所附属儿童医院", "廊坊市儿童医院"
LF_PEOPLE, LF_120 = "廊坊市人民医院", "廊坊市120卫生急救中心"

NEONATAL_NOTE = ("京廊儿科医联体新生儿转运（参照2019年4月5日廊坊市儿童医院至首都儿科研究所附属儿童医院的转运："
                 "从申请到交接共2小时40分钟）")


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION,
                                                 AuditEvent.resource_type == loader.MARKER_RESOURCE).limit(1)) is not None


class _Ctx:
    def __init__(self, db: Session) -> None:
        self.db = db
        self.r = random.Random(SEED)
        self.inst = {i.name: i for i in db.scalars(select(Institution))}
        self.alliances = {a.key: a for a in db.scalars(select(Alliance))}
        self._subjects: dict[str, Subject] = {}
        self.people = loader._People(self.r)
        self.mrn = 0

    def subject(self, username: str) -> Subject:
        if username not in self._subjects:
            user = self.db.scalar(select(User).where(User.username == username))
            assert user is not None, username
            self._subjects[username] = auth_service.build_subject(self.db, user, None)
        return self._subjects[username]

    def dept(self, inst: str, name: str) -> Department | None:
        return self.db.scalar(select(Department).where(Department.institution_id == self.inst[inst].id,
                                                       Department.name == name))


def _at(days_ago: int, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(clock.today_local() - timedelta(days=days_ago), time(hh, mm), clock.SHANGHAI)


# --------------------------------------------------------------------------------- accounts and patients


def _accounts(ctx: _Ctx) -> None:
    db = ctx.db
    specs = loader.REFERRAL_ACCOUNTS
    existing = set(db.scalars(select(User.username).where(User.username.in_([a.username for a in specs]))))
    for spec in specs:
        if spec.username in existing:
            continue
        assert spec.institution is not None and spec.staff is not None
        dept = ctx.dept(spec.institution, spec.staff)
        prac = None
        if dept is not None:
            prac = db.scalar(select(Practitioner).where(Practitioner.department_id == dept.id)
                             .order_by(Practitioner.is_department_head.desc(), Practitioner.id).limit(1))
        auth_service.create_user(db, None, spec.username, loader.DEMO_PASSWORD,
                                 spec.display_name or (prac.name if prac else spec.username),
                                 [(str(spec.role), ctx.inst[spec.institution].id, None)],
                                 practitioner_id=prac.id if prac else None)
    db.flush()


def _register(ctx: _Ctx, username: str, inst: str, alliance: str, n: int, child_share: float,
              regions: tuple[str, ...]) -> list[int]:
    subject = ctx.subject(username)
    plan = loader._Plan(inst, n, child_share, regions, alliance)
    ids = []
    for _ in range(n):
        ctx.mrn += 1
        payload = {**ctx.people.person(plan), "mrn": f"MZ2026{ctx.mrn:06d}", "consent_scope": "alliance",
                   "consent_alliance_id": ctx.alliances[alliance].id}
        p = patient_service.register(ctx.db, subject, patient_service.RegistrationIn.model_validate(payload))
        ids.append(p.patient.id)
    ctx.db.flush()
    return ids


def _registered_children(ctx: _Ctx, inst: str) -> list[int]:
    return list(dict.fromkeys(ctx.db.scalars(
        select(Patient.id).join(CareRelationship, CareRelationship.patient_id == Patient.id)
        .where(CareRelationship.institution_id == ctx.inst[inst].id, CareRelationship.ended_at.is_(None),
               Patient.guardian_name.is_not(None)).order_by(Patient.id))))


def _ward(ctx: _Ctx, inst: str, dept: str, name: str, beds: int, occupied: int, alliance: str | None) -> Ward:
    d = ctx.dept(inst, dept)
    return beds_rules.create_ward(ctx.db, ctx.subject("admin"), WardIn(
        institution_id=ctx.inst[inst].id, department_id=d.id if d else None, name=name, beds_total=beds,
        occupied=occupied, reserve_alliance_id=ctx.alliances[alliance].id if alliance else None))


# --------------------------------------------------------------------------------- referral helpers


def _dx(*pairs: str) -> list[dict[str, str]]:
    return [{"icd10": pairs[i], "text": pairs[i + 1]} for i in range(0, len(pairs), 2)]


def _refer(ctx: _Ctx, sender: str, at: datetime, **data: Any) -> int:
    with clock.frozen(at):
        ref = referral.draft_and_submit(ctx.db, ctx.subject(sender), ReferralIn.model_validate(data))
    return ref.id


def _bed_loop(ctx: _Ctx, ref_id: int, patient_id: int, sender: str, receiver: str, ward: Ward, start: datetime,
              outcome: str, *, stay_days: int = 5, close: bool = True) -> None:
    """received → accepted → bed reserved and scheduled → arrived (admitted) → outcome → closed."""
    db, s, rcv = ctx.db, ctx.subject(sender), ctx.subject(receiver)
    with clock.frozen(start + timedelta(hours=1)):
        referral.receive(db, rcv, ref_id)
    with clock.frozen(start + timedelta(hours=3)):
        referral.accept(db, rcv, ref_id, note="同意接收")
    with clock.frozen(start + timedelta(hours=4)):
        bed = beds_rules.reserve_bed(db, s, BedReservationIn(ward_id=ward.id, patient_id=patient_id, hours=48,
                                                             referral_id=ref_id, note="转诊预留床位"))
        referral.schedule(db, s, ref_id, bed_reservation_id=bed.id)
    with clock.frozen(start + timedelta(days=1, hours=2)):
        referral.arrive(db, rcv, ref_id)
        beds_rules.admit_reservation(db, rcv, bed.id)
    with clock.frozen(start + timedelta(days=1 + stay_days, hours=3)):
        referral.return_outcome(db, rcv, ref_id, outcome)
    if close:
        with clock.frozen(start + timedelta(days=2 + stay_days, hours=1)):
            referral.close(db, s, ref_id)


# --------------------------------------------------------------------------------- Tianjin


def _tianjin(ctx: _Ctx) -> None:
    db = ctx.db
    children = _registered_children(ctx, TJ_COMMUNITY)
    patient = children[-1]
    lead, community = ctx.inst[TJ_LEAD].id, ctx.inst[TJ_COMMUNITY].id
    resp = ctx.dept(TJ_LEAD, "儿童呼吸科")
    # a past 儿童呼吸 session about two weeks ago with room left
    schedule_ids = list(db.scalars(select(Schedule.id).where(Schedule.institution_id == lead,
                                                             Schedule.specialty == "儿童呼吸")))
    now = clock.now()
    session = db.scalar(select(ClinicSession).where(ClinicSession.schedule_id.in_(schedule_ids),
                                                    ClinicSession.status == SessionStatus.open,
                                                    ClinicSession.starts_at < now - timedelta(days=12))
                        .order_by(ClinicSession.starts_at.desc()).limit(1))
    up_at = (clock.as_utc(session.starts_at) if session else now - timedelta(days=14)) - timedelta(days=4)
    summary = {"diagnoses": _dx("J45.9", "支气管哮喘（控制不佳）", "J30.4", "变应性鼻炎"),
               "key_results": "近3月喘息发作4次；肺功能：FEV1 72%预计值，支气管舒张试验阳性；血嗜酸粒细胞 6.2%",
               "medications": ["布地奈德福莫特罗吸入剂 80/4.5μg 1吸 bid", "孟鲁司特钠咀嚼片 5mg qn"],
               "allergies": ["尘螨"]}
    up = _refer(ctx, "tj-community-doctor", up_at, direction="up", patient_id=patient, to_institution_id=lead,
                to_department_id=resp.id if resp else None, priority="routine", target_service="儿童呼吸",
                reason="哮喘反复发作，规范吸入治疗3个月控制不佳，请儿童呼吸专科评估并调整方案", summary=summary)
    lead_doc = ctx.subject("tj-lead-doctor")
    with clock.frozen(up_at + timedelta(hours=1)):
        referral.receive(db, lead_doc, up)
    with clock.frozen(up_at + timedelta(hours=2)):
        referral.accept(db, lead_doc, up, note="同意接收，已安排专家号")
    booking_id = None
    if session is not None:
        with clock.frozen(up_at + timedelta(hours=3)):
            try:  # the service picks the pool this site may use (the alliance reserve first)
                booking_id = booking.book(db, ctx.subject("tj-community-doctor"), BookingIn(
                    session_id=session.id, patient_id=patient)).id
            except rules.SlotFull:
                booking_id = None
    seen_at = clock.as_utc(session.starts_at) + timedelta(minutes=40) if session else up_at + timedelta(days=4)
    if booking_id is not None:
        with clock.frozen(up_at + timedelta(hours=3, minutes=5)):
            referral.schedule(db, ctx.subject("tj-community-doctor"), up, booking_id=booking_id)
        with clock.frozen(seen_at):
            referral.arrive(db, lead_doc, up)
            booking.mark_arrived(db, ctx.subject("tj-lead-coordinator"), booking_id)
    else:  # no past session to book (a database whose booking data is older): a bed instead
        ward = db.scalar(select(Ward).where(Ward.institution_id == lead).order_by(Ward.id).limit(1))
        if ward is None:
            return
        with clock.frozen(up_at + timedelta(hours=3)):
            bed = beds_rules.reserve_bed(db, ctx.subject("tj-community-doctor"), BedReservationIn(
                ward_id=ward.id, patient_id=patient, hours=72, referral_id=up))
            referral.schedule(db, ctx.subject("tj-community-doctor"), up, bed_reservation_id=bed.id)
        with clock.frozen(seen_at):
            referral.arrive(db, lead_doc, up)
            beds_rules.admit_reservation(db, lead_doc, bed.id)
    with clock.frozen(seen_at + timedelta(days=2)):
        referral.return_outcome(db, lead_doc, up, "诊断：支气管哮喘（中度持续）。吸入激素升级为布地奈德福莫特罗160/4.5μg "
                                "1吸 bid，继续孟鲁司特；尘螨脱敏评估。病情稳定，转回社区随访。")
    with clock.frozen(seen_at + timedelta(days=3)):
        referral.close(db, ctx.subject("tj-community-doctor"), up)
    # the way back down, with a follow-up plan; accepted by 桃园街 yesterday
    down_at = _at(2, 10)
    down = _refer(ctx, "tj-lead-doctor", down_at, direction="down", patient_id=patient, to_institution_id=community,
                  linked_referral_id=up, priority="routine", reason="专科评估完成、方案已调整，转回社区长期管理",
                  summary=summary, follow_up_plan={"items": [
                      {"due_in_days": 7, "text": "随访吸入装置使用方法及用药依从性"},
                      {"due_in_days": 14, "text": "复查症状评分（C-ACT），记录夜间喘息次数"},
                      {"due_in_days": 30, "text": "复测峰流速，评估是否需再次转诊"}]})
    cd = ctx.subject("tj-community-doctor")
    with clock.frozen(down_at + timedelta(hours=3)):
        referral.receive(db, cd, down)
    with clock.frozen(_at(1, 9, 30)):
        referral.accept(db, cd, down, note="已接收，纳入家庭医生签约随访")
    # open: one submitted 20 minutes ago, one returned with advice
    _refer(ctx, "tj-community-doctor", clock.now() - timedelta(minutes=20), direction="up", patient_id=children[-2],
           to_institution_id=lead, priority="urgent", target_service="儿内科",
           reason="发热5天伴皮疹、双眼结膜充血，疑似川崎病，请上级医院尽快评估",
           summary={"diagnoses": _dx("M30.3", "皮肤黏膜淋巴结综合征（疑似）"),
                    "key_results": "CRP 86 mg/L，WBC 16.2×10^9/L，PLT 420×10^9/L"})
    back = _refer(ctx, "tj-community-doctor", _at(1, 14), direction="up", patient_id=children[-3],
                  to_institution_id=lead, priority="routine", target_service="儿内科",
                  reason="反复咳嗽2周，家长要求上级医院复查",
                  summary={"diagnoses": _dx("J20.9", "急性支气管炎")})
    with clock.frozen(_at(1, 15)):
        referral.receive(db, lead_doc, back)
    with clock.frozen(_at(1, 16)):
        referral.return_with_advice(db, lead_doc, back, "病情符合社区诊治范围：建议继续雾化及对症治疗1周，"
                                    "如出现高热、气促或咳嗽超过4周再转诊并附胸片")


# --------------------------------------------------------------------------------- Langfang


def _langfang(ctx: _Ctx) -> None:
    db = ctx.db
    al = "langfang-guangyang"
    adults = _register(ctx, "guangyang-doctor", GUANGYANG, al, 9, 0.0, ("131024",))
    ward = _ward(ctx, YINHE, "全科", "康复病区", 20, 8, None)
    yinhe, jiefang = ctx.inst[YINHE].id, ctx.inst[JIEFANG].id
    rehab = [("I63.9", "脑梗死恢复期", "脑梗死后左侧肢体偏瘫，急性期治疗结束，转社区康复病区继续康复训练"),
             ("S72.0", "股骨颈骨折术后", "髋关节置换术后第10天，转社区康复训练及功能评估"),
             ("I61.9", "脑出血恢复期", "脑出血保守治疗后病情稳定，转社区康复（言语及肢体功能训练）"),
             ("S32.0", "腰椎骨折术后", "腰椎内固定术后，转社区康复及护理")]
    for i, (code, text, reason) in enumerate(rehab):
        start = _at(70 - i * 16, 9)
        ref = _refer(ctx, "guangyang-doctor", start, direction="down", patient_id=adults[i], to_institution_id=yinhe,
                     priority="routine", target_service="康复", reason=reason,
                     summary={"diagnoses": _dx(code, text)}, follow_up_plan={"items": [
                         {"due_in_days": 7, "text": "康复评估（Barthel指数、肌力分级）"},
                         {"due_in_days": 28, "text": "康复训练效果复评，必要时上转复查"}]})
        _bed_loop(ctx, ref, adults[i], "guangyang-doctor", "yinhe-doctor", ward, start,
                  "康复训练2周，功能较入院明显改善，已出院回家，由家庭医生团队继续随访", stay_days=14)
    chronic = [("I10", "原发性高血压（3级，高危）", "住院调整降压方案后血压达标，转社区慢病管理"),
               ("E11.9", "2型糖尿病", "胰岛素方案已调整，血糖平稳，转社区随访管理"),
               ("J44.9", "慢性阻塞性肺疾病（稳定期）", "慢阻肺急性加重已控制，转社区稳定期管理"),
               ("I50.9", "慢性心力衰竭", "心衰纠正后出院，转社区随访体重、血压及用药")]
    for i, (code, text, reason) in enumerate(chronic):
        start = _at(2, 9 + i)
        ref = _refer(ctx, "guangyang-doctor", start, direction="down", patient_id=adults[4 + i],
                     to_institution_id=jiefang, priority="routine", target_service="慢病管理", reason=reason,
                     summary={"diagnoses": _dx(code, text)}, follow_up_plan={"items": [
                         {"due_in_days": 3, "text": "首次上门随访，核对出院带药"},
                         {"due_in_days": 14, "text": "复查血压/血糖并记录"},
                         {"due_in_days": 90, "text": "季度随访评估，必要时上转"}]})
        # the fourth was received two hours ago and is still to be decided
        with clock.frozen(start + timedelta(hours=2) if i < 3 else clock.now() - timedelta(hours=2)):
            referral.receive(db, ctx.subject("jiefang-doctor"), ref)
        if i < 3:
            with clock.frozen(_at(1, 10 + i)):
                referral.accept(db, ctx.subject("jiefang-doctor"), ref, note="已接收，纳入慢病随访")
    # an up-referral from 银河北路 nobody has received for two days: overdue
    up_patient = _register(ctx, "yinhe-doctor", YINHE, al, 1, 0.0, ("131024",))[0]
    _refer(ctx, "yinhe-doctor", _at(2, 8, 30), direction="up", patient_id=up_patient,
           to_institution_id=ctx.inst[GUANGYANG].id, priority="routine", target_service="心内科",
           reason="活动后胸闷2周，社区心电图示ST-T改变，请上级医院心内科评估",
           summary={"diagnoses": _dx("I20.9", "心绞痛（待排）")})


# --------------------------------------------------------------------------------- Baoding


def _baoding(ctx: _Ctx) -> None:
    db = ctx.db
    al = "baoding-trusteeship"
    kids = _register(ctx, "baoding-doctor", BAODING, al, 16, 1.0, ("130602",))
    bch_ward = _ward(ctx, BCH, "儿内科", "儿内科二病区（京保转诊）", 60, 40, al)
    bd_ward = _ward(ctx, BAODING, "儿内科", "儿内科病区", 80, 50, None)
    bch, bd = ctx.inst[BCH].id, ctx.inst[BAODING].id
    cases = [("Q21.0", "室间隔缺损", "先天性心脏病需介入封堵，保定院区暂不能开展"),
             ("C91.0", "急性淋巴细胞白血病", "初诊白血病，转北京儿童医院血液肿瘤中心诱导化疗"),
             ("G40.9", "癫痫（药物难治性）", "两种抗癫痫药物足量治疗仍频繁发作，请术前评估"),
             ("N04.9", "肾病综合征（激素耐药）", "激素耐药，请肾内科行肾穿刺活检"),
             ("D69.3", "免疫性血小板减少症", "血小板持续<20×10^9/L，请血液科会诊治疗"),
             ("Q62.1", "先天性肾盂输尿管连接部梗阻", "肾积水进行性加重，拟手术治疗"),
             ("E23.0", "生长激素缺乏症（待确诊）", "需行生长激素激发试验"),
             ("M08.0", "幼年特发性关节炎", "需生物制剂治疗评估")]
    downs = {0, 1, 3, 4, 5}
    for i, (code, text, reason) in enumerate(cases * 2):
        if i >= 14:
            break
        start = _at(150 - i * 10, 9)
        p = kids[i]
        up = _refer(ctx, "baoding-doctor", start, direction="up", patient_id=p, to_institution_id=bch,
                    priority="urgent" if i % 3 == 0 else "routine", target_service="儿内科", reason=reason,
                    summary={"diagnoses": _dx(code, text)})
        _bed_loop(ctx, up, p, "baoding-doctor", "bch-doctor", bch_ward, start,
                  f"{text}：在北京儿童医院完成诊治，病情稳定出院，出院小结已上传", stay_days=6)
        if i % 8 in downs:
            d_start = start + timedelta(days=9)
            down = _refer(ctx, "bch-doctor", d_start, direction="down", patient_id=p, to_institution_id=bd,
                          linked_referral_id=up, priority="routine", target_service="儿内科",
                          reason="北京诊治阶段完成，转回保定院区继续治疗与随访",
                          summary={"diagnoses": _dx(code, text)}, follow_up_plan={"items": [
                              {"due_in_days": 14, "text": "复查血常规及相关指标，结果上传北京专家"},
                              {"due_in_days": 60, "text": "远程复诊评估"}]})
            _bed_loop(ctx, down, p, "bch-doctor", "baoding-doctor", bd_ward, d_start,
                      "保定院区继续治疗完成，已出院，按计划随访", stay_days=4)
    # open: accepted awaiting a booking; rejected with a coded reason
    acc = _refer(ctx, "baoding-doctor", clock.now() - timedelta(hours=3),
                 direction="up", patient_id=kids[14], to_institution_id=bch, priority="routine",
                 target_service="儿童呼吸", reason="反复肺炎，需行支气管镜检查",
                 summary={"diagnoses": _dx("J18.9", "肺炎（反复）")})
    with clock.frozen(clock.now() - timedelta(minutes=50)):
        referral.receive(db, ctx.subject("bch-doctor"), acc)
    with clock.frozen(clock.now() - timedelta(minutes=30)):
        referral.accept(db, ctx.subject("bch-doctor"), acc, note="同意接收，待安排床位")
    rej = _refer(ctx, "baoding-doctor", _at(6, 10), direction="up", patient_id=kids[15], to_institution_id=bch,
                 priority="routine", target_service="儿内科", reason="川崎病恢复期，家长要求北京复查心脏超声",
                 summary={"diagnoses": _dx("M30.3", "川崎病恢复期")})
    with clock.frozen(_at(6, 11)):
        referral.receive(db, ctx.subject("bch-doctor"), rej)
    with clock.frozen(_at(6, 14)):
        referral.reject(db, ctx.subject("bch-doctor"), rej, "no_bed",
                        "本周病区已满；保定院区北京专家每周四坐诊，可先行心脏超声复查")
    # the wards back to their usual occupancy (the history admitted patients)
    for ward, occupied in ((bch_ward, 40), (bd_ward, 50)):
        db.refresh(ward)
        beds_rules.set_occupied(db, ctx.subject("admin"), ward.id, occupied)


# --------------------------------------------------------------------------------- critical transfers


def _transfers(ctx: _Ctx) -> dict[str, int]:
    db = ctx.db
    # the neonatal transfer (京廊儿科医联体), 2 h 40 min from request to handover
    baby_birth = clock.today_local() - timedelta(days=5)
    ctx.mrn += 1
    baby = patient_service.register(db, ctx.subject("lfch-doctor"), patient_service.RegistrationIn.model_validate({
        "name": "刘小宝之子", "sex": "男", "birth_date": baby_birth.isoformat(),
        "resident_id": loader.resident_id_for("131003", baby_birth, 15), "mrn": f"MZ2026{ctx.mrn:06d}",
        "address": "河北省廊坊市广阳区新华路18号", "guardian_name": "刘建国", "guardian_relation": "父亲",
        "guardian_phone": "13903161234", "consent_scope": "alliance",
        "consent_alliance_id": ctx.alliances["jinglang-pediatric"].id}))
    t0 = _at(3, 9, 20)
    origin, dest = ctx.subject("lfch-doctor"), ctx.subject("jinglang-doctor")
    with clock.frozen(t0):
        neo = transfer.request(db, origin, TransferIn.model_validate({
            "patient_id": baby.patient.id, "destination_institution_id": ctx.inst[JINGLANG_LEAD].id, "network": "neonatal",
            "diagnosis": "早产儿（胎龄32周）、新生儿呼吸窘迫综合征，需转上级NICU行机械通气",
            "vitals": {"hr": 168, "rr": 72, "spo2": 86, "temp": 36.1, "weight_kg": 1.6}}))
    with clock.frozen(t0 + timedelta(minutes=8)):
        transfer.accept(db, dest, neo.id, AcceptIn(bed_note="NICU 3床"))
    with clock.frozen(t0 + timedelta(minutes=12)):
        transfer.dispatch(db, dest, neo.id, DispatchIn(vehicle="京A·N1203 新生儿转运车",
                                                        team="新生儿科医师1名、NICU护士1名、司机1名"))
    steps = (("team_departed", 15, dest, None), ("arrived_at_origin", 70, dest, None),
             ("assessed", 95, dest, "气管插管、呼吸机参数调整后生命体征平稳"),
             ("departed_with_patient", 110, dest, None), ("arrived", 155, dest, None),
             ("handed_over", 160, dest, NEONATAL_NOTE))
    for kind, minutes, who, note in steps:
        with clock.frozen(t0 + timedelta(minutes=minutes)):
            transfer.record_milestone(db, who, neo.id, MilestoneIn.model_validate({"kind": kind, "note": note}))
    # chest pain: first contact → ECG 8 min, door-to-balloon 85 min
    pt = _register(ctx, "lf120-doctor", LF_120, "langfang-chest-pain", 1, 0.0, ("131024",))[0]
    fmc = _at(9, 21, 5)
    ems, hosp = ctx.subject("lf120-doctor"), ctx.subject("langfang-lead-doctor")
    with clock.frozen(fmc + timedelta(minutes=10)):
        cp = transfer.request(db, ems, TransferIn.model_validate({
            "patient_id": pt, "destination_institution_id": ctx.inst[LF_PEOPLE].id, "network": "chest_pain",
            "diagnosis": "急性ST段抬高型心肌梗死（下壁），院前心电图已远程传输",
            "vitals": {"hr": 52, "bp_sys": 96, "bp_dia": 60, "spo2": 94, "rr": 20}}))
        transfer.record_milestone(db, ems, cp.id, MilestoneIn(kind="first_medical_contact", at=fmc))
        transfer.record_milestone(db, ems, cp.id, MilestoneIn(kind="first_ecg", at=fmc + timedelta(minutes=8)))
    with clock.frozen(fmc + timedelta(minutes=12)):
        transfer.accept(db, hosp, cp.id, AcceptIn(bed_note="导管室已启动"))
    with clock.frozen(fmc + timedelta(minutes=13)):
        transfer.dispatch(db, ems, cp.id, DispatchIn(vehicle="冀R·120 监护型救护车", team="急救医师1名、护士1名、担架员1名"))
    door = fmc + timedelta(minutes=38)
    for kind, minutes in (("team_departed", 14), ("arrived_at_origin", 14), ("assessed", 15),
                          ("departed_with_patient", 16), ("arrived", 38)):
        with clock.frozen(fmc + timedelta(minutes=minutes)):
            transfer.record_milestone(db, ems, cp.id, MilestoneIn.model_validate({"kind": kind}))
    with clock.frozen(door):
        transfer.record_milestone(db, hosp, cp.id, MilestoneIn(kind="door"))
    with clock.frozen(door + timedelta(minutes=2)):
        transfer.record_milestone(db, hosp, cp.id, MilestoneIn(kind="handed_over", note="绕行急诊直达导管室"))
    with clock.frozen(door + timedelta(minutes=85)):
        transfer.record_milestone(db, hosp, cp.id, MilestoneIn(kind="balloon", note="RCA近段闭塞，植入支架1枚"))
    # one in progress: 东丽医院 → 天津市儿童医院, the team on its way
    kid = _registered_children(ctx, DONGLI)[0]
    t1 = clock.now() - timedelta(minutes=40)
    dl, tj = ctx.subject("dongli-doctor"), ctx.subject("tj-lead-doctor")
    with clock.frozen(t1):
        live = transfer.request(db, dl, TransferIn.model_validate({
            "patient_id": kid, "destination_institution_id": ctx.inst[TJ_LEAD].id, "network": "general",
            "diagnosis": "重症肺炎伴呼吸衰竭，需转PICU", "vitals": {"hr": 150, "rr": 48, "spo2": 88, "temp": 39.2}}))
    with clock.frozen(t1 + timedelta(minutes=6)):
        transfer.accept(db, tj, live.id, AcceptIn(bed_note="PICU 2床"))
    with clock.frozen(t1 + timedelta(minutes=10)):
        transfer.dispatch(db, tj, live.id, DispatchIn(vehicle="津A·PICU01 转运车", team="PICU医师1名、护士1名"))
    with clock.frozen(t1 + timedelta(minutes=18)):
        transfer.record_milestone(db, tj, live.id, MilestoneIn(kind="team_departed"))
    return {"neonatal": neo.id, "chest_pain": cp.id, "in_progress": live.id}


# --------------------------------------------------------------------------------- loading


def load(db: Session) -> dict[str, Any]:
    ctx = _Ctx(db)
    with clock.frozen(clock.now() - timedelta(days=200)):
        _accounts(ctx)
    with loader.history_kept_in_app(db):
        _tianjin(ctx)
        _langfang(ctx)
        _baoding(ctx)
        transfers = _transfers(ctx)
    overdue = referral.sweep_overdue(db)
    counts = {"referrals": db.scalar(select(func.count(Referral.id))) or 0, "overdue_alerted": overdue, **transfers}
    audit.record(db, None, MARKER_ACTION, loader.MARKER_RESOURCE, loader.DEMO_VERSION, channel="cli", detail=counts)
    db.flush()
    return counts

