"""The demo's chronic care at 沙县区总医院高桥分院: the clinician account CONTRACTS.md asks for, the family-doctor
team with its lead, 王辉煌 signed and enrolled and overdue, registries with history, and signing rates that a
count straight from the tables confirms."""

from __future__ import annotations

from sqlalchemy import text

from tests import builders as b
from yilianti.auth.service import build_subject
from yilianti.chronic import service, teams
from yilianti.demo import chronic as demo_chronic
from yilianti.demo import loader
from yilianti.kit import clock
from yilianti.models.auth import User


def _doctor(db):  # type: ignore[no-untyped-def]
    user = db.query(User).filter(User.username == "gaoqiao-doctor").one()
    return build_subject(db, user, None)


def test_a_clinician_at_gaoqiao_and_the_team_he_leads(db) -> None:  # type: ignore[no-untyped-def]
    at_gaoqiao = [a for a in loader.demo_accounts() if a.institution_name == demo_chronic.GAOQIAO]
    assert {(a.username, a.role) for a in at_gaoqiao} >= {("gaoqiao-doctor", "doctor"), ("gaoqiao-nurse", "nurse")}
    sub = _doctor(db)
    team = service.repository.teams_of(db, sub.acting_institution_id)[0]
    assert (team.name, team.village) == (demo_chronic.TEAM, demo_chronic.VILLAGES)
    members = {m.role: (m.is_lead, m.user_id) for m, _ in service.repository.members_of(db, team.id)}
    assert set(members) == {"gp", "nurse", "public_health", "specialist"}
    assert members["gp"] == (True, sub.user_id)


def test_wang_huihuang_is_signed_enrolled_and_overdue(db) -> None:  # type: ignore[no-untyped-def]
    sub = _doctor(db)
    team = service.repository.teams_of(db, sub.acting_institution_id)[0]
    due = service.due_list(db, sub, team.id)
    wang = [r for r in due.rows if r.patient.name == "王辉煌"]
    assert len(wang) == 1 and wang[0].registration.condition == "diabetes_t2" and wang[0].days_overdue == 21
    pid = wang[0].patient.id
    assert service.repository.contract_team(db, pid, sub.acting_institution_id, clock.today_local()) == team.id
    done = [f for f in service.repository.history(db, wang[0].registration.id) if f.status == "done"]
    assert len(done) == 4 and all(f.classification == "controlled" for f in done)
    found = db.execute(text("SELECT r.fasting_glucose, r.outcome FROM chronic_screening_record r "
                            "WHERE r.patient_id = :p"), {"p": pid}).one()
    assert tuple(found) == (11.2, "enrolled")


def test_registries_history_and_signing_rates_recount_from_the_tables(db) -> None:  # type: ignore[no-untyped-def]
    sub = _doctor(db)
    inst = sub.acting_institution_id
    by_condition = dict(db.execute(text("SELECT condition, count(*) FROM chronic_registration "
                                        "WHERE institution_id = :i GROUP BY condition"), {"i": inst}).all())
    assert by_condition["hypertension"] >= 20 and by_condition["diabetes_t2"] >= 10
    assert by_condition["smi"] == 2 and by_condition["tb"] == 1
    statuses = {s for (s,) in db.execute(text("SELECT status FROM chronic_registration WHERE institution_id = :i"),
                                         {"i": inst})}
    assert statuses == {"under_care", "lost", "transferred", "deceased"}
    assert db.execute(text("SELECT count(*) FROM chronic_follow_up WHERE institution_id = :i AND status = 'done'"),
                      {"i": inst}).scalar_one() >= 100
    today = clock.today_local()
    rows = {r.team_id: r for r in teams.signing_rates(db, sub)}
    signed = db.execute(text(
        "SELECT count(DISTINCT c.patient_id) FROM family_doctor_contract c JOIN family_doctor_team t ON t.id = c.team_id "
        "WHERE t.institution_id = :i AND c.status = 'active' AND c.start_on <= :d AND c.end_on >= :d"),
        {"i": inst, "d": today}).scalar_one()
    residents = db.execute(text("SELECT count(*) FROM patient WHERE registered_by_institution_id = :i AND active"),
                           {"i": inst}).scalar_one()
    total = rows[None].rates["all"]
    assert (total.signed, total.residents) == (signed, residents) and 0.5 < signed / residents < 0.9
    terminated = db.execute(text(
        "SELECT termination_reason FROM family_doctor_contract c JOIN family_doctor_team t ON t.id = c.team_id "
        "WHERE t.institution_id = :i AND c.status = 'terminated'"), {"i": inst}).scalars()
    assert {"moved", "request", "deceased"} <= set(terminated)


def test_the_gaoqiao_doctor_sees_the_chronic_pages(db, client) -> None:  # type: ignore[no-untyped-def]
    b.login(client, "gaoqiao-doctor", loader.DEMO_PASSWORD)
    for url in ("/chronic", "/chronic/registry", "/chronic/screening", "/chronic/signing",
                "/chronic/screening/coverage"):
        page = client.get(url)
        assert page.status_code == 200, url
    assert "王辉煌" in client.get("/chronic").text
    assert "建议" in client.get("/chronic/screening").text
    client.cookies.clear()
