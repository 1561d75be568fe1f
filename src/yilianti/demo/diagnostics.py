"""Demo data of the shared diagnostic centre (issue 6): the 香河县医共体 reads for 渠口镇卫生院.

The YAML reports that 香河县人民医院 reads "三十余个检查、检验项目" for its township centres (CT,
ECG, 24 h Holter, islet function, thyroid function, tumour markers, the eight infectious-disease
items ...) and that "患者按乡镇卫生院收费标准交费". So:

- a catalogue of 34 items read by 香河县人民医院, each priced at the township fee standard for
  渠口镇卫生院 and at the county standard for 香河县人民医院 itself;
- about two months of orders placed by qukou-doctor (李春生) for patients registered at 渠口镇卫生院,
  acquired, transmitted, read and signed by xianghe-reader (马文静) — all through the workflow
  service under a frozen clock, so TAT charts have data;
- a reader in training (xianghe-trainee: a 渠口镇卫生院 doctor in 进修 at the county): a quarter of
  the imaging reports are hers, countersigned by 马文静; today one preliminary report waits for the
  second signature;
- open work: received studies on the worklist (one STAT), one claimed by 马文静, two orders not
  yet transmitted; one open critical value (serum potassium 6.8 mmol/L HH from the county LIS over
  HL7, not yet acknowledged) and one quarantined HL7 message whose patient ID matches exactly, and one
  GBK message refused for its character set (re-processable once the sender's charset is configured).

`load(db)` flushes, never commits, and records the marker audit event ("demo_load_diagnostics").
"""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.auth import service as auth_service
from yilianti.authz.subject import Subject
from yilianti.demo import loader
from yilianti.diagnostics.orders import workflow
from yilianti.diagnostics.reading import service as reading
from yilianti.diagnostics.receivers import ingest, mllp
from yilianti.kit import clock
from yilianti.models.alliance import Institution
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import User
from yilianti.models.diagnostics import DiagnosticItem, DiagnosticOrder, ItemPrice, LabObservation
from yilianti.models.patient import CareRelationship, Patient, PatientIdentifier
from yilianti.models.workforce import PracticeSite, Practitioner

__all__ = ["ITEMS", "MARKER_ACTION", "is_loaded", "load"]

MARKER_ACTION = "demo_load_diagnostics"
SEED = loader.SEED + 6
COUNTY, TOWNSHIP = loader.COUNTY, loader.TOWNSHIP
TOWNSHIP_STANDARD = "河北省乡镇卫生院收费标准"
COUNTY_STANDARD = "河北省二级医院收费标准"

