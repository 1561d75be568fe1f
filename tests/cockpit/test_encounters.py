"""Encounters and the out-of-county register in the cockpit: the national indicators 7–12 counted from them (members
only on their days, stays by discharge, growth against the same months a year before), and the rollups giving the
same figures as the rows — for the alliance, a member and a department."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from tests import builders as b
from tests.cockpit.test_rollup import _figures, _same
from yilianti.cockpit import rollup, service
from yilianti.models.alliance import Institution, Membership
from yilianti.models.encounter import Encounter, OutOfCountyVisit, counted_on

Q1 = (date(2026, 1, 1), date(2026, 3, 31))


def _enc(db, inst, no: str, kind: str, visit: date, discharge: date | None = None, *, cost: float = 100.0,
         paid: float = 60.0, tcm: bool = False, dep=None) -> Encounter:  # type: ignore[no-untyped-def]
    e = Encounter(institution_id=inst.id, source_no=no, kind=kind, visit_date=visit, discharge_date=discharge,
                  day=counted_on(kind, visit, discharge), total_cost=cost, insurance_paid=paid, tcm=tcm,
                  department_id=dep.id if dep else None)
    db.add(e)
    db.flush()
    return e


@pytest.fixture
def encounters(db, world):  # type: ignore[no-untyped-def]
    aid, lead = world["alliance"].id, world["lead"]
    county = db.get(Institution, db.scalar(select(Institution.id).where(Institution.name == "涞源县医院")))
    late = db.get(Institution, db.scalar(select(Institution.id).where(Institution.name == "易县医院")))
    outsider = db.get(Institution, db.scalar(select(Institution.id).where(Institution.name == "北京某医院")))
    town = b.institution(db, "涞源县银坊镇卫生院", kind="township", level=1)
    db.add(Membership(alliance_id=aid, institution_id=town.id, role="member"))
    dep = b.department(db, lead, "心内科")
    db.flush()
    _enc(db, town, "M1", "outpatient", date(2026, 1, 5), paid=30)
    _enc(db, town, "M2", "outpatient", date(2026, 2, 6), tcm=True, paid=20)
    _enc(db, county, "C1", "outpatient", date(2026, 1, 7), tcm=True)
    _enc(db, lead, "L1", "emergency", date(2026, 3, 8), dep=dep)
    _enc(db, late, "Y1", "outpatient", date(2026, 2, 9))  # before 易县 joined: not counted
    _enc(db, late, "Y2", "outpatient", date(2026, 3, 9))  # after
    _enc(db, outsider, "O1", "outpatient", date(2026, 1, 9))  # never a member
    _enc(db, lead, "L2", "inpatient", date(2026, 1, 28), date(2026, 2, 3), cost=8000, paid=5000, dep=dep)
    _enc(db, county, "C2", "inpatient", date(2026, 3, 1), date(2026, 3, 10), cost=4000, paid=3000)
    _enc(db, county, "C3", "inpatient", date(2026, 3, 25))  # still in hospital: not a discharge yet
    _enc(db, lead, "L0", "inpatient", date(2025, 2, 1), date(2025, 2, 10), cost=5000, paid=3000)  # a year before
    for no, kind, day, cost, paid, home in (("S1", "inpatient", date(2026, 2, 15), 30000, 15000, town.id),
                                           ("S2", "outpatient", date(2026, 2, 16), 400, 200, None)):
        db.add(OutOfCountyVisit(alliance_id=aid, home_institution_id=home, settlement_no=no, kind=kind,
                                hospital="北京协和医院", visit_date=day, discharge_date=day if kind == "inpatient" else None,
                                day=day, total_cost=cost, insurance_paid=paid))
    db.flush()
    return {"town": town, "county": county, "dep": dep, **world}


def test_the_national_indicators_are_counted_from_the_encounters(db, encounters) -> None:  # type: ignore[no-untyped-def]
    aid = encounters["alliance"].id
    figs = {f.indicator.code: f for f in service.compute(db, aid, *Q1)}
    # visits: 银坊 ×2 (grassroots, one TCM), 涞源 (TCM), the lead's emergency, 易县 in March
    assert (figs["national.07_grassroots_visits"].numerator, figs["national.07_grassroots_visits"].denominator) == (2, 5)
    assert figs["national.07_grassroots_visits"].by_month == {"2026-01": 0.5, "2026-02": 1.0, "2026-03": 0.0}
    assert figs["national.12_tcm_share"].value == pytest.approx(2 / 5)
    # stays by discharge: the lead's (February) and 涞源's (March); the one still in hospital not yet
    assert figs["national.10_inpatient_cost"].value == 6000
    assert figs["national.10_inpatient_cost"].by_month == {"2026-01": None, "2026-02": 8000, "2026-03": 4000}
    # against Q1 2025 (one stay of 5000): +20 %; February against February 2025: +60 %
    growth = figs["national.10b_inpatient_cost_growth"]
    assert growth.value == pytest.approx(0.2) and growth.by_month["2026-02"] == pytest.approx(0.6)
    assert growth.by_month["2026-03"] is None
    # in county 2 of 3 stays (one at 北京协和医院 in the register)
    assert figs["national.11_inpatients_in_county"].value == pytest.approx(2 / 3)
    # the fund: 30 + 20 + 60 + 60 + 60 + 5000 + 3000 in county (C3 not discharged) against 15000 + 200 outside
    inside = 30 + 20 + 60 + 60 + 60 + 5000 + 3000
    assert figs["national.08_fund_in_county"].value == pytest.approx(inside / (inside + 15200))
    assert figs["national.09_fund_grassroots"].value == pytest.approx(50 / inside)
    assert len(figs["national.11_inpatients_in_county"].row_ids["stays_in_and_out_of_county"]) == 3


def test_encounter_figures_from_rollups_equal_the_rows(db, encounters) -> None:  # type: ignore[no-untyped-def]
    aid = encounters["alliance"].id
    raw = _figures(db, aid, rollups=False)
    assert rollup.build(db, [aid], *Q1) > 0
    _same(_figures(db, aid, rollups=True), raw)
    fig = service.compute(db, aid, *Q1, rollups=True, codes=["national.11_inpatients_in_county"])[0]
    assert fig.value == pytest.approx(2 / 3) and not fig.row_ids["encounter_stays"]  # from the rollups
    for kw in ({"member": encounters["town"].id}, {"member": encounters["county"].id},
               {"member": encounters["lead"].id, "department": encounters["dep"].id}):
        _same(_figures(db, aid, rollups=True, **kw), _figures(db, aid, rollups=False, **kw))
    town = {f.indicator.code: f for f in service.compute(db, aid, *Q1, rollups=True, member=encounters["town"].id)}
    assert town["national.11_inpatients_in_county"].value == 0.0  # its resident's stay was outside the county
    assert town["national.07_grassroots_visits"].value == 1.0


def test_the_drill_down_lists_the_stays_for_the_alliance_s_people_only(db, client, encounters) -> None:  # type: ignore[no-untyped-def]
    aid = encounters["alliance"].id
    b.login(client, "cockpitadmin")
    url = (f"/cockpit/rows?alliance_id={aid}&code=national.11_inpatients_in_county&start=2026-01&end=2026-03"
           "&measure=stays_in_and_out_of_county")
    page = client.get(url).text
    stays = {n for n in ("L2", "C2") if re.search(rf'id="row-encounter-\d+".*?{n}', page, re.S)}
    assert stays == {"L2", "C2"} and len(re.findall(r'id="row-out_of_county_visit-\d+"', page)) == 1
    assert "北京协和医院" in page and "住院" in page and "C3" not in page  # still in hospital: not counted
    client.cookies.clear()
    b.login(client, "cockpitstranger")
    assert client.get(url).status_code in (403, 404)
