"""The audit log is append-only, searchable, and scoped."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from tests import builders as b
from yilianti.audit import service as audit_service
from yilianti.audit.repository import AuditFilter
from yilianti.exceptions import NotFound
from yilianti.models.audit import AuditEvent


def test_audit_rows_cannot_be_updated_or_deleted(db):  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    b.user(db, inst, "doctor")
    event_id = db.scalars(select(AuditEvent.id)).first()
    assert event_id is not None
    for stmt in ("UPDATE audit_event SET action='x' WHERE id=:i", "DELETE FROM audit_event WHERE id=:i"):
        with pytest.raises(DBAPIError), db.begin_nested():
            db.execute(text(stmt), {"i": event_id})
    assert db.get(AuditEvent, event_id) is not None


def test_audit_log_cannot_be_emptied(db):  # type: ignore[no-untyped-def]
    """TRUNCATE fires no row trigger: PostgreSQL refuses it by a statement trigger (SQLite has no TRUNCATE and
    refuses DELETE without WHERE by the row trigger)."""
    inst = b.institution(db)
    b.user(db, inst, "doctor")
    before = db.scalar(select(func.count()).select_from(AuditEvent))
    assert before
    stmt = "TRUNCATE audit_event" if db.get_bind().dialect.name == "postgresql" else "DELETE FROM audit_event"
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.execute(text(stmt))
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == before


def test_auditor_searches_reads_of_a_patient(db, client):  # type: ignore[no-untyped-def]
    inst = b.institution(db, "测试社区卫生服务中心", kind="community_center", level=1)
    doc = b.user(db, inst, "doctor", username="reader1")
    b.user(db, None, "system_admin", username="root1")
    patient = b.patient(db, b.subject_for(db, doc), name="陈静")
    b.login(client, "reader1")
    client.get(f"/api/v1/patients/{patient.id}")
    client.cookies.clear()
    b.login(client, "root1")
    page = client.get("/audit", params={"patient_id": patient.id, "action": "read"})
    assert page.status_code == 200
    assert "reader1" in page.text and str(patient.id) in page.text
    # the acting institution by its name, not its number
    assert f'data-institution="{inst.id}">测试社区卫生服务中心<' in page.text
    client.cookies.clear()
    b.login(client, "reader1")
    assert client.get("/audit").status_code == 403


def test_break_glass_review_by_another_admin(db, client):  # type: ignore[no-untyped-def]
    from yilianti.authz import policy

    home = b.institution(db)
    er = b.institution(db, "急诊医院")
    owner = b.subject_for(db, b.user(db, home, "doctor"))
    rid = b.resident_id(seq=21)
    patient = b.patient(db, owner, resident_id=rid)
    er_doc = b.subject_for(db, b.user(db, er, "doctor"))
    grant = policy.break_glass(db, er_doc, "CN-RIC", rid, "车祸昏迷，需了解既往史与过敏史")
    b.user(db, None, "system_admin", username="root2")
    csrf = b.login(client, "root2")
    listing = client.get("/audit/break-glass")
    assert "车祸昏迷" in listing.text
    r = client.post(f"/audit/break-glass/{grant.id}/review",
                    data={"csrf_token": csrf, "outcome": "抢救需要，合理", "revoke": "1"}, follow_redirects=False)
    assert r.status_code == 303
    db.refresh(grant)
    assert grant.reviewed_at is not None and grant.revoked_at is not None
    assert policy.decide(db, er_doc, patient.id) is None


def test_auditors_are_scoped_to_their_institution_or_alliance(db, client):  # type: ignore[no-untyped-def]
    """An auditor sees the audit and access logs of its institution; an alliance auditor its members'; a
    platform auditor (the role for no institution or alliance) everything. An invisible patient's access log
    is a 404 like a missing one."""
    from yilianti.models.auth import RoleAssignment
    from yilianti.record import service as record

    one = b.institution(db, "甲医院")
    two = b.institution(db, "乙医院")
    outside = b.institution(db, "丙医院")
    alliance = b.alliance(db, (one, "lead"), (two, "member"))
    doc_two = b.user(db, two, "doctor", username="doc-two")
    doc_out = b.user(db, outside, "doctor", username="doc-out")
    p_two = b.patient(db, b.subject_for(db, doc_two), name="乙病人")
    p_out = b.patient(db, b.subject_for(db, doc_out), name="丙病人")
    at_one = b.subject_for(db, b.user(db, one, "auditor"))
    of_alliance = b.user(db, None, "doctor")  # a placeholder role, replaced by the alliance auditor role
    db.add(RoleAssignment(user_id=of_alliance.id, role="auditor", alliance_id=alliance.id))
    db.flush()
    alliance_auditor = b.subject_for(db, of_alliance)
    platform = b.subject_for(db, b.user(db, None, "auditor"))

    def institutions_seen(subject) -> set[int | None]:  # type: ignore[no-untyped-def]
        return {e.acting_institution_id for e in audit_service.search(db, subject, AuditFilter(), 1, 500).items}

    assert institutions_seen(at_one) <= {one.id}
    assert two.id in institutions_seen(alliance_auditor) and outside.id not in institutions_seen(alliance_auditor)
    assert {two.id, outside.id} <= institutions_seen(platform)

    assert record.access_log(db, alliance_auditor, p_two.id, reads_only=False)[1]
    for auditor, patient_id in ((at_one, p_two.id), (alliance_auditor, p_out.id)):
        with pytest.raises(NotFound):
            record.access_log(db, auditor, patient_id)
    with pytest.raises(NotFound):
        record.access_log(db, at_one, 10**9)  # missing: the same answer
    assert record.access_log(db, platform, p_out.id, reads_only=False)[1]


def test_an_alliance_auditor_filters_by_names_within_its_scope(db, client):  # type: ignore[no-untyped-def]
    """The audit log's filters take names: the institutions the auditor's alliance covers in a list, the patient
    through the log's own picker, which finds only patients the auditor's events name (not the clinical reading
    rule, which an auditor has no part in) and is itself audited. An id in the URL still filters."""
    from yilianti.models.auth import RoleAssignment

    one = b.institution(db, "甲医院")
    two = b.institution(db, "乙医院")
    outside = b.institution(db, "丙医院")
    alliance = b.alliance(db, (one, "lead"), (two, "member"))
    p_two = b.patient(db, b.subject_for(db, b.user(db, two, "doctor")), name="乙病人", resident_id=b.resident_id(seq=31))
    p_out = b.patient(db, b.subject_for(db, b.user(db, outside, "doctor")), name="丙病人")
    auditor = b.user(db, None, "doctor", username="ally-auditor")
    db.add(RoleAssignment(user_id=auditor.id, role="auditor", alliance_id=alliance.id))
    db.flush()
    b.login(client, "ally-auditor")
    page = client.get("/audit").text
    assert re.search(rf'<option value="{two.id}"\s*>乙医院</option>', page)
    assert re.search(rf'<option value="{one.id}"\s*>甲医院</option>', page)
    assert "丙医院" not in page and 'name="institution_id" value=' not in page  # no number box
    found = client.get("/audit/patients/pick", params={"pick_q": "病人"}).text
    assert f'data-patient="{p_two.id}"' in found and f'data-patient="{p_out.id}"' not in found
    # by the whole resident ID too; a patient outside the scope is not found by any key
    assert f'data-patient="{p_two.id}"' in client.get("/audit/patients/pick",
                                                     params={"pick_q": b.resident_id(seq=31)}).text
    assert "审计范围内没有符合条件的患者" in client.get("/audit/patients/pick", params={"pick_q": "丙病人"}).text
    assert "丙病人" not in client.get("/audit/patients/pick/chosen", params={"id": p_out.id}).text
    chosen = client.get("/audit/patients/pick/chosen", params={"id": p_two.id})
    assert 'id="picked-patient_id"' in chosen.text and "乙病人" in chosen.text
    # the filtered page: the patient by name, chosen, and only its events at that institution
    page = client.get("/audit", params={"patient_id": p_two.id, "institution_id": two.id}).text
    assert 'id="picked-patient_id"' in page and f'value="{p_two.id}"' in page
    assert re.search(rf'<option value="{two.id}"\s*selected>乙医院</option>', page)
    assert f'data-patient="{p_two.id}"' in page and f'data-patient="{p_out.id}"' not in page
    searches = db.scalars(select(AuditEvent).where(AuditEvent.username == "ally-auditor",
                                                   AuditEvent.resource_type == "patient")).all()
    assert any((e.detail or {}).get("view") == "audit" and p_two.id in e.detail["results"] for e in searches)
    assert all(p_out.id not in (e.detail or {}).get("results", []) for e in searches)


def test_audit_details_name_institutions_and_users_and_show_local_minutes(db):  # type: ignore[no-untyped-def]
    from yilianti.audit import display

    event = AuditEvent(action="grant", resource_type="access_grant", detail={
        "institution_id": 23, "user_id": 4, "kind": "referral", "expires_at": "2027-01-06T22:34:07.123456+00:00",
        "to_institution_id": {"from": 23, "to": 24}, "registered_at": 24})
    wanted = display.refs_wanted([event])
    assert wanted == {"institution": {23, 24}, "user": {4}}
    shown = display.show(event, "zh", {"institution": {23: "甲医院", 24: "乙医院"}, "user": {4: "张医生"}})
    lines = {ln.field: (ln.before, ln.after) for ln in shown.lines}
    assert lines["机构"] == (None, "甲医院") and lines["用户"] == (None, "张医生")
    assert lines["到期时间"] == (None, "2027-01-07 06:34")  # Asia/Shanghai, to the minute
    assert lines["接收机构"] == ("甲医院", "乙医院") and lines["登记机构"] == (None, "乙医院")
    # without the names (an id no longer there) the number is still shown rather than nothing
    assert {ln.field: ln.after for ln in display.show(event, "en").lines}["Institution"] == "23"
