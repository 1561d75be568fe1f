"""Maintaining the recognition catalogue by hand (the pages `/recognition/catalogue/…` and the JSON API).

What the spreadsheet import (`catalogue.py`) does in bulk, one change at a time:

- `save_item`      create or edit an item: code, name, kind (lab / imaging), LOINC, the other codes
                   that mean it (diagnostics catalogue codes), reference price, active;
- `set_rule` (service) / `remove_rule`   the item recognised in a scope with its validity window;
- `save_qualification` / `remove_qualification`   an institution QC-qualified for the item in a
                   scope, for a period (from / to); the HR mark is decided by it on the result's date.

Every function checks everything first and raises `InvalidInput` with one message per form field
(nothing is written when anything is wrong), then writes and records one audit row with the
before / after values. Services flush, never commit; the caller's unit of work commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.exceptions import InvalidInput, NotFound
from yilianti.kit import repository as kit
from yilianti.models.alliance import Institution
from yilianti.models.recognition import (
    QualifiedInstitution,
    RecognitionItem,
    RecognitionItemCode,
    RecognitionRule,
    RecognitionScope,
)
from yilianti.recognition import repository as repo
from yilianti.recognition import service

CODE_MAX = 32


def _invalidate_snapshot() -> None:
    """The fast path's per-process catalogue snapshot (other processes reload within 5 s)."""
    from yilianti.recognition import fastpath

    fastpath.invalidate()


def _changed(db: Session, actor: Subject | None, action: str, resource_type: str, row_id: int,
             detail: dict[str, Any]) -> None:
    """Every change of the catalogue: flushed, audited, and the lookup's snapshot dropped (a change it missed
    would keep answering from the old catalogue until the next reload)."""
    db.flush()
    audit.record(db, actor, action, resource_type, row_id, detail=detail)
    _invalidate_snapshot()


def _saved(db: Session, actor: Subject | None, resource_type: str, row_id: int, before: dict[str, Any] | None,
           after: dict[str, Any]) -> None:
    """A created (`before` None) or updated row, audited with its view before and after."""
    _changed(db, actor, "create" if before is None else "update", resource_type, row_id,
             {"before": before, "after": after} if before else {"after": after})


def parse_price_yuan(value: str | None) -> tuple[int | None, str | None]:
    """'120' / '120.5' → fen; '' → None. Returns (fen, error)."""
    value = (value or "").strip()
    if not value:
        return None, None
    try:
        price = Decimal(value)
    except InvalidOperation:
        return None, "价格须为非负数（元）"
    if not price.is_finite() or price < 0 or price > Decimal("1000000"):
        return None, "价格须为非负数（元）"
    return int((price * 100).to_integral_value()), None


def parse_date(value: str | date | None) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat((value or "").strip().replace("/", "-"))
    except ValueError:
        return None


def split_codes(value: str | list[str] | None) -> list[str]:
    if isinstance(value, list):
        parts = value
    else:
        parts = (value or "").replace("；", ";").replace(",", ";").replace("，", ";").split(";")
    out: list[str] = []
    for c in parts:
        c = c.strip()
        if c and c not in out:
            out.append(c)
    return out


@dataclass
class ItemIn:
    code: str
    name: str
    kind: str
    loinc: str | None = None
    codes: list[str] | None = None  # other codes; None = leave them as they are
    price_yuan: str | None = None
    numeric: bool | None = None  # None: lab → True, imaging → False
    active: bool = True


