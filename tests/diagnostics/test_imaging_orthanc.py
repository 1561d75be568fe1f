"""Forwarding received instances to Orthanc (YILIANTI_ORTHANC_URL) — against a real Orthanc when installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from tests.diagnostics.conftest import free_port
from tests.diagnostics.media_helpers import order_setup, sample
from yilianti.config import get_settings
from yilianti.diagnostics.imaging import service as imaging
from yilianti.diagnostics.receivers import ingest
from yilianti.models.diagnostics import ImagingInstance, ImagingStudy
from yilianti.models.diagnostics_media import OrthancForward

ORTHANC = shutil.which("Orthanc") or shutil.which("/usr/sbin/Orthanc")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not ORTHANC:
        pytest.skip("Debian orthanc not installed (apt-get install orthanc)")
    root = tmp_path_factory.mktemp("orthanc")
    port = free_port()
    config = {"Name": "YILIANTI-TEST", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
              "HttpPort": port, "DicomPort": free_port(), "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "Plugins": [], "DicomServerEnabled": False}
    (root / "orthanc.json").write_text(json.dumps(config))
    proc = subprocess.Popen([ORTHANC, str(root / "orthanc.json")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/system", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("Orthanc did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def orthanc_setting(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    settings = get_settings()

    def use(url: str) -> None:
        monkeypatch.setattr(settings, "orthanc_url", url)

    return use


def _received(db, tmp_path):  # type: ignore[no-untyped-def]
    s = order_setup(db, kind="imaging", modality="CT")
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    ds.AccessionNumber = s.accession
    ds.StudyInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = tmp_path / "ct.dcm"
    ds.save_as(path, enforce_file_format=True)
    ingest.ingest_dicom(db, ds, path, calling_ae="QUKOU_CT")
    return ds


def test_nothing_happens_without_the_setting(db, tmp_path, orthanc_setting) -> None:  # type: ignore[no-untyped-def]
    orthanc_setting("")
    _received(db, tmp_path)
    assert imaging.forward_pending(db) == 0


def test_unreachable_orthanc_is_marked_and_retried(db, tmp_path, orthanc_setting) -> None:  # type: ignore[no-untyped-def]
    orthanc_setting(f"http://127.0.0.1:{free_port()}")
    ds = _received(db, tmp_path)
    imaging.forward_pending(db)
    inst = db.scalar(select(ImagingInstance).where(ImagingInstance.sop_instance_uid == ds.SOPInstanceUID))
    mark = db.scalar(select(OrthancForward).where(OrthancForward.instance_id == inst.id))
    assert mark is not None and mark.status == "failed" and mark.attempts == 1 and mark.error
    imaging.forward_pending(db)
    assert mark.attempts == 2


def test_instances_reach_a_real_orthanc(db, tmp_path, orthanc, orthanc_setting) -> None:  # type: ignore[no-untyped-def]
    orthanc_setting(orthanc)
    ds = _received(db, tmp_path)
    assert imaging.forward_pending(db) >= 1
    inst = db.scalar(select(ImagingInstance).where(ImagingInstance.sop_instance_uid == ds.SOPInstanceUID))
    mark = db.scalar(select(OrthancForward).where(OrthancForward.instance_id == inst.id))
    assert mark is not None and mark.status == "sent" and mark.orthanc_id
    tags = httpx.get(f"{orthanc}/instances/{mark.orthanc_id}/simplified-tags").json()
    assert tags["SOPInstanceUID"] == ds.SOPInstanceUID and tags["AccessionNumber"] == ds.AccessionNumber
    study = db.get(ImagingStudy, inst.study_id)
    link = imaging.orthanc_link(db, study)
    assert link == f"{orthanc}/app/explorer.html#study?uuid={mark.orthanc_study_id}"
    assert imaging.forward_pending(db) == 0  # sent once
