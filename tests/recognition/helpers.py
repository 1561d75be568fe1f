"""A small 京津冀 world: 香河县人民医院 (河北·廊坊) qualified for the thyroid panel, a Beijing hospital,
one referral-style grant, a patient with a thyroid panel from 香河 and the catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.kit import clock
from yilianti.models.alliance import Institution
from yilianti.models.auth import User
from yilianti.models.diagnostics import DiagnosticItem, ItemPrice
from yilianti.recognition import catalogue, service
from yilianti.recognition.results import ExternalResultIn, ObservationIn, import_external_result

CSV = (
    "item_code,item_name,kind,loinc,codes,price_yuan,scope_code,valid_days,institution,qc_from,qc_to,qc_body\n"
    "TFT,甲状腺功能（FT3/FT4/TSH）,lab,,TH3;LAB-TFT,120,JJJ,30,{xh},2026-01-01,2026-12-31,河北省临床检验中心\n"
    "CBC,血常规,lab,58410-2,,25,JJJ,7,{xh},2026-01-01,2026-12-31,河北省临床检验中心\n"
    "CT-CHEST,胸部CT平扫,imaging,,,260,JJJ,180,,,,\n"
)


@dataclass
class World:
    xianghe: Institution
    beijing: Institution
    outside: Institution
    xh_doctor: User
    bj_doctor: User
    xh: Subject
    bj: Subject
    patient_id: int


def world(db: Session, *, consent: str | None = "all") -> World:
    xianghe = b.institution(db, "测试香河县人民医院", province="河北", city="廊坊")
    beijing = b.institution(db, "测试北京医院", province="北京", city="北京")
    outside = b.institution(db, "测试郑州医院", province="河南", city="郑州")
    b.alliance(db, (xianghe, "member"), (beijing, "member"), (outside, "member"))
    b.department(db, beijing, "内分泌科")
    xh_doctor = b.user(db, xianghe, "doctor")
    bj_doctor = b.user(db, beijing, "doctor")
    xh = b.subject_for(db, xh_doctor)
    patient = b.patient(db, xh, "李秀兰", date(1968, 4, 2), consent=consent)
    policy.grant_access(db, None, patient_id=patient.id, institution_id=beijing.id, kind="referral",
                        reason="转诊", source=("referral", 1))
    service.create_scope(db, None, code="JJJ", name="京津冀", kind="region",
                         areas=[("北京市", None), ("天津市", None), ("河北省", None)])
    catalogue.import_catalogue(db, None, catalogue.read_rows(CSV.format(xh=xianghe.name).encode()))
    return World(xianghe, beijing, outside, xh_doctor, bj_doctor, xh, b.subject_for(db, bj_doctor), patient.id)


def thyroid(db: Session, w: World, reported_at: datetime, external_id: str = "LIS-1") -> int:
    order = import_external_result(db, w.xh, ExternalResultIn(
        patient_id=w.patient_id, item_code="LAB-TFT", external_id=external_id, reported_at=reported_at,
        observations=[ObservationIn(code="3051-0", name="FT3", value="4.8", units="pmol/L", reference_range="3.1-6.8"),
                      ObservationIn(code="3024-7", name="FT4", value="15.2", units="pmol/L", reference_range="12-22"),
                      ObservationIn(code="3016-3", name="TSH", value="2.1", units="mIU/L", reference_range="0.27-4.2")]))
    return order.id


def price(db: Session, inst: Institution, code: str, fen: int) -> None:
    item = DiagnosticItem(code=code, name=code, kind="lab", reading_centre_institution_id=inst.id)
    db.add(item)
    db.flush()
    db.add(ItemPrice(item_id=item.id, institution_id=inst.id, price_fen=fen))
    db.flush()


def days_ago(n: int) -> datetime:
    return clock.now() - timedelta(days=n)
