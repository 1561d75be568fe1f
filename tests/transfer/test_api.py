"""The transfer JSON API and pages: the neonatal case end to end, errors with nothing changed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import builders as b
from tests.transfer.helpers import dispatched, tworld
from yilianti.kit import clock
from yilianti.models.transfer import CriticalTransfer, TransferMilestone
from yilianti.transfer import service
from yilianti.transfer.schemas import MilestoneIn

START = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)  # 08:30 Beijing


def _post(client: TestClient, csrf: str, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, headers={"X-CSRF-Token": csrf}, json=body)


def test_api_neonatal_flow(db: Session, client: TestClient) -> None:
    w = tworld(db)
    with clock.frozen(START):
        csrf = b.login(client, w.lf_doc_username)
        r = _post(client, csrf, "/api/v1/transfers", {
            "patient_id": w.patient.id, "destination_institution_id": w.capital.id, "network": "neonatal",
            "diagnosis": "早产儿，新生儿呼吸窘迫综合征", "vitals": {"hr": 170, "spo2": 85, "weight_kg": 1.7}})
        assert r.status_code == 201, r.text
        t = r.json()
        assert t["case_no"] == "ZY20261120-0001" and t["status"] == "requested"
        assert [m["kind"] for m in t["milestones"]] == ["requested"]

        client.cookies.clear()
        csrf = b.login(client, w.cap_doc_username)
        assert [x["id"] for x in client.get("/api/v1/transfers", params={"direction": "incoming"}).json()] == [t["id"]]
        r = _post(client, csrf, f"/api/v1/transfers/{t['id']}/accept", {"bed_note": "NICU 3 床"})
        assert r.status_code == 200 and r.json()["accepting_physician"] == "王新生"
        r = _post(client, csrf, f"/api/v1/transfers/{t['id']}/dispatch",
                  {"vehicle": "京A·12035", "team": "王新生、李护士"})
        assert r.json()["status"] == "dispatched"
        for kind, minutes in [("team_departed", 10), ("arrived_at_origin", 60), ("assessed", 25),
                              ("departed_with_patient", 10), ("arrived", 50), ("handed_over", 5)]:
            clock.advance(timedelta(minutes=minutes))
            r = _post(client, csrf, f"/api/v1/transfers/{t['id']}/milestones", {"kind": kind})
            assert r.status_code == 201, r.text
        done = r.json()
        assert done["status"] == "handed_over" and done["total_minutes"] == 160
        assert [m["minutes_since_previous"] for m in done["milestones"]] == [None, 10, 60, 25, 10, 50, 5]

        page = client.get(f"/transfers/{t['id']}")
        assert page.status_code == 200
        assert "2 小时 40 分" in page.text
        timeline = page.text[page.text.index('id="timeline"'):]
        assert "转运团队出发" in timeline and "2026-11-20 08:40" in timeline and "完成交接" in timeline
        assert "2026-11-20 11:10" in timeline
        listing = client.get("/transfers")
        assert "ZY20261120-0001" in listing.text and "已交接" in listing.text


def test_api_chest_pain_indicators_on_page(db: Session, client: TestClient) -> None:
    w = tworld(db)
    with clock.frozen(START):
        t = dispatched(db, w, network="chest_pain", diagnosis="急性ST段抬高型心肌梗死")
        csrf = b.login(client, w.cap_doc_username)
        url = f"/api/v1/transfers/{t.id}/milestones"
        _post(client, csrf, url, {"kind": "first_medical_contact", "at": "2026-11-20T08:00:00+08:00"})
        _post(client, csrf, url, {"kind": "first_ecg", "at": "2026-11-20T08:08:00+08:00"})
        clock.advance(timedelta(hours=8))  # 16:30 in Beijing
        assert _post(client, csrf, url, {"kind": "door", "at": "2026-11-20T06:35:00Z"}).status_code == 201
        r = _post(client, csrf, url, {"kind": "balloon", "at": "2026-11-20T16:10:00"})  # naive = Beijing time
        assert r.status_code == 201, r.text
        ind = {i["key"]: i for i in r.json()["indicators"]}
        assert (ind["fmc_to_ecg"]["minutes"], ind["fmc_to_ecg"]["met"]) == (8, True)
        assert (ind["door_to_balloon"]["minutes"], ind["door_to_balloon"]["met"]) == (95, False)
        page = client.get(f"/transfers/{t.id}").text
    row = lambda key: re.search(rf'id="indicator-{key}">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]  # noqa: E731
    assert "8 分钟" in row("fmc_to_ecg") and "未达标" not in row("fmc_to_ecg") and "达标" in row("fmc_to_ecg")
    assert "95 分钟" in row("door_to_balloon") and "未达标" in row("door_to_balloon")


def test_api_errors_change_nothing(db: Session, client: TestClient) -> None:
    w = tworld(db)
    with clock.frozen(START):
        t = dispatched(db, w)
        service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind="team_departed"))
        count = lambda: db.scalar(select(func.count()).select_from(TransferMilestone)  # noqa: E731
                                  .where(TransferMilestone.transfer_id == t.id))
        before = count()
        csrf = b.login(client, w.lf_doc_username)
        url = f"/api/v1/transfers/{t.id}/milestones"
        r = _post(client, csrf, url, {"kind": "handed_over"})
        assert r.status_code == 409 and r.json()["error"] == "milestone_out_of_order"
        r = _post(client, csrf, url, {"kind": "arrived_at_origin", "at": "2026-11-20T08:00:00+08:00"})
        assert r.status_code == 422 and "at" in r.json()["fields"]
        r = _post(client, csrf, url, {"kind": "arrived_at_origin", "at": "2026-11-20T12:00:00+08:00"})
        assert r.status_code == 422 and "at" in r.json()["fields"]
        assert count() == before
        # implausible vitals: one message per field, nothing stored
        n = db.scalar(select(func.count()).select_from(CriticalTransfer))
        r = _post(client, csrf, "/api/v1/transfers", {
            "patient_id": w.patient.id, "destination_institution_id": w.capital.id, "diagnosis": "呼吸衰竭",
            "vitals": {"hr": 400, "spo2": 120, "bp_sys": 80, "bp_dia": 90, "temp": 36.5}})
        assert r.status_code == 422
        fields = r.json()["fields"]
        assert set(fields) == {"vitals.hr", "vitals.spo2", "vitals.bp_dia"}
        assert fields["vitals.hr"] == "心率应在 20–300 次/分之间"
        assert db.scalar(select(func.count()).select_from(CriticalTransfer)) == n

        # an institution on neither side: 404 everywhere
        client.cookies.clear()
        csrf = b.login(client, w.out_doc_username)
        assert client.get(f"/api/v1/transfers/{t.id}").status_code == 404
        assert _post(client, csrf, url, {"kind": "arrived_at_origin"}).status_code == 404
        assert _post(client, csrf, f"/api/v1/transfers/{t.id}/cancel", {"reason": "x"}).status_code == 404
        assert client.get(f"/transfers/{t.id}").status_code == 404
        assert client.get("/api/v1/transfers").json() == []
        assert count() == before


def test_pages_request_accept_dispatch_and_bad_forms(db: Session, client: TestClient) -> None:
    w = tworld(db)
    csrf = b.login(client, w.lf_doc_username)
    form = client.get("/transfers/new")
    assert 'id="pick-patient_id"' in form.text and "首都儿科研究所附属儿童医院" in form.text and "联盟外医院" not in form.text
    base = {"csrf_token": csrf, "patient_id": str(w.patient.id), "destination_institution_id": str(w.capital.id),
            "network": "neonatal", "diagnosis": "新生儿呼吸窘迫综合征"}
    bad = client.post("/transfers/new", data={**base, "vitals.spo2": "150", "vitals.hr": "160"})
    assert bad.status_code == 422 and "血氧饱和度应在 30–100% 之间" in bad.text
    assert "张宝宝" in bad.text and 'name="vitals.spo2"' in bad.text  # the chosen patient and values kept
    assert db.scalar(select(func.count()).select_from(CriticalTransfer)) == 0
    r = client.post("/transfers/new", data={**base, "vitals.spo2": "86", "vitals.weight_kg": "1.65"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    url, _, done = r.headers["location"].partition("?")
    page = client.get(f"{url}?{done}").text
    assert "转运申请已发出" in page  # the page says what was done
    assert "已申请" in page and "1.65" in page and 'id="accept-form"' not in page

    client.cookies.clear()
    csrf = b.login(client, w.cap_doc_username)
    assert 'id="accept-form"' in client.get(url).text
    assert client.post(f"{url}/accept", data={"csrf_token": csrf, "bed_note": "NICU 3 床"},
                       follow_redirects=False).status_code == 303
    r = client.post(f"{url}/dispatch", data={"csrf_token": csrf, "vehicle": "", "team": ""})
    assert r.status_code == 422
    client.post(f"{url}/dispatch", data={"csrf_token": csrf, "vehicle": "京A·12035", "team": "王新生、李护士"})
    r = client.post(f"{url}/milestone", data={"csrf_token": csrf, "kind": "arrived"})
    assert r.status_code == 409 and "节点顺序不对" in r.text
    r = client.post(f"{url}/milestone", data={"csrf_token": csrf, "kind": "team_departed", "at": ""},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(url).text
    assert 'id="milestone-team_departed"' in page and "转运中" in page
