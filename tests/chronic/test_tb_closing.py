"""A TB treatment's closing assessment is kept in its own columns (chronic_tb_closing): made by `close_tb`,
shown on the registration page, and read back by migration 0039 from the phase event's text of the closings made
before it (SQLite and PostgreSQL alike); a text that does not parse is left alone."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests import builders as b
from yilianti import db as dbmod
from yilianti.migrate import upgrade
from yilianti.models.chronic_registry import TbClosing

TEXT = "完成疗程；应访视 20 次，实际 18 次；应服药 180 次，实际 170 次，服药率 94.4%（规则服药）；家属督导"
OTHER = "丢失；应访视 5 次，实际 2 次；应服药 60 次，实际 20 次，服药率 33.3%（未规则服药）"


def test_migration_0039_reads_the_closings_back_from_their_text(test_db):  # type: ignore[no-untyped-def]
    url = test_db.new_database_url()
    upgrade(url, revision="0038")
    engine = dbmod.make_engine(url)
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        with Session(engine) as s:
            inst = b.institution(s, "沙县区总医院高桥分院", kind="community", level=1)
            doctor = b.user(s, inst, "doctor", username="gqdoctor")
            s.commit()
            inst_id, user_id = inst.id, doctor.id
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO patient (id, name, sex, birth_date, registered_by_institution_id, active, created_at)"
                " VALUES (1, '张建国', '男', '1960-01-01', :i, :t, :now)"), {"i": inst_id, "t": True, "now": now})
            for rid, reason in ((1, TEXT), (2, OTHER), (3, "疗程结束（手写说明）")):
                conn.execute(text(
                    "INSERT INTO chronic_registration (id, patient_id, condition, icd10, enrolled_on, institution_id,"
                    " status, tb_phase, created_at) VALUES (:r, 1, 'tb', 'A15.0', '2026-01-05', :i, 'under_care',"
                    " 'completed', :now)"), {"r": rid, "i": inst_id, "now": now})
                conn.execute(text(
                    "INSERT INTO chronic_registration_event (registration_id, kind, from_value, to_value, effective_on,"
                    " reason, user_id, created_at) VALUES (:r, 'phase', 'continuation', 'completed', '2026-07-01',"
                    " :why, :u, :now)"), {"r": rid, "why": reason, "u": user_id, "now": now})
        upgrade(url)
        with Session(engine) as s:
            rows = {c.registration_id: c for c in s.scalars(select(TbClosing))}
            assert set(rows) == {1, 2}  # the hand-written text is not guessed at
            one, two = rows[1], rows[2]
            assert (one.outcome, one.visits_due, one.visits_done, one.doses_due, one.doses_taken, one.regular,
                    one.note) == ("completed", 20, 18, 180, 170, True, "家属督导")
            assert (two.outcome, two.doses_taken, two.regular, two.note) == ("lost", 20, False, None)
            assert (one.stopped_on, one.assessed_by_user_id) == (date(2026, 7, 1), user_id)
    finally:
        engine.dispose()
