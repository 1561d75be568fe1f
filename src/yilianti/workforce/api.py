"""Practitioners JSON API: the directory for every user, administration for admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, status

from yilianti.admin import scope
from yilianti.auth.deps import DB, CurrentSubject
from yilianti.kit.schemas import Id, Limit, PageNo
from yilianti.workforce import service
from yilianti.workforce.schemas import (
    PractitionerIn,
    PractitionerOut,
    PractitionerPage,
    PractitionerPatch,
    SiteIn,
)

router = APIRouter(prefix="/api/v1/practitioners", tags=["workforce"])


@router.get("", response_model=PractitionerPage)
def list_practitioners(db: DB, subject: CurrentSubject, q: str | None = None, institution_id: Id | None = None,
                       practises_at: Id | None = None, specialty: str | None = None, title: str | None = None,
                       page: PageNo = 1, per_page: Limit = 20) -> dict[str, Any]:
    """The directory: active practitioners with their practice sites in force from today on.

    `practises_at` matches the home institution or a visiting practice site."""
    f = service.Filters(institution_id=institution_id, specialty=specialty, title=title, q=q,
                        practises_at=practises_at)
    result = service.search(db, subject, f, page, per_page)
    return {"items": [service.practitioner_out(p, subject) for p in result.items], "total": result.total,
            "page": result.page, "per_page": result.per_page}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PractitionerOut)
def create_practitioner(db: DB, subject: CurrentSubject, body: PractitionerIn = Body()) -> dict[str, Any]:
    """system_admin, or institution_admin for the institution they act for."""
    scope.require_admin(subject)
    p = service.create_practitioner(db, subject, body)
    return service.practitioner_out(service.get(db, p.id), subject)


@router.get("/{practitioner_id}", response_model=PractitionerOut)
def read_practitioner(practitioner_id: Id, db: DB, subject: CurrentSubject) -> dict[str, Any]:
    return service.practitioner_out(service.get(db, practitioner_id), subject)


@router.patch("/{practitioner_id}", response_model=PractitionerOut)
def update_practitioner(practitioner_id: Id, db: DB, subject: CurrentSubject,
                        body: PractitionerPatch = Body()) -> dict[str, Any]:
    """Change the fields sent (`active: false` deactivates)."""
    scope.require_admin(subject)
    service.update_practitioner(db, subject, practitioner_id, body.model_dump(exclude_unset=True))
    return service.practitioner_out(service.get(db, practitioner_id), subject)


@router.post("/{practitioner_id}/sites", status_code=status.HTTP_201_CREATED, response_model=PractitionerOut)
def add_site(practitioner_id: Id, db: DB, subject: CurrentSubject, body: SiteIn = Body()) -> dict[str, Any]:
    """Add a weekly session at another member site (多点执业)."""
    scope.require_admin(subject)
    service.add_site(db, subject, practitioner_id, body)
    return service.practitioner_out(service.get(db, practitioner_id), subject)


@router.post("/{practitioner_id}/sites/{site_id}/end", response_model=PractitionerOut)
def end_site(practitioner_id: Id, site_id: Id, db: DB, subject: CurrentSubject) -> dict[str, Any]:
    """End an arrangement today (history is kept)."""
    scope.require_admin(subject)
    service.end_site(db, subject, practitioner_id, site_id)
    return service.practitioner_out(service.get(db, practitioner_id), subject)