def save_item(db: Session, actor: Subject | None, data: ItemIn, item_id: int | None = None) -> RecognitionItem:
    item = None
    if item_id is not None:
        item = kit.get(db, RecognitionItem, item_id)
        if item is None:
            raise NotFound("互认项目不存在")
    code, name = (data.code or "").strip(), (data.name or "").strip()
    loinc = (data.loinc or "").strip() or None
    errors: dict[str, str] = {}
    if not code:
        errors["code"] = "请填写项目编码"
    elif len(code) > CODE_MAX or any(ch.isspace() for ch in code):
        errors["code"] = "项目编码不能含空格，最长 32 个字符"
    else:
        other = repo.item_with_code(db, code)
        if other is not None and (item is None or other.id != item.id):
            errors["code"] = "项目编码已存在"
    if not name:
        errors["name"] = "请填写项目名称"
    elif len(name) > 100:
        errors["name"] = "项目名称最长 100 个字符"
    if data.kind not in service.ITEM_KINDS:
        errors["kind"] = "类别须为 lab/检验 或 imaging/检查"
    if loinc is not None and len(loinc) > 32:
        errors["loinc"] = "LOINC 编码最长 32 个字符"
    price_fen, price_error = parse_price_yuan(data.price_yuan)
    if price_error:
        errors["price_yuan"] = price_error
    codes = None if data.codes is None else split_codes(data.codes)
    wanted: list[tuple[str, str]] = []  # (system, code) the item should map
    if codes is not None:
        wanted = [("local", c) for c in codes if c != code] + ([("LN", loinc)] if loinc else [])
        taken = []
        for system, c in wanted:
            if len(c) > 64:
                taken.append(c)
                continue
            owner = repo.code_mapping(db, c, system)
            main = repo.item_with_code(db, c)
            if (owner is not None and (item is None or owner.item_id != item.id)) or \
                    (main is not None and (item is None or main.id != item.id)):
                taken.append(c)
        if taken:
            errors["codes"] = "以下编码已属于其他互认项目或过长：" + "、".join(taken)
    if errors:
        raise InvalidInput("互认项目有误，未保存", code="invalid_item", fields=errors)
    numeric = data.numeric if data.numeric is not None else data.kind == "lab"
    before = _item_view(db, item) if item is not None else None
    if item is None:
        item = RecognitionItem(code=code, name=name, kind=data.kind, loinc=loinc, numeric=numeric,
                               price_fen=price_fen, active=data.active)
        db.add(item)
        db.flush()
    else:
        item.code, item.name, item.kind, item.loinc = code, name, data.kind, loinc
        item.numeric, item.price_fen, item.active = numeric, price_fen, data.active
    if codes is not None:
        existing = repo.code_mappings_of_item(db, item.id)
        keep = set(wanted)
        for row in existing:
            if (row.system, row.code) not in keep:
                db.delete(row)
        have = {(r.system, r.code) for r in existing}
        db.flush()
        for system, c in wanted:
            if (system, c) not in have:
                db.add(RecognitionItemCode(item_id=item.id, system=system, code=c))
    db.flush()
    _saved(db, actor, "recognition_item", item.id, before, _item_view(db, item))
    return item


def _item_view(db: Session, item: RecognitionItem) -> dict[str, Any]:
    return {"code": item.code, "name": item.name, "kind": item.kind, "loinc": item.loinc,
            "price_fen": item.price_fen, "numeric": item.numeric, "active": item.active,
            "codes": sorted(repo.mapped_codes(db, item.id))}


def item_by_code(db: Session, code: str) -> RecognitionItem:
    item = repo.item_with_code(db, (code or "").strip())
    if item is None:
        raise NotFound("互认项目不存在")
    return item


def set_rule(db: Session, actor: Subject | None, *, item_code: str, scope_code: str,
             valid_days: str | int | None) -> RecognitionRule:
    """`service.set_rule` with every field checked at once (for the forms)."""
    errors: dict[str, str] = {}
    if service.find_item(db, item_code) is None:
        errors["item_code"] = "未知的互认项目编码"
    if repo.scope_by_code(db, (scope_code or "").strip()) is None:
        errors["scope_code"] = "未知的互认范围编码"
    days = _int(valid_days)
    if not service.valid_days_ok(days):
        errors["valid_days"] = service.VALID_DAYS_MESSAGE
    if errors:
        raise InvalidInput("互认范围与有效期有误，未保存", code="invalid_rule", fields=errors)
    assert days is not None
    rule = service.set_rule(db, actor, item_code=item_code, scope_code=scope_code.strip(), valid_days=days)
    _invalidate_snapshot()
    return rule


def remove_rule(db: Session, actor: Subject | None, rule_id: int) -> None:
    rule = kit.get(db, RecognitionRule, rule_id)
    if rule is None:
        raise NotFound("互认范围设置不存在")
    scope = kit.get(db, RecognitionScope, rule.scope_id)
    item = kit.get(db, RecognitionItem, rule.item_id)
    detail = {"item": item.code if item else None, "scope": scope.code if scope else None,
              "valid_days": rule.valid_days}
    db.delete(rule)
    _changed(db, actor, "delete", "recognition_rule", rule_id, detail)


