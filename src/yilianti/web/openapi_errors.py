"""The published OpenAPI names the contract's error body (CONTRACTS.md) for every error an /api/v1 operation
can answer, in place of FastAPI's default 422 schema ({"detail": [...]}), which the API never sends; and an
OperationOutcome (application/fhir+json) for every error of a /fhir operation (fhir/wire.py renders them)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

ERROR_SCHEMA = "Error"
ERRORS = {
    "400": "Bad request",
    "401": "Not logged in, or the API token is unknown, expired or revoked (`unauthenticated`, `bad_token`)",
    "403": "Visible but forbidden for this user or institution (`forbidden`, `csrf_failed`, ...)",
    "404": "Unknown, or not visible to the caller (`not_found`)",
    "409": "In conflict with the resource's current state (`conflict`, `slot_full`, ...)",
    "413": "The request body is too large (`too_large`)",
    "422": "Malformed input: `fields` names each field with its message (`invalid_input`, ...)",
    "503": "The database is unavailable or busy; retry after `Retry-After` seconds (`unavailable`, `busy`)",
}
_WITH_BODY_ONLY = {"413"}
OUTCOME_SCHEMA = "OperationOutcome"
FHIR_ERRORS = {
    "400": "Invalid search parameter or value (issue code `invalid`)",
    "401": "No or an unknown API token (`login`)",
    "403": "Visible but forbidden (`forbidden`)",
    "404": "Unknown, or not visible to the caller's institution (`not-found`)",
    "409": "In conflict with the resource's current state (`conflict`)",
    "422": "A resource the server cannot process (`processing`)",
    "503": "The database is unavailable or busy; retry after `Retry-After` seconds (`transient`)",
}


class Error(BaseModel):
    """Every error of the JSON API (CONTRACTS.md); `message` follows Accept-Language (Chinese by default)."""

    error: str = Field(description="a stable code, e.g. not_found, invalid_input, slot_full")
    message: str = Field(description="for people, in the request's language")
    fields: dict[str, str] | None = Field(default=None, description="input errors only: field → message")


def install(app: FastAPI) -> None:
    """Wrap `app.openapi` so that the schema, built once, carries the error responses."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            with_errors(build())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


class Issue(BaseModel):
    severity: str = Field(description="fatal | error")
    code: str = Field(description="http://hl7.org/fhir/issue-type: invalid, login, not-found, conflict, ...")
    diagnostics: str | None = Field(default=None, description="for people, in the request's language")
    expression: list[str] | None = Field(default=None, description="the parameter or element at fault")
    details: dict[str, Any] | None = Field(default=None, description="the platform's error code (coding) and text")


class OperationOutcome(BaseModel):
    """Every error under /fhir: a FHIR OperationOutcome."""

    resourceType: str = Field(description="OperationOutcome")  # noqa: N815 - FHIR's name
    issue: list[Issue]


def _fhir_errors(operation: dict[str, Any]) -> None:
    ref = {"$ref": f"#/components/schemas/{OUTCOME_SCHEMA}"}
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's default for a route with parameters: replaced below
    for status, description in FHIR_ERRORS.items():
        responses[status] = {"description": description, "content": {"application/fhir+json": {"schema": ref}}}


def with_errors(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_SCHEMA] = Error.model_json_schema(ref_template="#/components/schemas/{model}")
    outcome = OperationOutcome.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(outcome.pop("$defs", {}))
    components[OUTCOME_SCHEMA] = outcome
    ref = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
    for path, item in schema.get("paths", {}).items():
        if path == "/fhir" or path.startswith("/fhir/"):
            for operation in item.values():
                _fhir_errors(operation)
            continue
        if not path.startswith(("/api/v1/", "/dicomweb/", "/oauth/")):  # DICOMweb and OAuth2 errors: the contract body too
            continue
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                if status in _WITH_BODY_ONLY and "requestBody" not in operation:
                    continue
                responses[status] = {"description": description, "content": {"application/json": {"schema": ref}}}
    used = str(schema.get("paths"))
    for name in ("HTTPValidationError", "ValidationError"):
        if f"/{name}'" not in used:
            components.pop(name, None)
    return schema
