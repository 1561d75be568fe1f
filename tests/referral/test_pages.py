"""The up loop through the real pages: community doctor refers up, the lead works it, both see it."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests import builders as b
from tests.referral.helpers import book, history_count, setup
from yilianti.models.referral import Referral


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


def _expected(html: str) -> str:
    m = re.search(r'name="expected_status" value="([^"]+)"', html)
    assert m, "no action form"
    return m.group(1)


def _act(client: TestClient, ref_id: int, action: str, **data: str) -> str:
    page = client.get(f"/referrals/{ref_id}").text
    assert f'id="form-{action}"' in page or f'/referrals/{ref_id}/{action}"' in page, f"no {action} form"
    r = client.post(f"/referrals/{ref_id}/{action}", data={"csrf_token": _csrf(page),
                                                           "expected_status": _expected(page), **data},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client.get(r.headers["location"]).text


def test_up_loop_through_the_pages(db: Session, client: TestClient) -> None:
    w, patient = setup(db)
    csrf = b.login(client, w.comm_doc.username)
    assert 'href="/referrals"' in client.get("/").text
    form = client.get("/referrals/new").text
    assert w.lead.name in form and w.outsider.name not in form and 'id="pick-patient_id"' in form
    assert patient.name in client.get("/patients/pick", params={"pick_q": patient.name[:1]}).text

    # a field error re-renders the form with the values kept
    bad = client.post("/referrals/new", data={
        "csrf_token": csrf, "direction": "up", "patient_id": str(patient.id), "to_institution_id": str(w.lead.id),
        "reason": "反复发热咳嗽一周", "priority": "urgent", "diagnoses": "肺炎"})
    assert bad.status_code == 422 and 'id="err-diagnoses"' in bad.text and "反复发热咳嗽一周" in bad.text
    assert db.query(Referral).count() == 0

    r = client.post("/referrals/new", data={
        "csrf_token": csrf, "direction": "up", "patient_id": str(patient.id), "to_institution_id": str(w.lead.id),
        "reason": "反复发热咳嗽一周，抗感染治疗效果不佳", "priority": "emergency", "target_service": "门诊",
        "permanent": "1", "diagnoses": "J18.9 肺炎\nr50.9 发热", "key_results": "胸片：右下肺斑片影",
        "medications": "阿莫西林\n布洛芬", "allergies": "青霉素过敏"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    ref_id = int(r.headers["location"].split("/")[2].split("?")[0])
    detail = client.get(r.headers["location"]).text
    assert "已提交" in detail and "R50.9" in detail and 'id="form-cancel"' in detail
    assert 'id="form-receive"' not in detail  # the sender cannot receive its own referral
    sent = client.get("/referrals?side=sender&bucket=to_triage").text
    assert f'id="ref-{ref_id}"' in sent and 'class="tag warn">急危重' in sent

    # the specialist receives and accepts
    client.cookies.clear()
    b.login(client, w.lead_doc.username)
    inbox = client.get("/referrals?side=receiver&bucket=to_triage").text
    assert f'id="ref-{ref_id}"' in inbox and '<span class="tag" id="count-to_triage">1</span>' in inbox
    page = _act(client, ref_id, "receive")
    assert 'id="ref-status">已接收' in page and 'id="form-accept"' in page and 'id="form-reject"' in page
    stale = client.get(f"/referrals/{ref_id}").text  # a second tab, showing 已接收
    page = _act(client, ref_id, "accept", reason="同意，安排专家门诊")
    assert 'id="ref-status">已同意' in page

    # the stale tab tries to reject: 409 rendered on the page, nothing changed
    before = history_count(db, ref_id)
    r = client.post(f"/referrals/{ref_id}/reject", data={"csrf_token": _csrf(stale),
                                                         "expected_status": _expected(stale),
                                                         "reject_code": "no_bed"})
    assert r.status_code == 409 and 'id="action-error"' in r.text and "请刷新后重试" in r.text
    assert 'id="ref-status">已同意' in r.text
    assert history_count(db, ref_id) == before
    assert db.get(Referral, ref_id).status == "accepted"  # type: ignore[union-attr]

    booking_id = book(db, w, patient)
    page = _act(client, ref_id, "schedule", booking_id=str(booking_id))
    assert 'id="ref-status">已预约' in page and f"/bookings/{booking_id}" in page
    # the booked day is three days ahead: arrival asks why, beside the field, keeping what was typed
    assert 'id="arrive-reason"' in page and w.day.isoformat() in page
    r = client.post(f"/referrals/{ref_id}/arrive", data={"csrf_token": _csrf(page), "expected_status": "scheduled",
                                                         "reason": "早"})
    assert r.status_code == 422 and 'id="err-arrive-reason"' in r.text and 'value="早"' in r.text
    assert db.get(Referral, ref_id).status == "scheduled"  # type: ignore[union-attr]
    page = _act(client, ref_id, "arrive", reason="患儿夜间喘憋加重，家长提前带来")
    assert 'id="ref-status">已到诊' in page and "患儿夜间喘憋加重" in page
    r = client.post(f"/referrals/{ref_id}/outcome", data={"csrf_token": _csrf(page), "expected_status": "arrived",
                                                          "reason": ""})
    assert r.status_code == 422 and 'id="err-outcome-outcome"' in r.text
    page = _act(client, ref_id, "outcome", reason="社区获得性肺炎，已调整抗生素，建议下转社区康复")
    assert 'id="ref-status">已回传结果' in page and "建议下转社区康复" in page

    # the community doctor sees the outcome and closes the loop
    client.cookies.clear()
    b.login(client, w.comm_doc.username)
    page = _act(client, ref_id, "close")
    assert 'id="ref-status">已结案' in page
    timeline = page.split('id="timeline"')[1]
    for label in ("草稿", "已提交", "已接收", "已同意", "已预约", "已到诊", "已回传结果", "已结案"):
        assert label in timeline
    assert f'id="ref-{ref_id}"' in client.get("/referrals?side=sender&bucket=closed").text

    assert "分钟" in timeline  # each step shows its duration

    client.cookies.set("lang", "en")
    english = client.get(f"/referrals/{ref_id}").text
    assert "Timeline" in english and "Closed" in english and "min" in english
    client.cookies.set("lang", "zh")

    printed = client.get(f"/referrals/{ref_id}/print").text
    assert "<b>J18.9</b> 肺炎" in printed and "<b>R50.9</b> 发热" in printed
    assert "青霉素过敏" in printed and "急危重" in printed and "签名" in printed


def test_outsider_gets_404_and_wrong_side_gets_403(db: Session, client: TestClient) -> None:
    w, patient = setup(db)
    from tests.referral.helpers import submitted_up

    ref = submitted_up(db, w, patient)
    b.login(client, w.out_doc.username)
    assert client.get(f"/referrals/{ref.id}").status_code == 404
    assert client.get(f"/referrals/{ref.id}/print").status_code == 404
    client.cookies.clear()
    csrf = b.login(client, w.comm_doc.username)
    r = client.post(f"/referrals/{ref.id}/receive", data={"csrf_token": csrf, "expected_status": "submitted"})
    assert r.status_code == 403 and 'id="action-error"' in r.text
    assert db.get(Referral, ref.id).status == "submitted"  # type: ignore[union-attr]
    # a patient this institution may not see cannot be referred: a field error, nothing created
    stranger = b.patient(db, w.out_doc, name="王外院")
    r = client.post("/referrals/new", data={"csrf_token": csrf, "direction": "up", "patient_id": str(stranger.id),
                                            "to_institution_id": str(w.lead.id), "reason": "需要专科会诊"})
    assert r.status_code == 422 and 'id="err-patient_id"' in r.text
    assert db.query(Referral).count() == 1


def test_down_referral_with_follow_up_plan_and_done_button(db: Session, client: TestClient) -> None:
    from tests.referral.helpers import drive

    w, patient = setup(db)
    up = drive(db, w, patient, "outcome_returned")
    csrf = b.login(client, w.lead_doc.username)
    up_page = client.get(f"/referrals/{up.id}").text
    assert 'id="refer-down"' in up_page
    form = client.get(f"/referrals/new?direction=down&linked_referral_id={up.id}").text
    assert f'<option value="{w.community.id}" selected' in form and f'<option value="{up.id}" selected' in form
    data = {"csrf_token": csrf, "direction": "down", "patient_id": str(patient.id),
            "to_institution_id": str(w.community.id), "linked_referral_id": str(up.id),
            "reason": "肺炎恢复期，下转社区继续康复", "diagnoses": "J18.9 肺炎（恢复期）",
            "follow_up_plan": "7 复查血常规\n三十 复查胸片"}
    bad = client.post("/referrals/new", data=data)
    assert bad.status_code == 422 and 'id="err-follow_up_plan"' in bad.text
    data["follow_up_plan"] = "7 复查血常规\n30 复查胸片"
    r = client.post("/referrals/new", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    down_id = int(r.headers["location"].split("/")[2].split("?")[0])

    client.cookies.clear()
    b.login(client, w.comm_doc.username)
    _act(client, down_id, "receive")
    page = _act(client, down_id, "accept")
    assert "复查血常规" in page.split('id="tasks"')[1] and "第 7 天" in page
    listing = client.get("/referrals?side=receiver&bucket=all").text
    assert "复查胸片" in listing.split('id="tasks"')[1]
    task_id = int(re.findall(r'action="/follow-up-tasks/(\d+)/done"', page)[0])
    r = client.post(f"/follow-up-tasks/{task_id}/done", data={"csrf_token": _csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert "随访任务已完成" in page and f'action="/follow-up-tasks/{task_id}/done"' not in page


def test_new_referral_form_does_not_reveal_a_stranger_by_id(db, client):  # type: ignore[no-untyped-def]
    mine = b.institution(db, "解放道办事处社区卫生服务中心", kind="community_center", level=1, province="河北")
    other = b.institution(db, "无关医院")
    b.user(db, mine, "doctor", username="jfd-doc")
    stranger = b.patient(db, b.subject_for(db, b.user(db, other, "doctor")), name="外院病人",
                         resident_id=b.resident_id(seq=88))
    b.login(client, "jfd-doc")
    page = client.get(f"/referrals/new?patient_id={stranger.id}")
    assert page.status_code == 200 and "外院病人" not in page.text
