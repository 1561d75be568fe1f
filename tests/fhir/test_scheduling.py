"""FHIR slice 3: Schedule / Slot / Appointment. Booking through `POST Appointment` on a free Slot goes through
the booking service: no overbooking (many clients, one slot, one booking), the reserved pool only for the
alliance's grassroots members; status moves by PUT with If-Match (412 on a stale version)."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from fhirclient.models.appointment import Appointment as FcAppointment
from fhirpy.base.exceptions import OperationOutcome
from sqlalchemy import select

from tests.fhir.helpers import World, build_world, validate
from yilianti.models import Booking

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def world(test_db):  # type: ignore[no-untyped-def]
    yield from build_world(test_db)


def _slots(world: World, **params: str) -> list[dict[str, Any]]:
    bundle = world.get("/Slot", schedule=f"Schedule/{world.schedule_id}", _count="50", **params).json()
    validate(bundle)
    return [e["resource"] for e in bundle.get("entry", [])]


def _pool(slot: dict[str, Any]) -> str:
    return str(slot["meta"]["tag"][0]["code"])


def _appointment(slot_id: str, patient_id: int) -> dict[str, Any]:
    return {"resourceType": "Appointment", "status": "booked", "slot": [{"reference": f"Slot/{slot_id}"}],
            "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
            "comment": "FHIR 预约"}


def _post(world: World, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    return httpx.post(world.fhir + "/Appointment", json=body,
                      headers={**world.headers(token), "Content-Type": "application/fhir+json"})


def test_schedule_and_its_free_slots_with_their_pools(world: World) -> None:
    schedule = world.get(f"/Schedule/{world.schedule_id}").json()
    validate(schedule)
    assert {a["reference"] for a in schedule["actor"]} == {f"Practitioner/{world.practitioner_id}",
                                                           f"Location/{world.lead_id}"}
    by_actor = world.fhirpy().resources("Schedule").search(actor=f"Practitioner/{world.practitioner_id}").fetch_all()
    assert [int(s.id) for s in by_actor] == [world.schedule_id]
    free = _slots(world, status="free")
    assert len(free) == 6 and sorted(_pool(s) for s in free).count("reserved") == 2
    assert all(s["start"] < s["end"] for s in free)
    assert _slots(world, status="busy") == []
    assert len(_slots(world, start=f"ge{free[0]['start'][:10]}")) == 6


def test_booking_by_post_appointment_keeps_pools_and_never_overbooks(world: World) -> None:
    reserved = next(s for s in _slots(world, status="free") if _pool(s) == "reserved")
    # a secondary hospital is not grassroots: the reserved pool is not its to use
    r = _post(world, _appointment(reserved["id"], world.patients["sun"]), world.second_token)
    assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome", r.text
    # an institution of another alliance cannot book the lead's sessions at all
    assert _post(world, _appointment(reserved["id"], world.patients["qian"]), world.outsider_token).status_code == 403
    # nor book a patient it cannot see
    assert _post(world, _appointment(reserved["id"], world.patients["qian"])).status_code == 404
    # the township doctor books it with fhirpy
    made = world.fhirpy().resource("Appointment", **_appointment(reserved["id"], world.patients["wang"]))
    made.save()
    body = made.serialize()
    validate(body)
    assert body["status"] == "booked" and body["slot"] == [{"reference": f"Slot/{reserved['id']}"}]
    with world.factory() as db:
        booking = db.get(Booking, int(body["id"]))
        assert booking is not None and booking.pool == "reserved" and booking.patient_id == world.patients["wang"]
        assert booking.booked_by_institution_id == world.township_id and booking.note == "FHIR 预约"
    assert world.get(f"/Slot/{reserved['id']}").json()["status"] == "busy"
    # the same slot again: 409, whoever asks
    again = _post(world, _appointment(reserved["id"], world.patients["zhao"]))
    assert again.status_code == 409 and again.json()["issue"][0]["code"] == "conflict"
    with pytest.raises(OperationOutcome):
        world.fhirpy().resource("Appointment", **_appointment(reserved["id"], world.patients["zhao"])).save()


def test_many_clients_one_free_slot_one_booking(world: World) -> None:
    public = next(s for s in _slots(world, status="free") if _pool(s) == "public")
    results: list[int] = []

    def book(patient: str, token: str) -> None:
        results.append(_post(world, _appointment(public["id"], world.patients[patient]), token).status_code)

    threads = [threading.Thread(target=book, args=args) for args in
               [("zhao", world.token), ("sun", world.second_token)] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results).count(201) == 1 and set(results) <= {201, 409}, results
    with world.factory() as db:
        assert len(db.scalars(select(Booking).where(Booking.slot_id == int(public["id"]))).all()) == 1


def test_appointment_search_and_status_move_with_if_match(world: World) -> None:
    slot = next(s for s in _slots(world, status="free"))
    r = _post(world, _appointment(slot["id"], world.patients["zhou"]))
    assert r.status_code == 201, r.text
    appointment, etag = r.json(), r.headers["etag"]
    assert r.headers["location"].endswith(f"/fhir/Appointment/{appointment['id']}")
    server = world.fhirclient().server
    mine = FcAppointment.where(struct={"patient": f"Patient/{world.patients['zhou']}", "status": "booked"}
                               ).perform_resources(server)
    assert appointment["id"] in {a.id for a in mine}
    for a in mine:
        validate(a.as_json())
    day = appointment["start"][:10]
    assert world.get("/Appointment", date=f"lt{day}", _total="accurate").json()["total"] == 0
    # the lead (the receiving site) sees it too; another alliance's client does not
    assert world.get(f"/Appointment/{appointment['id']}", token=world.outsider_token).status_code == 404
    cancelled = {**appointment, "status": "cancelled", "cancelationReason": {"text": "患者改期"}}
    stale = httpx.put(world.fhir + f"/Appointment/{appointment['id']}", json=cancelled,
                      headers={**world.headers(), "If-Match": 'W/"0000000000000000"'})
    assert stale.status_code == 412 and stale.json()["issue"][0]["code"] == "conflict"
    done = httpx.put(world.fhir + f"/Appointment/{appointment['id']}", json=cancelled,
                     headers={**world.headers(), "If-Match": etag})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled" and done.headers["etag"] != etag
    validate(done.json())
    assert world.get(f"/Slot/{slot['id']}").json()["status"] == "free"  # the cancelled booking freed its slot
    back = httpx.put(world.fhir + f"/Appointment/{appointment['id']}", json={**appointment, "status": "booked"},
                     headers=world.headers())
    assert back.status_code == 409  # a cancelled booking is not booked again by an update


def test_the_capability_statement_declares_booking(world: World) -> None:
    statement = httpx.get(world.fhir + "/metadata").json()
    appointment = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Appointment")
    assert {i["code"] for i in appointment["interaction"]} == {"read", "vread", "history-instance", "search-type",
                                                               "create", "update"}
    assert appointment["versioning"] == "versioned-update"


def _bundle(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": e, "request": {"method": "POST", "url": "Appointment"}} for e in entries]}


def test_a_transaction_bundle_is_all_or_nothing(world: World) -> None:
    free = _slots(world, status="free")
    public = [s for s in free if _pool(s) == "public"]
    assert len(public) >= 2
    # the second entry wants the slot the first just took: refused, and the first booking is undone too
    r = httpx.post(world.fhir, json=_bundle(_appointment(public[0]["id"], world.patients["zhou"]),
                                            _appointment(public[0]["id"], world.patients["zhou"])),
                   headers=world.headers())
    assert r.status_code == 409, r.text
    assert any(i.get("expression") == ["Bundle.entry[1]"] for i in r.json()["issue"])
    assert {s["id"] for s in _slots(world, status="free")} == {s["id"] for s in free}
    # a transaction that goes through: booked
    r = httpx.post(world.fhir, json=_bundle(_appointment(public[0]["id"], world.patients["zhou"])),
                   headers=world.headers())
    assert r.status_code == 200, r.text
    done = r.json()
    validate(done)
    assert done["type"] == "transaction-response" and done["entry"][0]["response"]["status"] == "201 Created"
    assert world.get(f"/Slot/{public[0]['id']}").json()["status"] == "busy"
