"""The chronic-care JSON API: the same rules as the pages, the contract's error bodies (404 for another
institution, 409 for a state conflict, 422 with the field), and the records a member HIS would read back."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests import builders as b
from tests.chronic.test_teams_registry import world  # noqa: F401 (the fixture)
from yilianti.kit import clock

D = date(2026, 3, 2)


def _post(client: TestClient, csrf: str, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, headers={"X-CSRF-Token": csrf}, json=body)


def test_teams_contracts_registry_and_screening_through_the_api(db, client, world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    team = world["team"]
    with clock.frozen(clock.as_utc(datetime.combine(D, time(9), clock.SHANGHAI))):
        csrf = b.login(client, "gqdoctor")
        teams = client.get("/api/v1/chronic/teams").json()
        assert [(t["name"], [m["role"] for m in t["members"]]) for t in teams] == [("高桥家庭医生一队", ["gp"])]
        r = _post(client, csrf, f"/api/v1/chronic/teams/{team.id}/members",
                  {"user_id": world["specialist"].id, "role": "specialist", "lead": True})
        assert r.status_code == 201 and r.json()["is_lead"] is True
        r = _post(client, csrf, f"/api/v1/chronic/teams/{team.id}/members", {"user_id": world["stranger"].id,
                                                                            "role": "nurse"})
        assert r.status_code == 422 and r.json()["error"] == "invalid_input" and "user_id" in r.json()["fields"]
        r = _post(client, csrf, f"/api/v1/chronic/teams/{team.id}/contracts",
                  {"patient_id": world["王辉煌"].id, "package": "basic"})
        assert r.status_code == 201
        contract = r.json()
        assert (contract["state"], contract["end_on"]) == ("active", "2027-03-01")
        again = _post(client, csrf, f"/api/v1/chronic/teams/{team.id}/contracts",
                      {"patient_id": world["王辉煌"].id, "package": "basic"})
        assert again.status_code == 409 and set(again.json()) == {"error", "message"}
        r = _post(client, csrf, f"/api/v1/chronic/contracts/{contract['id']}/terminate", {"reason": "other"})
        assert r.status_code == 422 and "note" in r.json()["fields"]
        r = _post(client, csrf, f"/api/v1/chronic/contracts/{contract['id']}/terminate", {"reason": "unknown"})
        assert r.status_code == 422 and r.json()["error"] == "invalid_input"
        rates = client.get("/api/v1/chronic/signing-rates").json()
        total = next(x for x in rates if x["team_id"] is None)
        assert {x["population"]: (x["signed"], x["residents"]) for x in total["rates"]}["all"] == (1, 4)

        r = _post(client, csrf, "/api/v1/chronic/registrations",
                  {"patient_id": world["李秀英"].id, "condition": "smi", "icd10": "F31.1", "risk_level": "3",
                   "team_id": team.id})
        assert r.status_code == 201, r.text
        reg = r.json()
        assert (reg["risk_level"], reg["events"][0]["kind"]) == ("3", "enrolled")
        assert reg["next_follow_up"]["due_on"] == (D + timedelta(days=14)).isoformat()
        r = _post(client, csrf, f"/api/v1/chronic/registrations/{reg['id']}/status",
                  {"status": "transferred", "reason": "迁往三明市区，转三明市第一医院精神科管理"})
        assert r.status_code == 200 and r.json()["status"] == "transferred" and r.json()["next_follow_up"] is None
        r = _post(client, csrf, f"/api/v1/chronic/registrations/{reg['id']}/phase", {"tb_phase": "continuation"})
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        listed = client.get("/api/v1/chronic/registrations", params={"status": "transferred"}).json()
        assert [x["id"] for x in listed] == [reg["id"]]

        r = _post(client, csrf, "/api/v1/chronic/screening-rounds", {"kind": "glucose", "held_on": D.isoformat(),
                                                                     "team_id": team.id, "village": "高桥村"})
        assert r.status_code == 201
        rnd = r.json()
        r = _post(client, csrf, f"/api/v1/chronic/screening-rounds/{rnd['id']}/records",
                  {"patient_id": world["陈美华"].id, "fasting_glucose": 17.2})
        assert r.status_code == 201 and (r.json()["finding"], r.json()["suggestion"]) == ("urgent", "refer")
        r = _post(client, csrf, f"/api/v1/chronic/screening-rounds/{rnd['id']}/records",
                  {"patient_id": world["张建国"].id, "fasting_glucose": 50})
        assert r.status_code == 422 and "fasting_glucose" in str(r.json()["fields"])
        pending = client.get("/api/v1/chronic/screening-records").json()
        assert [(p["patient_id"], p["outcome"]) for p in pending] == [(world["陈美华"].id, "pending")]
        r = _post(client, csrf, f"/api/v1/chronic/screening-records/{pending[0]['id']}/decision", {"action": "refer"})
        assert r.status_code == 200 and r.json()["outcome"] == "referred"
        assert client.get(f"/api/v1/chronic/screening-rounds/{rnd['id']}").json()["records"][0]["outcome"] == "referred"

        client.post("/logout", data={"csrf_token": csrf})
        csrf = b.login(client, "smdoctor")
        assert client.get(f"/api/v1/chronic/registrations/{reg['id']}").status_code == 404
        assert client.get(f"/api/v1/chronic/teams/{team.id}/contracts").status_code == 404
        r = _post(client, csrf, f"/api/v1/chronic/contracts/{contract['id']}/renew", {})
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        assert client.get("/api/v1/chronic/teams").json() == []
