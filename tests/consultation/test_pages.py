"""The consultation through the real pages and the JSON API: request, assign, sign, convert, report."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import builders as b
from tests.consultation.helpers import answered, ecg_order, world
from yilianti.kit import clock
from yilianti.models.consultation import Consultation
from yilianti.models.referral import Referral


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


def _post(client: TestClient, case_id: int, action: str, **data: str) -> str:
    page = client.get(f"/consultations/{case_id}").text
    assert f'id="form-{action}"' in page, f"no {action} form"
    m = re.search(r'name="expected_status" value="([^"]+)"', page)
    extra = {"expected_status": m.group(1)} if m else {}
    r = client.post(f"/consultations/{case_id}/{action}", data={"csrf_token": _csrf(page), **extra, **data},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client.get(r.headers["location"]).text


def test_request_assign_answer_convert_through_pages(db: Session, client: TestClient) -> None:
    w = world(db)
    ecg = ecg_order(db, w.community, w.patient)
    csrf = b.login(client, w.comm_doc.username)
    assert 'href="/consultations"' in client.get("/").text
    form = client.get(f"/consultations/new?patient_id={w.patient.id}&consulted_institution_id={w.lead.id}").text
    assert w.expert.name in form and w.junior.name not in form and ecg.accession_number in form
    base = {"csrf_token": csrf, "patient_id": str(w.patient.id), "consulted_institution_id": str(w.lead.id),
            "kind": "econsult", "urgency": "urgent", "department_id": str(w.cardiology.id),
            "question": "患儿心悸，心电图示室早，是否需要转诊？", "order_ids": str(ecg.id)}
    bad = client.post("/consultations/new", data=base)
    assert bad.status_code == 422 and 'id="err-consent_confirmed"' in bad.text and "知情同意" in bad.text
    assert db.scalar(select(Consultation.id)) is None
    r = client.post("/consultations/new", data={**base, "consent_confirmed": "1"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    case_id = int(r.headers["location"].split("/")[2].split("?")[0])
    page = client.get(r.headers["location"]).text
    assert "会诊申请已提交" in page and ecg.accession_number in page and "待分派" in page

    client.post("/logout", data={"csrf_token": _csrf(page)})
    b.login(client, w.coordinator.username)
    assert f'id="case-{case_id}"' in client.get("/consultations?side=consultant&bucket=to_assign").text
    page = _post(client, case_id, "assign", practitioner_ids=str(w.expert.id))
    assert "已分派专家" in page and w.expert.name in page

    client.post("/logout", data={"csrf_token": _csrf(page)})
    b.login(client, w.expert_doc.username)
    assert f'id="case-{case_id}"' in client.get("/consultations?side=consultant&bucket=mine").text
    page = client.get(f"/consultations/{case_id}").text
    empty = client.post(f"/consultations/{case_id}/opinion",
                        data={"csrf_token": _csrf(page), "outcome": "advice", "text": ""})
    assert empty.status_code == 422 and 'id="err-opinion-text"' in empty.text
    page = _post(client, case_id, "opinion", outcome="recommend_referral", text="频发室早伴心功能下降，建议转诊")
    assert "会诊意见已签署" in page and "建议转诊" in page and "已答复" in page
    # the consultant opens the attached ECG in the viewer through the temporary grant
    assert f'href="/diagnostics/orders/{ecg.id}/ecg"' in page
    assert client.get(f"/diagnostics/orders/{ecg.id}/ecg").status_code == 200

    client.post("/logout", data={"csrf_token": _csrf(page)})
    b.login(client, w.comm_doc.username)
    page = client.get(f"/consultations/{case_id}").text
    assert 'id="form-convert"' in page and "频发室早伴心功能下降" in page  # prefilled
    m = re.search(r'name="expected_status" value="([^"]+)"', page)
    assert m
    r = client.post(f"/consultations/{case_id}/convert", data={
        "csrf_token": _csrf(page), "expected_status": m.group(1), "reason": "", "target_service": "门诊"},
        follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/referrals/")
    ref = db.scalar(select(Referral).where(Referral.patient_id == w.patient.id))
    assert ref is not None and "频发室早伴心功能下降" in ref.reason
    assert "已转为转诊" in client.get(f"/consultations/{case_id}").text


def test_api_refuses_bad_input_with_clear_messages(db: Session, client: TestClient) -> None:
    w = world(db)
    theirs = ecg_order(db, w.community, w.other_patient)
    b.login(client, w.comm_doc.username)
    token_headers = {"X-CSRF-Token": _csrf(client.get("/account").text)}
    body = {"patient_id": w.patient.id, "consulted_institution_id": w.lead.id, "department_id": w.cardiology.id,
            "question": "是否需要转诊？", "consent_confirmed": True}
    r = client.post("/api/v1/consultations", json={**body, "consent_confirmed": False}, headers=token_headers)
    assert r.status_code == 422 and r.json()["error"] == "consent_required"
    r = client.post("/api/v1/consultations", json={**body, "expert_practitioner_ids": [w.junior.id]},
                    headers=token_headers)
    assert r.status_code == 422 and r.json()["error"] == "expert_not_qualified"
    assert "孙小年" in r.json()["message"] and "未满3年" in r.json()["message"]
    r = client.post("/api/v1/consultations", json={**body, "order_ids": [theirs.id]}, headers=token_headers)
    assert r.status_code == 422 and r.json()["error"] == "order_other_patient"
    assert theirs.accession_number in r.json()["message"]
    r = client.post("/api/v1/consultations", json=body, headers={**token_headers, "Accept-Language": "en"})
    assert r.status_code == 201 and r.json()["status"] == "requested"
    r2 = client.post("/api/v1/consultations", json={**body, "consent_confirmed": False},
                     headers={**token_headers, "Accept-Language": "en"})
    assert "consent" in r2.json()["message"].lower()


def test_report_counts_answered_avoided_and_converted(db: Session, client: TestClient) -> None:
    from yilianti.consultation import flows, repository, service
    from yilianti.consultation.schemas import CloseOutIn

    w = world(db)
    # 09:00 in Shanghai today: the cases made up to five hours later stay within today's report (from the
    # real time, after 19:00 in Shanghai they fell on tomorrow and the month's figures missed them)
    now = datetime.combine(clock.today_local(), time(9), clock.SHANGHAI).astimezone(UTC)
    with clock.frozen(now):
        first = answered(db, w)
    with clock.frozen(now + timedelta(hours=1)):
        service.close_out(db, w.comm_doc, first.id, CloseOutIn(rating=5, action_taken="社区随访", avoided_referral=True))
        second = answered(db, w, outcome="recommend_referral")
        flows.convert_to_referral(db, w.comm_doc, second.id)
        late = service.request(db, w.comm_doc, __import__("tests.consultation.helpers", fromlist=["x"]).request_data(
            w, expert_practitioner_ids=[w.expert.id], urgency="emergency"))
    from yilianti.consultation.schemas import OpinionIn

    with clock.frozen(now + timedelta(hours=5)):  # emergency window is 2 h: answered late
        service.sign_opinion(db, w.expert_doc, late.id, OpinionIn(outcome="advice", text="迟到的意见"))
    today = clock.today_local()
    [month] = repository.figures(db, today.replace(day=1), today, by="month", institution_ids=[w.community.id])
    assert (month.requested, month.answered, month.within_deadline, month.avoided, month.converted) == (3, 3, 2, 1, 1)
    assert month.within_deadline_share == round(2 / 3, 3)
    [expert] = repository.figures(db, today.replace(day=1), today, by="expert", institution_ids=[w.lead.id])
    assert expert.label == w.expert.name and expert.requested == 3
    # other institutions' cases do not leak into a member's report
    assert repository.figures(db, today.replace(day=1), today, by="month", institution_ids=[w.outsider.id]) == []

    b.login(client, w.comm_doc.username)
    data = client.get("/api/v1/consultations/report?by=month").json()
    assert data["totals"]["avoided"] == 1 and data["totals"]["converted"] == 1 and data["totals"]["requested"] == 3
    page = client.get("/consultations/report").text
    assert 'id="report-chart"' in page and "/static/vendor/echarts/echarts.min.js" in page


def test_uploaded_file_reaches_the_expert_and_the_referral(db: Session, client: TestClient) -> None:
    from yilianti.attachments import repository as attachments_repo
    from yilianti.consultation import flows

    w = world(db)
    c = answered(db, w, outcome="recommend_referral")
    b.login(client, w.comm_doc.username)
    page = client.get(f"/consultations/{c.id}").text
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    r = client.post(f"/consultations/{c.id}/upload", data={"csrf_token": _csrf(page)},
                    files={"file": ("心电图报告.pdf", pdf, "application/pdf")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    bad = client.post(f"/consultations/{c.id}/upload", data={"csrf_token": _csrf(page)},
                      files={"file": ("x.exe", b"MZ\x90\x00", "application/octet-stream")})
    assert bad.status_code == 415 and 'id="err-upload-file"' in bad.text
    [att] = attachments_repo.attachments_of(db, "consultation", c.id)
    assert att.kind == "pdf"
    client.post("/logout", data={"csrf_token": _csrf(page)})
    b.login(client, w.expert_doc.username)
    got = client.get(f"/consultations/{c.id}/attachments/{att.id}")
    assert got.status_code == 200 and got.content == pdf
    _, ref = flows.convert_to_referral(db, w.comm_doc, c.id)
    [copied] = attachments_repo.attachments_of(db, "referral", ref.id)
    assert copied.sha256 == att.sha256 and "心电图报告.pdf" in (ref.summary["key_results"] or "")
