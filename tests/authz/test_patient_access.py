"""A user of one institution cannot read another's patient; consent, grants and break-glass."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests import builders as b
from yilianti.authz import policy
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent


def _setup(db):  # type: ignore[no-untyped-def]
    lead = b.institution(db, "测试儿童医院")
    community = b.institution(db, "测试社区卫生服务中心", kind="community_center", level=1)
    outsider = b.institution(db, "联盟外医院")
    alliance = b.alliance(db, (lead, "lead"), (community, "member"))
    lead_doc = b.user(db, lead, "doctor", username="leaddoc")
    comm_doc = b.user(db, community, "doctor", username="commdoc")
    out_doc = b.user(db, outsider, "doctor", username="outdoc")
    return lead, community, outsider, alliance, lead_doc, comm_doc, out_doc


def test_other_institution_gets_404_on_page_and_api(db, client):  # type: ignore[no-untyped-def]
    lead, community, outsider, alliance, lead_doc, comm_doc, out_doc = _setup(db)
    patient = b.patient(db, b.subject_for(db, comm_doc), name="李小红", consent="none")

    b.login(client, "commdoc")
    own = client.get(f"/api/v1/patients/{patient.id}")
    assert own.status_code == 200 and own.json()["name"] == "李小红"
    client.cookies.clear()

    b.login(client, "leaddoc")
    r = client.get(f"/api/v1/patients/{patient.id}")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found" and "message" in r.json()
    page = client.get(f"/patients/{patient.id}")
    assert page.status_code == 404 and "李小红" not in page.text
    listing = client.get("/api/v1/patients", params={"q": "李小红"})
    assert listing.status_code == 200 and listing.json() == []
    unknown = client.get("/api/v1/patients/999999")
    assert unknown.status_code == 404 and unknown.json() == r.json()  # existence does not leak


def test_consent_shares_record_only_within_alliance(db):  # type: ignore[no-untyped-def]
    lead, community, outsider, alliance, lead_doc, comm_doc, out_doc = _setup(db)
    comm = b.subject_for(db, comm_doc)
    patient = b.patient(db, comm, consent="alliance", consent_alliance_id=alliance.id)
    access = policy.decide(db, comm, patient.id)
    assert access is not None and access.basis == "own" and access.shared

    # the lead hospital has no care relationship yet: nothing, consent alone is not enough
    assert policy.decide(db, b.subject_for(db, lead_doc), patient.id) is None
    # a referral grant gives access; consent for the alliance lets it see the shared record
    policy.grant_access(db, comm, patient_id=patient.id, institution_id=lead.id, kind="referral", reason="上转")
    lead_access = policy.decide(db, b.subject_for(db, lead_doc), patient.id)
    assert lead_access is not None and lead_access.basis == "grant" and lead_access.shared
    # an institution outside the alliance with a grant sees its own part but not the shared record
    policy.grant_access(db, comm, patient_id=patient.id, institution_id=outsider.id, kind="manual", reason="会诊")
    out_access = policy.decide(db, b.subject_for(db, out_doc), patient.id)
    assert out_access is not None and not out_access.shared


def test_grant_expires_and_withdrawn_consent_stops_sharing(db):  # type: ignore[no-untyped-def]
    from yilianti.patients import repository, service

    lead, community, outsider, alliance, lead_doc, comm_doc, out_doc = _setup(db)
    comm = b.subject_for(db, comm_doc)
    patient = b.patient(db, comm, consent="all")
    grant = policy.grant_access(db, comm, patient_id=patient.id, institution_id=lead.id, kind="consultation",
                                reason="远程会诊", expires_in=timedelta(hours=2))
    with clock.frozen(clock.now() + timedelta(hours=1)):
        assert policy.decide(db, b.subject_for(db, lead_doc), patient.id) is not None
    with clock.frozen(clock.now() + timedelta(hours=3)):
        assert policy.decide(db, b.subject_for(db, lead_doc), patient.id) is None
    assert policy.end_grants(db, comm, "x", 0) == 0
    grant.source_type, grant.source_id = "consultation", 7
    assert policy.end_grants(db, comm, "consultation", 7) == 1
    assert policy.decide(db, b.subject_for(db, lead_doc), patient.id) is None

    consent = repository.consents_of(db, patient.id)[0]
    service.withdraw_consent(db, comm, patient.id, consent.id)
    assert policy.decide(db, comm, patient.id).shared is False  # type: ignore[union-attr]


def test_break_glass_by_exact_identifier_is_audited_and_flagged(db, client):  # type: ignore[no-untyped-def]
    lead, community, outsider, alliance, lead_doc, comm_doc, out_doc = _setup(db)
    rid = b.resident_id(seq=17)
    patient = b.patient(db, b.subject_for(db, comm_doc), resident_id=rid, consent="none")
    csrf = b.login(client, "outdoc")
    headers = {"X-CSRF-Token": csrf}
    short = client.post("/api/v1/patients/break-glass", json={"value": rid, "reason": "急"}, headers=headers)
    assert short.status_code == 422 and "reason" in short.json()["fields"]
    r = client.post("/api/v1/patients/break-glass",
                    json={"value": rid, "reason": "患者昏迷送至急诊，需查看既往病史和过敏史"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == patient.id and r.json()["access_basis"] == "break_glass"
    events = db.scalars(select(AuditEvent).where(AuditEvent.patient_id == patient.id,
                                                 AuditEvent.username == "outdoc")).all()
    assert {"grant", "read"} <= {e.action for e in events}
    assert any(e.access_basis == "break_glass" for e in events)


def test_every_read_is_audited_with_acting_institution(db, client):  # type: ignore[no-untyped-def]
    lead, community, outsider, alliance, lead_doc, comm_doc, out_doc = _setup(db)
    patient = b.patient(db, b.subject_for(db, comm_doc))
    b.login(client, "commdoc")
    before = len(db.scalars(select(AuditEvent).where(AuditEvent.patient_id == patient.id,
                                                     AuditEvent.action == "read")).all())
    assert client.get(f"/api/v1/patients/{patient.id}").status_code == 200
    reads = db.scalars(select(AuditEvent).where(AuditEvent.patient_id == patient.id,
                                                AuditEvent.action == "read")).all()
    assert len(reads) == before + 1
    assert reads[-1].acting_institution_id == community.id and reads[-1].username == "commdoc"
