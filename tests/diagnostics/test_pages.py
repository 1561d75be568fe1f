"""The workflow through the real pages: the township orders, the county claims (htmx), signs; print, TAT."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import builders as b
from tests.diagnostics.helpers import dx_world
from yilianti.diagnostics.orders import workflow
from yilianti.diagnostics.reading import service as reading
from yilianti.diagnostics.receivers import ingest
from yilianti.models.diagnostics import DiagnosticOrder, DiagnosticReport, InboundMessage


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_order_claim_sign_and_print_through_the_pages(db: Session, client: TestClient) -> None:
    w = dx_world(db)
    csrf = b.login(client, w.usernames["site"])
    assert 'href="/diagnostics"' in client.get("/").text
    form = client.get("/diagnostics/orders/new")
    assert form.status_code == 200 and "头颅CT平扫" in form.text and "160.00" in form.text
    assert 'id="pick-patient_id"' in form.text
    bad = client.post("/diagnostics/orders/new", data={"csrf_token": csrf, "patient_id": str(w.patient.id),
                                                       "item_id": "", "priority": "routine"})
    assert bad.status_code == 422 and 'id="err-item_ids"' in bad.text and w.patient.name in bad.text
    r = client.post("/diagnostics/orders/new", data={
        "csrf_token": csrf, "patient_id": str(w.patient.id), "item_id": str(w.ct.id), "priority": "urgent",
        "clinical_question": "头晕两天"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    order = db.scalar(select(DiagnosticOrder))
    assert order is not None and order.price_fen == 16000 and order.priority == "urgent"
    page = client.get(r.headers["location"]).text
    assert order.accession_number in page and 'id="form-transmit"' in page
    # before the test is done, the ordering doctor can check for a recognised result of the same item
    assert (f'href="/recognition?patient_id={w.patient.id}&amp;item_code={order.item_code}&amp;order_id={order.id}"'
            in page)
    r = client.post(f"/diagnostics/orders/{order.id}/transmit",
                    data={"csrf_token": csrf, "expected_status": "ordered"}, follow_redirects=False)
    db.expire_all()
    assert r.status_code == 303 and order.status == "transmitted"
    # a stale page: 409 with the message, nothing changed
    stale = client.post(f"/diagnostics/orders/{order.id}/acquire", data={"csrf_token": csrf,
                                                                        "expected_status": "ordered"})
    db.expire_all()
    assert stale.status_code == 409 and 'id="action-error"' in stale.text and order.status == "transmitted"

    # the county reader: the study arrives, claim from the worklist with htmx, write and sign
    client.cookies.clear()
    csrf = b.login(client, w.usernames["reader"])
    workflow.system_received(db, order, channel="dicom")
    wl = client.get("/diagnostics/worklist").text
    assert f'id="claim-{order.id}"' in wl and w.patient.name in wl
    row = client.post(f"/diagnostics/orders/{order.id}/claim", data={"csrf_token": csrf},
                      headers={"HX-Request": "true"})
    assert row.status_code == 200 and f'id="write-{order.id}"' in row.text and "<html" not in row.text
    db.expire_all()
    assert order.status == "claimed" and order.claimed_by_user_id == w.reader.user_id
    editor = client.get(f"/diagnostics/orders/{order.id}/report").text
    assert 'id="report-form"' in editor and "头晕两天" in editor
    missing = client.post(f"/diagnostics/orders/{order.id}/report", data={
        "csrf_token": csrf, "findings": "未见异常", "conclusion": "", "action": "sign"})
    assert missing.status_code == 422 and 'id="err-conclusion"' in missing.text
    db.expire_all()
    assert order.status == "claimed"
    r = client.post(f"/diagnostics/orders/{order.id}/report", data={
        "csrf_token": csrf, "findings": "脑实质密度均匀", "conclusion": "头颅CT平扫未见明显异常",
        "measurements": "中线移位mm: 0", "action": "sign"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    db.expire_all()
    report = db.scalar(select(DiagnosticReport).where(DiagnosticReport.order_id == order.id))
    assert report is not None and report.status == "final" and report.measurements == {"中线移位mm": 0}

    # the township sees the final report and prints it with its own name and fee
    client.cookies.clear()
    b.login(client, w.usernames["site"])
    mine = client.get("/diagnostics/orders").text
    assert order.accession_number in mine and "已出报告" in mine
    detail = client.get(f"/diagnostics/orders/{order.id}").text
    assert "头颅CT平扫未见明显异常" in detail and 'id="order-tat"' in detail
    printed = client.get(f"/diagnostics/orders/{order.id}/print").text
    assert w.township.name in printed and "160.00" in printed and "头颅CT平扫未见明显异常" in printed
    tat = client.get("/diagnostics/tat").text
    assert 'id="tat-chart"' in tat and "头颅CT平扫" in tat
    en = client.get("/diagnostics/worklist", headers={"Accept-Language": "en"})
    assert en.status_code == 200


def test_site_does_not_see_a_draft_and_outsider_gets_404(db: Session, client: TestClient) -> None:
    w = dx_world(db)
    order = workflow.place_order(db, w.site_doc, patient_id=w.patient.id, item_id=w.ct.id)
    workflow.mark_received(db, w.reader, order.id)
    reading.claim(db, w.reader, order.id)
    reading.save_report(db, w.reader, order.id, findings="草稿所见", conclusion="草稿结论")
    b.login(client, w.usernames["site"])
    page = client.get(f"/diagnostics/orders/{order.id}").text
    assert "草稿结论" not in page and 'id="no-report"' in page
    assert client.get(f"/diagnostics/orders/{order.id}/print").status_code == 404
    client.cookies.clear()
    b.login(client, w.usernames["outsider"])
    assert client.get(f"/diagnostics/orders/{order.id}").status_code == 404


def test_critical_value_acknowledged_on_the_page(db: Session, client: TestClient) -> None:
    w = dx_world(db)
    order = workflow.place_order(db, w.site_doc, patient_id=w.patient.id, item_id=w.ct.id)
    workflow.mark_received(db, w.reader, order.id)
    reading.claim(db, w.reader, order.id)
    reading.sign(db, w.reader, order.id, findings="f", conclusion="硬膜外血肿", critical=True)
    csrf = b.login(client, w.usernames["site"])
    page = client.get("/diagnostics/critical").text
    m = re.search(r'id="ack-(\d+)"', page)
    assert m and "硬膜外血肿" in page
    r = client.post(f"/diagnostics/critical/{m.group(1)}/ack", data={"csrf_token": csrf, "note": "已通知患者"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "硬膜外血肿" not in client.get("/diagnostics/critical").text
    assert "已通知患者" in client.get("/diagnostics/critical?show=all").text


def test_quarantine_page_resolves_in_one_click(db: Session, client: TestClient) -> None:
    w = dx_world(db)
    order = workflow.place_order(db, w.site_doc, patient_id=w.patient.id, item_id=w.tsh.id)
    from tests.diagnostics.test_critical import HL7, _rid

    outcome = ingest.ingest_hl7(db, HL7.format(cid="Q1", rid=_rid(db, w.patient.id), acc="LIS-1"))
    csrf = b.login(client, w.usernames["reader"])
    page = client.get("/diagnostics/quarantine").text
    assert f'id="resolve-{outcome.inbound_id}-{order.id}"' in page and w.patient.name in page
    r = client.post(f"/diagnostics/quarantine/{outcome.inbound_id}/resolve",
                    data={"csrf_token": csrf, "order_id": str(order.id)}, follow_redirects=False)
    assert r.status_code == 303
    db.expire_all()
    inbound = db.get(InboundMessage, outcome.inbound_id)
    assert inbound is not None and inbound.status == "resolved" and order.status == "final"
    client.cookies.clear()
    b.login(client, w.usernames["site"])
    assert client.get("/diagnostics/quarantine").status_code == 403


def test_refused_messages_are_listed_with_labels_reprocessed_and_discarded(db: Session, client: TestClient,
                                                                          monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A GBK message from a sender with no MSH-18 and no configured default is refused (AR) and kept as
    bytes; the reading centre sees it with its labelled reason and what arrived, configures the sender's
    character set and re-processes it: stored. A NUL message is discarded instead."""
    from tests.diagnostics.test_critical import HL7, _rid
    from yilianti.config import get_settings
    from yilianti.diagnostics.receivers import mllp

    w = dx_world(db)
    order = workflow.place_order(db, w.site_doc, patient_id=w.patient.id, item_id=w.tsh.id)
    text = HL7.format(cid="GBK1", rid=_rid(db, w.patient.id), acc=order.accession_number) + "\r"
    refused = ingest.ingest_hl7(db, mllp.decode(text.encode("gbk")))
    nul = ingest.ingest_hl7(db, mllp.decode(text.replace("GBK1", "NUL1").replace("6.8", "6\x008").encode()))
    assert (refused.code, refused.problem, nul.code, nul.problem) == ("AR", "charset_invalid", "AR", "control_chars")
    db.commit()
    csrf = b.login(client, w.usernames["reader"])
    page = client.get("/diagnostics/quarantine").text
    assert f'id="reprocess-{refused.inbound_id}"' in page and f'id="reject-{nul.inbound_id}"' in page
    assert "消息内容与其字符集不符" in page and "消息中含有控制字符（如 NUL）" in page and "已拒收待处理（AR）" in page
    assert "\\x00" in page  # the NUL shown, not swallowed
    client.cookies.set("lang", "en")
    english = client.get("/diagnostics/quarantine").text
    client.cookies.set("lang", "zh")
    assert "Bytes not valid in the message&#39;s character set" in english and "Refused, to handle (AR)" in english
    # still refused while the sender is not configured: said on the page, the message stays
    r = client.post(f"/diagnostics/quarantine/{refused.inbound_id}/reprocess", data={"csrf_token": csrf})
    assert r.status_code == 200 and "仍未能接收" in r.text
    monkeypatch.setattr(get_settings(), "hl7_charsets", {"LIS@XHXRMYY": "GBK"})
    r = client.post(f"/diagnostics/quarantine/{refused.inbound_id}/reprocess", data={"csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303
    r = client.post(f"/diagnostics/quarantine/{nul.inbound_id}/reject", data={"csrf_token": csrf, "reason": "仪器故障"},
                    follow_redirects=False)
    assert r.status_code == 303
    db.expire_all()
    kept = db.get(InboundMessage, refused.inbound_id)
    assert kept is not None and kept.status == "resolved" and "赵桂兰" in (kept.raw or "")
    assert order.status == "final"
    gone = db.get(InboundMessage, nul.inbound_id)
    assert gone is not None and gone.status == "discarded" and "仪器故障" in (gone.reason or "")
    page = client.get("/diagnostics/quarantine").text
    assert f'id="inbound-{refused.inbound_id}"' not in page and f'id="inbound-{nul.inbound_id}"' not in page


def test_catalogue_admin_edits_an_item_and_a_price(db: Session, client: TestClient) -> None:
    w = dx_world(db)
    csrf = b.login(client, w.usernames["admin"])
    home = client.get("/diagnostics", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/diagnostics/catalogue"
    r = client.post("/diagnostics/catalogue/save", data={
        "csrf_token": csrf, "code": "US-ABD", "name": "腹部彩超", "kind": "imaging", "modality": "US",
        "expected_tat_minutes": "240", "centre_id": str(w.county.id), "active": "1"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    item_id = int(r.headers["location"].split("/")[-1].split("?")[0])
    r = client.post(f"/diagnostics/catalogue/{item_id}/prices", data={
        "csrf_token": csrf, "institution_id": str(w.township.id), "price_yuan": "85.5",
        "fee_standard": "乡镇卫生院"}, follow_redirects=False)
    assert r.status_code == 303
    assert "85.50" in client.get(f"/diagnostics/catalogue/{item_id}").text
    dup = client.post("/diagnostics/catalogue/save", data={
        "csrf_token": csrf, "code": "US-ABD", "name": "重复", "kind": "imaging",
        "expected_tat_minutes": "240", "centre_id": str(w.county.id)})
    assert dup.status_code == 422 and 'id="err-code"' in dup.text
    client.cookies.clear()
    csrf = b.login(client, w.usernames["site"])
    assert "腹部彩超" in client.get("/diagnostics/catalogue").text
    denied = client.post("/diagnostics/catalogue/save", data={
        "csrf_token": csrf, "code": "X", "name": "X", "kind": "lab", "expected_tat_minutes": "1",
        "centre_id": str(w.county.id)})
    assert denied.status_code == 403


def test_trainee_signs_and_a_senior_countersigns_on_the_pages(db: Session, client: TestClient) -> None:
    w = dx_world(db)
    order = workflow.place_order(db, w.site_doc, patient_id=w.patient.id, item_id=w.ct.id)
    workflow.mark_received(db, w.reader, order.id)
    csrf = b.login(client, w.usernames["trainee"])
    client.post(f"/diagnostics/orders/{order.id}/claim", data={"csrf_token": csrf})
    editor = client.get(f"/diagnostics/orders/{order.id}/report").text
    assert "规培医师" in editor
    r = client.post(f"/diagnostics/orders/{order.id}/report", data={
        "csrf_token": csrf, "findings": "所见", "conclusion": "初步结论", "action": "sign"}, follow_redirects=False)
    assert r.status_code == 303
    db.expire_all()
    assert order.status == "reported"
    client.cookies.clear()
    csrf = b.login(client, w.usernames["reader"])
    assert f'id="review-{order.id}"' in client.get("/diagnostics/worklist").text
    page = client.get(f"/diagnostics/orders/{order.id}/report").text
    assert 'id="second-form"' in page and "初步结论" in page
    r = client.post(f"/diagnostics/orders/{order.id}/report", data={
        "csrf_token": csrf, "conclusion": "审核结论", "action": "second"}, follow_redirects=False)
    assert r.status_code == 303
    db.expire_all()
    assert order.status == "final"
    detail = client.get(f"/diagnostics/orders/{order.id}").text
    assert "审核结论" in detail and 'id="report-second-signer"' in detail


def test_head_assigns_from_the_worklist_with_htmx(db: Session, client: TestClient) -> None:
    w = dx_world(db)
    order = workflow.place_order(db, w.site_doc, patient_id=w.patient.id, item_id=w.ct.id)
    workflow.mark_received(db, w.reader, order.id)
    csrf = b.login(client, w.usernames["reader"])
    wl = client.get("/diagnostics/worklist")
    assert wl.status_code == 200 and f'id="assign-{order.id}"' in wl.text
    row = client.post(f"/diagnostics/orders/{order.id}/assign", headers={"HX-Request": "true"},
                      data={"csrf_token": csrf, "reader_user_id": str(w.reader2.user_id)})
    assert row.status_code == 200 and "阅片中" in row.text
    db.expire_all()
    assert order.claimed_by_user_id == w.reader2.user_id
