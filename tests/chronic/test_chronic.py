"""Chronic care: a family-doctor team signs a resident, enrols them for hypertension or type 2 diabetes, sees
the follow-ups due with their counts, and records visits whose values plan the next follow-up by the national
basic public-health rules; another institution sees none of it."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from tests import builders as b
from tests.labelcheck import record_english, untranslated
from tests.referral.helpers import drive, setup
from yilianti.chronic import rules, service
from yilianti.exceptions import Conflict, InvalidInput, NotFound
from yilianti.kit import clock, i18n
from yilianti.models.audit import AuditEvent
from yilianti.models.chronic import ChronicFollowUp
from yilianti.models.patient import CareKind, CareRelationship
from yilianti.referral import service as referrals
from yilianti.referral.schemas import ReferralIn
from yilianti.workbench import service as workbench

D = date(2026, 3, 2)


def _at(day: date) -> datetime:
    return clock.as_utc(datetime.combine(day, time(9), clock.SHANGHAI))


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    centre = b.institution(db, "沙县区总医院高桥分院", kind="community", level=1)
    other = b.institution(db, "三明市第一医院", level=3)
    doctor = b.user(db, centre, "doctor", username="gqdoctor")
    nurse = b.user(db, centre, "nurse", username="gqnurse")
    stranger = b.user(db, other, "doctor", username="smdoctor")
    db.flush()
    sub = b.subject_for(db, doctor)
    wang = b.patient(db, sub, "王辉煌", birth=date(1960, 5, 1))
    li = b.patient(db, sub, "李秀英", birth=date(1955, 8, 9))
    return {"centre": centre, "doctor": doctor, "nurse": nurse, "stranger": stranger, "sub": sub, "wang": wang,
            "li": li}


def test_rules_classify_and_plan_the_next_follow_up() -> None:
    assert service.classify("hypertension", 138, 88, None, None) == "controlled"
    assert service.classify("hypertension", 150, 85, None, None) == "uncontrolled"
    assert service.classify("hypertension", 150, 85, None, "uncontrolled") == "refer"
    assert service.classify("hypertension", 180, 100, None, None) == "urgent"
    assert service.classify("hypertension", 170, 110, None, "controlled") == "urgent"
    assert service.classify("diabetes_t2", 130, 80, 6.9, None) == "controlled"
    assert service.classify("diabetes_t2", 130, 80, 7.0, None) == "uncontrolled"
    assert service.classify("diabetes_t2", None, None, 16.7, None) == "urgent"
    assert service.classify("diabetes_t2", None, None, 3.9, None) == "urgent"
    assert service.classify("diabetes_t2", 185, 90, 6.0, None) == "urgent"
    assert rules.next_visit("hypertension", "controlled", D) == (D + timedelta(days=90), "routine")
    assert rules.next_visit("hypertension", "uncontrolled", D) == (D + timedelta(days=14), "recheck")
    assert rules.next_visit("hypertension", "refer", D) == (D + timedelta(days=14), "after_referral")
    assert rules.next_visit("diabetes_t2", "urgent", D) == (D + timedelta(days=14), "after_referral")


def test_contract_enrolment_due_list_and_visits(db, world) -> None:  # type: ignore[no-untyped-def]
    sub, wang = world["sub"], world["wang"]
    with clock.frozen(_at(D)):
        team = service.create_team(db, sub, "高桥家庭医生一队", "高桥村", [(world["doctor"].id, "gp"),
                                                                   (world["nurse"].id, "nurse")])
        contract = service.sign_contract(db, sub, team.id, wang.id, "basic")
        assert contract.end_on == date(2027, 3, 1)
        assert db.scalar(select(CareRelationship).where(
            CareRelationship.source_type == "family_doctor_contract", CareRelationship.source_id == contract.id,
            CareRelationship.kind == CareKind.contract, CareRelationship.institution_id == world["centre"].id))
        with pytest.raises(Conflict):
            service.sign_contract(db, sub, team.id, wang.id, "basic")
        reg = service.enrol(db, sub, wang.id, "diabetes_t2", team_id=team.id)
        assert reg.icd10 == "E11"
        with pytest.raises(Conflict):
            service.enrol(db, sub, wang.id, "diabetes_t2", team_id=team.id)
        service.enrol(db, sub, world["li"].id, "hypertension", team_id=team.id, enrolled_on=D - timedelta(days=13))
        due = service.due_list(db, sub, team.id)
        # 李秀英's first follow-up is due tomorrow, 王辉煌's in 14 days: only the first is within the week
        assert (due.overdue, due.today, due.upcoming) == (0, 0, 1)
        assert [r.patient.name for r in due.rows] == ["李秀英"]

    with clock.frozen(_at(D + timedelta(days=20))):
        due = service.due_list(db, sub, team.id)
        assert (due.overdue, due.today, due.upcoming) == (2, 0, 0)
        item = next(i for i in workbench.for_subject(db, sub).items if i.key == "chronic.due")
        assert (item.count, item.url, item.target) == (2, "/chronic/overdue?due=today", "pager")
        first = next(r.task for r in due.rows if r.patient.name == "王辉煌")
        assert first.due_on == D + timedelta(days=14) and first.reason == "first"
        with pytest.raises(InvalidInput) as e:
            service.record_follow_up(db, sub, first.id, service.VisitIn(done_on=D + timedelta(days=20)))
        assert "fasting_glucose" in e.value.fields
        day = D + timedelta(days=20)
        nxt = service.record_follow_up(db, sub, first.id, service.VisitIn(done_on=day, fasting_glucose=8.2))
        assert first.status == "done" and first.classification == "uncontrolled"
        assert (nxt.due_on, nxt.reason, nxt.status) == (day + timedelta(days=14), "recheck", "open")
        with pytest.raises(Conflict):
            service.record_follow_up(db, sub, first.id, service.VisitIn(done_on=day, fasting_glucose=6.0))
        again = service.record_follow_up(db, sub, nxt.id, service.VisitIn(done_on=day, fasting_glucose=8.0))
        assert nxt.classification == "refer" and again.reason == "after_referral"
        last = service.record_follow_up(db, sub, again.id, service.VisitIn(done_on=day, fasting_glucose=6.1))
        assert again.classification == "controlled"
        assert (last.due_on, last.reason) == (day + timedelta(days=90), "routine")
        # one open follow-up per registration at any time
        assert db.scalar(select(func.count()).select_from(ChronicFollowUp).where(
            ChronicFollowUp.registration_id == reg.id, ChronicFollowUp.status == "open")) == 1
        # another institution's doctor does not see the team nor the follow-up
        stranger = b.subject_for(db, world["stranger"])
        with pytest.raises(NotFound):
            service.due_list(db, stranger, team.id)
        with pytest.raises(NotFound):
            service.record_follow_up(db, stranger, last.id, service.VisitIn(done_on=day, fasting_glucose=6.0))


def test_pages_sign_enrol_list_and_record(db, client, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    wang = world["wang"]
    with clock.frozen(_at(D)):
        csrf = b.login(client, "gqdoctor")
        assert "本机构还没有家庭医生团队" in client.get("/chronic").text
        r = client.post("/chronic/teams", data={"csrf_token": csrf, "name": " "}, follow_redirects=False)
        assert r.status_code == 422 and "请填写团队名称" in r.text
        r = client.post("/chronic/teams", data={"csrf_token": csrf, "name": "高桥家庭医生一队", "village": "高桥村"},
                        follow_redirects=False)
        assert r.status_code == 303
        team_id = int(re.search(r"team_id=(\d+)", r.headers["location"]).group(1))  # type: ignore[union-attr]
        r = client.post(f"/chronic/teams/{team_id}/contracts",
                        data={"csrf_token": csrf, "patient_id": str(wang.id), "package": "basic",
                              "start_on": (D - timedelta(days=14)).isoformat(), "condition": ["hypertension"]},
                        follow_redirects=False)
        assert r.status_code == 303, r.text
    with clock.frozen(_at(D + timedelta(days=14))):
        page = client.get(f"/chronic?team_id={team_id}")
        assert page.status_code == 200
        assert re.search(r'id="count-today">1<', page.text) and re.search(r'id="count-overdue">0<', page.text)
        assert "王辉煌" in page.text and "高血压" in page.text and "首次随访" in page.text
        task_id = int(re.search(r"/chronic/follow-ups/(\d+)", page.text).group(1))  # type: ignore[union-attr]
        form = client.get(f"/chronic/follow-ups/{task_id}")
        assert form.status_code == 200 and "王辉煌" in form.text
        assert db.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.resource_type == "chronic_follow_up", AuditEvent.resource_id == str(task_id),
            AuditEvent.patient_id == wang.id)) >= 1
        today = (D + timedelta(days=14)).isoformat()
        r = client.post(f"/chronic/follow-ups/{task_id}", data={"csrf_token": csrf, "done_on": today, "sbp": "150"},
                        follow_redirects=False)
        assert r.status_code == 422 and "高血压随访须记录收缩压和舒张压" in r.text
        r = client.post(f"/chronic/follow-ups/{task_id}",
                        data={"csrf_token": csrf, "done_on": today, "sbp": "150", "dbp": "95"}, follow_redirects=False)
        assert r.status_code == 303
        page = client.get(r.headers["location"])
        assert "随访已记录" in page.text and "2周内复查" in page.text
        page = client.get(f"/chronic?team_id={team_id}")
        assert re.search(r'id="count-upcoming">0<', page.text)  # the re-check is due in 14 days: not this week

        # English: every message and coded value of the two pages has its English label
        asked = record_english(monkeypatch)
        client.cookies.set("lang", "en")
        en = client.get(f"/chronic?team_id={team_id}").text
        assert "Chronic care follow-ups" in en and "Hypertension" in en
        assert client.get(f"/chronic/follow-ups/{task_id}").status_code == 200
        client.cookies.delete("lang")
        assert not untranslated(asked) and not {m for m in i18n.MISSING_LABELS if m.startswith("chronic")}

        client.post("/logout", data={"csrf_token": csrf})
        b.login(client, "smdoctor")
        assert client.get(f"/chronic/follow-ups/{task_id}").status_code == 404
        assert "王辉煌" not in client.get(f"/chronic?team_id={team_id}").text


def test_a_down_referred_hypertensive_patient_arrives_with_a_follow_up_due_in_two_weeks(db) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(_at(D)):
        w, patient = setup(db)
        up = drive(db, w, patient, "outcome_returned")
        down = referrals.draft_and_submit(db, w.lead_doc, ReferralIn.model_validate({
            "direction": "down", "patient_id": patient.id, "to_institution_id": w.community.id,
            "linked_referral_id": up.id, "reason": "血压稳定，回社区管理",
            "summary": {"diagnoses": [{"icd10": "I10.x00", "text": "原发性高血压"},
                                      {"icd10": "J18.9", "text": "肺炎"}]}}))
        referrals.receive(db, w.comm_doc, down.id)
        referrals.accept(db, w.comm_doc, down.id)
        tasks = list(db.scalars(select(ChronicFollowUp).where(ChronicFollowUp.patient_id == patient.id)))
        assert [(t.due_on, t.reason, t.institution_id) for t in tasks] == [
            (D + timedelta(days=14), "after_referral", w.community.id)]
    with clock.frozen(_at(D + timedelta(days=3))):  # the patient arrives three days later
        referrals.arrive(db, w.comm_doc, down.id, mode="walk_in")
        db.refresh(tasks[0])
        assert tasks[0].due_on == D + timedelta(days=17) and tasks[0].status == "open"
        # one registration (hypertension, I10), however often the referral is seen
        assert service.condition_of("I10.x00") == "hypertension" and service.condition_of("J18.9") is None
