"""The daily rollups: a cockpit read from them shows the same figures as one read from the rows — for the whole
alliance, a member and a department — and only past days come from them; the periodic job builds what is not
built and catches rows committed late; the rebuild reports its progress."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select

from tests import builders as b
from tests.cockpit.conftest import _referral
from yilianti.cli import build_parser
from yilianti.cockpit import rollup, service
from yilianti.kit import clock
from yilianti.models.alliance import Institution, Membership
from yilianti.models.cockpit import CockpitRollup, CockpitRollupDay
from yilianti.models.referral import Referral

Q1 = (date(2026, 1, 1), date(2026, 3, 31))


def _figures(db, aid, *, rollups: bool, **kw):  # type: ignore[no-untyped-def]
    return {f.indicator.code: (f.value, f.by_month, f.note)
            for f in service.compute(db, aid, *Q1, rollups=rollups, **kw) if f.indicator.source == "computed"}


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert a.keys() == b.keys()
    for code in a:
        (va, ma, na), (vb, mb, nb) = a[code], b[code]
        assert na == nb and (va is None) == (vb is None), code
        assert va is None or abs(va - vb) < 1e-9, code
        assert all((ma[m] is None) == (mb[m] is None) and (ma[m] is None or abs(ma[m] - mb[m]) < 1e-9) for m in ma), code


def test_figures_from_rollups_equal_the_figures_from_the_rows(db, world) -> None:  # type: ignore[no-untyped-def]
    aid, lead = world["alliance"].id, world["lead"]
    county = db.scalar(select(Institution.id).where(Institution.name == "涞源县医院"))
    dep = b.department(db, lead, "儿科")
    first = db.scalar(select(Referral).where(Referral.from_institution_id == county).order_by(Referral.id))
    first.to_department_id = dep.id
    db.flush()
    raw = _figures(db, aid, rollups=False)
    # nothing built yet: the rows are read
    _same(_figures(db, aid, rollups=True), raw)
    assert rollup.build(db, [aid], *Q1) == 4  # two pairs up in January, one in March, the down-referral
    assert db.scalar(select(func.count()).select_from(CockpitRollupDay).where(CockpitRollupDay.alliance_id == aid)) == 90
    from_rollups = service.compute(db, aid, *Q1, rollups=True, codes=["referral.up"])[0]
    assert from_rollups.value == 3 and not from_rollups.row_ids["referrals_up"]  # counted from the rollups
    _same(_figures(db, aid, rollups=True), raw)
    for kw in ({"member": county}, {"member": lead.id}, {"member": lead.id, "department": dep.id}):
        _same(_figures(db, aid, rollups=True, **kw), _figures(db, aid, rollups=False, **kw))


def test_the_periodic_job_builds_missing_days_and_rebuilds_the_last_two(db, world) -> None:  # type: ignore[no-untyped-def]
    aid, lead = world["alliance"].id, world["lead"]
    county = db.get(Institution, db.scalar(select(Institution.id).where(Institution.name == "涞源县医院")))
    pat = db.scalar(select(Referral.patient_id).limit(1))
    with clock.frozen(datetime.combine(date(2026, 4, 1), time(1), clock.SHANGHAI)):
        rollup.refresh(db)
        built = db.scalar(select(func.count()).select_from(CockpitRollupDay).where(CockpitRollupDay.alliance_id == aid))
        first = date(2026, 4, 1) - timedelta(days=rollup.HORIZON_DAYS)
        # every day of the horizon's months up to yesterday (a month is built whole)
        assert built == (date(2026, 3, 31) - first.replace(day=1)).days + 1
        assert service.compute(db, aid, *Q1, rollups=True, codes=["referral.up"])[0].value == 3
        # a referral of yesterday committed after the job ran: the next run catches it
        _referral(db, type("P", (), {"id": pat})(), county, lead, "up", date(2026, 3, 31))
        rollup.refresh(db)
        assert service.compute(db, aid, *Q1, rollups=True, codes=["referral.up"])[0].value == 4
        # today is read from the rows
        _referral(db, type("P", (), {"id": pat})(), county, lead, "up", date(2026, 4, 1))
        assert service.compute(db, aid, date(2026, 3, 1), date(2026, 4, 30), rollups=True,
                               codes=["referral.up"])[0].value == 3


def test_rebuild_reports_progress_per_chunk(db, world) -> None:  # type: ignore[no-untyped-def]
    aid = world["alliance"].id
    lines: list[str] = []
    rollup.rebuild(db, *Q1, [aid], progress=lines.append, step_months=1)
    assert len(lines) == 3 and all("cockpit rebuild: 1 alliance(s)" in line for line in lines)
    ups = select(func.sum(CockpitRollup.n)).where(CockpitRollup.measure == "referral:up")
    assert db.scalar(ups) == 3
    args = build_parser().parse_args(["cockpit", "rebuild", "--from", "2026-01-01", "--to", "2026-03-31",
                                      "--alliance", str(aid)])
    assert args.alliance == [aid] and args.from_ == "2026-01-01"


def test_the_figures_api_answers_from_the_rollups_with_the_page_s_access_rule(db, client, world) -> None:  # type: ignore[no-untyped-def]
    aid = world["alliance"].id
    rollup.build(db, [aid], *Q1)
    service._cache.clear()
    csrf = b.login(client, "cockpitadmin")
    r = client.get(f"/api/v1/cockpit/figures?alliance_id={aid}&start=2026-01&end=2026-03"
                   "&codes=referral.up,referral.down_rate")
    assert r.status_code == 200, r.text
    body = r.json()
    figures = {f["code"]: f for f in body["figures"]}
    assert figures["referral.up"]["value"] == 3 and figures["referral.up"]["by_month"]["2026-01"] == 2
    assert abs(figures["referral.down_rate"]["value"] - 1 / 3) < 1e-9 and set(figures) == {"referral.up", "referral.down_rate"}
    county = db.scalar(select(Institution.id).where(Institution.name == "涞源县医院"))
    mine = client.get(f"/api/v1/cockpit/figures?alliance_id={aid}&start=2026-01&end=2026-03&member={county}"
                      "&codes=referral.up").json()
    assert mine["member"] == county and mine["figures"][0]["value"] == 2
    assert client.get("/api/v1/cockpit/figures?alliance_id=999999").status_code == 404
    bad = client.get(f"/api/v1/cockpit/figures?alliance_id={aid}&start=2026-05&end=2026-01")
    assert bad.status_code == 422 and bad.json()["error"]
    client.post("/logout", data={"csrf_token": csrf})
    b.login(client, "cockpitstranger")
    assert client.get(f"/api/v1/cockpit/figures?alliance_id={aid}").status_code == 403


def test_a_membership_that_begins_or_ends_inside_a_month_counts_only_its_days(db, world) -> None:  # type: ignore[no-untyped-def]
    """The rollups are monthly; a member that joins on 2026-01-15 and one that leaves on 2026-02-10 count only for
    their days in the alliance, as the rows do (those months are grouped by day before the membership rule), and a
    period that covers a month in part reads that part from the rows."""
    aid, lead = world["alliance"].id, world["lead"]
    pat = db.scalar(select(Referral.patient_id).limit(1))
    p = type("P", (), {"id": pat})()
    joins, leaves = b.institution(db, "涞水县医院", level=2), b.institution(db, "定兴县医院", level=2)
    db.add(Membership(alliance_id=aid, institution_id=joins.id, role="member", joined_on=date(2026, 1, 15)))
    db.add(Membership(alliance_id=aid, institution_id=leaves.id, role="member", left_on=date(2026, 2, 10)))
    db.flush()
    for inst in (joins, leaves):
        for day in (date(2026, 1, 5), date(2026, 1, 20), date(2026, 2, 3), date(2026, 2, 20)):
            _referral(db, p, inst, lead, "up", day)
    raw = _figures(db, aid, rollups=False)
    # January: 涞源 ×2, 涞水 from the 15th ×1, 定兴 ×2; February: 涞水 ×2, 定兴 before the 10th ×1; March: 易县
    assert raw["referral.up"][1] == {"2026-01": 5, "2026-02": 3, "2026-03": 1}
    rollup.build(db, [aid], *Q1)
    _same(_figures(db, aid, rollups=True), raw)
    for kw in ({"member": joins.id}, {"member": leaves.id}):
        _same(_figures(db, aid, rollups=True, **kw), _figures(db, aid, rollups=False, **kw))
    # a period from the middle of a month: its days in January from the rows, February and March from the rollups
    part = (date(2026, 1, 16), date(2026, 3, 31))
    rows = service.compute(db, aid, *part, codes=["referral.up"])[0]
    rolled = service.compute(db, aid, *part, rollups=True, codes=["referral.up"])[0]
    assert rolled.value == rows.value == 7 and rolled.by_month == rows.by_month
    assert rolled.row_ids["referrals_up"] and len(rolled.row_ids["referrals_up"]) < len(rows.row_ids["referrals_up"])


def test_every_rolled_measure_has_a_sql_family_that_shares_its_query_s_filters() -> None:
    """A guard: each measure the cockpit reads from the rollups is written by a family (its keys), no family writes a
    key no measure reads, and no family's SQL re-states a filter its measure's query (`between`) already says — a
    comparison written in one and again in the other, instead of the clause both take from one function."""
    import ast
    import inspect
    import textwrap

    from yilianti.cockpit import repository

    written = {k for f in repository.ROLLUP_FAMILIES for k in f.keys}
    read = {k for m in rollup.ROLLED for k in rollup.keys_of(m)}
    assert read <= written, f"rolled measures without a family: {sorted(read - written)}"
    assert written <= read, f"keys no measure reads: {sorted(written - read)}"

    def tree(fn):  # type: ignore[no-untyped-def]
        return ast.parse(textwrap.dedent(inspect.getsource(fn)))

    def filters(node: ast.AST) -> set[str]:
        """The comparisons and .in_()/.is_()/.is_not() tests written in a function's own body."""
        return {ast.dump(n) for n in ast.walk(node) if isinstance(n, ast.Compare) or (
            isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("in_", "is_", "is_not"))}

    def helpers(node: ast.AST) -> set[str]:
        return {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                and n.func.id.startswith("_") and callable(getattr(repository, n.func.id, None))}

    def said(fn) -> set[str]:  # type: ignore[no-untyped-def]
        """The filters of a function and of the repository helpers it calls (one level: the shared clauses)."""
        t = tree(fn)
        return filters(t) | {x for h in helpers(t) for x in filters(tree(getattr(repository, h)))}

    for family in repository.ROLLUP_FAMILIES:
        sql = family.groups or family.rows
        assert sql is not None
        own_sql, own_query = filters(tree(sql)), filters(tree(family.between))
        assert not own_sql & said(family.between), (sql.__name__, "re-states a filter of", family.between.__name__)
        assert not own_query & said(sql), (family.between.__name__, "re-states a filter of", sql.__name__)
        assert helpers(tree(sql)) & helpers(tree(family.between)), (sql.__name__, "shares no clause with",
                                                                     family.between.__name__)
