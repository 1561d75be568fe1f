"""FHIR R4 routes under /fhir (application/fhir+json; errors as OperationOutcome, fhir/wire.py).

Credentials are the platform's own: an API token (Authorization: Bearer) or the session cookie, or a system
client's OAuth2 access token (auth/clients.py, SMART Backend Services), whose scopes every route checks
(`scoped`: 403 OperationOutcome when the token's scopes do not cover the resource type). `metadata` and
`.well-known/smart-configuration` answer without them, as the specifications allow. Each resource type of service.KINDS gets a search and a
read route; the CapabilityStatement is read off these routes (capability.py).
"""

from __future__ import annotations

from collections.abc import Callable
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import FileResponse, JSONResponse, Response

from yilianti.auth import clients
from yilianti.auth.api import token_url
from yilianti.auth.deps import DB, CurrentSubject
from yilianti.authz.subject import Subject
from yilianti.exceptions import Forbidden
from yilianti.fhir import capability, export, service
from yilianti.fhir.search import parse
from yilianti.fhir.service import KINDS, Kind
from yilianti.fhir.wire import (
    BASE,
    FHIR_JSON,
    FhirResponse,
    PreconditionFailed,
    etag_matches,
    searchset,
    versioned,
)
from yilianti.kit import clock
from yilianti.kit.schemas import Id

router = APIRouter(prefix=BASE, tags=["fhir"], default_response_class=FhirResponse)
RESOURCE = {"description": "A FHIR resource", "content": {FHIR_JSON: {"schema": {"type": "object"}}}}


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + BASE


def page_url(request: Request, page: int) -> str:
    """The request's URL with `_page` set: the `next` link of a searchset."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k != "_page"] + [("_page", str(page))]
    return f"{base_url(request)}{request.url.path[len(BASE):]}?{urlencode(items)}"


class InsufficientScope(Forbidden):
    code, default_message = "insufficient_scope", "访问令牌的权限范围不包括此操作：{needed}"


def require_scope(subject: Subject, resource_type: str, mode: str) -> None:
    if not clients.permits(subject.scopes, resource_type, mode):
        raise InsufficientScope(needed=f"system/{resource_type}.{mode}")


def scoped(resource_type: str, mode: str) -> DependsParam:
    """A route's scope check: a system client's token must carry a scope covering `mode` on the type."""
    def check(subject: CurrentSubject) -> None:
        require_scope(subject, resource_type, mode)

    return Depends(check)


def readable(subject: Subject, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The resources whose type the subject's scopes let it read (added ones: includes, $everything)."""
    return [r for r in resources if clients.permits(subject.scopes, r["resourceType"], "read")]


@router.get("/metadata", responses={200: RESOURCE}, summary="CapabilityStatement (no credentials needed)")
def metadata(request: Request) -> FhirResponse:
    return FhirResponse(capability.statement(router.routes, base_url(request), token_url(request)))


@router.get("/.well-known/smart-configuration", summary="SMART configuration: the token endpoint of system clients")
def smart_configuration(request: Request) -> JSONResponse:
    """SMART Backend Services discovery: client credentials with a JWT assertion (RS384/ES384) or a secret."""
    return JSONResponse({
        "token_endpoint": token_url(request),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": list(clients.AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(clients.ALGORITHMS),
        "scopes_supported": list(clients.SCOPES_SUPPORTED),
        "capabilities": ["client-confidential-asymmetric", "client-confidential-symmetric", "permission-v1",
                         "permission-v2"],
    })


