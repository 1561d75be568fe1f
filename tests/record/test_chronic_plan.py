"""Chronic care plans in the shared record: the managing institution and the patient's family-doctor team read
them as their own; every other member only as the shared record (consent with a care relationship, a grant, or
break-glass), each read audited — the rule every other entry of the record follows."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests import builders as b
from tests.empi.helpers import register, world
from yilianti.authz import policy
from yilianti.chronic import service as chronic
from yilianti.exceptions import NotFound
from yilianti.models.audit import AuditEvent
from yilianti.patients import service as patients
from yilianti.patients.schemas import ConsentIn
from yilianti.record import service as record


def _setup(db):  # type: ignore[no-untyped-def]
    w = world(db)
    rid = b.resident_id(region="131024", seq=41)
    p = register(db, w.d_town, "李慢病", rid=rid).patient
    for doctor in (w.d_county, w.d_child):
        assert register(db, doctor, "李慢病", rid=rid).patient.id == p.id
    reg = chronic.enrol(db, w.d_town, p.id, "hypertension")
    db.flush()
    return w, p, reg


def _plans(view):  # type: ignore[no-untyped-def]
    return [(e.ref, e.title, e.status, view.institutions[e.source_institution_id]) for e in view.entries
            if e.kind == "chronic_plan"]


def _last_read(db):  # type: ignore[no-untyped-def]
    ev = db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "shared_record")
                    .order_by(AuditEvent.id.desc())).first()
    return ev.acting_institution_id, ev.access_basis, ev.detail["entries"]


def test_the_managing_institution_reads_its_plan_with_the_next_follow_up(db):  # type: ignore[no-untyped-def]
    w, p, reg = _setup(db)
    view = record.shared_record(db, w.d_town, p.id, ["chronic_plan"])
    assert _plans(view) == [(f"chronic_registration:{reg.id}", "高血压（I10）", "在管", "渠口镇卫生院")]
    assert view.entries[0].detail.startswith("下次随访 20")
    assert _last_read(db) == (w.township.id, "own", 1)


def test_another_member_reads_it_only_with_consent(db):  # type: ignore[no-untyped-def]
    w, p, reg = _setup(db)
    view = record.shared_record(db, w.d_child, p.id, ["chronic_plan"])
    assert _plans(view) == [] and view.hidden_other_members == 1
    patients.grant_consent(db, w.d_town, p.id, ConsentIn(scope="alliance", alliance_id=w.alliance.id))
    view = record.shared_record(db, w.d_child, p.id, ["chronic_plan"])
    assert [r for r, *_ in _plans(view)] == [f"chronic_registration:{reg.id}"]
    assert _last_read(db) == (w.children.id, "shared", 1)


def test_the_family_doctor_team_reads_it_as_its_own(db):  # type: ignore[no-untyped-def]
    w, p, reg = _setup(db)
    assert _plans(record.shared_record(db, w.d_county, p.id, ["chronic_plan"])) == []
    team = chronic.create_team(db, w.d_county, "香河一队", None, [(w.d_county.user_id, "gp")])
    chronic.sign_contract(db, w.d_county, team.id, p.id, "basic")
    view = record.shared_record(db, w.d_county, p.id, ["chronic_plan"])
    assert [r for r, *_ in _plans(view)] == [f"chronic_registration:{reg.id}"]
    assert _last_read(db) == (w.county.id, "own", 1)  # the team's own: not another member's data


def test_break_glass_reads_it_and_strangers_do_not(db):  # type: ignore[no-untyped-def]
    w, p, reg = _setup(db)
    outside = b.institution(db, "联盟外急救中心")
    medic = b.subject_for(db, b.user(db, outside, "doctor"))
    with pytest.raises(NotFound):
        record.shared_record(db, medic, p.id, ["chronic_plan"])
    policy.break_glass(db, medic, "CN-RIC", b.resident_id(region="131024", seq=41), "车祸昏迷，需了解既往慢病情况")
    view = record.shared_record(db, medic, p.id, ["chronic_plan"])
    assert [r for r, *_ in _plans(view)] == [f"chronic_registration:{reg.id}"]
    assert _last_read(db) == (outside.id, "break_glass", 1)


def test_the_plans_link_is_shown_to_who_can_open_it(db, client):  # type: ignore[no-untyped-def]
    """The entry links to the registry page, which opens for the managing institution only: the family-doctor
    team at another institution reads the plan in the record without a link that would answer 404."""
    w, p, reg = _setup(db)
    team = chronic.create_team(db, w.d_county, "香河一队", None, [(w.d_county.user_id, "gp")])
    chronic.sign_contract(db, w.d_county, team.id, p.id, "basic")
    b.user(db, w.county, "doctor", username="county-fd")
    b.user(db, w.township, "doctor", username="town-cd")
    db.commit()
    link = f'href="/chronic/registrations/{reg.id}"'
    b.login(client, "county-fd")
    page = client.get(f"/patients/{p.id}/record").text
    assert "高血压（I10）" in page and link not in page
    assert client.get(f"/chronic/registrations/{reg.id}").status_code == 404
    b.login(client, "town-cd")
    assert link in client.get(f"/patients/{p.id}/record").text
    assert client.get(f"/chronic/registrations/{reg.id}").status_code == 200
