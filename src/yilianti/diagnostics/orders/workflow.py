"""Order → report workflow of the shared diagnostic centres (DOMAIN.md §5).

A grassroots site orders an item of a centre's catalogue for a registered patient (an
accession number, the price at the site's fee standard, and an access grant for the
reading centre); the study or results arrive (DICOM/HL7 receivers, or a manual receipt);
one reader claims it from the centre's worklist, writes and signs the report (a trainee's
report needs a second signature by a non-trainee before it is final); the ordering site
sees the final report (the reading centre's side — worklist, claims, reports, TAT — is in
`diagnostics/reading/service.py`). Every status change goes through `transition` (row locked with
SELECT … FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite), which checks
`states.MOVES`, writes a `DiagnosticOrderHistory` row, audits and notifies.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_
from sqlalchemy.orm import Session

from yilianti.alliance.repository import institution_names
from yilianti.audit import service as audit
from yilianti.auth.repository import display_names
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.diagnostics import repository as repo
from yilianti.diagnostics import states
from yilianti.diagnostics.states import STATUS_LABELS, Side, Status
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.listing import ListParams
from yilianti.kit.repository import Page
from yilianti.kit.sqlcompile import as_text
from yilianti.kit.workflow import Step, Workflow, move_detail
from yilianti.models.alliance import Institution
from yilianti.models.diagnostics import (
    DiagnosticItem,
    DiagnosticOrder,
    DiagnosticOrderHistory,
    ItemPrice,
)
from yilianti.models.workforce import Practitioner
from yilianti.notifications.service import enqueue_notice, notify, payload
from yilianti.scheduling.rules import share_alliance

STATE_CONFLICT = states.STATE_CONFLICT
FINAL_REASON = "检验结果已由检验科审核发布"  # the reason of a move to final by verified LIS results
ORDERING_ROLES = ("doctor", "nurse", "coordinator")
ADMIN_ROLES = ("system_admin", "alliance_admin", "institution_admin")
GRANT_KIND = "diagnostic"
GRANT_DAYS = 90


# ------------------------------------------------------------------------------------- catalogue


@dataclass
class CatalogueRow:
    item: DiagnosticItem
    centre_name: str
    price_fen: int | None
    fee_standard: str | None


def catalogue(db: Session, *, for_institution_id: int | None = None, centre_id: int | None = None,
              active_only: bool = True) -> list[CatalogueRow]:
    """Items (optionally of one centre), with the price at `for_institution_id`'s fee standard."""
    rows = repo.catalogue_rows(db, centre_id, active_only)
    prices: dict[int, ItemPrice] = {}
    if for_institution_id is not None and rows:
        prices = repo.prices_at(db, for_institution_id, [r[0].id for r in rows])
    out = []
    for item, centre_name in rows:
        price = prices.get(item.id)
        out.append(CatalogueRow(item, centre_name, price.price_fen if price else None,
                                price.fee_standard if price else None))
    return out


def orderable(db: Session, institution_id: int) -> list[CatalogueRow]:
    """Items a site can order: a centre in one of its alliances, with a price for the site."""
    return [r for r in catalogue(db, for_institution_id=institution_id)
            if r.price_fen is not None and share_alliance(db, institution_id, r.item.reading_centre_institution_id)]


def _require_catalogue_admin(subject: Subject, centre_id: int) -> None:
    if subject.is_system_admin or subject.alliance_admin_of:
        return
    if subject.has("institution_admin") and subject.acting_institution_id == centre_id:
        return
    raise Forbidden("只有管理员可以维护检查项目目录")


