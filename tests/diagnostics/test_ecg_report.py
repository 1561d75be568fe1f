"""The ECG's measurements reach the report by themselves: the editor of a claimed ECG order starts from
HR / PR / QRS / QT / QTc / axis of its waveform, the reader's edit wins and stays, the print shows them."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import builders as b
from tests.diagnostics.helpers import DxWorld, dx_world
from tests.diagnostics.media_helpers import sample
from yilianti.diagnostics.ecg import service as ecg
from yilianti.diagnostics.orders import workflow
from yilianti.diagnostics.reading import service as reading
from yilianti.models.diagnostics import DiagnosticItem, DiagnosticOrder, DiagnosticReport, ItemPrice

CART = "HR: 61\nPR: 161\nQRS: 75\nQT: 368\nQTc: 370\nAxis: 52"  # waveform_ecg.dcm, the cart's own values


def _claimed_ecg_order(db: Session, w: DxWorld, with_waveform: bool = True) -> DiagnosticOrder:
    item = DiagnosticItem(code="ECG-12", name="十二导联心电图", kind="ecg", modality="ECG",
                          reading_centre_institution_id=w.county.id, expected_tat_minutes=60)
    db.add(item)
    db.flush()
    db.add(ItemPrice(item_id=item.id, institution_id=w.township.id, price_fen=2000, fee_standard="乡镇卫生院"))
    db.flush()
    order = workflow.place_order(db, w.site_doc, patient_id=w.patient.id, item_id=item.id, priority="routine",
                                 clinical_question="心悸一周")
    workflow.mark_acquired(db, w.site_doc, order.id)
    workflow.mark_transmitted(db, w.site_doc, order.id)
    workflow.mark_received(db, w.reader, order.id)
    if with_waveform:
        ecg.store(db, None, order, ecg.parse_dicom(str(sample("waveform_ecg.dcm"))), "dicom")
    reading.claim(db, w.reader, order.id)
    db.flush()
    return order


def _measurement_box(page: str) -> str:
    m = re.search(r'<textarea id="f-measurements"[^>]*>(.*?)</textarea>', page, re.S)
    assert m, page
    return html.unescape(m.group(1))


def test_editor_starts_from_the_ecg_and_keeps_the_readers_edit(db: Session, client: TestClient) -> None:
    w = dx_world(db, tag="ecgrep")
    order = _claimed_ecg_order(db, w)
    csrf = b.login(client, w.usernames["reader"])

    editor = client.get(f"/diagnostics/orders/{order.id}/report").text
    assert _measurement_box(editor) == CART and 'id="ecg-prefilled"' in editor

    # the reader corrects the rate and saves a draft: from now on the editor shows the reader's values
    edited = CART.replace("HR: 61", "HR: 64")
    r = client.post(f"/diagnostics/orders/{order.id}/report", data={
        "csrf_token": csrf, "findings": "窦性心律", "conclusion": "", "measurements": edited, "action": "save"},
        follow_redirects=False)
    assert r.status_code == 303, r.text
    rec = ecg.latest(db, order.id)
    assert rec is not None
    r = client.put(f"/api/v1/diagnostics/ecg/{rec.id}/reading", headers={"X-CSRF-Token": csrf},
                   json={"heart_rate": 70, "pr_ms": 150, "qrs_ms": 80, "qt_ms": 360, "axis_deg": 40})
    assert r.status_code == 200, r.text  # a later change on the ECG page does not overwrite the draft
    editor = client.get(f"/diagnostics/orders/{order.id}/report").text
    assert _measurement_box(editor) == edited and 'id="ecg-prefilled"' not in editor

    r = client.post(f"/diagnostics/orders/{order.id}/report", data={
        "csrf_token": csrf, "findings": "窦性心律", "conclusion": "窦性心律，正常心电图",
        "measurements": _measurement_box(editor), "action": "sign"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    db.expire_all()
    report = db.scalar(select(DiagnosticReport).where(DiagnosticReport.order_id == order.id))
    assert report is not None and report.status == "final"
    assert report.measurements == {"HR": 64, "PR": 161, "QRS": 75, "QT": 368, "QTc": 370, "Axis": 52}

    # the township prints the signed report with the measurements
    client.cookies.clear()
    b.login(client, w.usernames["site"])
    printed = client.get(f"/diagnostics/orders/{order.id}/print").text
    assert "HR: 64 · PR: 161 · QRS: 75 · QT: 368 · QTc: 370 · Axis: 52" in printed
    assert "窦性心律，正常心电图" in printed
    # and with its waveform: the 12 leads on the paper grid, through the same access decision as the ECG page
    assert f'<img src="/diagnostics/orders/{order.id}/ecg.svg?layout=3x4"' in printed
    svg = client.get(f"/diagnostics/orders/{order.id}/ecg.svg?layout=3x4")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml") and "<svg" in svg.text


def test_editor_without_a_waveform_or_with_saved_measurements_is_not_prefilled(db: Session,
                                                                                client: TestClient) -> None:
    w = dx_world(db, tag="ecgnone")
    order = _claimed_ecg_order(db, w, with_waveform=False)
    b.login(client, w.usernames["reader"])
    editor = client.get(f"/diagnostics/orders/{order.id}/report").text
    assert _measurement_box(editor) == "" and 'id="ecg-prefilled"' not in editor
    # the waveform arrives later: the next opening of the editor takes it
    ecg.store(db, None, order, ecg.parse_dicom(str(sample("waveform_ecg.dcm"))), "dicom")
    db.flush()
    assert _measurement_box(client.get(f"/diagnostics/orders/{order.id}/report").text) == CART
    # a report signed without ECG values keeps what was signed
    reading.sign(db, w.reader, order.id, findings="", conclusion="窦性心律", measurements={"HR": 58})
    db.flush()
    assert ecg.latest(db, order.id) is not None
    page = client.get(f"/diagnostics/orders/{order.id}/report").text
    assert "HR</th><td>58" in page and "HR: 61" not in page
