"""Practitioner directory (医师目录): who practises where and when, for every logged-in user."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from yilianti.auth.deps import DB, CurrentSubject
from yilianti.kit import clock
from yilianti.kit.schemas import Id
from yilianti.web.forms import opt_int
from yilianti.workforce import service
from yilianti.workforce.schemas import PERIODS, TITLES, WEEKDAYS

router = APIRouter(include_in_schema=False)


def _filters(request: Request) -> service.Filters:
    qp = request.query_params
    return service.Filters(
        institution_id=opt_int(qp.get("institution_id")),
        specialty=(qp.get("specialty") or "").strip() or None,
        title=(qp.get("title") or "").strip() or None,
        q=(qp.get("q") or "").strip() or None,
        practises_at=opt_int(qp.get("practises_at")),
    )


def page_query(request: Request, page: int) -> str:
    """The current query string with another page number (for pager links)."""
    params = {k: v for k, v in request.query_params.items() if k != "page" and v}
    params["page"] = str(page)
    from urllib.parse import urlencode

    return "?" + urlencode(params)


@router.get("/practitioners")
def directory(request: Request, db: DB, subject: CurrentSubject) -> Response:
    from yilianti.web.render import render_page

    f = _filters(request)
    result = service.search(db, subject, f, opt_int(request.query_params.get("page")) or 1, 20)
    return render_page(request, "workforce/directory.html", {
        "f": f, "result": result, "options": service.filter_options(db), "titles": TITLES,
        "weekdays": WEEKDAYS, "periods": PERIODS, "today": clock.today_local(),
        "current_sites": service.current_sites, "page_query": lambda n: page_query(request, n),
    })


@router.get("/practitioners/{practitioner_id}")
def detail(practitioner_id: Id, request: Request, db: DB, subject: CurrentSubject) -> Response:
    from yilianti.web.render import render_page

    p = service.get(db, practitioner_id)
    today = clock.today_local()
    sites = service.current_sites(p, today)
    return render_page(request, "workforce/practitioner.html", {
        "p": p, "sites": sites, "week": service.weekly_table(sites), "weekdays": WEEKDAYS, "periods": PERIODS,
        "today": today, "qualified": service.is_qualified_expert(p, on=today),
        "show_contact": service.may_see_contact(subject, p),
    })