def save_item(db: Session, subject: Subject, *, item_id: int | None, centre_id: int, code: str, name: str,
              kind: str, modality: str | None, loinc_code: str | None, local_code: str | None,
              expected_tat_minutes: int, active: bool = True, name_en: str | None = None) -> DiagnosticItem:
    _require_catalogue_admin(subject, centre_id)
    fields: dict[str, str] = {}
    code, name = code.strip(), name.strip()
    if not code:
        fields["code"] = "请填写项目编码"
    if not name:
        fields["name"] = "请填写项目名称"
    if kind not in states.KIND_LABELS:
        fields["kind"] = "类别无效"
    if expected_tat_minutes <= 0:
        fields["expected_tat_minutes"] = "预期报告时间须为正数（分钟）"
    if kit.get(db, Institution, centre_id) is None:
        fields["centre_id"] = "阅片中心不存在"
    clash = repo.item_id_with_code(db, centre_id, code)
    if clash is not None and clash != item_id:
        fields["code"] = "该中心已有相同编码的项目"
    if fields:
        raise InvalidInput(fields=fields)
    if item_id is None:
        item = DiagnosticItem(reading_centre_institution_id=centre_id, code=code, name=name, kind=kind)
        db.add(item)
    else:
        found = kit.get(db, DiagnosticItem, item_id)
        if found is None:
            raise NotFound()
        _require_catalogue_admin(subject, found.reading_centre_institution_id)
        item = found
    item.code, item.name, item.kind, item.name_en = code, name, kind, (name_en or None)
    item.modality = (modality or "").strip() or None
    item.loinc_code = (loinc_code or "").strip() or None
    item.local_code = (local_code or "").strip() or None
    item.expected_tat_minutes = expected_tat_minutes
    item.active = active
    db.flush()
    audit.record(db, subject, "update" if item_id else "create", "diagnostic_item", item.id,
                 detail={"code": code, "name": name})
    return item


def set_price(db: Session, subject: Subject, item_id: int, institution_id: int, price_fen: int,
              fee_standard: str | None = None) -> ItemPrice:
    item = kit.get(db, DiagnosticItem, item_id)
    if item is None:
        raise NotFound()
    _require_catalogue_admin(subject, item.reading_centre_institution_id)
    if price_fen < 0:
        raise InvalidInput(fields={"price": "价格不能为负"})
    if kit.get(db, Institution, institution_id) is None:
        raise InvalidInput(fields={"institution_id": "机构不存在"})
    price = repo.price_of(db, item_id, institution_id)
    if price is None:
        price = ItemPrice(item_id=item_id, institution_id=institution_id, price_fen=price_fen)
        db.add(price)
    price.price_fen = price_fen
    price.fee_standard = (fee_standard or "").strip() or None
    db.flush()
    audit.record(db, subject, "price", "diagnostic_item", item_id,
                 detail={"institution_id": institution_id, "price_fen": price_fen})
    return price


# ------------------------------------------------------------------------------------- access


def sides_of(subject: Subject | None, order: DiagnosticOrder) -> frozenset[Side]:
    if subject is None:
        return frozenset({Side.system})
    inst = subject.acting_institution_id
    out = set()
    if inst is not None and inst == order.ordering_institution_id:
        out.add(Side.site)
    if inst is not None and inst == order.reading_centre_institution_id:
        out.add(Side.centre)
    return frozenset(out)


def visible(subject: Subject) -> ColumnElement[bool]:
    """The orders `get` lets the subject open, as one SQL clause over `DiagnosticOrder` joined to `Patient`: its
    institution placed or reads the order (`sides_of`) and may see the patient (`policy.readable`, the clause of
    `policy.decide`). DICOMweb's searches and retrievals use it, so an image is seen where its order is."""
    if not subject.is_clinical:
        return false()
    inst = subject.acting_institution_id
    return and_(or_(DiagnosticOrder.ordering_institution_id == inst, DiagnosticOrder.reading_centre_institution_id == inst),
                policy.readable(subject))


def in_record(subject: Subject) -> ColumnElement[bool]:
    """The orders whose results the shared record shows the subject (`policy.entry_visible` as one SQL clause
    over `DiagnosticOrder` joined to `Patient`): those it may open (`visible`), and every order of a patient whose
    shared record it sees (`policy.shared_readable`: consent in force, an including grant, break-glass). Reading
    such an order's images is `policy.entry_access`'s decision, audited with basis `shared`."""
    return or_(visible(subject), policy.shared_readable(subject))


