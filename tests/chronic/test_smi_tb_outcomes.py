"""The outcome measures of the two other registries on /chronic/outcomes, checked against what was recorded:
severe mental disorders — regular follow-up (≥ 4 a year, pro rata), stable at the last visit, grade 3–5 visits
referred in time (on the visit form, or an up-referral sent by the next day; a draft does not count); tuberculosis
— first home visit within 72 h of the notification, regular treatment and treatment success from the closing
assessments' own columns."""

from __future__ import annotations

import re
from datetime import date, timedelta

from tests import builders as b
from tests.chronic import test_smi_tb, test_teams_registry
from yilianti.chronic import outcomes, registry
from yilianti.kit import clock
from yilianti.models.referral import Referral

D = date(2026, 3, 2)
_at = test_teams_registry._at
_visit = test_smi_tb._visit
world = test_teams_registry.world


def _refer(db, world, day: date, status: str) -> None:  # type: ignore[no-untyped-def]
    db.add(Referral(direction="up", patient_id=world["李秀英"].id, from_institution_id=world["centre"].id,
                    to_institution_id=world["lead"].id, reason="严重精神障碍病情不稳定", status=status,
                    created_at=_at(day)))
    db.flush()


def test_smi_and_tb_outcomes_per_team_on_the_page(db, client, world) -> None:  # type: ignore[no-untyped-def]
    sub, team = world["sub"], world["team"]
    with clock.frozen(_at(D)):
        smi = registry.enrol(db, sub, registry.EnrolIn(world["李秀英"].id, "smi", icd10="F20.0", risk_level="0",
                                                       team_id=team.id))
        tb_ok = registry.enrol(db, sub, registry.EnrolIn(world["张建国"].id, "tb", icd10="A15.0", notified_on=D,
                                                         team_id=team.id))
        tb_late = registry.enrol(db, sub, registry.EnrolIn(world["陈美华"].id, "tb", icd10="A16.2", notified_on=D,
                                                           team_id=team.id))
    calm = {"insight": "complete"}
    days = [D + timedelta(days=14 + 30 * k) for k in range(6)]
    _visit(db, sub, smi.id, days[0], danger_grade=0, **calm)
    _visit(db, sub, smi.id, days[1], danger_grade=3, referral_reason="危险性3级，转精神专科")  # on the form: in time
    _visit(db, sub, smi.id, days[2], danger_grade=4)  # an up-referral sent the next day: in time
    _refer(db, world, days[2] + timedelta(days=1), "submitted")
    _visit(db, sub, smi.id, days[3], danger_grade=5)  # only a draft, and one sent three days later: not in time
    _refer(db, world, days[3], "draft")
    _refer(db, world, days[3] + timedelta(days=3), "submitted")
    _visit(db, sub, smi.id, days[4], danger_grade=0, **calm)
    # TB: 张建国 seen on day 3 (within 72 h), 陈美华 on day 5; closed regular/completed and irregular/lost
    _visit(db, sub, tb_ok.id, D + timedelta(days=3), missed_doses=0)
    _visit(db, sub, tb_late.id, D + timedelta(days=5), missed_doses=0)
    stop = D + timedelta(days=180)
    with clock.frozen(_at(stop)):
        registry.close_tb(db, sub, tb_ok.id, registry.ClosingIn(stop, "completed", 180, 170))
        registry.close_tb(db, sub, tb_late.id, registry.ClosingIn(stop, "lost", 60, 20))
    year = (date(2026, 1, 1), date(2026, 12, 31))
    (s,) = outcomes.smi_outcomes(db, [world["centre"].id], *year)
    assert (s.visits, s.expected, s.regular, s.stable, s.high_grade, s.referred) == (5, 4, True, True, 3, 2)
    tb = {t.registration_id: t for t in outcomes.tb_outcomes(db, [world["centre"].id], *year)}
    assert (tb[tb_ok.id].first_in_time, tb[tb_ok.id].regular, tb[tb_ok.id].success) == (True, True, True)
    assert (tb[tb_late.id].notified, tb[tb_late.id].first_in_time, tb[tb_late.id].regular,
            tb[tb_late.id].success) == (True, False, False, False)
    # a period before the closings counts the notifications only
    spring = {t.registration_id: t for t in outcomes.tb_outcomes(db, [world["centre"].id], D, D + timedelta(days=30))}
    assert not any(t.closed for t in spring.values()) and all(t.notified for t in spring.values())
    with clock.frozen(_at(date(2026, 12, 31))):
        b.login(client, "gqdoctor")
        page = client.get("/chronic/outcomes?start=2026-01-01&end=2026-12-31").text
    row = re.search(rf'id="smi-{team.id}"[^>]*>(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert 'class="managed">1<' in row and "100.0%" in row and "66.7%" in row and "2/3" in row
    row = re.search(r'id="tb-all"[^>]*>(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert re.search(r'class="first">50.0%', row) and 'class="closed">2<' in row
    assert re.search(r'class="regular">50.0%', row) and re.search(r'class="success">50.0%', row)
