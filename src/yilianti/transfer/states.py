"""The critical-transfer state machine, declared once (DOMAIN.md §4).

requested → accepted (the destination: physician, bed) → dispatched (either side: vehicle, team)
→ in_progress (the first milestone of the chain after dispatch) → handed_over (the last one);
cancelled by either side while open. `MOVES` says who may make each move: the origin (the
requesting hospital) or the destination. The milestones themselves are in the service.
"""

from __future__ import annotations

from enum import StrEnum

from yilianti.kit.i18n import code_table
from yilianti.kit.workflow import Machine


class Status(StrEnum):
    requested = "requested"
    accepted = "accepted"
    dispatched = "dispatched"
    in_progress = "in_progress"
    handed_over = "handed_over"
    cancelled = "cancelled"


class Side(StrEnum):
    origin = "origin"
    destination = "destination"


DESTINATION = frozenset({Side.destination})
EITHER = frozenset({Side.origin, Side.destination})

S = Status
# (from, to) → the sides allowed to make the move. Anything not listed is refused (409).
MOVES: dict[tuple[Status, Status], frozenset[Side]] = {
    (S.requested, S.accepted): DESTINATION,
    (S.accepted, S.dispatched): EITHER,
    (S.dispatched, S.in_progress): EITHER,  # a milestone of the chain was recorded
    (S.in_progress, S.handed_over): EITHER,  # the hand-over milestone
    (S.requested, S.cancelled): EITHER,
    (S.accepted, S.cancelled): EITHER,
    (S.dispatched, S.cancelled): EITHER,
    (S.in_progress, S.cancelled): EITHER,
}

FINAL = frozenset({S.handed_over, S.cancelled})
OPEN = frozenset(s for s in Status if s not in FINAL)
MOVING = frozenset({S.dispatched, S.in_progress})  # milestones of the chain may be recorded

STATUS_LABELS = code_table("transfer.status", {  # as locale/zh/transfer.json's transfer.status.*
    S.requested: "已申请", S.accepted: "已接收", S.dispatched: "已派车", S.in_progress: "转运中",
    S.handed_over: "已交接", S.cancelled: "已取消",
})

STATE_CONFLICT = "transfer_state_conflict"
MACHINE: Machine[Status, Side] = Machine(
    status=Status, moves=MOVES, final=FINAL, labels=STATUS_LABELS, conflict_code=STATE_CONFLICT,
    conflict_message="转运当前状态不允许此操作")
allowed = MACHINE.allowed
next_moves = MACHINE.next_moves