def get(db: Session, subject: Subject, order_id: int, *, audit_read: bool = True) -> tuple[DiagnosticOrder, frozenset[Side]]:
    """The order and the sides the subject acts for; 404 on neither side or without patient access."""
    order = kit.get(db, DiagnosticOrder, order_id)
    if order is None or not subject.is_clinical:
        raise NotFound()
    sides = sides_of(subject, order)
    if not sides:
        raise NotFound()
    if audit_read:
        policy.require_patient(db, subject, order.patient_id, resource_type="diagnostic_order",
                               resource_id=order.id)
    return order, sides


def history(db: Session, subject: Subject, order_id: int) -> list[DiagnosticOrderHistory]:
    get(db, subject, order_id, audit_read=False)
    return repo.history(db, order_id)


# ------------------------------------------------------------------------------------- the one transition


def _sides(db: Session, subject: Subject | None, order: DiagnosticOrder) -> frozenset[Side]:
    return sides_of(subject, order)


def notice(to_status: Status, order: Any, reason: Any = None) -> dict[str, Any]:
    """The notification of a move: received → the reading centre's worklist; otherwise → the ordering
    site (and its doctor). `order` may be columns: the lean HL7 statement compiles this into its SQL."""
    title = order.item_name + "（" + order.accession_number + "）：" + STATUS_LABELS[to_status]
    if to_status == Status.received:
        return payload(title=title, link="/diagnostics/worklist", institution_id=order.reading_centre_institution_id,
                       kind="diagnostics", urgent=order.priority == "stat")
    return payload(title=title, body=reason, link="/diagnostics/orders/" + as_text(order.id),
                   institution_id=order.ordering_institution_id, user_id=order.ordering_user_id, kind="diagnostics",
                   urgent=order.priority == "stat")


def audit_detail(before: Any, to: Any, accession_number: Any, detail: dict[str, Any] | None) -> dict[str, Any]:
    return move_detail(before, to, {"accession_number": accession_number, **(detail or {})})


