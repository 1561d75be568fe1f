"""The imaging viewer and the ECG page in a real browser (Debian chromium).

A county reader uploads two CT slices through the order's upload form, chooses the lung preset
(the canvas greys are the DICOM window of the stored values), scrolls to the next slice with
the keyboard and the wheel, measures a distance in mm, then imports the pydicom 12-lead ECG and
sees the 12 leads on the paper grid.
"""

from __future__ import annotations

import os
import re

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests import builders as b
from tests.browser.conftest import login
from tests.diagnostics.media_helpers import order_setup, sample
from yilianti.diagnostics.ecg import service as ecg
from yilianti.diagnostics.imaging.service import window_level


def _slices(tmp_path, accession: str) -> list[str]:  # type: ignore[no-untyped-def]
    study, series = generate_uid(), generate_uid()
    paths = []
    for n in (1, 2):
        ds = pydicom.dcmread(sample("CT_small.dcm"))
        ds.AccessionNumber = accession
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n
        if n == 2:
            ds.PixelData = (ds.pixel_array // 2).astype(ds.pixel_array.dtype).tobytes()
        path = tmp_path / f"slice{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(str(path))
    return paths


def test_viewer_presets_scrolling_measurement_and_ecg(live_server, page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ct = live_server.seed(lambda db: order_setup(db, kind="imaging", modality="CT"))
    ecg_order = live_server.seed(lambda db: order_setup(db, kind="ecg", modality="ECG"))
    base = live_server.url
    login(page, base, ct.reader, b.PASSWORD)

    page.goto(f"{base}/diagnostics/orders/{ct.order_id}/images")
    page.set_input_files("#dicom-files", _slices(tmp_path, ct.accession))
    page.click("#dicom-upload-form button[type=submit]")
    page.wait_for_selector("#viewer-canvas[data-loaded='0']")
    assert page.locator("tr.upload-stored").count() == 2
    assert page.inner_text("#slice-info").strip() == "1 / 2"

    page.click("#preset-lung")
    assert page.inner_text("#wl-info").strip() == "W 1500 L -600"
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    for x, y in [(64, 64), (10, 100), (100, 30)]:
        stored = page.evaluate(f"ylViewer.storedAt({x}, {y})")
        assert stored == int(ds.pixel_array[y, x])
        expected = window_level(stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept), -600, 1500)
        assert page.evaluate(f"ylViewer.pixelAt({x}, {y})") == expected

    page.focus("#viewer-canvas")
    page.keyboard.press("ArrowDown")
    page.wait_for_selector("#viewer-canvas[data-loaded='1']")
    assert page.inner_text("#slice-info").strip() == "2 / 2"
    assert page.inner_text("#wl-info").strip() == "W 1500 L -600"  # the chosen window stays while scrolling
    assert page.evaluate("ylViewer.storedAt(64, 64)") == int(ds.pixel_array[64, 64]) // 2
    page.hover("#viewer-canvas")
    page.mouse.wheel(0, -120)
    page.wait_for_function("document.getElementById('slice-info').textContent.indexOf('1 / 2') === 0")

    if os.environ.get("YILIANTI_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["YILIANTI_SCREENSHOTS"], "viewer.png"), full_page=True)
    page.click("#tool-measure")
    box = page.locator("#viewer-canvas").bounding_box()
    scale = box["width"] / 128
    page.mouse.click(box["x"] + 10 * scale, box["y"] + 20 * scale)
    page.mouse.click(box["x"] + 60 * scale, box["y"] + 20 * scale)
    text = page.inner_text("#measure-info")
    mm = float(re.search(r"([\d.]+) mm", text).group(1))  # type: ignore[union-attr]
    assert mm == pytest.approx(50 * float(ds.PixelSpacing[1]), abs=0.5)

    response = page.goto(f"{base}/diagnostics/orders/{ecg_order.order_id}/ecg")
    assert response is not None and response.status == 404  # another centre's patient: not visible
    page.context.clear_cookies()
    login(page, base, ecg_order.reader, b.PASSWORD)
    page.goto(f"{base}/diagnostics/orders/{ecg_order.order_id}/ecg")
    assert page.locator("#no-ecg").count() == 1
    page.set_input_files("#ecg-file", str(sample("waveform_ecg.dcm")))
    page.click("#ecg-import-form button[type=submit]")
    page.wait_for_selector("#ecg-paper")
    leads = set(page.eval_on_selector_all("#ecg-paper g.ecg-lead", "els => els.map(e => e.getAttribute('data-lead'))"))
    assert {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"} <= leads
    assert page.locator("#ecg-paper .ecg-cal").count() == 4
    # 25 mm/s: 10 s of rhythm strip + 10 mm calibration area = 260 mm wide
    assert page.get_attribute("#ecg-paper", "width") == "260.0mm"
    rate = int(page.input_value("#m-heart_rate"))
    assert 55 <= rate <= 65
    assert page.input_value("#m-pr_ms") == "161"  # the cart's own measurement, editable
    page.fill("#m-qt_ms", "400")
    page.fill("#m-qtc_ms", "")  # empty: Bazett from QT and RR
    page.fill("#m-conclusion", "窦性心律，正常心电图")
    page.click("#ecg-reading-form button[type=submit]")
    page.wait_for_selector("#ecg-saved")
    assert page.input_value("#m-qtc_ms") == str(ecg.qtc_bazett(400, 60000 / rate))
    assert page.input_value("#m-conclusion") == "窦性心律，正常心电图"
    page.screenshot(path=str(tmp_path / "ecg.png"), full_page=True)
    if os.environ.get("YILIANTI_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["YILIANTI_SCREENSHOTS"], "ecg.png"), full_page=True)


def test_jpeg_ls_renders_and_an_undecodable_compression_is_explained(live_server, page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.diagnostics.test_imaging_codecs import mpeg2_instance

    mr = live_server.seed(lambda db: order_setup(db, kind="imaging", modality="MR"))
    study, series = generate_uid(), generate_uid()
    ds = pydicom.dcmread(sample("MR_small_jpeg_ls_lossless.dcm"))  # JPEG-LS lossless
    ds.AccessionNumber, ds.InstanceNumber = mr.accession, 1
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(tmp_path / "jls.dcm", enforce_file_format=True)
    video = pydicom.dcmread(__import__("io").BytesIO(mpeg2_instance(mr.accession, study)))
    video.SeriesInstanceUID, video.InstanceNumber = series, 2
    video.save_as(tmp_path / "video.dcm", enforce_file_format=True)

    base = live_server.url
    login(page, base, mr.reader, b.PASSWORD)
    page.context.add_cookies([{"name": "lang", "value": "en", "url": base}])
    page.goto(f"{base}/diagnostics/orders/{mr.order_id}/images")
    page.set_input_files("#dicom-files", [str(tmp_path / "jls.dcm"), str(tmp_path / "video.dcm")])
    page.click("#dicom-upload-form button[type=submit]")
    page.wait_for_selector("#viewer-canvas[data-loaded='0']")
    assert page.locator("tr.upload-stored").count() == 2  # both kept, the video one too
    original = pydicom.dcmread(sample("MR_small.dcm")).pixel_array
    for x, y in [(32, 32), (5, 50), (60, 10)]:
        assert page.evaluate(f"ylViewer.storedAt({x}, {y})") == int(original[y, x])
    assert not page.is_visible("#viewer-message")

    page.focus("#viewer-canvas")
    page.keyboard.press("ArrowDown")
    page.wait_for_selector("#viewer-message", state="visible")
    text = page.inner_text("#viewer-message")
    assert "cannot be displayed in the browser" in text and "1.2.840.10008.1.2.4.100" in text
    assert "open the study in the PACS" in text
