"""Under the Content-Security-Policy (scripts from /static only) the pages' behaviours still work, and the
browser reports no blocked script."""

from __future__ import annotations

from tests import builders as b
from tests.browser.conftest import login


def _seed(db):  # type: ignore[no-untyped-def]
    one = b.institution(db, "天津市儿童医院", kind="specialty", level=3, province="天津")
    two = b.institution(db, "东丽医院", kind="general", level=2, province="天津")
    b.alliance(db, (one, "lead"), (two, "member"), name="天津市儿科医疗联合体")
    user = b.user(db, one, "doctor", "institution_admin", username="csp-doc")
    from yilianti.models.auth import RoleAssignment

    db.add(RoleAssignment(user_id=user.id, role="doctor", institution_id=two.id))
    b.user(db, None, "system_admin", username="csp-admin")


def test_behaviours_work_without_inline_script(live_server, page) -> None:  # type: ignore[no-untyped-def]
    live_server.seed(_seed)
    base = live_server.url
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    login(page, base, "csp-doc", b.PASSWORD)
    assert "天津市儿童医院" in page.inner_text("#acting-institution")
    # data-autosubmit: choosing another acting institution sends the form at once
    with page.expect_navigation():
        page.select_option("#acting", label="东丽医院")
    assert "东丽医院" in page.inner_text("#acting-institution")
    page.context.clear_cookies()

    # data-confirm: dismissing the question keeps the institution active
    login(page, base, "csp-admin", b.PASSWORD)
    page.goto(f"{base}/admin/institutions")
    asked: list[str] = []

    def dismiss(dialog):  # type: ignore[no-untyped-def]
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.locator("form[data-confirm] button").first.click()
    page.wait_for_timeout(300)
    assert asked and "停用" in asked[0]
    assert page.url == f"{base}/admin/institutions"
    assert blocked == []