def _openapi_params(kind: Kind) -> dict[str, Any]:
    query = [{"name": p.name, "in": "query", "required": False, "description": p.doc,
              "schema": {"type": "string", "maxLength": 200}} for p in kind.params.values()]
    for name, allowed in (("_include", service.INCLUDES.get(kind.type, {})),
                          ("_revinclude", service.REVINCLUDES.get(kind.type, frozenset()))):
        if allowed:
            query.append({"name": name, "in": "query", "required": False, "description": "resources to add",
                          "schema": {"type": "string", "enum": sorted(allowed)}})
    query += [{"name": "_count", "in": "query", "required": False, "description": "page size (0–200; 0: the total only)",
               "schema": {"type": "integer", "minimum": 0, "maximum": 200}},
              {"name": "_page", "in": "query", "required": False, "description": "page number, from 1",
               "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000}},
              {"name": "_total", "in": "query", "required": False,
               "description": "accurate: count the matches (Bundle.total; patient data lists count only on request)",
               "schema": {"type": "string", "enum": ["none", "estimate", "accurate"]}}]
    return {"parameters": query}


def _search(kind: Kind) -> Callable[..., FhirResponse]:
    def search(request: Request, db: DB, subject: CurrentSubject) -> FhirResponse:
        q = parse(list(request.query_params.multi_items()), kind.params, includes=includes, revincludes=revincludes)
        total_only = q.count == 0
        if total_only:  # `_count=0`: how many match, no entries
            q.count, q.page, q.total = 1, 1, True
        found = kind.search(db, subject, q)
        found.included = readable(subject, service.included(db, subject, kind.type, found.resources, q))
        if total_only:
            found.resources, found.included, found.has_next = [], [], False
        base = base_url(request)
        return FhirResponse(searchset(base, page_url(request, q.page), found.resources, total=found.total,
                                      next_url=page_url(request, q.page + 1) if found.has_next else None,
                                      included=found.included))

    includes = frozenset(service.INCLUDES.get(kind.type, {}))
    revincludes = service.REVINCLUDES.get(kind.type, frozenset())
    search.fhir_params = kind.params  # type: ignore[attr-defined]
    search.fhir_includes = includes  # type: ignore[attr-defined]
    search.fhir_revincludes = revincludes  # type: ignore[attr-defined]
    search.__name__ = f"search_{kind.type}"
    return search


def one(resource: dict[str, Any], status: int = 200, location: str | None = None) -> FhirResponse:
    """A resource with its version (meta.versionId) and ETag; `location` for a created one."""
    body, etag = versioned(resource)
    headers = {"ETag": etag}
    if location:
        headers["Location"] = location
    return FhirResponse(body, status_code=status, headers=headers)


def _read(kind: Kind) -> Callable[..., FhirResponse]:
    def read(id: str, db: DB, subject: CurrentSubject) -> FhirResponse:  # noqa: A002 - FHIR's name
        return one(kind.read(db, subject, id))

    read.__name__ = f"read_{kind.type}"
    return read


def _vread(kind: Kind) -> Callable[..., FhirResponse]:
    def vread(id: str, vid: str, db: DB, subject: CurrentSubject) -> FhirResponse:  # noqa: A002 - FHIR's name
        return one(service.vread(db, kind, subject, id, vid))

    vread.__name__ = f"vread_{kind.type}"
    vread.fhir_past_versions = kind.type in service.PAST_VERSIONS  # type: ignore[attr-defined]
    return vread


def _history(kind: Kind) -> Callable[..., FhirResponse]:
    def history(id: str, request: Request, db: DB, subject: CurrentSubject) -> FhirResponse:  # noqa: A002
        found = service.versions(db, kind, subject, id)
        base = base_url(request)
        entries = [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                    "request": {"method": "POST" if i == len(found) - 1 else "PUT", "url": f"{kind.type}/{r['id']}"},
                    "response": {"status": "201 Created" if i == len(found) - 1 else "200 OK",
                                 "etag": f'W/"{r["meta"]["versionId"]}"', "lastModified": r["meta"].get("lastUpdated")}}
                   for i, r in enumerate(found)]
        return FhirResponse({"resourceType": "Bundle", "type": "history", "total": len(entries),
                             "link": [{"relation": "self", "url": str(request.url)}], "entry": entries})

    history.__name__ = f"history_{kind.type}"
    return history


def _create(kind: Kind) -> Callable[..., FhirResponse]:
    assert kind.create is not None
    create = kind.create

    def created(request: Request, db: DB, subject: CurrentSubject, body: Any = Body(media_type=FHIR_JSON)
                ) -> FhirResponse:
        resource = create(db, subject, body)
        return one(resource, 201, f"{base_url(request)}/{kind.type}/{resource['id']}")

    created.__name__ = f"create_{kind.type}"
    return created


