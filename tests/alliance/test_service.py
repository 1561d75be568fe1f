"""Tiers, current membership, validation and audit of the alliance registry service."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from tests import builders as b
from tests.alliance.conftest import Tianjin
from yilianti.alliance import service
from yilianti.exceptions import Conflict, Forbidden, InvalidInput
from yilianti.models.alliance import Alliance, Institution, Membership
from yilianti.models.audit import AuditEvent


def test_grassroots_is_decided_by_kind_not_level(tj: Tianjin) -> None:
    assert service.is_grassroots(tj.quanyechang)  # level-2 community centre
    assert not service.is_grassroots(tj.gegu)  # level-1 general hospital
    assert service.tier_of(tj.quanyechang, "member") == "grassroots"
    assert service.tier_of(tj.gegu, "member") == "secondary"
    assert service.tier_of(tj.taoyuan, "lead") == "lead"  # the role decides the lead tier
    assert service.tier_of(tj.children, "lead") == "lead"


def test_alliance_view_groups_members_by_tier(db, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    view = service.alliance_view(db, tj.peds.id, on=date(2024, 6, 1))
    names = {tier: [m.institution.name for m in ms] for tier, ms in view.tiers.items()}
    assert list(names) == ["lead", "secondary", "grassroots"]
    assert names["lead"] == ["天津市儿童医院"]
    assert names["secondary"] == ["东丽医院", "津南区葛沽医院"]  # level 2 before level 1
    assert names["grassroots"] == ["和平区劝业场街社区卫生服务中心", "河西区桃园街社区卫生服务中心"]
    assert [m.institution.name for m in view.former] == ["咸水沽医院"]
    assert view.member_count == 5


def test_current_members_respects_dates(db, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    on_2018 = {m.institution.name for m in service.current_members(db, tj.peds.id, date(2018, 6, 1))}
    assert "咸水沽医院" in on_2018 and "津南区葛沽医院" not in on_2018
    today = {m.institution.name for m in service.current_members(db, tj.peds.id)}
    assert "咸水沽医院" not in today and "津南区葛沽医院" in today
    assert service.member_tier(db, tj.peds.id, tj.quanyechang.id) == "grassroots"
    assert service.member_tier(db, tj.peds.id, tj.general.id) is None


def test_one_institution_in_two_alliances(db, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    assert [a.name for a in service.alliances_of(db, tj.taoyuan.id)] == ["天津医科大学总医院医联体", "天津市儿科医疗联合体"]
    assert service.alliances_of(db, tj.xianshuigu.id) == []


def _count(db, model) -> int:  # type: ignore[no-untyped-def]
    return db.scalar(select(func.count()).select_from(model))


def test_membership_validation_stores_nothing(db, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    admin = b.subject_for(db, tj.sysadmin)
    before = _count(db, Membership)
    with pytest.raises(InvalidInput) as exc:
        service.add_member(db, admin, tj.peds.id, {"institution_id": tj.dongli.id, "role": "member",
                                                   "joined_on": "2024-01-01"})
    assert "institution_id" in exc.value.fields  # already a current member
    with pytest.raises(InvalidInput) as exc:
        service.add_member(db, admin, tj.peds.id, {"institution_id": tj.general.id, "role": "member",
                                                   "joined_on": "2024-05-01", "left_on": "2024-04-01"})
    assert exc.value.fields == {"left_on": "退出日期不能早于加入日期"}
    with pytest.raises(InvalidInput) as exc:
        service.add_member(db, admin, tj.peds.id, {"institution_id": tj.general.id, "role": "boss"})
    assert "role" in exc.value.fields
    assert _count(db, Membership) == before
    # a former member may rejoin after it left
    again = service.add_member(db, admin, tj.peds.id, {"institution_id": tj.xianshuigu.id, "role": "member",
                                                       "joined_on": "2023-01-01"})
    assert again.id and _count(db, Membership) == before + 1


def test_end_membership(db, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    admin = b.subject_for(db, tj.sysadmin)
    dongli = db.scalar(select(Membership).where(Membership.institution_id == tj.dongli.id))
    with pytest.raises(InvalidInput) as exc:
        service.end_membership(db, admin, dongli.id, date(2016, 1, 1))
    assert "left_on" in exc.value.fields
    service.end_membership(db, admin, dongli.id, date(2024, 1, 1))
    assert dongli.left_on == date(2024, 1, 1)
    with pytest.raises(Conflict):
        service.end_membership(db, admin, dongli.id, date(2024, 2, 1))
    event = db.scalar(select(AuditEvent).where(AuditEvent.resource_type == "membership",
                                               AuditEvent.resource_id == str(dongli.id)))
    assert event.action == "end" and event.detail["left_on"] == {"from": None, "to": "2024-01-01"}


def test_alliance_validation_and_uniqueness(db, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    admin = b.subject_for(db, tj.sysadmin)
    before = _count(db, Alliance)
    with pytest.raises(InvalidInput) as exc:
        service.create_alliance(db, admin, {"key": "tj-pediatric", "name": "天津市儿科医疗联合体",
                                            "model": "urban_group"})
    assert set(exc.value.fields) == {"key", "name"}
    with pytest.raises(InvalidInput) as exc:
        service.create_alliance(db, admin, {"key": "tj-chest-pain", "name": "天津市胸痛中心联盟",
                                            "model": "alliance", "slot_reserve_share": "1.2",
                                            "bed_reserve_share": "-0.1", "reserve_for": "everyone"})
    assert set(exc.value.fields) == {"model", "slot_reserve_share", "bed_reserve_share", "reserve_for"}
    assert _count(db, Alliance) == before
    created = service.create_alliance(db, admin, {"key": "tj-chest-pain", "name": "天津市胸痛中心联盟",
                                                  "model": "specialty_alliance", "specialty": "chest_pain",
                                                  "slot_reserve_share": "40%"})
    assert created.slot_reserve_share == 0.4 and created.reserve_for == "grassroots"


def test_updates_are_audited_with_a_diff(db, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    admin = b.subject_for(db, tj.sysadmin)
    service.update_alliance(db, admin, tj.peds.id, {"bed_reserve_share": 0.3, "tight": False})
    event = db.scalar(select(AuditEvent).where(AuditEvent.resource_type == "alliance", AuditEvent.action == "update"))
    assert event.user_id == tj.sysadmin.id
    assert event.detail == {"bed_reserve_share": {"from": 0.25, "to": 0.3}, "tight": {"from": True, "to": False}}
    service.update_institution(db, admin, tj.dongli.id, {"phone": "022-24391234"})
    service.set_institution_active(db, admin, tj.dongli.id, False)
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.resource_type == "institution",
                                                         AuditEvent.resource_id == str(tj.dongli.id))).all()
    assert sorted(actions) == ["deactivate", "update"]
    assert db.get(Institution, tj.dongli.id).active is False  # deactivated, never deleted


def test_admin_scopes(db, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    peds_admin = b.subject_for(db, tj.peds_admin)
    service.update_alliance(db, peds_admin, tj.peds.id, {"notes": "儿科专科联盟，六个共享"})
    with pytest.raises(Forbidden):
        service.update_alliance(db, peds_admin, tj.urban.id, {"notes": "x"})
    with pytest.raises(Forbidden):
        service.create_alliance(db, peds_admin, {"key": "x-y", "name": "新医联体", "model": "urban_group"})
    taoyuan_admin = b.subject_for(db, tj.taoyuan_admin)
    service.add_department(db, taoyuan_admin, tj.taoyuan.id, {"name": "中医科"})
    with pytest.raises(Forbidden):
        service.add_department(db, taoyuan_admin, tj.dongli.id, {"name": "中医科"})
    with pytest.raises(Forbidden):
        service.update_institution(db, taoyuan_admin, tj.dongli.id, {"phone": "022-1234567"})
    with pytest.raises(Forbidden):
        service.set_institution_active(db, taoyuan_admin, tj.taoyuan.id, False)


def test_departments(db, tj: Tianjin) -> None:  # type: ignore[no-untyped-def]
    admin = b.subject_for(db, tj.sysadmin)
    dept = service.add_department(db, admin, tj.taoyuan.id, {"name": "全科", "specialty": "general_practice"})
    with pytest.raises(InvalidInput) as exc:
        service.add_department(db, admin, tj.taoyuan.id, {"name": "全科"})
    assert exc.value.fields == {"name": "本机构已有同名科室"}
    service.add_department(db, admin, tj.dongli.id, {"name": "全科"})  # same name elsewhere is fine
    service.update_department(db, admin, dept.id, {"name": "全科医学科"})
    service.update_department(db, admin, dept.id, {"active": False})
    assert (dept.name, dept.active) == ("全科医学科", False)
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.resource_type == "department",
                                                         AuditEvent.resource_id == str(dept.id))
                         .order_by(AuditEvent.id)).all()
    assert actions == ["create", "update", "deactivate"]
