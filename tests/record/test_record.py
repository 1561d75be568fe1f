"""The shared longitudinal record: other members' data only with consent, every read audited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests import builders as b
from tests.empi.helpers import register, world
from yilianti.exceptions import NotFound
from yilianti.models.audit import AuditEvent
from yilianti.models.diagnostics import DiagnosticOrder, DiagnosticReport, LabObservation
from yilianti.models.patient import PatientIdentifier
from yilianti.patients import service as patients
from yilianti.patients.schemas import ConsentIn
from yilianti.record import service as record


def _order(db, patient_id, inst, acc, item, at, centre=None):  # type: ignore[no-untyped-def]
    o = DiagnosticOrder(accession_number=acc, patient_id=patient_id, ordering_institution_id=inst.id,
                        reading_centre_institution_id=centre.id if centre else None, kind="lab", item_code=acc,
                        item_name=item, status="reported", created_at=at)
    db.add(o)
    db.flush()
    return o


def _setup(db):  # type: ignore[no-untyped-def]
    w = world(db)
    rid = b.resident_id(region="131024")
    p = register(db, w.d_town, "张小雨", rid=rid, sex="未知").patient
    assert register(db, w.d_child, "张小雨", rid=rid, sex="未知").patient.id == p.id
    town_order = _order(db, p.id, w.township, "T-1", "血常规", datetime(2026, 10, 1, 2, 0, tzinfo=UTC))
    db.add(LabObservation(order_id=town_order.id, code="WBC", name="白细胞", value="12.5", units="10^9/L",
                          abnormal_flags="H", observed_at=datetime(2026, 10, 1, 3, 0, tzinfo=UTC)))
    child_order = _order(db, p.id, w.children, "C-1", "胸部CT", datetime(2026, 11, 2, 2, 0, tzinfo=UTC))
    db.add(DiagnosticReport(order_id=child_order.id, conclusion="两肺纹理增粗", status="final",
                            signed_at=datetime(2026, 11, 2, 6, 0, tzinfo=UTC)))
    db.flush()
    return w, p


def _kinds_by_inst(view):  # type: ignore[no-untyped-def]
    return [(e.kind, view.institutions[e.source_institution_id]) for e in view.entries]


def test_without_consent_a_member_sees_only_its_own_entries(db):  # type: ignore[no-untyped-def]
    w, p = _setup(db)
    view = record.shared_record(db, w.d_child, p.id)
    assert _kinds_by_inst(view) == [("report", "北京儿童医院"), ("diagnostic_order", "北京儿童医院")]
    assert view.hidden_other_members == 2 and view.access.shared is False
    ev = db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "shared_record")).all()
    assert [(e.patient_id, e.access_basis, e.acting_institution_id) for e in ev] == [(p.id, "own", w.children.id)]


def test_with_consent_every_member_is_shown_newest_first_then_withdrawn(db):  # type: ignore[no-untyped-def]
    w, p = _setup(db)
    consent = patients.grant_consent(db, w.d_town, p.id, ConsentIn(scope="alliance", alliance_id=w.alliance.id))
    view = record.shared_record(db, w.d_child, p.id)
    assert _kinds_by_inst(view) == [("report", "北京儿童医院"), ("diagnostic_order", "北京儿童医院"),
                                    ("lab_result", "渠口镇卫生院"), ("diagnostic_order", "渠口镇卫生院")]
    assert "白细胞: 12.5 10^9/L [H]" in [e.title for e in view.entries]
    last = db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "shared_record")
                      .order_by(AuditEvent.id.desc())).first()
    assert last.access_basis == "shared" and last.detail["other_institutions"] == [w.township.id]
    # filter by kind
    only = record.shared_record(db, w.d_child, p.id, ["lab_result"])
    assert [e.kind for e in only.entries] == ["lab_result"]
    patients.withdraw_consent(db, w.d_town, p.id, consent.id)
    again = record.shared_record(db, w.d_child, p.id)
    assert {view.institutions[e.source_institution_id] for e in again.entries} == {"北京儿童医院"}
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.resource_type == "shared_record")
                     .order_by(AuditEvent.id.desc()).limit(1)) != last.id  # each read audited


def test_a_member_without_a_care_relationship_gets_404_and_nothing_is_logged_as_read(db):  # type: ignore[no-untyped-def]
    w, p = _setup(db)
    patients.grant_consent(db, w.d_town, p.id, ConsentIn(scope="all"))
    with pytest.raises(NotFound):
        record.shared_record(db, w.d_county, p.id)  # consent alone is no relationship
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.resource_type == "shared_record",
                                                 AuditEvent.acting_institution_id == w.county.id)) is None


def test_break_glass_sees_the_shared_record_and_the_patient_sees_who_looked(db):  # type: ignore[no-untyped-def]
    from yilianti.authz import policy

    w, p = _setup(db)
    rid = db.scalar(select(PatientIdentifier.value).where(PatientIdentifier.patient_id == p.id,
                                                          PatientIdentifier.authority == "CN-RIC"))
    policy.break_glass(db, w.d_county, "CN-RIC", rid, "患儿昏迷送急诊，家属不在场，需要既往检查结果")
    view = record.shared_record(db, w.d_county, p.id)
    assert len(view.entries) == 4 and view.access.basis == "break_glass"
    _, rows = record.access_log(db, w.d_town, p.id)
    bases = [(r.institution, r.event.access_basis) for r in rows if r.event.resource_type == "shared_record"]
    assert bases == [("香河县人民医院", "break_glass")]
    auditor = b.subject_for(db, b.user(db, None, "auditor"))
    assert record.access_log(db, auditor, p.id)[1]
    stranger = b.subject_for(db, b.user(db, b.institution(db), "doctor"))
    with pytest.raises(NotFound):
        record.access_log(db, stranger, p.id)


def test_record_api_and_pages(db, client):  # type: ignore[no-untyped-def]
    w, p = _setup(db)
    b.user(db, w.children, "doctor", username="bch_doc")
    b.login(client, "bch_doc")
    r = client.get(f"/api/v1/patients/{p.id}/record")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["shared_record_visible"] is False and body["hidden_other_members"] == 2
    assert [e["source_institution"] for e in body["entries"]] == ["北京儿童医院", "北京儿童医院"]
    r = client.get(f"/api/v1/patients/{p.id}/record?kind=report")
    assert [e["kind"] for e in r.json()["entries"]] == ["report"]
    page = client.get(f"/patients/{p.id}/record")
    assert page.status_code == 200 and "胸部CT" in page.text and "两肺纹理增粗" in page.text
    assert "血常规" not in page.text  # the township's order: no consent
    assert 'id="hidden-count"' in page.text
    log = client.get(f"/patients/{p.id}/access-log")
    assert log.status_code == 200 and "北京儿童医院" in log.text
    b.user(db, b.institution(db, "别处医院"), "doctor", username="elsewhere")
    client.post("/logout", data={})
    client.cookies.clear()
    b.login(client, "elsewhere")
    assert client.get(f"/api/v1/patients/{p.id}/record").status_code == 404
    assert client.get(f"/api/v1/patients/{p.id}/access-log").status_code == 404
