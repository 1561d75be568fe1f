"""The OHIF viewer (installed by `make ohif`) opens the demo's head CT from the order page, over our /dicomweb.

Skipped with a notice when OHIF is not installed (it is optional: `make ohif` fetches npm @ohif/app).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from tests import builders as b
from tests.browser.conftest import login
from tests.diagnostics.media_helpers import order_setup
from yilianti.config import get_settings
from yilianti.demo.diagnostics_media import ct_series
from yilianti.diagnostics.imaging.service import storage_dir, write_file
from yilianti.diagnostics.receivers import ingest
from yilianti.diagnostics.receivers.dicom import instance_path

OHIF_DIR = Path(os.environ.get("YILIANTI_OHIF_DIR") or Path(__file__).resolve().parents[2] / "var" / "ohif")

pytestmark = pytest.mark.skipif(not (OHIF_DIR / "index.html").is_file(),
                                reason=f"NOTICE: OHIF browser test skipped: OHIF not installed in {OHIF_DIR} (make ohif)")


def _demo_ct(db: Any) -> Any:
    setup = order_setup(db, kind="imaging", modality="CT")
    for ds in ct_series(setup.accession, "head", patient_name="DEMO", patient_id="QK0001"):
        path = instance_path(storage_dir(), str(ds.StudyInstanceUID), str(ds.SOPInstanceUID))
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        write_file(path, buf.getvalue())
        ingest.ingest_dicom(db, ds, path, calling_ae="DEMO_CT")
    return setup


def test_ohif_opens_the_demo_ct_from_the_order_page(live_server, page, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(get_settings(), "ohif_dir", OHIF_DIR)
    ct = live_server.seed(_demo_ct)
    base = live_server.url
    login(page, base, ct.reader, b.PASSWORD)
    page.goto(f"{base}/diagnostics/orders/{ct.order_id}")
    link = page.locator("#media-ohif-link")
    assert link.inner_text().strip() == "在 OHIF 中打开"
    if os.environ.get("YILIANTI_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["YILIANTI_SCREENSHOTS"], "order-ohif-link.png"), full_page=True)
    href = link.get_attribute("href")
    assert href and href.startswith("/ohif/viewer?StudyInstanceUIDs=")

    answers: list[tuple[int, str]] = []
    page.on("response", lambda r: answers.append((r.status, r.url)) if "/dicomweb/" in r.url else None)
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((base, "data:", "blob:")) else None)
    page.set_default_timeout(90000)
    page.goto(f"{base}{href}")
    page.wait_for_function("""() => [...document.querySelectorAll('canvas')].some(c => {
        if (c.width < 64 || c.height < 64) return false;
        try {
          const g = c.getContext('2d'); if (!g) return true;  // a WebGL canvas: drawn by the GPU path
          const d = g.getImageData(0, 0, c.width, c.height).data;
          for (let i = 0; i < d.length; i += 4 * 97) if (d[i] > 40) return true;
        } catch (e) { return true; }
        return false; })""")
    frames = [(s, u) for s, u in answers if "/frames/" in u]
    # the patient's other studies (OHIF's priors) are searched by PatientID sent as a tag: ours only
    priors = [u for s, u in answers if "/studies?" in u and "00100020=QK0001" in u and s == 200]
    assert priors, answers[:20]
    assert frames and all(s == 200 for s, _ in frames), answers[:20]
    assert any("/metadata" in u and s == 200 for s, u in answers)
    assert not outside, outside[:5]  # no CDN, no public server
    if os.environ.get("YILIANTI_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["YILIANTI_SCREENSHOTS"], "ohif.png"))

    # OHIF's study list searches our QIDO-RS: the order's study is listed with its patient and description
    page.goto(f"{base}/ohif/")
    page.wait_for_selector("text=头颅CT平扫")
    if os.environ.get("YILIANTI_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["YILIANTI_SCREENSHOTS"], "ohif-list.png"))