def _effects(step: Step[DiagnosticOrder]) -> None:
    order, now, subject, detail = step.row, step.at, step.subject, step.detail
    if step.to == Status.acquired:
        order.acquired_at = now
    elif step.to == Status.received:
        if step.before == Status.claimed:  # released
            order.claimed_by_user_id, order.claimed_at = None, None
        else:
            order.received_at = now
    elif step.to == Status.claimed:
        assert subject is not None
        order.claimed_by_user_id = int((detail or {}).get("assigned_to") or subject.user_id)
        order.claimed_at = now
    elif step.to == Status.final and order.reported_at is None:
        order.reported_at = now
        start = order.ordered_at or order.created_at
        order.tat_minutes = max(0, int((now - start).total_seconds() // 60))


def _audit(db: Session, step: Step[DiagnosticOrder]) -> None:
    order = step.row
    audit.record(db, step.subject, f"diagnostics.{step.to}", "diagnostic_order", order.id,
                 patient_id=order.patient_id, reason=step.reason, channel=None if step.subject else "system",
                 detail=audit_detail(step.before, step.to, order.accession_number, step.detail))


def _notify(db: Session, step: Step[DiagnosticOrder]) -> None:
    order, to, subject = step.row, Status(step.to), step.subject
    if to in (Status.final, Status.amended, Status.cancelled) and not (
            subject is not None and subject.acting_institution_id == order.ordering_institution_id
            and to == Status.cancelled):
        enqueue_notice(db, notice(to, order, step.reason))
    if to == Status.received and order.reading_centre_institution_id is not None:
        enqueue_notice(db, notice(to, order))


WORKFLOW: Workflow[DiagnosticOrder] = Workflow(
    machine=states.MACHINE, model=DiagnosticOrder, sides=_sides, wrong_side="该操作应由检查的另一方执行",
    history_model=DiagnosticOrderHistory, history_key="order_id", effects=_effects, audit=_audit, notify=_notify)


def transition(db: Session, subject: Subject | None, order_id: int, to_status: str, *, reason: str | None = None,
               detail: dict[str, Any] | None = None, expected_status: str | None = None) -> DiagnosticOrder:
    """The only writer of `DiagnosticOrder.status`. `subject=None` is a receiver (system side)."""
    return WORKFLOW.transition(db, subject, order_id, to_status, reason=reason, detail=detail,
                               expected_status=expected_status)


def system_received(db: Session, order: DiagnosticOrder, *, channel: str) -> None:
    """A receiver got the study / results: move to received unless it is already there or past it."""
    if order.status in states.BEFORE_RECEIPT:
        transition(db, None, order.id, Status.received, detail={"channel": channel})


def system_final(db: Session, order: DiagnosticOrder, *, channel: str) -> None:
    """Verified results from the centre's LIS (every OBX-11 'F'): the results are the report."""
    system_received(db, order, channel=channel)
    if order.status == Status.received:
        transition(db, None, order.id, Status.final, reason=FINAL_REASON,
                   detail={"channel": channel})


# ------------------------------------------------------------------------------------- ordering


def new_accession(db: Session) -> str:
    day = clock.now().astimezone(clock.SHANGHAI).strftime("%y%m%d")
    for _ in range(20):
        acc = f"DX{day}{secrets.token_hex(3).upper()}"
        if repo.order_id_by_accession(db, acc) is None:
            return acc
    raise Conflict("无法生成检查号，请重试")  # pragma: no cover


def place_order(db: Session, subject: Subject, *, patient_id: int, item_id: int, priority: str = "routine",
                clinical_question: str | None = None, performing_institution_id: int | None = None) -> DiagnosticOrder:
    if not subject.is_clinical or not subject.has(*ORDERING_ROLES):
        raise Forbidden("只有临床人员可以开具检查申请")
    site = subject.acting_institution_id
    assert site is not None
    policy.require_patient(db, subject, patient_id, action="order")
    fields: dict[str, str] = {}
    item = kit.get(db, DiagnosticItem, item_id)
    price = None
    if item is None or not item.active:
        fields["item_id"] = "检查项目不存在或已停用"
    else:
        if not share_alliance(db, site, item.reading_centre_institution_id):
            fields["item_id"] = "该项目的阅片中心与本机构不在同一医联体"
        price = repo.price_of(db, item.id, site)
        if price is None and "item_id" not in fields:
            fields["item_id"] = "本机构尚未设置该项目的收费标准"
    if priority not in states.PRIORITY_LABELS:
        fields["priority"] = "优先级无效"
    if fields:
        raise InvalidInput(fields=fields)
    assert item is not None and price is not None
    practitioner = kit.get(db, Practitioner, subject.practitioner_id) if subject.practitioner_id else None
    now = clock.now()
    order = DiagnosticOrder(
        accession_number=new_accession(db), patient_id=patient_id, ordering_institution_id=site,
        reading_centre_institution_id=item.reading_centre_institution_id, kind=item.kind, modality=item.modality,
        item_id=item.id, item_code=item.code, item_name=item.name, status=Status.ordered, priority=priority,
        clinical_question=(clinical_question or "").strip() or None, ordering_user_id=subject.user_id,
        ordering_practitioner_id=subject.practitioner_id,
        ordering_department_id=practitioner.department_id if practitioner else None,
        performing_institution_id=performing_institution_id or site, ordered_at=now,
        due_at=now + timedelta(minutes=item.expected_tat_minutes), price_fen=price.price_fen,
        fee_standard=price.fee_standard)
    db.add(order)
    db.flush()
    WORKFLOW.create(db, subject, order, at=now)
    audit.record(db, subject, "create", "diagnostic_order", order.id, patient_id=patient_id,
                 detail={"item_code": item.code, "accession_number": order.accession_number,
                         "price_fen": price.price_fen})
    if item.reading_centre_institution_id != site:
        policy.grant_access(db, subject, patient_id=patient_id, institution_id=item.reading_centre_institution_id,
                            kind=GRANT_KIND, reason=f"检查申请 {order.accession_number}",
                            source=("diagnostic_order", order.id), expires_in=timedelta(days=GRANT_DAYS))
        notify(db, title=f"新检查申请：{item.name}（{order.accession_number}）", link="/diagnostics/worklist",
               institution_id=item.reading_centre_institution_id, kind="diagnostics", urgent=priority == "stat")
    db.flush()
    return order


def cancel(db: Session, subject: Subject, order_id: int, reason: str, *,
           expected_status: str | None = None) -> DiagnosticOrder:
    if not reason.strip():
        get(db, subject, order_id, audit_read=False)
        raise InvalidInput(fields={"reason": "请填写取消原因"})
    order = transition(db, subject, order_id, Status.cancelled, reason=reason.strip(), expected_status=expected_status)
    policy.end_grants(db, subject, "diagnostic_order", order.id)
    return order


def mark_acquired(db: Session, subject: Subject, order_id: int, *, expected_status: str | None = None) -> DiagnosticOrder:
    return transition(db, subject, order_id, Status.acquired, expected_status=expected_status)


def mark_transmitted(db: Session, subject: Subject, order_id: int, *,
                     expected_status: str | None = None) -> DiagnosticOrder:
    return transition(db, subject, order_id, Status.transmitted, expected_status=expected_status)


def mark_received(db: Session, subject: Subject, order_id: int, *,
                  expected_status: str | None = None) -> DiagnosticOrder:
    """Manual receipt at the centre (film or specimen handed over, or a study that came another way)."""
    return transition(db, subject, order_id, Status.received, reason="中心手工接收", expected_status=expected_status)


# ------------------------------------------------------------------------------------- lists


@dataclass
class OrderRow:
    order: DiagnosticOrder
    patient_name: str
    ordering_name: str
    centre_name: str
    waiting_minutes: int
    overdue: bool
    claimed_by: str | None = None


def order_rows(db: Session, raw: list[tuple[DiagnosticOrder, str]]) -> list[OrderRow]:
    """List rows of (order, patient name) pairs: institution and claimer names, waiting time, overdue."""
    now = clock.now()
    out = []
    inst_names = institution_names(db, [i for o, _ in raw for i in (o.ordering_institution_id,
                                                                    o.reading_centre_institution_id)])
    users = display_names(db, {o.claimed_by_user_id for o, _ in raw})
    for order, name in raw:
        start = order.received_at or order.ordered_at or order.created_at
        end = order.reported_at if order.reported_at else now
        out.append(OrderRow(order, name, inst_names.get(order.ordering_institution_id, ""),
                            inst_names.get(order.reading_centre_institution_id or 0, ""),
                            max(0, int((end - start).total_seconds() // 60)),
                            order.due_at is not None and (order.reported_at or now) > order.due_at,
                            users.get(order.claimed_by_user_id) if order.claimed_by_user_id else None))
    return out


def site_orders(db: Session, subject: Subject, *, status: str | None = None, limit: int = 300) -> list[OrderRow]:
    if not subject.is_clinical:
        raise NotFound()
    return order_rows(db, repo.site_orders(db, subject.acting_institution_id, policy.readable(subject), status, limit))


def orders_page(db: Session, subject: Subject, lp: ListParams, *, centre: bool = False) -> Page[OrderRow]:
    """One page of the orders the site placed (or, `centre`, the centre reads) under the list's filters. A pure
    read: the list page passes the read replica's session (auth/deps.ReadDB)."""
    if not subject.is_clinical:
        raise NotFound()
    raw = repo.orders_page(db, subject.acting_institution_id, policy.readable(subject), lp.only(states.STATUS_LABELS),
                           centre=centre)
    return Page(order_rows(db, raw.items), raw.total, raw.page, raw.per_page)


def patient_orders(db: Session, subject: Subject, patient_id: int) -> list[DiagnosticOrder]:
    """The shared record: every final report for a patient the subject may read."""
    policy.require_patient(db, subject, patient_id, resource_type="diagnostic_order")
    return repo.resulted_orders_of(db, patient_id)


def count_open(db: Session, institution_id: int) -> int:
    return repo.count_on_worklist(db, institution_id)
