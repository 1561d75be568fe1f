"""The demo's cockpit, recounted straight from the tables: for every alliance of the demo and the last year,
each computed indicator equals what a plain count over the source tables gives (written here without the
cockpit's measures: raw SQL and date arithmetic of its own)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from statistics import median

from sqlalchemy import text

from yilianti.cockpit import service
from yilianti.kit import clock


def _members(db, alliance_id):  # type: ignore[no-untyped-def]
    spans: dict[int, list[tuple[date | None, date | None]]] = {}
    for inst, joined, left in db.execute(text(
            "SELECT institution_id, joined_on, left_on FROM membership WHERE alliance_id = :a"), {"a": alliance_id}):
        j = date.fromisoformat(str(joined)) if joined else None
        lft = date.fromisoformat(str(left)) if left else None
        spans.setdefault(inst, []).append((j, lft))

    def member(inst: int, day: date) -> bool:
        return any((j is None or j <= day) and (lft is None or day < lft) for j, lft in spans.get(inst, []))
    return member


def _local_day(value) -> date:  # type: ignore[no-untyped-def]
    from datetime import datetime
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return clock.to_local(clock.as_utc(at)).date()


def test_every_computed_indicator_recounts_from_the_tables(db) -> None:  # type: ignore[no-untyped-def]
    today = clock.today_local()
    start, end = date(today.year - 1, today.month, 1), today
    checked = admitted = stays = 0
    for (alliance_id,) in db.execute(text("SELECT id FROM alliance ORDER BY id")).all():
        member = _members(db, alliance_id)
        figs = {f.indicator.code: f for f in service.compute(db, alliance_id, start, end)}
        up: Counter[str] = Counter()
        down: Counter[str] = Counter()
        for direction, at, f, t in db.execute(text(
                "SELECT direction, submitted_at, from_institution_id, to_institution_id FROM referral "
                "WHERE submitted_at IS NOT NULL")):
            day = _local_day(at)
            if start <= day <= end and member(f, day) and member(t, day):
                (up if direction == "up" else down)[f"{day:%Y-%m}"] += 1
        assert figs["referral.up"].value == sum(up.values())
        assert figs["referral.down"].value == sum(down.values())
        assert {m: v for m, v in figs["referral.up"].by_month.items() if v} == {m: float(v) for m, v in up.items()}
        reads, tats = 0, []
        for at, ordering, _centre, tat in db.execute(text(
                "SELECT reported_at, ordering_institution_id, reading_centre_institution_id, tat_minutes "
                "FROM diagnostic_order WHERE status IN ('final', 'amended') AND reading_centre_institution_id IS NOT NULL "
                "AND reading_centre_institution_id <> ordering_institution_id AND reported_at IS NOT NULL")):
            day = _local_day(at)
            if start <= day <= end and member(ordering, day):
                reads += 1
                if tat is not None:
                    tats.append(tat)
        assert figs["centres.remote_reads"].value == reads
        assert figs["centres.tat_median"].value == (median(tats) if tats else None)
        decisions = reused = saved = 0
        for at, inst, decision, fen in db.execute(text(
                "SELECT decided_at, institution_id, decision, price_saved_fen FROM recognition_decision")):
            day = _local_day(at)
            if start <= day <= end and member(inst, day):
                decisions += 1
                if decision == "reuse":
                    reused += 1
                    saved += fen or 0
        assert figs["recognition.rate"].value == (reused / decisions if decisions else None)
        assert figs["recognition.saved"].value == saved / 100
        consults = sum(1 for at, req in db.execute(text(
            "SELECT created_at, requesting_institution_id FROM consultation"))
            if start <= _local_day(at) <= end and member(req, _local_day(at)))
        assert figs["centres.consultations"].value == consults
        admitted += _recount_encounters(db, alliance_id, member, start, end, figs)
        stays += figs["national.11_inpatients_in_county"].numerator or 0
        checked += 1
    assert checked >= 10
    assert admitted > 0 and stays > 0  # the demo has both: the recounts above compared something


GRASSROOTS = ("community_center", "community_station", "township", "village")


def _encounter_sums(db, alliance_id, member, start, end) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Visits, grassroots and TCM visits, stays and their cost, the fund's payments (grassroots too) at members on
    the row's day; stays and payments of the alliance's out-of-county register."""
    out = dict.fromkeys(("visits", "grassroots", "tcm", "stays", "cost", "paid", "paid_grassroots", "away_stays",
                         "away_paid"), 0.0)
    for day, inst, kind, tcm, total, paid, inst_kind in db.execute(text(
            "SELECT e.day, e.institution_id, e.kind, e.tcm, e.total_cost, e.insurance_paid, i.kind FROM encounter e "
            "JOIN institution i ON i.id = e.institution_id WHERE e.day IS NOT NULL")):
        d = date.fromisoformat(str(day)[:10])
        if not (start <= d <= end and member(inst, d)):
            continue
        grassroots = inst_kind in GRASSROOTS
        out["paid"] += paid
        out["paid_grassroots"] += paid if grassroots else 0
        if kind == "inpatient":
            out["stays"] += 1
            out["cost"] += total
        else:
            out["visits"] += 1
            out["grassroots"] += grassroots
            out["tcm"] += bool(tcm)
    for day, kind, paid in db.execute(text(
            "SELECT day, kind, insurance_paid FROM out_of_county_visit WHERE alliance_id = :a AND day IS NOT NULL"),
            {"a": alliance_id}):
        if start <= date.fromisoformat(str(day)[:10]) <= end:
            out["away_stays"] += kind == "inpatient"
            out["away_paid"] += paid
    return out


