"""Users JSON API (administration) and /api/v1/me (the current subject)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, status

from yilianti.admin import service
from yilianti.admin.schemas import (
    MeOut,
    RoleIn,
    RoleOut,
    TokenIn,
    TokenIssuedOut,
    UserIn,
    UserOut,
    UserPage,
    UserPatch,
)
from yilianti.auth.deps import DB, CurrentSubject
from yilianti.kit.schemas import Id, Limit, PageNo

router = APIRouter(tags=["users"])


@router.get("/api/v1/me", response_model=MeOut)
def me(db: DB, subject: CurrentSubject) -> dict[str, Any]:
    """Who is acting: user, role assignments, the acting institution and the ones the user can switch to."""
    return service.me(db, subject)


@router.get("/api/v1/users", response_model=UserPage)
def list_users(db: DB, subject: CurrentSubject, q: str | None = None, institution_id: Id | None = None,
               page: PageNo = 1, per_page: Limit = 30) -> dict[str, Any]:
    """Users the administrator may see (institution_admin: their institution; alliance_admin: its members)."""
    result = service.list_users(db, subject, q, page, per_page, institution_id)
    return {"items": [service.user_out(u) for u in result.items], "total": result.total, "page": result.page,
            "per_page": result.per_page}


@router.post("/api/v1/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def create_user(db: DB, subject: CurrentSubject, body: UserIn = Body()) -> dict[str, Any]:
    user = service.create_user(db, subject, body)
    return service.user_out(service.get_user(db, subject, user.id))


@router.get("/api/v1/users/{user_id}", response_model=UserOut)
def read_user(user_id: Id, db: DB, subject: CurrentSubject) -> dict[str, Any]:
    return service.user_out(service.get_user(db, subject, user_id))


@router.patch("/api/v1/users/{user_id}", response_model=UserOut)
def update_user(user_id: Id, db: DB, subject: CurrentSubject, body: UserPatch = Body()) -> dict[str, Any]:
    """`active: false` deactivates and ends the user's sessions; `password` sets a temporary one;
    `unlock: true` clears a lock-out."""
    service.update_user(db, subject, user_id, body.model_dump(exclude_unset=True))
    return service.user_out(service.get_user(db, subject, user_id))


@router.post("/api/v1/users/{user_id}/roles", status_code=status.HTTP_201_CREATED, response_model=RoleOut)
def add_role(user_id: Id, db: DB, subject: CurrentSubject, body: RoleIn = Body()) -> dict[str, Any]:
    ra = service.add_role(db, subject, user_id, body)
    user = service.get_user(db, subject, user_id)
    return service.role_out(next(r for r in user.roles if r.id == ra.id))


@router.delete("/api/v1/users/{user_id}/roles/{assignment_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_role(user_id: Id, assignment_id: Id, db: DB, subject: CurrentSubject) -> None:
    service.remove_role(db, subject, user_id, assignment_id)


@router.post("/api/v1/users/{user_id}/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenIssuedOut)
def issue_token(user_id: Id, db: DB, subject: CurrentSubject, body: TokenIn = Body()) -> dict[str, Any]:
    """Issue a bearer token for a member system; the token is in this answer only."""
    row, token = service.issue_token(db, subject, user_id, body.institution_id, body.name, body.days)
    return {**{k: getattr(row, k) for k in ("id", "name", "prefix", "institution_id", "expires_at", "revoked_at",
                                             "last_used_at")}, "token": token}


@router.post("/api/v1/users/{user_id}/tokens/{token_id}/revoke", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(user_id: Id, token_id: Id, db: DB, subject: CurrentSubject) -> None:
    service.revoke_token(db, subject, user_id, token_id)
