"""FHIR R4 slices 1–2 driven by real clients (fhirpy, fhirclient) against a live server: the CapabilityStatement
is true, Patient/Organization/Practitioner/PractitionerRole/Location/OrganizationAffiliation read and search
with paging, every answer validates with fhir.resources, errors are OperationOutcomes, and a client of one
member cannot read another member's patient (404)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhirclient.models.organization import Organization as FcOrganization
from fhirclient.models.patient import Patient as FcPatient
from fhirclient.models.practitionerrole import PractitionerRole as FcRole
from fhirpy.base.exceptions import AuthorizationError, OperationOutcome, ResourceNotFound
from sqlalchemy import select

from tests.fhir.helpers import World, build_world, validate
from yilianti.fhir.api import router
from yilianti.fhir.mapping import SID
from yilianti.models import AuditEvent

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def world(test_db):  # type: ignore[no-untyped-def]
    yield from build_world(test_db)


# a valid value of each kind of search parameter (codes the server checks)
SAMPLES = {"date": "ge2000-01-01", "reference": "Organization/1", "gender": "male", "active": "true",
           ("Slot", "status"): "free", ("Appointment", "status"): "booked", ("Consent", "status"): "active",
           ("Task", "status"): "requested", ("ServiceRequest", "status"): "active"}
RECORD_KINDS = {"DiagnosticReport", "Observation", "ImagingStudy", "Communication", "CarePlan"}  # searched per patient (the shared record)


def _outcome(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    validate(body)
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == code, body
    return body


# ---------------------------------------------------------------------------------------- slice 1: the frame


def test_metadata_answers_without_credentials_and_fhirclient_reads_it(world: World) -> None:
    r = httpx.get(world.fhir + "/metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    validate(r.json())
    smart = world.fhirclient()
    smart.server.prepare()  # fhirclient parses the statement with its own R4 models
    types = {res.type for res in smart.server.capabilityStatement.rest[0].resource}
    assert {"Patient", "Organization", "Practitioner", "PractitionerRole", "Location"} <= types


def test_the_capability_statement_is_what_the_routes_answer(world: World) -> None:
    statement = httpx.get(world.fhir + "/metadata").json()
    declared = {r["type"]: r for r in statement["rest"][0]["resource"]}
    # every route under /fhir is declared ...
    for route in router.routes:
        parts = route.path.removeprefix("/fhir/").split("/")  # type: ignore[attr-defined]
        if route.path == "/fhir":  # type: ignore[attr-defined]
            assert statement["rest"][0]["interaction"] == [{"code": "transaction"}]
        elif parts[0].startswith("$"):  # a system operation ($export)
            assert parts[0][1:] in {o["name"] for o in statement["rest"][0]["operation"]}, route.path  # type: ignore[attr-defined]
        elif parts != ["metadata"] and parts[0][:1] not in ("_", "."):  # discovery, bulk export status: no resources
            assert parts[0] in declared, route.path  # type: ignore[attr-defined]
    # ... and every declared interaction and search parameter answers
    for type_, res in declared.items():
        codes = {i["code"] for i in res["interaction"]}
        token = world.admin_token if type_ == "AuditEvent" else world.token
        if "search-type" in codes:
            base = {"patient": f"Patient/{world.patients['wang']}"} if type_ in RECORD_KINDS else {}
            bundle = world.get(f"/{type_}", token, _count=2, **base).json()
            validate(bundle)
            assert bundle["resourceType"] == "Bundle", bundle
            for p in res.get("searchParam", []):
                value = base.get(p["name"]) or SAMPLES.get((type_, p["name"]),
                                                           SAMPLES.get(p["name"], SAMPLES.get(p["type"], "1")))
                r = world.get(f"/{type_}", token, **{**base, p["name"]: value})
                assert r.status_code == 200, (type_, p["name"], r.text)
            if "read" in codes and bundle.get("entry"):
                one = bundle["entry"][0]["resource"]
                r = world.get(f"/{type_}/{one['id']}", token)
                assert r.status_code == 200 and r.json()["id"] == one["id"] and r.headers["etag"].startswith('W/"')
                assert r.json()["meta"]["versionId"] == r.headers["etag"][3:-1]
                if "vread" in codes:
                    version = world.get(f"/{type_}/{one['id']}/_history/{r.json()['meta']['versionId']}", token)
                    assert version.status_code == 200 and version.json() == r.json()
                    assert world.get(f"/{type_}/{one['id']}/_history/0000", token).status_code == 404
                if "history-instance" in codes:
                    history = world.get(f"/{type_}/{one['id']}/_history", token).json()
                    validate(history)
                    assert history["type"] == "history" and history["entry"][0]["resource"] == r.json()


def test_errors_are_operation_outcomes(world: World) -> None:
    _outcome(httpx.get(world.fhir + "/Patient"), 401, "login")
    _outcome(world.get("/Patient", token="not-a-token"), 401, "login")
    body = _outcome(world.get("/Patient", colour="blue"), 400, "invalid")
    assert body["issue"][0]["expression"] == ["colour"]
    _outcome(world.get("/Patient", birthdate="ge2015-13-45"), 400, "invalid")
    # a line break in a date (schemathesis found it: the prefix pattern did not match and an assert gave 500)
    _outcome(world.get("/Practitioner", _lastUpdated="2026\n-01"), 400, "invalid")
    _outcome(world.get("/Patient", birthdate="ge\n"), 400, "invalid")
    _outcome(world.get("/Patient", _count="abc"), 400, "invalid")
    _outcome(world.get("/Patient/abc"), 404, "not-found")
    _outcome(world.get("/Unknown/1"), 404, "not-found")
    _outcome(httpx.delete(world.fhir + "/Patient/1", headers=world.headers()), 405, "not-supported")
    english = httpx.get(world.fhir + "/Patient/999999", headers={**world.headers(), "Accept-Language": "en"})
    assert "not found" in _outcome(english, 404, "not-found")["issue"][0]["diagnostics"].lower()


# ----------------------------------------------------------------------------------------- slice 2: patients


def test_patient_search_pages_with_next_links_through_fhirpy(world: World) -> None:
    client = world.fhirpy()
    everyone = client.resources("Patient").limit(1).fetch_all()  # follows the `next` links, one per page
    ids = sorted(int(p.id) for p in everyone)
    assert ids == sorted(world.patients[k] for k in ("wang", "zhao", "zhou"))  # not 钱女士 of the other alliance
    for p in everyone:
        validate(p.serialize())
    first = httpx.get(world.fhir + "/Patient", params={"_count": 1, "_total": "accurate"},
                      headers=world.headers()).json()
    assert first["total"] == 3 and [ln["relation"] for ln in first["link"]] == ["self", "next"]
    # a list of patient data is counted on request only (the next link says whether more follow)
    assert "total" not in world.get("/Patient", _count=1).json()
    assert client.resources("Patient").count() == 3


def test_patient_by_identifier_with_its_system_name_birthdate_and_phone(world: World) -> None:
    client = world.fhirpy()
    wang = world.patients["wang"]

    def found(**params: str) -> list[int]:
        return [int(p.id) for p in client.resources("Patient").search(**params).fetch_all()]

    assert found(identifier=f"{SID}cn-ric|{world.resident_ids['wang']}") == [wang]
    assert found(identifier=world.resident_ids["wang"]) == [wang]
    assert found(identifier=f"{SID}cn-ehc|EHC0001") == [wang]
    assert found(identifier=f"{SID}mrn/{world.township_id}|T-0001") == [wang]
    assert found(identifier=f"{SID}mrn/{world.lead_id}|T-0001") == []  # another member's record numbers
    assert found(identifier=f"{SID}cn-mi|{world.resident_ids['wang']}") == []
    assert found(identifier="http://example.org/other|x") == []
    assert found(name="王") == [wang]
    assert found(**{"name:contains": "老"}) == [world.patients["zhao"]]
    assert found(**{"name:exact": "王小"}) == []
    assert found(birthdate="2015") == [wang]
    assert found(birthdate="2015-03-08") == [wang]
    assert sorted(found(birthdate="ge1950-06-01")) == sorted(world.patients[k] for k in ("wang", "zhao", "zhou"))
    assert found(birthdate="lt1950-06-01") == []
    assert found(phone="13800138001") == [wang]
    assert found(phone="13800138003") == []  # 钱女士's phone: not visible here
    assert found(gender="male", birthdate="le1960") == [world.patients["zhao"]]
    assert found(_lastUpdated="ge2000-01-01", _id=str(wang)) == [wang]
    assert found(_lastUpdated="lt2000-01-01") == []


def test_patient_resource_carries_identifiers_with_systems_and_validates(world: World) -> None:
    r = world.get(f"/Patient/{world.patients['wang']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    validate(body)
    systems = {i["system"]: i["value"] for i in body["identifier"]}
    assert systems[f"{SID}cn-ric"] == world.resident_ids["wang"]
    assert systems[f"{SID}cn-ehc"] == "EHC0001" and systems[f"{SID}mrn/{world.township_id}"] == "T-0001"
    assert body["gender"] == "male" and body["birthDate"] == "2015-03-08" and body["name"][0]["text"] == "王小明"
    assert body["managingOrganization"]["reference"] == f"Organization/{world.township_id}"
    # fhirclient's R4 models accept it too (no element outside R4)
    patient = FcPatient.read(str(world.patients["wang"]), world.fhirclient().server)
    assert patient.birthDate.isostring == "2015-03-08"


def test_a_client_of_another_member_cannot_read_the_patient(world: World) -> None:
    wang = world.patients["wang"]
    _outcome(world.get(f"/Patient/{wang}", token=world.outsider_token), 404, "not-found")
    with pytest.raises(ResourceNotFound):
        world.fhirpy(world.outsider_token).reference("Patient", str(wang)).to_resource()
    seen = [int(p.id) for p in world.fhirpy(world.outsider_token).resources("Patient").fetch_all()]
    assert seen == [world.patients["qian"]]
    assert world.fhirpy(world.outsider_token).resources("Patient").search(
        identifier=world.resident_ids["wang"]).fetch_all() == []
    with pytest.raises(AuthorizationError):
        world.fhirpy("wrong").resources("Patient").fetch()
    with pytest.raises(OperationOutcome):
        world.fhirpy().resources("Patient").search(colour="blue").fetch()


def test_patient_reads_and_searches_are_audited(world: World) -> None:
    zhao = world.patients["zhao"]
    assert world.get(f"/Patient/{zhao}").status_code == 200
    assert world.get("/Patient", name="赵").status_code == 200
    with world.factory() as db:
        events = list(db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "patient")
                                 .order_by(AuditEvent.id.desc()).limit(20)))
    read = next(e for e in events if e.action == "read" and e.patient_id == zhao)
    assert read.channel == "api" and read.access_basis == "own" and read.acting_institution_id == world.township_id
    search = next(e for e in events if e.action == "search" and e.detail and "name=赵" in e.detail["q"])
    assert search.detail["results"] == [zhao]


# ---------------------------------------------------------------------------------- slice 2: the directory


def test_organization_is_part_of_its_alliance_with_affiliations(world: World) -> None:
    org = world.get(f"/Organization/{world.township_id}").json()
    validate(org)
    assert org["partOf"]["reference"] == f"Organization/alliance-{world.alliance_id}"
    assert org["type"][0]["coding"][0]["code"] == "township" and org["type"][0]["text"] == "乡镇卫生院"
    alliance = world.get(f"/Organization/alliance-{world.alliance_id}").json()
    validate(alliance)
    assert alliance["name"] == "FHIR测试医共体"
    members = world.fhirpy().resources("Organization").search(partof=f"Organization/alliance-{world.alliance_id}")
    assert sorted(int(o.id) for o in members.fetch_all()) == sorted([world.lead_id, world.township_id,
                                                                     world.second_id])
    roles = world.fhirpy().resources("OrganizationAffiliation").search(
        **{"primary-organization": f"Organization/alliance-{world.alliance_id}"}).fetch_all()
    assert {(r.participatingOrganization.reference, r.code[0].coding[0].code) for r in roles} == {
        (f"Organization/{world.lead_id}", "lead"), (f"Organization/{world.township_id}", "member"),
        (f"Organization/{world.second_id}", "member")}
    for r in roles:
        validate(r.serialize())
    by_name = FcOrganization.where(struct={"name": "FHIR测试"}).perform_resources(world.fhirclient().server)
    assert {o.name for o in by_name} == {"FHIR测试总医院", "FHIR测试镇卫生院", "FHIR测试区医院", "FHIR测试医共体"}
    assert world.get("/Organization", type="county_community").json()["total"] >= 1
    _outcome(world.get("/Organization/alliance-x"), 404, "not-found")


def test_practitioner_and_roles_at_home_and_at_a_visiting_site(world: World) -> None:
    doc = world.get(f"/Practitioner/{world.practitioner_id}").json()
    validate(doc)
    assert doc["identifier"][0]["value"] == "110000201000123" and doc["gender"] == "male"
    roles = FcRole.where(struct={"practitioner": f"Practitioner/{world.practitioner_id}"}).perform_resources(
        world.fhirclient().server)
    by_org = {r.organization.reference: r for r in roles}
    assert set(by_org) == {f"Organization/{world.lead_id}", f"Organization/{world.township_id}"}
    visiting = by_org[f"Organization/{world.township_id}"]
    assert visiting.id == f"site-{world.site_id}" and visiting.availableTime[0].daysOfWeek == ["fri"]
    for r in roles:
        validate(r.as_json())
    at_township = world.fhirpy().resources("PractitionerRole").search(
        organization=f"Organization/{world.township_id}").fetch_all()
    assert [r.id for r in at_township] == [f"site-{world.site_id}"]
    assert world.get(f"/PractitionerRole/home-{world.practitioner_id}").status_code == 200
    _outcome(world.get("/PractitionerRole/other-1"), 404, "not-found")


def test_location_of_each_institution(world: World) -> None:
    loc = world.get(f"/Location/{world.township_id}").json()
    validate(loc)
    assert loc["managingOrganization"]["reference"] == f"Organization/{world.township_id}"
    found = world.fhirpy().resources("Location").search(organization=f"Organization/{world.lead_id}").fetch_all()
    assert [int(x.id) for x in found] == [world.lead_id]


def test_sharing_consent_of_a_visible_patient(world: World) -> None:
    wang = world.patients["wang"]
    consents = world.fhirpy().resources("Consent").search(patient=f"Patient/{wang}", status="active").fetch_all()
    assert len(consents) == 1 and consents[0].provision.type == "permit"
    validate(consents[0].serialize())
    assert world.get(f"/Consent/{consents[0].id}").status_code == 200
    assert world.get(f"/Consent/{consents[0].id}", token=world.outsider_token).status_code == 404
    assert world.fhirpy(world.outsider_token).resources("Consent").search(patient=f"Patient/{wang}").fetch_all() == []


def test_audit_events_for_the_institutions_auditors_only(world: World) -> None:
    wang = world.patients["wang"]
    assert world.get(f"/Patient/{wang}").status_code == 200
    events = world.fhirpy(world.admin_token).resources("AuditEvent").search(
        patient=f"Patient/{wang}", subtype="read").fetch()
    assert events and all(e.entity[0].what.reference == f"Patient/{wang}" for e in events)
    for e in events:
        validate(e.serialize())
    assert world.get(f"/AuditEvent/{events[0].id}", world.admin_token).status_code == 200
    r = world.get("/AuditEvent")  # a doctor is not an auditor
    assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"


def test_include_and_revinclude_for_the_common_pairs(world: World) -> None:
    roles = world.get("/PractitionerRole", practitioner=f"Practitioner/{world.practitioner_id}",
                      _include="PractitionerRole:practitioner").json()
    validate(roles)
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in roles["entry"]}
    assert modes == {("PractitionerRole", "match"), ("Practitioner", "include")}
    assert roles["total"] == 2  # the total counts matches only
    doc = world.get("/Practitioner", _id=str(world.practitioner_id), _revinclude="PractitionerRole:practitioner").json()
    assert sorted(e["resource"]["resourceType"] for e in doc["entry"]) == ["Practitioner", "PractitionerRole",
                                                                         "PractitionerRole"]
    wang = world.patients["wang"]
    with_consent = world.get("/Patient", _id=str(wang), _revinclude="Consent:patient").json()
    validate(with_consent)
    assert [e["resource"]["resourceType"] for e in with_consent["entry"]] == ["Patient", "Consent"]
    # what the caller may not see is not included: 钱女士's organization is visible, 王小明 is not to the outsider
    seen = world.fhirpy(world.outsider_token).resources("Patient").include("Patient", "organization").fetch_raw()
    assert {e.resource.resourceType for e in seen.entry} == {"Patient", "Organization"}
    r = world.get("/Patient", _include="Patient:link")
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["_include"]
    statement = httpx.get(world.fhir + "/metadata").json()
    practitioner = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Practitioner")
    assert practitioner["searchRevInclude"] == ["PractitionerRole:practitioner"]


def test_reports_results_and_studies_as_the_shared_record_shows_them(world: World) -> None:
    wang = f"Patient/{world.patients['wang']}"
    reports = world.fhirpy().resources("DiagnosticReport").search(patient=wang, category="RAD").fetch_all()
    assert [int(r.id) for r in reports] == [world.report_id]
    report = reports[0].serialize()
    validate(report)
    assert report["status"] == "final" and "支气管炎可能" in report["conclusion"]
    assert report["performer"][0]["reference"] == f"Organization/{world.lead_id}"
    observations = world.fhirpy().resources("Observation").search(patient=wang, code="6690-2").fetch_all()
    assert [o.valueQuantity.value for o in observations] == [12.5]
    validate(observations[0].serialize())
    assert observations[0].interpretation[0].coding[0].code == "H"
    studies = world.get("/ImagingStudy", patient=wang).json()
    validate(studies)
    assert [e["resource"]["id"] for e in studies["entry"]] == [str(world.study_id)]
    for path in (f"/DiagnosticReport/{world.report_id}", f"/Observation/{world.observation_id}",
                 f"/ImagingStudy/{world.study_id}"):
        assert world.get(path).status_code == 200, path
        assert world.get(path, token=world.outsider_token).status_code == 404, path
    assert world.fhirpy(world.outsider_token).resources("DiagnosticReport").search(patient=wang).fetch_all() == []
    assert world.get("/DiagnosticReport", category="RAD").status_code == 400  # which patient's record?
    assert world.get("/DiagnosticReport", patient=wang, date="lt2026-11-01").json()["total"] == 0


def test_teleconsultation_messages_for_the_two_sides_only(world: World) -> None:
    wang = f"Patient/{world.patients['wang']}"
    messages = world.fhirpy().resources("Communication").search(patient=wang).fetch_all()
    assert [m.payload[0].contentString for m in messages] == ["已补充血常规结果"]
    validate(messages[0].serialize())
    assert messages[0].recipient[0].reference == f"Organization/{world.lead_id}"
    assert world.get(f"/Communication/{world.message_id}").status_code == 200
    assert world.get(f"/Communication/{world.message_id}", token=world.outsider_token).status_code == 404
    assert world.fhirpy(world.outsider_token).resources("Communication").search(patient=wang).fetch_all() == []
