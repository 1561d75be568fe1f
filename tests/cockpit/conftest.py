"""The cockpit's test world: a lead hospital, a county member, a member that joined on 2026-03-01 and an outsider,
with referrals between them; an alliance administrator, a member's doctor and a stranger."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from tests import builders as b
from yilianti.auth import service as auth_service
from yilianti.kit import clock
from yilianti.models.alliance import Membership
from yilianti.models.referral import Referral, ReferralHistory


def _at(day: date, hour: int = 10) -> datetime:
    return clock.as_utc(datetime.combine(day, time(hour), clock.SHANGHAI))


def _referral(db, patient, frm, to, direction: str, day: date, *, moves=(), linked=None):  # type: ignore[no-untyped-def]
    r = Referral(direction=direction, patient_id=patient.id, from_institution_id=frm.id, to_institution_id=to.id,
                 reason="测试", status="submitted", submitted_at=_at(day), linked_referral_id=linked)
    db.add(r)
    db.flush()
    at = _at(day)
    for a, bb, hours in (("draft", "submitted", 0), *moves):
        at = at + timedelta(hours=hours)
        db.add(ReferralHistory(referral_id=r.id, at=at, from_status=a, to_status=bb))
    db.flush()
    return r


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    lead = b.institution(db, "保定市第一中心医院", level=3)
    county = b.institution(db, "涞源县医院", level=2)
    late = b.institution(db, "易县医院", level=2)
    outsider = b.institution(db, "北京某医院", level=3)
    alliance = b.alliance(db, (lead, "lead"), (county, "member"), name="保定托管医联体")
    # 易县医院 joins on 2026-03-01: its earlier referrals are not the alliance's
    db.add(Membership(alliance_id=alliance.id, institution_id=late.id, role="member", joined_on=date(2026, 3, 1)))
    db.flush()
    admin = auth_service.create_user(db, None, "cockpitadmin", b.PASSWORD, "联盟管理员",
                                     [("alliance_admin", None, alliance.id)])
    doctor = b.user(db, county, "doctor", username="cockpitdoc")
    stranger = b.user(db, outsider, "doctor", username="cockpitstranger")
    db.flush()
    pat = b.patient(db, b.subject_for(db, doctor), "张三")
    up1 = _referral(db, pat, county, lead, "up", date(2026, 1, 10),
                    moves=(("submitted", "received", 2), ("received", "accepted", 10)))
    _referral(db, pat, county, lead, "up", date(2026, 1, 20), moves=(("submitted", "received", 6),))
    _referral(db, pat, late, lead, "up", date(2026, 2, 5))  # before 易县 joined: not counted
    _referral(db, pat, late, lead, "up", date(2026, 3, 5))  # after: counted
    _referral(db, pat, outsider, lead, "up", date(2026, 2, 5))  # not a member: never counted
    _referral(db, pat, lead, county, "down", date(2026, 2, 1), linked=up1.id)
    return {"alliance": alliance, "admin": admin, "doctor": doctor, "stranger": stranger, "lead": lead}
