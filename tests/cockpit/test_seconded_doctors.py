"""National indicator (4), 每万名常住人口中级以上职称医师派驻人数: the distinct doctors of intermediate title or above
the lead hospital posts to its grassroots members (牵头医院派驻基层) ÷ the latest imported resident population × 10 000
— recounted here straight from the rows (assistance_record, membership, institution, indicator_figure), by month and
for the quarter."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from tests import builders as b
from yilianti.cockpit import assistance, drill, service
from yilianti.exceptions import InvalidInput
from yilianti.kit.listing import ListParams
from yilianti.models.alliance import Institution, Membership
from yilianti.models.cockpit import AssistanceRecord

Q1 = (date(2026, 1, 1), date(2026, 3, 31))
CODE = "national.04_seconded_doctors"


def _post(db, aid, frm, to, person, title, start, end=None, kind="posting", practitioner=None):  # type: ignore[no-untyped-def]
    db.add(AssistanceRecord(alliance_id=aid, kind=kind, from_institution_id=frm, to_institution_id=to, person=person,
                            title=title, start_date=start, end_date=end, practitioner_id=practitioner))


def _d(v):  # type: ignore[no-untyped-def]
    """A date read by a text query (SQLite gives text)."""
    return v if v is None or isinstance(v, date) else date.fromisoformat(str(v)[:10])


def _recount(db, aid: int, first: date, last: date) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Straight from the tables: distinct people among postings of 主治医师 and up to a township health centre,
    community health centre or station or village clinic that run some day in [first, last] while the sending side is
    the alliance's lead and the receiving side a member (membership rows read as they are), and the latest resident
    figure."""
    rows = db.execute(text("""
        SELECT r.practitioner_id, r.from_institution_id, r.person, r.start_date, r.end_date, r.from_institution_id,
               r.to_institution_id
          FROM assistance_record r JOIN institution t ON t.id = r.to_institution_id
         WHERE r.alliance_id = :a AND r.kind = 'posting' AND r.title IN ('主任医师', '副主任医师', '主治医师')
           AND t.kind IN ('township', 'community_center', 'community_station', 'village')"""), {"a": aid}).all()
    members = [(i, role, _d(j), _d(lft)) for i, role, j, lft in db.execute(
        text("SELECT institution_id, role, joined_on, left_on FROM membership WHERE alliance_id = :a"), {"a": aid})]

    def member(inst: int, day: date, lead: bool = False) -> bool:
        return any(i == inst and (role == "lead" or not lead) and (j is None or j <= day) and (lft is None or lft > day)
                   for i, role, j, lft in members)

    people = set()
    for prac, frm, person, start, end, f, t in rows:
        day = max(_d(start), first)
        while day <= min(_d(end) or last, last):
            if member(f, day, lead=True) and member(t, day):
                people.add(("p", prac) if prac else ("n", frm, person))
                break
            day += timedelta(days=1)
    residents = db.execute(text("""
        SELECT f.value FROM indicator_figure f JOIN indicator i ON i.id = f.indicator_id
         WHERE i.code = 'county.residents' AND f.alliance_id = :a AND f.period_start <= :last
         ORDER BY f.period_end DESC, f.period_start DESC, f.entered_at DESC, f.id DESC LIMIT 1"""),
                           {"a": aid, "last": last}).scalar()
    return len(people), residents


