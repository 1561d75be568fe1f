"""The referral state machine, declared once (DOMAIN.md §4).

draft → submitted → received → accepted | rejected | returned (returned-with-advice)
accepted → scheduled (slot or bed) → arrived (到诊回传) → outcome_returned → closed;
also cancelled, did_not_attend and forwarded. `MOVES` says who may make each move:
the sender side (from_institution) or the receiver side (to_institution).
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from yilianti.config import REFERRAL_STEP_DEADLINES, get_settings
from yilianti.kit.i18n import code_table
from yilianti.kit.workflow import Machine


class Status(StrEnum):
    draft = "draft"
    submitted = "submitted"
    received = "received"
    accepted = "accepted"
    rejected = "rejected"
    returned = "returned"  # returned with advice (退回并给出建议)
    scheduled = "scheduled"
    arrived = "arrived"
    outcome_returned = "outcome_returned"
    closed = "closed"
    cancelled = "cancelled"
    did_not_attend = "did_not_attend"
    forwarded = "forwarded"


class Side(StrEnum):
    sender = "sender"
    receiver = "receiver"


SENDER = frozenset({Side.sender})
RECEIVER = frozenset({Side.receiver})
EITHER = frozenset({Side.sender, Side.receiver})

S = Status
# (from, to) → the sides allowed to make the move. Anything not listed is refused (409).
MOVES: dict[tuple[Status, Status], frozenset[Side]] = {
    (S.draft, S.submitted): SENDER,
    (S.submitted, S.received): RECEIVER,
    (S.received, S.accepted): RECEIVER,
    (S.received, S.rejected): RECEIVER,
    (S.received, S.returned): RECEIVER,
    (S.received, S.forwarded): RECEIVER,
    (S.accepted, S.forwarded): RECEIVER,
    (S.accepted, S.scheduled): EITHER,  # the receiver books, or the sender books a reserved slot
    (S.scheduled, S.arrived): RECEIVER,
    # a down-referral received at a grassroots site without a slot: walk-in or a family-doctor home visit
    # (only down-referrals: `moves_for` and service.arrive say so)
    (S.accepted, S.arrived): RECEIVER,
    (S.scheduled, S.did_not_attend): RECEIVER,
    (S.arrived, S.outcome_returned): RECEIVER,
    (S.outcome_returned, S.closed): EITHER,
    (S.returned, S.closed): SENDER,  # the sender acknowledges the advice
    (S.draft, S.cancelled): SENDER,
    (S.submitted, S.cancelled): SENDER,
    (S.received, S.cancelled): SENDER,
    (S.accepted, S.cancelled): EITHER,
    (S.scheduled, S.cancelled): EITHER,
}

FINAL = frozenset({S.closed, S.cancelled, S.rejected, S.did_not_attend, S.forwarded})
OPEN = frozenset(s for s in Status if s not in FINAL)


class RejectCode(StrEnum):
    no_capability = "no_capability"  # 无相应诊疗能力
    no_bed = "no_bed"  # 床位已满
    incomplete = "incomplete"  # 资料不全
    not_indicated = "not_indicated"  # 不符合转诊指征
    patient_declined = "patient_declined"  # 患者拒绝
    other = "other"  # 其他


REJECT_LABELS = code_table("referral.reject", {
    RejectCode.no_capability: "无相应诊疗能力",
    RejectCode.no_bed: "床位已满",
    RejectCode.incomplete: "资料不全",
    RejectCode.not_indicated: "不符合转诊指征",
    RejectCode.patient_declined: "患者拒绝",
    RejectCode.other: "其他",
})

STATUS_LABELS = code_table("referral.status", {
    S.draft: "草稿", S.submitted: "已提交", S.received: "已接收", S.accepted: "已同意",
    S.rejected: "已拒绝", S.returned: "已退回（附建议）", S.scheduled: "已预约", S.arrived: "已到诊",
    S.outcome_returned: "已回传结果", S.closed: "已结案", S.cancelled: "已取消",
    S.did_not_attend: "未到诊", S.forwarded: "已转至其他机构",
})

STATE_CONFLICT = "referral_state_conflict"
MACHINE: Machine[Status, Side] = Machine(
    status=Status, moves=MOVES, final=FINAL, labels=STATUS_LABELS, conflict_code=STATE_CONFLICT,
    conflict_message="转诊单当前状态为“{current}”，不能执行该操作，请刷新后重试")
allowed = MACHINE.allowed  # the sides that may make a move, or None when it is not declared
next_moves = MACHINE.next_moves


class ArrivalMode(StrEnum):
    booked = "booked"  # on the booked slot or bed
    walk_in = "walk_in"  # came to the grassroots site without a slot (down-referrals)
    home_visit = "home_visit"  # the family doctor saw the patient at home (down-referrals)


ARRIVAL_LABELS = {ArrivalMode.booked: "按预约到诊", ArrivalMode.walk_in: "直接到诊（未预约）",
                  ArrivalMode.home_visit: "家庭医生上门"}
UNBOOKED_ARRIVAL = frozenset({ArrivalMode.walk_in, ArrivalMode.home_visit})


def moves_for(status: str, direction: str, side: Side) -> list[Status]:
    """The moves a side may offer on a referral: the machine's, except that arrival without a slot
    (accepted → arrived) is for down-referrals only — an up-referral is seen on its booked slot or bed."""
    moves = next_moves(status, side)
    if status == Status.accepted and direction != "down":
        moves = [m for m in moves if m != Status.arrived]
    return moves

# Deadline of the step that follows entering a status, by priority: the defaults live in config.py next to the
# setting that overrides them (YILIANTI_REFERRAL_STEP_DEADLINES), which validates against them.
STEP_DEADLINES: dict[Status, dict[str, timedelta]] = {Status(k): v for k, v in REFERRAL_STEP_DEADLINES.items()}


def step_deadline(status: str, priority: str) -> timedelta | None:
    """The deadline of the step after entering `status`: YILIANTI_REFERRAL_STEP_DEADLINES overrides
    (minutes per status and priority) over the defaults above."""
    minutes = get_settings().referral_step_deadlines.get(status, {}).get(priority)
    if minutes is not None:
        return timedelta(minutes=minutes)
    per = STEP_DEADLINES.get(Status(status))
    return None if per is None else per.get(priority, per["routine"])
