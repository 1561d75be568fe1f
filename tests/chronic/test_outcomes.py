"""Outcome measures: 规范管理率 and 血压/血糖控制率 per team and institution on /chronic/outcomes, and the same
figures per alliance in the cockpit (national indicator 13, the admission rate of managed people, and its
supplementary rates) — each checked against a count made directly from the tables."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from tests import builders as b
from tests.chronic.test_chronic import _at
from yilianti.chronic import outcomes, service
from yilianti.cockpit import service as cockpit
from yilianti.kit import clock
from yilianti.models.chronic import ChronicFollowUp, ChronicRegistration
from yilianti.models.scheduling import BedReservation, Ward

Y = 2026


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    lead = b.institution(db, "沙县区总医院", level=2)
    centre = b.institution(db, "沙县区总医院高桥分院", kind="community", level=1)
    alliance = b.alliance(db, (lead, "lead"), (centre, "member"), name="沙县区医共体")
    doctor = b.user(db, centre, "doctor", username="gqdoctor")
    db.flush()
    sub = b.subject_for(db, doctor)
    with clock.frozen(_at(date(Y, 1, 2))):
        team = service.create_team(db, sub, "高桥家庭医生一队", "高桥村", [(doctor.id, "gp")])
        other = service.create_team(db, sub, "高桥家庭医生二队", "溪口村", [(doctor.id, "gp")])
        homes = ["沙县区高桥镇高桥村3号", "沙县区高桥镇高桥村8号", "沙县区高桥镇溪口村1号", "沙县区高桥镇溪口村5号",
                 "溪口村12号", "北京市朝阳区测试路1号"]
        people = [b.patient(db, sub, name, birth=date(1950 + i, 1, 1), address=homes[i])
                  for i, name in enumerate(("张建国", "李秀英", "王桂兰", "王辉煌", "陈志强", "刘淑芬"))]
        regs = [service.enrol(db, sub, p.id, cond, team_id=(team if i < 4 else other).id, enrolled_on=date(Y, 1, 2))
                for i, (p, cond) in enumerate(zip(people, ["hypertension"] * 3 + ["diabetes_t2"] * 3, strict=True))]
    # 张建国: four controlled visits (standard, controlled); 李秀英: two visits, the last uncontrolled;
    # 王桂兰: none; 王辉煌 (diabetes): four visits, last glucose 6.5; 陈志强: one visit at 8.0; 刘淑芬: none
    plan = {0: [(130, 80, None)] * 4, 1: [(128, 82, None), (150, 95, None)], 3: [(None, None, 8.0)] * 3 + [(None, None, 6.5)],
            4: [(None, None, 8.0)]}
    for i, visits in plan.items():
        for n, (sbp, dbp, glucose) in enumerate(visits):
            day = date(Y, 2 + 2 * n, 10)
            with clock.frozen(_at(day)):
                task = db.scalar(select(ChronicFollowUp).where(ChronicFollowUp.registration_id == regs[i].id,
                                                               ChronicFollowUp.status == "open"))
                service.record_follow_up(db, sub, task.id, service.VisitIn(done_on=day, sbp=sbp, dbp=dbp,
                                                                           fasting_glucose=glucose))
    ward = Ward(institution_id=lead.id, name="心内科一病区", beds_total=40)
    db.add(ward)
    db.flush()
    db.add(BedReservation(ward_id=ward.id, patient_id=people[1].id, pool="reserved", status="admitted",
                          requested_by_institution_id=centre.id, expires_at=_at(date(Y, 5, 2)),
                          created_at=_at(date(Y, 5, 1))))
    db.flush()
    return {"alliance": alliance, "centre": centre, "team": team, "other": other, "regs": regs}


def _direct(db, institution_id: int, condition: str, end: date) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(managed, controlled) straight from the tables: the last visit's values against 140/90 and 7.0."""
    managed = controlled = 0
    for reg in db.scalars(select(ChronicRegistration).where(ChronicRegistration.institution_id == institution_id,
                                                            ChronicRegistration.condition == condition)):
        managed += 1
        last = db.scalar(select(ChronicFollowUp).where(ChronicFollowUp.registration_id == reg.id,
                                                       ChronicFollowUp.status == "done", ChronicFollowUp.done_on <= end)
                         .order_by(ChronicFollowUp.done_on.desc()).limit(1))
        if last is not None and (last.fasting_glucose < 7.0 if condition == "diabetes_t2"
                                 else last.sbp < 140 and last.dbp < 90):
            controlled += 1
    return managed, controlled


