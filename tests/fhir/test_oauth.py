"""System clients (SMART Backend Services): a member system registered for its institution gets an access token at
the token endpoint advertised in .well-known/smart-configuration and the CapabilityStatement — with a client
assertion signed RS384 or ES384 by a registered key, or its client secret — and reads the FHIR API with fhirpy
within its scopes, seeing only its institution's patients; everything refused is a 401/403/404 OperationOutcome."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fhirpy.base.exceptions import ForbiddenError
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.fhir.helpers import World, build_world, validate
from yilianti.auth import clients

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


@pytest.fixture(scope="module")
def world(test_db):  # type: ignore[no-untyped-def]
    yield from build_world(test_db)


def _keypair(kind: str) -> tuple[Any, dict[str, Any]]:
    """A private key and its public JWK (with a kid), as a member system would make them."""
    if kind == "RS384":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    else:
        private = ec.generate_private_key(ec.SECP384R1())
        public = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": uuid.uuid4().hex, "alg": kind}


def _register(world: World, institution_id: int, scope: str, jwks: dict[str, Any] | None = None,
              secret: bool = False) -> clients.Registered:
    with world.factory() as db:
        done = clients.register(db, None, institution_id, "县HIS", scope,
                                json.dumps({"keys": [jwks]}) if jwks else None, secret)
        db.commit()
        db.expunge(done.client)
    return done


def _config(world: World) -> dict[str, Any]:
    answer = httpx.get(world.fhir + "/.well-known/smart-configuration")
    assert answer.status_code == 200
    return answer.json()


def _assertion(world: World, client_id: str, private: Any, jwk: dict[str, Any], *, aud: str | None = None,
               jti: str | None = None) -> str:
    claims = {"iss": client_id, "sub": client_id, "aud": aud or _config(world)["token_endpoint"],
              "exp": int(time.time()) + 240, "jti": jti or uuid.uuid4().hex}
    return jwt.encode(claims, private, algorithm=jwk["alg"], headers={"kid": jwk["kid"]})


def _token(world: World, assertion: str, scope: str | None = None) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    if scope:
        form["scope"] = scope
    return httpx.post(_config(world)["token_endpoint"], data=form)


def test_the_token_endpoint_is_advertised(world: World) -> None:
    config = _config(world)
    assert config["token_endpoint"] == world.base + "/oauth/token"
    assert {"private_key_jwt", "client_secret_basic"} <= set(config["token_endpoint_auth_methods_supported"])
    assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert config["grant_types_supported"] == ["client_credentials"]
    statement = httpx.get(world.fhir + "/metadata").json()
    validate(statement)
    security = statement["rest"][0]["security"]
    uris = next(e for e in security["extension"] if e["url"] == OAUTH_URIS)["extension"]
    assert {"url": "token", "valueUri": config["token_endpoint"]} in uris
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"


def test_an_rs384_client_reads_only_its_institutions_patients(world: World) -> None:
    private, jwk = _keypair("RS384")
    client_id = _register(world, world.township_id, "system/*.read", jwk).client.client_id
    assertion = _assertion(world, client_id, private, jwk)
    answer = _token(world, assertion)
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 300 and token["scope"] == "system/*.read"
    assert answer.headers["cache-control"] == "no-store"
    fhir = world.fhirpy(token["access_token"])
    names = {p["name"][0]["text"] for p in fhir.resources("Patient").limit(50).fetch_all()}
    assert {"王小明", "赵老汉", "周阿姨"} <= names and "钱女士" not in names and "孙先生" not in names
    wang = fhir.reference("Patient", str(world.patients["wang"])).to_resource()
    validate(dict(wang.serialize()))
    other = httpx.get(f"{world.fhir}/Patient/{world.patients['qian']}",
                      headers={"Authorization": f"Bearer {token['access_token']}"})
    assert other.status_code == 404 and validate(other.json()).issue[0].code == "not-found"
    # read scopes do not write
    write = httpx.put(f"{world.fhir}/Task/{world.referral_id}", json={"resourceType": "Task"},
                      headers={"Authorization": f"Bearer {token['access_token']}"})
    assert write.status_code == 403 and validate(write.json()).issue[0].code == "forbidden"
    assert write.json()["issue"][0]["details"]["coding"][0]["code"] == "insufficient_scope"
    # a replayed assertion, or one made for another audience, gets no token
    replay = _token(world, assertion)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    wrong_aud = _token(world, _assertion(world, client_id, private, jwk, aud="https://elsewhere.example/token"))
    assert wrong_aud.status_code == 401 and wrong_aud.json()["error"] == "invalid_client"
    # a key the client did not register
    stranger, stranger_jwk = _keypair("RS384")
    forged = _token(world, _assertion(world, client_id, stranger, {**stranger_jwk, "kid": jwk["kid"]}))
    assert forged.status_code == 401


def test_an_es384_client_holds_to_its_scopes(world: World) -> None:
    private, jwk = _keypair("ES384")
    client_id = _register(world, world.township_id, "system/Patient.read", jwk).client.client_id
    wider = _token(world, _assertion(world, client_id, private, jwk), scope="system/*.read")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    answer = _token(world, _assertion(world, client_id, private, jwk), scope="system/Patient.read")
    assert answer.status_code == 200, answer.text
    fhir = world.fhirpy(answer.json()["access_token"])
    assert fhir.resources("Patient").search(identifier=world.resident_ids["wang"]).fetch()
    with pytest.raises(ForbiddenError) as refused:
        fhir.resources("Appointment").fetch()
    assert validate(json.loads(str(refused.value))).issue[0].code == "forbidden"
    # $everything answers only the types the scopes cover: the patient itself
    bundle = httpx.get(f"{world.fhir}/Patient/{world.patients['wang']}/$everything",
                       headers={"Authorization": f"Bearer {answer.json()['access_token']}"}).json()
    validate(bundle)
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"Patient"}


def test_a_secret_client_and_revocation(world: World) -> None:
    done = _register(world, world.outsider_id, "system/*.read", secret=True)
    assert done.secret
    url = _config(world)["token_endpoint"]
    bad = httpx.post(url, data={"grant_type": "client_credentials"}, auth=(done.client.client_id, "wrong"))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    unsupported = httpx.post(url, data={"grant_type": "password"}, auth=(done.client.client_id, done.secret))
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"
    answer = httpx.post(url, data={"grant_type": "client_credentials"}, auth=(done.client.client_id, done.secret))
    assert answer.status_code == 200, answer.text
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    patients = httpx.get(world.fhir + "/Patient", headers=headers, params={"_count": 50}).json()
    assert [e["resource"]["name"][0]["text"] for e in patients.get("entry", [])] == ["钱女士"]
    # the access token is for the FHIR API only
    assert httpx.get(world.base + "/api/v1/me", headers=headers).status_code == 401
    with world.factory() as db:
        clients.revoke(db, None, clients.client_by_pk(db, done.client.id))
        db.commit()
    gone = httpx.get(world.fhir + "/Patient", headers=headers)
    assert gone.status_code == 401 and validate(gone.json()).issue[0].code == "login"
    again = httpx.post(url, data={"grant_type": "client_credentials", "client_id": done.client.client_id,
                                  "client_secret": done.secret})
    assert again.status_code == 401
