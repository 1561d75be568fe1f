"""Builders for EMPI tests: members of one alliance, their doctors and a steward."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.authz.subject import Subject
from yilianti.models.alliance import Alliance, Institution
from yilianti.models.empi import MatchCandidate
from yilianti.patients import service as patients


@dataclass
class World:
    township: Institution
    county: Institution
    children: Institution
    alliance: Alliance
    d_town: Subject
    d_county: Subject
    d_child: Subject
    steward: Subject


def world(db: Session) -> World:
    town = b.institution(db, "渠口镇卫生院", kind="township", level=1, province="河北")
    county = b.institution(db, "香河县人民医院", province="河北")
    child = b.institution(db, "北京儿童医院", kind="specialty", province="北京")
    alliance = b.alliance(db, (child, "lead"), (county, "member"), (town, "member"), name="测试儿科联盟")
    steward = b.subject_for(db, b.user(db, county, "institution_admin"))
    return World(town, county, child, alliance, b.subject_for(db, b.user(db, town, "doctor")),
                 b.subject_for(db, b.user(db, county, "doctor")), b.subject_for(db, b.user(db, child, "doctor")),
                 steward)


def register(db: Session, who: Subject, name: str, *, birth: date | None = None, rid: str | None = None,
             phone: str | None = "13912345678", address: str | None = "河北省廊坊市香河县渠口镇东街12号",
             sex: str = "男", consent: str = "none", **kw: Any) -> patients.Registered:
    if birth is None and not rid:
        birth = date(2016, 5, 20)
    data: dict[str, Any] = {"name": name, "sex": sex, "birth_date": birth.isoformat() if birth else None,
                            "resident_id": rid,
                            "phone": phone, "address": address, "consent_scope": consent}
    data.update(kw)
    return patients.register(db, who, patients.RegistrationIn(**data))


def open_candidates(db: Session) -> list[MatchCandidate]:
    return list(db.scalars(select(MatchCandidate).where(MatchCandidate.status == "open")
                           .order_by(MatchCandidate.id)))


def count(db: Session, model: Any, *where: Any) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where)) or 0
