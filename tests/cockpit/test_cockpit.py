"""The alliance cockpit: each indicator counts the rows it says it counts, by month, against a target with
history; who may see it; the export opens in a spreadsheet."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from tests import builders as b
from yilianti.auth import service as auth_service
from yilianti.cockpit import library, service
from yilianti.exceptions import Forbidden, InvalidInput
from yilianti.models.alliance import Membership
from yilianti.models.cockpit import Indicator, IndicatorTarget


def _by_code(figures):  # type: ignore[no-untyped-def]
    return {f.indicator.code: f for f in figures}


def test_library_is_loaded_by_the_migrations_and_sync_is_idempotent(db) -> None:  # type: ignore[no-untyped-def]
    codes = {e["code"] for e in library.entries()}
    assert codes == set(db.scalars(select(Indicator.code)))
    assert {"referral.up", "referral.down", "sinking.slot_ratio", "recognition.rate"} <= codes
    assert library.sync(db) == 0


def test_referral_indicators_count_members_on_the_referral_day(db, world) -> None:  # type: ignore[no-untyped-def]
    figs = _by_code(service.compute(db, world["alliance"].id, date(2026, 1, 1), date(2026, 3, 31)))
    up, down, rate = figs["referral.up"], figs["referral.down"], figs["referral.down_rate"]
    assert up.by_month == {"2026-01": 2, "2026-02": 0, "2026-03": 1}
    assert up.value == 3 and down.value == 1
    assert down.by_month["2026-02"] == 1
    assert rate.value == pytest.approx(1 / 3) and rate.numerator == 1 and rate.denominator == 3
    assert rate.by_month == {"2026-01": 0.0, "2026-02": None, "2026-03": 0.0}
    assert figs["referral.down_outpatient"].value == 1 and figs["referral.down_inpatient"].value == 0
    # receive: 2 h and 6 h, median 4; decide: 10 h for the one decided
    assert figs["referral.receive_hours"].value == pytest.approx(4.0)
    assert figs["referral.decide_hours"].value == pytest.approx(10.0)
    # the rows behind the figure are the ones counted
    assert len(up.row_ids["referrals_up"]) == 3
    # 1/3 against the default target 0.3: met
    assert rate.target == pytest.approx(0.3) and rate.status == "green"
    assert up.trend == "up"


def test_status_against_target() -> None:
    assert service.rag(0.28, 0.3, "up") == "amber" and service.rag(0.2, 0.3, "up") == "red"
    assert service.rag(4.2, 4, "down") == "amber" and service.rag(3, 4, "down") == "green"
    assert service.rag(5, 4, "down") == "red" and service.rag(5, None, "up") is None
    assert service.rag(5, 4, "none") is None


def test_targets_are_set_by_the_alliance_admin_and_keep_their_history(db, world) -> None:  # type: ignore[no-untyped-def]
    aid = world["alliance"].id
    admin = b.subject_for(db, world["admin"])
    service.set_target(db, admin, aid, code="referral.down_rate", value=0.5, source="2026年考核方案",
                       effective_from=date(2026, 3, 1))
    service.set_target(db, admin, aid, code="referral.down_rate", value=0.4, source="2026年中调整",
                       effective_from=date(2026, 6, 1))
    march = _by_code(service.compute(db, aid, date(2026, 1, 1), date(2026, 3, 31)))["referral.down_rate"]
    assert march.target == 0.5 and march.target_source == "2026年考核方案" and march.status == "red"
    july = _by_code(service.compute(db, aid, date(2026, 1, 1), date(2026, 7, 31)))["referral.down_rate"]
    assert july.target == 0.4
    assert db.scalar(select(func.count()).select_from(IndicatorTarget)) == 2
    with pytest.raises(Forbidden):
        service.set_target(db, b.subject_for(db, world["doctor"]), aid, code="referral.down_rate", value=0.1,
                           source="x")
    with pytest.raises(InvalidInput) as e:
        service.set_target(db, admin, aid, code="referral.down_rate", value=30, source="")
    assert set(e.value.fields) == {"value", "source"}


def test_cockpit_page_export_and_who_sees_it(db, client, world) -> None:  # type: ignore[no-untyped-def]
    aid = world["alliance"].id
    csrf = b.login(client, "cockpitadmin")
    page = client.get(f"/cockpit?alliance_id={aid}&start=2026-01&end=2026-03")
    assert page.status_code == 200, page.text
    row = re.search(r'id="row-referral-up">(.*?)</tr>', page.text, re.S).group(1)  # type: ignore[union-attr]
    assert re.findall(r"<td>(?:<a [^>]*>)?([^<]*)(?:</a>)?</td>", row)[-3:] == ["2", "0", "1"]
    assert "下转率（下转÷上转）" in page.text and 'id="chart-referral"' in page.text
    # a failed target keeps what was typed, with the errors beside the fields
    r = client.post("/cockpit/targets", data={"csrf_token": csrf, "alliance_id": str(aid),
                                              "code": "referral.down_rate", "value": "abc", "source": "考核方案"})
    assert r.status_code == 422 and 'value="abc"' in r.text and 'value="考核方案"' in r.text
    r = client.post("/cockpit/targets", data={"csrf_token": csrf, "alliance_id": str(aid),
                                              "code": "referral.down_rate", "value": "0.45", "source": "考核方案",
                                              "effective_from": "2026-01-01"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "考核方案" in client.get(f"/cockpit?alliance_id={aid}").text
    x = client.get(f"/cockpit/export.xlsx?alliance_id={aid}&start=2026-01&end=2026-03")
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
    ws = load_workbook(io.BytesIO(x.content)).active
    rows = {r[0]: r for r in ws.iter_rows(min_row=3, values_only=True)}
    assert rows["referral.up"][-3:] == (2, 0, 1) and rows["referral.down_rate"][4] == 45
    # a doctor of a member sees it; a doctor elsewhere does not
    client.post("/logout", data={"csrf_token": csrf})
    b.login(client, "cockpitstranger")
    assert client.get(f"/cockpit?alliance_id={aid}").status_code == 403


def test_health_commission_sees_the_alliances_of_its_region_and_no_patient(db, client, world) -> None:  # type: ignore[no-untyped-def]
    from yilianti.models.alliance import Institution

    commission = Institution(name="廊坊市卫生健康委员会", kind="health_authority", province="河北", city="廊坊")
    county_lead = b.institution(db, "香河县人民医院", province="河北", city="廊坊")
    township = b.institution(db, "渠口镇卫生院", kind="township", level=1, province="河北", city="廊坊")
    db.add(commission)
    db.flush()
    xianghe = b.alliance(db, (county_lead, "lead"), (township, "member"), name="香河县医共体")
    auth_service.create_user(db, None, "lfcommission", b.PASSWORD, "廊坊市卫健委", [("health_commission", commission.id, None)])
    doctor = b.user(db, township, "doctor", username="qkdoc")
    pat = b.patient(db, b.subject_for(db, doctor), "李四")
    db.flush()
    b.login(client, "lfcommission")
    page = client.get("/cockpit")
    assert page.status_code == 200
    options = re.search(r'<select id="f-alliance_id" name="alliance_id">(.*?)</select>', page.text, re.S).group(1)  # type: ignore[union-attr]
    assert "香河县医共体" in options and "保定托管医联体" not in options
    assert client.get(f"/cockpit?alliance_id={world['alliance'].id}").status_code == 403
    assert client.get(f"/cockpit?alliance_id={xianghe.id}").status_code == 200
    # figures, never a patient
    assert client.get("/patients").status_code in (403, 404)
    assert client.get(f"/api/v1/patients/{pat.id}").status_code in (401, 403, 404)
    assert "张三" not in page.text and "李四" not in page.text


def _sheet(rows):  # type: ignore[no-untyped-def]
    from openpyxl import Workbook

    wb = Workbook()
    for r in rows:
        wb.active.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_national_figures_are_entered_and_imported_all_or_nothing(db, client, world) -> None:  # type: ignore[no-untyped-def]
    from yilianti.models.cockpit import IndicatorFigure

    aid = world["alliance"].id
    csrf = b.login(client, "cockpitadmin")
    head = ["指标代码", "开始日期", "结束日期", "数值", "出处", "佐证"]
    bad = _sheet([head, ["national.05b_ecg_village", "2026-01-01", "2026-06-30", "0.58", "卫健委统计直报", ""],
                  ["national.06_income_ratio", "2026-01-01", "2025-12-31", "0.9", "财务报表", ""],
                  ["referral.up", "2026-01-01", "2026-06-30", "3", "x", ""]])
    r = client.post("/cockpit/figures/import", data={"csrf_token": csrf, "alliance_id": str(aid)},
                    files={"file": ("figures.xlsx", bad, "application/octet-stream")})
    assert r.status_code == 422
    assert "第2行 结束日期不能早于开始日期" in r.text and "第3行 该指标由平台数据计算" in r.text
    assert db.scalar(select(func.count()).select_from(IndicatorFigure)) == 0  # nothing stored
    good = _sheet([head, ["national.05b_ecg_village", "2026-01-01", "2026-06-30", "58%", "卫健委统计直报", ""],
                   ["national.01_resources", "2026-01-01", "2026-06-30", "1", "医共体章程", "人财物统一管理文件（2025）"],
                   ["national.05b_ecg_village", "2025-01-01", "2025-12-31", "0.61", "卫健委统计直报", ""]])
    r = client.post("/cockpit/figures/import", data={"csrf_token": csrf, "alliance_id": str(aid)},
                    files={"file": ("figures.xlsx", good, "application/octet-stream")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    # a correction of the same period, entered by hand, replaces it
    r = client.post("/cockpit/figures", data={"csrf_token": csrf, "alliance_id": str(aid), "code": "national.05b_ecg_village",
                                              "period_start": "2026-01-01", "period_end": "2026-06-30", "value": "0.6",
                                              "source": "卫健委统计直报（更正）"}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(f"/cockpit?alliance_id={aid}&start=2025-01&end=2026-06").text
    row = re.search(r'id="nat-national-05b_ecg_village"[^>]*>(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "60.0%" in row and "更正" in row  # value, source
    res = re.search(r'id="nat-national-01_resources"[^>]*>(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "是" in res and "人财物统一管理文件" in res
    # a doctor of a member may look, not enter
    client.post("/logout", data={"csrf_token": csrf})
    csrf = b.login(client, "cockpitdoc")
    r = client.post("/cockpit/figures", data={"csrf_token": csrf, "alliance_id": str(aid), "code": "national.01_resources",
                                              "period_start": "2026-01-01", "period_end": "2026-06-30", "value": "1",
                                              "source": "x"})
    assert r.status_code == 403


def test_assistance_records_feed_the_cockpit(db, client, world) -> None:  # type: ignore[no-untyped-def]
    from yilianti.models.cockpit import AssistanceRecord
    from yilianti.models.workforce import PracticeSite

    aid, lead = world["alliance"].id, world["lead"]
    county = db.scalar(select(Membership).where(Membership.alliance_id == aid, Membership.role == "member",
                                                Membership.joined_on.is_(None))).institution_id
    csrf = b.login(client, "cockpitadmin")
    # a posting of January–March (90 days), entered by hand
    r = client.post("/cockpit/assistance", data={
        "csrf_token": csrf, "alliance_id": str(aid), "kind": "posting", "from_institution_id": str(lead.id),
        "to_institution_id": str(county), "start_date": "2026-01-01", "end_date": "2026-03-31", "person": "王主任",
        "title": "主任医师", "post": "儿科副主任"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    # an import with one bad row stores nothing and says which row
    head = ["类型", "派出机构", "接收机构", "开始日期", "结束日期", "人员", "手术台次", "三四级手术台次", "次数", "人次"]
    bad = _sheet([head, ["带教手术", "保定市第一中心医院", "涞源县医院", "2026-02-10", "", "", 10, 4, "", ""],
                  ["下沉坐诊", "保定市第一中心医院", "北京某医院", "2026-02-11", "", "", "", "", 4, 60]])
    r = client.post("/cockpit/assistance", data={"csrf_token": csrf, "alliance_id": str(aid)},
                    files={"file": ("a.xlsx", bad, "application/octet-stream")})
    assert r.status_code == 422 and "第2行 该机构在开始日期不是本医联体成员" in r.text
    assert db.scalar(select(func.count()).select_from(AssistanceRecord)) == 1
    good = _sheet([head, ["带教手术", "保定市第一中心医院", "涞源县医院", "2026-02-10", "", "", 10, 4, "", ""],
                   ["下沉坐诊", "保定市第一中心医院", "涞源县医院", "2026-02-11", "", "", "", "", 4, 60]])
    r = client.post("/cockpit/assistance", data={"csrf_token": csrf, "alliance_id": str(aid)},
                    files={"file": ("a.xlsx", good, "application/octet-stream")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    # a lead practitioner rostered every Monday at the county in March (5 Mondays), mornings only
    prac = b.practitioner(db, lead, "李专家")
    db.add(PracticeSite(practitioner_id=prac.id, institution_id=county, weekday=1, period="am",
                        starts_on=date(2026, 3, 1), ends_on=date(2026, 3, 31)))
    db.flush()
    figs = _by_code(service.compute(db, aid, date(2026, 1, 1), date(2026, 3, 31)))
    days = figs["assistance.person_days"]
    assert days.by_month["2026-01"] == pytest.approx(31) and days.by_month["2026-02"] == pytest.approx(28)
    assert days.by_month["2026-03"] == pytest.approx(31 + 5 * 0.5)
    assert figs["assistance.surgeries"].value == 10 and figs["assistance.grade34_share"].value == pytest.approx(0.4)
    assert figs["assistance.patients"].value == 60 and figs["assistance.clinics"].value == 4
    page = client.get(f"/cockpit/assistance?alliance_id={aid}&start=2026-01&end=2026-03")
    assert page.status_code == 200 and "王主任" in page.text and "儿科副主任" in page.text and "带教手术" in page.text
    x = client.get(f"/cockpit/assistance/export.xlsx?alliance_id={aid}&start=2026-01&end=2026-03&kind=surgery")
    rows = list(load_workbook(io.BytesIO(x.content)).active.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 1 and rows[0][0] == "带教手术" and rows[0][12] == 10


def test_a_malformed_csv_is_a_422_not_a_500(db, client, world) -> None:  # type: ignore[no-untyped-def]
    """A bare carriage return inside a field broke Python's csv reader into a 500 (schemathesis, recognition
    catalogue upload): both uploads read CSV with newline="" and answer a file they cannot use with 422."""
    from yilianti.recognition import catalogue

    with pytest.raises(InvalidInput):
        catalogue.read_rows(b'a,b\nx\ry,"z', "c.csv")
    csrf = b.login(client, "cockpitadmin")
    r = client.post("/cockpit/figures/import", data={"csrf_token": csrf, "alliance_id": str(world["alliance"].id)},
                    files={"file": ("f.csv", b'x\ry,"z', "text/csv")})
    assert r.status_code == 422
