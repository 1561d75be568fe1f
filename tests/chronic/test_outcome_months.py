"""The monthly outcome charts (/chronic/outcomes/monthly) by the Simple hypertension programme's rules: a team's
control rate and follow-up completion month by month match a count made directly from the tables (written here
without the outcome code: one query per month), the four 3-month outcomes add up to the cohort, the other
groupings (village, doctor, member institution) and the xlsx export answer, and bad input falls back rather
than failing."""

from __future__ import annotations

import json
import random
import re
from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import and_, exists, func, or_, select

from tests import builders as b
from tests.chronic.test_chronic import _at
from yilianti.chronic import outcome_months, outcomes, registry, service
from yilianti.kit import clock
from yilianti.models.chronic import ChronicFollowUp, ChronicRegistration
from yilianti.models.chronic_registry import ChronicRegistrationEvent

TODAY = date(2026, 12, 8)


@pytest.fixture
def world(db):  # type: ignore[no-untyped-def]
    lead = b.institution(db, "沙县区总医院", level=2)
    centre = b.institution(db, "沙县区总医院高桥分院", kind="community", level=1)
    b.alliance(db, (lead, "lead"), (centre, "member"), name="沙县区医共体")
    doctor = b.user(db, centre, "doctor", username="gqdoctor")
    db.flush()
    sub = b.subject_for(db, doctor)
    rnd = random.Random(20)
    with clock.frozen(_at(date(2024, 1, 2))):
        teams = [service.create_team(db, sub, "高桥家庭医生一队", "高桥村", [(doctor.id, "gp")]),
                 service.create_team(db, sub, "高桥家庭医生二队", "溪口村", [(doctor.id, "gp")])]
    regs = []
    for i in range(40):
        team = teams[i % 2]
        p = b.patient(db, sub, "患者" + "甲乙丙丁戊己庚辛壬癸"[i % 10] + "子丑寅卯"[i // 10],
                      birth=date(1950, 1, 1) + timedelta(days=i),
                      address=f"沙县区高桥镇{team.village}{i}号")
        enrolled = date(2024, 6, 1) + timedelta(days=rnd.randrange(0, 880))
        reg = ChronicRegistration(patient_id=p.id, condition="hypertension", icd10="I10", enrolled_on=enrolled,
                                  institution_id=centre.id, team_id=team.id, responsible_user_id=doctor.id,
                                  status=rnd.choice(["under_care"] * 6 + ["lost", "deceased"]))
        db.add(reg)
        db.flush()
        regs.append(reg)
        day = enrolled
        while True:  # a visit every 1–7 months; a few without BP, some missed or cancelled follow-ups
            due = day + timedelta(days=rnd.choice([14, 30, 60, 90, 90, 120, 200]))
            if due > TODAY + timedelta(days=30):
                break
            kind = rnd.choice(["done"] * 6 + ["late", "open", "cancelled", "nobp"])
            done_on = due + timedelta(days=rnd.randrange(-5, 6)) if kind in ("done", "nobp") else (
                due + timedelta(days=rnd.randrange(20, 50)) if kind == "late" else None)
            if done_on is not None and done_on > TODAY:
                kind, done_on = "open", None
            sbp = rnd.randrange(118, 165) if kind in ("done", "late") else None
            db.add(ChronicFollowUp(registration_id=reg.id, patient_id=p.id, institution_id=centre.id,
                                   team_id=team.id, due_on=due, reason="routine",
                                   status="done" if done_on else ("cancelled" if kind == "cancelled" else "open"),
                                   done_on=done_on, sbp=sbp, dbp=(sbp - 50 if sbp else None)))
            day = done_on or due
    db.flush()
    # two patients of the first team seen every month, who leave care through the registry (a history row each):
    # one transferred in mid-June 2026, one deceased in September — counted in the months before, not after
    left = {}
    for name, status, on in (("转出患者", "transferred", date(2026, 6, 15)), ("死亡患者", "deceased", date(2026, 9, 10))):
        p = b.patient(db, sub, name, birth=date(1948, 3, 1), address="沙县区高桥镇高桥村99号")
        reg = ChronicRegistration(patient_id=p.id, condition="hypertension", icd10="I10", enrolled_on=date(2025, 1, 10),
                                  institution_id=centre.id, team_id=teams[0].id, responsible_user_id=doctor.id,
                                  status="under_care")
        db.add(reg)
        db.flush()
        month = date(2025, 2, 5)
        while month < on:
            db.add(ChronicFollowUp(registration_id=reg.id, patient_id=p.id, institution_id=centre.id,
                                   team_id=teams[0].id, due_on=month, reason="routine", status="done", done_on=month,
                                   sbp=128, dbp=78))
            month = date(month.year + month.month // 12, month.month % 12 + 1, 5)
        db.flush()
        with clock.frozen(_at(TODAY)):
            registry.change_status(db, sub, reg.id, status, "迁往三明市区" if status == "transferred" else "脑出血去世",
                                   on)
        left[status] = reg
    db.flush()
    return {"centre": centre, "teams": teams, "regs": regs, "doctor": doctor, "left": left, "sub": sub}


def _first(day: date, back: int) -> date:
    n = day.year * 12 + day.month - 1 - back
    return date(n // 12, n % 12 + 1, 1)


def _direct(db, team_id: int, month_end: date) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    """(cohort, controlled, due, done by the month's end) of the team's hypertension registrations, from the
    tables: one query each."""
    r, f = ChronicRegistration, ChronicFollowUp
    three, twelve = _first(month_end, 2), _first(month_end, 11)
    seen = exists().where(f.registration_id == r.id, f.status == "done", f.done_on >= twelve, f.done_on <= month_end)
    e = ChronicRegistrationEvent
    changes = select(e).where(e.registration_id == r.id, e.kind == "status")
    then = func.coalesce(  # the status as of the month's end: the last change by then, else before the first
        changes.with_only_columns(e.to_value).where(e.effective_on <= month_end)
        .order_by(e.effective_on.desc(), e.id.desc()).limit(1).scalar_subquery(),
        changes.with_only_columns(e.from_value).order_by(e.effective_on, e.id).limit(1).scalar_subquery(), r.status)
    counted = and_(r.team_id == team_id, r.condition == "hypertension", then.in_(("under_care", "lost")))
    cohort = db.scalars(select(r.id).where(counted, r.enrolled_on < three, or_(r.enrolled_on >= twelve, seen))).all()
    controlled = 0
    for rid in cohort:
        last = db.execute(select(f.sbp, f.dbp).where(
            f.registration_id == rid, f.status == "done", f.done_on >= three, f.done_on <= month_end,
            f.sbp.is_not(None), f.dbp.is_not(None)).order_by(f.done_on.desc(), f.id.desc()).limit(1)).first()
        controlled += bool(last and last.sbp < 140 and last.dbp < 90)
    in_month = and_(f.registration_id.in_(select(r.id).where(counted)), f.due_on >= _first(month_end, 0),
                    f.due_on <= month_end, f.status != "cancelled")
    due = db.scalar(select(func.count()).where(in_month)) or 0
    done = db.scalar(select(func.count()).where(in_month, f.status == "done", f.done_on <= month_end)) or 0
    return len(cohort), controlled, due, done


def _chart(page: str, element: str) -> dict:  # type: ignore[type-arg]
    return json.loads(re.search(rf'data-chart="{element}"[^>]*>(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]


def test_the_team_control_rate_chart_matches_a_count_from_the_tables(db, client, world) -> None:  # type: ignore[no-untyped-def]
    team = world["teams"][0]
    with clock.frozen(_at(TODAY)):
        b.login(client, "gqdoctor")
        r = client.get(f"/chronic/outcomes/monthly?by=team&group={team.id}&start=2026-01&end=2026-12")
    assert r.status_code == 200
    rate = _chart(r.text, "rate-chart")
    assert rate["xAxis"]["data"] == [f"2026-{m:02d}" for m in range(1, 13)]
    control, completion = rate["series"][0]["data"], rate["series"][1]["data"]
    checked = 0
    for k, month in enumerate(rate["xAxis"]["data"]):
        end = min(_first(date.fromisoformat(month + "-01"), -1) - timedelta(days=1), TODAY)
        cohort, controlled, due, done = _direct(db, team.id, end)
        assert control[k] == (round(100 * controlled / cohort, 1) if cohort else None), month
        assert completion[k] == (round(100 * done / due, 1) if due else None), month
        row = re.search(rf'id="m-{month}">(.*?)</tr>', r.text, re.S).group(1)  # type: ignore[union-attr]
        assert f'class="cohort">{cohort}<' in row and f'class="controlled">{controlled}<' in row
        assert f'class="due">{due}<' in row and f'class="done">{done}<' in row
        checked += bool(cohort and 0 < controlled < cohort and due)
    assert checked >= 6  # the data exercise the rates, not only empty months
    # stored by the periodic job's rebuild, the page reads the same figures from the stored rows
    assert 'id="built-at"' not in r.text
    with clock.frozen(_at(TODAY)):
        assert outcome_months.rebuild(db, world["centre"].id) > 0
        again = client.get(f"/chronic/outcomes/monthly?by=team&group={team.id}&start=2026-01&end=2026-12")
        assert _chart(again.text, "rate-chart") == rate and 'id="built-at"' in again.text
        rows = lambda page: re.findall(r'<tr id="m-.*?</tr>', page, re.S)  # noqa: E731
        assert rows(again.text) == rows(r.text)
        centre = world["centre"].id
        for by in ("team", "village", "doctor", "institution"):  # every grouping: stored = computed from the rows
            stored, built = outcome_months.monthly(db, [centre], "hypertension", by, date(2026, 1, 1), TODAY)
            data = outcomes.programme(db, [centre], "hypertension", date(2026, 1, 1), TODAY)
            computed = outcomes.monthly_by(data, "hypertension", outcome_months.key_of(db, by, centre, data.regs))
            assert built is not None and stored == computed and len(stored) >= (2 if by in ("team", "village") else 1)
            assert client.get(f"/chronic/outcomes/monthly?by={by}").status_code == 200
        # a month not stored (the period reaches back past the first build's 36 months): computed from the rows
        old = client.get("/chronic/outcomes/monthly?start=2023-11&end=2024-10").text
        assert 'id="built-at"' not in old
    # the four 3-month outcomes split the cohort; under care and lost split those registered
    data = outcomes.programme(db, [world["centre"].id], "hypertension", date(2026, 1, 1), TODAY)
    for series in outcomes.monthly_by(data, "hypertension", lambda reg: reg[3]).values():
        for m in series:
            assert m.controlled + m.uncontrolled + m.unmeasured + m.missed == m.cohort
            assert m.under_care + m.lost == m.registered
    assert any(m.unmeasured for s in outcomes.monthly_by(data, "hypertension", lambda reg: 0).values() for m in s)
    # the patients who left care count, controlled and followed up, until the month they left, not after
    each = outcomes.monthly_by(data, "hypertension", lambda reg: reg[0])
    for status, last in (("transferred", 5), ("deceased", 8)):
        series = each[world["left"][status].id]
        assert [(m.month, m.registered, m.controlled, m.due) for m in series[last - 2:last + 1]] == [
            (f"2026-{last - 1:02d}", 1, 1, 1), (f"2026-{last:02d}", 1, 1, 1), (f"2026-{last + 1:02d}", 0, 0, 0)], status
        assert all(m.registered == 0 for m in series[last:])


def test_groupings_export_english_and_bad_input(db, client, world) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen(_at(TODAY)):
        b.login(client, "gqdoctor")
        whole = client.get("/chronic/outcomes/monthly").text
        teams = [client.get(f"/chronic/outcomes/monthly?group={t.id}").text for t in world["teams"]]
        # the institution's row is the teams' rows added up
        for month in ("2026-06", "2026-12"):
            cells = [re.search(rf'id="m-{month}">.*?class="cohort">(\d+)<', p, re.S).group(1)  # type: ignore[union-attr]
                     for p in (whole, *teams)]
            assert int(cells[0]) == int(cells[1]) + int(cells[2]) > 0
        village = client.get("/chronic/outcomes/monthly?by=village").text
        assert 'id="g-高桥村"' in village and 'id="g-溪口村"' in village
        doctor = client.get(f"/chronic/outcomes/monthly?by=doctor&group={world['doctor'].id}").text
        december = [re.search(r'id="m-2026-12">.*?class="cohort">(\d+)<', p, re.S) for p in (doctor, whole)]
        assert december[0] and december[1] and december[0].group(1) == december[1].group(1)
        members = client.get("/chronic/outcomes/monthly?by=institution").text
        assert f'id="g-{world["centre"].id}"' in members
        xlsx = client.get(f"/chronic/outcomes/monthly?group={world['teams'][0].id}&format=xlsx")
        assert xlsx.status_code == 200 and xlsx.headers["content-type"].startswith(
            "application/vnd.openxmlformats") and xlsx.content[:2] == b"PK"
        for bad in ("by=nothing&group=x", "start=abc&end=2026-99", "condition=smi", "start=1990-01"):
            assert client.get(f"/chronic/outcomes/monthly?{bad}").status_code == 200
        client.cookies.set("lang", "en")
        en = client.get("/chronic/outcomes/monthly").text
        assert "Outcomes by month" in en and "Follow-up completion" in en and "3-month cohort" in en
        assert "控制率" not in en and "随访完成率" not in en


def test_the_monthly_figures_through_the_json_api(db, client, world) -> None:  # type: ignore[no-untyped-def]
    team = world["teams"][0]
    url = "/api/v1/chronic/outcomes/monthly"
    with clock.frozen(_at(TODAY)):
        assert client.get(url).status_code == 401
        b.login(client, "gqdoctor")
        r = client.get(url, params={"by": "team", "group": str(team.id), "start": "2026-01", "end": "2026-12"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["condition"], body["by"], body["group"], body["name"], body["start"], body["end"]) == (
            "hypertension", "team", str(team.id), team.name, "2026-01", "2026-12")
        assert body["built_at"] is None and [m["month"] for m in body["months"]] == [f"2026-{m:02d}" for m in range(1, 13)]
        for m in body["months"]:  # the same count from the tables as the page's
            end = min(_first(date.fromisoformat(m["month"] + "-01"), -1) - timedelta(days=1), TODAY)
            cohort, controlled, due, done = _direct(db, team.id, end)
            assert (m["cohort"], m["controlled"], m["due"], m["done"]) == (cohort, controlled, due, done), m["month"]
            assert m["control_rate"] == (controlled / cohort if cohort else None)
            assert m["controlled"] + m["uncontrolled"] + m["unmeasured"] + m["missed"] == m["cohort"]
        page = client.get(f"/chronic/outcomes/monthly?by=team&group={team.id}&start=2026-01&end=2026-12").text
        assert _chart(page, "rate-chart")["series"][0]["data"] == [
            None if m["control_rate"] is None else round(100 * m["control_rate"], 1) for m in body["months"]]
        assert [g["key"] for g in body["groups"]][:2] == [str(t.id) for t in world["teams"]]
        latest = {g["key"]: g["latest"] for g in body["groups"]}
        assert latest[str(team.id)] == body["months"][-1]
        # the whole institution: the two teams added up; stored figures once built, the same numbers
        whole = client.get(url, params={"start": "2026-01"}).json()
        assert whole["group"] == "" and whole["name"] == "本机构合计"
        assert [m["cohort"] for m in whole["months"]] == [
            sum(latest["cohort"] for latest in months) for months in zip(*[
                client.get(url, params={"group": str(t.id), "start": "2026-01"}).json()["months"]
                for t in world["teams"]], strict=True)]
        outcome_months.rebuild(db, world["centre"].id)
        stored = client.get(url, params={"start": "2026-01"}).json()
        assert stored["built_at"] is not None and stored["months"] == whole["months"]
        for by in ("village", "doctor", "institution"):
            assert client.get(url, params={"by": by, "condition": "diabetes_t2"}).status_code == 200
        # bad filter values: 422 in the contract's body, never a 500 nor a silent fallback
        for bad, field in ((("by", "nothing"), "by"), (("condition", "smi"), "condition"),
                           (("start", "2026-13"), "start"), (("end", "abc"), "end"), (("group", "999999"), "group"),
                           (("start", "2020-01"), "start"), (("end", "2027-03"), "end")):
            r = client.get(url, params=dict([bad]))
            assert r.status_code == 422, bad
            assert r.json()["error"] == "invalid_input" and field in str(r.json()["fields"]), (bad, r.json())
        r = client.get(url, params={"start": "2026-10", "end": "2026-03"})
        assert r.status_code == 422 and "start" in r.json()["fields"]
        en = client.get(url, params={"group": "999999"}, headers={"Accept-Language": "en"}).json()
        assert en["fields"]["group"] == "No such group"
        assert client.get(url, headers={"Accept-Language": "en"}).json()["name"] == "Institution total"
    spec = client.get("/api/openapi.json").json()
    op = spec["paths"][url]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"condition", "by", "group", "start", "end"}
    assert "OutcomeMonthOut" in spec["components"]["schemas"] and "422" in op["responses"]


def test_a_status_change_dated_back_past_the_refresh_rebuilds_its_months(db, world) -> None:  # type: ignore[no-untyped-def]
    centre = world["centre"].id
    reg = next(r for r in world["regs"] if r.status == "under_care" and r.enrolled_on < date(2025, 2, 1))
    at = lambda hour: clock.as_utc(datetime.combine(TODAY, time(hour), clock.SHANGHAI))  # noqa: E731

    def figures() -> tuple[dict, dict]:  # type: ignore[type-arg]
        stored, built = outcome_months.monthly(db, [centre], "hypertension", "all", date(2025, 2, 1), TODAY)
        data = outcomes.programme(db, [centre], "hypertension", date(2025, 2, 1), TODAY)
        assert built is not None
        return stored, outcomes.monthly_by(data, "hypertension", lambda r: "")

    with clock.frozen(at(9)):
        outcome_months.rebuild(db, centre)  # the first build: 36 months
    with clock.frozen(at(10)):
        before, _ = figures()
        registry.change_status(db, world["sub"], reg.id, "transferred", "迁往三明市区", date(2025, 3, 10))
        db.flush()
        stale, computed = figures()
        assert stale == before and stale != computed  # the stored 2025 months still count the patient
    with clock.frozen(at(11)):
        outcome_months.rebuild(db, centre)  # the hourly job: back to March 2025, not only the last 13 months
        stored, computed = figures()
    assert stored == computed
    march = [m.month for m in stored[""]].index("2025-03")
    assert stored[""][march].registered == before[""][march].registered - 1
    assert stored[""][march - 1].registered == before[""][march - 1].registered
