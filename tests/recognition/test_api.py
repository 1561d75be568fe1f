"""The lookup API as a member HIS calls it (API token), decisions, bad input, pages."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests import builders as b
from tests.recognition.helpers import days_ago, thyroid, world
from yilianti.auth import service as auth_service
from yilianti.models.audit import AuditEvent
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.patient import Patient
from yilianti.models.recognition import RecognitionDecision, RecognitionItem


def _token(db, w, user, inst):  # type: ignore[no-untyped-def]
    admin = b.subject_for(db, b.user(db, None, "system_admin"))
    _row, token = auth_service.issue_api_token(db, admin, user.id, inst.id, "HIS")
    return {"Authorization": f"Bearer {token}"}


def test_member_his_lookup_with_token(db, client):  # type: ignore[no-untyped-def]
    w = world(db)
    oid = thyroid(db, w, days_ago(12))
    h = _token(db, w, w.bj_doctor, w.beijing)
    r = client.get(f"/api/v1/recognition/lookup?patient_id={w.patient_id}&item_code=TFT", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["consent_missing"] is False and body["scopes"] == ["京津冀"]
    [res] = body["results"]
    assert res["order_id"] == oid and res["days_left"] == 18 and res["hr_mark"] == "HR 京津冀"
    assert res["source_institution"] == w.xianghe.name and len(res["observations"]) == 3
    ev = db.scalar(select(AuditEvent).where(AuditEvent.resource_type == "recognition_lookup")
                   .order_by(AuditEvent.id.desc()).limit(1))
    assert ev is not None and ev.channel == "api" and ev.patient_id == w.patient_id


def test_lookup_api_without_consent_says_so_in_english(db, client):  # type: ignore[no-untyped-def]
    w = world(db, consent=None)
    thyroid(db, w, days_ago(2))
    h = _token(db, w, w.bj_doctor, w.beijing) | {"Accept-Language": "en"}
    body = client.get(f"/api/v1/recognition/lookup?patient_id={w.patient_id}&item_code=TFT", headers=h).json()
    assert body["results"] == [] and body["consent_missing"] is True
    assert "consent" in body["message"].lower()


def test_lookup_api_errors(db, client):  # type: ignore[no-untyped-def]
    w = world(db)
    h = _token(db, w, w.bj_doctor, w.beijing)
    r = client.get(f"/api/v1/recognition/lookup?patient_id={w.patient_id}&item_code=XYZ", headers=h)
    assert r.status_code == 422 and r.json()["error"] == "unknown_item_code" and "XYZ" in r.json()["message"]
    r = client.get(f"/api/v1/recognition/lookup?patient_id={w.patient_id}&item_code=XYZ",
                   headers=h | {"Accept-Language": "en"})
    assert "Unknown" in r.json()["message"]
    r = client.get("/api/v1/recognition/lookup?patient_id=999999&item_code=TFT", headers=h)
    assert r.status_code == 404


def test_retest_decision_api_requires_reason_then_records(db, client):  # type: ignore[no-untyped-def]
    w = world(db)
    thyroid(db, w, days_ago(2))
    h = _token(db, w, w.bj_doctor, w.beijing)
    bad = client.post("/api/v1/recognition/decisions", headers=h, json={
        "patient_id": w.patient_id, "item_code": "TFT", "decision": "retest", "reason_code": "other"})
    assert bad.status_code == 422
    assert set(bad.json()["fields"]) == {"reason_text", "patient_informed"}
    assert db.scalar(select(RecognitionDecision.id)) is None
    ok = client.post("/api/v1/recognition/decisions", headers=h, json={
        "patient_id": w.patient_id, "item_code": "TFT", "decision": "retest", "reason_code": "other",
        "reason_text": "患者服药后复查", "patient_informed": True})
    assert ok.status_code == 201, ok.text
    assert ok.json()["reason"] == "其他" and ok.json()["satisfied_by_recognition"] is False


def test_external_result_api_rejects_numeric_without_units(db, client):  # type: ignore[no-untyped-def]
    w = world(db)
    h = _token(db, w, w.xh_doctor, w.xianghe)
    n = db.scalar(select(DiagnosticOrder.id).order_by(DiagnosticOrder.id.desc()).limit(1))
    r = client.post("/api/v1/recognition/results", headers=h | {"Accept-Language": "en"}, json={
        "patient_id": w.patient_id, "item_code": "TFT", "external_id": "L9", "reported_at": days_ago(1).isoformat(),
        "observations": [{"code": "3016-3", "name": "TSH", "value": "2.1"}]})
    assert r.status_code == 422 and "units" in r.json()["fields"]["observations.0.units"].lower()
    assert db.scalar(select(DiagnosticOrder.id).order_by(DiagnosticOrder.id.desc()).limit(1)) == n
    ok = client.post("/api/v1/recognition/results", headers=h, json={
        "patient_id": w.patient_id, "item_code": "TFT", "external_id": "L9", "reported_at": days_ago(1).isoformat(),
        "observations": [{"code": "3016-3", "name": "TSH", "value": "2.1", "units": "mIU/L"}]})
    assert ok.status_code == 201 and ok.json()["hr_mark"] == "HR 京津冀"
    again = client.post("/api/v1/recognition/results", headers=h, json={
        "patient_id": w.patient_id, "item_code": "TFT", "external_id": "L9", "reported_at": days_ago(1).isoformat(),
        "observations": [{"code": "3016-3", "name": "TSH", "value": "2.1", "units": "mIU/L"}]})
    assert again.status_code == 409


def test_rules_api_rejects_non_positive_valid_days(db, client):  # type: ignore[no-untyped-def]
    w = world(db)
    admin = b.user(db, None, "system_admin")
    h = _token(db, w, w.bj_doctor, w.beijing)
    assert client.put("/api/v1/recognition/rules", headers=h,
                      json={"item_code": "TFT", "scope_code": "JJJ", "valid_days": 10}).status_code == 403
    csrf = b.login(client, admin.username)
    r = client.put("/api/v1/recognition/rules", headers={"X-CSRF-Token": csrf},
                   json={"item_code": "TFT", "scope_code": "JJJ", "valid_days": -3})
    assert r.status_code == 422 and "valid_days" in r.json()["fields"]
    r = client.put("/api/v1/recognition/rules", headers={"X-CSRF-Token": csrf},
                   json={"item_code": "NOPE", "scope_code": "JJJ", "valid_days": 3})
    assert r.status_code == 422 and r.json()["error"] == "unknown_item_code"


def test_catalogue_upload_page_all_or_nothing(db, client):  # type: ignore[no-untyped-def]
    world(db)
    admin = b.user(db, None, "system_admin")
    csrf = b.login(client, admin.username)
    bad = "item_code,item_name,kind,scope_code,valid_days\nNEW1,新项目,lab,JJJ,30\nNEW2,新项目2,lab,JJJ,0\n"
    r = client.post("/recognition/catalogue", data={"csrf_token": csrf},
                    files={"file": ("c.csv", bad.encode(), "text/csv")})
    assert r.status_code == 422 and "第3行" in r.text
    assert db.scalar(select(RecognitionItem.id).where(RecognitionItem.code == "NEW1")) is None
    good = "item_code,item_name,kind,scope_code,valid_days\nNEW1,新项目,lab,JJJ,30\n"
    r = client.post("/recognition/catalogue", data={"csrf_token": csrf},
                    files={"file": ("c.csv", good.encode(), "text/csv")}, follow_redirects=False)
    assert r.status_code == 303
    assert "新项目" in client.get("/recognition/catalogue").text


def test_pages_lookup_decide_and_report(db, client):  # type: ignore[no-untyped-def]
    w = world(db)
    oid = thyroid(db, w, days_ago(12))
    csrf = b.login(client, w.bj_doctor.username)
    page = client.get(f"/recognition?patient_id={w.patient_id}&item_code=TFT")
    assert page.status_code == 200 and f'id="result-{oid}"' in page.text and "HR 京津冀" in page.text
    r = client.post("/recognition/decide", data={"csrf_token": csrf, "patient_id": w.patient_id, "item_code": "TFT",
                                                 "decision": "retest", "reason_code": ""})
    assert r.status_code == 422 and 'id="err-patient_informed"' in r.text
    r = client.post("/recognition/decide", data={"csrf_token": csrf, "patient_id": w.patient_id, "item_code": "TFT",
                                                 "decision": "reuse", "reused_order_id": oid}, follow_redirects=False)
    assert r.status_code == 303
    detail = client.get(r.headers["location"])
    assert "已互认" in detail.text and "120.00" in detail.text
    # item, patient, the reused result's institution and the scope: all on the page (one query behind it)
    patient = db.get(Patient, w.patient_id)
    assert patient is not None and f"{patient.name} ·" in detail.text
    assert "(TFT)" in detail.text and f"{w.xianghe.name} ·" in detail.text and "HR 京津冀" in detail.text
    report = client.get("/recognition/report")
    assert report.status_code == 200
    row = re.search(r'<tr id="month-[^"]+">(.*?)</tr>', report.text.split('id="report-months"')[1], re.S)
    assert row is not None
    last = re.findall(r'<tr id="month-[^"]+">.*?</tr>', report.text, re.S)[-1]
    assert 'class="saved">120.00' in last and 'class="avoided">1' in last
