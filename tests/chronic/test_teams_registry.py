"""Chronic care beyond the visit: a team's members (roles, one lead, a lead-hospital specialist, never without a
GP), contracts renewed and terminated (the care relationship ends with them), signing rates a person could count
by hand, the four registries with risk levels, TB phases and status changes kept as history, and a screening
round whose abnormal readings become suggestions the doctor enrols, refers or dismisses."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from tests import builders as b
from tests.labelcheck import record_english, untranslated
from yilianti.chronic import registry, screening, service, teams
from yilianti.exceptions import Conflict, InvalidInput, NotFound
from yilianti.kit import clock, i18n
from yilianti.models.audit import AuditEvent
from yilianti.models.chronic import ChronicFollowUp, ChronicRegistration, FamilyDoctorContract
from yilianti.models.patient import CareRelationship

D = date(2026, 3, 2)


def _at(day: date) -> datetime:
    return clock.as_utc(datetime.combine(day, time(9), clock.SHANGHAI))


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    centre = b.institution(db, "沙县区总医院高桥分院", kind="township", level=1, province="福建")
    lead = b.institution(db, "沙县区总医院", level=2, province="福建")
    other = b.institution(db, "三明市第一医院", level=3, province="福建")
    b.alliance(db, (lead, "lead"), (centre, "member"), name="沙县区总医院紧密型县域医共体", model="county_community")
    doctor = b.user(db, centre, "doctor", username="gqdoctor")
    nurse = b.user(db, centre, "nurse", username="gqnurse")
    specialist = b.user(db, lead, "doctor", username="sxspecialist")
    stranger = b.user(db, other, "doctor", username="smdoctor")
    db.flush()
    sub = b.subject_for(db, doctor)
    people = {}
    for i, (name, birth, village) in enumerate([("王辉煌", date(1956, 5, 1), "高桥村"), ("李秀英", date(1975, 8, 9), "高桥村"),
                                                ("陈美华", date(1950, 2, 3), "高桥村"), ("张建国", date(1980, 1, 4), "上坪村")]):
        people[name] = b.patient(db, sub, name, birth=birth, resident_id=b.resident_id(birth, "350427", seq=11 + 2 * i),
                                 address=f"福建省三明市沙县区高桥镇{village}{i + 3}号")
    team = service.create_team(db, sub, "高桥家庭医生一队", "高桥村", [(doctor.id, "gp")])
    return {"centre": centre, "lead": lead, "doctor": doctor, "nurse": nurse, "specialist": specialist,
            "stranger": stranger, "sub": sub, "team": team, **people}


def test_members_roles_one_lead_and_never_without_a_gp(db, world) -> None:  # type: ignore[no-untyped-def]
    sub, team = world["sub"], world["team"]
    with clock.frozen(_at(D)):
        nurse = teams.add_member(db, sub, team.id, world["nurse"].id, "nurse")
        spec = teams.add_member(db, sub, team.id, world["specialist"].id, "specialist")  # the lead hospital's
        with pytest.raises(InvalidInput) as e:  # a doctor of a hospital outside the alliance
            teams.add_member(db, sub, team.id, world["stranger"].id, "specialist")
        assert "user_id" in e.value.fields
        with pytest.raises(InvalidInput):
            teams.add_member(db, sub, team.id, world["nurse"].id, "chef")
        with pytest.raises(Conflict):
            teams.add_member(db, sub, team.id, world["nurse"].id, "nurse")
        gp = next(m for m, _ in service.repository.members_of(db, team.id) if m.role == "gp")
        teams.set_lead(db, sub, team.id, gp.id)
        teams.set_lead(db, sub, team.id, spec.id)
        leads = [m.id for m, _ in service.repository.members_of(db, team.id) if m.is_lead]
        assert leads == [spec.id]
        with pytest.raises(Conflict):  # the only general practitioner stays
            teams.remove_member(db, sub, team.id, gp.id)
        teams.remove_member(db, sub, team.id, nurse.id)
        assert [m.role for m, _ in service.repository.members_of(db, team.id)] == ["gp", "specialist"]
        assert db.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.resource_type == "family_doctor_team_member")) == 5
        stranger = b.subject_for(db, world["stranger"])
        with pytest.raises(NotFound):
            teams.add_member(db, stranger, team.id, world["stranger"].id, "gp")


def test_renewal_and_termination_end_the_care_relationship(db, world) -> None:  # type: ignore[no-untyped-def]
    sub, team, wang = world["sub"], world["team"], world["王辉煌"]
    with clock.frozen(_at(D)):
        first = service.sign_contract(db, sub, team.id, wang.id, "basic")
        assert teams.state(first, D) == "active" and first.end_on == date(2027, 3, 1)
    late = date(2027, 2, 10)
    with clock.frozen(_at(late)):
        assert teams.state(first, late) == "expiring"
        second = teams.renew(db, sub, first.id, "personalised")
        assert (second.start_on, second.end_on, second.renewal_of_id) == (date(2027, 3, 2), date(2028, 3, 1), first.id)
        assert teams.state(second, late) == "pending" and second.package == "personalised"
        with pytest.raises(Conflict):
            teams.renew(db, sub, first.id)
        with pytest.raises(InvalidInput) as e:
            teams.terminate(db, sub, first.id, "other", "  ")
        assert "note" in e.value.fields
        with pytest.raises(InvalidInput) as e:
            teams.terminate(db, sub, first.id, "moved", on=late + timedelta(days=1))
        assert "terminated_on" in e.value.fields
        teams.terminate(db, sub, first.id, "moved", "搬到三明市区")
        assert (first.status, first.termination_reason, first.terminated_on, first.end_on) == (
            "terminated", "moved", late, late)
        assert second.status == "terminated"  # the renewal not yet begun ends with it
        assert db.scalar(select(func.count()).select_from(CareRelationship).where(
            CareRelationship.source_type == "family_doctor_contract", CareRelationship.ended_at.is_(None))) == 0
        with pytest.raises(Conflict):
            teams.renew(db, sub, first.id)
        with pytest.raises(Conflict):
            teams.terminate(db, sub, first.id, "moved")
    with clock.frozen(_at(date(2027, 6, 1))):  # a lapsed contract renews from today
        li = service.sign_contract(db, sub, team.id, world["李秀英"].id, "basic", D)
        again = teams.renew(db, sub, li.id)
        assert again.start_on == date(2027, 6, 1)


def test_signing_rates_are_what_a_count_by_hand_gives(db, world) -> None:  # type: ignore[no-untyped-def]
    sub, team = world["sub"], world["team"]
    with clock.frozen(_at(D)):
        other = service.create_team(db, sub, "上坪家庭医生队", "上坪村", [(world["doctor"].id, "gp")])
        service.sign_contract(db, sub, team.id, world["王辉煌"].id, "basic")  # 69, 高桥村, hypertension
        service.sign_contract(db, sub, team.id, world["李秀英"].id, "basic")  # 50, 高桥村
        service.enrol(db, sub, world["王辉煌"].id, "hypertension", team_id=team.id)
        service.enrol(db, sub, world["陈美华"].id, "hypertension", team_id=team.id)  # 76, 高桥村, not signed
        terminated = service.sign_contract(db, sub, other.id, world["张建国"].id, "basic")
        teams.terminate(db, sub, terminated.id, "request")
        rows = {r.team_id: r for r in teams.signing_rates(db, sub)}
        gq, sp, total = rows[team.id], rows[other.id], rows[None]
        assert (gq.rates["all"].signed, gq.rates["all"].residents, gq.rates["all"].percent) == (2, 3, 66.7)
        assert (gq.rates["elderly"].signed, gq.rates["elderly"].residents) == (1, 2)
        assert (gq.rates["hypertension"].signed, gq.rates["hypertension"].residents) == (1, 2)
        assert gq.rates["diabetes_t2"].residents == 0 and gq.rates["diabetes_t2"].percent is None
        assert (sp.rates["all"].signed, sp.rates["all"].residents) == (0, 1)
        assert (total.rates["all"].signed, total.rates["all"].residents) == (2, 4)
        # the same count straight from the tables
        assert db.scalar(select(func.count(func.distinct(FamilyDoctorContract.patient_id))).where(
            FamilyDoctorContract.status == "active", FamilyDoctorContract.start_on <= D,
            FamilyDoctorContract.end_on >= D)) == total.rates["all"].signed


def test_registries_risk_tb_phase_and_status_history(db, world) -> None:  # type: ignore[no-untyped-def]
    sub, team = world["sub"], world["team"]
    with clock.frozen(_at(D)):
        with pytest.raises(InvalidInput) as e:
            registry.enrol(db, sub, registry.EnrolIn(world["张建国"].id, "tb", icd10="I10"))
        assert "icd10" in e.value.fields
        with pytest.raises(InvalidInput) as e:
            registry.enrol(db, sub, registry.EnrolIn(world["张建国"].id, "smi", risk_level="high"))
        assert "risk_level" in e.value.fields
        tb = registry.enrol(db, sub, registry.EnrolIn(world["张建国"].id, "tb", icd10="A15.0",
                                                      notified_on=D - timedelta(days=1), team_id=team.id))
        assert (tb.icd10, tb.tb_phase, tb.notified_on) == ("A15.0", "intensive", D - timedelta(days=1))
        first = service.repository.open_follow_up(db, tb.id)
        assert first is not None and first.due_on == D + timedelta(days=2)  # home visit within 72 h
        smi = registry.enrol(db, sub, registry.EnrolIn(world["李秀英"].id, "smi", icd10="F20.0", risk_level="1"))
        assert service.repository.open_follow_up(db, smi.id).due_on == D + timedelta(days=14)  # type: ignore[union-attr]
        htn = registry.enrol(db, sub, registry.EnrolIn(world["王辉煌"].id, "hypertension", risk_level="high",
                                                       team_id=team.id))
        service.sign_contract(db, sub, team.id, world["王辉煌"].id, "basic")
    with clock.frozen(_at(D + timedelta(days=30))):
        day = D + timedelta(days=30)
        registry.set_phase(db, sub, tb.id, "continuation", "强化期2个月结束，痰菌阴转")
        with pytest.raises(Conflict):
            registry.set_phase(db, sub, tb.id, "intensive")
        with pytest.raises(NotFound):
            registry.set_phase(db, sub, htn.id, "continuation")
        registry.set_risk(db, sub, smi.id, "4", "持续打砸行为")
        assert service.repository.open_follow_up(db, smi.id).due_on == D + timedelta(days=14)  # type: ignore[union-attr]
        with pytest.raises(InvalidInput) as e:
            registry.change_status(db, sub, htn.id, "lost")
        assert "reason" in e.value.fields
        registry.change_status(db, sub, htn.id, "lost", "电话三次未接通，家人称外出打工")
        assert service.repository.open_follow_up(db, htn.id) is None  # no longer due nor overdue
        assert all(r.registration.id != htn.id for r in service.due_list(db, sub, team.id, horizon_days=400).rows)
        registry.change_status(db, sub, htn.id, "under_care", "返乡后恢复随访")
        back = service.repository.open_follow_up(db, htn.id)
        assert back is not None and (back.due_on, back.reason) == (day + timedelta(days=14), "recheck")
        registry.change_status(db, sub, htn.id, "deceased", "脑出血去世")
        assert db.scalar(select(FamilyDoctorContract.status).where(
            FamilyDoctorContract.patient_id == world["王辉煌"].id)) == "terminated"
        with pytest.raises(Conflict):
            registry.change_status(db, sub, htn.id, "under_care", "录入错误")
        history = [(e.kind, e.from_value, e.to_value) for e, _ in service.repository.registration_events(db, htn.id)]
        assert history == [("status", "under_care", "deceased"), ("status", "lost", "under_care"),
                           ("status", "under_care", "lost"), ("enrolled", None, "under_care")]
        assert db.scalar(select(func.count()).select_from(ChronicFollowUp).where(
            ChronicFollowUp.registration_id == htn.id, ChronicFollowUp.status == "cancelled")) == 2
        with pytest.raises(NotFound):
            registry.require_registration(db, b.subject_for(db, world["stranger"]), htn.id)


def test_screening_flags_suggests_and_the_doctor_decides(db, world) -> None:  # type: ignore[no-untyped-def]
    sub, team = world["sub"], world["team"]
    with clock.frozen(_at(D)):
        service.enrol(db, sub, world["陈美华"].id, "hypertension", team_id=team.id)
        rnd = screening.create_round(db, sub, "bp35", D, team.id, "高桥村")
        wang = screening.record(db, sub, rnd.id, screening.ReadingIn(world["王辉煌"].id, 152, 96, 7.8))
        assert (wang.finding, wang.suggestion, wang.outcome) == ("raised_both", "enrol_both", "pending")
        li = screening.record(db, sub, rnd.id, screening.ReadingIn(world["李秀英"].id, 186, 100))
        assert (li.finding, li.suggestion) == ("urgent", "refer")
        chen = screening.record(db, sub, rnd.id, screening.ReadingIn(world["陈美华"].id, 148, 88))
        assert (chen.finding, chen.suggestion, chen.outcome) == ("raised_bp", None, "none")  # already managed
        with pytest.raises(Conflict):
            screening.record(db, sub, rnd.id, screening.ReadingIn(world["王辉煌"].id, 120, 80))
        with pytest.raises(InvalidInput) as e:
            screening.record(db, sub, rnd.id, screening.ReadingIn(world["张建国"].id, 130, None))
        assert "sbp" in e.value.fields
        with pytest.raises(Conflict):
            screening.decide(db, sub, li.id, "enrol")
        screening.decide(db, sub, wang.id, "enrol")
        assert sorted(db.scalars(select(ChronicRegistration.condition).where(
            ChronicRegistration.patient_id == world["王辉煌"].id))) == ["diabetes_t2", "hypertension"]
        with pytest.raises(Conflict):
            screening.decide(db, sub, wang.id, "dismiss", "复测正常")
        screening.decide(db, sub, li.id, "refer")
        assert li.outcome == "referred" and li.handled_by_user_id == world["doctor"].id
        # coverage: 高桥村's residents 35+ are 王辉煌, 李秀英, 陈美华 — all measured (screened or managed)
        cover = {v.village: v for v in screening.coverage(db, sub)}
        assert (cover["高桥村"].residents, cover["高桥村"].screened) == (3, 3)
    with clock.frozen(_at(date(2027, 1, 5))):  # a new year: nobody but the managed is covered yet
        cover = {v.village: v for v in screening.coverage(db, sub)}
        assert cover["高桥村"].screened == 2  # 王辉煌 and 陈美华 are managed for hypertension; 李秀英 was referred
        assert [p.name for p in cover["高桥村"].unscreened] == ["李秀英"]


def test_pages_keep_input_and_speak_english(db, client, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    team = world["team"]
    with clock.frozen(_at(D)):
        csrf = b.login(client, "gqdoctor")
        page = client.get(f"/chronic/teams/{team.id}")
        assert page.status_code == 200 and "用户sxspecialist" in page.text  # the lead hospital's doctor is offered
        assert "用户smdoctor" not in page.text  # a doctor outside the alliance is not
        r = client.post(f"/chronic/teams/{team.id}/members", data={"csrf_token": csrf, "user_id": str(world["nurse"].id),
                                                                  "role": ""}, follow_redirects=False)
        assert r.status_code == 422 and "请选择团队角色" in r.text
        assert f'value="{world["nurse"].id}" selected' in r.text  # the choice is kept
        r = client.post(f"/chronic/teams/{team.id}/members", data={"csrf_token": csrf, "user_id": str(world["nurse"].id),
                                                                  "role": "nurse", "lead": "1"}, follow_redirects=False)
        assert r.status_code == 303
        assert "已添加团队成员" in client.get(r.headers["location"]).text
        service.sign_contract(db, world["sub"], team.id, world["王辉煌"].id, "basic")
        contract_id = db.scalar(select(FamilyDoctorContract.id))
        r = client.post(f"/chronic/contracts/{contract_id}/terminate",
                        data={"csrf_token": csrf, "reason": "other", "note": "", "terminated_on": D.isoformat()},
                        follow_redirects=False)
        assert r.status_code == 422 and "请说明解约原因" in r.text
        r = client.post(f"/chronic/contracts/{contract_id}/terminate",
                        data={"csrf_token": csrf, "reason": "moved", "terminated_on": D.isoformat()},
                        follow_redirects=False)
        assert r.status_code == 303
        listed = client.get(f"/chronic/teams/{team.id}?status=terminated")
        assert "王辉煌" in listed.text and "迁出本地" in listed.text
        assert "王辉煌" not in client.get(f"/chronic/teams/{team.id}?status=active").text
        xlsx = client.get(f"/chronic/teams/{team.id}?format=xlsx")
        assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
        assert client.get("/chronic/signing").status_code == 200
        r = client.post("/chronic/registry", data={"csrf_token": csrf, "patient_id": str(world["张建国"].id),
                                                   "condition": "tb", "icd10": "E11", "notified_on": "2026-13-01"},
                        follow_redirects=False)
        assert r.status_code == 422 and "ICD-10 编码与病种不符" in r.text and 'value="E11"' in r.text
        assert "张建国" in r.text  # the chosen patient stays chosen
        r = client.post("/chronic/registry", data={"csrf_token": csrf, "patient_id": str(world["张建国"].id),
                                                   "condition": "tb", "icd10": "A15.0"}, follow_redirects=False)
        assert r.status_code == 303
        reg_url = r.headers["location"].split("?")[0]
        detail = client.get(reg_url)
        assert "强化期" in detail.text and "纳入管理" in detail.text
        r = client.post(reg_url + "/status", data={"csrf_token": csrf, "status": "transferred", "reason": ""},
                        follow_redirects=False)
        assert r.status_code == 422 and "请说明原因" in r.text
        assert "张建国" in client.get("/chronic/registry?condition=tb").text
        assert "张建国" not in client.get("/chronic/registry?condition=smi").text
        r = client.post("/chronic/screening", data={"csrf_token": csrf, "kind": "bp35", "held_on": D.isoformat(),
                                                    "team_id": str(team.id), "village": "高桥村"}, follow_redirects=False)
        assert r.status_code == 303
        round_url = r.headers["location"].split("?")[0]
        r = client.post(round_url + "/records", data={"csrf_token": csrf, "patient_id": str(world["李秀英"].id),
                                                      "sbp": "1a0", "dbp": "95"}, follow_redirects=False)
        assert r.status_code == 422 and "请填写整数" in r.text and 'value="1a0"' in r.text
        r = client.post(round_url + "/records", data={"csrf_token": csrf, "patient_id": str(world["李秀英"].id),
                                                      "sbp": "150", "dbp": "95"}, follow_redirects=False)
        assert r.status_code == 303 and "血压升高" in client.get(r.headers["location"]).text
        pending = client.get("/chronic/screening")
        assert re.search(r'id="pending-count">1<', pending.text) and "建议纳入高血压管理" in pending.text
        record_id = int(re.search(r'/chronic/screening/records/(\d+)/refer', pending.text).group(1))  # type: ignore[union-attr]
        r = client.post(f"/chronic/screening/records/{record_id}/refer", data={"csrf_token": csrf},
                        follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/referrals/new?")
        form = client.get(r.headers["location"]).text  # the referral form arrives prefilled with the readings
        assert "150/95 mmHg" in form and "李秀英" in form
        assert client.get("/chronic/screening/coverage").status_code == 200

        asked = record_english(monkeypatch)
        client.cookies.set("lang", "en")
        for url in (f"/chronic/teams/{team.id}", "/chronic/signing", "/chronic/registry", reg_url, "/chronic/screening",
                    round_url, "/chronic/screening/coverage"):
            assert client.get(url).status_code == 200, url
        client.cookies.delete("lang")
        assert not untranslated(asked) and not {m for m in i18n.MISSING_LABELS if m.startswith("chronic")}

        client.post("/logout", data={"csrf_token": csrf})
        b.login(client, "smdoctor")
        assert client.get(reg_url).status_code == 404
        assert client.get(f"/chronic/teams/{team.id}").status_code == 404
        assert client.get(round_url).status_code == 404
