"""Alliance registry pages: public (logged-in) directory and the admin sub-pages.

/alliances, /alliances/{id}, /institutions/{id} — any logged-in user.
/admin/alliances…, /admin/institutions…, /admin/memberships…, /admin/departments… — admins;
the resource checks (which alliance, which institution) are in `service`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.alliance import service
from yilianti.auth.deps import DB, CurrentSubject, require
from yilianti.authz.subject import Subject
from yilianti.exceptions import Forbidden, InvalidInput, NotFound, request_locale
from yilianti.kit import clock
from yilianti.kit.i18n import catalogue, codes
from yilianti.kit.schemas import Id
from yilianti.models.alliance import AllianceModel, InstitutionKind, MemberRole
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t

router = APIRouter(include_in_schema=False)

Admin = Annotated[Subject, Depends(require("system_admin", "alliance_admin", "institution_admin"))]
AllianceAdmin = Annotated[Subject, Depends(require("system_admin", "alliance_admin"))]


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


Form = Annotated[dict[str, str], Depends(_form)]


def _flash(request: Request, message: str, **params: object) -> None:
    request.session["flash"] = t(request, message, **params)


def labeler(locale: str) -> Callable[[str], str]:
    """Display label of a code key such as "kind.township", from the locale's catalogue (zh included)."""
    entries = catalogue(locale)

    def label(key: str) -> str:
        return entries.get(key, key)

    return label


def _page(request: Request, template: str, ctx: dict[str, Any], status_code: int = 200) -> Response:
    ctx.setdefault("L", labeler(request_locale(request)))
    flash = request.session.pop("flash", None) if "session" in request.scope else None
    if flash and "flash" not in ctx:
        ctx["flash"] = flash
    ctx.setdefault("models", [m.value for m in AllianceModel])
    ctx.setdefault("kinds", [k.value for k in InstitutionKind])
    ctx.setdefault("roles", [r.value for r in MemberRole])
    ctx.setdefault("today", clock.today_local())
    ctx.setdefault("specialties", codes("specialty"))
    return render_page(request, f"alliance/{template}", ctx, status_code)


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


# =========================================================================== public pages


@router.get("/alliances")
def alliances(request: Request, db: DB, subject: CurrentSubject, model: str = "", q: str = "") -> Response:
    rows = service.list_alliances(db, model=model or None, q=q)
    return _page(request, "list.html", {"rows": rows, "model": model, "q": q})


@router.get("/alliances/{alliance_id}")
def alliance_detail(alliance_id: Id, request: Request, db: DB, subject: CurrentSubject) -> Response:
    view = service.alliance_view(db, alliance_id)
    return _page(request, "detail.html", {"view": view, "a": view.alliance, "tier_of": service.tier_of,
                                          "can_manage": service.can_manage_alliance(subject, alliance_id)})


@router.get("/institutions/{institution_id}")
def institution_detail(institution_id: Id, request: Request, db: DB, subject: CurrentSubject) -> Response:
    view = service.institution_view(db, institution_id)
    return _page(request, "institution.html", {
        "view": view, "inst": view.institution, "tier_of": service.tier_of,
        "can_edit": service.can_edit_institution(subject, institution_id),
        "is_system_admin": subject.is_system_admin})


# =========================================================================== admin: alliances


ALLIANCE_FORM_FIELDS = ("key", "name", "name_en", "model", "specialty", "founded", "notes", "slot_reserve_share",
                        "bed_reserve_share", "reserve_for", "reserve_cutoff_hours")


