"""The referral JSON API: the loop, and each error code with nothing changed."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests import builders as b
from tests.referral.helpers import book, drive, history_count, setup
from yilianti.models.referral import Referral


def _body(w: Any, patient: Any, **kw: Any) -> dict[str, Any]:
    data = {"direction": "up", "patient_id": patient.id, "to_institution_id": w.lead.id,
            "reason": "反复发热咳嗽一周，抗感染治疗效果不佳", "priority": "urgent",
            "summary": {"diagnoses": [{"icd10": "J18.9", "text": "肺炎"}], "medications": ["阿莫西林"]}}
    data.update(kw)
    return data


def _move(client: TestClient, csrf: str, ref_id: int, to: str, expected: str, **kw: Any) -> Any:
    return client.post(f"/api/v1/referrals/{ref_id}/transition", headers={"X-CSRF-Token": csrf},
                       json={"to_status": to, "expected_status": expected, **kw})


def test_api_loop_and_follow_up_tasks(db: Session, client: TestClient) -> None:
    w, patient = setup(db)
    csrf = b.login(client, w.comm_doc.username)
    r = client.post("/api/v1/referrals", headers={"X-CSRF-Token": csrf}, json=_body(w, patient))
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["status"] == "submitted" and up["side"] == "sender" and "cancelled" in up["next_moves"]
    listed = client.get("/api/v1/referrals", params={"side": "sender", "bucket": "to_triage"}).json()
    assert [x["id"] for x in listed] == [up["id"]]

    client.cookies.clear()
    csrf = b.login(client, w.lead_doc.username)
    assert _move(client, csrf, up["id"], "received", "submitted").json()["status"] == "received"
    assert _move(client, csrf, up["id"], "accepted", "received").json()["status"] == "accepted"
    booking_id = book(db, w, patient)
    assert _move(client, csrf, up["id"], "scheduled", "accepted", booking_id=booking_id).json()["booking_id"] == booking_id
    early = _move(client, csrf, up["id"], "arrived", "scheduled")  # before the booked day: a reason is asked
    assert early.status_code == 422 and "reason" in early.json()["fields"], early.text
    assert _move(client, csrf, up["id"], "arrived", "scheduled", reason="家长提前带患儿到院").status_code == 200
    done = _move(client, csrf, up["id"], "outcome_returned", "arrived", reason="肺炎好转，建议下转康复").json()
    assert done["outcome_note"] == "肺炎好转，建议下转康复"
    assert [h["to_status"] for h in done["history"]] == ["draft", "submitted", "received", "accepted", "scheduled",
                                                        "arrived", "outcome_returned"]
    # the lead refers the patient back down with a follow-up plan
    r = client.post("/api/v1/referrals", headers={"X-CSRF-Token": csrf}, json=_body(
        w, patient, direction="down", to_institution_id=w.community.id, linked_referral_id=up["id"],
        reason="恢复期下转社区", follow_up_plan={"items": [{"due_in_days": 7, "text": "复查血常规"}]}))
    assert r.status_code == 201, r.text
    down = r.json()

    client.cookies.clear()
    csrf = b.login(client, w.comm_doc.username)
    _move(client, csrf, down["id"], "received", "submitted")
    _move(client, csrf, down["id"], "accepted", "received")
    tasks = client.get("/api/v1/follow-up-tasks").json()
    assert [t["text"] for t in tasks] == ["复查血常规"]
    r = client.post(f"/api/v1/follow-up-tasks/{tasks[0]['id']}/done", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["status"] == "done"
    assert client.get("/api/v1/follow-up-tasks").json() == []


def test_api_error_codes_change_nothing(db: Session, client: TestClient) -> None:
    w, patient = setup(db)
    cancelled = drive(db, w, patient, "cancelled")
    scheduled_not = drive(db, w, patient, "received")
    csrf = b.login(client, w.lead_doc.username)

    # accepting a cancelled referral: 409
    before = history_count(db, cancelled.id)
    r = _move(client, csrf, cancelled.id, "accepted", "cancelled")
    assert r.status_code == 409 and r.json()["error"] == "referral_state_conflict"
    assert history_count(db, cancelled.id) == before
    # arriving before scheduling: 409
    before = history_count(db, scheduled_not.id)
    r = _move(client, csrf, scheduled_not.id, "arrived", "received")
    assert r.status_code == 409 and r.json()["error"] == "referral_state_conflict"
    # a stale expected_status: 409
    r = _move(client, csrf, scheduled_not.id, "accepted", "submitted")
    assert r.status_code == 409 and r.json()["error"] == "referral_state_conflict"
    # reject without a code: 422 with the field
    r = _move(client, csrf, scheduled_not.id, "rejected", "received")
    assert r.status_code == 422 and "reject_code" in r.json()["fields"]
    # malformed body: 422
    r = client.post(f"/api/v1/referrals/{scheduled_not.id}/transition", headers={"X-CSRF-Token": csrf},
                    json={"to_status": "flying"})
    assert r.status_code == 422
    assert history_count(db, scheduled_not.id) == before
    db.refresh(scheduled_not)
    assert scheduled_not.status == "received"

    # the sender may not accept its own referral: 403
    client.cookies.clear()
    csrf = b.login(client, w.comm_doc.username)
    r = _move(client, csrf, scheduled_not.id, "accepted", "received")
    assert r.status_code == 403 and history_count(db, scheduled_not.id) == before

    # an institution on neither side: 404 for read and for moves
    client.cookies.clear()
    csrf = b.login(client, w.out_doc.username)
    assert client.get(f"/api/v1/referrals/{scheduled_not.id}").status_code == 404
    r = _move(client, csrf, scheduled_not.id, "accepted", "received")
    assert r.status_code == 404 and history_count(db, scheduled_not.id) == before
    # creating to an institution outside the alliance: 422 with the field, nothing created
    count = db.query(Referral).count()
    r = client.post("/api/v1/referrals", headers={"X-CSRF-Token": csrf},
                    json=_body(w, patient, to_institution_id=w.lead.id))
    assert r.status_code in (403, 404, 422)
    r = client.post("/api/v1/referrals", headers={"X-CSRF-Token": csrf}, json={"patient_id": "x"})
    assert r.status_code == 422
    assert db.query(Referral).count() == count


def test_api_create_validation(db: Session, client: TestClient) -> None:
    w, patient = setup(db)
    csrf = b.login(client, w.comm_doc.username)
    r = client.post("/api/v1/referrals", headers={"X-CSRF-Token": csrf},
                    json=_body(w, patient, to_institution_id=w.outsider.id))
    assert r.status_code == 422 and "to_institution_id" in r.json()["fields"]
    r = client.post("/api/v1/referrals", headers={"X-CSRF-Token": csrf},
                    json=_body(w, patient, summary={"diagnoses": [{"icd10": "肺炎", "text": "肺炎"}]}))
    assert r.status_code == 422 and any("icd10" in k for k in r.json()["fields"])
    assert db.query(Referral).count() == 0
