"""A Tianjin alliance: a children's hospital expert who sees patients at a community centre."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.models.alliance import Department, Institution
from yilianti.models.workforce import PracticeSite, Practitioner


@dataclass
class Tianjin:
    lead: Institution
    community: Institution
    other: Institution
    respiratory: Department
    community_gp: Department
    expert: Practitioner
    gp: Practitioner
    site: PracticeSite


def tianjin(db: Session) -> Tianjin:
    lead = b.institution(db, "天津市儿童医院", province="天津", city="天津市")
    community = b.institution(db, "河西区桃园街社区卫生服务中心", kind="community_center", level=1,
                              province="天津", city="天津市")
    other = b.institution(db, "天津市第一中心医院", province="天津", city="天津市")
    b.alliance(db, (lead, "lead"), (community, "member"), name="天津市儿童医院儿科医联体")
    respiratory = b.department(db, lead, "呼吸科")
    community_gp = b.department(db, community, "全科")
    expert = Practitioner(name="刘建华", sex="男", title="主任医师", specialty="小儿呼吸",
                          licence_date=date(2001, 8, 1), is_department_head=True,
                          home_institution_id=lead.id, department_id=respiratory.id, phone="13920001234")
    gp = Practitioner(name="王丽", sex="女", title="主治医师", specialty="全科医学", licence_date=date(2015, 9, 1),
                      home_institution_id=community.id, department_id=community_gp.id)
    db.add_all([expert, gp])
    db.flush()
    site = PracticeSite(practitioner_id=expert.id, institution_id=community.id, department_id=community_gp.id,
                        weekday=3, period="am", starts_on=date(2024, 3, 1), note="儿科专家门诊")
    db.add(site)
    db.flush()
    return Tianjin(lead, community, other, respiratory, community_gp, expert, gp, site)
