"""Chronic care's work through the JSON API, as a member HIS or a device gateway would use it: the overdue list
(the same rows as the workbench count), a visit recorded on the national form's fields for each registry, the
call log, an alarm acknowledged with its prefilled urgent referral, readings uploaded as CSV with per-row errors;
the contract's error bodies, another institution's 404, and every patient read audited."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests import builders as b
from tests.chronic import test_teams_registry
from yilianti.chronic import registry, repository, service
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent
from yilianti.workbench import service as workbench

D = date(2026, 3, 2)
_at = test_teams_registry._at
world = test_teams_registry.world
API = "/api/v1/chronic"


def _contract(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) <= {"error", "message", "fields"} and body["message"], body
    return body


def test_follow_ups_calls_alarms_and_readings_through_the_api(db, client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    sub, team, wang = world["sub"], world["team"], world["王辉煌"]
    with clock.frozen(_at(D)):
        dm = service.enrol(db, sub, wang.id, "diabetes_t2", team_id=team.id)
        smi = registry.enrol(db, sub, registry.EnrolIn(world["李秀英"].id, "smi", icd10="F20.0", risk_level="1",
                                                       team_id=team.id))
    day = D + timedelta(days=20)
    with clock.frozen(_at(day)):
        h = {"X-CSRF-Token": b.login(client, "gqdoctor")}
        rows = client.get(f"{API}/follow-ups/overdue").json()
        count = next(i for i in workbench.for_subject(db, sub).items if i.key == "chronic.due").count
        assert len(rows) == count == 2
        assert {(r["patient_name"], r["condition"], r["days_overdue"]) for r in rows} == {
            ("王辉煌", "diabetes_t2", 6), ("李秀英", "smi", 6)}
        assert [r["patient_name"] for r in client.get(f"{API}/follow-ups/overdue?condition=smi").json()] == ["李秀英"]
        task = next(r["follow_up"] for r in rows if r["condition"] == "diabetes_t2")
        got = client.get(f"{API}/follow-ups/{task['id']}")
        assert got.status_code == 200 and got.json()["status"] == "open"
        assert db.scalar(select(AuditEvent).where(AuditEvent.resource_type == "chronic_follow_up",
                                                  AuditEvent.resource_id == str(task["id"]),
                                                  AuditEvent.action == "read"))

        body = _contract(client.post(f"{API}/follow-ups/{task['id']}", headers=h,
                                     json={"done_on": day.isoformat(), "fasting_glucose": 17.0,
                                           "visit_mode": "boat"}), 422)
        assert set(body["fields"]) == {"visit_mode"}
        body = _contract(client.post(f"{API}/follow-ups/{task['id']}", headers=h,
                                     json={"done_on": day.isoformat(), "sbp": 400}), 422)
        assert "sbp" in body["fields"]
        _contract(client.post(f"{API}/follow-ups/{task['id']}", headers=h, json={"done_on": day.isoformat()}), 422)
        r = client.post(f"{API}/follow-ups/{task['id']}", headers=h, json={
            "done_on": day.isoformat(), "fasting_glucose": 17.0, "visit_mode": "clinic", "symptoms": ["polydipsia"],
            "medications": ["二甲双胍 0.5g tid"], "adherence": "regular"})
        assert r.status_code == 201, r.text
        reads = db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "chronic_follow_up",
                                                    AuditEvent.resource_id == str(task["id"]),
                                                    AuditEvent.action == "read")).all()
        assert len(reads) == 2  # the GET and the POST that was kept: each checked and audited the read once
        nxt = r.json()
        assert (nxt["due_on"], nxt["reason"], nxt["status"]) == ((day + timedelta(days=14)).isoformat(),
                                                                  "after_referral", "open")
        _contract(client.post(f"{API}/follow-ups/{task['id']}", headers=h,
                              json={"done_on": day.isoformat(), "fasting_glucose": 6.0}), 409)
        done = client.get(f"{API}/follow-ups/{task['id']}").json()
        assert (done["classification"], done["detail"]["medications"]) == ("urgent", ["二甲双胍 0.5g tid"])

        smi_task = next(r["follow_up"] for r in rows if r["condition"] == "smi")
        body = _contract(client.post(f"{API}/follow-ups/{smi_task['id']}", headers=h,
                                     json={"done_on": day.isoformat(), "social": {"work": "poor"}}), 422)
        assert "danger_grade" in body["fields"]
        _contract(client.post(f"{API}/follow-ups/{smi_task['id']}", headers=h,
                              json={"done_on": day.isoformat(), "danger_grade": 0, "social": {"job": "poor"}}), 422)
        r = client.post(f"{API}/follow-ups/{smi_task['id']}", headers=h, json={
            "done_on": day.isoformat(), "danger_grade": 1, "insight": "partial", "social": {"work": "poor"}})
        assert r.status_code == 201 and r.json()["reason"] == "recheck"
        assert client.get(f"{API}/follow-ups/{smi_task['id']}").json()["classification"] == "basically_stable"

        r = client.post(f"{API}/follow-ups/{nxt['id']}/calls", headers=h, json={"outcome": "no_answer"})
        assert r.status_code == 201 and r.json()["outcome"] == "no_answer"
        _contract(client.post(f"{API}/follow-ups/{nxt['id']}/calls", headers=h, json={"outcome": "maybe"}), 422)
        assert [c["outcome"] for c in client.get(f"{API}/follow-ups/{nxt['id']}/calls").json()] == ["no_answer"]

        alarms = client.get(f"{API}/alarms?status=open").json()
        assert [(a["kind"], a["source"]) for a in alarms] == [("glucose_high", "visit")]
        assert alarms[0]["referral_url"].startswith("/referrals/new?") and "priority=urgent" in alarms[0]["referral_url"]
        r = client.post(f"{API}/alarms/{alarms[0]['id']}/acknowledge", headers=h, json={"note": "已电话联系"})
        assert r.status_code == 200 and r.json()["acknowledged_at"]
        _contract(client.post(f"{API}/alarms/{alarms[0]['id']}/acknowledge", headers=h, json={}), 409)
        assert client.get(f"{API}/alarms?status=open").json() == []

        rid = b.resident_id(date(1956, 5, 1), "350427", seq=11)  # 王辉煌's, as the world fixture made it
        csv = (f"身份证号,测量时间,血糖\n{rid},{day.isoformat()} 07:30,18.2\n"
               f"110101190001010000,{day.isoformat()} 07:40,6.0\n").encode()
        r = client.post(f"{API}/readings?device=GM-01", headers={**h, "Content-Type": "text/csv"}, content=csv)
        assert r.status_code == 201, r.text
        up = r.json()
        assert (up["imported"], up["alarms"], [e["row"] for e in up["errors"]]) == (1, 1, [3])
        _contract(client.post(f"{API}/readings", headers=h, json={"rows": []}), 422)
        got = client.get(f"{API}/readings").json()
        assert [(x["kind"], x["glucose"], x["device"]) for x in got] == [("glucose", 18.2, "GM-01")]
        assert len(client.get(f"{API}/alarms?status=open").json()) == 1

        # another institution's doctor sees none of it
        client.post("/logout", data={"csrf_token": h["X-CSRF-Token"]})
        b.login(client, "smdoctor")
        _contract(client.get(f"{API}/follow-ups/{task['id']}"), 404)
        _contract(client.get(f"{API}/alarms/{alarms[0]['id']}"), 404)
        assert client.get(f"{API}/follow-ups/overdue").json() == []
    assert repository.open_follow_up(db, dm.id) is not None and repository.open_follow_up(db, smi.id) is not None


def test_the_workbench_count_opens_the_list_of_exactly_its_rows(db, client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    """Due today and overdue, across every team and none: the count's link lists those rows and no others."""
    sub, team = world["sub"], world["team"]
    other = service.create_team(db, sub, "上坪家庭医生二队", "上坪村", [(world["doctor"].id, "gp")])
    with clock.frozen(_at(D)):
        service.enrol(db, sub, world["王辉煌"].id, "hypertension", team_id=team.id)  # due D+14: today
        service.enrol(db, sub, world["张建国"].id, "hypertension", team_id=other.id,
                      enrolled_on=D - timedelta(days=3))  # due D+11: overdue
        service.enrol(db, sub, world["陈美华"].id, "hypertension", enrolled_on=D - timedelta(days=1))  # no team
        service.enrol(db, sub, world["李秀英"].id, "hypertension", team_id=team.id,
                      enrolled_on=D + timedelta(days=1))  # due tomorrow: not yet
    with clock.frozen(_at(D + timedelta(days=14))):
        b.login(client, "gqdoctor")
        home = client.get("/").text
        href, count, target = re.search(r'<a href="([^"]+)" id="wb-chronic-due" class="wb-count[^"]*" '
                                        r'data-count="(\d+)" data-target="([\w-]+)"', home).groups()  # type: ignore[union-attr]
        assert (href, count, target) == ("/chronic/overdue?due=today", "3", "pager")
        page = client.get("/chronic/overdue?due=today").text
        assert re.search(r'id="pager" data-total="3"', page)
        assert {n for n in ("王辉煌", "张建国", "陈美华", "李秀英") if n in page} == {"王辉煌", "张建国", "陈美华"}
        assert "今日到期" in page and "逾期 3 天" in page
        assert re.search(r'id="pager" data-total="2"', client.get("/chronic/overdue").text)  # overdue only
