"""FHIR slice 3: a referral as ServiceRequest + Task (HL7 BSeR style). Task.businessStatus is the platform's
status; a Task update is a move of the referral's state machine — accepted, or refused with 409 (403 for the
other side's move, 412 for a stale If-Match)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhirclient.models.task import Task as FcTask
from sqlalchemy import select

from tests.fhir.helpers import World, build_world, validate
from yilianti.fhir.mapping import REFERRAL_STATUS_SYSTEM
from yilianti.models.referral import Referral, ReferralHistory

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def world(test_db):  # type: ignore[no-untyped-def]
    yield from build_world(test_db)


def _put(world: World, task: dict[str, Any], token: str, etag: str | None = None) -> httpx.Response:
    headers = world.headers(token) | ({"If-Match": etag} if etag else {})
    return httpx.put(f"{world.fhir}/Task/{task['id']}", json=task, headers=headers)


def _business(status: str) -> dict[str, Any]:
    return {"coding": [{"system": REFERRAL_STATUS_SYSTEM, "code": status}]}


def test_the_referral_reads_as_service_request_and_task_on_both_sides_only(world: World) -> None:
    for token in (world.token, world.lead_token):
        request = world.get(f"/ServiceRequest/{world.referral_id}", token=token).json()
        validate(request)
        assert request["status"] == "active" and request["priority"] == "urgent"
        assert request["requester"]["reference"] == f"Organization/{world.township_id}"
        assert request["subject"]["reference"] == f"Patient/{world.patients['wang']}"
        task = world.get(f"/Task/{world.referral_id}", token=token).json()
        validate(task)
        assert task["status"] == "requested" and task["businessStatus"]["coding"][0]["code"] == "submitted"
        assert task["owner"]["reference"] == f"Organization/{world.lead_id}"
        assert task["focus"]["reference"] == f"ServiceRequest/{world.referral_id}"
    assert world.get(f"/Task/{world.referral_id}", token=world.outsider_token).status_code == 404
    assert world.get(f"/ServiceRequest/{world.referral_id}", token=world.second_token).status_code == 404
    inbox = world.fhirpy(world.lead_token).resources("Task").search(
        owner=f"Organization/{world.lead_id}", status="requested").fetch_all()
    assert [t.id for t in inbox] == [str(world.referral_id)]
    assert world.fhirpy(world.outsider_token).resources("Task").fetch_all() == []


def test_task_updates_move_the_referral_through_its_state_machine(world: World) -> None:
    r = world.get(f"/Task/{world.referral_id}", token=world.lead_token)
    task, etag = r.json(), r.headers["etag"]
    # the sender cannot receive its own referral: that is the receiver's move
    refused = _put(world, {**task, "status": "received", "businessStatus": _business("received")}, world.token)
    assert refused.status_code == 403, refused.text
    # a stale version is refused before anything moves
    stale = _put(world, {**task, "businessStatus": _business("received")}, world.lead_token, 'W/"0"')
    assert stale.status_code == 412 and stale.json()["resourceType"] == "OperationOutcome"
    received = _put(world, {**task, "status": "received", "businessStatus": _business("received")},
                    world.lead_token, etag)
    assert received.status_code == 200, received.text
    validate(received.json())
    assert received.json()["businessStatus"]["coding"][0]["code"] == "received"
    # Task.status alone where it means one move: accepted
    accepted = _put(world, {**received.json(), "status": "accepted", "businessStatus": None}, world.lead_token,
                    received.headers["etag"])
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted", accepted.text
    # a move the machine does not declare (accepted → outcome returned) is 409, nothing changes
    jump = _put(world, {**accepted.json(), "status": "in-progress", "businessStatus": _business("outcome_returned"),
                        "output": [{"type": {"text": "诊疗结果"}, "valueString": "已诊治"}]}, world.lead_token)
    assert jump.status_code == 409 and jump.json()["issue"][0]["code"] == "conflict"
    with world.factory() as db:
        referral = db.get(Referral, world.referral_id)
        assert referral is not None and referral.status == "accepted"
        moves = [h.to_status for h in db.scalars(select(ReferralHistory).where(
            ReferralHistory.referral_id == world.referral_id).order_by(ReferralHistory.id))]
        assert moves[-2:] == ["received", "accepted"]
    task = FcTask.read(str(world.referral_id), world.fhirclient(world.lead_token).server)
    assert task.status == "accepted"
    statement = httpx.get(world.fhir + "/metadata").json()
    declared = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Task")
    assert {i["code"] for i in declared["interaction"]} == {"read", "vread", "history-instance", "search-type", "update"}


def test_patient_everything_as_the_caller_may_see_it(world: World) -> None:
    wang = world.patients["wang"]
    bundle = world.fhirpy().execute(f"Patient/{wang}/$everything", method="get")
    validate(dict(bundle))
    kinds = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds == ["Consent", "DiagnosticReport", "ImagingStudy", "Observation", "Patient", "ServiceRequest", "Task"]
    assert world.get(f"/Patient/{wang}/$everything", token=world.outsider_token).status_code == 404


def test_a_tasks_history_holds_each_step_and_vread_answers_them(world: World) -> None:
    """Each step of the referral's state machine is a version of its Task: _history lists them newest first (the
    first as its creation), vread answers each by its versionId, with the status of that step."""
    history = world.get(f"/Task/{world.referral_id}/_history").json()
    validate(history)
    entries = history["entry"]
    assert history["type"] == "history" and len(entries) >= 2 and entries[-1]["request"]["method"] == "POST"
    current = world.get(f"/Task/{world.referral_id}").json()
    assert entries[0]["resource"] == current
    with world.factory() as db:
        steps = list(db.scalars(select(ReferralHistory.to_status).where(ReferralHistory.referral_id == world.referral_id)
                                .order_by(ReferralHistory.at, ReferralHistory.id)))
    assert [e["resource"]["businessStatus"]["coding"][0]["code"] for e in reversed(entries)][:len(steps) - 1] \
        == steps[:len(steps) - 1]
    oldest = entries[-1]["resource"]
    version = world.get(f"/Task/{world.referral_id}/_history/{oldest['meta']['versionId']}")
    assert version.status_code == 200 and version.json()["businessStatus"] == oldest["businessStatus"]
    assert version.headers["etag"] == entries[-1]["response"]["etag"]
    # the other member's client sees no version of it
    assert world.get(f"/Task/{world.referral_id}/_history", world.outsider_token).status_code == 404
    assert world.get(f"/Task/{world.referral_id}/_history/{oldest['meta']['versionId']}",
                     world.outsider_token).status_code == 404
    statement = httpx.get(world.fhir + "/metadata").json()
    task = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Task")
    assert {"vread", "history-instance"} <= {i["code"] for i in task["interaction"]} and task["readHistory"] is True
