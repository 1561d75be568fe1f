"""dcmtk storescu → our C-STORE receiver → the viewer API: the pixels the browser gets are pydicom's."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.diagnostics.conftest import free_port
from tests.diagnostics.media_helpers import Setup, committed_setup, logged_in, sample
from yilianti.diagnostics.imaging import service as imaging
from yilianti.diagnostics.receivers.dicom import DicomReceiver
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent

DTYPES = {"int16": "<i2", "uint16": "<u2", "float32": "<f4"}


@pytest.fixture(scope="module")
def receiver(committed: sessionmaker[Session], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DicomReceiver]:
    rx = DicomReceiver(committed, "127.0.0.1", free_port(), "YILIANTI",
                       tmp_path_factory.mktemp("var") / "dicom").start()
    yield rx
    rx.stop()


@pytest.fixture(scope="module")
def app(committed):  # type: ignore[no-untyped-def]
    from yilianti.main import create_app

    return create_app(run_jobs=False)


def _decode(body: bytes) -> tuple[dict, np.ndarray]:  # type: ignore[type-arg]
    header, raw = imaging.unpack(body)
    pixels = np.frombuffer(raw, dtype=DTYPES[header["dtype"]]).reshape(header["rows"], header["columns"])
    return header, pixels


@pytest.fixture(scope="module")
def sent(committed, receiver, tmp_path_factory) -> tuple[Setup, list[pydicom.Dataset]]:  # type: ignore[no-untyped-def]
    if shutil.which("storescu") is None:
        pytest.skip("Debian dcmtk (storescu) not installed")
    s = committed_setup(committed, kind="imaging", modality="CT")
    study_uid, series_uid = generate_uid(), generate_uid()
    folder = tmp_path_factory.mktemp("send")
    sent = []
    for n in (2, 1):  # sent out of order: the viewer sorts by InstanceNumber
        ds = pydicom.dcmread(sample("CT_small.dcm"))
        ds.AccessionNumber = s.accession
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n
        if n == 2:  # a different image: shift the stored values
            arr = ds.pixel_array.astype(np.int16) + 100
            ds.PixelData = arr.tobytes()
        ds.save_as(folder / f"{n}.dcm", enforce_file_format=True)
        sent.append(ds)
    done = subprocess.run(["storescu", "-aet", "QUKOU_CT", "-aec", "YILIANTI", "127.0.0.1", str(receiver.port),
                           str(folder / "2.dcm"), str(folder / "1.dcm")], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return s, sorted(sent, key=lambda d: int(d.InstanceNumber))


def test_storescu_study_pixels_match_pydicom(app, sent) -> None:  # type: ignore[no-untyped-def]
    s, datasets = sent
    client, _ = logged_in(app, s.reader)
    studies = client.get(f"/api/v1/diagnostics/orders/{s.order_id}/studies").json()
    assert len(studies) == 1 and studies[0]["instance_count"] == 2
    (series,) = studies[0]["series"]
    assert [i["number"] for i in series["images"]] == [1, 2]
    for image, ds in zip(series["images"], datasets, strict=True):
        r = client.get(f"/api/v1/diagnostics/instances/{image['instance_id']}/frames/0")
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        header, pixels = _decode(r.content)
        assert np.array_equal(pixels, ds.pixel_array)  # exactly what pydicom decodes
        assert (header["rows"], header["columns"]) == (128, 128)
        assert header["slope"] == float(ds.RescaleSlope) and header["intercept"] == float(ds.RescaleIntercept)
        values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert "WindowCenter" not in ds  # no window in the file: the default spans the values
        assert header["window_center"] == (values.min() + values.max()) / 2
        assert header["window_width"] == values.max() - values.min()
        assert header["pixel_spacing"] == [float(v) for v in ds.PixelSpacing]
        assert header["invert"] is False


def test_frame_reads_are_audited_once_per_study_and_outsiders_get_404(app, sent, committed) -> None:  # type: ignore[no-untyped-def]
    s, _ = sent
    reader, _ = logged_in(app, s.reader)
    study = reader.get(f"/api/v1/diagnostics/orders/{s.order_id}/studies").json()[0]
    instance_id = study["series"][0]["images"][0]["instance_id"]

    def frame_audits() -> int:
        with committed() as db:
            return int(db.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "diagnostics.image_view", AuditEvent.resource_type == "imaging_study",
                AuditEvent.resource_id == str(study["id"]))) or 0)

    before = frame_audits()
    # later than any earlier test's read of this study: the first frame opens a new audit window
    with clock.frozen(clock.now() + timedelta(minutes=11)):
        assert reader.get(f"/api/v1/diagnostics/instances/{instance_id}/frames/0").status_code == 200
        assert frame_audits() == before + 1
        # scrolling on through the study within the window adds no row per image
        clock.advance(timedelta(minutes=5))
        assert reader.get(f"/api/v1/diagnostics/instances/{instance_id}/frames/0").status_code == 200
        assert frame_audits() == before + 1
        clock.advance(timedelta(minutes=6))
        assert reader.get(f"/api/v1/diagnostics/instances/{instance_id}/frames/0").status_code == 200
        assert frame_audits() == before + 2
    outsider, _ = logged_in(app, s.outsider)
    assert outsider.get(f"/api/v1/diagnostics/instances/{instance_id}/frames/0").status_code == 404
    assert outsider.get(f"/api/v1/diagnostics/orders/{s.order_id}/studies").status_code == 404
    assert outsider.get(f"/diagnostics/orders/{s.order_id}/images").status_code == 404
    anonymous = TestClient(app)
    assert anonymous.get(f"/api/v1/diagnostics/instances/{instance_id}/frames/0").status_code == 401


def test_viewer_page_lists_the_series_and_presets(app, sent) -> None:  # type: ignore[no-untyped-def]
    s, _ = sent
    client, _ = logged_in(app, s.reader)
    page = client.get(f"/diagnostics/orders/{s.order_id}/images")
    assert page.status_code == 200
    for preset in ("preset-lung", "preset-mediastinum", "preset-bone", "preset-brain", "viewer-canvas",
                   "/static/js/viewer.js", 'data-ww="1500"', 'data-wc="-600"'):
        assert preset in page.text
    assert client.get("/static/js/viewer.js").status_code == 200


def test_preview_png_uses_the_window(app, sent) -> None:  # type: ignore[no-untyped-def]
    import io

    from PIL import Image

    s, datasets = sent
    client, _ = logged_in(app, s.reader)
    instance_id = client.get(f"/api/v1/diagnostics/orders/{s.order_id}/studies").json()[0]["series"][0][
        "images"][0]["instance_id"]
    r = client.get(f"/api/v1/diagnostics/instances/{instance_id}/frames/0/preview.png?wc=-600&ww=1500")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(r.content)))
    ds = datasets[0]
    values = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.array_equal(img, imaging.apply_window(values, -600, 1500))


@pytest.mark.parametrize(("name", "same_as"), [("MR_small_RLE.dcm", "MR_small.dcm"),
                                               ("MR_small_jp2klossless.dcm", "MR_small.dcm")])
def test_compressed_lossless_images_decode_to_the_original(name: str, same_as: str) -> None:
    header, raw = imaging.frame(str(sample(name)))
    pixels = np.frombuffer(raw, dtype=DTYPES[header["dtype"]]).reshape(header["rows"], header["columns"])
    assert np.array_equal(pixels, pydicom.dcmread(sample(same_as)).pixel_array)


def test_undecodable_transfer_syntax_says_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.diagnostics.test_imaging_codecs import mpeg2_instance

    path = tmp_path / "video.dcm"
    path.write_bytes(mpeg2_instance("X", generate_uid()))
    with pytest.raises(imaging.NotDecodable) as err:
        imaging.frame(str(path))
    assert err.value.status == 415 and "MPEG2" in err.value.params["syntax"]


def test_monochrome1_is_flagged_for_inversion(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = pydicom.dcmread(sample("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    header, _ = imaging.frame(str(tmp_path / "m1.dcm"))
    assert header["invert"] is True
    png = imaging.preview_png(str(tmp_path / "m1.dcm"), 0, 600, 1600)
    import io

    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)))
    values = ds.pixel_array.astype(np.float64)
    assert np.array_equal(img, 255 - imaging.apply_window(values, 600, 1600))


def test_multi_frame_instance_serves_each_frame() -> None:
    ds = pydicom.dcmread(sample("SC_rgb_rle_2frame.dcm"))
    for n in (0, 1):
        header, raw = imaging.frame(str(sample("SC_rgb_rle_2frame.dcm")), n)
        assert header["dtype"] == "rgb8" and header["frames"] == 2
        assert np.array_equal(np.frombuffer(raw, np.uint8).reshape(100, 100, 3), ds.pixel_array[n])
    with pytest.raises(imaging.NotDecodable) as err:
        imaging.frame(str(sample("SC_rgb_rle_2frame.dcm")), 2)
    assert err.value.status == 404
