"""CarePlan: a chronic registry enrolment with its planned follow-ups, read as the patient's shared record shows it
(fhirpy drives it; every resource validated with fhir.resources R4B); in $everything and in the bulk export; a
system client's scopes decide which types are read at all — a type its token does not cover is neither queried
nor audited. Group: a family-doctor team's contracted residents and a member's chronic registries, read-only, and
Group/{id}/$export of their members for system clients."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import func, select

from tests import builders as b
from tests.fhir.helpers import World, build_world, client_token, validate
from yilianti.chronic import service as chronic
from yilianti.models.alliance import Institution
from yilianti.models.audit import AuditEvent
from yilianti.worker import runner

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def world(test_db):  # type: ignore[no-untyped-def]
    for w in build_world(test_db):
        with w.factory() as db:
            doctor = b.user(db, db.get(Institution, w.township_id), "doctor")
            doctor.display_name = "刘医生"
            doc = b.subject_for(db, doctor)
            team = chronic.create_team(db, doc, "渠口一队", None, [(doc.user_id, "gp")])
            wang = chronic.enrol(db, doc, w.patients["wang"], "hypertension", team_id=team.id)
            zhao = chronic.enrol(db, doc, w.patients["zhao"], "diabetes_t2")
            chronic.sign_contract(db, doc, team.id, w.patients["wang"], "basic")
            db.commit()
            w.plans = {"wang": wang.id, "zhao": zhao.id}  # type: ignore[attr-defined]
            w.team_id = team.id  # type: ignore[attr-defined]
        yield w


def _audit_count(world: World, **where: object) -> int:
    with world.factory() as db:
        return db.scalar(select(func.count()).select_from(AuditEvent).filter_by(**where)) or 0


def test_fhirpy_searches_a_patients_care_plans(world: World) -> None:
    client = world.fhirpy()
    plans = client.resources("CarePlan").search(patient=f"Patient/{world.patients['wang']}").fetch()
    assert [p["id"] for p in plans] == [str(world.plans["wang"])]  # type: ignore[attr-defined]
    plan = plans[0].serialize()
    model = validate(plan)
    assert (plan["status"], plan["intent"], plan["subject"]["reference"]) == \
        ("active", "plan", f"Patient/{world.patients['wang']}")
    assert plan["category"][0]["coding"][0]["code"] == "hypertension" and plan["title"] == "高血压管理计划"
    condition = next(c for c in plan["contained"] if c["resourceType"] == "Condition")
    assert condition["code"]["coding"][0] == {"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10",
                                              "display": "高血压"}
    assert plan["addresses"][0]["reference"] == "#condition"
    team = next(c for c in plan["contained"] if c["resourceType"] == "CareTeam")
    assert team["name"] == "渠口一队" and team["participant"][0]["member"]["display"] == "刘医生"
    assert plan["author"] == {"reference": "#team"}
    [follow_up] = plan["activity"]
    assert follow_up["detail"]["status"] == "scheduled" and follow_up["detail"]["code"]["coding"][0]["code"] == "first"
    assert model.activity[0].detail.scheduledPeriod.start is not None
    # search parameters: status, category, date (the plan's start)
    wang = f"Patient/{world.patients['wang']}"
    for params, found in (({"status": "active"}, 1), ({"status": "revoked"}, 0), ({"category": "hypertension"}, 1),
                          ({"category": "diabetes_t2"}, 0), ({"date": "ge2000-01-01"}, 1), ({"date": "lt2000-01-01"}, 0)):
        assert len(client.resources("CarePlan").search(patient=wang, **params).fetch()) == found, params
    # a search must name its patient (the record is read per patient)
    bad = world.get("/CarePlan", status="active")
    assert bad.status_code == 400 and validate(bad.json()).issue[0].code == "invalid"


def test_an_ended_plan_has_its_end_and_date_searches_its_period(world: World) -> None:
    """A plan transferred out ends on the day of the transfer (the registry's status history); `date` matches
    when the period overlaps it (gt/lt the range above/below meets the period, sa/eb after/before it); the status
    change is in meta.lastUpdated."""
    from datetime import date, timedelta

    from yilianti.chronic import registry
    from yilianti.kit import clock

    with world.factory() as db:
        doctor = b.subject_for(db, b.user(db, db.get(Institution, world.township_id), "doctor"))
        reg = chronic.enrol(db, doctor, world.patients["zhao"], "hypertension", enrolled_on=date(2026, 1, 10))
        db.commit()
        world.plans["ended"] = reg.id  # type: ignore[attr-defined]  # the export's plans (the tests run in any order)
        before = world.get(f"/CarePlan/{reg.id}").json()
        assert before["status"] == "active" and before["period"] == {"start": "2026-01-10"}
        with clock.frozen(clock.now() + timedelta(minutes=5)):  # the change recorded later than the enrolment
            registry.change_status(db, doctor, reg.id, "transferred", "迁居外县", date(2026, 3, 20))
            db.commit()
    client = world.fhirpy()
    zhao = f"Patient/{world.patients['zhao']}"
    [plan] = [p.serialize() for p in client.resources("CarePlan").search(patient=zhao, status="revoked").fetch()]
    model = validate(plan)
    assert plan["id"] == str(reg.id) and plan["period"] == {"start": "2026-01-10", "end": "2026-03-20"}
    assert model.period.end is not None and plan["meta"]["lastUpdated"] > before["meta"]["lastUpdated"]
    for value, found in (("2026-02", True), ("2026-03-20", True), ("2026-03-21", False), ("2025", False),
                         ("2026-01", True), ("gt2026-03-01", True), ("gt2026-03-20", False), ("lt2026-01-10", False),
                         ("lt2026-01-11", True), ("sa2025-12-31", True), ("sa2026-01-10", False),
                         ("eb2026-03-21", True), ("eb2026-03-20", False), ("ne2026-06", True), ("ge2026-03-20", True)):
        ids = [p["id"] for p in client.resources("CarePlan").search(patient=zhao, status="revoked", date=value).fetch()]
        assert (ids == [str(reg.id)]) is found, value
    # the plan still under care has no end: any later date overlaps it
    assert len(client.resources("CarePlan").search(patient=zhao, status="active", date="2099-01-01").fetch()) == 1


def test_a_plan_is_read_under_the_shared_record_rule_and_audited(world: World) -> None:
    pid = world.plans["zhao"]  # type: ignore[attr-defined]
    before = _audit_count(world, resource_type="chronic_registration", resource_id=str(pid), action="read")
    answer = world.get(f"/CarePlan/{pid}")
    assert answer.status_code == 200 and validate(answer.json()).status == "active"
    # no team: the CareTeam is the responsible doctor at the managing centre
    [team] = [c for c in answer.json()["contained"] if c["resourceType"] == "CareTeam"]
    assert "name" not in team and team["participant"][0]["member"]["display"] == "刘医生"
    assert team["managingOrganization"][0]["reference"] == f"Organization/{world.township_id}"
    assert _audit_count(world, resource_type="chronic_registration", resource_id=str(pid), action="read") == before + 1
    # another alliance's doctor: no relationship, no record — 404, as for every other resource
    assert world.get(f"/CarePlan/{pid}", world.outsider_token).status_code == 404
    assert world.get("/CarePlan", world.outsider_token, patient=f"Patient/{world.patients['zhao']}").json()["total"] == 0
    assert world.get("/CarePlan/999999").status_code == 404


def test_everything_export_and_capability_hold_care_plans(world: World) -> None:
    bundle = world.get(f"/Patient/{world.patients['wang']}/$everything").json()
    assert ("CarePlan", str(world.plans["wang"])) in {  # type: ignore[attr-defined]
        (e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]}
    statement = validate(world.get("/metadata").json())
    care_plan = next(r for r in statement.rest[0].resource if r.type == "CarePlan")
    assert {p.name for p in care_plan.searchParam} >= {"patient", "status", "category", "date"}
    assert {i.code for i in care_plan.interaction} >= {"read", "search-type"}
    token = client_token(world, "system/*.read")
    auth = {"Authorization": f"Bearer {token}"}
    kick = httpx.get(world.fhir + "/$export", params={"_type": "CarePlan"},
                     headers={"Prefer": "respond-async", **auth})
    assert kick.status_code == 202, kick.text
    runner.load_job_modules()
    runner.run_pending(world.factory)
    manifest = httpx.get(kick.headers["content-location"], headers=auth).json()
    assert [o["type"] for o in manifest["output"]] == ["CarePlan"]
    lines = [json.loads(x) for x in httpx.get(manifest["output"][0]["url"], headers=auth).text.splitlines()]
    for plan in lines:
        validate(plan)
    assert {p["id"] for p in lines} == {str(i) for i in world.plans.values()}  # type: ignore[attr-defined]


def test_scopes_decide_what_is_read_before_anything_is_queried(world: World) -> None:
    """A token with system/Patient.read only: $everything and _revinclude answer the patient alone, and no read of
    the record (reports, lab results, plans) or of consents is made or audited on its behalf."""
    token = client_token(world, "system/Patient.read")
    record_reads = _audit_count(world, resource_type="shared_record")
    bundle = world.get(f"/Patient/{world.patients['wang']}/$everything", token)
    assert bundle.status_code == 200
    assert {e["resource"]["resourceType"] for e in validate(bundle.json()).model_dump()["entry"]} == {"Patient"}
    found = world.get("/Patient", token, _id=str(world.patients["wang"]), _revinclude="Consent:patient").json()
    assert [e["resource"]["resourceType"] for e in found["entry"]] == ["Patient"]
    assert _audit_count(world, resource_type="shared_record") == record_reads
    with world.factory() as db:
        client_user = db.scalars(select(AuditEvent.user_id).where(AuditEvent.resource_type == "patient")
                                 .order_by(AuditEvent.id.desc())).first()
        touched = set(db.scalars(select(AuditEvent.resource_type).where(AuditEvent.user_id == client_user)))
    assert touched <= {"patient", "oauth_client", "access_token"}, touched
    # with the record's types too, the same call reads them
    wider = client_token(world, "system/Patient.read system/CarePlan.read")
    types = {e["resource"]["resourceType"] for e in world.get(f"/Patient/{world.patients['wang']}/$everything",
                                                               wider).json()["entry"]}
    assert types == {"Patient", "CarePlan"}


def test_groups_of_the_institution_and_their_export(world: World) -> None:
    team_id = world.team_id  # type: ignore[attr-defined]
    client = world.fhirpy()
    found = {g["id"]: g.serialize() for g in client.resources("Group").fetch_all()}
    assert set(found) == {f"team-{team_id}", f"registry-{world.township_id}-hypertension",
                          f"registry-{world.township_id}-diabetes-t2"}
    for group in found.values():
        validate(group)
    team = found[f"team-{team_id}"]
    assert (team["name"], team["quantity"], team["type"], team["actual"]) == ("渠口一队签约居民", 1, "person", True)
    assert team["member"] == [{"entity": {"reference": f"Patient/{world.patients['wang']}"}}]
    diabetes = found[f"registry-{world.township_id}-diabetes-t2"]
    assert diabetes["code"]["coding"][0]["code"] == "diabetes_t2" and diabetes["quantity"] == 1
    assert [g["id"] for g in client.resources("Group").search(code="hypertension").fetch()] == \
        [f"registry-{world.township_id}-hypertension"]
    # listing members is a patient search, audited with the ids shown
    with world.factory() as db:
        last = db.scalars(select(AuditEvent).where(AuditEvent.resource_type == "patient", AuditEvent.action == "search")
                          .order_by(AuditEvent.id.desc())).first()
    assert last is not None and "Group/" in last.detail["q"] and world.patients["wang"] in last.detail["results"]
    # another institution's staff: nothing, and 404 on the group
    assert world.get(f"/Group/team-{team_id}", world.outsider_token).status_code == 404
    assert world.get("/Group", world.lead_token).json()["total"] == 0
    assert world.get("/Group/registry-1-unknown").status_code == 404
    # Group/$export: system clients only, of the group's members only
    assert httpx.get(f"{world.fhir}/Group/team-{team_id}/$export", headers={
        "Prefer": "respond-async", **world.headers()}).status_code == 403
    token = client_token(world, "system/*.read")
    auth = {"Authorization": f"Bearer {token}"}
    kick = httpx.get(f"{world.fhir}/Group/team-{team_id}/$export", params={"_type": "Patient,CarePlan"},
                     headers={"Prefer": "respond-async", **auth})
    assert kick.status_code == 202, kick.text
    assert httpx.get(f"{world.fhir}/Group/team-999999/$export", headers={"Prefer": "respond-async", **auth}
                     ).status_code == 404
    runner.load_job_modules()
    runner.run_pending(world.factory)
    manifest = httpx.get(kick.headers["content-location"], headers=auth).json()
    files = {o["type"]: o for o in manifest["output"]}
    patients = [json.loads(x) for x in httpx.get(files["Patient"]["url"], headers=auth).text.splitlines()]
    assert [p["id"] for p in patients] == [str(world.patients["wang"])]
    plans = [json.loads(x) for x in httpx.get(files["CarePlan"]["url"], headers=auth).text.splitlines()]
    assert [p["id"] for p in plans] == [str(world.plans["wang"])]  # type: ignore[attr-defined]
    statement = world.get("/metadata").json()
    group = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Group")
    assert "export" in {o["name"] for o in group.get("operation", [])}
