"""Small builders for test data. Each returns the persisted ORM object."""

from __future__ import annotations

import itertools
from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from yilianti.auth import service as auth_service
from yilianti.authz.subject import Subject
from yilianti.models.alliance import Alliance, Department, Institution, Membership
from yilianti.models.auth import User
from yilianti.models.workforce import Practitioner
from yilianti.patients import service as patient_service

_seq = itertools.count(1)
PASSWORD = "Passw0rd!"


def institution(db: Session, name: str | None = None, kind: str = "general", level: int | None = 3,
                province: str = "北京", city: str | None = None) -> Institution:
    inst = Institution(name=name or f"测试医院{next(_seq)}", kind=kind, level=level, province=province, city=city)
    db.add(inst)
    db.flush()
    return inst


def alliance(db: Session, *members: tuple[Institution, str], name: str | None = None,
             model: str = "urban_group") -> Alliance:
    n = next(_seq)
    a = Alliance(key=f"test-{n}", name=name or f"测试医联体{n}", model=model)
    db.add(a)
    db.flush()
    for inst, role in members:
        db.add(Membership(alliance_id=a.id, institution_id=inst.id, role=role))
    db.flush()
    return a


def department(db: Session, inst: Institution, name: str = "儿科") -> Department:
    d = Department(institution_id=inst.id, name=name)
    db.add(d)
    db.flush()
    return d


def practitioner(db: Session, inst: Institution, name: str = "张医生", title: str = "主任医师",
                 licence: date | None = date(2010, 7, 1)) -> Practitioner:
    p = Practitioner(name=name, title=title, home_institution_id=inst.id, licence_date=licence)
    db.add(p)
    db.flush()
    return p


def user(db: Session, inst: Institution | None, *roles: str, username: str | None = None,
         practitioner_id: int | None = None) -> User:
    roles = roles or ("doctor",)
    name = username or f"user{next(_seq)}"
    return auth_service.create_user(
        db, None, name, PASSWORD, f"用户{name}",
        [(r, None if r == "system_admin" else (inst.id if inst else None), None) for r in roles],
        practitioner_id=practitioner_id,
    )


def subject_for(db: Session, u: User, institution_id: int | None = None) -> Subject:
    return auth_service.build_subject(db, u, institution_id)


_id_seq = itertools.count()
_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def resident_id(birth: date = date(2015, 3, 8), region: str = "110105", seq: int | None = None,
                male: bool = True) -> str:
    # explicit seqs in tests stay below 100; generated ones cycle above, so they never collide
    s = seq if seq is not None else 100 + next(_id_seq) % 400
    order = s * 2 + (1 if male else 0)
    body = f"{region}{birth:%Y%m%d}{order:03d}"
    total = sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


def patient(db: Session, subject: Subject, name: str = "王小明", birth: date = date(2015, 3, 8),
            consent: str | None = "all", **kw):  # type: ignore[no-untyped-def]
    data = {
        "name": name, "sex": "未知", "birth_date": birth.isoformat(),
        "resident_id": kw.pop("resident_id", resident_id(birth)), "phone": kw.pop("phone", "13800138000"),
        "address": "北京市朝阳区测试路1号", "consent_scope": consent or "none",
    }
    data.update(kw)
    return patient_service.register(db, subject, patient_service.RegistrationIn(**data)).patient


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Logs in through the real form; returns the session's CSRF token."""
    page = client.get("/login")
    token = _csrf(page.text)
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                    "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return _csrf(client.get("/account").text)


def _csrf(html: str) -> str:
    import re

    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no csrf token in page"
    return m.group(1)
