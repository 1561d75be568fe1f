"""ECG import (pydicom's real 12-lead waveform, CSV, JSON), measurements, reader's report, bad input → 422."""

from __future__ import annotations

import json
import re

import numpy as np
import pydicom
import pytest
from sqlalchemy import func, select

from tests import builders as b
from tests.diagnostics.media_helpers import Setup, ecg_csv, order_setup, sample, synthetic_ecg
from yilianti.diagnostics.ecg import service as ecg
from yilianti.diagnostics.receivers import ingest
from yilianti.exceptions import InvalidInput
from yilianti.models.alliance import Institution
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.diagnostics_media import EcgRecording


@pytest.fixture
def setup(db) -> Setup:  # type: ignore[no-untyped-def]
    return order_setup(db, kind="ecg", modality="ECG")


@pytest.mark.parametrize("rate", [48, 60, 75, 110, 160])
def test_heart_rate_of_a_synthetic_waveform(rate: int) -> None:
    wf = ecg.parse_csv(ecg_csv(synthetic_ecg(rate, seed=rate)))
    assert ecg.measure(wf)["heart_rate"] == pytest.approx(rate, abs=1)


@pytest.mark.parametrize("axis", [-30, 0, 60, 100])
def test_frontal_axis(axis: int) -> None:
    m = ecg.measure(ecg.parse_csv(ecg_csv(synthetic_ecg(72, axis_deg=axis, seed=axis + 200))))
    assert m["heart_rate"] == pytest.approx(72, abs=1)  # also when lead II is nearly flat (-30°)
    assert m["axis_deg"] == pytest.approx(axis, abs=8)


def test_bazett() -> None:
    assert ecg.qtc_bazett(400, 1000) == 400
    assert ecg.qtc_bazett(360, 640) == 450


def test_dicom_sample_waveform_is_read_in_microvolts() -> None:
    path = sample("waveform_ecg.dcm")
    wf = ecg.parse_dicom(str(path))
    ds = pydicom.dcmread(path)
    assert wf.sample_rate == 1000.0 and wf.samples == 10000
    assert list(wf.leads) == ecg.LEADS
    raw = ds.waveform_array(0)  # channel sensitivity applied, units uV
    assert np.allclose(wf.leads["I"], raw[:, 0]) and np.allclose(wf.leads["V6"], raw[:, 11])
    m = ecg.measure(wf)
    assert 55 <= m["heart_rate"] <= 65 and m["r_peaks"] >= 9