# code, name, kind, modality, LOINC, expected TAT minutes, township fee (yuan), county fee (yuan)
ITEMS: tuple[tuple[str, str, str, str, str | None, int, float, float], ...] = (
    ("CT-HEAD", "头颅CT平扫", "imaging", "CT", "30799-1", 120, 150, 180),
    ("CT-CHEST", "胸部CT平扫", "imaging", "CT", "29252-4", 120, 180, 220),
    ("CT-ABD", "上腹部CT平扫", "imaging", "CT", "79103-8", 180, 200, 240),
    ("CT-LSPINE", "腰椎CT平扫", "imaging", "CT", "24967-2", 180, 160, 200),
    ("DR-CHEST", "胸部正位片(DR)", "imaging", "DX", "36643-5", 60, 50, 65),
    ("DR-KNEE", "膝关节正侧位片(DR)", "imaging", "DX", "37637-6", 120, 60, 75),
    ("US-ABD", "腹部彩超(肝胆胰脾)", "imaging", "US", None, 240, 80, 100),
    ("US-THY", "甲状腺彩超", "imaging", "US", None, 240, 70, 90),
    ("US-CAROTID", "颈动脉彩超", "imaging", "US", None, 240, 90, 110),
    ("ECG-12", "常规12导联心电图", "ecg", "ECG", "11524-6", 30, 20, 25),
    ("ECG-HOLTER", "24小时动态心电图", "ecg", "ECG", "18754-2", 24 * 60, 180, 220),
    ("LAB-CBC", "血常规(五分类)", "lab", "LAB", "58410-2", 120, 18, 20),
    ("LAB-LFT", "肝功能", "lab", "LAB", "24325-3", 240, 40, 50),
    ("LAB-RFT", "肾功能", "lab", "LAB", "24362-6", 240, 30, 36),
    ("LAB-LIPID", "血脂四项", "lab", "LAB", "24331-1", 240, 28, 34),
    ("LAB-ELEC", "电解质(钾钠氯)", "lab", "LAB", "24326-1", 120, 15, 18),
    ("LAB-GLU", "空腹血糖", "lab", "LAB", "1558-6", 120, 5, 6),
    ("LAB-HBA1C", "糖化血红蛋白", "lab", "LAB", "4548-4", 24 * 60, 45, 55),
    ("LAB-OGTT-INS", "胰岛功能(胰岛素释放试验)", "lab", "LAB", None, 24 * 60, 120, 150),
    ("LAB-CPEP", "C肽释放试验", "lab", "LAB", None, 24 * 60, 110, 140),
    ("LAB-FT3", "游离三碘甲状腺原氨酸(FT3)", "lab", "LAB", "3051-0", 24 * 60, 25, 30),
    ("LAB-FT4", "游离甲状腺素(FT4)", "lab", "LAB", "3024-7", 24 * 60, 25, 30),
    ("LAB-TSH", "促甲状腺激素(TSH)", "lab", "LAB", "3016-3", 24 * 60, 25, 30),
    ("LAB-AFP", "甲胎蛋白(AFP)", "lab", "LAB", "1834-1", 24 * 60, 35, 42),
    ("LAB-CEA", "癌胚抗原(CEA)", "lab", "LAB", "2039-6", 24 * 60, 35, 42),
    ("LAB-HBSAG", "乙肝表面抗原(HBsAg)", "lab", "LAB", "5196-1", 24 * 60, 12, 15),
    ("LAB-HBSAB", "乙肝表面抗体(抗-HBs)", "lab", "LAB", "5193-8", 24 * 60, 12, 15),
    ("LAB-HBEAG", "乙肝e抗原(HBeAg)", "lab", "LAB", "13954-3", 24 * 60, 12, 15),
    ("LAB-HBEAB", "乙肝e抗体(抗-HBe)", "lab", "LAB", "13953-5", 24 * 60, 12, 15),
    ("LAB-HBCAB", "乙肝核心抗体(抗-HBc)", "lab", "LAB", "13952-7", 24 * 60, 12, 15),
    ("LAB-HCV", "丙肝抗体(抗-HCV)", "lab", "LAB", "13955-0", 24 * 60, 30, 36),
    ("LAB-HIV", "艾滋病抗体(抗-HIV)", "lab", "LAB", "7917-8", 24 * 60, 30, 36),
    ("LAB-TP", "梅毒螺旋体抗体(TP)", "lab", "LAB", "8041-6", 24 * 60, 25, 30),
    ("LAB-CRP", "C反应蛋白", "lab", "LAB", "1988-5", 120, 15, 18),
)

# what a normal result of each lab item looks like: (code, name, LOINC, value, units, range)
_LAB_RESULTS: dict[str, list[tuple[str, str, float, str, str]]] = {
    "LAB-CBC": [("6690-2", "白细胞计数", 6.3, "10*9/L", "3.5-9.5"), ("718-7", "血红蛋白", 138, "g/L", "115-150"),
                ("777-3", "血小板计数", 215, "10*9/L", "125-350")],
    "LAB-ELEC": [("2823-3", "血钾", 4.1, "mmol/L", "3.5-5.3"), ("2951-2", "血钠", 140, "mmol/L", "137-147"),
                 ("2075-0", "血氯", 102, "mmol/L", "99-110")],
    "LAB-GLU": [("1558-6", "空腹血糖", 5.4, "mmol/L", "3.9-6.1")],
    "LAB-TSH": [("3016-3", "促甲状腺激素", 2.1, "mIU/L", "0.27-4.2")],
    "LAB-FT3": [("3051-0", "游离T3", 4.8, "pmol/L", "3.1-6.8")],
    "LAB-FT4": [("3024-7", "游离T4", 16.2, "pmol/L", "12-22")],
    "LAB-AFP": [("1834-1", "甲胎蛋白", 3.2, "ng/mL", "0-7")],
    "LAB-CEA": [("2039-6", "癌胚抗原", 2.1, "ng/mL", "0-5")],
    "LAB-CRP": [("1988-5", "C反应蛋白", 3.5, "mg/L", "0-10")],
}

