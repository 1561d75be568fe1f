"""The reading centre's side of the order → report workflow (DOMAIN.md §5).

The centre's worklist (stat first, then urgent, then the longest waiting); one reader claims a
received study (or the centre's head assigns it), writes and signs the report (a trainee's report
needs a second signature by a non-trainee before it is final), amends a final report; and the
turnaround (TAT) statistics. Every status change goes through `orders.workflow.transition`, the one
place that locks the row, checks `states.MOVES`, writes the history, audits and notifies; the
critical values a signed report raises are in `critical.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from yilianti.alliance.repository import institution_names
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.diagnostics import repository as repo
from yilianti.diagnostics import states
from yilianti.diagnostics.orders.workflow import OrderRow, get, order_rows, transition
from yilianti.diagnostics.reading import critical as critical_values
from yilianti.diagnostics.states import Side, Status
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.kit.repository import Page
from yilianti.models.auth import User
from yilianti.models.diagnostics import DiagnosticOrder, DiagnosticReport
from yilianti.models.workforce import Practitioner

READING_ROLES = ("reader", "doctor")


def _conflict(order: DiagnosticOrder) -> Conflict:
    return states.MACHINE.conflict(order.status)


# ------------------------------------------------------------------------------------- reading


def _require_reader(subject: Subject) -> None:
    if not subject.is_clinical or not subject.has(*READING_ROLES):
        raise Forbidden("只有阅片/报告医师可以执行该操作")


def claim(db: Session, subject: Subject, order_id: int) -> DiagnosticOrder:
    """Exactly one reader gets a received study: the row is locked, the loser gets 409."""
    _require_reader(subject)
    order = kit.get(db, DiagnosticOrder, order_id)
    if order is not None and order.status == Status.claimed and order.claimed_by_user_id == subject.user_id:
        return order
    return _claim_received(db, subject, order_id)


def _claim_received(db: Session, subject: Subject, order_id: int, *, reason: str | None = None,
                    detail: dict[str, Any] | None = None) -> DiagnosticOrder:
    """received → claimed under the row lock; when another reader won, 409 naming who holds it."""
    try:
        return transition(db, subject, order_id, Status.claimed, reason=reason, detail=detail,
                          expected_status=Status.received)
    except Conflict:
        current = kit.get(db, DiagnosticOrder, order_id)
        if current is not None and current.status == Status.claimed and current.claimed_by_user_id:
            who = kit.get(db, User, current.claimed_by_user_id)
            raise Conflict("该检查已由 {who} 认领阅片", code="diagnostic_already_claimed",
                           who=who.display_name if who else "?") from None
        raise


def readers_of(db: Session, institution_id: int) -> list[User]:
    """Active users holding the reader role at a centre (for assignment)."""
    return repo.readers_at(db, institution_id)


def can_assign(db: Session, subject: Subject) -> bool:
    if not subject.is_clinical:
        return False
    if subject.has("institution_admin"):
        return True
    practitioner = kit.get(db, Practitioner, subject.practitioner_id) if subject.practitioner_id else None
    return bool(practitioner and practitioner.is_department_head and subject.has(*READING_ROLES))


def assign(db: Session, subject: Subject, order_id: int, reader_user_id: int) -> DiagnosticOrder:
    """A centre's head or administrator hands a received study to one reader (claimed on their behalf)."""
    order, sides = get(db, subject, order_id, audit_read=False)
    if Side.centre not in sides or not can_assign(db, subject):
        raise Forbidden("只有阅片中心的科主任或管理员可以分配检查")
    if reader_user_id not in {u.id for u in readers_of(db, subject.acting_institution_id or 0)}:
        raise InvalidInput(fields={"reader_user_id": "请选择本中心的阅片医师"})
    return _claim_received(db, subject, order_id, reason="分配阅片", detail={"assigned_to": reader_user_id})


def release(db: Session, subject: Subject, order_id: int) -> DiagnosticOrder:
    order, _ = get(db, subject, order_id, audit_read=False)
    if order.status != Status.claimed:
        raise _conflict(order)
    if order.claimed_by_user_id != subject.user_id and not can_assign(db, subject):
        raise Forbidden("只能释放自己认领的检查")
    return transition(db, subject, order_id, Status.received, reason="释放认领", expected_status=Status.claimed)


