"""Compressed instances in the viewer: JPEG-LS (pyjpegls / CharLS) and JPEG lossless (python-gdcm) render
with the original pixel values through the frame endpoint; a compression nobody here decodes is still
stored and forwarded, and the viewer gets a translated "open it in the PACS" message."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, generate_uid
from sqlalchemy import select

from tests import builders as b
from tests.diagnostics.media_helpers import Setup, order_setup, sample
from yilianti.config import get_settings
from yilianti.diagnostics.imaging import service as imaging
from yilianti.models.diagnostics import ImagingInstance
from yilianti.models.diagnostics_media import OrthancForward

DTYPES = {"int16": "<i2", "uint16": "<u2", "float32": "<f4"}


def relabelled(name: str, accession: str) -> bytes:
    """A pydicom sample file as a new instance of the order (new UIDs, same compressed pixels)."""
    ds = pydicom.dcmread(sample(name))
    ds.AccessionNumber = accession
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def mpeg2_instance(accession: str, study_uid: str) -> bytes:
    """MR_small with its pixels replaced by an (encapsulated) MPEG-2 stream: no decoder here reads it."""
    ds = pydicom.dcmread(sample("MR_small.dcm"))
    ds.AccessionNumber = accession
    ds.StudyInstanceUID, ds.SOPInstanceUID = study_uid, generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture
def setup(db) -> Setup:  # type: ignore[no-untyped-def]
    return order_setup(db, kind="imaging", modality="MR")


def _upload(client, setup: Setup, token: str, name: str, data: bytes) -> int:  # type: ignore[no-untyped-def]
    r = client.post(f"/api/v1/diagnostics/orders/{setup.order_id}/dicom", headers={"X-CSRF-Token": token},
                    files=[("files", (name, data, "application/dicom"))])
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["stored"] == 1
    study_id = r.json()["results"][0]["study_id"]
    studies = client.get(f"/api/v1/diagnostics/orders/{setup.order_id}/studies").json()
    study = next(s for s in studies if s["id"] == study_id)
    return int(study["series"][0]["images"][0]["instance_id"])


def _frame(client, instance_id: int) -> tuple[dict[str, Any], np.ndarray]:  # type: ignore[no-untyped-def,type-arg]
    r = client.get(f"/api/v1/diagnostics/instances/{instance_id}/frames/0")
    assert r.status_code == 200, r.text
    header, raw = imaging.unpack(r.content)
    if header["dtype"] == "rgb8":
        return header, np.frombuffer(raw, np.uint8).reshape(header["rows"], header["columns"], 3)
    return header, np.frombuffer(raw, DTYPES[header["dtype"]]).reshape(header["rows"], header["columns"])


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm"])
def test_jpeg_ls_lossless_renders_the_original_pixels(client, db, setup, name) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, setup.reader)
    instance_id = _upload(client, setup, token, "jls.dcm", relabelled(name, setup.accession))
    header, pixels = _frame(client, instance_id)
    original = pydicom.dcmread(sample("MR_small.dcm"))  # the same image, uncompressed
    assert header["dtype"] == "int16" and (header["rows"], header["columns"]) == (64, 64)
    assert np.array_equal(pixels, original.pixel_array)
    png = client.get(f"/api/v1/diagnostics/instances/{instance_id}/frames/0/preview.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"


def test_jpeg_ls_near_lossless_16_bit_stays_within_its_bound(client, db, setup) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, setup.reader)
    instance_id = _upload(client, setup, token, "nl.dcm", relabelled("JPEGLSNearLossless_16.dcm", setup.accession))
    header, pixels = _frame(client, instance_id)
    ds = pydicom.dcmread(sample("JPEGLSNearLossless_16.dcm"))
    assert str(ds.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.81"
    assert (header["rows"], header["columns"]) == (int(ds.Rows), int(ds.Columns))
    assert np.array_equal(pixels.astype(np.int64), ds.pixel_array.astype(np.int64))
    assert int(pixels.max()) > 255  # real 16-bit values came through, not a byte image


def test_jpeg_lossless_process_14_renders_the_original_pixels(client, db, setup) -> None:  # type: ignore[no-untyped-def]
    # SC_rgb_jpeg_gdcm.dcm is pydicom's colour-bar test image in JPEG lossless SV1 (1.2.840.10008.1.2.4.70)
    token = b.login(client, setup.reader)
    instance_id = _upload(client, setup, token, "ll.dcm", relabelled("SC_rgb_jpeg_gdcm.dcm", setup.accession))
    header, rgb = _frame(client, instance_id)
    assert header["dtype"] == "rgb8" and rgb.shape == (100, 100, 3)
    bars = {5: (255, 0, 0), 15: (255, 128, 128), 25: (0, 255, 0), 35: (128, 255, 128), 45: (0, 0, 255),
            55: (128, 128, 255), 65: (0, 0, 0), 75: (64, 64, 64), 85: (192, 192, 192), 95: (255, 255, 255)}
    for row, colour in bars.items():
        assert tuple(int(v) for v in rgb[row, 50]) == colour, row


def test_jpeg_lossless_16_bit_ct_matches_the_uncompressed_values(client, db, setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """CT_small (signed 16-bit HU) compressed with GDCM to JPEG lossless process 14 decodes to the same values."""
    gdcm = pytest.importorskip("gdcm")
    reader = gdcm.ImageReader()
    reader.SetFileName(str(sample("CT_small.dcm")))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    writer.SetFileName(str(tmp_path / "ct_ll.dcm"))
    assert writer.Write()
    ds = pydicom.dcmread(tmp_path / "ct_ll.dcm")
    assert str(ds.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.70"
    ds.AccessionNumber = setup.accession
    ds.StudyInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)

    token = b.login(client, setup.reader)
    instance_id = _upload(client, setup, token, "ct.dcm", buf.getvalue())
    header, pixels = _frame(client, instance_id)
    assert np.array_equal(pixels, pydicom.dcmread(sample("CT_small.dcm")).pixel_array)
    assert header["slope"] == 1.0 and header["intercept"] == -1024.0


def test_undecodable_compression_is_stored_forwarded_and_explained(client, db, setup, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    token = b.login(client, setup.reader)
    instance_id = _upload(client, setup, token, "video.dcm", mpeg2_instance(setup.accession, generate_uid()))
    inst = db.get(ImagingInstance, instance_id)
    assert inst is not None and pydicom.dcmread(inst.path).file_meta.TransferSyntaxUID == MPEG2MPML

    r = client.get(f"/api/v1/diagnostics/instances/{instance_id}/frames/0")  # Chinese by default
    assert r.status_code == 415 and r.json()["error"] == "pixel_data_not_decodable"
    assert "请在 PACS 中打开" in r.json()["message"] and "1.2.840.10008.1.2.4.100" in r.json()["message"]
    client.cookies.set("lang", "en")
    r = client.get(f"/api/v1/diagnostics/instances/{instance_id}/frames/0")
    assert r.status_code == 415
    assert r.json()["message"].startswith("This compression cannot be displayed in the browser (transfer syntax MPEG2")
    assert "1.2.840.10008.1.2.4.100" in r.json()["message"] and "open the study in the PACS" in r.json()["message"]
    client.cookies.delete("lang")
    # the viewer page still lists it (the browser shows the message for that image)
    page = client.get(f"/diagnostics/orders/{setup.order_id}/images")
    assert page.status_code == 200 and f'"instance_id": {instance_id}' in page.text

    # and the Orthanc forwarder sends the file unchanged, as it does any other instance
    received: list[bytes] = []

    def orthanc(request: httpx.Request) -> httpx.Response:
        received.append(request.content)
        return httpx.Response(200, json={"ID": "abc", "ParentStudy": "study-1"})

    real_client = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda **kw: real_client(transport=httpx.MockTransport(orthanc), **kw))
    monkeypatch.setattr(get_settings(), "orthanc_url", "http://127.0.0.1:8042")
    imaging.forward_pending(db, limit=1000)
    mark = db.scalar(select(OrthancForward).where(OrthancForward.instance_id == instance_id))
    assert mark is not None and mark.status == "sent"
    assert open(inst.path, "rb").read() in received  # noqa: SIM115
