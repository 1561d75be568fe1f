"""Demo images and ECG: 马文静 (xianghe-reader) opens today's CT in the viewer and the ECG on the paper grid."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti.demo import diagnostics_media as demo
from yilianti.demo import loader
from yilianti.diagnostics.imaging import service as imaging
from yilianti.models.diagnostics import DiagnosticOrder, ImagingStudy
from yilianti.models.diagnostics_media import EcgRecording


def test_todays_ct_and_ecg_orders_have_their_media(db: Session) -> None:
    assert demo.is_loaded(db)
    cts = db.scalars(select(DiagnosticOrder).where(DiagnosticOrder.item_code.in_(("CT-HEAD", "CT-CHEST")),
                                                   DiagnosticOrder.status.in_(demo.OPEN))).all()
    assert cts
    for order in cts:
        study = db.scalar(select(ImagingStudy).where(ImagingStudy.order_id == order.id))
        assert study is not None and study.instance_count == demo.SLICES and study.modality == "CT"
    ecgs = db.scalars(select(DiagnosticOrder).where(DiagnosticOrder.item_code == "ECG-12",
                                                    DiagnosticOrder.status.in_(demo.OPEN))).all()
    assert ecgs and all(db.scalar(select(EcgRecording).where(EcgRecording.order_id == o.id)) for o in ecgs)


def test_phantom_is_in_hounsfield_units() -> None:
    chest = demo.ct_series("X", "chest")[demo.SLICES // 2]
    hu = chest.pixel_array.astype(np.float64) + float(chest.RescaleIntercept)
    centre = demo.SIZE // 2
    assert -900 < hu[centre - 4, centre - 52] < -800  # lung
    assert 600 < hu[centre + 58, centre + 12] < 800  # cortex of the vertebral body
    assert 200 < hu[centre + 58, centre] < 300  # cancellous bone
    assert imaging.window_level(-850, -600, 1500) < 100 < imaging.window_level(40, -600, 1500)


def test_reader_opens_the_demo_ct_and_ecg(db: Session, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "xianghe-reader", loader.DEMO_PASSWORD)
    ct = db.scalar(select(DiagnosticOrder).where(DiagnosticOrder.item_code == "CT-CHEST",
                                                 DiagnosticOrder.status.in_(demo.OPEN)))
    assert ct is not None
    page = client.get(f"/diagnostics/orders/{ct.id}/images")
    assert page.status_code == 200 and 'id="viewer-canvas"' in page.text
    studies = client.get(f"/api/v1/diagnostics/orders/{ct.id}/studies").json()
    image = studies[0]["series"][0]["images"][0]
    r = client.get(f"/api/v1/diagnostics/instances/{image['instance_id']}/frames/0")
    header, _ = imaging.unpack(r.content)
    assert r.status_code == 200 and header["pixel_spacing"] == [demo.SPACING, demo.SPACING]
    ecg_order = db.scalar(select(DiagnosticOrder).where(DiagnosticOrder.item_code == "ECG-12",
                                                        DiagnosticOrder.status.in_(demo.OPEN)))
    assert ecg_order is not None
    page = client.get(f"/diagnostics/orders/{ecg_order.id}/ecg")
    assert page.status_code == 200 and page.text.count('class="ecg-lead"') == 13
