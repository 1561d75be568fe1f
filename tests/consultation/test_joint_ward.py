"""Joint ward: both teams see the shared list and write rounds; the lead's access ends at discharge."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests import builders as b
from tests.consultation.helpers import world
from yilianti.authz import policy
from yilianti.consultation import joint
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound


def test_joint_ward_two_teams_rounds_and_grants(db: Session, client: TestClient) -> None:
    w = world(db)
    admin = b.subject_for(db, b.user(db, w.community, "institution_admin"))
    local_p = b.practitioner(db, w.community, "王社区", "主治医师")
    local_doc = b.subject_for(db, b.user(db, w.community, "doctor", practitioner_id=local_p.id))
    with pytest.raises(InvalidInput):
        joint.create_ward(db, admin, joint.WardIn(name="儿科联合病房", lead_institution_id=w.outsider.id))
    ward = joint.create_ward(db, admin, joint.WardIn(name="儿科联合病房", lead_institution_id=w.lead.id, beds=10))
    assert joint.add_member(db, admin, ward.id, local_p.id, "主诊医师").team == "local"
    assert joint.add_member(db, admin, ward.id, w.expert.id, "查房专家").team == "lead"
    with pytest.raises(NotFound):
        joint.get_ward(db, w.out_doc, ward.id)

    assert policy.decide(db, w.expert_doc, w.patient.id) is None
    with pytest.raises(Forbidden):  # the lead team does not admit at the centre
        joint.admit(db, w.expert_doc, ward.id, w.patient.id)
    adm = joint.admit(db, local_doc, ward.id, w.patient.id, bed_no="3床", diagnosis="支气管肺炎")
    with pytest.raises(Conflict):
        joint.admit(db, local_doc, ward.id, w.patient.id)
    assert policy.decide(db, w.expert_doc, w.patient.id) is not None  # the lead team sees the patient
    # both teams see the shared list and write rounds
    assert [p.id for _, p in joint.admissions(db, w.expert_doc, ward.id)] == [w.patient.id]
    joint.add_round(db, local_doc, adm.id, "体温37.8℃，咳嗽减轻")
    joint.add_round(db, w.expert_doc, adm.id, "远程查房：继续阿莫西林，3天后复查血常规")
    with pytest.raises(Forbidden):  # a lead-hospital doctor not on the team
        joint.add_round(db, w.expert2_doc, adm.id, "不在团队")
    assert [(r.team, r.institution_id) for r in joint.rounds(db, local_doc, adm.id)] == [
        ("local", w.community.id), ("lead", w.lead.id)]

    joint.discharge(db, local_doc, adm.id, "好转出院")
    assert policy.decide(db, w.expert_doc, w.patient.id) is None
    with pytest.raises(Conflict):
        joint.add_round(db, w.expert_doc, adm.id, "出院后")

    b.login(client, w.expert_doc.username)
    page = client.get(f"/joint-wards/{ward.id}").text
    assert "儿科联合病房" in page and "王社区" in page and "牵头医院团队" in page
    assert "儿科联合病房" in client.get("/joint-wards").text
