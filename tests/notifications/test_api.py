"""Notifications and the workbench as JSON: what a member HIS reads with an API token."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import builders as b
from tests.live import api_token
from yilianti.models.outbox import Notification


def _setup(db: Session) -> tuple[dict[str, str], dict[str, str], list[Notification]]:
    inst = b.institution(db, "社区中心")
    mine, other = b.user(db, inst, "doctor"), b.user(db, inst, "doctor")
    rows = [Notification(user_id=mine.id, kind="referral", title=f"通知 {i}", body="正文", link="/referrals",
                         urgent=i == 0) for i in range(25)]
    rows.append(Notification(user_id=other.id, kind="info", title="别人的"))
    rows.append(Notification(user_id=None, institution_id=inst.id, kind="referral", title="referral.notify.received",
                             body="referral.notify.reason", params={"id": 7, "reason": "床位已满"}))
    db.add_all(rows)
    db.flush()
    headers = {"Authorization": f"Bearer {api_token(db, b.subject_for(db, mine))}"}
    others = {"Authorization": f"Bearer {api_token(db, b.subject_for(db, other))}"}
    db.flush()
    return headers, others, rows


def test_list_pages_with_the_unread_count_and_marks_read(db: Session, client: TestClient) -> None:
    headers, others, rows = _setup(db)
    r = client.get("/api/v1/notifications?per_page=10", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unread"] == 26 and body["total"] == 26 and body["pages"] == 3 and len(body["items"]) == 10
    assert "别人的" not in {i["title"] for i in body["items"]}
    page3 = client.get("/api/v1/notifications?per_page=10&page=3", headers=headers).json()
    assert len(page3["items"]) == 6
    first = rows[3].id
    r = client.post(f"/api/v1/notifications/{first}/read", headers=headers)
    assert r.status_code == 200 and r.json()["read_at"] is not None
    assert client.get("/api/v1/notifications", headers=headers).json()["unread"] == 25
    assert client.get("/api/v1/notifications?unread_only=true&per_page=100", headers=headers).json()["total"] == 25
    # another reader's notification is not there for this one: 404 with the contract's body
    r = client.post(f"/api/v1/notifications/{rows[-2].id}/read", headers=headers)
    assert r.status_code == 404 and set(r.json()) >= {"error", "message"}
    r = client.post("/api/v1/notifications/read-all", headers=headers)
    assert r.status_code == 200 and r.json() == {"marked": 25, "unread": 0}
    r = client.get("/api/v1/notifications", headers=others)
    assert r.status_code == 200, r.text
    assert r.json()["unread"] == 1  # theirs untouched (the institution-wide one is read for all)


def test_coded_notifications_follow_accept_language_and_bad_input_is_422(db: Session, client: TestClient) -> None:
    headers, _others, _rows = _setup(db)
    zh = client.get("/api/v1/notifications?per_page=100", headers=headers).json()["items"]
    en = client.get("/api/v1/notifications?per_page=100", headers={**headers, "Accept-Language": "en"}).json()["items"]
    coded_zh = next(i for i in zh if i["kind"] == "referral" and "7" in i["title"])
    coded_en = next(i for i in en if i["id"] == coded_zh["id"])
    assert "referral." not in coded_zh["title"] and coded_en["title"] != coded_zh["title"]
    assert "床位已满" in (coded_zh["body"] or "")
    r = client.get("/api/v1/notifications?per_page=1000", headers=headers)
    assert r.status_code == 422 and r.json()["error"] and "per_page" in r.json()["fields"]
    assert client.get("/api/v1/notifications").status_code == 401


def test_workbench_json(db: Session, client: TestClient) -> None:
    headers, _others, _rows = _setup(db)
    r = client.get("/api/v1/workbench", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unread_notifications"] == 26 and body["poll_seconds"] == 30 and body["critical_values"] == []
    keys = {i["key"]: i for i in body["items"]}
    assert keys["referral.to_triage"]["url"] == "/referrals?side=receiver&bucket=to_triage"
    assert keys["referral.to_triage"]["label"] == "待接收/待决定的转诊"
    en = client.get("/api/v1/workbench", headers={**headers, "Accept-Language": "en"}).json()
    assert {i["key"]: i for i in en["items"]}["referral.to_triage"]["label"] == "Referrals to receive / decide"
    schema = client.get("/api/openapi.json").json()
    assert {"/api/v1/workbench", "/api/v1/notifications", "/api/v1/notifications/{notification_id}/read",
            "/api/v1/notifications/read-all"} <= set(schema["paths"])


def test_the_page_marks_every_notification_read_at_once(db: Session, client: TestClient) -> None:
    inst = b.institution(db, "社区中心")
    me, other = b.user(db, inst, "doctor"), b.user(db, inst, "doctor")
    db.add_all([Notification(user_id=me.id, kind="referral", title=f"通知 {i}", body="正文") for i in range(3)]
               + [Notification(user_id=other.id, kind="info", title="别人的")])
    db.flush()
    csrf = b.login(client, me.username)
    page = client.get("/notifications").text
    assert 'id="read-all"' in page and "未读 3 条" in page and page.count('type="submit">标为已读</button>') == 3
    r = client.post("/notifications/read-all", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/notifications?done=read_all"
    page = client.get(r.headers["location"]).text
    assert "已将全部通知标为已读" in page and 'id="read-all"' not in page and 'type="submit">标为已读</button>' not in page
    assert 'id="unread-badge"' not in page or re.search(r'id="unread-badge"[^>]*>\s*0?\s*<', page)
    # another reader's notification stays unread
    assert db.scalar(select(Notification.read_at).where(Notification.user_id == other.id)) is None
