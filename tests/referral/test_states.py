"""The declared state machine: every undeclared move answers 409 and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.referral.helpers import drive, history_count, setup
from yilianti.exceptions import Conflict
from yilianti.models.outbox import OutboxMessage
from yilianti.referral import service, states
from yilianti.referral.states import FINAL, MOVES, Side, Status


def test_table_is_closed_and_final_states_have_no_way_out() -> None:
    for frm, to in MOVES:
        assert frm not in FINAL
        assert frm != to
    for status in Status:
        if status not in FINAL and status != Status.draft:
            assert any(frm == status for frm, _ in MOVES), status
    assert states.next_moves("received", Side.receiver) == [
        Status.accepted, Status.rejected, Status.returned, Status.forwarded]
    assert states.next_moves("received", Side.sender) == [Status.cancelled]
    assert states.allowed("scheduled", "closed") is None
    assert states.allowed("nonsense", "closed") is None


def _outbox(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(OutboxMessage)) or 0


@pytest.mark.parametrize("current", [s.value for s in Status])
def test_every_undeclared_move_is_409_and_changes_nothing(db: Session, current: str) -> None:
    w, patient = setup(db)
    ref = drive(db, w, patient, current)
    db.flush()
    before_history, before_outbox, before_due = history_count(db, ref.id), _outbox(db), ref.due_at
    undeclared = [s for s in Status if (Status(current), s) not in MOVES]
    assert undeclared
    for to in undeclared:
        for actor in (w.comm_doc, w.lead_doc):
            if actor is w.lead_doc and ref.to_institution_id != w.lead.id:
                continue
            with pytest.raises(Conflict) as exc:
                service.transition(db, actor, ref.id, to)
            assert exc.value.code == "referral_state_conflict" and exc.value.status == 409
    db.expire_all()
    fresh = db.get(service.Referral, ref.id)
    assert fresh is not None and fresh.status == current and fresh.due_at == before_due
    assert history_count(db, ref.id) == before_history
    assert _outbox(db) == before_outbox


def test_accepting_a_cancelled_referral_and_arriving_before_scheduling(db: Session) -> None:
    w, patient = setup(db)
    cancelled = drive(db, w, patient, "cancelled")
    with pytest.raises(Conflict):
        service.accept(db, w.lead_doc, cancelled.id)
    accepted = drive(db, w, patient, "accepted")
    with pytest.raises(Conflict):
        service.arrive(db, w.lead_doc, accepted.id)
    assert db.get(service.Referral, accepted.id).status == "accepted"  # type: ignore[union-attr]
