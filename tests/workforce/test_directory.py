"""The practitioner directory: who practises where and when (多点执业)."""

from __future__ import annotations

import re
from datetime import date

from tests import builders as b
from tests.workforce.helpers import tianjin
from yilianti.kit import clock
from yilianti.models.alliance import Institution
from yilianti.models.workforce import PracticeSite, Practitioner
from yilianti.workforce import service


def _cell(html: str, day: int, period: str) -> str:
    m = re.search(rf'<td data-day="{day}" data-period="{period}">(.*?)</td>', html, re.S)
    assert m, (day, period)
    return m.group(1)


def test_directory_shows_lead_expert_wednesday_session_at_community_centre(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    b.user(db, t.community, "doctor", username="wangli")
    b.login(client, "wangli")

    page = client.get("/practitioners")
    assert page.status_code == 200
    row = re.search(rf'<tr data-id="{t.expert.id}">(.*?)</tr>', page.text, re.S)
    assert row
    text = row.group(1)
    assert "刘建华" in text and "主任医师" in text and "小儿呼吸" in text
    assert "天津市儿童医院" in text and "呼吸科" in text and "科主任" in text
    years = t.expert.years_of_practice(clock.today_local())
    assert years >= 20 and f"{years} 年" in text
    assert "河西区桃园街社区卫生服务中心" in text and "周三 上午" in text

    detail = client.get(f"/practitioners/{t.expert.id}")
    assert detail.status_code == 200
    assert "河西区桃园街社区卫生服务中心" in _cell(detail.text, 3, "am")
    assert _cell(detail.text, 3, "pm").strip() == ""
    assert _cell(detail.text, 1, "am").strip() == ""
    assert 'id="qualified-expert"' in detail.text

    # and in English
    client.cookies.set("lang", "en")
    en = client.get(f"/practitioners/{t.expert.id}")
    assert "Wed" in en.text and "Chief Physician" in en.text


def test_practises_at_filter_finds_visiting_expert_at_community_centre(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    b.user(db, t.community, "doctor", username="wangli")
    b.login(client, "wangli")

    names = lambda r: [i["name"] for i in r.json()["items"]]  # noqa: E731
    at_community = client.get("/api/v1/practitioners", params={"practises_at": t.community.id})
    assert sorted(names(at_community)) == sorted(["刘建华", "王丽"])
    expert = next(i for i in at_community.json()["items"] if i["name"] == "刘建华")
    assert expert["sites"][0] | {"id": 0} == {
        "id": 0, "institution_id": t.community.id, "institution_name": "河西区桃园街社区卫生服务中心",
        "department_id": t.community_gp.id, "department_name": "全科", "weekday": 3, "period": "am",
        "starts_on": "2024-03-01", "ends_on": None, "note": "儿科专家门诊"}
    # home institution only: the visiting expert is not staff of the community centre
    assert names(client.get("/api/v1/practitioners", params={"institution_id": t.community.id})) == ["王丽"]
    assert names(client.get("/api/v1/practitioners", params={"practises_at": t.other.id})) == []

    page = client.get("/practitioners", params={"practises_at": t.community.id})
    assert "刘建华" in page.text and "王丽" in page.text
    page = client.get("/practitioners", params={"practises_at": t.lead.id})
    assert "刘建华" in page.text and "王丽" not in page.text

    # an arrangement that has ended no longer counts
    t.site.ends_on = date(2024, 12, 31)
    db.flush()
    assert names(client.get("/api/v1/practitioners", params={"practises_at": t.community.id})) == ["王丽"]


def test_search_title_specialty_filters_and_pages(db, client):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    for i in range(25):
        db.add(Practitioner(name=f"赵医生{i:02d}", title="住院医师", specialty="儿科", home_institution_id=t.lead.id))
    db.add(Practitioner(name="停用的医生", title="主任医师", home_institution_id=t.lead.id, active=False))
    db.flush()
    b.user(db, t.lead, "doctor", username="zhao")
    b.login(client, "zhao")

    r = client.get("/api/v1/practitioners", params={"title": "住院医师", "per_page": 10, "page": 3})
    assert r.json()["total"] == 25 and len(r.json()["items"]) == 5
    assert [i["name"] for i in client.get("/api/v1/practitioners", params={"q": "呼吸"}).json()["items"]] == ["刘建华"]
    assert [i["name"] for i in client.get("/api/v1/practitioners",
                                          params={"specialty": "全科医学"}).json()["items"]] == ["王丽"]
    assert "停用的医生" not in client.get("/practitioners", params={"q": "停用"}).text
    page2 = client.get("/practitioners", params={"title": "住院医师", "page": 2})
    assert "第 2 / 2 页" in page2.text and "赵医生20" in page2.text
    assert client.get("/practitioners/999999").status_code == 404


def test_service_helpers_for_other_domains(db):  # type: ignore[no-untyped-def]
    t = tianjin(db)
    ids = lambda rows: {p.id for p in rows}  # noqa: E731
    assert ids(service.practising_at(db, t.community.id, on=date(2024, 6, 5))) == {t.expert.id, t.gp.id}
    assert ids(service.practising_at(db, t.community.id, on=date(2024, 1, 10))) == {t.gp.id}  # before the start
    assert ids(service.practising_at(db, t.lead.id)) == {t.expert.id}

    friday = PracticeSite(practitioner_id=t.expert.id, institution_id=t.other.id, weekday=5, period="pm",
                          starts_on=date(2023, 1, 1), ends_on=date(2023, 12, 31))
    db.add(friday)
    db.flush()
    assert [s.id for s in service.sessions_of(db, t.expert.id)] == [t.site.id]  # the 2023 one has ended
    assert [s.id for s in service.sessions_of(db, t.expert.id, on=date(2023, 6, 1))] == [friday.id]
    week = service.weekly_table(service.sessions_of(db, t.expert.id))
    assert [s.institution.name for s in week["grid"][(3, "am")]] == ["河西区桃园街社区卫生服务中心"]

    young = b.practitioner(db, t.community, "孙晓", "住院医师", licence=date(2023, 7, 1))
    assert service.is_qualified_expert(t.expert)
    assert not service.is_qualified_expert(young, on=date(2026, 6, 30))
    assert service.is_qualified_expert(young, on=date(2026, 7, 1))  # exactly three years
    t.expert.is_trainee = True
    assert not service.is_qualified_expert(t.expert)  # a 进修 doctor does not answer as the expert


def test_contact_details_only_for_the_practitioner_and_their_administrators(db, client):  # type: ignore[no-untyped-def]
    """The directory does not hand a practitioner's mobile and licence number to every account or token."""
    t = tianjin(db)
    t.expert.phone, t.expert.licence_no = "13912345678", "110120000012345"
    db.flush()
    b.user(db, t.community, "doctor", username="nosy")
    b.user(db, db.get(Institution, t.expert.home_institution_id), "institution_admin", username="hradmin")
    b.user(db, None, "doctor", username="self", practitioner_id=t.expert.id)

    def seen(username: str) -> tuple[object, object, bool]:
        client.cookies.clear()
        b.login(client, username)
        one = client.get(f"/api/v1/practitioners/{t.expert.id}").json()
        listed = [i for i in client.get("/api/v1/practitioners", params={"q": "刘建华"}).json()["items"]
                  if i["id"] == t.expert.id][0]
        assert (listed["phone"], listed["licence_no"]) == (one["phone"], one["licence_no"])
        page = client.get(f"/practitioners/{t.expert.id}").text
        return one["phone"], one["licence_no"], "110120000012345" in page

    assert seen("nosy") == (None, None, False)
    assert seen("hradmin") == ("13912345678", "110120000012345", True)
    assert seen("self")[:2] == ("13912345678", "110120000012345")


def test_the_search_matches_a_licence_number_only_for_those_who_may_see_it(db, client):  # type: ignore[no-untyped-def]
    """Matching hidden licence numbers would tell anyone whose number it is, one guessed digit at a time: the
    search (page, API and the administrators' list) finds by licence number exactly where the number is shown."""
    t = tianjin(db)
    t.expert.licence_no = "110120000012345"
    db.flush()
    home = db.get(Institution, t.expert.home_institution_id)
    users = {"nosy": b.user(db, t.community, "doctor", username="nosy"),
             "hradmin": b.user(db, home, "institution_admin", username="hradmin"),
             "otheradmin": b.user(db, t.community, "institution_admin", username="otheradmin"),
             "self": b.user(db, None, "doctor", username="self", practitioner_id=t.expert.id)}
    for username, user in users.items():
        viewer = b.subject_for(db, user)
        may = service.may_see_contact(viewer, t.expert)
        for q in ("110120000012345", "0000123"):
            found = [p.id for p in service.search(db, viewer, service.Filters(q=q)).items]
            assert (t.expert.id in found) is may, (username, q)
        client.cookies.clear()
        b.login(client, username)
        items = client.get("/api/v1/practitioners", params={"q": "20000012"}).json()["items"]
        assert (t.expert.id in [i["id"] for i in items]) is may, username
        assert (f'data-id="{t.expert.id}"' in client.get("/practitioners", params={"q": "20000012"}).text) is may
    assert [u for u in users if service.may_see_contact(b.subject_for(db, users[u]), t.expert)] == ["hradmin", "self"]
