"""Every administration page renders for a system administrator, in Chinese and in English."""

from __future__ import annotations

import pytest

from tests import builders as b
from tests.workforce.helpers import tianjin


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_admin_pages_render(db, client, lang):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    doctor = b.user(db, t.community, "doctor", username="wangli", practitioner_id=t.gp.id)
    b.user(db, None, "system_admin", username="root")
    b.login(client, "root")
    client.cookies.set("lang", lang)
    pages = ["/admin", "/admin/practitioners", "/admin/practitioners/new", f"/admin/practitioners/{t.expert.id}",
             "/admin/users", "/admin/users?q=wang", "/admin/users/new", f"/admin/users/{doctor.id}",
             "/practitioners", f"/practitioners/{t.expert.id}"]
    for url in pages:
        r = client.get(url)
        assert r.status_code == 200, (url, r.text[-500:])
    users = client.get("/admin/users").text
    assert "wangli" in users and "河西区桃园街社区卫生服务中心" in users
    if lang == "en":
        assert "Users and roles" in users and "Doctor" in users
        assert "Weekly sessions at other sites" in client.get(f"/practitioners/{t.expert.id}").text
    else:
        assert "医生" in users
    assert client.get("/admin/users/999999").status_code == 404
    assert client.get("/admin/practitioners/999999").status_code == 404
