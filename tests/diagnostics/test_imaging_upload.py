"""Web upload of DICOM files (several files or a zip) to an order: stored, quarantined or rejected (4xx)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from tests import builders as b
from tests.diagnostics.media_helpers import Setup, order_setup, sample
from yilianti.models.diagnostics import DiagnosticOrder, ImagingInstance, ImagingStudy, InboundMessage


def ct_bytes(accession: str | None, study_uid: str | None = None, number: int = 1) -> tuple[bytes, str]:
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    if accession is None:
        del ds.AccessionNumber
    else:
        ds.AccessionNumber = accession
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = number
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue(), str(ds.SOPInstanceUID)


@pytest.fixture
def setup(db) -> Setup:  # type: ignore[no-untyped-def]
    return order_setup(db, kind="imaging", modality="CT")


def test_files_and_a_zip_are_stored_and_linked(client, db, setup) -> None:  # type: ignore[no-untyped-def]

    token = b.login(client, setup.reader)
    study = generate_uid()
    one, uid1 = ct_bytes(setup.accession, study, 1)
    two, uid2 = ct_bytes(setup.accession, study, 2)
    three, uid3 = ct_bytes(None, study, 3)  # no accession: the order's page names it
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("series/IM3", three)
        zf.writestr("DICOMDIR", b"ignored")
    r = client.post(f"/api/v1/diagnostics/orders/{setup.order_id}/dicom", headers={"X-CSRF-Token": token},
                    files=[("files", ("1.dcm", one, "application/dicom")), ("files", ("2.dcm", two, "application/dicom")),
                           ("files", ("more.zip", zipped.getvalue(), "application/zip"))])
    assert r.status_code == 200, r.text
    assert r.json()["counts"] == {"stored": 3, "quarantined": 0, "rejected": 0}
    st = db.scalar(select(ImagingStudy).where(ImagingStudy.study_instance_uid == study))
    assert st is not None and st.order_id == setup.order_id and st.instance_count == 3
    paths = {i.sop_instance_uid: i.path for i in db.scalars(select(ImagingInstance).where(ImagingInstance.study_id == st.id))}
    assert set(paths) == {uid1, uid2, uid3}
    assert pydicom.dcmread(paths[uid3]).AccessionNumber == setup.accession
    order = db.get(DiagnosticOrder, setup.order_id)
    assert order is not None and order.status != "ordered"


def test_non_dicom_is_rejected_with_422_and_kept_in_quarantine(client, db, setup) -> None:  # type: ignore[no-untyped-def]

    token = b.login(client, setup.reader)
    good, uid = ct_bytes(setup.accession)
    corrupt = good[:400]  # a truncated DICOM file
    r = client.post(f"/api/v1/diagnostics/orders/{setup.order_id}/dicom", headers={"X-CSRF-Token": token},
                    files=[("files", ("notes.txt", b"not an image at all", "text/plain")),
                           ("files", ("cut.dcm", corrupt, "application/dicom")),
                           ("files", ("ok.dcm", good, "application/dicom"))])
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "dicom_rejected" and set(body["fields"]) == {"notes.txt", "cut.dcm"}
    assert "不是 DICOM" in body["fields"]["notes.txt"]
    assert set(body) == {"error", "message", "fields"} and "已保存 1 个，待匹配 0 个" in body["message"]
    rejected = db.scalars(select(InboundMessage).where(InboundMessage.order_id == setup.order_id,
                                                       InboundMessage.status == "rejected")).all()
    assert len(rejected) == 2
    kept = {Path(m.path).read_bytes() for m in rejected if m.path}
    assert b"not an image at all" in kept and corrupt in kept  # nothing silently dropped
    assert db.scalar(select(ImagingInstance).where(ImagingInstance.sop_instance_uid == uid)) is not None


def test_another_orders_accession_is_quarantined(client, db, setup) -> None:  # type: ignore[no-untyped-def]

    token = b.login(client, setup.reader)
    data, uid = ct_bytes("SOMEONE-ELSE-1")
    r = client.post(f"/api/v1/diagnostics/orders/{setup.order_id}/dicom", headers={"X-CSRF-Token": token},
                    files=[("files", ("x.dcm", data, "application/dicom"))])
    assert r.status_code == 200 and r.json()["counts"]["quarantined"] == 1
    msg = db.scalar(select(InboundMessage).where(InboundMessage.control_id == uid))
    assert msg is not None and msg.status == "quarantined" and "不符" in (msg.reason or "")
    assert db.scalar(select(ImagingInstance).where(ImagingInstance.sop_instance_uid == uid)) is None


def test_upload_form_on_the_viewer_page(client, db, setup) -> None:  # type: ignore[no-untyped-def]

    token = b.login(client, setup.reader)
    page = client.get(f"/diagnostics/orders/{setup.order_id}/images")
    assert page.status_code == 200 and 'id="dicom-upload-form"' in page.text and 'id="no-study"' in page.text
    data, _ = ct_bytes(setup.accession)
    r = client.post(f"/diagnostics/orders/{setup.order_id}/images",
                    data={"csrf_token": token}, files=[("files", ("a.dcm", data, "application/dicom")),
                                                      ("files", ("b.txt", b"hello", "text/plain"))])
    assert r.status_code == 422
    assert 'class="upload-stored"' in r.text and 'class="upload-rejected"' in r.text
    assert 'id="viewer-canvas"' in r.text  # the stored image is in the viewer at once


def test_outsider_cannot_upload(client, db, setup) -> None:  # type: ignore[no-untyped-def]

    token = b.login(client, setup.outsider)
    data, _ = ct_bytes(setup.accession)
    r = client.post(f"/api/v1/diagnostics/orders/{setup.order_id}/dicom", headers={"X-CSRF-Token": token},
                    files=[("files", ("a.dcm", data, "application/dicom"))])
    assert r.status_code == 404


def test_media_include_shows_the_key_image(client, db, setup) -> None:  # type: ignore[no-untyped-def]
    from yilianti.models.diagnostics import DiagnosticOrder
    from yilianti.web.render import environment

    token = b.login(client, setup.reader)
    assert client.get(f"/diagnostics/orders/{setup.order_id}/images/key.png").status_code == 404  # nothing yet
    data, _ = ct_bytes(setup.accession)
    client.post(f"/api/v1/diagnostics/orders/{setup.order_id}/dicom", headers={"X-CSRF-Token": token},
                files=[("files", ("a.dcm", data, "application/dicom"))])
    png = client.get(f"/diagnostics/orders/{setup.order_id}/images/key.png?size=64")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    html = environment("zh").get_template("diagnostics/_media.html").render(order=db.get(DiagnosticOrder, setup.order_id))
    assert f'href="/diagnostics/orders/{setup.order_id}/images"' in html and "key.png" in html
