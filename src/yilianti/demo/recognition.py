"""Demo data for mutual recognition of results (issue 7), made through the services.

- Scopes: the 京津冀 region (北京, 天津, 河北), the 廊坊 city scope and the 香河县医共体 alliance.
- A catalogue like the regional ones: common chemistry (liver and kidney function, lipids,
  glucose, HbA1c), blood count, thyroid function (the FT3/FT4/TSH panel and each alone — the
  diagnostics catalogue's LAB-FT3/LAB-FT4/LAB-TSH map onto them), tumour markers
  (AFP/CEA/CA125/CA19-9), chest CT and DR — with LOINC codes, validity windows per scope and
  reference prices; imported from a CSV through `catalogue.import_catalogue`, like a real sheet.
- QC-qualified this year: 香河县人民医院, 北京朝阳医院, 廊坊市人民医院 (京津冀), 渠口镇卫生院 only in
  the county alliance, and 香河县人民医院's thyroid QC for last year lapsed on 2025-12-31.
- A labelled demo alliance "京津冀互认转诊协作网（演示）" (北京朝阳医院, 香河县人民医院, 廊坊市人民医院)
  gives 香河 a referral route to the Beijing hospital; the real 京津冀 alliance of the YAML keeps
  only the members the articles name (none).
- The DONE-WHEN patient: 刘桂芳 registered at 香河县人民医院 (sharing consent for that network), her
  thyroid panel from 香河县人民医院's own LIS last month, referred up to 北京朝阳医院 内分泌科 (accepted);
  the Beijing doctor (bjcy-doctor) orders the panel at /recognition and is offered that result.
- History for the monthly report: six more 香河 patients later seen at 北京朝阳医院 (registered
  there too: same resident ID, one person) over the past four months with reuse and re-test decisions (prices: 北京朝阳医院's own catalogue price for
  the thyroid panel, the catalogue's reference price otherwise).

`load(db)` flushes, never commits, and records the marker audit event ("demo_load_recognition").
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import service as auth_service
from yilianti.authz.subject import Subject
from yilianti.demo import loader
from yilianti.kit import clock
from yilianti.models.alliance import Alliance, Department, Institution, Membership
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import User
from yilianti.models.diagnostics import DiagnosticItem, ItemPrice
from yilianti.models.workforce import Practitioner
from yilianti.patients import service as patient_service
from yilianti.recognition import catalogue, service
from yilianti.recognition.results import ExternalResultIn, ObservationIn, import_external_result
from yilianti.referral import service as referral
from yilianti.referral.schemas import ReferralIn

__all__ = ["DONE_WHEN_PATIENT", "MARKER_ACTION", "PATIENTS", "is_loaded", "load"]

MARKER_ACTION = "demo_load_recognition"
SEED = loader.SEED + 7
XIANGHE, BJCY, LF_PEOPLE, QUKOU = "香河县人民医院", "北京朝阳医院", "廊坊市人民医院", "渠口镇卫生院"
DEMO_NETWORK, COUNTY_ALLIANCE = "demo-jjj-recognition-referral", "xianghe-county"
DONE_WHEN_PATIENT = "刘桂芳"
PATIENTS = 1 + 6  # the DONE-WHEN patient and six for the report history

# item_code, name, kind, loinc, other codes, price (yuan), {scope: valid_days}
ITEMS: tuple[tuple[str, str, str, str, str, str, dict[str, int]], ...] = (
    ("CBC", "血常规（全血细胞计数）", "lab", "58410-2", "LAB-CBC", "25", {"JJJ": 7, "XH-COUNTY": 7}),
    ("LFT", "肝功能（ALT/AST/TBIL/ALB）", "lab", "24325-3", "LAB-LFT", "60", {"JJJ": 14, "XH-COUNTY": 14}),
    ("RFT", "肾功能（Cr/BUN/UA）", "lab", "24362-6", "LAB-RFT", "40", {"JJJ": 14, "XH-COUNTY": 14}),
    ("LIPID", "血脂四项", "lab", "57698-3", "LAB-LIPID", "45", {"JJJ": 30, "XH-COUNTY": 30}),
    ("GLU", "空腹血糖", "lab", "1558-6", "LAB-GLU", "6", {"JJJ": 7, "XH-COUNTY": 7}),
    ("HBA1C", "糖化血红蛋白", "lab", "4548-4", "LAB-HBA1C", "65", {"JJJ": 90, "XH-COUNTY": 90}),
    ("TFT", "甲状腺功能（FT3/FT4/TSH）", "lab", "", "LAB-TFT;TH3", "120", {"JJJ": 60, "XH-COUNTY": 60}),
    ("FT3", "游离三碘甲状腺原氨酸（FT3）", "lab", "3051-0", "LAB-FT3", "30", {"JJJ": 60, "XH-COUNTY": 60}),
    ("FT4", "游离甲状腺素（FT4）", "lab", "3024-7", "LAB-FT4", "30", {"JJJ": 60, "XH-COUNTY": 60}),
    ("TSH", "促甲状腺激素（TSH）", "lab", "3016-3", "LAB-TSH", "30", {"JJJ": 60, "XH-COUNTY": 60}),
    ("TM4", "肿瘤标志物（AFP/CEA/CA125/CA19-9）", "lab", "", "LAB-TM4", "220", {"JJJ": 30, "LF-CITY": 30}),
    ("CT-CHEST", "胸部CT平扫", "imaging", "24627-2", "CT-CHEST-PLAIN", "260", {"JJJ": 180, "LF-CITY": 180}),
    ("DR-CHEST", "胸部DR正位片", "imaging", "36643-5", "DX-CHEST", "80", {"JJJ": 180, "LF-CITY": 180,
                                                                    "XH-COUNTY": 180}),
)
# institution → (scope, items) qualified this year
QUALIFIED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (XIANGHE, "JJJ", ("CBC", "LFT", "RFT", "LIPID", "GLU", "HBA1C", "TFT", "FT3", "FT4", "TSH", "TM4", "CT-CHEST",
                      "DR-CHEST")),
    (XIANGHE, "XH-COUNTY", ("CBC", "LFT", "RFT", "LIPID", "GLU", "HBA1C", "TFT", "FT3", "FT4", "TSH", "DR-CHEST")),
    (BJCY, "JJJ", ("CBC", "LFT", "RFT", "LIPID", "GLU", "HBA1C", "TFT", "FT3", "FT4", "TSH", "TM4", "CT-CHEST",
                   "DR-CHEST")),
    (LF_PEOPLE, "JJJ", ("CBC", "LFT", "RFT", "LIPID", "GLU", "TFT", "TM4", "CT-CHEST", "DR-CHEST")),
    (LF_PEOPLE, "LF-CITY", ("TM4", "CT-CHEST", "DR-CHEST")),
    (QUKOU, "XH-COUNTY", ("CBC", "GLU", "DR-CHEST")),
)
QC_BODY = {"JJJ": "京津冀临床检验质量控制中心室间质评", "XH-COUNTY": "廊坊市临床检验中心", "LF-CITY": "廊坊市临床检验中心"}
TFT_VALUES = (("3051-0", "FT3", "pmol/L", "3.1-6.8"), ("3024-7", "FT4", "pmol/L", "12-22"),
              ("3016-3", "TSH", "mIU/L", "0.27-4.2"))
BJCY_TFT_PRICE_FEN = 15500  # 北京市医疗服务价格: FT3+FT4+TSH at 北京朝阳医院 (demo figure)


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION,
                                                 AuditEvent.resource_type == loader.MARKER_RESOURCE).limit(1)) is not None


def _at(days_ago: int, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(clock.today_local() - timedelta(days=days_ago), time(hh, mm), clock.SHANGHAI)


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


def _accounts(ctx: _Ctx) -> None:
    db = ctx.db
    for spec in loader.RECOGNITION_ACCOUNTS:
        if db.scalar(select(User.id).where(User.username == spec.username)) is not None:
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


def _network(ctx: _Ctx) -> None:
    """A demo referral network for the 京津冀 recognition scope: 香河县人民医院, 廊坊市人民医院 → 北京朝阳医院.

    The article names the 京津冀 recognition alliance but not its members, and the YAML is kept to
    what the articles say; so the referral link the scenario needs is a separate, labelled demo
    alliance rather than invented members of the real one.
    """
    db = ctx.db
    alliance = db.scalar(select(Alliance).where(Alliance.key == DEMO_NETWORK))
    if alliance is None:
        alliance = Alliance(key=DEMO_NETWORK, name="京津冀互认转诊协作网（演示）", model="telemedicine_net",
                            cross_province=True, reserve_for="members",
                            notes="演示数据，非来源文章所述：香河县人民医院、廊坊市人民医院与北京朝阳医院之间的转诊与检查检验结果互认协作")
        db.add(alliance)
        db.flush()
        for name, role in ((BJCY, "lead"), (XIANGHE, "member"), (LF_PEOPLE, "member")):
            db.add(Membership(alliance_id=alliance.id, institution_id=ctx.inst[name].id, role=role,
                              joined_on=date(2019, 1, 1)))
        db.flush()
    ctx.alliances[DEMO_NETWORK] = alliance


def _catalogue(ctx: _Ctx) -> None:
    db = ctx.db
    service.create_scope(db, None, code="JJJ", name="京津冀", kind="region",
                         areas=[("北京", None), ("天津", None), ("河北", None)])
    service.create_scope(db, None, code="LF-CITY", name="廊坊市", kind="city", areas=[("河北", "廊坊")])
    service.create_scope(db, None, code="XH-COUNTY", name="香河县医共体", kind="alliance",
                         alliance_id=ctx.alliances[COUNTY_ALLIANCE].id)
    year = clock.today_local().year
    lines = ["item_code,item_name,kind,loinc,codes,price_yuan,scope_code,valid_days,institution,qc_from,qc_to,qc_body"]
    qualified = {(inst, scope, code) for inst, scope, codes in QUALIFIED for code in codes}
    for code, name, kind, loinc, other, price, rules in ITEMS:
        for scope, days in rules.items():
            insts = [i for i, s, c in sorted(qualified) if s == scope and c == code]
            if not insts:
                lines.append(f"{code},{name},{kind},{loinc},{other},{price},{scope},{days},,,,")
            for inst in insts:
                lines.append(f"{code},{name},{kind},{loinc},{other},{price},{scope},{days},{inst},"
                             f"{year}-01-01,{year}-12-31,{QC_BODY[scope]}")
    # last year's thyroid QC of 香河 lapsed at the end of the year (results of 2025 carry no mark after it)
    lines.append(f"TFT,甲状腺功能（FT3/FT4/TSH）,lab,,LAB-TFT;TH3,120,JJJ,60,{XIANGHE},{year - 1}-03-01,"
                 f"{year - 1}-10-31,{QC_BODY['JJJ']}")
    catalogue.import_catalogue(db, None, catalogue.read_rows("\n".join(lines).encode()))
    # 北京朝阳医院's own fee for the panel (Beijing price list) is what a reuse there saves
    item = db.scalar(select(DiagnosticItem).where(DiagnosticItem.code == "LAB-TFT",
                                                  DiagnosticItem.reading_centre_institution_id == ctx.inst[BJCY].id))
    if item is None:
        item = DiagnosticItem(code="LAB-TFT", name="甲状腺功能（FT3/FT4/TSH）", kind="lab", modality="LAB",
                              reading_centre_institution_id=ctx.inst[BJCY].id, note="北京朝阳医院检验科")
        db.add(item)
        db.flush()
    if db.scalar(select(ItemPrice.id).where(ItemPrice.item_id == item.id,
                                            ItemPrice.institution_id == ctx.inst[BJCY].id)) is None:
        db.add(ItemPrice(item_id=item.id, institution_id=ctx.inst[BJCY].id, price_fen=BJCY_TFT_PRICE_FEN,
                         fee_standard="北京市医疗服务价格"))
    db.flush()


def _register(ctx: _Ctx, at: datetime, name: str | None = None, *, also_at_beijing: datetime | None = None) -> int:
    """Register at 香河 (and, for the history, later at 北京朝阳医院: same resident ID, same person)."""
    subject = ctx.subject("xianghe-doctor")
    plan = loader._Plan(XIANGHE, 1, 0.0, ("131024",), DEMO_NETWORK)
    ctx.mrn += 1
    person = ctx.people.person(plan)
    while name and (person.get("sex") != "女" or int(str(person.get("birth_date", "1970"))[:4]) > 1985):
        person = ctx.people.person(plan)  # the named patient is a woman of about fifty
    payload: dict[str, Any] = {**person, "mrn": f"MZ2026{970000 + ctx.mrn:06d}", "consent_scope": "alliance",
                               "consent_alliance_id": ctx.alliances[DEMO_NETWORK].id}
    if name:
        payload["name"] = name
    with clock.frozen(at):
        p = patient_service.register(ctx.db, subject, patient_service.RegistrationIn.model_validate(payload))
    if also_at_beijing is not None:
        ctx.mrn += 1
        with clock.frozen(also_at_beijing):
            patient_service.register(ctx.db, ctx.subject("bjcy-doctor"), patient_service.RegistrationIn.model_validate(
                {**payload, "mrn": f"MZ2026{970000 + ctx.mrn:06d}"}))
    return p.patient.id


def _thyroid(ctx: _Ctx, patient_id: int, at: datetime, lis_no: str, tsh: str = "2.36") -> int:
    values = {"FT3": "4.62", "FT4": "14.8", "TSH": tsh}
    with clock.frozen(at):
        order = import_external_result(ctx.db, ctx.subject("xianghe-doctor"), ExternalResultIn(
            patient_id=patient_id, item_code="LAB-TFT", external_id=lis_no, reported_at=at,
            observations=[ObservationIn(code=c, code_system="LN", name=n, value=values[n], units=u,
                                        reference_range=rr, abnormal_flags="H" if n == "TSH" and float(tsh) > 4.2 else None)
                          for c, n, u, rr in TFT_VALUES]))
    return order.id


def _refer_up(ctx: _Ctx, patient_id: int, at: datetime, reason: str) -> int:
    """Submitted at `at`, received 1 h and accepted 2 h later (so the receiver has its grant)."""
    db = ctx.db
    dept = ctx.dept(BJCY, "内分泌科")
    with clock.frozen(at):
        ref = referral.draft_and_submit(db, ctx.subject("xianghe-doctor"), ReferralIn.model_validate({
            "direction": "up", "patient_id": patient_id, "to_institution_id": ctx.inst[BJCY].id,
            "to_department_id": dept.id if dept else None, "priority": "routine", "target_service": "门诊",
            "reason": reason,
            "summary": {"diagnoses": [{"icd10": "E05.9", "text": "甲状腺毒症"}],
                        "key_results": "甲状腺功能（香河县人民医院检验科，HR 京津冀）见共享记录", "medications": [],
                        "allergies": []}}))
    receiver = ctx.subject("bjcy-doctor")
    with clock.frozen(at + timedelta(hours=1)):
        referral.receive(db, receiver, ref.id)
    with clock.frozen(at + timedelta(hours=2)):
        referral.accept(db, receiver, ref.id, note="同意接收，内分泌科门诊")
    return ref.id


def _history(ctx: _Ctx) -> int:
    """Six earlier patients: result at 香河, then seen at 北京朝阳医院 (registered there), reuse or re-test."""
    plans = (  # days ago of the result, days ago of the decision, decision, reason
        (110, 100, "reuse", None), (80, 70, "reuse", None), (75, 66, "retest", "condition_changed"),
        (50, 40, "reuse", None), (30, 20, "retest", "pre_surgery"), (15, 5, "reuse", None),
    )
    n = 0
    for i, (result_ago, decide_ago, decision, reason) in enumerate(plans):
        pid = _register(ctx, _at(result_ago + 1, 9), also_at_beijing=_at(decide_ago, 8, 40))
        oid = _thyroid(ctx, pid, _at(result_ago, 15), f"TH{clock.today_local().year}{1000 + i}",
                       tsh="0.05" if reason == "condition_changed" else "1.8")
        with clock.frozen(_at(decide_ago, 9, 30)):
            service.decide(ctx.db, ctx.subject("bjcy-doctor"), service.DecisionIn(
                patient_id=pid, item_code="LAB-TFT", decision=decision,
                reused_order_id=oid if decision == "reuse" else None, reason_code=reason,
                reason_text="术前评估需当日结果" if reason == "pre_surgery" else None,
                patient_informed=True))
        n += 1
    return n


def load(db: Session) -> dict[str, Any]:
    ctx = _Ctx(db)
    with loader.history_kept_in_app(db):
        _accounts(ctx)
        _network(ctx)
        _catalogue(ctx)
        # the DONE-WHEN patient: thyroid panel last month at 香河县人民医院, referred to 北京朝阳医院
        last_month = clock.today_local().replace(day=1) - timedelta(days=1)
        result_day = min(last_month.day, 20)
        result_ago = (clock.today_local() - last_month.replace(day=result_day)).days
        pid = _register(ctx, _at(result_ago + 2, 9), DONE_WHEN_PATIENT)
        order_id = _thyroid(ctx, pid, _at(result_ago, 16), f"TH{clock.today_local().year}0001", tsh="5.86")
        ref_id = _refer_up(ctx, pid, clock.now() - timedelta(hours=5), "甲状腺功能减退待查，TSH 升高，请内分泌科会诊明确诊断及治疗方案")
        decisions = _history(ctx)
    detail = {"patient_id": pid, "order_id": order_id, "referral_id": ref_id, "decisions": decisions}
    audit.record(db, None, MARKER_ACTION, loader.MARKER_RESOURCE, "recognition", channel="cli", detail=detail)
    db.flush()
    return detail
