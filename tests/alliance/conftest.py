"""A small Tianjin data set: a pediatric alliance and a general hospital's urban group."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.models.alliance import Alliance, Institution, Membership
from yilianti.models.auth import RoleAssignment, User
from yilianti.models.workforce import PracticeSite


@dataclass
class Tianjin:
    children: Institution  # 天津市儿童医院 — level 3 specialty, lead
    dongli: Institution  # 东丽医院 — level 2 general
    gegu: Institution  # 葛沽医院 — level 1 general: secondary, not grassroots
    taoyuan: Institution  # 河西区桃园街社区卫生服务中心 — level 1 community centre
    quanyechang: Institution  # 劝业场街社区卫生服务中心 — level 2, still grassroots (kind decides)
    xianshuigu: Institution  # 咸水沽医院 — a former member
    general: Institution  # 天津医科大学总医院 — lead of the second alliance
    peds: Alliance
    urban: Alliance
    former: Membership
    sysadmin: User
    peds_admin: User
    taoyuan_admin: User


def _member(db: Session, a: Alliance, inst: Institution, role: str, joined: date | None = None,
            left: date | None = None) -> Membership:
    m = Membership(alliance_id=a.id, institution_id=inst.id, role=role, joined_on=joined, left_on=left)
    db.add(m)
    db.flush()
    return m


@pytest.fixture
def tj(db: Session) -> Tianjin:
    children = b.institution(db, "天津市儿童医院", kind="specialty", level=3, province="天津", city="天津")
    dongli = b.institution(db, "东丽医院", kind="general", level=2, province="天津", city="天津")
    dongli.county = "东丽区"
    gegu = b.institution(db, "津南区葛沽医院", kind="general", level=1, province="天津", city="天津")
    taoyuan = b.institution(db, "河西区桃园街社区卫生服务中心", kind="community_center", level=1, province="天津",
                            city="天津")
    taoyuan.county = "河西区"
    quanyechang = b.institution(db, "和平区劝业场街社区卫生服务中心", kind="community_center", level=2,
                                province="天津", city="天津")
    xianshuigu = b.institution(db, "咸水沽医院", kind="general", level=2, province="天津", city="天津")
    general = b.institution(db, "天津医科大学总医院", kind="general", level=3, province="天津", city="天津")

    peds = Alliance(key="tj-pediatric", name="天津市儿科医疗联合体", model="urban_group", specialty="pediatrics",
                    tight=True, founded="2017-03", slot_reserve_share=0.3334, bed_reserve_share=0.25,
                    reserve_for="members", reserve_cutoff_hours=24)
    urban = Alliance(key="tmu-general-group", name="天津医科大学总医院医联体", model="urban_group")
    db.add_all([peds, urban])
    db.flush()
    _member(db, peds, children, "lead", date(2017, 3, 1))
    _member(db, peds, dongli, "member", date(2017, 3, 1))
    _member(db, peds, gegu, "member", date(2019, 6, 1))
    _member(db, peds, taoyuan, "member", date(2017, 3, 1))
    _member(db, peds, quanyechang, "member", date(2018, 1, 1))
    former = _member(db, peds, xianshuigu, "member", date(2017, 3, 1), date(2020, 12, 31))
    _member(db, urban, general, "lead", date(2016, 1, 1))
    _member(db, urban, taoyuan, "collaborating", date(2018, 5, 1))

    sysadmin = b.user(db, None, "system_admin", username="sysadmin")
    peds_admin = b.user(db, children, "doctor", username="pedsadmin")
    db.add(RoleAssignment(user_id=peds_admin.id, role="alliance_admin", alliance_id=peds.id))
    taoyuan_admin = b.user(db, taoyuan, "institution_admin", username="taoyuanadmin")
    db.flush()
    return Tianjin(children, dongli, gegu, taoyuan, quanyechang, xianshuigu, general, peds, urban, former,
                   sysadmin, peds_admin, taoyuan_admin)


def visiting_expert(db: Session, tj: Tianjin) -> None:
    """A pediatrician of the children's hospital holds a Wednesday-morning clinic at Taoyuan."""
    dept = b.department(db, tj.taoyuan, "全科")
    doc = b.practitioner(db, tj.children, name="刘志强", title="主任医师")
    db.add(PracticeSite(practitioner_id=doc.id, institution_id=tj.taoyuan.id, department_id=dept.id, weekday=3,
                        period="am", starts_on=date(2023, 9, 1)))
    b.practitioner(db, tj.taoyuan, name="王秀兰", title="主治医师")
    db.flush()
