"""Encounters and the out-of-county register in the cockpit: the national indicators 7–12 counted from them (members
only on their days, stays by discharge, growth against the same months a year before), and the rollups giving the
same figures as the rows — for the alliance, a member and a department."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import func, select

from tests import builders as b
from tests.cockpit.test_cockpit import _sheet
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


# ------------------------------------------------------------------------------------------ imports




HEAD = ["就诊号", "类型", "就诊日期", "出院日期", "科室", "身份证号", "总费用（元）", "医保基金支付（元）", "中医"]


def test_a_member_admin_imports_a_sheet_all_or_nothing_and_again_without_counting_twice(db, client, world) -> None:  # type: ignore[no-untyped-def]
    aid = world["alliance"].id
    town = b.institution(db, "涞源县走马驿镇卫生院", kind="township", level=1)
    db.add(Membership(alliance_id=aid, institution_id=town.id, role="member"))
    b.department(db, town, "中医科")
    b.user(db, town, "institution_admin", username="townadmin")
    doctor = b.user(db, town, "doctor", username="towndoc")
    rid = b.resident_id(date(1956, 4, 2))
    pat = b.patient(db, b.subject_for(db, doctor), "王大爷", birth=date(1956, 4, 2), resident_id=rid)
    db.commit()
    csrf = b.login(client, "townadmin")
    page = client.get(f"/cockpit/encounters?alliance_id={aid}")
    assert page.status_code == 200 and "导入就诊记录" in page.text and "导入县外就医登记" not in page.text
    bad = _sheet([HEAD, ["MZ1", "门诊", "2026-03-02", "", "中医科", "", 80, 50, "是"],
                  ["ZY1", "住院", "2026-03-05", "2026-03-01", "", rid, 5000, 3000, ""],
                  ["MZ1", "会诊", "2026-03-06", "", "", "", 80, 90, ""]])
    r = client.post("/cockpit/encounters", data={"csrf_token": csrf, "alliance_id": str(aid), "what": "encounters",
                                                  "institution_id": str(town.id)},
                    files={"file": ("his.xlsx", bad, "application/octet-stream")})
    assert r.status_code == 422
    assert "第2行 出院日期不能早于入院日期" in r.text and "第3行 编号在本批中重复" in r.text
    assert "第3行 类型应为门诊、急诊或住院" in r.text and "第3行 医保基金支付不能多于总费用" in r.text
    assert db.scalar(select(func.count()).select_from(Encounter)) == 0  # nothing stored
    good = _sheet([HEAD, ["MZ1", "门诊", "2026-03-02", "", "中医科", "", 80, 50, "是"],
                   ["ZY1", "住院", "2026-03-05", "", "", rid.lower(), 2000, 1500, ""]])
    r = client.post("/cockpit/encounters", data={"csrf_token": csrf, "alliance_id": str(aid), "what": "encounters",
                                                  "institution_id": str(town.id)},
                    files={"file": ("his.xlsx", good, "application/octet-stream")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    shown = client.get(r.headers["location"]).text
    assert "新增 2 条，更新 0 条" in shown and "1 条按身份证号匹配到居民" in shown
    rows = {e.source_no: e for e in db.scalars(select(Encounter))}
    assert rows["MZ1"].tcm and rows["MZ1"].department_name == "中医科" and rows["MZ1"].department_id is not None
    assert rows["ZY1"].patient_id == pat.id and rows["ZY1"].day is None  # still in hospital
    # the discharge comes in the next day's batch: the same stay updated, nothing counted twice
    later = _sheet([HEAD, ["ZY1", "住院", "2026-03-05", "2026-03-12", "", rid, 6800, 5100, ""]])
    r = client.post("/cockpit/encounters", data={"csrf_token": csrf, "alliance_id": str(aid), "what": "encounters",
                                                  "institution_id": str(town.id)},
                    files={"file": ("his.csv", later, "application/octet-stream")}, follow_redirects=False)
    assert r.status_code == 303 and "created=0&updated=1" in r.headers["location"]
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Encounter)) == 2
    stay = db.scalar(select(Encounter).where(Encounter.source_no == "ZY1"))
    assert stay.day == date(2026, 3, 12) and stay.total_cost == 6800
    fig = service.compute(db, aid, *Q1, codes=["national.10_inpatient_cost"])[0]
    assert fig.value == 6800
    # another member's encounters are not this admin's to import
    r = client.post("/cockpit/encounters", data={"csrf_token": csrf, "alliance_id": str(aid), "what": "encounters",
                                                  "institution_id": str(world["lead"].id)},
                    files={"file": ("his.xlsx", good, "application/octet-stream")})
    assert r.status_code == 403


def test_the_his_posts_batches_to_the_api_with_a_system_client_token(db, client, world) -> None:  # type: ignore[no-untyped-def]
    from yilianti.auth import clients
    from yilianti.auth.api import TOKEN_PATH

    aid, lead = world["alliance"].id, world["lead"]
    his = clients.register(db, None, lead.id, "县医院HIS", "system/Encounter.write", None, True)
    reader = clients.register(db, None, lead.id, "只读系统", "system/*.read", None, True)
    db.commit()

    def token(done) -> dict[str, str]:  # type: ignore[no-untyped-def]
        r = client.post(TOKEN_PATH, data={"grant_type": "client_credentials"}, auth=(done.client.client_id, done.secret))
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    batch = {"encounters": [
        {"source_no": "ZY9", "kind": "inpatient", "visit_date": "2026-02-01", "discharge_date": "2026-02-09",
         "department": "儿科", "total_cost": 9000, "insurance_paid": 6000},
        {"source_no": "JZ9", "kind": "急诊", "visit_date": "2026-02-03", "total_cost": 300, "insurance_paid": 100}]}
    headers = token(his)
    r = client.post("/api/v1/encounters", json=batch, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 2, "updated": 0, "matched": 0}
    assert client.post("/api/v1/encounters", json=batch, headers=headers).json() == {"created": 0, "updated": 2,
                                                                                     "matched": 0}
    assert db.scalar(select(func.count()).select_from(Encounter)) == 2
    # a bad row: the contract's error body naming it, nothing stored
    wrong = {"encounters": [{"source_no": "ZY10", "kind": "inpatient", "visit_date": "2026-02-05",
                             "discharge_date": "2026-02-01"}, {"source_no": "MZ10", "kind": "outpatient",
                                                               "visit_date": "2026-02-05"}]}
    r = client.post("/api/v1/encounters", json=wrong, headers=headers)
    assert r.status_code == 422 and r.json()["error"] and "row1.discharge_date" in r.json()["fields"]
    r = client.post("/api/v1/encounters", json={"encounters": [{"source_no": "X", "kind": "outpatient",
                                                                 "visit_date": "not a date", "total_cost": -1}]},
                    headers=headers)
    assert r.status_code == 422 and set(r.json()) >= {"error", "message", "fields"}
    # another institution's encounters, a read-only client, the register: refused
    county = db.scalar(select(Institution.id).where(Institution.name == "涞源县医院"))
    r = client.post("/api/v1/encounters", json={**batch, "institution_id": county}, headers=headers)
    assert r.status_code == 403 and r.json()["error"]
    assert client.post("/api/v1/encounters", json=batch, headers=token(reader)).status_code == 403
    assert client.post("/api/v1/out-of-county-visits", json={"alliance_id": aid, "visits": []},
                       headers=headers).status_code == 401  # a client token is for its routes only
    assert db.scalar(select(func.count()).select_from(Encounter)) == 2


def test_the_alliance_admin_imports_the_out_of_county_register(db, client, world) -> None:  # type: ignore[no-untyped-def]
    aid = world["alliance"].id
    csrf = b.login(client, "cockpitadmin")
    head = ["结算单号", "类型", "就医机构", "就诊日期", "出院日期", "参保地机构", "总费用（元）", "医保基金支付（元）"]
    bad = _sheet([head, ["S1", "住院", "北京协和医院", "2026-02-01", "2026-02-08", "北京某医院", 30000, 15000]])
    r = client.post("/cockpit/encounters", data={"csrf_token": csrf, "alliance_id": str(aid), "what": "register"},
                    files={"file": ("yb.xlsx", bad, "application/octet-stream")})
    assert r.status_code == 422 and "参保地机构不是本医联体成员" in r.text
    good = _sheet([head, ["S1", "住院", "北京协和医院", "2026-02-01", "2026-02-08", "涞源县医院", 30000, 15000],
                   ["S2", "门诊", "北京协和医院", "2026-02-03", "", "", 500, 200]])
    r = client.post("/cockpit/encounters", data={"csrf_token": csrf, "alliance_id": str(aid), "what": "register"},
                    files={"file": ("yb.xlsx", good, "application/octet-stream")}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert "新增 2 条，更新 0 条" in page and "共 2 条，其中住院 1 人次" in page
    r = client.post("/api/v1/out-of-county-visits", headers={"X-CSRF-Token": csrf}, json={
        "alliance_id": aid, "visits": [{"settlement_no": "S1", "kind": "inpatient", "hospital": "北京协和医院",
                                        "visit_date": "2026-02-01", "discharge_date": "2026-02-09",
                                        "total_cost": 31000, "insurance_paid": 15500}]})
    assert r.status_code == 200 and r.json()["updated"] == 1
    visit = db.scalar(select(OutOfCountyVisit).where(OutOfCountyVisit.settlement_no == "S1"))
    assert visit.day == date(2026, 2, 9) and visit.home_institution_id is None
    fig = service.compute(db, aid, *Q1, codes=["national.11_inpatients_in_county"])[0]
    assert (fig.numerator, fig.denominator) == (0, 1)


def test_the_import_page_in_english_without_raw_codes(db, client, encounters, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.labelcheck import code_values, raw_codes, read, record_english, untranslated
    from yilianti.kit import i18n

    aid = encounters["alliance"].id
    db.commit()
    csrf = b.login(client, "cockpitadmin")
    url = f"/cockpit/encounters?alliance_id={aid}"
    page = client.get(url)
    assert page.status_code == 200 and not raw_codes(read(page.text)[0], code_values())
    assert re.search(rf'id="member-{encounters["town"].id}".*?class="count">2<', page.text, re.S)
    asked = record_english(monkeypatch)
    client.cookies.set("lang", "en")
    assert "Encounters and the out-of-county register" in client.get(url).text
    bad = _sheet([HEAD, ["MZ1", "会诊", "2026-03-02", "2026-03-04", "", "", 80, 90, ""]])
    r = client.post("/cockpit/encounters", data={"csrf_token": csrf, "alliance_id": str(aid), "what": "encounters",
                                                  "institution_id": str(encounters["town"].id)},
                    files={"file": ("his.xlsx", bad, "application/octet-stream")})
    assert r.status_code == 422 and "The fund cannot pay more than the total cost" in r.text
    rows = client.get(f"/cockpit/rows?alliance_id={aid}&code=national.07_grassroots_visits&start=2026-01&end=2026-03")
    assert rows.status_code == 200 and "Outpatient" in rows.text
    assert not untranslated(asked)
    assert not {m for m in i18n.MISSING_LABELS if m.startswith("encounter")}