def _recount_encounters(db, alliance_id, member, start, end, figs) -> int:  # type: ignore[no-untyped-def]
    """The national indicators 7–12 recounted from the encounter and register rows, and (13)'s admitted people among
    those it counts as managed; the number admitted."""
    def ratio(n: float, d: float) -> float | None:
        return n / d if d else None

    def same(code: str, value: float | None) -> None:
        got = figs[code].value
        assert (got is None) == (value is None) and (value is None or abs(got - value) < 1e-6), (code, got, value)

    s = _encounter_sums(db, alliance_id, member, start, end)
    same("national.07_grassroots_visits", ratio(s["grassroots"], s["visits"]))
    same("national.12_tcm_share", ratio(s["tcm"], s["visits"]))
    same("national.10_inpatient_cost", ratio(s["cost"], s["stays"]))
    same("national.11_inpatients_in_county", ratio(s["stays"], s["stays"] + s["away_stays"]))
    same("national.08_fund_in_county", ratio(s["paid"], s["paid"] + s["away_paid"]))
    same("national.09_fund_grassroots", ratio(s["paid_grassroots"], s["paid"]))
    before = _encounter_sums(db, alliance_id, member, start.replace(year=start.year - 1),
                             end.replace(year=end.year - 1, day=min(end.day, 28) if end.month == 2 else end.day))
    now, then = ratio(s["cost"], s["stays"]), ratio(before["cost"], before["stays"])
    same("national.10b_inpatient_cost_growth", None if now is None or not then else (now - then) / then)
    # (13): of the managed people the figure counts, those admitted in the period — through a reserved bed, or with an
    # inpatient stay imported from a member's HIS (admitted on a day of the period)
    fig = figs["national.13_chronic_admissions"]
    managed = fig.row_ids.get("chronic_managed_people", [])
    people = {reg: p for reg, p in db.execute(text("SELECT id, patient_id FROM chronic_registration"))}
    admitted = {p for p, at in db.execute(text("SELECT patient_id, created_at FROM bed_reservation "
                                                "WHERE status = 'admitted'")) if start <= _local_day(at) <= end}
    admitted |= {p for p, day in db.execute(text("SELECT patient_id, visit_date FROM encounter WHERE kind = 'inpatient' "
                                                 "AND patient_id IS NOT NULL"))
                 if start <= date.fromisoformat(str(day)[:10]) <= end}
    assert (fig.numerator or 0) == sum(1 for reg in managed if people[reg] in admitted), alliance_id
    return int(fig.numerator or 0)


