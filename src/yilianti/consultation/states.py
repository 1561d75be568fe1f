"""The consultation state machine, declared once (DOMAIN.md §7).

requested → assigned → acknowledged → answered → closed
                                    ↘ more_info_needed → answered
also cancelled (by the requester while open) and converted (to a referral, by the requester).
`MOVES` says who may make each move: the requesting side or the consulted side. Finer
checks (only the case assigner assigns, only an assigned expert acknowledges and signs)
are in the service.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from yilianti.config import get_settings
from yilianti.kit.i18n import code_table
from yilianti.kit.workflow import Machine


class Status(StrEnum):
    requested = "requested"
    assigned = "assigned"
    acknowledged = "acknowledged"
    more_info_needed = "more_info_needed"
    answered = "answered"
    closed = "closed"
    cancelled = "cancelled"
    converted = "converted"


class Side(StrEnum):
    requester = "requester"
    consultant = "consultant"


REQUESTER = frozenset({Side.requester})
CONSULTANT = frozenset({Side.consultant})

S = Status
MOVES: dict[tuple[Status, Status], frozenset[Side]] = {
    (S.requested, S.assigned): CONSULTANT,  # the case assigner (or a named expert at request time)
    (S.assigned, S.acknowledged): CONSULTANT,  # an assigned expert
    (S.acknowledged, S.answered): CONSULTANT,  # a signed opinion: advice / recommend referral
    (S.acknowledged, S.more_info_needed): CONSULTANT,  # a signed opinion: more information needed
    (S.more_info_needed, S.answered): CONSULTANT,
    (S.answered, S.closed): REQUESTER,  # close-out: what was done, rating, avoided referral
    (S.more_info_needed, S.closed): REQUESTER,
    (S.answered, S.converted): REQUESTER,  # one click: an up-referral carrying the whole content
    (S.more_info_needed, S.converted): REQUESTER,
    (S.requested, S.cancelled): REQUESTER,
    (S.assigned, S.cancelled): REQUESTER,
    (S.acknowledged, S.cancelled): REQUESTER,
    (S.more_info_needed, S.cancelled): REQUESTER,
}

FINAL = frozenset({S.closed, S.cancelled, S.converted})
OPEN = frozenset(s for s in Status if s not in FINAL)

STATUS_LABELS = code_table("consultation.status", {
    S.requested: "待分派", S.assigned: "已分派", S.acknowledged: "专家已确认", S.more_info_needed: "需补充资料",
    S.answered: "已答复", S.closed: "已结案", S.cancelled: "已取消", S.converted: "已转为转诊",
})
OUTCOME_LABELS = code_table("consultation.outcome", {"advice": "给出诊疗建议", "more_info": "需补充资料", "recommend_referral": "建议转诊"})
KIND_LABELS = code_table("consultation.kind", {"econsult": "单专家会诊", "mdt": "多学科会诊（MDT）", "cloud": "云门诊"})
URGENCY_LABELS = code_table("consultation.urgency", {"routine": "普通", "urgent": "加急", "emergency": "急会诊"})

STATE_CONFLICT = "consultation_state_conflict"
MACHINE: Machine[Status, Side] = Machine(
    status=Status, moves=MOVES, final=FINAL, labels=STATUS_LABELS, conflict_code=STATE_CONFLICT,
    conflict_message="会诊当前状态为“{current}”，不能执行该操作，请刷新后重试")
allowed = MACHINE.allowed
next_moves = MACHINE.next_moves


def answer_window(urgency: str) -> timedelta:
    """The answer deadline after the request, by urgency (settings YILIANTI_CONSULTATION_ANSWER_HOURS_*)."""
    s = get_settings()
    hours = {"routine": s.consultation_answer_hours_routine, "urgent": s.consultation_answer_hours_urgent,
             "emergency": s.consultation_answer_hours_emergency}.get(urgency, s.consultation_answer_hours_routine)
    return timedelta(hours=hours)


def answer_due(requested_at: datetime, urgency: str, scheduled_at: datetime | None = None) -> datetime:
    """An MDT answers after its session: the deadline is never before the session plus the window."""
    due = requested_at + answer_window(urgency)
    if scheduled_at is not None:
        due = max(due, scheduled_at + answer_window(urgency))
    return due


def step_due(status: str, requested_at: datetime, answer_due_at: datetime) -> datetime | None:
    """Deadline of the step that follows entering `status`: assign in the first quarter of the
    answer window, acknowledge by its half, answer by the answer deadline."""
    window = answer_due_at - requested_at
    match status:
        case Status.requested:
            return requested_at + window / 4
        case Status.assigned:
            return requested_at + window / 2
        case Status.acknowledged:
            return answer_due_at
    return None