def test_import_dicom_csv_and_json_through_the_api(client, db, setup) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, setup.reader)
    url = f"/api/v1/diagnostics/orders/{setup.order_id}/ecg"
    r = client.post(url, headers={"X-CSRF-Token": token},
                    files={"file": ("waveform_ecg.dcm", sample("waveform_ecg.dcm").read_bytes(), "application/dicom")})
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "dicom" and r.json()["leads"] == ecg.LEADS
    leads = synthetic_ecg(80, seed=3)
    r = client.post(url, headers={"X-CSRF-Token": token},
                    files={"file": ("export.csv", ecg_csv(leads, header_rate=False), "text/csv")},
                    data={"sample_rate_hz": "500"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["source"] == "csv" and body["auto"]["heart_rate"] == 80 and body["measurements"]["heart_rate"] == 80
    stored = client.get(f"/api/v1/diagnostics/ecg/{body['id']}?samples=true").json()["samples_uv"]
    assert np.abs(np.array(stored["V3"]) - np.array(leads["V3"])).max() <= 0.55  # whole µV
    doc = {"sample_rate_hz": 250, "units": "mV", "leads": {k: [v / 1000 for v in vals[::2]] for k, vals in leads.items()}}
    r = client.post(url, headers={"X-CSRF-Token": token},
                    files={"file": ("export.json", json.dumps(doc), "application/json")})
    assert r.status_code == 201, r.text
    assert r.json()["sample_rate_hz"] == 250 and r.json()["auto"]["heart_rate"] == 80
    assert len(client.get(url).json()) == 3


@pytest.mark.parametrize(("name", "content", "field", "words"), [
    ("wrong.csv", "# sample_rate_hz: 500\nI,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,X7\n" + "1,2,3,4,5,6,7,8,9,10,11,12\n" * 1200,
     "file", "X7"),
    ("short.csv", "# sample_rate_hz: 500\nI,II,III,aVR,aVL,aVF\n" + "1,2,3,4,5,6\n" * 1200, "file", "V1"),
    ("text.csv", "# sample_rate_hz: 500\nI,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6\n" + "1,2,3,4,5,6,7,8,9,10,11,12\n" * 10
     + "1,2,abc,4,5,6,7,8,9,10,11,12\n" + "1,2,3,4,5,6,7,8,9,10,11,12\n" * 1200, "file", "abc"),
    ("norate.csv", "I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6\n" + "1,2,3,4,5,6,7,8,9,10,11,12\n" * 1200,
     "sample_rate_hz", "采样率"),
    ("empty.json", json.dumps({"sample_rate_hz": 500, "leads": {}}), "file", "没有导联"),
    ("bad.json", json.dumps({"sample_rate_hz": 500, "leads": {"I": ["a"]}}), "file", "数字"),
    ("image.dcm", None, "file", "波形"),
    ("blank.csv", "", "file", "空"),
])
def test_bad_input_is_422_and_nothing_is_stored(client, db, setup, name, content, field, words) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, setup.reader)
    data = sample("CT_small.dcm").read_bytes() if content is None else content.encode()
    before = db.scalar(select(func.count()).select_from(EcgRecording))
    r = client.post(f"/api/v1/diagnostics/orders/{setup.order_id}/ecg", headers={"X-CSRF-Token": token},
                    files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == 422, r.text
    assert field in r.json()["fields"] and words in r.json()["fields"][field]
    assert db.scalar(select(func.count()).select_from(EcgRecording)) == before


def test_reader_edits_measurements_and_conclusion(client, db, setup) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, setup.reader)
    r = client.post(f"/api/v1/diagnostics/orders/{setup.order_id}/ecg", headers={"X-CSRF-Token": token},
                    files={"file": ("e.csv", ecg_csv(synthetic_ecg(75, seed=9)), "text/csv")})
    rec_id = r.json()["id"]
    r = client.put(f"/api/v1/diagnostics/ecg/{rec_id}/reading", headers={"X-CSRF-Token": token},
                   json={"heart_rate": 76, "pr_ms": 160, "qrs_ms": 90, "qt_ms": 380, "axis_deg": 55,
                         "rhythm": "窦性心律", "conclusion": "窦性心律，正常心电图"})
    assert r.status_code == 200, r.text
    m = r.json()["measurements"]
    assert m == {"heart_rate": 76, "pr_ms": 160, "qrs_ms": 90, "qt_ms": 380, "axis_deg": 55,
                 "qtc_ms": ecg.qtc_bazett(380, 60000 / 76)}
    assert r.json()["auto"]["heart_rate"] == 75  # the automatic value is kept beside the reader's
    assert r.json()["conclusion"] == "窦性心律，正常心电图"
    bad = client.put(f"/api/v1/diagnostics/ecg/{rec_id}/reading", headers={"X-CSRF-Token": token},
                     json={"heart_rate": 900})
    assert bad.status_code == 422 and "heart_rate" in bad.json()["fields"]
    # the ordering township may see the ECG but not write the reading
    order = db.get(DiagnosticOrder, setup.order_id)
    township_user = b.user(db, db.get(Institution, order.ordering_institution_id), "doctor")
    other = client.__class__(client.app)
    t2 = b.login(other, township_user.username)
    assert other.get(f"/api/v1/diagnostics/ecg/{rec_id}").status_code == 200
    assert other.put(f"/api/v1/diagnostics/ecg/{rec_id}/reading", headers={"X-CSRF-Token": t2},
                     json={"conclusion": "x"}).status_code == 403
    outsider = client.__class__(client.app)
    b.login(outsider, setup.outsider)
    assert outsider.get(f"/api/v1/diagnostics/ecg/{rec_id}").status_code == 404


def test_ecg_page_draws_twelve_leads_on_the_grid(client, db, setup) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, setup.reader)
    page = client.get(f"/diagnostics/orders/{setup.order_id}/ecg")
    assert page.status_code == 200 and 'id="no-ecg"' in page.text
    r = client.post(f"/diagnostics/orders/{setup.order_id}/ecg/import", data={"csrf_token": token},
                    files={"file": ("waveform_ecg.dcm", sample("waveform_ecg.dcm").read_bytes(), "application/dicom")},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(f"/diagnostics/orders/{setup.order_id}/ecg")
    leads = set(re.findall(r'data-lead="([^"]+)"', page.text))
    assert set(ecg.LEADS) <= leads and "II rhythm" in leads
    assert 'width="1"' in page.text and 'width="5"' in page.text  # 1 mm and 5 mm squares
    assert page.text.count('class="ecg-cal"') == 4  # a calibration pulse per row
    assert 'id="auto-heart_rate"' in page.text
    page12 = client.get(f"/diagnostics/orders/{setup.order_id}/ecg?layout=12x1")
    assert page12.text.count('class="ecg-lead"') == 12
    svg = client.get(f"/diagnostics/orders/{setup.order_id}/ecg.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    bad = client.post(f"/diagnostics/orders/{setup.order_id}/ecg/import", data={"csrf_token": token},
                      files={"file": ("x.csv", b"A,B\n1,2\n", "text/csv")})
    assert bad.status_code == 422 and 'id="ecg-error"' in bad.text


def test_paper_scale_is_25_mm_per_second_and_10_mm_per_mv(db, setup) -> None:  # type: ignore[no-untyped-def]
    fs = 500.0
    leads = {n: [0.0] * 5000 for n in ecg.LEADS}
    leads["II"][1000] = 1000.0  # 1 mV at t = 2 s
    order = db.get(DiagnosticOrder, setup.order_id)
    rec = ecg.store(db, None, order, ecg.parse_json(json.dumps({"sample_rate_hz": fs, "leads": leads})), "json")
    p = ecg.paper(rec, "12x1")
    trace = next(t for t in p["traces"] if t.lead == "II")
    pts = [tuple(map(float, pt.split(","))) for pt in trace.points.split()]
    peak = min(pts, key=lambda xy: xy[1])
    assert peak[0] == pytest.approx(trace.x0 + 2 * 25)  # 2 s → 50 mm
    assert trace.baseline - peak[1] == pytest.approx(10.0)  # 1 mV → 10 mm


def test_invalid_input_is_an_invalid_input_error() -> None:
    with pytest.raises(InvalidInput):
        ecg.parse_upload("x.csv", b"I,II\n1,2\n", 500)


def test_waveform_received_by_c_store_becomes_a_recording(client, db, setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = pydicom.dcmread(sample("waveform_ecg.dcm"))
    ds.AccessionNumber = setup.accession
    path = tmp_path / "ecg.dcm"
    ds.save_as(path)
    assert ingest.ingest_dicom(db, ds, path, calling_ae="QUKOU_ECG").status == "stored"
    b.login(client, setup.reader)
    page = client.get(f"/diagnostics/orders/{setup.order_id}/ecg")
    assert page.status_code == 200 and 'data-lead="V6"' in page.text
    recs = client.get(f"/api/v1/diagnostics/orders/{setup.order_id}/ecg").json()
    assert len(recs) == 1 and recs[0]["source"] == "dicom"  # imported once, not on every view
    images = client.get(f"/diagnostics/orders/{setup.order_id}/images")
    assert images.status_code == 200 and 'id="no-images"' in images.text  # a waveform is no image


def test_intervals_agree_with_the_carts_own_measurements() -> None:
    """pydicom's waveform_ecg.dcm carries the cart's measurements: RR 982, PR 161, QRS 75, QT 368 ms, axis 52°."""
    wf = ecg.parse_dicom(str(sample("waveform_ecg.dcm")))
    assert wf.device is not None
    assert {k: wf.device[k] for k in ("rr_ms", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "axis_deg")} == {
        "rr_ms": 982, "pr_ms": 161, "qrs_ms": 75, "qt_ms": 368, "qtc_ms": 370, "axis_deg": 52}
    assert wf.device["statements"] == ["RITMO SINUSALE", "ECG NORMALE"]
    m = ecg.measure(wf)
    assert m["rr_ms"] == pytest.approx(982, abs=10)
    assert m["pr_ms"] == pytest.approx(161, abs=20)
    assert m["qrs_ms"] == pytest.approx(75, abs=15)
    assert m["qt_ms"] == pytest.approx(368, abs=25)
    assert m["axis_deg"] == pytest.approx(52, abs=10)


def test_synthetic_intervals() -> None:
    # P centred 160 ms before R (sigma 25 ms), Q at -25 ms, S at +30 ms, T at +280 ms (sigma 50 ms)
    m = ecg.measure(ecg.parse_csv(ecg_csv(synthetic_ecg(60, seed=11))))
    assert 140 <= m["pr_ms"] <= 200 and 60 <= m["qrs_ms"] <= 110 and 340 <= m["qt_ms"] <= 420
    assert m["qtc_ms"] == ecg.qtc_bazett(m["qt_ms"], m["rr_ms"])


def test_reader_fields_start_from_the_carts_values(db, setup) -> None:  # type: ignore[no-untyped-def]
    order = db.get(DiagnosticOrder, setup.order_id)
    rec = ecg.store(db, None, order, ecg.parse_dicom(str(sample("waveform_ecg.dcm"))), "dicom")
    assert (rec.pr_ms, rec.qrs_ms, rec.qt_ms, rec.qtc_ms, rec.axis_deg, rec.heart_rate) == (161, 75, 368, 370, 52, 61)
    assert rec.auto is not None and rec.auto["device"]["pr_ms"] == 161 and rec.auto["pr_ms"] != rec.auto["device"]["qrs_ms"]


def test_report_editor_fragment_carries_the_reading(client, db, setup) -> None:  # type: ignore[no-untyped-def]
    from yilianti.web.render import environment

    token = b.login(client, setup.reader)
    assert 'id="ecg-summary-none"' in client.get(f"/diagnostics/orders/{setup.order_id}/ecg/summary").text
    r = client.post(f"/api/v1/diagnostics/orders/{setup.order_id}/ecg", headers={"X-CSRF-Token": token},
                    files={"file": ("w.dcm", sample("waveform_ecg.dcm").read_bytes(), "application/dicom")})
    rec_id = r.json()["id"]
    frag = client.get(f"/diagnostics/orders/{setup.order_id}/ecg/summary").text
    assert "HR: 61" in frag and "PR: 161" in frag and "未经医师确认" in frag
    client.put(f"/api/v1/diagnostics/ecg/{rec_id}/reading", headers={"X-CSRF-Token": token},
               json={"heart_rate": 62, "pr_ms": 160, "qrs_ms": 76, "qt_ms": 370, "axis_deg": 50,
                     "conclusion": "窦性心律，正常心电图"})
    frag = client.get(f"/diagnostics/orders/{setup.order_id}/ecg/summary").text
    assert 'data-measurements="HR: 62\nPR: 160\nQRS: 76\nQT: 370\nQTc: ' in frag
    assert 'data-conclusion="窦性心律，正常心电图"' in frag and "未经医师确认" not in frag
    html = environment("zh").get_template("diagnostics/_media.html").render(order=db.get(DiagnosticOrder, setup.order_id))
    assert f'hx-get="/diagnostics/orders/{setup.order_id}/ecg/summary"' in html and "/static/js/media.js" in html
