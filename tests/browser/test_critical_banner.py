"""The township doctor's phone (390 px) while a critical value arrives (issue 16, "done when"): 李春生
(qukou-doctor) clears the demo's open critical value, then works on the patient list; the county LIS sends a
critical potassium for another of his orders; without a page load the red banner appears on the page he has
open (and the 通知 badge counts one more), its link opens the critical values, he acknowledges with the
action taken, and the banner is gone. Screenshots with YILIANTI_SCREENSHOTS=dir."""

from __future__ import annotations

import os

from sqlalchemy import select

from tests.browser.conftest import login
from yilianti.config import get_settings
from yilianti.demo import dataset, loader
from yilianti.models.diagnostics import CriticalValue

PHONE = {"width": 390, "height": 844}


def _seed(db):  # type: ignore[no-untyped-def]
    dataset.load_demo(db)
    return loader.DEMO_PASSWORD


def _new_critical(db):  # type: ignore[no-untyped-def]
    """An urgent electrolyte panel placed, drawn and sent by 李春生; the county LIS answers with K 7.1 (HH)."""
    from yilianti.auth import service as auth_service
    from yilianti.diagnostics.orders import workflow
    from yilianti.diagnostics.receivers import ingest
    from yilianti.models.auth import RoleAssignment, User
    from yilianti.models.diagnostics import DiagnosticItem
    from yilianti.models.patient import CareRelationship, Patient, PatientIdentifier

    user = db.scalar(select(User).where(User.username == "qukou-doctor"))
    site_id = db.scalar(select(RoleAssignment.institution_id).where(RoleAssignment.user_id == user.id).limit(1))
    site = auth_service.build_subject(db, user, site_id)
    item = db.scalar(select(DiagnosticItem).where(DiagnosticItem.code == "LAB-ELEC"))
    patient_id, rid = db.execute(
        select(Patient.id, PatientIdentifier.value)
        .join(CareRelationship, CareRelationship.patient_id == Patient.id)
        .join(PatientIdentifier, PatientIdentifier.patient_id == Patient.id)
        .where(CareRelationship.institution_id == site_id, CareRelationship.ended_at.is_(None),
               PatientIdentifier.authority == "CN-RIC")
        .order_by(Patient.id.desc()).limit(1)).one()
    order = workflow.place_order(db, site, patient_id=patient_id, item_id=item.id, priority="urgent",
                                 clinical_question="心悸、乏力")
    workflow.mark_acquired(db, site, order.id)
    workflow.mark_transmitted(db, site, order.id)
    ingest.ingest_hl7(db, "\r".join([
        "MSH|^~\\&|XH-LIS|XHXRMYY|YILIANTI|QKWSY|20261207090000||ORU^R01|BROWSER-K-2|P|2.5.1",
        f"PID|1||{rid}^^^CN-RIC||demo",
        f"OBR|1|{order.accession_number}|XH-LAB-K2|LAB-ELEC^电解质",
        "OBX|1|NM|2823-3^血钾^LN||7.1|mmol/L|3.5-5.3|HH|||F",
    ]))
    db.flush()
    cv = db.scalar(select(CriticalValue).where(CriticalValue.order_id == order.id))
    assert cv is not None
    name = db.get(Patient, patient_id).name
    return {"cv": cv.id, "patient": name}


def _deliver(live_server) -> None:  # type: ignore[no-untyped-def]
    """What the worker does in production (the live server runs no jobs): deliver the queued notifications."""
    from yilianti.worker import runner

    while runner.deliver_batch(live_server.factory)[0]:
        pass


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    where = os.environ.get("YILIANTI_SCREENSHOTS")
    if where:
        page.screenshot(path=os.path.join(where, f"critical-{name}.png"), full_page=True)


def _unread(page) -> int:  # type: ignore[no-untyped-def]
    text = (page.text_content("#unread-badge") or "").strip()
    return int(text) if text else 0


def _acknowledge(page, base: str, cv_id: int, note: str) -> None:  # type: ignore[no-untyped-def]
    page.fill(f"#ack-form-{cv_id} input[name=note]", note)
    page.click(f"#ack-{cv_id}")
    page.wait_for_url(f"{base}/diagnostics/critical?done=ack")
    assert "危急值已确认" in page.inner_text("main")
    assert page.locator(f"#ack-form-{cv_id}").count() == 0


def test_township_doctor_gets_the_critical_banner_on_another_page_and_acknowledges(
        live_server, page, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    password = live_server.seed(_seed)
    _deliver(live_server)
    monkeypatch.setattr(get_settings(), "poll_seconds", 5)  # the banner's poll; 30 s by default
    base = live_server.url
    page.set_viewport_size(PHONE)
    login(page, base, "qukou-doctor", password)

    # the demo's open critical value (K 6.8): the banner is there from the start; clear it first
    page.wait_for_selector("#critical-banner")
    page.click("#critical-banner-link")
    page.wait_for_url(f"{base}/diagnostics/critical")
    demo_open = live_server.seed(lambda db: list(db.scalars(
        select(CriticalValue.id).where(CriticalValue.acknowledged_at.is_(None)))))
    for cv_id in demo_open:  # type: ignore[union-attr]
        if page.locator(f"#ack-form-{cv_id}").count():
            _acknowledge(page, base, cv_id, "已电话通知患者复查")

    # on another page, nothing critical waiting
    page.goto(f"{base}/patients")
    page.wait_for_selector("#live", state="attached")
    page.wait_for_timeout(500)
    assert page.locator("#critical-banner").count() == 0
    unread = _unread(page)
    url = page.url

    # the county LIS sends a critical potassium: the banner comes to the open page by itself
    new = live_server.seed(_new_critical)
    _deliver(live_server)
    banner = page.locator("#critical-banner")
    banner.wait_for(state="visible", timeout=20000)
    assert page.url == url  # no page load
    text = banner.inner_text()
    assert new["patient"] in text and "血钾" in text and "7.1" in text and "分钟前" in text  # type: ignore[index]
    assert _unread(page) > unread  # the 通知 badge counts it (with the order's own notices)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = banner.bounding_box()
    assert box is not None and box["y"] < PHONE["height"] and box["width"] <= PHONE["width"]
    _shot(page, "banner-390")

    # the banner's link: the critical values, acknowledged with the action taken
    page.click("#critical-banner-link")
    page.wait_for_url(f"{base}/diagnostics/critical")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _acknowledge(page, base, new["cv"], "已嘱立即来院复查血钾")  # type: ignore[index]
    _shot(page, "acknowledged-390")
    page.goto(f"{base}/diagnostics/critical?show=all")
    row = page.inner_text(f"#cv-{new['cv']}")  # type: ignore[index]
    assert "李春生" in row and "已嘱立即来院复查血钾" in row
    page.goto(f"{base}/patients")
    page.wait_for_timeout(500)
    assert page.locator("#critical-banner").count() == 0
