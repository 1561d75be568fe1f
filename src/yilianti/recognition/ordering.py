"""Recognition at the moment of ordering (issue 16 item 8): the new-order form checks every chosen item.

Before the orders are placed, each chosen catalogue item is looked up with the recognition service's
own lookup (`service.lookup`: the one rule of which results are recognised and valid here); an item
with valid recognised results needs the doctor's choice on the form — reuse one of them (no order is
placed for it; the decision is recorded) or re-test with a coded reason (the order is placed and the
decision recorded against it, `service.decide` checks the reason as everywhere else). Items without
such results are simply ordered. Everything happens in the caller's transaction: one error and
nothing is placed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from yilianti.authz.subject import Subject
from yilianti.diagnostics.orders import workflow
from yilianti.exceptions import AppError, InvalidInput
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.recognition import RecognitionDecision
from yilianti.recognition import service

NEEDS_CHOICE = "该项目有可互认的结果：请选择采用已有结果，或选择重新检查并填写原因"


@dataclass
class ItemCheck:
    row: workflow.CatalogueRow
    lookup: service.Lookup | None  # None: the item is not a recognition item

    @property
    def results(self) -> list[service.RecognisedResult]:
        return self.lookup.results if self.lookup is not None else []


@dataclass
class Choice:
    """The form's answer for one item: "reuse:<order id>", "retest" or "" (nothing chosen)."""

    choice: str = ""
    reason_code: str = ""
    reason_text: str = ""
    informed: bool = False

    @property
    def reuse_order_id(self) -> int | None:
        kind, _, order_id = self.choice.partition(":")
        return int(order_id) if kind == "reuse" and order_id.isdigit() else None


@dataclass
class Placed:
    orders: list[DiagnosticOrder] = field(default_factory=list)
    reused: list[RecognitionDecision] = field(default_factory=list)


def chosen_rows(db: Session, subject: Subject, item_ids: Sequence[int]) -> list[workflow.CatalogueRow]:
    """The orderable catalogue rows among `item_ids`, in the catalogue's order."""
    own = subject.acting_institution_id
    if own is None or not item_ids:
        return []
    wanted = set(item_ids)
    return [r for r in workflow.orderable(db, own) if r.item.id in wanted]


def check(db: Session, subject: Subject, patient_id: int, rows: Sequence[workflow.CatalogueRow]) -> list[ItemCheck]:
    """Each chosen item with the patient's valid recognised results (the lookup audits each read)."""
    out = []
    for row in rows:
        item = service.find_item(db, row.item.code)
        found = None
        if item is not None and subject.is_clinical:
            found = service.lookup(db, subject, patient_id, item.code, audit_action="read")
        out.append(ItemCheck(row, found))
    return out


def place(db: Session, subject: Subject, *, patient_id: int, item_ids: Sequence[int], choices: Mapping[int, Choice],
          priority: str, clinical_question: str | None) -> Placed:
    """Place the orders of the chosen items, honouring each item's recognition choice (see the module)."""
    if not item_ids:
        raise InvalidInput(fields={"item_ids": "请至少选择一个检查项目"})
    rows = chosen_rows(db, subject, item_ids)
    if len(rows) != len(set(item_ids)):
        raise InvalidInput(fields={"item_ids": "检查项目不存在、已停用或本机构不可申请"})
    checks = check(db, subject, patient_id, rows)
    fields: dict[str, str] = {}
    for c in checks:
        choice = choices.get(c.row.item.id, Choice())
        if c.results and not choice.choice:
            fields[f"choice_{c.row.item.id}"] = NEEDS_CHOICE
    if fields:
        raise InvalidInput(fields=fields)
    placed = Placed()
    for c in checks:
        item_id = c.row.item.id
        choice = choices.get(item_id, Choice())
        try:
            if c.results and choice.reuse_order_id is not None:
                assert c.lookup is not None
                placed.reused.append(service.decide(db, subject, service.DecisionIn(
                    patient_id=patient_id, item_code=c.lookup.item.code, decision="reuse",
                    reused_order_id=choice.reuse_order_id)))
                continue
            order = workflow.place_order(db, subject, patient_id=patient_id, item_id=item_id, priority=priority,
                                         clinical_question=clinical_question)
            placed.orders.append(order)
            if c.results:
                assert c.lookup is not None
                service.decide(db, subject, service.DecisionIn(
                    patient_id=patient_id, item_code=c.lookup.item.code, decision="retest",
                    reason_code=choice.reason_code or None, reason_text=choice.reason_text or None,
                    patient_informed=choice.informed, order_id=order.id))
        except AppError as exc:
            if not exc.fields:
                raise
            # the item's own fields, so the error shows beside that item on the form
            per_item = {"reason_code", "reason_text", "patient_informed", "reused_order_id", "decision", "item_id"}
            raise InvalidInput(exc.message, fields={
                (f"{k}_{item_id}" if k in per_item else k): v for k, v in exc.fields.items()}) from None
    return placed
