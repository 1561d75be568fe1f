"""An order's images and ECG follow the shared record's rule for one entry (issue 18): patient-level access is not
enough — a member that cares for the patient but neither ordered nor read the order sees its images and ECG only
with the shared record (the patient's consent in force); every read is audited, basis `shared` for another
member's order; uploading stays with the order's own sides."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests import builders as b
from tests.diagnostics.media_helpers import Setup, ecg_csv, order_setup, synthetic_ecg
from tests.diagnostics.test_imaging_upload import ct_bytes
from yilianti.diagnostics.ecg import service as ecg
from yilianti.diagnostics.imaging import service as imaging
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import User
from yilianti.models.diagnostics import DiagnosticOrder, ImagingInstance, ImagingStudy
from yilianti.models.patient import CareRelationship, Consent, ConsentScope


@pytest.fixture
def setup(db) -> Setup:  # type: ignore[no-untyped-def]
    """A township's CT order read by the county, with a study and an ECG; the unrelated hospital registers the
    patient too (patient-level access of its own), and the patient has given no sharing consent."""
    s = order_setup(db, kind="imaging", modality="CT")
    order = db.get(DiagnosticOrder, s.order_id)
    reader = b.subject_for(db, db.scalar(select(User).where(User.username == s.reader)))
    assert imaging.ingest_upload(db, reader, order, [("ct.dcm", ct_bytes(s.accession)[0])]).counts()["stored"] == 1
    ecg.store(db, reader, order, ecg.parse_csv(ecg_csv(synthetic_ecg(72))), "csv")
    other = b.subject_for(db, db.scalar(select(User).where(User.username == s.outsider))).acting_institution_id
    db.add(CareRelationship(patient_id=s.patient_id, institution_id=other, kind="registration",
                            started_at=clock.now()))
    db.flush()
    return s


def _urls(db, s: Setup) -> list[str]:  # type: ignore[no-untyped-def]
    study = db.scalar(select(ImagingStudy).where(ImagingStudy.order_id == s.order_id))
    inst = db.scalar(select(ImagingInstance).where(ImagingInstance.study_id == study.id))
    rec = ecg.latest(db, s.order_id)
    o = s.order_id
    return [f"/diagnostics/orders/{o}/images", f"/diagnostics/orders/{o}/images/key.png",
            f"/diagnostics/orders/{o}/ecg", f"/diagnostics/orders/{o}/ecg.svg", f"/diagnostics/orders/{o}/ecg/summary",
            f"/api/v1/diagnostics/orders/{o}/studies", f"/api/v1/diagnostics/studies/{study.id}",
            f"/api/v1/diagnostics/instances/{inst.id}/frames/0",
            f"/api/v1/diagnostics/instances/{inst.id}/frames/0/preview.png",
            f"/api/v1/diagnostics/orders/{o}/ecg", f"/api/v1/diagnostics/ecg/{rec.id}"]


def _reads(db, username: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    return list(db.scalars(select(AuditEvent).where(AuditEvent.username == username).order_by(AuditEvent.id)))


def test_patient_level_access_without_the_entry_right_is_404(client, db, setup) -> None:  # type: ignore[no-untyped-def]
    b.login(client, setup.outsider)
    assert client.get(f"/patients/{setup.patient_id}").status_code == 200  # the patient is visible to it
    for url in _urls(db, setup):
        r = client.get(url)
        assert r.status_code == 404, url
        if url.startswith("/api/"):
            assert r.json()["error"] == "not_found", url
    assert not [e for e in _reads(db, setup.outsider) if e.resource_type in ("diagnostic_order", "imaging_study",
                                                                               "ecg_recording")]


def test_with_the_shared_record_they_open_and_each_read_is_audited_as_shared(client, db, setup) -> None:  # type: ignore[no-untyped-def]
    db.add(Consent(patient_id=setup.patient_id, scope=ConsentScope.all, granted_at=clock.now()))
    db.flush()
    token = b.login(client, setup.outsider)
    for url in _urls(db, setup):
        assert client.get(url).status_code == 200, url
    reads = [e for e in _reads(db, setup.outsider)
             if e.resource_type in ("diagnostic_order", "imaging_study", "ecg_recording")]
    assert reads and {e.access_basis for e in reads} == {"shared"}
    assert {e.action for e in reads} >= {"diagnostics.study_view", "diagnostics.ecg_view", "diagnostics.image_view"}
    # seeing another member's order is not working on it: uploads are the ordering site's and the centre's
    r = client.post(f"/api/v1/diagnostics/orders/{setup.order_id}/dicom", headers={"X-CSRF-Token": token},
                    files=[("files", ("ct.dcm", ct_bytes(setup.accession)[0], "application/dicom"))])
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = client.post(f"/api/v1/diagnostics/orders/{setup.order_id}/ecg", headers={"X-CSRF-Token": token},
                    files=[("file", ("ecg.csv", ecg_csv(synthetic_ecg(60)).encode(), "text/csv"))])
    assert r.status_code == 403


def test_the_order_own_sides_keep_their_basis(client, db, setup) -> None:  # type: ignore[no-untyped-def]
    b.login(client, setup.reader)
    assert client.get(f"/diagnostics/orders/{setup.order_id}/images").status_code == 200
    assert client.get(f"/api/v1/diagnostics/orders/{setup.order_id}/ecg").status_code == 200
    reads = [e for e in _reads(db, setup.reader) if e.action in ("diagnostics.study_view", "diagnostics.ecg_view")]
    assert len(reads) == 2 and {e.access_basis for e in reads} == {"own"}
