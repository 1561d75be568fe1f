"""The cockpit's JSON API: `POST /api/v1/encounters` and `POST /api/v1/out-of-county-visits` (batches imported from the
members' HIS and the insurance settlement data, cockpit/encounters.py) and `GET /api/v1/cockpit/figures` — an alliance's figures for a period, optionally for one
member and department and some indicators, read from the daily rollups for past days and kept a minute per
process (service.compute_cached). The same access rule as the page: members, administrators and the health
commission of the region see the aggregates. With an API token the answer is served by the cached fast path
(cockpit/fastpath.py) from the same `service.figures_out`."""

from __future__ import annotations

from fastapi import APIRouter

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.cockpit import encounters, service
from yilianti.cockpit.schemas import EncounterBatchIn, FiguresOut, ImportedOut, OutOfCountyBatchIn
from yilianti.exceptions import InvalidInput
from yilianti.kit.schemas import Id

router = APIRouter(prefix="/api/v1", tags=["cockpit"])


@router.get("/cockpit/figures", response_model=FiguresOut)
def figures(db: DB, subject: CurrentSubject, alliance_id: Id, start: str = "", end: str = "", member: str = "",
            department: str = "", codes: str = "") -> FiguresOut:
    return service.figures_out(db, subject, alliance_id, start, end, member, department, codes)


@router.post("/encounters", response_model=ImportedOut)
def import_encounters(db: DB, subject: CurrentSubject, body: EncounterBatchIn) -> ImportedOut:
    """A batch of a member's encounters from its HIS, all or nothing; each created or updated by its HIS number, so
    a batch sent again changes nothing twice. For the member's administrators and its system clients (an OAuth2
    access token with `system/Encounter.write`)."""
    institution = body.institution_id or subject.acting_institution_id
    if institution is None:
        raise InvalidInput(fields={"institution_id": "请指定机构"})
    done = encounters.import_encounters(db, subject, institution, [
        encounters.EncounterIn(**item.model_dump()) for item in body.encounters])
    return ImportedOut(created=done.created, updated=done.updated, matched=done.matched)


@router.post("/out-of-county-visits", response_model=ImportedOut)
def import_out_of_county(db: DB, subject: CurrentSubject, body: OutOfCountyBatchIn) -> ImportedOut:
    """A batch of the alliance's out-of-county register (insurance settlements of its residents outside the county),
    all or nothing, keyed by settlement number. For the alliance's administrators and the health commission."""
    done = encounters.import_register(db, subject, body.alliance_id, [
        encounters.OutOfCountyIn(**item.model_dump()) for item in body.visits])
    return ImportedOut(created=done.created, updated=done.updated, matched=0)