def _alliance_values(form: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {k: form.get(k, "") for k in ALLIANCE_FORM_FIELDS}
    values["tight"] = form.get("tight") == "1"
    values["cross_province"] = form.get("cross_province") == "1"
    return values


@router.get("/admin/alliances")
def admin_alliances(request: Request, db: DB, subject: AllianceAdmin, q: str = "", model: str = "") -> Response:
    rows = service.list_alliances(db, model=model or None, q=q, include_inactive=True,
                                  only_ids=service.manageable_alliance_ids(subject))
    return _page(request, "admin_alliances.html", {"rows": rows, "q": q, "model": model,
                                                   "can_create": subject.is_system_admin})


@router.get("/admin/alliances/new")
def alliance_new(request: Request, subject: AllianceAdmin) -> Response:
    if not subject.is_system_admin:
        raise Forbidden("只有系统管理员可以执行此操作")
    values = {"slot_reserve_share": "0.3334", "bed_reserve_share": "0.25", "reserve_for": "grassroots",
              "reserve_cutoff_hours": "24"}
    return _page(request, "admin_alliance_form.html", {"values": values, "errors": {}, "a": None})


@router.post("/admin/alliances/new")
def alliance_create(request: Request, db: DB, subject: AllianceAdmin, form: Form) -> Response:
    values = _alliance_values(form)
    try:
        alliance = service.create_alliance(db, subject, values)
    except InvalidInput as exc:
        return _page(request, "admin_alliance_form.html", {"values": values, "errors": errors_of(request, exc),
                                                           "a": None}, 422)
    _flash(request, "医联体已创建")
    return _redirect(f"/alliances/{alliance.id}")


@router.get("/admin/alliances/{alliance_id}/edit")
def alliance_edit(alliance_id: Id, request: Request, db: DB, subject: AllianceAdmin) -> Response:
    alliance = service.get_alliance(db, alliance_id)
    if not service.can_manage_alliance(subject, alliance_id):
        raise Forbidden()
    values = {k: getattr(alliance, k) for k in (*ALLIANCE_FORM_FIELDS, "tight", "cross_province")}
    return _page(request, "admin_alliance_form.html", {"values": values, "errors": {}, "a": alliance,
                                                       "is_system_admin": subject.is_system_admin})


@router.post("/admin/alliances/{alliance_id}/edit")
def alliance_update(alliance_id: Id, request: Request, db: DB, subject: AllianceAdmin, form: Form) -> Response:
    values = _alliance_values(form)
    try:
        service.update_alliance(db, subject, alliance_id, values)
    except InvalidInput as exc:
        return _page(request, "admin_alliance_form.html", {
            "values": values, "errors": errors_of(request, exc), "a": service.get_alliance(db, alliance_id),
            "is_system_admin": subject.is_system_admin}, 422)
    _flash(request, "已保存")
    return _redirect(f"/alliances/{alliance_id}")


@router.post("/admin/alliances/{alliance_id}/deactivate")
def alliance_deactivate(alliance_id: Id, request: Request, db: DB, subject: AllianceAdmin) -> Response:
    service.set_alliance_active(db, subject, alliance_id, False)
    _flash(request, "医联体已停用")
    return _redirect("/admin/alliances")


@router.post("/admin/alliances/{alliance_id}/reactivate")
def alliance_reactivate(alliance_id: Id, request: Request, db: DB, subject: AllianceAdmin) -> Response:
    service.set_alliance_active(db, subject, alliance_id, True)
    _flash(request, "医联体已重新启用")
    return _redirect("/admin/alliances")


# =========================================================================== admin: memberships


def _members_page(request: Request, db: DB, subject: Subject, alliance_id: Id, values: dict[str, Any] | None = None,
                  errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    alliance = service.get_alliance(db, alliance_id)
    if not service.can_manage_alliance(subject, alliance_id):
        raise Forbidden()
    view = service.alliance_view(db, alliance_id)
    current_ids = {m.institution_id for ms in view.tiers.values() for m in ms}
    candidates = [i for i in service.list_institutions(db, include_inactive=False) if i.id not in current_ids]
    return _page(request, "admin_members.html", {
        "a": alliance, "view": view, "tier_of": service.tier_of, "candidates": candidates,
        "values": values or {"role": "member", "joined_on": clock.today_local().isoformat()},
        "errors": errors or {}, "end_errors": {}}, status_code)


@router.get("/admin/alliances/{alliance_id}/members")
def members(alliance_id: Id, request: Request, db: DB, subject: AllianceAdmin) -> Response:
    return _members_page(request, db, subject, alliance_id)


@router.post("/admin/alliances/{alliance_id}/members")
def member_add(alliance_id: Id, request: Request, db: DB, subject: AllianceAdmin, form: Form) -> Response:
    values = {k: form.get(k, "") for k in ("institution_id", "role", "joined_on", "left_on", "notes")}
    try:
        membership = service.add_member(db, subject, alliance_id, values)
    except InvalidInput as exc:
        return _members_page(request, db, subject, alliance_id, values, errors_of(request, exc), 422)
    inst = service.get_institution(db, membership.institution_id)
    _flash(request, "已添加成员：{name}", name=inst.name)
    return _redirect(f"/admin/alliances/{alliance_id}/members")


@router.post("/admin/memberships/{membership_id}/end")
def member_end(membership_id: Id, request: Request, db: DB, subject: AllianceAdmin, form: Form) -> Response:
    membership = service.get_membership(db, membership_id)
    try:
        left_on = service.parse_date(form.get("left_on"), "left_on")
        service.end_membership(db, subject, membership_id, left_on)
    except InvalidInput as exc:
        errors = errors_of(request, exc)
        return _page(request, "admin_end_membership.html", {
            "m": membership, "inst": service.get_institution(db, membership.institution_id),
            "a": service.get_alliance(db, membership.alliance_id), "errors": errors,
            "values": {"left_on": form.get("left_on", "")}}, 422)
    _flash(request, "成员资格已结束")
    return _redirect(f"/admin/alliances/{membership.alliance_id}/members")


# =========================================================================== admin: institutions


INSTITUTION_FORM_FIELDS = ("name", "short_name", "code", "level", "kind", "province", "city", "county", "address",
                           "phone")


@router.get("/admin/institutions")
def admin_institutions(request: Request, db: DB, subject: Admin, q: str = "", kind: str = "",
                       level: str = "") -> Response:
    rows = service.list_institutions(db, subject, q=q, kind=kind, level=opt_int(level), editable_only=True)
    return _page(request, "admin_institutions.html", {"rows": rows, "q": q, "kind": kind, "level": level,
                                                      "can_create": subject.is_system_admin})


@router.get("/admin/institutions/new")
def institution_new(request: Request, subject: Admin) -> Response:
    if not subject.is_system_admin:
        raise Forbidden("只有系统管理员可以执行此操作")
    return _page(request, "admin_institution_form.html", {"values": {"kind": "general"}, "errors": {},
                                                          "inst": None})


@router.post("/admin/institutions/new")
def institution_create(request: Request, db: DB, subject: Admin, form: Form) -> Response:
    values = {k: form.get(k, "") for k in INSTITUTION_FORM_FIELDS}
    try:
        inst = service.create_institution(db, subject, values)
    except InvalidInput as exc:
        return _page(request, "admin_institution_form.html", {"values": values, "errors": errors_of(request, exc),
                                                              "inst": None}, 422)
    _flash(request, "机构已创建")
    return _redirect(f"/institutions/{inst.id}")


@router.get("/admin/institutions/{institution_id}/edit")
def institution_edit(institution_id: Id, request: Request, db: DB, subject: Admin) -> Response:
    inst = service.get_institution(db, institution_id)
    if not service.can_edit_institution(subject, institution_id):
        raise Forbidden()
    values = {k: getattr(inst, k) for k in INSTITUTION_FORM_FIELDS}
    return _page(request, "admin_institution_form.html", {"values": values, "errors": {}, "inst": inst,
                                                          "is_system_admin": subject.is_system_admin})


@router.post("/admin/institutions/{institution_id}/edit")
def institution_update(institution_id: Id, request: Request, db: DB, subject: Admin, form: Form) -> Response:
    values = {k: form.get(k, "") for k in INSTITUTION_FORM_FIELDS}
    try:
        service.update_institution(db, subject, institution_id, values)
    except InvalidInput as exc:
        return _page(request, "admin_institution_form.html", {
            "values": values, "errors": errors_of(request, exc), "inst": service.get_institution(db, institution_id),
            "is_system_admin": subject.is_system_admin}, 422)
    _flash(request, "已保存")
    return _redirect(f"/institutions/{institution_id}")


@router.post("/admin/institutions/{institution_id}/deactivate")
def institution_deactivate(institution_id: Id, request: Request, db: DB, subject: Admin) -> Response:
    service.set_institution_active(db, subject, institution_id, False)
    _flash(request, "机构已停用")
    return _redirect("/admin/institutions")


@router.post("/admin/institutions/{institution_id}/reactivate")
def institution_reactivate(institution_id: Id, request: Request, db: DB, subject: Admin) -> Response:
    service.set_institution_active(db, subject, institution_id, True)
    _flash(request, "机构已重新启用")
    return _redirect("/admin/institutions")


# =========================================================================== admin: departments


def _departments_page(request: Request, db: DB, subject: Subject, institution_id: Id,
                      values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                      rename: tuple[int, dict[str, str]] | None = None, status_code: int = 200) -> Response:
    inst = service.get_institution(db, institution_id)
    if not service.can_edit_institution(subject, institution_id):
        raise Forbidden()
    return _page(request, "admin_departments.html", {
        "inst": inst, "departments": service.departments(db, institution_id), "values": values or {},
        "errors": errors or {}, "rename_id": rename[0] if rename else None,
        "rename_errors": rename[1] if rename else {}}, status_code)


@router.get("/admin/institutions/{institution_id}/departments")
def departments(institution_id: Id, request: Request, db: DB, subject: Admin) -> Response:
    return _departments_page(request, db, subject, institution_id)


@router.post("/admin/institutions/{institution_id}/departments")
def department_add(institution_id: Id, request: Request, db: DB, subject: Admin, form: Form) -> Response:
    values = {"name": form.get("name", ""), "specialty": form.get("specialty", "")}
    try:
        service.add_department(db, subject, institution_id, values)
    except InvalidInput as exc:
        return _departments_page(request, db, subject, institution_id, values, errors_of(request, exc),
                                 status_code=422)
    _flash(request, "已添加科室：{name}", name=values["name"].strip())
    return _redirect(f"/admin/institutions/{institution_id}/departments")


@router.post("/admin/departments/{department_id}/{action}")
def department_change(department_id: Id, action: str, request: Request, db: DB, subject: Admin,
                      form: Form) -> Response:
    dept = service.get_department(db, department_id)
    changes: dict[str, Any]
    if action == "rename":
        changes = {"name": form.get("name", ""), "specialty": form.get("specialty", "")}
    elif action in ("deactivate", "reactivate"):
        changes = {"active": action == "reactivate"}
    else:
        raise NotFound()
    try:
        service.update_department(db, subject, department_id, changes)
    except InvalidInput as exc:
        return _departments_page(request, db, subject, dept.institution_id,
                                 rename=(department_id, errors_of(request, exc)), status_code=422)
    _flash(request, {"rename": "科室已更名", "deactivate": "科室已停用", "reactivate": "科室已重新启用"}[action])
    return _redirect(f"/admin/institutions/{dept.institution_id}/departments")
