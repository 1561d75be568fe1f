"""The workbench (工作台): the work waiting for this user at the acting institution, one count per kind.

Every count is taken from the same query as the list it links to (the domain's worklist, paged by
kit/repository.py without a fixed cut), so a count and the rows behind its link always agree
(tests/workbench: every demo account, every count). Which counts a user sees follows the roles held
at the acting institution: a grassroots doctor's referrals and bookings, a lead-hospital doctor's
referrals to receive / decide / schedule / mark arrived / answer, a reader's worklist, a coordinator's
consultations to assign, an administrator's identity pairs, an auditor's break-glass accesses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from yilianti.audit import repository as audit
from yilianti.authz.subject import Subject
from yilianti.chronic import alarms as chronic_alarms
from yilianti.chronic import service as chronic
from yilianti.consultation import service as consultation
from yilianti.consultation.states import Side as ConsultationSide
from yilianti.diagnostics import repository as diagnostics
from yilianti.diagnostics.reading import critical
from yilianti.diagnostics.reading import service as reading
from yilianti.empi import service as empi
from yilianti.kit import clock
from yilianti.notifications import repository as notifications
from yilianti.referral import service as referral
from yilianti.referral.states import Side as ReferralSide
from yilianti.scheduling import booking, waitlist
from yilianti.transfer import service as transfer


@dataclass(frozen=True)
class Item:
    """One count on the workbench: what is waiting, how many, and the list that shows exactly those rows.
    `target` is the id of the element on that page that carries the list's total (`data-total`)."""

    key: str
    group: str
    label: str
    count: int
    url: str
    target: str = "pager"
    tone: str = ""  # "alert" (red), "warn" (overdue) or "" — only when count > 0

    @property
    def href(self) -> str:
        return self.url if self.target == "pager" else f"{self.url}#{self.target}"


@dataclass(frozen=True)
class Alert:
    """An unacknowledged critical value (危急值): shown first, red, with the time since the value."""

    id: int
    patient_name: str
    value_text: str
    item_name: str
    order_id: int
    notified_at: datetime
    minutes: int
    can_acknowledge: bool


@dataclass
class Workbench:
    items: list[Item] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    unread: int = 0

    def groups(self) -> list[tuple[str, list[Item]]]:
        out: dict[str, list[Item]] = {}
        for item in self.items:
            out.setdefault(item.group, []).append(item)
        return list(out.items())

    @property
    def waiting(self) -> int:
        return sum(i.count for i in self.items)


def _url(path: str, **params: str) -> str:
    return f"{path}?{urlencode(params)}" if params else path


REFERRAL_RECEIVER = (("to_triage", "待接收/待决定的转诊"), ("awaiting_booking", "待预约的转诊"),
                     ("awaiting_arrival", "待登记到诊的转诊"), ("awaiting_outcome", "待回传结果的转诊"))


def _referrals(db: Session, subject: Subject) -> list[Item]:
    received = referral.worklist_counts(db, subject, ReferralSide.receiver)
    sent = referral.worklist_counts(db, subject, ReferralSide.sender)
    items = [Item(f"referral.{bucket}", "双向转诊", label, received[bucket],
                  _url("/referrals", side="receiver", bucket=bucket)) for bucket, label in REFERRAL_RECEIVER]
    items += [
        Item("referral.overdue_received", "双向转诊", "已超时（收到的）", received["overdue"],
             _url("/referrals", side="receiver", bucket="overdue"), tone="warn"),
        Item("referral.overdue_sent", "双向转诊", "已超时（发出的）", sent["overdue"],
             _url("/referrals", side="sender", bucket="overdue"), tone="warn"),
        Item("referral.drafts", "双向转诊", "未提交的草稿", sent["drafts"], _url("/referrals", side="sender", bucket="drafts")),
        Item("referral.follow_up", "双向转诊", "待完成的随访任务", len(referral.follow_up_tasks(db, subject)),
             _url("/referrals", side="receiver", bucket="all"), target="tasks"),
    ]
    return items


def _scheduling(db: Session, subject: Subject) -> list[Item]:
    today = clock.today_local()
    booked = booking.count_site_bookings(db, subject, made_here=False, day=today, status="booked")
    return [
        Item("booking.today", "预约挂号", "今日待就诊的预约", booked,
             _url("/scheduling/bookings", tab="incoming", status="booked", **{"from": today.isoformat(),
                                                                              "to": today.isoformat()})),
        Item("waitlist.to_contact", "预约挂号", "待联系的候补", waitlist.count_waiting(db, subject),
             _url("/scheduling/waitlist", tab="incoming", status="waiting"), tone="warn"),
    ]


