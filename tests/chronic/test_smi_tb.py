"""Severe mental disorders and tuberculosis are followed up by their own national rules, not by blood pressure:
an SMI visit is classified stable / basically stable / unstable by the danger grade, symptoms, insight and social
function, which sets the next date (3 months; 2 weeks; a month under guidance; refer and 2 weeks) and raises an
alarm when unstable; a TB patient is seen every 10 days in the intensive phase and monthly in the continuation
phase, missed doses are counted (a week or more is reported), and the treatment ends with a closing assessment
counted from the follow-ups. The due dates feed the overdue list and the workbench count like every other."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests import builders as b
from tests.chronic import test_teams_registry
from tests.labelcheck import record_english, untranslated
from yilianti.chronic import registry, repository, rules, service
from yilianti.exceptions import InvalidInput
from yilianti.kit import clock, i18n
from yilianti.workbench import service as workbench

D = date(2026, 3, 2)
_at = test_teams_registry._at
world = test_teams_registry.world  # the fixture: a township centre, its team and four residents


def test_the_rules_of_the_two_registries() -> None:
    smi = rules.smi_class
    assert smi(0, symptoms=False, insight="complete", social_poor=False, adverse="none", physical=False) == "stable"
    assert smi(1, symptoms=False, insight="complete", social_poor=False, adverse=None, physical=False) == "basically_stable"
    assert smi(0, symptoms=True, insight=None, social_poor=False, adverse=None, physical=False) == "basically_stable"
    assert smi(0, symptoms=False, insight="partial", social_poor=False, adverse=None, physical=False) == "basically_stable"
    assert smi(0, symptoms=False, insight=None, social_poor=True, adverse=None, physical=False) == "basically_stable"
    assert smi(3, symptoms=False, insight="complete", social_poor=False, adverse=None, physical=False) == "unstable"
    assert smi(0, symptoms=False, insight="absent", social_poor=False, adverse=None, physical=False) == "unstable"
    assert smi(0, symptoms=False, insight=None, social_poor=False, adverse="severe", physical=False) == "unstable"
    assert rules.tb_class(0, adverse="none", complication=False) == "adherent"
    assert rules.tb_class(2, adverse=None, complication=False) == "missed"
    assert rules.tb_class(7, adverse=None, complication=False) == "missed_report"
    assert rules.tb_class(0, adverse="present", complication=False) == "refer"
    nv = rules.next_visit
    assert nv("smi", "stable", D) == (D + timedelta(days=90), "routine")
    assert nv("smi", "basically_stable", D, previous="stable") == (D + timedelta(days=14), "recheck")
    assert nv("smi", "basically_stable", D, previous="basically_stable") == (D + timedelta(days=30), "guided")
    assert nv("smi", "unstable", D) == (D + timedelta(days=14), "after_referral")
    assert nv("tb", "adherent", D, tb_phase="intensive") == (D + timedelta(days=10), "routine")
    assert nv("tb", "missed", D, tb_phase="continuation") == (D + timedelta(days=30), "routine")
    assert nv("tb", "refer", D, tb_phase="continuation") == (D + timedelta(days=14), "after_referral")
    assert nv("hypertension", "controlled", D) == (D + timedelta(days=90), "routine")
    assert nv("diabetes_t2", "uncontrolled", D) == (D + timedelta(days=14), "recheck")
    assert nv("hypertension", "urgent", D) == (D + timedelta(days=14), "after_referral")


def _visit(db, sub, reg_id: int, day: date, **kw):  # type: ignore[no-untyped-def]
    task = repository.open_follow_up(db, reg_id)
    assert task is not None
    with clock.frozen(_at(day)):
        nxt = service.record_follow_up(db, sub, task.id, service.VisitIn(done_on=day, **kw))
    return task, nxt


def test_an_smi_patient_is_followed_by_danger_grade_not_blood_pressure(db, world) -> None:  # type: ignore[no-untyped-def]
    sub = world["sub"]
    with clock.frozen(_at(D)):
        reg = registry.enrol(db, sub, registry.EnrolIn(world["李秀英"].id, "smi", icd10="F20.0", risk_level="1",
                                                       team_id=world["team"].id))
    first = repository.open_follow_up(db, reg.id)
    assert first is not None and first.due_on == D + timedelta(days=14)
    with clock.frozen(_at(D + timedelta(days=14))), pytest.raises(InvalidInput) as e:
        service.record_follow_up(db, sub, first.id, service.VisitIn(done_on=D + timedelta(days=14), sbp=190, dbp=100))
    assert "danger_grade" in e.value.fields and "sbp" not in e.value.fields  # no BP required
    day = D + timedelta(days=14)
    task, nxt = _visit(db, sub, reg.id, day, danger_grade=0, insight="complete", symptoms=["none"],
                       social={"self_care": "good", "work": "fair"})
    assert (task.classification, task.visit_class) == ("stable", "stable")
    assert (nxt.due_on, nxt.reason) == (day + timedelta(days=90), "routine")
    assert task.detail["danger_grade"] == 0 and task.detail["social"] == {"self_care": "good", "work": "fair"}
    day = nxt.due_on
    task, nxt = _visit(db, sub, reg.id, day, danger_grade=1, insight="partial", symptoms=["suspicion"])
    assert task.classification == "basically_stable" and (nxt.due_on, nxt.reason) == (day + timedelta(days=14), "recheck")
    day = nxt.due_on
    task, nxt = _visit(db, sub, reg.id, day, danger_grade=1, insight="partial", social={"work": "poor"})
    assert (nxt.due_on, nxt.reason) == (day + timedelta(days=30), "guided")
    assert repository.open_alarms_of(db, reg.patient_id, reg.institution_id) == []
    day = nxt.due_on
    task, nxt = _visit(db, sub, reg.id, day, danger_grade=4, insight="absent", symptoms=["violence"])
    assert task.classification == "unstable" and (nxt.due_on, nxt.reason) == (day + timedelta(days=14), "after_referral")
    alarms = repository.open_alarms_of(db, reg.patient_id, reg.institution_id)
    assert [a.kind for a in alarms] == ["danger"] and "4 级" in alarms[0].value_text
    # the next visit falls due, is overdue, and shows on the workbench and the overdue list alike
    with clock.frozen(_at(nxt.due_on + timedelta(days=1))):
        item = next(i for i in workbench.for_subject(db, sub).items if i.key == "chronic.due")
        assert item.count == 1
        assert [r.task.id for r in service.due_list(db, sub, world["team"].id).rows] == [nxt.id]


def test_a_tb_patient_by_phase_with_missed_doses_and_a_closing_assessment(db, world) -> None:  # type: ignore[no-untyped-def]
    sub = world["sub"]
    with clock.frozen(_at(D)):
        reg = registry.enrol(db, sub, registry.EnrolIn(world["张建国"].id, "tb", icd10="A15.0", notified_on=D,
                                                       team_id=world["team"].id))
    first = repository.open_follow_up(db, reg.id)
    assert first is not None and first.due_on == D + timedelta(days=3)  # home visit within 72 h
    with clock.frozen(_at(D + timedelta(days=3))), pytest.raises(InvalidInput) as e:
        service.record_follow_up(db, sub, first.id, service.VisitIn(done_on=D + timedelta(days=3)))
    assert set(e.value.fields) == {"missed_doses"}
    day = D + timedelta(days=3)
    task, nxt = _visit(db, sub, reg.id, day, missed_doses=0, supervisor="doctor", treatment_month=1)
    assert task.classification == "adherent" and (nxt.due_on, nxt.reason) == (day + timedelta(days=10), "routine")
    day = nxt.due_on
    task, nxt = _visit(db, sub, reg.id, day, missed_doses=8, supervisor="family")
    assert task.classification == "missed_report" and nxt.due_on == day + timedelta(days=10)
    with clock.frozen(_at(day)):
        registry.set_phase(db, sub, reg.id, "continuation", "强化期结束")
        with pytest.raises(InvalidInput) as e:  # the treatment ends only with its closing assessment
            registry.set_phase(db, sub, reg.id, "completed")
        assert "tb_phase" in e.value.fields
    # the visit planned 10 days after the last one (intensive) moves to a month after it (continuation)
    db.refresh(nxt)
    assert (nxt.due_on, nxt.reason, nxt.status) == (day + timedelta(days=30), "routine", "open")
    day = nxt.due_on
    task, nxt = _visit(db, sub, reg.id, day, missed_doses=1)
    assert task.classification == "missed" and nxt.due_on == day + timedelta(days=30)
    day = nxt.due_on
    task, nxt = _visit(db, sub, reg.id, day, missed_doses=0, adverse="present", adverse_text="皮疹")
    assert task.classification == "refer" and (nxt.due_on, nxt.reason) == (day + timedelta(days=14), "after_referral")
    # closing: 4 visits made; 5 due by the stop (the open one fell due); 170 of 180 doses
    stop = nxt.due_on + timedelta(days=2)
    with clock.frozen(_at(stop)):
        with pytest.raises(InvalidInput) as e:
            registry.close_tb(db, sub, reg.id, registry.ClosingIn(stop, "completed", 180, 190))
        assert "doses_taken" in e.value.fields
        closing = registry.close_tb(db, sub, reg.id, registry.ClosingIn(stop, "completed", 180, 170))
    assert (closing.visits_due, closing.visits_done, closing.regular) == (5, 4, True)
    stored = repository.tb_closing(db, reg.id)  # in its own columns, with who assessed it
    assert stored is not None
    row, who = stored
    assert (row.outcome, row.stopped_on, row.visits_due, row.visits_done, row.doses_due, row.doses_taken,
            row.regular, row.assessed_by_user_id) == ("completed", stop, 5, 4, 180, 170, True, sub.user_id)
    assert who == repository.user_names(db, [sub.user_id])[sub.user_id]
    assert reg.tb_phase == "completed" and reg.status == "under_care"
    assert repository.open_follow_up(db, reg.id) is None  # nothing due any more
    events = repository.registration_events(db, reg.id)
    assert any("应访视 5 次，实际 4 次" in (e.reason or "") and "94.4%" in (e.reason or "") for e, _ in events)


def test_the_smi_and_tb_forms_and_the_closing_on_the_pages(db, client, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sub = world["sub"]
    with clock.frozen(_at(D)):
        smi = registry.enrol(db, sub, registry.EnrolIn(world["李秀英"].id, "smi", icd10="F20.0", risk_level="0"))
        tb = registry.enrol(db, sub, registry.EnrolIn(world["张建国"].id, "tb", icd10="A15.0", notified_on=D))
    smi_task, tb_task = repository.open_follow_up(db, smi.id), repository.open_follow_up(db, tb.id)
    assert smi_task is not None and tb_task is not None
    day = D + timedelta(days=14)
    with clock.frozen(_at(day)):
        token = b.login(client, "gqdoctor")
        page = client.get(f"/chronic/follow-ups/{smi_task.id}").text
        assert "严重精神障碍患者随访服务记录表" in page and 'name="danger_grade"' in page and 'name="social_work"' in page
        assert 'name="sbp" required' not in page and "摄盐情况" not in page
        r = client.post(f"/chronic/follow-ups/{smi_task.id}", data={
            "csrf_token": token, "done_on": day.isoformat(), "danger_grade": "2", "insight": "partial",
            "social_work": "poor", "symptoms": ["suspicion"]}, follow_redirects=False)
        assert r.status_code == 303, r.text
        db.refresh(smi_task)
        assert smi_task.classification == "basically_stable"
        bad = client.post(f"/chronic/follow-ups/{tb_task.id}", data={"csrf_token": token, "done_on": day.isoformat(),
                                                                     "missed_doses": "abc"})
        assert bad.status_code == 422 and 'id="err-missed_doses"' in bad.text
        page = client.get(f"/chronic/follow-ups/{tb_task.id}").text
        assert "肺结核患者随访服务记录表" in page and 'name="supervisor"' in page
        r = client.post(f"/chronic/follow-ups/{tb_task.id}", data={
            "csrf_token": token, "done_on": day.isoformat(), "missed_doses": "0", "supervisor": "doctor"},
            follow_redirects=False)
        assert r.status_code == 303
        db.refresh(tb_task)
        assert tb_task.classification == "adherent"
        reg_page = client.get(f"/chronic/registrations/{tb.id}").text
        assert 'id="tb-closing"' in reg_page and 'value="completed"' not in reg_page.split('id="tb-closing"')[0]
        r = client.post(f"/chronic/registrations/{tb.id}/closing", data={
            "csrf_token": token, "stopped_on": day.isoformat(), "stop_reason": "lost", "doses_due": "30",
            "doses_taken": "20"}, follow_redirects=False)
        assert r.status_code == 303
        db.refresh(tb)
        assert (tb.tb_phase, tb.status) == ("completed", "lost")
        reg_page = client.get(f"/chronic/registrations/{tb.id}").text
        assert '<span id="tb-outcome">丢失</span>' in reg_page and '<span id="tb-doses-taken">20</span>' in reg_page
        assert "未规则服药" in reg_page.split('id="tb-regular"')[1][:40]
        # in English, every label of the two forms and the closing is translated
        asked = record_english(monkeypatch)
        client.cookies.set("lang", "en")
        with clock.frozen(_at(D)):
            other = registry.enrol(db, sub, registry.EnrolIn(world["陈美华"].id, "tb", icd10="A16.2", notified_on=D))
        for path in (f"/chronic/follow-ups/{smi_task.id}", f"/chronic/follow-ups/{tb_task.id}",
                     f"/chronic/registrations/{tb.id}", f"/chronic/registrations/{other.id}",
                     f"/chronic/follow-ups/{repository.open_follow_up(db, smi.id).id}"):  # type: ignore[union-attr]
            assert client.get(path).status_code == 200, path
        assert not untranslated(asked)
        assert not {m for m in i18n.MISSING_LABELS if m.startswith("chronic")}


def test_the_closing_assessment_in_the_registrations_json(db, client, world) -> None:  # type: ignore[no-untyped-def]
    sub = world["sub"]
    with clock.frozen(_at(D)):
        reg = registry.enrol(db, sub, registry.EnrolIn(world["张建国"].id, "tb", icd10="A15.0", notified_on=D,
                                                       team_id=world["team"].id))
        htn = registry.enrol(db, sub, registry.EnrolIn(world["李秀英"].id, "hypertension", icd10="I10",
                                                       risk_level="low", team_id=world["team"].id))
        b.login(client, "gqdoctor")
        before = client.get(f"/api/v1/chronic/registrations/{reg.id}")
        assert before.status_code == 200 and before.json()["tb_closing"] is None
    stop = D + timedelta(days=60)
    with clock.frozen(_at(stop)):
        registry.close_tb(db, sub, reg.id, registry.ClosingIn(stop, "lost", 60, 20, note="外出务工失联"))
        db.flush()
        r = client.get(f"/api/v1/chronic/registrations/{reg.id}")
        assert r.status_code == 200
        body = r.json()
        closing = body["tb_closing"]
        assert (body["status"], body["tb_phase"]) == ("lost", "completed")
        assert {k: closing[k] for k in ("stopped_on", "outcome", "doses_due", "doses_taken", "regular", "note",
                                        "assessed_by_user_id")} == {
            "stopped_on": stop.isoformat(), "outcome": "lost", "doses_due": 60, "doses_taken": 20, "regular": False,
            "note": "外出务工失联", "assessed_by_user_id": sub.user_id}
        assert closing["visits_due"] >= 1 and closing["assessed_by"] == repository.user_names(
            db, [sub.user_id])[sub.user_id]
        assert client.get(f"/api/v1/chronic/registrations/{htn.id}").json()["tb_closing"] is None
        missing = client.get("/api/v1/chronic/registrations/99999999")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    schema = client.get("/api/openapi.json").json()["components"]["schemas"]
    assert "tb_closing" in schema["RegistrationDetailOut"]["properties"] and "TbClosingOut" in schema
