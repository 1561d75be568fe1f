"""What every FHIR answer shares: the media type, OperationOutcome for errors, Bundles with paging links.

Errors raised anywhere under /fhir (AppError, validation, 404 of an unknown path, 401) are rendered by
web/errors.render_error as an OperationOutcome: the contract's error code and message travel in
`issue.details` (coding + text) and `issue.diagnostics`, each field error as an issue with `expression`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from starlette.responses import Response

from yilianti.exceptions import AppError
from yilianti.kit.paths import FHIR_BASE

FHIR_JSON = "application/fhir+json"
BASE = FHIR_BASE
CODE_SYSTEM = "https://yilianti.org/fhir/CodeSystem/"  # the platform's own code systems (its codes, as stored)
ERROR_SYSTEM = CODE_SYSTEM + "error"

# HTTP status → OperationOutcome.issue.code (http://hl7.org/fhir/issue-type)
ISSUE_CODE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
              406: "not-supported", 409: "conflict", 410: "deleted", 412: "conflict", 413: "too-costly",
              415: "not-supported", 422: "processing", 423: "security", 428: "required", 429: "throttled",
              503: "transient"}


_DIGITS = re.compile(r"[0-9]+")


def digits(value: str) -> bool:
    """ASCII digits only (str.isdigit also takes "¹" and "٣", which int() refuses)."""
    return _DIGITS.fullmatch(value) is not None


class FhirResponse(Response):
    """JSON as application/fhir+json (UTF-8, non-ASCII kept: Chinese names stay readable)."""

    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def outcome(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """The contract's error body ({"error", "message", "fields"}) as an OperationOutcome."""
    severity = "fatal" if status >= 500 else "error"
    code = ISSUE_CODE.get(status, "exception" if status >= 500 else "invalid")
    message = str(body.get("message") or body.get("error") or "")
    details = {"coding": [{"system": ERROR_SYSTEM, "code": str(body.get("error") or "error")}], "text": message}
    issues: list[dict[str, Any]] = []
    for name, text in (body.get("fields") or {}).items():
        issues.append({"severity": severity, "code": code, "details": details, "diagnostics": str(text),
                       "expression": [str(name)]})
    if not issues:
        issues.append({"severity": severity, "code": code, "details": details, "diagnostics": message})
    return {"resourceType": "OperationOutcome", "issue": issues}


def outcome_response(status: int, body: dict[str, Any]) -> FhirResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="fhir"'} if status == 401 else None
    return FhirResponse(outcome(status, body), status_code=status, headers=headers)


def entry(base: str, resource: dict[str, Any], mode: str = "match") -> dict[str, Any]:
    return {"fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}", "resource": resource,
            "search": {"mode": mode}}


def searchset(base: str, self_url: str, resources: list[dict[str, Any]], *, total: int | None,
              next_url: str | None, included: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    entries = [entry(base, r) for r in resources] + [entry(base, r, "include") for r in included or []]
    if entries:
        bundle["entry"] = entries
    return bundle


def versioned(resource: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The resource with `meta.versionId` (a digest of its content: the tables keep no version counter) and its
    weak ETag, which If-Match must name for an update to go ahead."""
    digest = hashlib.sha256(json.dumps(resource, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]
    return {**resource, "meta": {**resource.get("meta", {}), "versionId": digest}}, f'W/"{digest}"'


def etag_matches(if_match: str | None, etag: str) -> bool:
    """Whether an If-Match header (absent: no condition) names the current version (weak or strong form)."""
    if if_match is None:
        return True
    wanted = {v.strip().removeprefix("W/") for v in if_match.split(",")}
    return "*" in wanted or etag.removeprefix("W/") in wanted


class PreconditionFailed(AppError):
    status, code, default_message = 412, "version_conflict", "资源已被他人修改，请重新读取后再试"
