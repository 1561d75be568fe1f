"""A merged person's old id leads to the surviving person (page: 302, API: 308 naming the survivor),
for users who may see the survivor; 404 for anyone else; the redirect is audited."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from tests import builders as b
from tests.empi.helpers import register, world
from yilianti.empi import service as empi
from yilianti.models.audit import AuditEvent


def _merged(db):  # type: ignore[no-untyped-def]
    w = world(db)
    b.user(db, w.county, "doctor", username="xh_doc")
    b.user(db, w.children, "doctor", username="bch_doc")
    a = register(db, w.d_town, "张晓明", birth=date(2016, 5, 20), phone="13911112222")
    c = register(db, w.d_county, "王建国", birth=date(1960, 1, 2), phone="13733334444", address="北京市西城区")
    assert a.patient.id != c.patient.id
    empi.merge(db, w.steward, a.patient.id, c.patient.id, reason="同一人，登记时姓名录错")
    return w, a.patient.id, c.patient.id


def test_old_id_redirects_to_the_survivor_for_a_user_who_may_see_it(db, client):  # type: ignore[no-untyped-def]
    _, survivor, merged = _merged(db)
    b.login(client, "xh_doc")
    page = client.get(f"/patients/{merged}", follow_redirects=False)
    assert page.status_code == 302 and page.headers["location"] == f"/patients/{survivor}"
    assert client.get(f"/patients/{merged}").status_code == 200
    api = client.get(f"/api/v1/patients/{merged}", follow_redirects=False)
    assert api.status_code == 308 and api.headers["location"] == f"/api/v1/patients/{survivor}"
    assert api.json()["merged_into"] == survivor and api.json()["error"] == "patient_merged"
    followed = client.get(f"/api/v1/patients/{merged}", headers={"Accept-Language": "en"})
    assert followed.status_code == 200 and followed.json()["id"] == survivor
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "merged_redirect")).all()
    assert events and all(e.patient_id == survivor and e.detail["merged_id"] == merged for e in events)


def test_old_id_is_still_404_for_a_user_who_may_not_see_the_survivor(db, client):  # type: ignore[no-untyped-def]
    _, survivor, merged = _merged(db)
    b.login(client, "bch_doc")
    assert client.get(f"/patients/{merged}", follow_redirects=False).status_code == 404
    api = client.get(f"/api/v1/patients/{merged}", follow_redirects=False)
    assert api.status_code == 404 and str(survivor) not in api.text
    assert db.scalars(select(AuditEvent).where(AuditEvent.action == "merged_redirect")).all() == []
