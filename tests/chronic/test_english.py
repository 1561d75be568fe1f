"""Chronic care's work pages in English: every message and every coded value on the visit form, the overdue list,
the alarms, the reminders and the outcomes has its English text (none falls back to Chinese), and no raw code
shows in Chinese either."""

from __future__ import annotations

from datetime import date, timedelta

from tests import builders as b
from tests.chronic.test_chronic import _at
from tests.labelcheck import code_values, raw_codes, read, record_english, untranslated
from yilianti.chronic import reminders, repository, service
from yilianti.kit import clock, i18n

D = date(2026, 3, 2)


def test_the_work_pages_in_english_and_without_raw_codes(db, client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    centre = b.institution(db, "沙县区总医院高桥分院", kind="community", level=1)
    doctor = b.user(db, centre, "doctor", username="gqdoctor")
    db.flush()
    sub = b.subject_for(db, doctor)
    with clock.frozen(_at(D)):
        wang = b.patient(db, sub, "王辉煌", birth=date(1960, 5, 1))
        li = b.patient(db, sub, "李秀英", birth=date(1955, 8, 9), phone=None)
        team = service.create_team(db, sub, "高桥家庭医生一队", "高桥村", [(doctor.id, "gp")])
        dm = service.enrol(db, sub, wang.id, "diabetes_t2", team_id=team.id)
        service.enrol(db, sub, li.id, "hypertension", team_id=team.id)
    day = D + timedelta(days=20)
    with clock.frozen(_at(day)):
        reminders.queue_due(db)
        task = repository.open_follow_up(db, dm.id)
        data = service.VisitIn(done_on=day, fasting_glucose=17.0, visit_mode="clinic", adherence="intermittent",
                               adverse="present", adverse_text="胃肠不适", symptoms=["polydipsia"])
        nxt = service.record_follow_up(db, sub, task.id, data)
        reminders.log_call(db, sub, nxt.id, "no_answer", None)
        b.login(client, "gqdoctor")
        pages = [f"/chronic/follow-ups/{nxt.id}?done=recorded", "/chronic/overdue", "/chronic/alarms",
                 "/chronic/reminders", "/chronic/readings", "/chronic/outcomes",
                 f"/chronic/outcomes?start={D.isoformat()}", "/chronic/outcomes/monthly",
                 "/chronic/outcomes/monthly?by=village", "/chronic/outcomes/monthly?by=institution"]
        codes = code_values()
        for path in pages:
            page = client.get(path)
            assert page.status_code == 200, path
            assert not raw_codes(read(page.text)[0], codes), path
        asked = record_english(monkeypatch)
        client.cookies.set("lang", "en")
        for path in pages:
            assert client.get(path).status_code == 200, path
        assert "Overdue follow-ups" in client.get("/chronic/overdue").text
        assert not untranslated(asked)
        assert not {m for m in i18n.MISSING_LABELS if m.startswith("chronic")}
