"""Attachments and routing help through the real pages and the JSON API."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import builders as b
from tests.attachments.helpers import EXE, PDF, PNG
from tests.referral.helpers import history_count, setup, submitted_up
from yilianti.config import get_settings
from yilianti.models.attachment import Attachment
from yilianti.models.audit import AuditEvent
from yilianti.models.scheduling import Booking, Slot
from yilianti.referral import service


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_attachments_on_the_referral_page(db: Session, client: TestClient) -> None:
    w, patient = setup(db)
    ref = submitted_up(db, w, patient)
    b.login(client, w.comm_doc.username)
    page = client.get(f"/referrals/{ref.id}").text
    assert 'id="attach-form"' in page and 'id="no-attachments"' in page
    csrf = _csrf(page)
    r = client.post(f"/referrals/{ref.id}/attachments", data={"csrf_token": csrf},
                    files={"file": ("胸片.png", PNG, "application/octet-stream")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"]).text
    assert "胸片.png" in page and "附件已上传" in page
    # a program renamed .pdf is refused with a clear message and nothing is stored
    bad = client.post(f"/referrals/{ref.id}/attachments", data={"csrf_token": csrf},
                      files={"file": ("化验单.pdf", EXE, "application/pdf")})
    assert bad.status_code == 415 and 'id="attach-error"' in bad.text and "PDF、JPEG、PNG 或 DICOM" in bad.text
    empty = client.post(f"/referrals/{ref.id}/attachments", data={"csrf_token": csrf},
                        files={"file": ("空.pdf", b"", "application/pdf")})
    assert empty.status_code == 422
    assert db.scalar(select(func.count()).select_from(Attachment)) == 1

    # the receiving site can read it to triage (the referral's temporary grant), and the read is audited
    att = db.scalars(select(Attachment)).one()
    client.cookies.clear()
    b.login(client, w.lead_doc.username)
    got = client.get(f"/referrals/{ref.id}/attachments/{att.id}")
    assert got.status_code == 200 and got.content == PNG and got.headers["content-type"] == "image/png"
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "download", AuditEvent.resource_type == "attachment",
        AuditEvent.resource_id == str(att.id), AuditEvent.acting_institution_id == w.lead.id)) == 1
    # an institution on neither side: 404, for the referral and for the file
    client.cookies.clear()
    b.login(client, w.out_doc.username)
    assert client.get(f"/referrals/{ref.id}/attachments/{att.id}").status_code == 404
    assert client.get(f"/api/v1/referrals/{ref.id}/attachments/{att.id}").status_code == 404


def test_attachments_api_limits_and_access(db: Session, client: TestClient, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    w, patient = setup(db)
    ref = submitted_up(db, w, patient)
    b.login(client, w.comm_doc.username)
    token = _csrf(client.get("/account").text)
    h = {"x-csrf-token": token}
    r = client.post(f"/api/v1/referrals/{ref.id}/attachments", headers=h,
                    files={"file": ("报告.pdf", PDF, "image/png")})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "pdf" and body["content_type"] == "application/pdf" and len(body["sha256"]) == 64
    monkeypatch.setattr(get_settings(), "attachment_max_bytes", 10)
    big = client.post(f"/api/v1/referrals/{ref.id}/attachments", headers=h,
                      files={"file": ("大.pdf", PDF, "application/pdf")})
    assert big.status_code == 413 and big.json()["error"] == "attachment_too_large"
    assert [a["filename"] for a in client.get(f"/api/v1/referrals/{ref.id}/attachments").json()] == ["报告.pdf"]
    # after the receiver rejects, its triage access ends: the file is 404 for it
    service.receive(db, w.lead_doc, ref.id)
    service.reject(db, w.lead_doc, ref.id, "no_bed")
    client.cookies.clear()
    b.login(client, w.lead_doc.username)
    rr = client.get(f"/api/v1/referrals/{ref.id}/attachments/{body['id']}")
    assert rr.status_code == 404
    # and nobody can add to a finished referral
    token = _csrf(client.get("/account").text)
    r = client.post(f"/api/v1/referrals/{ref.id}/attachments", headers={"x-csrf-token": token},
                    files={"file": ("x.pdf", PDF, "application/pdf")})
    assert r.status_code == 409


def test_routing_on_the_new_form_and_booking_from_the_detail_page(db: Session, client: TestClient) -> None:
    w, patient = setup(db)
    b.login(client, w.comm_doc.username)
    page = client.get(f"/referrals/new?patient_id={patient.id}&specialty=儿童呼吸").text
    assert 'id="routing-candidates"' in page
    row = re.search(rf'<tr id="candidate-{w.lead.id}">(.*?)</tr>', page, re.S)
    assert row and '<td class="free-reserved-slots">10</td>' in row.group(1)
    assert f'id="candidate-{w.outsider.id}"' not in page
    chosen = client.get(f"/referrals/new?direction=up&patient_id={patient.id}&specialty=儿童呼吸"
                        f"&to_institution_id={w.lead.id}").text
    assert re.search(rf'<option value="{w.lead.id}" selected', chosen)

    ref = submitted_up(db, w, patient)
    service.receive(db, w.lead_doc, ref.id)
    service.accept(db, w.lead_doc, ref.id)
    client.cookies.clear()
    b.login(client, w.lead_doc.username)
    page = client.get(f"/referrals/{ref.id}").text
    assert f'id="book-slot-{w.session.id}"' in page
    r = client.post(f"/referrals/{ref.id}/book-slot", data={
        "csrf_token": _csrf(page), "expected_status": "accepted", "session_id": str(w.session.id),
        "pool": "reserved"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"]).text
    assert "已预约" in page
    booking = db.scalars(select(Booking).where(Booking.referral_id == ref.id)).one()
    assert booking.pool == "reserved"
    # the same form again (a stale page) answers 409 and books nothing more
    again = client.post(f"/referrals/{ref.id}/book-slot", data={
        "csrf_token": _csrf(page), "expected_status": "accepted", "session_id": str(w.session.id),
        "pool": "reserved"})
    assert again.status_code == 409
    assert db.scalar(select(func.count()).select_from(Slot).where(Slot.booked.is_(True))) == 1


def test_api_booking_race_answers_409_with_the_referral_unchanged(db: Session, client: TestClient) -> None:
    w, patient = setup(db)
    ref = submitted_up(db, w, patient)
    service.receive(db, w.lead_doc, ref.id)
    service.accept(db, w.lead_doc, ref.id)
    b.login(client, w.lead_doc.username)
    token = _csrf(client.get("/account").text)
    routing = client.get(f"/api/v1/referrals/{ref.id}/routing").json()
    assert [s["free_reserved"] for s in routing["sessions"]] == [10]
    slot = db.scalars(select(Slot).where(Slot.session_id == w.session.id, Slot.pool == "reserved")
                      .order_by(Slot.seq)).first()
    assert slot is not None
    slot.booked = True  # someone else took it between the page and the click
    db.flush()
    hist = history_count(db, ref.id)
    r = client.post(f"/api/v1/referrals/{ref.id}/book-slot", headers={"x-csrf-token": token},
                    json={"session_id": w.session.id, "slot_id": slot.id, "pool": "reserved"})
    assert r.status_code == 409 and r.json()["error"] == "referral_slot_taken"
    assert client.get(f"/api/v1/referrals/{ref.id}").json()["status"] == "accepted"
    assert history_count(db, ref.id) == hist
    r = client.post(f"/api/v1/referrals/{ref.id}/book-slot", headers={"x-csrf-token": token},
                    json={"session_id": w.session.id, "pool": "reserved"})
    assert r.status_code == 200 and r.json()["status"] == "scheduled"
    assert client.get(f"/api/v1/referrals/{ref.id}/routing").json()["sessions"][0]["free_reserved"] == 8


def test_printed_form_lists_the_attachments(db: Session, client: TestClient) -> None:
    w, patient = setup(db)
    ref = submitted_up(db, w, patient)
    service.attach(db, w.comm_doc, ref.id, "心电图.pdf", "application/pdf", PDF)
    b.login(client, w.comm_doc.username)
    printed = client.get(f"/referrals/{ref.id}/print").text
    assert 'id="print-attachments"' in printed and "心电图.pdf (PDF)" in printed
