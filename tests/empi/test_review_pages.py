"""Identity review pages and API: a steward sees the pair side by side, confirms, unmerges, rejects."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests import builders as b
from tests.empi.helpers import count, open_candidates, register, world
from yilianti.models.empi import DoNotMatch, MergeEvent
from yilianti.models.patient import Patient

# built on rules v4's weights and thresholds (v5 has its own: test_rules_v5.py)
pytestmark = pytest.mark.usefixtures("rules_v4")


def _pair(db):  # type: ignore[no-untyped-def]
    w = world(db)
    a = register(db, w.d_town, "王小明", mrn="QK100")
    c = register(db, w.d_county, "王晓明", phone="13822223333", mrn="XH200")
    b.user(db, w.county, "institution_admin", username="xh_admin")
    return w, a.patient, c.patient


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_steward_confirms_on_the_page_then_unmerges(db, client):  # type: ignore[no-untyped-def]
    w, a, c = _pair(db)
    [cand] = open_candidates(db)
    b.login(client, "xh_admin")
    listing = client.get("/empi/review")
    assert listing.status_code == 200 and f'id="candidate-{cand.id}"' in listing.text and "王晓明" in listing.text
    page = client.get(f"/empi/review/{cand.id}")
    assert page.status_code == 200
    assert re.search(r'id="field-birth_date" class="agree"', page.text)
    assert re.search(r'id="field-phone" class="disagree"', page.text)
    shown = re.sub(r"</?mark>", "", page.text)  # the differing characters are marked
    assert "139****5678" in shown and "13912345678" not in shown  # phones masked
    r = client.post(f"/empi/review/{cand.id}/confirm", data={"csrf_token": _csrf(page.text), "note": "家长确认"},
                    follow_redirects=False)
    assert r.status_code == 303
    db.expire_all()
    assert db.get(Patient, c.id).active is False
    event = db.scalar(select(MergeEvent).where(MergeEvent.merged_id == c.id))
    merges = client.get("/empi/merges")
    assert f'id="unmerge-{event.id}"' in merges.text
    r = client.post(f"/empi/merges/{event.id}/unmerge", data={"csrf_token": _csrf(merges.text), "reason": "登记错误"},
                    follow_redirects=False)
    assert r.status_code == 303
    db.expire_all()
    assert db.get(Patient, c.id).active is True
    assert "已撤销" in client.get("/empi/merges").text


def test_reject_through_the_api_and_role_checks(db, client):  # type: ignore[no-untyped-def]
    w, a, c = _pair(db)
    [cand] = open_candidates(db)
    b.user(db, w.county, "doctor", username="xh_doc")
    b.login(client, "xh_doc")
    assert client.get("/api/v1/empi/candidates").status_code == 403
    assert client.get("/empi/review").status_code == 403
    client.cookies.clear()
    b.login(client, "xh_admin")
    body = client.get("/api/v1/empi/candidates").json()
    assert [x["id"] for x in body] == [cand.id]
    assert body[0]["record"]["phone"] == "138****3333" and body[0]["explanation"]["name"] == 6.0
    token = _csrf(client.get("/account").text)
    r = client.post(f"/api/v1/empi/candidates/{cand.id}/reject", json={"note": "双胞胎"},
                    headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected" and count(db, DoNotMatch) == 1
    again = client.post(f"/api/v1/empi/candidates/{cand.id}/confirm", json={}, headers={"X-CSRF-Token": token})
    assert again.status_code == 409 and again.json()["error"]
    assert client.get("/api/v1/empi/candidates/999999").status_code == 404


def test_registration_api_says_how_the_index_placed_the_patient(db, client):  # type: ignore[no-untyped-def]
    w = world(db)
    register(db, w.d_town, "王小明")
    b.user(db, w.county, "doctor", username="xh_api_doc")
    b.login(client, "xh_api_doc")
    token = _csrf(client.get("/account").text)
    body = {"name": "王小明", "sex": "男", "birth_date": "2016-05-20", "phone": "13912345678",
            "address": "河北省廊坊市香河县渠口镇东街12号"}
    r = client.post("/api/v1/patients", json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 201, r.text
    assert r.json()["existing"] is True and r.json()["link"] == "score"
    r = client.post("/api/v1/patients", json={**body, "name": "王晓明", "phone": "13822223333"},
                    headers={"X-CSRF-Token": token})
    assert r.json()["link"] == "new" and r.json()["review_candidates"] == 1