_IMAGING_REPORTS = {
    "CT-HEAD": ("脑实质密度均匀，灰白质分界清楚，脑室系统未见扩大，中线结构居中。", "头颅CT平扫未见明显异常。"),
    "CT-CHEST": ("双肺纹理清晰，右肺下叶见小结节影，直径约4mm，边界清；纵隔未见肿大淋巴结。", "右肺下叶微小结节，建议12个月后复查。"),
    "DR-CHEST": ("两肺纹理增多，未见明显实变影，心影大小形态正常，双膈面光整。", "两肺纹理增多，请结合临床。"),
    "US-ABD": ("肝脏大小形态正常，实质回声稍增强，胆囊壁光滑，胰、脾未见异常。", "轻度脂肪肝。"),
    "US-THY": ("甲状腺大小正常，右叶见一低回声结节约6×5mm，边界清，TI-RADS 3类。", "甲状腺右叶结节（TI-RADS 3类），建议随访。"),
}
_ECG_REPORT = ("窦性心律，心率72次/分，PR 160ms，QRS 92ms，QT/QTc 380/416ms，电轴+45°。", "窦性心律，正常心电图。",
               {"HR": 72, "PR": 160, "QRS": 92, "QT": 380, "QTc": 416, "axis": 45})
_HOLTER_REPORT = ("总心搏约10.2万次，平均心率71次/分，偶发房性早搏126次，未见ST-T动态改变。", "窦性心律，偶发房性早搏。",
                  {"total_beats": 102134, "mean_HR": 71, "PAC": 126, "PVC": 8})


def is_loaded(db: Session) -> bool:
    return db.scalar(select(AuditEvent.id).where(AuditEvent.action == MARKER_ACTION,
                                                 AuditEvent.resource_type == loader.MARKER_RESOURCE).limit(1)) is not None


