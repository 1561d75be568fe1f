"""The national follow-up visit record (高血压/2型糖尿病患者随访服务记录表): a doctor fills symptoms, signs,
lifestyle, tests, medication with adherence and side effects; the visit is classified (控制满意 / 控制不满意 /
不良反应 / 并发症), the next visit is dated by the national interval rule, and a form with a mistake comes back
with every value still in it."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from tests import builders as b
from tests.chronic.test_chronic import _at
from yilianti.chronic import service, visit
from yilianti.kit import clock

D = date(2026, 3, 2)


@pytest.fixture
def enrolled(db):  # type: ignore[no-untyped-def]
    centre = b.institution(db, "沙县区总医院高桥分院", kind="community", level=1)
    doctor = b.user(db, centre, "doctor", username="gqdoctor")
    db.flush()
    sub = b.subject_for(db, doctor)
    with clock.frozen(_at(D - timedelta(days=14))):
        wang = b.patient(db, sub, "王辉煌", birth=date(1960, 5, 1))
        li = b.patient(db, sub, "李秀英", birth=date(1955, 8, 9))
        team = service.create_team(db, sub, "高桥家庭医生一队", "高桥村", [(doctor.id, "gp")])
        dm = service.enrol(db, sub, wang.id, "diabetes_t2", team_id=team.id)
        htn = service.enrol(db, sub, li.id, "hypertension", team_id=team.id)
    return {"sub": sub, "team": team, "dm": dm, "htn": htn, "wang": wang, "li": li}


def _open(db, reg):  # type: ignore[no-untyped-def]
    from yilianti.chronic import repository
    return repository.open_follow_up(db, reg.id)


def test_the_rules_take_side_effects_complications_and_danger_signs() -> None:
    # controlled values but a side effect: adjust and re-check in two weeks (不良反应)
    assert service.classify("diabetes_t2", None, None, 6.0, None, adverse="present") == "uncontrolled"
    assert service.visit_class("diabetes_t2", None, None, 6.0, adverse="present") == "adverse"
    # the second time in a row: refer; a side effect the patient cannot bear or a new complication: refer at once
    assert service.classify("diabetes_t2", None, None, 6.0, "uncontrolled", adverse="present") == "refer"
    assert service.classify("hypertension", 130, 80, None, None, adverse="severe") == "refer"
    assert service.classify("hypertension", 130, 80, None, None, complication=True) == "refer"
    assert service.visit_class("hypertension", 130, 80, None, complication=True, adverse="present") == "complication"
    # a danger sign makes any visit an urgent referral, whatever the values
    assert service.classify("hypertension", 130, 80, None, None, danger=True) == "urgent"
    assert service.urgent_values("diabetes_t2", 120, 70, 16.7) == [("glucose_high", "血糖 16.7 mmol/L")]
    assert service.urgent_values("hypertension", 179, 110, None) == [("bp_high", "血压 179/110 mmHg")]
    assert service.urgent_values("hypertension", 150, 95, 20.0) == []  # glucose is the diabetes registry's


def test_reading_a_form_checks_every_range_and_code() -> None:
    data = visit.read("hypertension", {"sbp": "310", "dbp": "abc", "weight_kg": "72.5", "height_cm": "165",
                                       "smoking": "-1", "visit_mode": "fax", "medications": "氨氯地平 5mg qd\n\n"},
                      {"symptoms": ["none", "headache"], "danger": ["nosuch"]}, D)
    assert data.errors == {"sbp": "应在 50–300 mmHg 之间", "dbp": "请填写整数", "smoking": "应在 0–100 支/日 之间",
                           "visit_mode": "请从列表中选择", "danger": "请从列表中选择",
                           "symptoms": "已选“无症状”时不能再选其他症状"}
    assert data.bmi == 26.6 and data.medications == ["氨氯地平 5mg qd"]
    ok = visit.read("hypertension", {"sbp": "150", "dbp": "150"}, {}, D)
    assert visit.check("hypertension", ok, D)["dbp"] == "舒张压应低于收缩压"
    side = visit.read("diabetes_t2", {"fasting_glucose": "6.1", "adverse": "present"}, {}, D)
    assert visit.check("diabetes_t2", side, D) == {"adverse_text": "请写明药物不良反应"}


def test_a_diabetes_visit_on_the_national_form(db, client, enrolled) -> None:  # type: ignore[no-untyped-def]
    task = _open(db, enrolled["dm"])
    with clock.frozen(_at(D)):
        csrf = b.login(client, "gqdoctor")
        page = client.get(f"/chronic/follow-ups/{task.id}")
        assert page.status_code == 200 and "2型糖尿病患者随访服务记录表" in page.text
        assert "足背动脉搏动" in page.text and "多饮" in page.text and "摄盐情况" not in page.text
        form = {"csrf_token": csrf, "done_on": D.isoformat(), "visit_mode": "home", "sbp": "310", "dbp": "82",
                "heart_rate": "76", "weight_kg": "70", "height_cm": "abc", "fasting_glucose": "8.2", "hba1c": "7.4",
                "staple_g": "300", "mental": "good", "compliance": "fair", "adherence": "intermittent",
                "adverse": "present", "adverse_text": "胃肠不适", "hypoglycaemia": "none", "foot_pulse": "weak",
                "medications": "二甲双胍 0.5g tid\n格列美脲 2mg qd", "symptoms": ["polydipsia", "blurred"],
                "note": "饮食控制欠佳"}
        r = client.post(f"/chronic/follow-ups/{task.id}", data=form, follow_redirects=False)
        # the mistakes are named, everything typed is still there
        assert r.status_code == 422
        assert "应在 50–300 mmHg 之间" in r.text and "请填写数字" in r.text
        assert 'value="胃肠不适"' in r.text and 'value="8.2"' in r.text and "二甲双胍 0.5g tid" in r.text
        assert re.search(r'value="polydipsia" checked', r.text) and re.search(r'value="blurred" checked', r.text)
        assert re.search(r'<option value="intermittent" selected', r.text)
        r = client.post(f"/chronic/follow-ups/{task.id}", data={**form, "sbp": "132", "height_cm": "168"},
                        follow_redirects=False)
        assert r.status_code == 303, r.text
        db.expire_all()
        assert (task.status, task.visit_class, task.classification) == ("done", "adverse", "uncontrolled")
        assert (task.bmi, task.hba1c, task.adherence, task.visit_mode) == (24.8, 7.4, "intermittent", "home")
        assert task.detail["medications"] == ["二甲双胍 0.5g tid", "格列美脲 2mg qd"]
        assert task.detail["lifestyle"] == {"staple_g": 300, "mental": "good", "compliance": "fair"}
        assert task.detail["symptoms"] == ["polydipsia", "blurred"] and task.detail["foot_pulse"] == "weak"
        # the next visit is the national re-check in two weeks, shown where the doctor lands
        page = client.get(r.headers["location"])
        nxt = _open(db, enrolled["dm"])
        assert nxt.due_on == D + timedelta(days=14) and nxt.reason == "recheck"
        assert re.search(rf'id="next-due">{(D + timedelta(days=14)).isoformat()}<', page.text)
        assert re.search(r'id="last-class">不良反应<', page.text)
        # the glucose over time, the 8.2 outside the green target band (3.9–7.0)
        assert 'id="glucose-chart"' in page.text and 'class="pt abn"' in page.text and 'id="sbp-chart"' in page.text
        # the new form starts from the last visit's height and medication
        assert 'value="168"' in page.text and "格列美脲 2mg qd" in page.text


def test_a_danger_sign_or_a_complication_refers_whatever_the_values(db, client, enrolled) -> None:  # type: ignore[no-untyped-def]
    task = _open(db, enrolled["htn"])
    with clock.frozen(_at(D)):
        csrf = b.login(client, "gqdoctor")
        base = {"csrf_token": csrf, "done_on": D.isoformat(), "sbp": "132", "dbp": "84"}
        r = client.post(f"/chronic/follow-ups/{task.id}", data={**base, "complication": "1"}, follow_redirects=False)
        assert r.status_code == 422 and "请写明新发并发症" in r.text
        r = client.post(f"/chronic/follow-ups/{task.id}", data={**base, "complication": "1",
                                                               "complication_text": "蛋白尿"}, follow_redirects=False)
        assert r.status_code == 303
        db.expire_all()
        assert (task.visit_class, task.classification) == ("complication", "refer")
        second = _open(db, enrolled["htn"])
        assert (second.due_on, second.reason) == (D + timedelta(days=14), "after_referral")
        r = client.post(f"/chronic/follow-ups/{second.id}", data={**base, "danger": ["chest"]}, follow_redirects=False)
        assert r.status_code == 303
        db.expire_all()
        assert (second.visit_class, second.classification) == ("controlled", "urgent")
