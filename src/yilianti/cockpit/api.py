"""The cockpit's JSON API: `GET /api/v1/cockpit/figures` — an alliance's figures for a period, optionally for one
member and department and some indicators, read from the daily rollups for past days and kept a minute per
process (service.compute_cached). The same access rule as the page: members, administrators and the health
commission of the region see the aggregates. With an API token the answer is served by the cached fast path
(cockpit/fastpath.py) from the same `service.figures_out`."""

from __future__ import annotations

from fastapi import APIRouter

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.cockpit import service
from yilianti.cockpit.schemas import FiguresOut
from yilianti.kit.schemas import Id

router = APIRouter(prefix="/api/v1", tags=["cockpit"])


@router.get("/cockpit/figures", response_model=FiguresOut)
def figures(db: DB, subject: CurrentSubject, alliance_id: Id, start: str = "", end: str = "", member: str = "",
            department: str = "", codes: str = "") -> FiguresOut:
    return service.figures_out(db, subject, alliance_id, start, end, member, department, codes)