def test_seconded_doctors_per_10k_residents_recount_from_the_rows(db, world) -> None:  # type: ignore[no-untyped-def]
    aid, lead = world["alliance"].id, world["lead"].id
    county = db.query(Institution).filter_by(name="涞源县医院").one().id  # a member, a county hospital: not grassroots
    town = b.institution(db, "涞源县东团堡乡卫生院", kind="township", level=1)
    late = b.institution(db, "易县高村乡卫生院", kind="township", level=1)  # a member from 2026-03-01
    village = b.institution(db, "东团堡村卫生室", kind="village", level=None)
    db.add_all([Membership(alliance_id=aid, institution_id=town.id, role="member"),
                Membership(alliance_id=aid, institution_id=late.id, role="member", joined_on=date(2026, 3, 1)),
                Membership(alliance_id=aid, institution_id=village.id, role="member")])
    db.flush()
    town_id, late_id, village_id = town.id, late.id, village.id
    prac = b.practitioner(db, world["lead"], "赵医生", "副主任医师").id
    _post(db, aid, lead, town_id, "钱主任", "主任医师", date(2026, 1, 5), date(2026, 2, 10))
    _post(db, aid, lead, village_id, "钱主任", "主任医师", date(2026, 3, 1))  # the same person again, still there: once
    _post(db, aid, lead, late_id, "孙医生", "主治医师", date(2026, 2, 1), date(2026, 3, 31))  # counts from March only
    _post(db, aid, lead, town_id, "李医生", "住院医师", date(2026, 1, 1), date(2026, 3, 31))  # below intermediate
    _post(db, aid, lead, town_id, "赵医生", "副主任医师", date(2026, 1, 10), date(2026, 1, 20), practitioner=prac)
    _post(db, aid, lead, town_id, "赵 医生", "副主任医师", date(2026, 2, 2), date(2026, 2, 9), practitioner=prac)
    _post(db, aid, lead, town_id, "周主任", "主任医师", date(2026, 1, 8), kind="clinic")  # a clinic, not a posting
    _post(db, aid, lead, town_id, "吴主任", "主任医师", date(2025, 6, 1), date(2025, 12, 31))  # before the quarter
    # not the lead posting to the grassroots (牵头医院派驻基层): to the county hospital, and from it to a township
    _post(db, aid, lead, county, "郑主任", "主任医师", date(2026, 1, 5), date(2026, 3, 31))
    _post(db, aid, county, town_id, "冯医生", "主治医师", date(2026, 1, 5), date(2026, 3, 31))
    db.flush()
    admin = b.subject_for(db, world["admin"])
    service.import_figures(db, admin, aid, [service.FigureIn("county.residents", date(2025, 1, 1), date(2025, 12, 31),
                                                             480_000, "统计年鉴（测试）")])
    # no figure of 2026 yet: the 2025 one divides
    fig = service.compute(db, aid, *Q1, codes=[CODE])[0]
    assert fig.value is not None and fig.numerator == 3  # the 2025 figure is the latest imported
    # a correction of 2025, entered later, replaces it
    service.import_figures(db, admin, aid, [service.FigureIn("county.residents", date(2025, 1, 1), date(2025, 12, 31),
                                                             500_000, "统计年鉴（更正）")])
    fig = service.compute(db, aid, *Q1, codes=[CODE])[0]
    people, residents = _recount(db, aid, *Q1)
    assert (people, residents) == (3, 500_000)
    assert fig.numerator == people and fig.denominator == residents / 10_000
    assert fig.value == pytest.approx(people / residents * 10_000) == pytest.approx(0.06)
    for month, (first, last) in {"2026-01": (date(2026, 1, 1), date(2026, 1, 31)),
                                 "2026-02": (date(2026, 2, 1), date(2026, 2, 28)),
                                 "2026-03": (date(2026, 3, 1), date(2026, 3, 31))}.items():
        n, r = _recount(db, aid, first, last)
        assert n == 2 and fig.by_month[month] == pytest.approx(n / r * 10_000), month
    # a figure for 2026 is the latest from January on
    service.import_figures(db, admin, aid, [service.FigureIn("county.residents", date(2026, 1, 1), date(2026, 12, 31),
                                                             520_000, "统计年鉴（测试）")])
    fig = service.compute(db, aid, *Q1, codes=[CODE])[0]
    assert fig.denominator == 52 and _recount(db, aid, *Q1)[1] == 520_000
    # a member filter: the population is the county's, not a member's
    assert service.compute(db, aid, *Q1, codes=[CODE], member=town_id)[0].note == service.NOT_BY_MEMBER
    # the drill-down lists the postings counted, each once, and the figure it divides by
    d = drill.drill(db, admin, world["alliance"], CODE, *Q1, member=None, department=None, measure=None,
                    lp=ListParams(per_page=100))
    assert d.page is not None and {r.what for r in d.page.items} == {"钱主任", "孙医生", "赵医生", "赵 医生"}
    assert all(r.value == 1 for r in d.page.items)
    den = drill.drill(db, admin, world["alliance"], CODE, *Q1, member=None, department=None,
                      measure="residents_10k", lp=ListParams(per_page=100))
    assert den.page is not None and [r.what for r in den.page.items] == ["统计年鉴（测试）"]


def test_a_title_not_in_the_register_s_list_is_refused(db, world) -> None:  # type: ignore[no-untyped-def]
    aid, lead = world["alliance"].id, world["lead"].id
    county = db.query(Institution).filter_by(name="涞源县医院").one().id
    admin = b.subject_for(db, world["admin"])
    with pytest.raises(InvalidInput) as e:
        assistance.record(db, admin, aid, assistance.AssistanceIn("posting", lead, county, date(2026, 1, 5),
                                                                  person="钱主任", title="教授"))
    assert "title" in e.value.fields and "主治医师" in e.value.fields["title"]
    row = assistance.record(db, admin, aid, assistance.AssistanceIn("posting", lead, county, date(2026, 1, 5),
                                                                    person="钱主任", title="主治医师"))
    assert row.title == "主治医师"
