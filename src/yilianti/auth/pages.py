"""Login, logout, language and acting-institution switch, password change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from yilianti.auth import service
from yilianti.auth.deps import DB, CurrentSubject, csrf_protect
from yilianti.auth.security import new_csrf_token
from yilianti.exceptions import AppError, InvalidInput, Unauthenticated
from yilianti.kit import repository as kit
from yilianti.models.auth import User
from yilianti.web.forms import errors_of, safe_next
from yilianti.web.render import render_page, t

router = APIRouter(include_in_schema=False)


def _ensure_csrf(request: Request) -> None:
    if not request.session.get("csrf"):
        request.session["csrf"] = new_csrf_token()


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    _ensure_csrf(request)
    return render_page(request, "login.html", {"next": safe_next(next)})


@router.post("/login")
async def login(request: Request, db: DB, username: Annotated[str, Form()] = "",
                password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    try:
        await csrf_protect(request)
    except AppError:
        _ensure_csrf(request)
        return render_page(request, "login.html", {"error": t(request, "页面已过期，请重新登录"),
                                                   "username": username, "next": next}, 403)
    ip = request.client.host if request.client else None
    try:
        user = service.authenticate(db, username, password, ip)
    except Unauthenticated as exc:
        db.commit()  # keep the failure count and the audit row even though we answer an error
        return render_page(request, "login.html", {"error": t(request, exc.message, **exc.params),
                                                   "username": username, "next": next}, exc.status)
    session_id = service.start_session(db, user)
    request.session.clear()
    request.session.update({"uid": user.id, "sid": session_id, "epoch": user.session_epoch,
                            "csrf": new_csrf_token()})
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, db: DB, subject: CurrentSubject) -> Response:
    service.end_session(db, subject, request.session.get("sid"))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/lang/{code}")
def set_language(code: str, next: str = "/") -> Response:
    response = RedirectResponse(safe_next(next), status_code=303)
    if code in ("zh", "en"):
        response.set_cookie("lang", code, max_age=365 * 86400, samesite="lax")
    return response


@router.post("/switch-institution")
def switch_institution(request: Request, subject: CurrentSubject,
                       institution_id: Annotated[int, Form()], next: Annotated[str, Form()] = "/") -> Response:
    if institution_id not in {i.id for i in subject.institutions}:
        raise InvalidInput(fields={"institution_id": "您在该机构没有执业身份"})
    request.session["inst"] = institution_id
    return RedirectResponse(safe_next(next), status_code=303)


@router.get("/account")
def account(request: Request, subject: CurrentSubject) -> Response:
    return render_page(request, "account.html", {})


@router.post("/account/password")
def change_password(request: Request, db: DB, subject: CurrentSubject,
                    current_password: Annotated[str, Form()] = "", new_password: Annotated[str, Form()] = "",
                    confirm_password: Annotated[str, Form()] = "") -> Response:
    try:
        if new_password != confirm_password:
            raise InvalidInput(fields={"confirm_password": "两次输入的新密码不一致"})
        service.change_password(db, subject, current_password, new_password)
    except InvalidInput as exc:
        return render_page(request, "account.html", {"errors": errors_of(request, exc)}, 422)
    db.flush()
    user = kit.get(db, User, subject.user_id)
    assert user is not None
    request.session["epoch"] = user.session_epoch  # this session stays; all others end
    return render_page(request, "account.html", {"flash": t(request, "密码已修改，其他设备上的登录已失效")})
