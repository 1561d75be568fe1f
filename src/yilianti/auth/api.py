"""The OAuth2 token endpoint of system clients (SMART Backend Services, auth/clients.py), advertised in
/fhir/.well-known/smart-configuration and the CapabilityStatement. Errors are the contract's JSON, whose `error`
is the OAuth2 error code (invalid_client, invalid_scope, unsupported_grant_type, invalid_request)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse

from yilianti.auth import clients
from yilianti.auth.deps import DB

TOKEN_PATH = "/oauth/token"
router = APIRouter(tags=["oauth"])


def token_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + TOKEN_PATH


Field = Annotated[str | None, Form(max_length=8000)]


@router.post(TOKEN_PATH, summary="OAuth2 client credentials: an access token for a system client")
def token(request: Request, db: DB, grant_type: Field = None, scope: Field = None, client_assertion_type: Field = None,
          client_assertion: Field = None, client_id: Field = None, client_secret: Field = None) -> JSONResponse:
    """`grant_type=client_credentials` with a client assertion (JWT signed RS384/ES384 by a registered key:
    `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`) or the client secret (HTTP
    Basic, or client_id and client_secret in the form); `scope` optional (system/Patient.read, system/*.read …)."""
    values = {k: v for k, v in (("grant_type", grant_type), ("scope", scope),
                                ("client_assertion_type", client_assertion_type),
                                ("client_assertion", client_assertion), ("client_id", client_id),
                                ("client_secret", client_secret)) if v is not None}
    answer = clients.issue_token(db, values, token_url(request), request.headers.get("authorization"),
                                 request.client.host if request.client else None)
    return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