def _update(kind: Kind) -> Callable[..., FhirResponse]:
    assert kind.update is not None
    change = kind.update

    def updated(id: str, db: DB, subject: CurrentSubject, body: Any = Body(media_type=FHIR_JSON),  # noqa: A002
                if_match: str | None = Header(default=None, max_length=200)) -> FhirResponse:
        current = versioned(kind.read(db, subject, id))[1]
        if not etag_matches(if_match, current):
            raise PreconditionFailed()
        return one(change(db, subject, id, body))

    updated.__name__ = f"update_{kind.type}"
    updated.fhir_versioned = True  # type: ignore[attr-defined]
    return updated


@router.post("", responses={200: RESOURCE}, summary="transaction Bundle: all entries or none")
def transaction(db: DB, subject: CurrentSubject, body: Any = Body(media_type=FHIR_JSON)) -> FhirResponse:
    """A Bundle of type transaction: POST (create) and PUT (update, with request.ifMatch) entries of the types that
    take them, and GET of one resource; made in one database transaction — any entry refused, nothing is kept,
    and the answer is that entry's OperationOutcome (its index in the expression)."""
    entries = body.get("entry") if isinstance(body, dict) else None
    for item in entries if isinstance(entries, list) else []:
        request = item.get("request") if isinstance(item, dict) else None
        if isinstance(request, dict) and isinstance(request.get("url"), str):
            type_ = request["url"].lstrip("/").split("/")[0].split("?")[0]
            require_scope(subject, type_, "read" if request.get("method") == "GET" else "write")
    return FhirResponse(service.transaction(db, subject, body))


@router.post("/Patient/$match", responses={200: RESOURCE}, summary="Patient/$match on the master patient index",
             dependencies=[scoped("Patient", "read")])
def match(request: Request, db: DB, subject: CurrentSubject, body: Any = Body(media_type=FHIR_JSON)) -> FhirResponse:
    """A Parameters resource with `resource` (a Patient), optional `onlyCertainMatches` and `count`: a Bundle of
    the persons the caller may see, each with its match grade (certain, probable, possible) and score."""
    return FhirResponse(service.match_bundle(db, service.match_patients(db, subject, body), base_url(request)))


@router.get("/Patient/{id}/$everything", responses={200: RESOURCE}, summary="Patient/$everything",
            dependencies=[scoped("Patient", "read")])
def everything(id: str, request: Request, db: DB, subject: CurrentSubject) -> FhirResponse:  # noqa: A002
    """The patient and the resources about them the caller may see (consents, appointments, referrals)."""
    resources = readable(subject, service.everything(db, subject, id))
    bundle = searchset(base_url(request), str(request.url), resources, total=len(resources), next_url=None)
    return FhirResponse(bundle)


def _kick_off(level: str) -> Callable[..., Response]:
    def kick_off(request: Request, db: DB, subject: CurrentSubject,
                 _type: str | None = Query(default=None, max_length=500),
                 _since: str | None = Query(default=None, max_length=40),
                 _outputFormat: str | None = Query(default=None, max_length=100),  # noqa: N803 - FHIR's name
                 prefer: str | None = Header(default=None, max_length=200)) -> Response:
        return _kicked(request, db, subject, level, _type, _since, _outputFormat, prefer)

    kick_off.__name__ = f"export_{level}"
    return kick_off


def _kicked(request: Request, db: Any, subject: Subject, level: str, types: str | None, since: str | None,
            output_format: str | None, prefer: str | None, group_id: str | None = None) -> Response:
    row = export.kick_off(db, subject, level, prefer=prefer, types=types, since=since, output_format=output_format,
                          request_url=str(request.url), group_id=group_id)
    return Response(status_code=202, headers={"Content-Location": f"{base_url(request)}/_bulk/{row.id}"})


EXPORT_DOC = ("Bulk export for a system client (OAuth2 client credentials): `Prefer: respond-async`; `_type` "
              "(comma-separated), `_since`; answers 202 with Content-Location, the status URL to poll.")
