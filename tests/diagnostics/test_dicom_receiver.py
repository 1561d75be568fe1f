"""DICOM C-STORE with pynetdicom's own SCU and pydicom's CT_small.dcm: linked study or quarantine."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, TwelveLeadECGWaveformStorage
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.diagnostics.conftest import free_port, make_order
from yilianti.diagnostics.dicomweb import document
from yilianti.diagnostics.receivers.dicom import DicomReceiver
from yilianti.models.diagnostics import (
    DiagnosticOrder,
    ImagingInstance,
    ImagingInstanceMetadata,
    ImagingStudy,
    InboundMessage,
)


@pytest.fixture(scope="module")
def receiver(committed: sessionmaker[Session], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DicomReceiver]:
    rx = DicomReceiver(committed, "127.0.0.1", free_port(), "YILIANTI",
                       tmp_path_factory.mktemp("var") / "dicom").start()
    yield rx
    rx.stop()


def ct(accession: str) -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.AccessionNumber = accession
    ds.StudyInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def c_store(port: int, ds: pydicom.Dataset, calling: str = "QUKOU_CT") -> int:
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="YILIANTI")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    return int(status.Status)


def test_known_accession_stores_and_links_the_study(committed, receiver):  # type: ignore[no-untyped-def]
    order_id, _ = make_order(committed, "CT20261123001", kind="imaging", modality="CT")
    ds = ct("CT20261123001")
    assert c_store(receiver.port, ds) == 0x0000
    with committed() as db:
        study = db.scalar(select(ImagingStudy).where(ImagingStudy.study_instance_uid == ds.StudyInstanceUID))
        assert study is not None and study.order_id == order_id and study.modality == "CT"
        assert study.instance_count == 1 and study.accession_number == "CT20261123001"
        instance = db.scalar(select(ImagingInstance).where(ImagingInstance.study_id == study.id))
        assert instance is not None and instance.sop_instance_uid == ds.SOPInstanceUID
        path = Path(instance.path)
        assert path == receiver.storage_dir / ds.StudyInstanceUID / f"{ds.SOPInstanceUID}.dcm"
        assert pydicom.dcmread(path).AccessionNumber == "CT20261123001"
        order = db.get(DiagnosticOrder, order_id)
        assert order is not None and order.status == "received"
        inbound = db.scalar(select(InboundMessage).where(InboundMessage.control_id == ds.SOPInstanceUID))
        assert inbound is not None and inbound.status == "stored" and inbound.sender == "QUKOU_CT"
        # the WADO-RS metadata is made at ingest from the data set received, and is what the stored file gives
        made = db.get(ImagingInstanceMetadata, instance.id)
        assert made is not None and json.loads(made.document) == json.loads(document.from_file(str(path)))
        assert json.loads(made.document)["00080050"]["Value"] == ["CT20261123001"]


def test_unknown_accession_is_success_but_quarantined(committed, receiver):  # type: ignore[no-untyped-def]
    ds = ct("UNKNOWN-777")
    assert c_store(receiver.port, ds) == 0x0000  # the modality must not retry forever
    with committed() as db:
        assert db.scalar(select(ImagingStudy).where(ImagingStudy.study_instance_uid == ds.StudyInstanceUID)) is None
        inbound = db.scalar(select(InboundMessage).where(InboundMessage.control_id == ds.SOPInstanceUID))
        assert inbound is not None and inbound.status == "quarantined" and inbound.accession_number == "UNKNOWN-777"
        assert inbound.path and Path(inbound.path).exists()  # kept for a person to resolve


def test_allowed_calling_aes_are_enforced(committed, tmp_path):  # type: ignore[no-untyped-def]
    rx = DicomReceiver(committed, "127.0.0.1", free_port(), "YILIANTI", tmp_path, ["QUKOU_CT"]).start()
    try:
        ae = AE(ae_title="STRANGER")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", rx.port, ae_title="YILIANTI")
        assert assoc.is_rejected
        assert c_store(rx.port, ct("UNKNOWN-778")) == 0x0000
    finally:
        rx.stop()


def test_twelve_lead_ecg_waveform_is_stored(committed, receiver):  # type: ignore[no-untyped-def]
    order_id, _ = make_order(committed, "ECG20261123001", kind="ecg", modality="ECG",
                             resident_id="110105196501010070")
    ds = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
    ds.AccessionNumber = "ECG20261123001"
    ae = AE(ae_title="QUKOU_ECG")
    ae.add_requested_context(TwelveLeadECGWaveformStorage, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="YILIANTI")
    assert assoc.is_established
    try:
        assert int(assoc.send_c_store(ds).Status) == 0x0000
    finally:
        assoc.release()
    with committed() as db:
        study = db.scalar(select(ImagingStudy).where(ImagingStudy.order_id == order_id))
        assert study is not None and study.modality == "ECG" and study.instance_count == 1
        instance = db.scalar(select(ImagingInstance).where(ImagingInstance.study_id == study.id))
        assert instance is not None
        assert len(pydicom.dcmread(instance.path).WaveformSequence) >= 1


@pytest.mark.skipif(shutil.which("storescu") is None, reason="Debian dcmtk (storescu) not installed")
def test_dcmtk_storescu_sends_a_study(committed, receiver, tmp_path):  # type: ignore[no-untyped-def]
    """dcmtk's storescu, the third-party sender named in the issue, over loopback."""
    order_id, _ = make_order(committed, "CT20261123005", kind="imaging", modality="CT",
                             resident_id="110105196501010118")
    files = []
    for n in range(3):
        ds = ct("CT20261123005" if n < 2 else "UNKNOWN-779")
        if n == 1:
            ds.StudyInstanceUID = files[0][1].StudyInstanceUID
        path = tmp_path / f"{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append((path, ds))
    done = subprocess.run(["storescu", "-aet", "QUKOU_CT", "-aec", "YILIANTI", "127.0.0.1", str(receiver.port),
                           *[str(p) for p, _ in files]], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with committed() as db:
        study = db.scalar(select(ImagingStudy).where(ImagingStudy.order_id == order_id))
        assert study is not None and study.instance_count == 2
        quarantined = db.scalar(select(InboundMessage).where(InboundMessage.control_id == files[2][1].SOPInstanceUID))
        assert quarantined is not None and quarantined.status == "quarantined"
