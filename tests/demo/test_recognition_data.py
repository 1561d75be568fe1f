"""The demo recognition data (demo/recognition.py): the DONE-WHEN scenario on the package's one load."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from yilianti.auth import service as auth_service
from yilianti.demo import recognition
from yilianti.kit import clock
from yilianti.models.audit import AuditEvent
from yilianti.models.auth import User
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.patient import Patient
from yilianti.models.recognition import RecognitionDecision, RecognitionItem
from yilianti.recognition import service


def _subject(db: Session, username: str):  # type: ignore[no-untyped-def]
    user = db.scalar(select(User).where(User.username == username))
    assert user is not None
    return auth_service.build_subject(db, user, None)


def test_catalogue_is_realistic(db: Session) -> None:
    codes = set(db.scalars(select(RecognitionItem.code)))
    assert {"CBC", "LFT", "TFT", "TM4", "CT-CHEST", "DR-CHEST"} <= codes


def test_beijing_doctor_is_offered_the_xianghe_thyroid_panel_from_last_month(db: Session) -> None:
    marker = db.scalar(select(AuditEvent).where(AuditEvent.action == recognition.MARKER_ACTION))
    assert marker is not None and marker.detail is not None
    pid, oid = marker.detail["patient_id"], marker.detail["order_id"]
    assert db.get(Patient, pid).name == recognition.DONE_WHEN_PATIENT  # type: ignore[union-attr]
    order = db.get(DiagnosticOrder, oid)
    assert order is not None and order.reported_at is not None
    result_month = clock.to_local(order.reported_at).date().replace(day=1)
    this_month = clock.today_local().replace(day=1)
    assert result_month < this_month and (this_month - result_month).days <= 31  # last month
    found = service.lookup(db, _subject(db, "bjcy-doctor"), pid, "TFT")
    assert [r.order_id for r in found.results] == [oid]
    assert found.results[0].institution_name == recognition.XIANGHE and found.results[0].scopes == ["京津冀"]
    assert service.hr_mark(db, order).scopes == ["京津冀", "香河县医共体"]  # qualified in both


def test_report_history_counts_savings_at_beijing_prices(db: Session) -> None:
    reuses = db.scalars(select(RecognitionDecision).where(RecognitionDecision.decision == "reuse")).all()
    assert len(reuses) == 4 and all(d.price_saved_fen == recognition.BJCY_TFT_PRICE_FEN for d in reuses)
    rep = service.monthly_report(db, _subject(db, "bjcy-doctor"), months=6)
    assert rep["totals"]["reused"] == 4 and rep["totals"]["retested"] == 2
