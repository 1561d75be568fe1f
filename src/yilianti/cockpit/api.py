"""The cockpit's JSON API: `GET /api/v1/cockpit/figures` — an alliance's figures for a period, optionally for one
member and department and some indicators, read from the daily rollups for past days and kept a minute per
process (service.compute_cached). The same access rule as the page: members, administrators and the health
commission of the region see the aggregates."""

from __future__ import annotations

from fastapi import APIRouter

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.cockpit import service
from yilianti.cockpit.filters import focus_of, period
from yilianti.cockpit.schemas import FigureOut, FiguresOut
from yilianti.exceptions import InvalidInput
from yilianti.kit import repository as kit
from yilianti.kit.schemas import Id
from yilianti.models.alliance import Alliance

router = APIRouter(prefix="/api/v1", tags=["cockpit"])


@router.get("/cockpit/figures", response_model=FiguresOut)
def figures(db: DB, subject: CurrentSubject, alliance_id: Id, start: str = "", end: str = "", member: str = "",
            department: str = "", codes: str = "") -> FiguresOut:
    alliance = service.require_view(db, subject, kit.get(db, Alliance, alliance_id))
    s, e = period(start, end)
    focus = focus_of(db, alliance, member, department)
    wanted = [c for c in codes.split(",") if c] or None
    if wanted and len(wanted) > 50:
        raise InvalidInput(fields={"codes": "一次最多 50 个指标"})
    out = service.compute_cached(db, alliance.id, s, e, codes=wanted, member=focus.member, department=focus.department)
    return FiguresOut(alliance_id=alliance.id, start=f"{s:%Y-%m}", end=f"{e:%Y-%m}", member=focus.member,
                      department=focus.department,
                      figures=[FigureOut(code=f.indicator.code, name=f.indicator.name, name_en=f.indicator.name_en,
                                         unit=f.indicator.unit, value=f.value, target=f.target, status=f.status,
                                         trend=f.trend, note=f.note, by_month=f.by_month) for f in out])
