"""Registration at a member: validation, identifiers, the same resident ID is the same person."""

from __future__ import annotations

from sqlalchemy import func, select

from tests import builders as b
from yilianti.models.patient import CareRelationship, Consent, Patient, PatientIdentifier


def _count(db, model):  # type: ignore[no-untyped-def]
    return db.scalar(select(func.count()).select_from(model))


def test_register_through_the_form_then_view(db, client):  # type: ignore[no-untyped-def]
    comm = b.institution(db, "河西区桃园街社区卫生服务中心", kind="community_center", level=1, province="天津")
    lead = b.institution(db, "天津市儿童医院", kind="specialty", province="天津")
    alliance = b.alliance(db, (lead, "lead"), (comm, "member"), name="天津市儿科医疗联合体")
    b.user(db, comm, "doctor", username="taoyuan")
    csrf = b.login(client, "taoyuan")
    rid = b.resident_id(region="120103", male=False)
    r = client.post("/patients/new", data={
        "csrf_token": csrf, "name": "刘 欣怡", "resident_id": rid.lower(), "phone": "+86 139 1234 5678",
        "guardian_name": "刘强", "guardian_relation": "父亲", "guardian_phone": "13612345678",
        "mrn": "TY0001", "consent_scope": "alliance", "consent_alliance_id": str(alliance.id)},
        follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"])
    assert "刘欣怡" in page.text and "13912345678" in page.text and rid in page.text
    assert "天津市儿科医疗联合体" in page.text and "患者已登记" in page.text
    patient = db.scalar(select(Patient).where(Patient.name == "刘欣怡"))
    assert patient.sex == "女" and patient.birth_date.isoformat() == "2015-03-08"  # from the ID number


def test_bad_input_gives_field_errors_and_stores_nothing(db, client):  # type: ignore[no-untyped-def]
    comm = b.institution(db, kind="community_center", level=1)
    b.user(db, comm, "doctor", username="clerk")
    csrf = b.login(client, "clerk")
    before = (_count(db, Patient), _count(db, PatientIdentifier), _count(db, Consent))
    r = client.post("/patients/new", data={"csrf_token": csrf, "name": "王", "resident_id": "110105194912310021",
                                           "phone": "1381234", "consent_scope": "none"})
    assert r.status_code == 422
    assert 'id="err-resident_id"' in r.text and "校验位" in r.text
    assert 'id="err-phone"' in r.text and 'id="err-name"' in r.text
    assert (_count(db, Patient), _count(db, PatientIdentifier), _count(db, Consent)) == before


def test_same_resident_id_at_a_second_member_is_the_same_person(db):  # type: ignore[no-untyped-def]
    township = b.institution(db, "渠口镇卫生院", kind="township", level=1, province="河北")
    county = b.institution(db, "香河县人民医院", province="河北")
    d1 = b.subject_for(db, b.user(db, township, "doctor"))
    d2 = b.subject_for(db, b.user(db, county, "doctor"))
    rid = b.resident_id(region="131024")
    first = b.patient(db, d1, name="赵一鸣", resident_id=rid, mrn="QK001")
    second = b.patient(db, d2, name="赵一鸣", resident_id=rid, mrn="XH777")
    assert first.id == second.id
    cares = db.scalars(select(CareRelationship.institution_id).where(CareRelationship.patient_id == first.id)).all()
    assert set(cares) == {township.id, county.id}
    values = set(db.scalars(select(PatientIdentifier.value).where(PatientIdentifier.patient_id == first.id)))
    assert {rid, "QK001", "XH777"} <= values


def test_resident_id_with_another_name_goes_to_identity_review(db):  # type: ignore[no-untyped-def]
    """Neither linked to the stored person nor an error that reveals whose ID it is: a new person without the
    ID, and the pair in the EMPI review queue for a steward to decide."""
    from yilianti.models.empi import MatchCandidate, PatientRecord

    one = b.institution(db, "甲院")
    two = b.institution(db, "乙院")
    stored = b.patient(db, b.subject_for(db, b.user(db, one, "doctor")), name="孙悦", resident_id=b.resident_id(seq=3))
    other = b.patient(db, b.subject_for(db, b.user(db, two, "doctor")), name="李强", resident_id=b.resident_id(seq=3))
    assert other.id != stored.id and other.name == "李强"
    assert db.scalar(select(func.count()).select_from(PatientIdentifier)
                     .where(PatientIdentifier.patient_id == other.id, PatientIdentifier.authority == "resident_id")) == 0
    cares = set(db.scalars(select(CareRelationship.institution_id).where(CareRelationship.patient_id == stored.id)))
    assert cares == {one.id}  # the stored person did not gain the second institution
    pair = db.execute(select(MatchCandidate, PatientRecord).join(PatientRecord, PatientRecord.id == MatchCandidate.record_id)
                      .where(PatientRecord.patient_id == other.id)).first()
    assert pair is not None and pair[0].status == "open"
    assert db.get(PatientRecord, pair[0].other_record_id).patient_id == stored.id


def test_legacy_15_digit_id_is_upgraded(db):  # type: ignore[no-untyped-def]
    inst = b.institution(db)
    doc = b.subject_for(db, b.user(db, inst, "doctor"))
    p = b.patient(db, doc, name="周建国", resident_id="110105491231002", birth=__import__("datetime").date(1949, 12, 31))
    ids = set(db.scalars(select(PatientIdentifier.value).where(PatientIdentifier.patient_id == p.id)))
    assert "11010519491231002X" in ids and p.sex == "女"
