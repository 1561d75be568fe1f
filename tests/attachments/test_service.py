"""Attachments: what is accepted is decided by the bytes; who may download by the access policy."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests import builders as b
from tests.attachments.helpers import DICOM, EXE, JPEG, PDF, PNG
from yilianti.attachments import repository, service
from yilianti.config import get_settings
from yilianti.exceptions import Forbidden, InvalidInput, NotFound
from yilianti.models.attachment import Attachment
from yilianti.models.audit import AuditEvent


@pytest.fixture
def site(db: Session):  # type: ignore[no-untyped-def]
    inst = b.institution(db, "附件测试社区卫生服务中心", kind="community_center", level=1)
    other = b.institution(db, "附件测试另一医院", level=3)
    doc = b.subject_for(db, b.user(db, inst, "doctor"))
    other_doc = b.subject_for(db, b.user(db, other, "doctor"))
    patient = b.patient(db, doc, name="周小安")
    return doc, other_doc, patient


@pytest.mark.parametrize(("data", "kind", "ctype"), [
    (PDF, "pdf", "application/pdf"), (PNG, "png", "image/png"), (JPEG, "jpeg", "image/jpeg"),
    (DICOM, "dicom", "application/dicom")])
def test_kind_comes_from_the_bytes_not_the_client(db: Session, site, data: bytes, kind: str, ctype: str) -> None:  # type: ignore[no-untyped-def]
    doc, _, patient = site
    att = service.store(db, doc, patient.id, "referral", 1, "scan.bin", "text/plain", data)
    assert (att.kind, att.content_type) == (kind, ctype)
    assert att.sha256 == hashlib.sha256(data).hexdigest()
    assert att.size_bytes == len(data)
    assert (service.storage_dir() / att.storage_key).read_bytes() == data


@pytest.mark.parametrize(("data", "code", "status"), [
    (EXE, "attachment_type", 415), (b"", "attachment_empty", 422), (b"hello %PDF-1.4", "attachment_type", 415)])
def test_bad_files_are_refused_and_nothing_is_stored(db: Session, site, data: bytes, code: str, status: int) -> None:  # type: ignore[no-untyped-def]
    doc, _, patient = site
    with pytest.raises(InvalidInput) as exc:
        service.store(db, doc, patient.id, "referral", 2, "evil.pdf", "application/pdf", data)
    assert (exc.value.code, exc.value.status) == (code, status)
    assert repository.attachments_of(db, "referral", 2) == []


def test_size_limit_is_a_setting(db: Session, site, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    doc, _, patient = site
    monkeypatch.setattr(get_settings(), "attachment_max_bytes", len(PDF) - 1)
    with pytest.raises(InvalidInput) as exc:
        service.store(db, doc, patient.id, "referral", 3, "big.pdf", None, PDF)
    assert exc.value.code == "attachment_too_large"
    assert repository.attachments_of(db, "referral", 3) == []
    monkeypatch.setattr(get_settings(), "attachment_max_bytes", len(PDF))
    assert service.store(db, doc, patient.id, "referral", 3, "big.pdf", None, PDF).id


def test_download_is_checked_and_audited(db: Session, site) -> None:  # type: ignore[no-untyped-def]
    doc, other_doc, patient = site
    att = service.store(db, doc, patient.id, "referral", 4, "../../etc/胸片.png", "image/png", PNG)
    assert att.filename == "胸片.png"
    got = service.open_for_download(db, doc, att.id)
    assert got.data == PNG
    assert "filename*=UTF-8''%E8%83%B8%E7%89%87.png" in got.content_disposition
    audit_rows = db.scalars(select(AuditEvent).where(
        AuditEvent.resource_type == "attachment", AuditEvent.resource_id == str(att.id),
        AuditEvent.action == "download")).all()
    assert len(audit_rows) == 1 and audit_rows[0].patient_id == patient.id
    with pytest.raises(NotFound):
        service.open_for_download(db, other_doc, att.id)
    with pytest.raises(NotFound):  # wrong owner
        service.open_for_download(db, doc, att.id, owner=("referral", 5))
    with pytest.raises(NotFound):  # another site cannot even attach to a patient it cannot see
        service.store(db, other_doc, patient.id, "referral", 4, "x.pdf", None, PDF)


def test_delete_is_soft_audited_and_only_by_the_uploader(db: Session, site) -> None:  # type: ignore[no-untyped-def]
    doc, other_doc, patient = site
    att = service.store(db, doc, patient.id, "referral", 6, "a.pdf", None, PDF)
    with pytest.raises(NotFound):
        service.delete(db, other_doc, att.id)
    colleague = b.subject_for(db, b.user(db, _inst(db, doc), "nurse"))  # same site, another person
    service.delete(db, colleague, att.id)
    assert repository.attachments_of(db, "referral", 6) == []
    row = db.get(Attachment, att.id)
    assert row is not None and row.deleted_at is not None
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "delete",
                                                 AuditEvent.resource_id == str(att.id))) is not None
    with pytest.raises(NotFound):
        service.open_for_download(db, doc, att.id)


def _inst(db: Session, subject):  # type: ignore[no-untyped-def]
    from yilianti.models.alliance import Institution

    return db.get(Institution, subject.acting_institution_id)


def test_forbidden_for_a_site_that_sees_the_patient_but_did_not_upload(db: Session, site) -> None:  # type: ignore[no-untyped-def]
    doc, other_doc, patient = site
    att = service.store(db, doc, patient.id, "referral", 7, "a.pdf", None, PDF)
    from yilianti.authz import policy

    policy.grant_access(db, doc, patient_id=patient.id, institution_id=other_doc.acting_institution_id,
                        kind="referral", reason="转诊")
    assert service.open_for_download(db, other_doc, att.id).data == PDF
    with pytest.raises(Forbidden):
        service.delete(db, other_doc, att.id)