def save_report(db: Session, subject: Subject, order_id: int, *, findings: str | None, conclusion: str | None,
                measurements: dict[str, Any] | None = None, critical: bool = False) -> DiagnosticReport:
    _require_reader(subject)
    order, sides = get(db, subject, order_id)
    if Side.centre not in sides:
        raise Forbidden("只有阅片中心可以书写报告")
    if order.status != Status.claimed or order.claimed_by_user_id != subject.user_id:
        raise Conflict("请先认领该检查再书写报告", code="diagnostic_not_claimed")
    report = repo.report_of(db, order.id)
    if report is None:
        report = DiagnosticReport(order_id=order.id, status="draft", author_user_id=subject.user_id, version=1)
        db.add(report)
    report.findings = (findings or "").strip() or None
    report.conclusion = (conclusion or "").strip() or None
    report.measurements = measurements or None
    report.critical = critical
    report.updated_at = clock.now()
    db.flush()
    return report


def _practitioner(db: Session, subject: Subject) -> Practitioner:
    practitioner = kit.get(db, Practitioner, subject.practitioner_id) if subject.practitioner_id else None
    if practitioner is None:
        raise Forbidden("签名需要关联执业医师档案")
    return practitioner


def sign(db: Session, subject: Subject, order_id: int, *, findings: str | None, conclusion: str | None,
         measurements: dict[str, Any] | None = None, critical: bool = False) -> DiagnosticReport:
    """The reader signs: final for a qualified reader, preliminary (reported) for a trainee."""
    report = save_report(db, subject, order_id, findings=findings, conclusion=conclusion,
                         measurements=measurements, critical=critical)
    if not report.conclusion:
        raise InvalidInput(fields={"conclusion": "请填写诊断意见"})
    practitioner = _practitioner(db, subject)
    now = clock.now()
    report.signed_by_user_id, report.signed_by_practitioner_id, report.signed_at = subject.user_id, practitioner.id, now
    if practitioner.is_trainee:
        report.status = "preliminary"
        order = transition(db, subject, order_id, Status.reported, reason="规培医师签名，待上级医师审核",
                           expected_status=Status.claimed)
    else:
        report.status = "final"
        order = transition(db, subject, order_id, Status.final, expected_status=Status.claimed)
    if report.critical:
        critical_values.raise_for_report(db, order, report)
    db.flush()
    return report


def second_sign(db: Session, subject: Subject, order_id: int, *, conclusion: str | None = None) -> DiagnosticReport:
    _require_reader(subject)
    order, sides = get(db, subject, order_id)
    if Side.centre not in sides:
        raise Forbidden("只有阅片中心可以审核报告")
    report = repo.report_of(db, order.id)
    if order.status != Status.reported or report is None:
        raise _conflict(order)
    practitioner = _practitioner(db, subject)
    if practitioner.is_trainee:
        raise Forbidden("审核签名须由非规培医师完成")
    if report.signed_by_user_id == subject.user_id:
        raise Forbidden("审核签名须由另一位医师完成")
    if conclusion is not None and conclusion.strip():
        report.conclusion = conclusion.strip()
    report.second_signer_user_id, report.second_signer_practitioner_id = subject.user_id, practitioner.id
    report.second_signed_at = clock.now()
    report.status = "final"
    transition(db, subject, order_id, Status.final, reason="上级医师审核签名", expected_status=Status.reported)
    return report


def amend(db: Session, subject: Subject, order_id: int, *, findings: str | None, conclusion: str | None,
          reason: str) -> DiagnosticReport:
    _require_reader(subject)
    order, sides = get(db, subject, order_id)
    if Side.centre not in sides:
        raise Forbidden("只有阅片中心可以更正报告")
    report = repo.report_of(db, order.id)
    if report is None or order.status not in states.RESULTED:
        raise _conflict(order)
    practitioner = _practitioner(db, subject)
    if practitioner.is_trainee:
        raise Forbidden("更正报告须由非规培医师完成")
    fields = {}
    if not reason.strip():
        fields["reason"] = "请填写更正原因"
    if not (conclusion or "").strip():
        fields["conclusion"] = "请填写诊断意见"
    if fields:
        raise InvalidInput(fields=fields)
    previous = {"findings": report.findings, "conclusion": report.conclusion, "version": report.version}
    report.findings = (findings or "").strip() or None
    report.conclusion = (conclusion or "").strip()
    report.amendment_reason = reason.strip()
    report.version += 1
    report.status = "amended"
    report.signed_by_user_id, report.signed_by_practitioner_id = subject.user_id, practitioner.id
    report.signed_at = clock.now()
    transition(db, subject, order_id, Status.amended, reason=reason.strip(), detail={"previous": previous})
    return report