def test_rates_per_team_and_institution_match_a_direct_count(db, client, world) -> None:  # type: ignore[no-untyped-def]
    end = date(Y, 12, 31)
    rows = outcomes.patient_outcomes(db, [world["centre"].id], date(Y, 1, 1), end)
    total = outcomes.summarise(rows, lambda r: r.condition)
    assert (total["hypertension"].managed, total["hypertension"].controlled) == _direct(
        db, world["centre"].id, "hypertension", end) == (3, 1)
    assert (total["diabetes_t2"].managed, total["diabetes_t2"].controlled) == _direct(
        db, world["centre"].id, "diabetes_t2", end) == (3, 1)
    assert total["hypertension"].standard == 1 and total["diabetes_t2"].standard == 1  # four visits a year
    assert outcomes.expected_visits(date(Y, 10, 1), date(Y, 1, 1), end) == 2  # enrolled for a quarter: pro rata
    with clock.frozen(_at(date(Y, 12, 31))):
        b.login(client, "gqdoctor")
        page = client.get(f"/chronic/outcomes?start={Y}-01-01&end={Y}-12-31").text
        team_row = re.search(rf'id="out-{world["team"].id}-diabetes_t2">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
        assert re.search(r'class="managed">1<', team_row) and "100.0%" in team_row  # 王辉煌 only
        other_row = re.search(rf'id="out-{world["other"].id}-diabetes_t2">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
        assert re.search(r'class="managed">2<', other_row) and "0.0%" in other_row
        all_row = re.search(r'id="out-all-hypertension"[^>]*>(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
        assert "33.3%" in all_row
        # month by month: at the end of March 李秀英's last visit (128/82, February) was controlled, from April on
        # (150/95) not
        march = re.search(rf'id="month-{Y}-03">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
        april = re.search(rf'id="month-{Y}-04">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
        assert "66.7%" in march and "33.3%" in april
        # per responsible doctor: the one doctor who enrolled them all has the institution's figures
        doctor = world["regs"][0].responsible_user_id
        doc_row = re.search(rf'id="doc-{doctor}-hypertension">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
        assert re.search(r'class="managed">3<', doc_row) and "33.3%" in doc_row
        assert {r.doctor_id for r in rows} == {doctor}
        # per village, by the address: 高桥村 张建国 (controlled) and 李秀英 (not); 溪口村 王桂兰 (no visit) and the
        # diabetics 王辉煌 (6.5) and 陈志强 (8.0); 刘淑芬 lives outside the villages served
        village = {key: re.search(rf'id="village-{key}">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
                   for key in ("高桥村-hypertension", "溪口村-hypertension", "溪口村-diabetes_t2", "none-diabetes_t2")}
        assert re.search(r'class="managed">2<', village["高桥村-hypertension"]) and "50.0%" in village["高桥村-hypertension"]
        assert re.search(r'class="managed">1<', village["溪口村-hypertension"]) and "0.0%" in village["溪口村-hypertension"]
        assert re.search(r'class="managed">2<', village["溪口村-diabetes_t2"]) and "50.0%" in village["溪口村-diabetes_t2"]
        assert re.search(r'class="managed">1<', village["none-diabetes_t2"])
        assert 'id="village-高桥村-diabetes_t2"' not in page


def test_the_cockpit_takes_the_alliance_figures(db, world) -> None:  # type: ignore[no-untyped-def]
    figs = {f.indicator.code: f for f in cockpit.compute(db, world["alliance"].id, date(Y, 1, 1), date(Y, 12, 31))}
    assert figs["national.13b_bp_control"].value == pytest.approx(1 / 3)
    assert figs["national.13d_glucose_control"].value == pytest.approx(1 / 3)
    assert figs["national.13a_htn_standard"].value == pytest.approx(1 / 3)
    # follow-up completion: the year's follow-ups due (not cancelled) done by the end of their month, from the table
    due = [f for f in db.scalars(select(ChronicFollowUp).where(ChronicFollowUp.institution_id == world["centre"].id))
           if f.due_on.year == Y and f.status != "cancelled"]
    done = [f for f in due if f.status == "done" and f.done_on and (f.done_on.year, f.done_on.month) <= (Y, f.due_on.month)]
    completion = figs["national.13e_follow_up_completion"]
    assert (completion.numerator, completion.denominator) == (len(done), len(due)) and 0 < len(done) < len(due)
    admissions = figs["national.13_chronic_admissions"]
    assert (admissions.numerator, admissions.denominator) == (1, 6)  # 李秀英 admitted at the lead hospital
    # each figure's rows are the registrations it counts
    assert admissions.row_ids["chronic_people_admitted"] == [world["regs"][1].id]
    # the period before the visits: nobody controlled yet
    early = {f.indicator.code: f for f in cockpit.compute(db, world["alliance"].id, date(Y, 1, 1), date(Y, 1, 31),
                                                          codes=["national.13b_bp_control"])}
    assert early["national.13b_bp_control"].value == 0.0


def test_an_inpatient_stay_imported_from_the_his_counts_as_an_admission(db, world) -> None:  # type: ignore[no-untyped-def]
    """A stay sent by the lead hospital's HIS with the resident ID of a managed patient (王桂兰) admits her, as a
    reserved bed admitted 李秀英; a stay without an ID, or outside the period, admits nobody."""
    from yilianti.cockpit import encounters
    from yilianti.models.alliance import Institution
    from yilianti.patients.repository import resident_ids

    lead_id = db.scalar(select(Institution.id).where(Institution.name == "沙县区总医院"))
    admin = b.subject_for(db, b.user(db, db.get(Institution, lead_id), "institution_admin", username="sxadmin"))
    rid = resident_ids(db, [world["regs"][2].patient_id])[world["regs"][2].patient_id]
    encounters.import_encounters(db, admin, lead_id, [
        encounters.EncounterIn("ZY1", "住院", date(Y, 6, 3), date(Y, 6, 12), resident_id=rid, total_cost=5000),
        encounters.EncounterIn("ZY2", "住院", date(Y, 6, 5), date(Y, 6, 9), total_cost=3000),
        encounters.EncounterIn("ZY3", "住院", date(Y - 1, 6, 5), date(Y - 1, 6, 9), resident_id=rid)])
    figs = {f.indicator.code: f for f in cockpit.compute(db, world["alliance"].id, date(Y, 1, 1), date(Y, 12, 31))}
    admissions = figs["national.13_chronic_admissions"]
    assert (admissions.numerator, admissions.denominator) == (2, 6)
    assert admissions.row_ids["chronic_people_admitted"] == [world["regs"][1].id, world["regs"][2].id]
    assert figs["national.10_inpatient_cost"].value == 4000