def _consultations(db: Session, subject: Subject) -> list[Item]:
    counts = consultation.worklist_counts(db, subject, ConsultationSide.consultant)
    items = []
    if subject.has(*consultation.ASSIGNER_ROLES):
        items.append(Item("consultation.to_assign", "远程会诊", "待分配专家的会诊", counts["to_assign"],
                          _url("/consultations", side="consultant", bucket="to_assign")))
    items.append(Item("consultation.mine", "远程会诊", "待我应答的会诊", counts["mine"],
                      _url("/consultations", side="consultant", bucket="mine")))
    items.append(Item("consultation.overdue", "远程会诊", "已超时的会诊", counts["overdue"],
                      _url("/consultations", side="consultant", bucket="overdue"), tone="warn"))
    items.append(Item("consultation.to_close", "远程会诊", "已答复待结案的会诊",
                      consultation.worklist_count(db, subject, ConsultationSide.requester, "to_close"),
                      _url("/consultations", side="requester", bucket="to_close")))
    return items


def _transfers(db: Session, subject: Subject) -> list[Item]:
    open_ = transfer.list_for(db, subject, direction="incoming", include_closed=False)
    return [Item("transfer.incoming", "重症转运", "转运途中的患者（转入）", len(open_),
                 _url("/transfers", direction="incoming", open="1"), tone="warn")]


def _reading(db: Session, subject: Subject) -> list[Item]:
    waiting = reading.worklist_count(db, subject)
    stat = reading.worklist_count(db, subject, priority="stat")
    return [Item("reading.worklist", "远程诊断", "待阅片/待签发", waiting, "/diagnostics/worklist", target="worklist"),
            Item("reading.stat", "远程诊断", "其中急诊（STAT）", stat, "/diagnostics/worklist?priority=stat",
                 target="worklist", tone="alert")]


def _stewardship(db: Session, subject: Subject) -> list[Item]:
    waiting = empi.queue_count(db, subject)
    return [Item("empi.open", "身份核对", "待核对的患者身份", waiting, "/empi/review", target="candidates")]


def _audit(db: Session, subject: Subject) -> list[Item]:
    return [Item("audit.break_glass", "审计", "待复核的紧急访问", audit.count_break_glass_for(db, subject),
                 "/audit/break-glass", target="break-glass", tone="warn")]


def critical_alerts(db: Session, subject: Subject) -> list[Alert]:
    """Open critical values of orders this institution placed or reads (the 危急值 list's open rows)."""
    if not subject.is_clinical:
        return []
    now = clock.now()
    return [Alert(r.cv.id, r.patient_name, r.cv.value_text, r.order.item_name or "", r.order.id, r.cv.notified_at,
                  max(0, int((now - clock.as_utc(r.cv.notified_at)).total_seconds() // 60)), r.can_acknowledge)
            for r in critical.list_for(db, subject)]


def for_subject(db: Session, subject: Subject) -> Workbench:
    """The workbench of the acting user: the counts their roles at the acting institution call for."""
    wb = Workbench(unread=notifications.unread_count(db, subject))
    if subject.is_clinical:
        wb.alerts = critical_alerts(db, subject)
        if subject.has("doctor", "nurse", "coordinator"):
            wb.items += _referrals(db, subject) + _scheduling(db, subject) + _consultations(db, subject)
            wb.items += _transfers(db, subject)
            wb.items.append(Item("chronic.due", "慢病随访", "今日到期及逾期的慢病随访", chronic.due_count(db, subject),
                                 "/chronic/overdue?due=today", target="pager", tone="warn"))
            wb.items.append(Item("chronic.alarms", "慢病随访", "未确认的慢病预警", chronic_alarms.open_count(db, subject),
                                 "/chronic/alarms?status=open", tone="alert"))
        if subject.has("reader") or (subject.has("coordinator")
                                     and diagnostics.is_reading_centre(db, subject.acting_institution_id)):
            wb.items += _reading(db, subject)
    if subject.has(*empi.STEWARD_ROLES):
        wb.items += _stewardship(db, subject)
    if subject.has("system_admin", "auditor", "alliance_admin", "institution_admin"):
        wb.items += _audit(db, subject)
    return wb
