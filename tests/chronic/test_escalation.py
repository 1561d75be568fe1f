"""An alarm nobody acknowledges within the hour goes to the head of the patient's team (团队长) by name — the
periodic job `chronic.escalate_alarms` — and the alarm list says to whom; a team without a head (or whose head
is the responsible doctor) still tells the whole institution."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from tests import builders as b
from tests.chronic import test_teams_registry
from yilianti.chronic import alarms, repository, service, tasks, teams
from yilianti.kit import clock
from yilianti.models.outbox import OutboxMessage

D = date(2026, 3, 2)
_at = test_teams_registry._at
world = test_teams_registry.world


def _escalations(db) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    return [m.payload for m in db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "notify"))
            if m.payload.get("title") == "chronic.alarm.escalated"]


def test_an_unacknowledged_alarm_goes_to_the_named_team_head(db, client, world) -> None:  # type: ignore[no-untyped-def]
    sub, team = world["sub"], world["team"]
    with clock.frozen(_at(D)):
        head = teams.add_member(db, sub, team.id, world["nurse"].id, "nurse", lead=True)
        other = service.create_team(db, sub, "上坪家庭医生二队", "上坪村", [(world["doctor"].id, "gp")])
        for name, team_id in (("王辉煌", team.id), ("张建国", other.id)):
            service.enrol(db, sub, world[name].id, "diabetes_t2", team_id=team_id)
    day = D + timedelta(days=14)
    for name in ("王辉煌", "张建国"):
        task = next(f for f in repository.open_follow_ups_of(db, repository.registration_under_care(
            db, world[name].id, "diabetes_t2").id))  # type: ignore[union-attr]
        with clock.frozen(_at(day)):
            service.record_follow_up(db, sub, task.id, service.VisitIn(done_on=day, fasting_glucose=18.0))
    with clock.frozen(_at(day) + timedelta(minutes=30)):
        assert tasks.escalate_alarms(db) == 0  # not yet an hour
    with clock.frozen(_at(day) + timedelta(minutes=61)):
        assert tasks.escalate_alarms(db) == 2 and tasks.escalate_alarms(db) == 0
    by_patient = {a.patient_id: a for a in repository.open_alarms_of(db, world["王辉煌"].id, world["centre"].id)
                  + repository.open_alarms_of(db, world["张建国"].id, world["centre"].id)}
    ours, theirs = by_patient[world["王辉煌"].id], by_patient[world["张建国"].id]
    assert ours.escalated_to_user_id == head.user_id and theirs.escalated_to_user_id is None
    sent = {(p.get("user_id"), p.get("institution_id")) for p in _escalations(db)}
    assert sent == {(world["nurse"].id, None), (None, world["centre"].id)}
    assert sorted(str(p.get("params", {}).get("name")) for p in _escalations(db)) == ["张建国", "王辉煌"]
    assert alarms.escalation_target(db, theirs) is None

    with clock.frozen(_at(day) + timedelta(minutes=62)):
        b.login(client, "gqdoctor")
        page = client.get("/chronic/alarms?status=open").text
    nurse_name = repository.user_names(db, [world["nurse"].id])[world["nurse"].id]
    assert f'id="escalated-{ours.id}"' in page and f"已升级至团队长 {nurse_name}" in page
    assert "已升级至全机构" in page
