"""The CapabilityStatement, read off the routes of /fhir: an interaction is declared because a route
answers it, a search parameter because the route parses it (the endpoint's `fhir_params`, the same table
search.parse uses). tests/fhir/test_capability.py checks the converse: every declared interaction answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

import yilianti
from yilianti.fhir.mapping import instant
from yilianti.fhir.search import Param
from yilianti.fhir.wire import BASE, FHIR_JSON
from yilianti.kit import clock

DEFINITIONS = {"match": "http://hl7.org/fhir/OperationDefinition/Patient-match",
               "everything": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
               "export": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}
FHIR_VERSION = "4.0.1"  # R4; the resources keep to R4 elements (validated with fhir.resources' R4B models)


def _interactions(parts: list[str], method: str) -> tuple[str | None, str, str | None]:
    """(resource type or None for the system, interaction code, operation name) of one route and method."""
    if not parts or parts == [""]:
        return None, {"POST": "transaction"}.get(method, ""), None
    type_, rest = parts[0], parts[1:]
    if type_.startswith("$"):
        return None, "operation", type_[1:]
    if not rest:
        return type_, {"GET": "search-type", "POST": "create"}.get(method, ""), None
    if rest[-1].startswith("$"):
        return type_, "operation", rest[-1][1:]
    if rest == ["{id}"]:
        return type_, {"GET": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, ""), None
    if rest[1:2] == ["_history"]:
        return type_, "vread" if len(rest) == 3 else "history-instance", None
    return type_, "", None


def _search_params(params: dict[str, Param]) -> list[dict[str, Any]]:
    return [{"name": p.name, "type": p.type, "documentation": p.doc} for p in params.values()]


SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def statement(routes: Sequence[BaseRoute], base_url: str, token_url: str) -> dict[str, Any]:
    """The statement of the FHIR router's routes (fhir/api.py's `router`, mounted whole by main.py)."""
    resources: dict[str, dict[str, Any]] = {}
    system: list[str] = []
    operations: list[dict[str, Any]] = []
    for route in routes:
        if not isinstance(route, APIRoute) or not route.path.startswith(BASE + "/") and route.path != BASE:
            continue
        parts = route.path[len(BASE) + 1:].split("/") if route.path != BASE else []
        if parts == ["metadata"] or parts and parts[0][:1] in ("_", "."):  # discovery, a bulk export's status
            continue
        for method in sorted(route.methods or ()):
            type_, code, op = _interactions(parts, method)
            if not code:
                continue
            if type_ is None:
                if op:
                    operations.append({"name": op, "definition": f"{base_url}/OperationDefinition/{op}"})
                elif code not in system:
                    system.append(code)
                continue
            res = resources.setdefault(type_, {"type": type_, "interaction": [], "versioning": "no-version",
                                               "readHistory": False, "updateCreate": False})
            if op:
                res.setdefault("operation", []).append(
                    {"name": op, "definition": DEFINITIONS.get(op, f"{base_url}/OperationDefinition/{type_}-{op}")})
                continue
            if {"code": code} not in res["interaction"]:
                res["interaction"].append({"code": code})
            params = getattr(route.endpoint, "fhir_params", None)
            if code == "search-type" and params:
                res["searchParam"] = _search_params(params)
                res["searchInclude"] = sorted(getattr(route.endpoint, "fhir_includes", ())) or None
                res["searchRevInclude"] = sorted(getattr(route.endpoint, "fhir_revincludes", ())) or None
            if code == "update" and getattr(route.endpoint, "fhir_versioned", False):
                res["versioning"] = "versioned-update"
            if code == "vread" and res["versioning"] == "no-version":
                res["versioning"] = "versioned"
            if code == "vread":
                res["readHistory"] = bool(getattr(route.endpoint, "fhir_past_versions", False))
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": "The alliance platform's data as FHIR R4: a client sees exactly what its institution "
                         "may see (care relationship, grants, sharing consent); every read of patient data is "
                         "audited. Credentials: the platform's API tokens (Authorization: Bearer), a session, or "
                         "a system client's OAuth2 access token (SMART Backend Services).",
        "security": {"cors": False,
                     "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url}]}],
                     "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                                  "text": "OAuth2 client credentials (SMART Backend Services)"}],
                     "description": "A system client registered per member institution gets access tokens at the "
                                    "token endpoint (client assertion signed RS384/ES384, or its secret) with "
                                    "system/ scopes; a Bearer API token issued per member system and institution "
                                    "works too. What is not visible answers 404 (OperationOutcome)."},
        "resource": [{k: v for k, v in r.items() if v is not None} for _, r in sorted(resources.items())],
    }
    if system:
        rest["interaction"] = [{"code": c} for c in system]
    if operations:
        rest["operation"] = operations
    return {
        "resourceType": "CapabilityStatement",
        "id": "yilianti",
        "url": f"{base_url}/metadata",
        "version": yilianti.__version__,
        "name": "YiliantiFhirServer",
        "title": "医联体协同平台 FHIR R4 服务",
        "status": "active",
        "date": instant(clock.now()),
        "publisher": "Yilianti",
        "kind": "instance",
        "software": {"name": "Yilianti", "version": yilianti.__version__},
        "implementation": {"description": "医联体协同平台 FHIR R4 endpoint", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": [FHIR_JSON, "json"],
        "rest": [rest],
    }