def _at(days_ago: int, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(clock.today_local() - timedelta(days=days_ago), time(hh, mm), clock.SHANGHAI)


def _subject(db: Session, username: str, institution: Institution) -> Subject | None:
    user = db.scalar(select(User).where(User.username == username))
    return None if user is None else auth_service.build_subject(db, user, institution.id)


def _catalogue(db: Session, county: Institution, township: Institution) -> dict[str, DiagnosticItem]:
    items: dict[str, DiagnosticItem] = {}
    for code, name, kind, modality, loinc, tat, town_fee, county_fee in ITEMS:
        item = DiagnosticItem(code=code, name=name, kind=kind, modality=modality, loinc_code=loinc,
                              local_code=f"XH{code}", reading_centre_institution_id=county.id,
                              expected_tat_minutes=tat, active=True)
        db.add(item)
        db.flush()
        db.add(ItemPrice(item_id=item.id, institution_id=township.id, price_fen=round(town_fee * 100),
                         fee_standard=TOWNSHIP_STANDARD))
        db.add(ItemPrice(item_id=item.id, institution_id=county.id, price_fen=round(county_fee * 100),
                         fee_standard=COUNTY_STANDARD))
        items[code] = item
    db.flush()
    return items


def _trainee(db: Session, county: Institution, township: Institution) -> Subject | None:
    """The demo trainee reader (loader.DIAGNOSTICS_ACCOUNTS): a 渠口镇卫生院 doctor in training (进修)
    at 香河县人民医院 — the workforce's trainee flag — holding the reader role at home and at the county
    (where she reads, after switching the acting institution)."""
    spec = loader.DIAGNOSTICS_ACCOUNTS[0]
    user = db.scalar(select(User).where(User.username == spec.username))
    if user is None:
        prac = db.scalar(select(Practitioner).join(PracticeSite, PracticeSite.practitioner_id == Practitioner.id)
                         .where(Practitioner.is_trainee.is_(True), Practitioner.home_institution_id == township.id,
                                PracticeSite.institution_id == county.id).order_by(Practitioner.id).limit(1))
        if prac is None:
            return None
        user = auth_service.create_user(db, None, spec.username, loader.DEMO_PASSWORD, spec.display_name or prac.name,
                                        [(str(spec.role), township.id, None), (str(spec.role), county.id, None)],
                                        practitioner_id=prac.id)
    return auth_service.build_subject(db, user, county.id)


def _report(db: Session, reader: Subject, order: DiagnosticOrder, item: DiagnosticItem, r: random.Random,
            at: datetime, senior: Subject | None = None) -> None:
    """Results (for lab items) arrive, the reader claims and signs — at `at`; a trainee's report is
    countersigned by `senior` shortly after."""
    with clock.frozen(at - timedelta(minutes=r.randint(3, 20))):
        reading.claim(db, reader, order.id)
    if senior is not None:
        with clock.frozen(at):
            findings, conclusion = _IMAGING_REPORTS.get(item.code, ("所见未见明显异常。", f"{item.name}未见明显异常。"))
            reading.sign(db, reader, order.id, findings=findings, conclusion=conclusion)
        with clock.frozen(at + timedelta(minutes=r.randint(10, 40))):
            reading.second_sign(db, senior, order.id)
        return
    with clock.frozen(at):
        if item.kind == "lab":
            rows = _LAB_RESULTS.get(item.code) or [(item.loinc_code or item.code, item.name, 0, "", "阴性")]
            for n, (code, name, value, units, rng) in enumerate(rows, start=1):
                shown = "阴性" if rng == "阴性" else f"{value * r.uniform(0.9, 1.1):.1f}"
                db.add(LabObservation(order_id=order.id, set_id=n, value_type="NM" if rng != "阴性" else "ST",
                                      code=code, code_system="LN", name=name, value=shown, units=units or None,
                                      reference_range=rng, abnormal_flags="N", result_status="F", observed_at=at))
            db.flush()
            reading.sign(db, reader, order.id, findings=None, conclusion="检验结果见上表，各项在参考范围内。")
        elif item.code == "ECG-12":
            findings, conclusion, m = _ECG_REPORT
            reading.sign(db, reader, order.id, findings=findings, conclusion=conclusion, measurements=dict(m))
        elif item.code == "ECG-HOLTER":
            findings, conclusion, m = _HOLTER_REPORT
            reading.sign(db, reader, order.id, findings=findings, conclusion=conclusion, measurements=dict(m))
        else:
            findings, conclusion = _IMAGING_REPORTS.get(item.code, ("所见未见明显异常。", f"{item.name}未见明显异常。"))
            reading.sign(db, reader, order.id, findings=findings, conclusion=conclusion)


def _arrive(db: Session, site: Subject, reader: Subject, order: DiagnosticOrder, at: datetime) -> None:
    with clock.frozen(at + timedelta(minutes=20)):
        workflow.mark_transmitted(db, site, order.id)
    with clock.frozen(at + timedelta(minutes=25)):
        workflow.system_received(db, order, channel="dicom" if order.kind != "lab" else "hl7")


def load(db: Session) -> dict[str, int]:
    inst = {i.name: i for i in db.scalars(select(Institution).where(Institution.name.in_((COUNTY, TOWNSHIP))))}
    if len(inst) < 2:
        return {}
    county, township = inst[COUNTY], inst[TOWNSHIP]
    site = _subject(db, "qukou-doctor", township)
    reader = _subject(db, "xianghe-reader", county)
    if site is None or reader is None:
        return {}
    r = random.Random(SEED)
    with loader.history_kept_in_app(db, keep=lambda m: (m.payload or {}).get("kind") == "critical"):
        items = _catalogue(db, county, township)
        trainee = _trainee(db, county, township)
        patients = list(dict.fromkeys(db.scalars(
            select(Patient.id).join(CareRelationship, CareRelationship.patient_id == Patient.id)
            .where(CareRelationship.institution_id == township.id, CareRelationship.ended_at.is_(None))
            .order_by(Patient.id))))
        if not patients:
            return {}
        weights = {"CT-HEAD": 6, "CT-CHEST": 6, "DR-CHEST": 8, "ECG-12": 10, "ECG-HOLTER": 3, "US-ABD": 4,
                   "LAB-CBC": 8, "LAB-TSH": 4, "LAB-FT3": 2, "LAB-FT4": 2, "LAB-AFP": 2, "LAB-CEA": 2, "LAB-ELEC": 3}
        codes = [c for c, *_ in ITEMS]
        pick = [c for c in codes for _ in range(weights.get(c, 1))]
        done = 0
        for days_ago in range(62, 0, -1):
            day = clock.today_local() - timedelta(days=days_ago)
            if day.weekday() == 6:
                continue
            for _ in range(r.randint(1, 3)):
                item = items[r.choice(pick)]
                at = _at(days_ago, r.randint(8, 11), r.randint(0, 59))
                priority = r.choices(("routine", "urgent", "stat"), (8, 2, 1))[0]
                with clock.frozen(at):
                    order = workflow.place_order(db, site, patient_id=r.choice(patients), item_id=item.id,
                                                 priority=priority, clinical_question=r.choice((
                                                     "头晕乏力一周", "体检复查", "胸闷心悸两天", "咳嗽咳痰一周",
                                                     "糖尿病随访", "高血压随访", "甲状腺结节随访", "乙肝筛查")))
                _arrive(db, site, reader, order, at)
                # most within the expected time, some over (the night, a busy Monday)
                share = r.choice((0.3, 0.5, 0.6, 0.8, 0.9, 1.3)) if priority == "routine" else r.uniform(0.2, 0.6)
                minutes = max(35, int(item.expected_tat_minutes * share))
                if trainee is not None and item.kind == "imaging" and r.random() < 0.25:
                    _report(db, trainee, order, item, r, at + timedelta(minutes=max(35, minutes - 40)), senior=reader)
                else:
                    _report(db, reader, order, item, r, at + timedelta(minutes=minutes))
                done += 1

        # open work on today's worklist
        open_orders = []
        for code, hh, mm, priority in (("CT-HEAD", 8, 5, "stat"), ("DR-CHEST", 8, 40, "routine"),
                                       ("ECG-12", 9, 10, "urgent"), ("CT-CHEST", 9, 30, "routine"),
                                       ("US-THY", 9, 50, "routine")):
            # placed an hour before now at the latest: the claims and the trainee's signature below happen 50 to
            # 15 minutes ago, after the order (a load at 08:40–09:35 placed 08:40's order after its claim: 404)
            at = _at(0, hh, mm) if _at(0, hh, mm) < clock.now() - timedelta(hours=1) else clock.now() - timedelta(hours=3)
            with clock.frozen(at):
                order = workflow.place_order(db, site, patient_id=r.choice(patients), item_id=items[code].id,
                                             priority=priority, clinical_question="今日门诊")
            _arrive(db, site, reader, order, at)
            open_orders.append(order)
        with clock.frozen(clock.now() - timedelta(minutes=30)):
            reading.claim(db, reader, open_orders[-1].id)
        if trainee is not None:  # the trainee's preliminary report waits for 马文静's second signature
            with clock.frozen(clock.now() - timedelta(minutes=50)):
                reading.claim(db, trainee, open_orders[1].id)
            with clock.frozen(clock.now() - timedelta(minutes=15)):
                reading.sign(db, trainee, open_orders[1].id, findings=_IMAGING_REPORTS["DR-CHEST"][0],
                              conclusion=_IMAGING_REPORTS["DR-CHEST"][1])
        for code in ("LAB-TSH", "CT-ABD"):
            with clock.frozen(clock.now() - timedelta(hours=1)):
                workflow.place_order(db, site, patient_id=r.choice(patients), item_id=items[code].id,
                                     clinical_question="待采集")

        # an electrolyte panel from the county LIS over HL7 with a critical potassium, not yet acknowledged
        patient_id = patients[0]
        with clock.frozen(clock.now() - timedelta(minutes=40)):
            k_order = workflow.place_order(db, site, patient_id=patient_id, item_id=items["LAB-ELEC"].id,
                                           priority="urgent", clinical_question="乏力、双下肢无力")
            workflow.mark_acquired(db, site, k_order.id)
            workflow.mark_transmitted(db, site, k_order.id)
        rid = db.scalar(select(PatientIdentifier.value).where(PatientIdentifier.patient_id == patient_id,
                                                             PatientIdentifier.authority == "CN-RIC"))
        msg = "\r".join([
            "MSH|^~\\&|XH-LIS|XHXRMYY|YILIANTI|QKWSY|20261123090000||ORU^R01|DEMO-K-1|P|2.5.1",
            f"PID|1||{rid or ''}^^^CN-RIC||demo",
            f"OBR|1|{k_order.accession_number}|XH-LAB-K1|LAB-ELEC^电解质",
            "OBX|1|NM|2823-3^血钾^LN||6.8|mmol/L|3.5-5.3|HH|||F",
            "OBX|2|NM|2951-2^血钠^LN||136|mmol/L|137-147|L|||F",
            "OBX|3|NM|2075-0^血氯^LN||101|mmol/L|99-110|N|||F",
        ])
        with clock.frozen(clock.now() - timedelta(minutes=5)):
            ingest.ingest_hl7(db, msg)
        # a message from the county LIS with an accession number the platform does not know
        other = patients[1] if len(patients) > 1 else patient_id
        other_rid = db.scalar(select(PatientIdentifier.value).where(PatientIdentifier.patient_id == other,
                                                                   PatientIdentifier.authority == "CN-RIC"))
        with clock.frozen(clock.now() - timedelta(minutes=20)):
            ingest.ingest_hl7(db, "\r".join([
                "MSH|^~\\&|XH-LIS|XHXRMYY|YILIANTI|QKWSY|20261123083000||ORU^R01|DEMO-Q-1|P|2.5.1",
                f"PID|1||{other_rid or ''}^^^CN-RIC||demo",
                "OBR|1|XH-LIS-20231|XH-LAB-Q1|LAB-TSH^促甲状腺激素",
                "OBX|1|NM|3016-3^促甲状腺激素^LN||5.9|mIU/L|0.27-4.2|H|||F",
            ]))
        # the township's LIS sends GBK without MSH-18: refused (AR), its bytes kept; configuring
        # YILIANTI_HL7_CHARSETS='{"QK-LIS": "GBK"}' and re-processing it on the quarantine page reads it
        # (then AE: its own accession number, the patient suggested by the resident ID, to attach)
        with clock.frozen(clock.now() - timedelta(minutes=12)):
            ingest.ingest_hl7(db, mllp.decode("\r".join([
                "MSH|^~\\&|QK-LIS|渠口镇卫生院|YILIANTI|XHXRMYY|20261123084000||ORU^R01|DEMO-GBK-1|P|2.5.1",
                f"PID|1||{rid or ''}^^^CN-RIC||患者",
                "OBR|1|QK-LIS-3301|QK-LAB-G1|LAB-ELEC^电解质",
                "OBX|1|NM|2951-2^血钠^LN||136|mmol/L|137-147|L|||P",
            ]).encode("gbk")), sender="QK-LIS@渠口镇卫生院")
    audit.record(db, None, MARKER_ACTION, loader.MARKER_RESOURCE, "v1", channel="cli",
                 detail={"items": len(items), "reported_orders": done, "open_orders": len(open_orders)})
    db.flush()
    return {"items": len(items), "reported_orders": done}