# ------------------------------------------------------------------------------------- worklist


def _worklist_statement(subject: Subject, include_pending: bool, priority: str | None,
                        lp: ListParams | None = None) -> Select[Any]:
    if not subject.is_clinical:
        raise NotFound()
    statuses = set(states.WORKLIST) | (set(states.BEFORE_RECEIPT) if include_pending else set())
    return repo.worklist_statement(subject.acting_institution_id, policy.readable(subject), statuses=statuses,
                                   priority=priority, lp=lp.only(statuses) if lp is not None else None)


def worklist(db: Session, subject: Subject, *, include_pending: bool = False, priority: str | None = None,
             limit: int | None = None) -> list[OrderRow]:
    """The centre's reading worklist: stat first, then urgent, then the longest waiting."""
    stmt = _worklist_statement(subject, include_pending, priority)
    return order_rows(db, repo.order_pairs(db, stmt, limit))


def worklist_count(db: Session, subject: Subject, *, priority: str | None = None) -> int:
    """How many orders the worklist holds (the workbench's figure: the list's own total)."""
    return kit.count(db, _worklist_statement(subject, False, priority))


def worklist_page(db: Session, subject: Subject, lp: ListParams, *, include_pending: bool = False,
                  priority: str | None = None) -> Page[OrderRow]:
    """One page of the worklist under the list's filters, with its total (an export: every row)."""
    raw = repo.worklist_page(db, _worklist_statement(subject, include_pending, priority, lp), lp)
    return Page(order_rows(db, raw.items), raw.total, raw.page, raw.per_page)


def centre_orders(db: Session, subject: Subject, *, limit: int = 300) -> list[OrderRow]:
    """Everything the centre has read or is reading (most recent first)."""
    if not subject.is_clinical:
        raise NotFound()
    return order_rows(db, repo.centre_orders(db, subject.acting_institution_id, policy.readable(subject),
                                             limit=limit))


# ------------------------------------------------------------------------------------- TAT


def _percentile(values: list[int], q: float) -> float:
    values = sorted(values)
    if not values:
        return 0.0
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


@dataclass
class TatRow:
    month: str
    key: str  # item name or centre name
    count: int
    median: float
    p90: float
    expected: int | None
    over_target: int


def tat_stats(db: Session, subject: Subject, *, by: str = "item", months: int = 6) -> list[TatRow]:
    """Median and p90 TAT (minutes, order → final report) per month and item (or centre).

    A centre sees what it read; a site sees what it ordered.
    """
    if not subject.is_clinical and not subject.is_system_admin and not subject.alliance_admin_of:
        raise NotFound()
    since = clock.now() - timedelta(days=31 * months)
    inst = subject.acting_institution_id if not subject.is_system_admin else None
    reported = repo.reported_tats(db, since, inst)
    names = institution_names(db, {row[3] for row in reported}) if by == "centre" else {}
    groups: dict[tuple[str, str], list[tuple[int, int | None]]] = {}
    for reported_at, tat, item_name, centre_id, _due, expected in reported:
        if reported_at is None or tat is None:
            continue
        month = reported_at.astimezone(clock.SHANGHAI).strftime("%Y-%m")
        key = item_name if by == "item" else names.get(centre_id or 0, "?") if by == "centre" else ""
        groups.setdefault((month, key), []).append((tat, expected))
    out = []
    for (month, key), vals in sorted(groups.items()):
        tats = [v[0] for v in vals]
        expected_vals = {v[1] for v in vals if v[1]}
        out.append(TatRow(month, key, len(tats), _percentile(tats, 0.5), _percentile(tats, 0.9),
                          expected_vals.pop() if len(expected_vals) == 1 else None,
                          sum(1 for t, e in vals if e and t > e)))
    return out


def tat_monthly(db: Session, subject: Subject, months: int = 6) -> list[TatRow]:
    """All items together, per month (for the chart)."""
    return tat_stats(db, subject, by="all", months=months)
