"""Administration pages: index, practitioners (with practice sites), users (roles, tokens).

/admin/alliances and /admin/institutions belong to the alliance domain.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.admin import repository as admin_repo
from yilianti.admin import scope
from yilianti.admin import service as users
from yilianti.admin.schemas import RoleIn, UserIn
from yilianti.alliance import repository as alliances
from yilianti.auth.api import TOKEN_PATH
from yilianti.auth.deps import DB, CurrentSubject
from yilianti.authz.subject import Subject
from yilianti.exceptions import InvalidInput
from yilianti.kit import clock
from yilianti.kit.schemas import Id
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t
from yilianti.workforce import service as wf
from yilianti.workforce.pages import page_query
from yilianti.workforce.schemas import PERIODS, TITLES, WEEKDAYS, PractitionerIn, SiteIn, blank_to_none, parse

router = APIRouter(include_in_schema=False)


async def form_data(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {k: v for k, v in form.items() if k != "csrf_token" and isinstance(v, str)}


Form = Annotated[dict[str, Any], Depends(form_data)]


def _admin(subject: CurrentSubject) -> Subject:
    return scope.require_admin(subject)


Admin = Annotated[Subject, Depends(_admin)]


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


@router.get("/admin")
def index(request: Request, subject: Admin) -> Response:
    return render_page(request, "admin/index.html", {"can_write": bool(scope.writable_institutions(subject) != set())})


# ---------------------------------------------------------------- practitioners


def _practitioner_options(db: DB, subject: Subject) -> dict[str, Any]:
    writable = scope.writable_institutions(subject)
    all_institutions = alliances.active_institution_choices(db)
    home = [(i, n) for i, n in all_institutions if writable is None or i in writable]
    departments = alliances.active_departments_by_institution(db)
    home_names = {n for _, n in home}
    return {"home_institutions": home, "all_institutions": all_institutions, "titles": TITLES,
            "home_departments": {k: v for k, v in departments.items() if k in home_names},
            "departments": departments, "weekdays": WEEKDAYS, "periods": PERIODS}


@router.get("/admin/practitioners")
def practitioners(request: Request, db: DB, subject: Admin) -> Response:
    qp = request.query_params
    f = wf.Filters(q=(qp.get("q") or "").strip() or None, institution_id=opt_int(qp.get("institution_id")),
                   title=(qp.get("title") or "").strip() or None)
    result = wf.admin_list(db, subject, f, opt_int(qp.get("page")) or 1)
    return render_page(request, "admin/practitioners.html", {
        "f": f, "result": result, "today": clock.today_local(), "titles": TITLES,
        "can_create": scope.writable_institutions(subject) != set(),
        "can_write": lambda p: scope.can_write(subject, p.home_institution_id),
        "page_query": lambda n: page_query(request, n), **_practitioner_options(db, subject)})


@router.get("/admin/practitioners/new")
def practitioner_new(request: Request, db: DB, subject: Admin) -> Response:
    return render_page(request, "admin/practitioners_form.html", {
        "p": None, "values": {"home_institution_id": subject.acting_institution_id}, "errors": {},
        **_practitioner_options(db, subject)})


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _practitioner_values(form: dict[str, Any]) -> dict[str, Any]:
    data = blank_to_none(form)
    data["is_department_head"] = bool(form.get("is_department_head"))
    data["is_trainee"] = bool(form.get("is_trainee"))
    return data


@router.post("/admin/practitioners/new")
def practitioner_create(request: Request, db: DB, subject: Admin, form: Form) -> Response:
    values = _practitioner_values(form)
    try:
        p = wf.create_practitioner(db, subject, parse(PractitionerIn, values))
    except InvalidInput as exc:
        return render_page(request, "admin/practitioners_form.html", {
            "p": None, "values": form, "errors": errors_of(request, exc), **_practitioner_options(db, subject)}, 422)
    return _see_other(f"/admin/practitioners/{p.id}?saved=1")


def _practitioner_page(request: Request, db: DB, subject: Subject, practitioner_id: Id,
                       errors: dict[str, str] | None = None, site_errors: dict[str, str] | None = None,
                       values: dict[str, Any] | None = None, site_values: dict[str, Any] | None = None,
                       status: int = 200) -> Response:
    p = wf.admin_get(db, subject, practitioner_id)
    today = clock.today_local()
    can_edit = scope.can_write(subject, p.home_institution_id)
    sites = sorted(p.sites, key=lambda s: (s.ends_on is not None and s.ends_on < today, s.weekday or 8, s.id))
    flash = t(request, "已保存") if request.query_params.get("saved") else None
    return render_page(request, "admin/practitioners_form.html", {
        "p": p, "values": values or {k: _plain(getattr(p, k)) for k in wf.EDITABLE}, "errors": errors or {},
        "site_errors": site_errors or {}, "site_values": site_values or {}, "sites": sites, "today": today,
        "can_edit": can_edit, "can_edit_sites": can_edit or scope.writable_institutions(subject) != set(),
        "flash": flash, **_practitioner_options(db, subject)}, status)


@router.get("/admin/practitioners/{practitioner_id}")
def practitioner_edit(practitioner_id: Id, request: Request, db: DB, subject: Admin) -> Response:
    return _practitioner_page(request, db, subject, practitioner_id)


@router.post("/admin/practitioners/{practitioner_id}")
def practitioner_update(practitioner_id: Id, request: Request, db: DB, subject: Admin, form: Form) -> Response:
    wf.admin_get(db, subject, practitioner_id)  # 404 before 403
    values = _practitioner_values(form)
    try:
        wf.update_practitioner(db, subject, practitioner_id, values)
    except InvalidInput as exc:
        return _practitioner_page(request, db, subject, practitioner_id, errors=errors_of(request, exc),
                                  values=form, status=422)
    return _see_other(f"/admin/practitioners/{practitioner_id}?saved=1")


@router.post("/admin/practitioners/{practitioner_id}/active")
def practitioner_active(practitioner_id: Id, db: DB, subject: Admin, form: Form) -> Response:
    wf.admin_get(db, subject, practitioner_id)
    wf.set_active(db, subject, practitioner_id, form.get("active") == "1")
    return _see_other(f"/admin/practitioners/{practitioner_id}?saved=1")


@router.post("/admin/practitioners/{practitioner_id}/sites")
def site_add(practitioner_id: Id, request: Request, db: DB, subject: Admin, form: Form) -> Response:
    wf.admin_get(db, subject, practitioner_id)
    try:
        wf.add_site(db, subject, practitioner_id, parse(SiteIn, blank_to_none(form)))
    except InvalidInput as exc:
        return _practitioner_page(request, db, subject, practitioner_id, site_errors=errors_of(request, exc),
                                  site_values=form, status=422)
    return _see_other(f"/admin/practitioners/{practitioner_id}?saved=1#sites")


@router.post("/admin/practitioners/{practitioner_id}/sites/{site_id}/end")
def site_end(practitioner_id: Id, site_id: Id, request: Request, db: DB, subject: Admin, form: Form) -> Response:
    wf.admin_get(db, subject, practitioner_id)
    try:
        on = date.fromisoformat(form["ends_on"]) if form.get("ends_on") else None
    except ValueError:
        on = None
    try:
        wf.end_site(db, subject, practitioner_id, site_id, on)
    except InvalidInput as exc:
        return _practitioner_page(request, db, subject, practitioner_id, site_errors=errors_of(request, exc),
                                  status=422)
    return _see_other(f"/admin/practitioners/{practitioner_id}?saved=1#sites")


@router.post("/admin/practitioners/{practitioner_id}/sites/{site_id}/remove")
def site_remove(practitioner_id: Id, site_id: Id, db: DB, subject: Admin) -> Response:
    wf.admin_get(db, subject, practitioner_id)
    wf.remove_site(db, subject, practitioner_id, site_id)
    return _see_other(f"/admin/practitioners/{practitioner_id}?saved=1#sites")


# ---------------------------------------------------------------- users


@router.get("/admin/users")
def user_list(request: Request, db: DB, subject: Admin) -> Response:
    qp = request.query_params
    q = (qp.get("q") or "").strip() or None
    result = users.list_users(db, subject, q, opt_int(qp.get("page")) or 1, 30, opt_int(qp.get("institution_id")))
    return render_page(request, "admin/users.html", {
        "q": q, "result": result, "now": clock.now(), "is_locked": users.auth.is_locked,
        "can_create": subject.is_system_admin or scope.writable_institutions(subject) != set(),
        "page_query": lambda n: page_query(request, n)})


def _user_form(request: Request, db: DB, subject: Subject, values: dict[str, Any], errors: dict[str, str],
               status: int = 200) -> Response:
    return render_page(request, "admin/users_new.html", {"values": values, "errors": errors,
                                                         **users.role_choices(db, subject)}, status)


@router.get("/admin/users/new")
def user_new(request: Request, db: DB, subject: Admin) -> Response:
    return _user_form(request, db, subject, {"institution_id": subject.acting_institution_id, "role": "doctor"}, {})


@router.post("/admin/users/new")
def user_create(request: Request, db: DB, subject: Admin, form: Form) -> Response:
    values = blank_to_none(form)
    try:
        if values.get("password") != values.get("confirm_password"):
            raise InvalidInput(fields={"confirm_password": "两次输入的密码不一致"})
        roles = []
        if values.get("role"):
            roles.append({"role": values["role"], "institution_id": values.get("institution_id"),
                          "alliance_id": values.get("alliance_id")})
        data = parse(UserIn, {"username": values.get("username") or "", "display_name": values.get("display_name") or "",
                              "password": values.get("password") or "", "practitioner_id": values.get("practitioner_id"),
                              "roles": roles})
        user = users.create_user(db, subject, data)
    except InvalidInput as exc:
        errors = {k.replace("roles.0.", ""): v for k, v in errors_of(request, exc).items()}
        return _user_form(request, db, subject, {k: v for k, v in form.items() if "password" not in k}, errors, 422)
    return _see_other(f"/admin/users/{user.id}?saved=1")


def _user_page(request: Request, db: DB, subject: Subject, user_id: Id, *, errors: dict[str, str] | None = None,
               section: str | None = None, values: dict[str, Any] | None = None, issued: tuple[Any, str] | None = None,
               status: int = 200) -> Response:
    user = users.get_user(db, subject, user_id)
    can_manage = users.can_manage(subject, user)
    flash = t(request, "已保存") if request.query_params.get("saved") else None
    return render_page(request, "admin/users_edit.html", {
        "u": user, "can_manage": can_manage, "tokens": admin_repo.tokens_of(db, user.id), "now": clock.now(),
        "locked": users.auth.is_locked(user, clock.now()), "errors": errors or {}, "section": section,
        "values": values or {}, "issued": issued, "flash": flash,
        "roles_sorted": sorted(user.roles, key=lambda r: r.id), **users.role_choices(db, subject)}, status)


@router.get("/admin/users/{user_id}")
def user_edit(user_id: Id, request: Request, db: DB, subject: Admin) -> Response:
    return _user_page(request, db, subject, user_id)


def _user_action(request: Request, db: DB, subject: Subject, user_id: Id, section: str, action: Any,
                 values: dict[str, Any] | None = None) -> Response:
    users.get_user(db, subject, user_id)  # 404 before 403
    try:
        action()
    except InvalidInput as exc:
        return _user_page(request, db, subject, user_id, errors=errors_of(request, exc), section=section,
                          values=values, status=422)
    return _see_other(f"/admin/users/{user_id}?saved=1")


@router.post("/admin/users/{user_id}")
def user_update(user_id: Id, request: Request, db: DB, subject: Admin, form: Form) -> Response:
    values = blank_to_none(form)
    changes = {"display_name": values.get("display_name") or "", "practitioner_id": opt_int(values.get("practitioner_id"))}
    return _user_action(request, db, subject, user_id, "profile",
                        lambda: users.update_user(db, subject, user_id, changes), form)


@router.post("/admin/users/{user_id}/active")
def user_active(user_id: Id, request: Request, db: DB, subject: Admin, form: Form) -> Response:
    return _user_action(request, db, subject, user_id, "status",
                        lambda: users.set_active(db, subject, user_id, form.get("active") == "1"))


@router.post("/admin/users/{user_id}/unlock")
def user_unlock(user_id: Id, request: Request, db: DB, subject: Admin) -> Response:
    return _user_action(request, db, subject, user_id, "status", lambda: users.unlock(db, subject, user_id))


@router.post("/admin/users/{user_id}/password")
def user_password(user_id: Id, request: Request, db: DB, subject: Admin, form: Form) -> Response:
    def _reset() -> None:
        if form.get("password", "") != form.get("confirm_password", ""):
            raise InvalidInput(fields={"confirm_password": "两次输入的密码不一致"})
        users.reset_password(db, subject, user_id, form.get("password", ""))

    return _user_action(request, db, subject, user_id, "password", _reset)


@router.post("/admin/users/{user_id}/roles")
def user_role_add(user_id: Id, request: Request, db: DB, subject: Admin, form: Form) -> Response:
    def _add() -> None:
        users.add_role(db, subject, user_id, parse(RoleIn, blank_to_none(form)))

    return _user_action(request, db, subject, user_id, "roles", _add, form)


@router.post("/admin/users/{user_id}/roles/{assignment_id}/remove")
def user_role_remove(user_id: Id, assignment_id: Id, request: Request, db: DB, subject: Admin) -> Response:
    return _user_action(request, db, subject, user_id, "roles",
                        lambda: users.remove_role(db, subject, user_id, assignment_id))


@router.post("/admin/users/{user_id}/tokens")
def user_token_issue(user_id: Id, request: Request, db: DB, subject: Admin, form: Form) -> Response:
    users.get_user(db, subject, user_id)
    values = blank_to_none(form)
    try:
        inst = opt_int(values.get("institution_id"))
        if inst is None:
            raise InvalidInput(fields={"institution_id": "请选择机构"})
        days = opt_int(values.get("days"))
        issued = users.issue_token(db, subject, user_id, inst, values.get("name") or "", days)
    except InvalidInput as exc:
        return _user_page(request, db, subject, user_id, errors=errors_of(request, exc), section="tokens",
                          values=form, status=422)
    # shown once, on this answer only (never stored in clear, never in a redirect URL, never cached)
    response = _user_page(request, db, subject, user_id, issued=issued)
    response.headers["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------- system clients (OAuth2 for the FHIR API)


def _clients_page(request: Request, db: DB, subject: Subject, *, errors: dict[str, str] | None = None,
                  values: dict[str, Any] | None = None, registered: Any = None, status: int = 200) -> Response:
    return render_page(request, "admin/clients.html", {
        "clients": users.system_clients(db, subject), "errors": errors or {}, "values": values or {},
        "registered": registered, "can_write": scope.writable_institutions(subject) != set(),
        "token_path": TOKEN_PATH, **users.role_choices(db, subject)}, status)


@router.get("/admin/clients")
def clients_list(request: Request, db: DB, subject: Admin) -> Response:
    return _clients_page(request, db, subject)


@router.post("/admin/clients")
def client_register(request: Request, db: DB, subject: Admin, form: Form) -> Response:
    values = blank_to_none(form)
    try:
        registered = users.register_client(db, subject, opt_int(values.get("institution_id")),
                                           values.get("name") or "", values.get("scope") or "",
                                           values.get("jwks"), values.get("secret") == "1")
    except InvalidInput as exc:
        return _clients_page(request, db, subject, errors=errors_of(request, exc), values=form, status=422)
    # the secret is shown once, on this answer only (never stored in clear, never cached)
    response = _clients_page(request, db, subject, registered=registered)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/admin/clients/{client_pk}/revoke")
def client_revoke(client_pk: Id, db: DB, subject: Admin) -> Response:
    users.revoke_client(db, subject, client_pk)
    return _see_other("/admin/clients")


@router.post("/admin/users/{user_id}/tokens/{token_id}/revoke")
def user_token_revoke(user_id: Id, token_id: Id, request: Request, db: DB, subject: Admin) -> Response:
    return _user_action(request, db, subject, user_id, "tokens",
                        lambda: users.revoke_token(db, subject, user_id, token_id))