def _int(value: str | int | None) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value or "").strip()
    try:
        return int(text)
    except ValueError:
        return None


@dataclass
class QualificationIn:
    item_code: str
    scope_code: str
    institution_id: int | None
    qc_from: str | date | None
    qc_to: str | date | None
    qc_body: str | None = None


def save_qualification(db: Session, actor: Subject | None, data: QualificationIn,
                       qual_id: int | None = None) -> QualifiedInstitution:
    """Add (or edit) an institution's QC qualification for an item in a scope, with its period."""
    qual = None
    if qual_id is not None:
        qual = kit.get(db, QualifiedInstitution, qual_id)
        if qual is None:
            raise NotFound("质控资格不存在")
    errors: dict[str, str] = {}
    item = service.find_item(db, data.item_code)
    if item is None:
        errors["item_code"] = "未知的互认项目编码"
    scope = repo.scope_by_code(db, (data.scope_code or "").strip())
    if scope is None:
        errors["scope_code"] = "未知的互认范围编码"
    inst = kit.get(db, Institution, data.institution_id) if data.institution_id is not None else None
    if inst is None:
        errors["institution_id"] = "请选择机构"
    qc_from, qc_to = parse_date(data.qc_from), parse_date(data.qc_to)
    if qc_from is None:
        errors["qc_from"] = "请填写质控开始日期（YYYY-MM-DD）"
    if qc_to is None:
        errors["qc_to"] = "请填写质控截止日期（YYYY-MM-DD）"
    elif qc_from is not None and qc_to < qc_from:
        errors["qc_to"] = "质控截止日期早于开始日期"
    body = (data.qc_body or "").strip() or None
    if body is not None and len(body) > 100:
        errors["qc_body"] = "质控机构最长 100 个字符"
    if item is not None and scope is not None and repo.rule_of_scope(db, item.id, scope.id) is None:
        errors["scope_code"] = "该项目在此范围内尚未设定互认有效期，请先添加范围与有效期"
    if inst is not None and scope is not None and scope.id not in {
            s.id for s in service.covering_scopes(db, inst.id)}:
        errors["institution_id"] = "该机构不在所选互认范围内"
    if not errors and item is not None and scope is not None and inst is not None and qc_from is not None:
        dup = repo.qualification_on(db, item.id, scope.id, inst.id, qc_from)
        if dup is not None and (qual is None or dup.id != qual.id):
            errors["qc_from"] = "该机构此项目在此范围内已有同一开始日期的质控期"
    if errors:
        raise InvalidInput("质控资格有误，未保存", code="invalid_qualification", fields=errors)
    assert item is not None and scope is not None and inst is not None and qc_from and qc_to
    before = _qual_view(db, qual) if qual is not None else None
    if qual is None:
        qual = QualifiedInstitution(item_id=item.id, scope_id=scope.id, institution_id=inst.id,
                                    qc_from=qc_from, qc_to=qc_to, qc_body=body)
        db.add(qual)
    else:
        qual.item_id, qual.scope_id, qual.institution_id = item.id, scope.id, inst.id
        qual.qc_from, qual.qc_to, qual.qc_body = qc_from, qc_to, body
    db.flush()
    _saved(db, actor, "recognition_qualified", qual.id, before, _qual_view(db, qual))
    return qual


def _qual_view(db: Session, q: QualifiedInstitution) -> dict[str, Any]:
    item = kit.get(db, RecognitionItem, q.item_id)
    scope = kit.get(db, RecognitionScope, q.scope_id)
    return {"item": item.code if item else None, "scope": scope.code if scope else None,
            "institution_id": q.institution_id, "qc_from": q.qc_from.isoformat(), "qc_to": q.qc_to.isoformat(),
            "qc_body": q.qc_body}


def remove_qualification(db: Session, actor: Subject | None, qual_id: int) -> None:
    qual = kit.get(db, QualifiedInstitution, qual_id)
    if qual is None:
        raise NotFound("质控资格不存在")
    detail = _qual_view(db, qual)
    db.delete(qual)
    _changed(db, actor, "delete", "recognition_qualified", qual_id, detail)
