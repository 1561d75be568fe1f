"""Patient/$match on the master patient index through fhirpy: grades certain (a valid resident ID or a health
card), probable and possible (the EMPI's rules); onlyCertainMatches and count honoured; only persons the
caller's institution may see are answered."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fhir.helpers import World, build_world, validate
from yilianti.fhir.mapping import SID

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


@pytest.fixture(scope="module")
def world(test_db):  # type: ignore[no-untyped-def]
    yield from build_world(test_db)


def _match(world: World, patient: dict[str, Any], token: str | None = None, **options: Any) -> list[tuple[int, str, float]]:
    params: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Patient", **patient}}]}
    if "only_certain" in options:
        params["parameter"].append({"name": "onlyCertainMatches", "valueBoolean": options["only_certain"]})
    if "count" in options:
        params["parameter"].append({"name": "count", "valueInteger": options["count"]})
    bundle = world.fhirpy(token).execute("Patient/$match", method="post", data=params)
    validate(dict(bundle))
    return [(int(e["resource"]["id"]), next(x["valueCode"] for x in e["search"]["extension"] if x["url"] == GRADE),
             e["search"]["score"]) for e in bundle.get("entry", [])]


def test_a_valid_resident_id_or_health_card_is_certain(world: World) -> None:
    wang = world.patients["wang"]
    by_id = _match(world, {"identifier": [{"system": f"{SID}cn-ric", "value": world.resident_ids["wang"]}]},
                   only_certain=True)
    assert by_id == [(wang, "certain", 1.0)]
    assert _match(world, {"identifier": [{"system": f"{SID}cn-ehc", "value": "EHC0001"}]}) [0][:2] == (wang, "certain")
    # the other member's client does not learn that the person exists
    assert _match(world, {"identifier": [{"system": f"{SID}cn-ric", "value": world.resident_ids["wang"]}]},
                  world.outsider_token) == []


def test_demographics_give_probable_or_possible_matches(world: World) -> None:
    found = _match(world, {"name": [{"text": "王小明"}], "gender": "male", "birthDate": "2015-03-08",
                           "telecom": [{"system": "phone", "value": "13800138001"}]})
    assert found and found[0][0] == world.patients["wang"] and found[0][1] in ("probable", "possible")
    assert 0.5 <= found[0][2] < 1.0
    assert _match(world, {"name": [{"text": "王小明"}], "birthDate": "2015-03-08"}, only_certain=True) == []
    assert len(_match(world, {"name": [{"text": "王小明"}], "birthDate": "2015-03-08"}, count=1)) <= 1


def test_a_malformed_request_is_an_operation_outcome(world: World) -> None:
    import httpx

    r = httpx.post(world.fhir + "/Patient/$match", json={"resourceType": "Patient"}, headers=world.headers())
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    statement = httpx.get(world.fhir + "/metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert [o["name"] for o in patient["operation"]] == ["match", "everything", "export"]