router.add_api_route("/$export", _kick_off("system"), methods=["GET"], status_code=202,
                     summary="$export: everything the client's institution may see", description=EXPORT_DOC)
router.add_api_route("/Patient/$export", _kick_off("patient"), methods=["GET"], status_code=202,
                     summary="Patient/$export: the patients the client's institution may see", description=EXPORT_DOC,
                     dependencies=[scoped("Patient", "read")])


@router.get("/Group/{id}/$export", status_code=202, dependencies=[scoped("Group", "read")],
            summary="Group/$export: the members of one of the client's institution's groups", description=EXPORT_DOC)
def export_group(id: str, request: Request, db: DB, subject: CurrentSubject,  # noqa: A002 - FHIR's name
                 _type: str | None = Query(default=None, max_length=500),
                 _since: str | None = Query(default=None, max_length=40),
                 _outputFormat: str | None = Query(default=None, max_length=100),  # noqa: N803 - FHIR's name
                 prefer: str | None = Header(default=None, max_length=200)) -> Response:
    return _kicked(request, db, subject, "group", _type, _since, _outputFormat, prefer, id[:64])


@router.get("/_bulk/{export_id}", summary="Bulk export status: 202 with X-Progress, then 200 with the manifest")
def export_status(export_id: Id, request: Request, db: DB, subject: CurrentSubject) -> Response:
    row = export.of_client(db, subject, export_id)
    if row.status in ("queued", "running"):
        return Response(status_code=202, headers={"X-Progress": export.progress(row), "Retry-After": "2"})
    return JSONResponse(export.manifest(row, base_url(request)),
                        headers={"Expires": format_datetime(clock.as_utc(export.expires(row)), usegmt=True)})


@router.delete("/_bulk/{export_id}", status_code=202, summary="Cancel a bulk export, or remove its files")
def export_cancel(export_id: Id, db: DB, subject: CurrentSubject) -> Response:
    export.cancel(db, subject, export_id)
    return Response(status_code=202)


@router.get("/_bulk/{export_id}/{name}", summary="One file of a finished bulk export (ndjson)")
def export_file(export_id: Id, name: str, db: DB, subject: CurrentSubject) -> FileResponse:
    return FileResponse(export.file_of(db, subject, export_id, name), media_type=export.NDJSON)


for _kind in KINDS.values():
    router.add_api_route(f"/{_kind.type}", _search(_kind), methods=["GET"], responses={200: RESOURCE},
                         summary=f"Search {_kind.type}: {_kind.doc}", openapi_extra=_openapi_params(_kind),
                         dependencies=[scoped(_kind.type, "read")])
    router.add_api_route(f"/{_kind.type}/{{id}}", _read(_kind), methods=["GET"], responses={200: RESOURCE},
                         summary=f"Read {_kind.type}", dependencies=[scoped(_kind.type, "read")])
    router.add_api_route(f"/{_kind.type}/{{id}}/_history", _history(_kind), methods=["GET"],
                         responses={200: RESOURCE}, summary=f"History of a {_kind.type} (newest first)",
                         dependencies=[scoped(_kind.type, "read")])
    router.add_api_route(f"/{_kind.type}/{{id}}/_history/{{vid}}", _vread(_kind), methods=["GET"],
                         responses={200: RESOURCE}, summary=f"Read one version of a {_kind.type} (vread)",
                         dependencies=[scoped(_kind.type, "read")])
    if _kind.create:
        router.add_api_route(f"/{_kind.type}", _create(_kind), methods=["POST"], status_code=201,
                             responses={201: RESOURCE}, summary=f"Create {_kind.type}",
                             dependencies=[scoped(_kind.type, "write")])
    if _kind.update:
        router.add_api_route(f"/{_kind.type}/{{id}}", _update(_kind), methods=["PUT"], responses={200: RESOURCE},
                             summary=f"Update {_kind.type} (If-Match: the ETag of the version read)",
                             dependencies=[scoped(_kind.type, "write")])
