"""Schemathesis hooks of tests/fuzz/run_schemathesis.py: the contract's error body as a check.

CONTRACTS.md: every JSON API error body is {"error": code, "message": text, "fields": {field: text}} (`fields`
only for input errors), never FastAPI's {"detail": ...} nor an HTML page.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis


def fhir_problem(status: int, content_type: str, text: str) -> str | None:
    """What is wrong with a /fhir error answer, or None when it is an OperationOutcome (CONTRACTS.md)."""
    if not content_type.startswith("application/fhir+json"):
        return f"{status} answered as {content_type or 'no content type'}, not application/fhir+json"
    try:
        body = json.loads(text)
    except ValueError:
        return f"{status} body is not JSON: {text[:200]!r}"
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return f"{status} body is not an OperationOutcome: {text[:300]}"
    issues = body.get("issue")
    if not isinstance(issues, list) or not issues or not all(
            isinstance(i, dict) and i.get("severity") and i.get("code") for i in issues):
        return f"{status} OperationOutcome without issues (severity, code): {text[:300]}"
    return None


def contract_problem(path: str, status: int, content_type: str, text: str) -> str | None:
    """What is wrong with an /api/v1, /dicomweb or /fhir error answer, or None when it is in the contract's shape."""
    if (path == "/fhir" or path.startswith("/fhir/")) and status >= 400:
        return fhir_problem(status, content_type, text)
    if not path.startswith(("/api/v1", "/dicomweb")) or status < 400:
        return None
    if path.startswith("/dicomweb") and status == 409 and content_type.startswith("application/dicom+json"):
        return None  # STOW-RS storing nothing answers the DICOM JSON store response (its FailedSOPSequence), PS3.18
    if not content_type.startswith("application/json"):
        return f"{status} answered as {content_type or 'no content type'}, not JSON"
    try:
        body = json.loads(text)
    except ValueError:
        return f"{status} body is not JSON: {text[:200]!r}"
    if not isinstance(body, dict) or not set(body) <= {"error", "message", "fields"}:
        return f"{status} body has keys outside the contract: {text[:300]}"
    if not isinstance(body.get("error"), str) or not body["error"]:
        return f"{status} body without an error code: {text[:300]}"
    if not isinstance(body.get("message"), str) or not body["message"]:
        return f"{status} body without a message: {text[:300]}"
    fields = body.get("fields", {})
    if not isinstance(fields, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        return f"{status} body's fields are not {{field: text}}: {text[:300]}"
    if any(k.isdigit() for k in fields):
        return f"{status} body names a field by a character offset: {text[:300]}"
    return None


@schemathesis.check
def contract_error_body(ctx: Any, response: Any, case: Any) -> None:
    """Every /api/v1 and /dicomweb error answer is the contract's JSON body, every /fhir one an OperationOutcome
    (CONTRACTS.md)."""
    problem = contract_problem(case.path, response.status_code, response.headers.get("content-type", [""])[0]
                               if isinstance(response.headers.get("content-type"), list)
                               else response.headers.get("content-type", ""), response.text)
    if problem:
        raise AssertionError(problem)
