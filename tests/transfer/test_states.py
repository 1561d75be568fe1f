"""The transfer's declared machine (transfer/states.py): every status change of the service is a
declared move; cancelling works from every open status and from no final one."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.transfer.helpers import dispatched, neonatal_in, tworld
from yilianti.audit import service as audit_service
from yilianti.exceptions import Conflict
from yilianti.models import AuditEvent
from yilianti.transfer import service, states
from yilianti.transfer.schemas import AcceptIn, CancelIn, DispatchIn, MilestoneIn
from yilianti.transfer.states import FINAL, MOVES, OPEN, Side, Status


def test_table_is_closed_and_final_states_have_no_way_out() -> None:
    for frm, to in MOVES:
        assert frm not in FINAL and frm != to
    for status in OPEN:
        assert (status, Status.cancelled) in MOVES
    assert states.next_moves("requested", Side.origin) == [Status.cancelled]
    assert states.next_moves("requested", Side.destination) == [Status.accepted, Status.cancelled]
    assert states.allowed("handed_over", "cancelled") is None
    assert service.OPEN == ("requested", "accepted", "dispatched", "in_progress")  # the enum's order
    assert service.FINAL == ("handed_over", "cancelled")


def test_the_service_moves_only_along_declared_moves(db: Session) -> None:
    w = tworld(db)
    t = service.request(db, w.lf_doc, neonatal_in(w))
    seen = [t.status]
    service.accept(db, w.cap_doc, t.id, AcceptIn())
    seen.append(t.status)
    service.dispatch(db, w.lf_doc, t.id, DispatchIn(vehicle="京A·12035", team="王新生"))
    seen.append(t.status)
    for kind in service.MAIN_CHAIN[1:]:
        service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind=kind))  # type: ignore[arg-type]
        if t.status != seen[-1]:
            seen.append(t.status)
    assert seen == ["requested", "accepted", "dispatched", "in_progress", "handed_over"]
    assert all((Status(a), Status(b)) in MOVES for a, b in zip(seen, seen[1:], strict=False))
    with pytest.raises(Conflict) as exc:
        service.cancel(db, w.lf_doc, t.id, CancelIn(reason="患者家属拒绝"))
    assert exc.value.code == "transfer_state_conflict"


@pytest.mark.parametrize("reach", ["requested", "accepted", "dispatched", "in_progress"])
def test_cancel_from_every_open_status_is_audited_as_before(db: Session, reach: str) -> None:
    w = tworld(db)
    if reach == "requested":
        t = service.request(db, w.lf_doc, neonatal_in(w))
    elif reach == "accepted":
        t = service.request(db, w.lf_doc, neonatal_in(w))
        service.accept(db, w.cap_doc, t.id, AcceptIn())
    else:
        t = dispatched(db, w)
        if reach == "in_progress":
            service.record_milestone(db, w.cap_doc, t.id, MilestoneIn(kind="team_departed"))
    assert t.status == reach
    service.cancel(db, w.cap_doc, t.id, CancelIn(reason="患儿病情好转，无需转运"))
    assert t.status == "cancelled" and t.cancel_reason == "患儿病情好转，无需转运"
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "cancel",
                                                AuditEvent.resource_id == str(t.id))).one()
    assert event.detail == audit_service.diff({"status": reach}, {"status": "cancelled"})