def test_the_demo_s_rollups_give_the_figures_of_the_rows(db) -> None:  # type: ignore[no-untyped-def]
    """The set-based rollups of every family (referrals and closed loops, remote reads, consultations, recognition)
    equal the measures over the rows: every computed indicator of every demo alliance, by month, last year."""
    from yilianti.cockpit import rollup

    today = clock.today_local()
    start, end = date(today.year - 1, today.month, 1), today
    rolled = set(rollup.ROLLED)
    savepoint = db.begin_nested()
    try:
        alliances = [a for (a,) in db.execute(text("SELECT id FROM alliance ORDER BY id")).all()]
        assert rollup.build(db, alliances, start, date.fromordinal(today.toordinal() - 1)) > 0
        counted = Counter()
        for aid in alliances:
            rows = {f.indicator.code: f for f in service.compute(db, aid, start, end)}
            rolls = {f.indicator.code: f for f in service.compute(db, aid, start, end, rollups=True)}
            for code, f in rows.items():
                g = rolls[code]
                assert (f.value is None) == (g.value is None) and (f.value is None or abs(f.value - g.value) < 1e-6), \
                    (aid, code, f.value, g.value)
                assert all((f.by_month[m] is None) == (g.by_month[m] is None)
                           and (f.by_month[m] is None or abs(f.by_month[m] - g.by_month[m]) < 1e-6)
                           for m in f.by_month), (aid, code)
                if f.value and f.indicator.numerator in rolled:
                    counted[f.indicator.numerator] += 1
        # the demo exercises every family: a non-zero figure of each was compared
        assert {"referrals_up", "referrals_down", "referral_loops_closed", "remote_reads", "consultations",
                "recognition_reused", "encounter_visits_grassroots", "encounter_stays", "encounter_insurance",
                "encounter_visits_tcm", "encounter_stay_cost"} <= set(counted), counted
    finally:
        savepoint.rollback()


def test_the_langfang_commission_sees_the_alliances_led_from_langfang(db) -> None:  # type: ignore[no-untyped-def]
    from yilianti.alliance.repository import alliances_in_region
    from yilianti.demo.cockpit import COMMISSION

    authority = db.execute(text("SELECT id FROM institution WHERE name = :n"), {"n": COMMISSION}).scalar_one()
    keys = {k for (k,) in db.execute(text("SELECT key FROM alliance WHERE id IN ({})".format(
        ",".join(str(i) for i in alliances_in_region(db, authority, clock.today_local())) or "0")))}
    assert {"xianghe-county", "guan-county", "langfang-chest-pain"} <= keys
    assert not keys & {"baoding-trusteeship", "tianjin-pediatric", "chaoyang-pediatric"}


def test_the_commission_lands_on_a_county_cockpit_with_its_grassroots_and_in_county_curves(db, client) -> None:  # type: ignore[no-untyped-def]
    """The Langfang commission's cockpit opens on a county alliance of its region: the chart 基层就诊与县域内住院
    draws national (7) and (11) month by month (in percent) with their targets, the same numbers as the figures,
    and the table behind the charts has both rows."""
    import json
    import re

    from tests import builders as b
    from yilianti.cockpit.display import fmt
    from yilianti.cockpit.filters import period
    from yilianti.demo import encounters, loader

    b.login(client, "langfang-commission", loader.DEMO_PASSWORD)
    page = client.get("/cockpit")
    assert page.status_code == 200
    key, aid = db.execute(text("SELECT key, id FROM alliance WHERE name = :n"), {"n": re.search(
        r"<option value=\"\d+\" selected>([^<]+)</option>", page.text).group(1).strip()}).one()  # type: ignore[union-attr]
    assert key in encounters.ALLIANCES  # a county alliance with the members' HIS data
    s, e = period("", "")
    figs = {f.indicator.code: f for f in service.compute(db, aid, s, e)}
    data = json.loads(re.search(r'id="chart-grassroots-data">(.*?)</script>', page.text, re.S).group(1))  # type: ignore[union-attr]
    codes = ["national.07_grassroots_visits", "national.11_inpatients_in_county"]
    assert [x["code"] for x in data["series"]] == codes
    assert data["months"] == list(figs[codes[0]].by_month)
    for x in data["series"]:
        f = figs[x["code"]]
        assert x["data"] == [None if v is None else round(v * 100, 1) for v in f.by_month.values()]
        assert x["target"] == f.target and f.target is not None  # the dashed line of the target
        assert sum(1 for v in x["data"] if v) >= 10  # a year of curves, not zeros
        row = re.search(rf'id="row-{x["code"].replace(".", "-")}">(.*?)</tr>', page.text, re.S).group(1)  # type: ignore[union-attr]
        assert [fmt(v, "ratio") for v in f.by_month.values()] == re.findall(r">(—|[\d.]+%)<", row)[2:]
    # the demo's shape: about half the visits at the grassroots (below the 65 % target), most stays in the county
    assert all(30 < v < 65 for v in data["series"][0]["data"] if v is not None)
    assert all(70 < v <= 100 for v in data["series"][1]["data"] if v is not None)
