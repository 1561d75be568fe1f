"""Recognition rules: scopes, the HR mark, the order-time lookup, decisions and the monthly report.

- A scope covers an institution when the institution is a current member of the scope's
  alliance, or its province (and city, when the area names one) is one of the scope's areas.
- A result is *recognised in scope S* when the item has a rule in S, the institution that
  produced it (the lab's reading centre, the imaging site) was QC-qualified for the item in S
  **on the result's date**, and the deciding institution is covered by S too. It is *valid*
  while `result date + valid_days ≥ today` (the largest window among the scopes that apply).
- The HR mark of a result (`hr_mark`) is the list of scopes its producer was qualified in on
  the result's date; other domains call `hr_marks(db, orders)` for their report pages.
- Other members' results are shown only with the patient's sharing consent in force
  (`policy.require_patient(...).shared`); without it the lookup says so (`consent_missing`).
Services flush, never commit.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, case, func
from sqlalchemy.orm import Session

from yilianti.audit import service as audit
from yilianti.authz import policy
from yilianti.authz.subject import Subject
from yilianti.diagnostics.states import BEFORE_RECEIPT, RESULTED
from yilianti.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.models.alliance import Department
from yilianti.models.diagnostics import DiagnosticOrder
from yilianti.models.recognition import (
    QualifiedInstitution,
    RecognitionDecision,
    RecognitionItem,
    RecognitionRule,
    RecognitionScope,
    RecognitionScopeArea,
)
from yilianti.models.referral import Referral
from yilianti.recognition import repository as repo

OrderT = TypeVar("OrderT")
SCOPE_KINDS = {"alliance": "医联体", "city": "市", "province": "省", "region": "区域"}
ITEM_KINDS = {"lab": "检验", "imaging": "检查"}
RETEST_REASONS = {
    "condition_changed": "病情变化",
    "inconsistent": "结果与临床表现不符",
    "fast_changing": "指标变化快",
    "pre_surgery": "手术或输血前",
    "emergency": "急诊抢救",
    "forensic": "司法鉴定或伤残评定",
    "other": "其他",
}
DECISIONS = {"reuse": "互认（采用已有结果）", "retest": "重新检查"}

_PROVINCE_SUFFIX = re.compile(r"(省|市|特别行政区|壮族自治区|回族自治区|维吾尔自治区|自治区)$")


def norm_area(name: str | None) -> str | None:
    """北京市 / 北京, 河北省 / 河北, 廊坊市 / 廊坊 compare equal."""
    if not name:
        return None
    return _PROVINCE_SUFFIX.sub("", name.strip()) or name.strip()


# ------------------------------------------------------------------------------------ items


def find_item(db: Session, code: str) -> RecognitionItem | None:
    code = (code or "").strip()
    if not code:
        return None
    return repo.active_item_by_code(db, code)


def require_item(db: Session, code: str, field_name: str = "item_code") -> RecognitionItem:
    item = find_item(db, code)
    if item is None:
        raise InvalidInput("未知的互认项目编码：{item}", code="unknown_item_code",
                           fields={field_name: "未知的互认项目编码"}, item=code)
    return item


def item_codes(db: Session, item: RecognitionItem) -> set[str]:
    """Every code that means this item on an order: its own and the mapped catalogue / LOINC codes."""
    codes = {item.code}
    codes.update(repo.mapped_codes(db, item.id))
    return codes


# ------------------------------------------------------------------------------------ scopes


@dataclass(frozen=True)
class ScopeInfo:
    id: int
    code: str
    name: str
    kind: str
    alliance_id: int | None
    areas: tuple[tuple[str, str | None], ...]


def scopes(db: Session) -> list[ScopeInfo]:
    """Active scopes with their areas (one query)."""
    found: dict[int, tuple[RecognitionScope, list[tuple[str, str | None]]]] = {}
    for scope, province, city in repo.active_scopes_with_areas(db):
        entry = found.setdefault(scope.id, (scope, []))
        if province is not None:
            entry[1].append((norm_area(province) or "", norm_area(city)))
    return [ScopeInfo(s.id, s.code, s.name, s.kind, s.alliance_id, tuple(areas)) for s, areas in found.values()]


def covering_scopes(db: Session, institution_id: int, all_scopes: Sequence[ScopeInfo] | None = None) -> list[ScopeInfo]:
    """The scopes an institution belongs to (alliance membership today, or its province/city)."""
    today = clock.today_local()
    rows = repo.institution_area_and_alliances(db, institution_id, today)
    if not rows:
        return []
    alliances = {r[2] for r in rows if r[2] is not None}
    return covering(all_scopes if all_scopes is not None else scopes(db), alliances,
                    norm_area(rows[0][0]), norm_area(rows[0][1]))


def covering(all_scopes: Iterable[ScopeInfo], alliances: set[int], province: str | None,
             city: str | None) -> list[ScopeInfo]:
    """The scopes covering an institution with these current alliances and this (normalised) area."""
    out = []
    for s in all_scopes:
        if s.kind == "alliance":
            if s.alliance_id in alliances:
                out.append(s)
        elif any(p == province and (c is None or c == city) for p, c in s.areas):
            out.append(s)
    return out


def create_scope(db: Session, actor: Subject | None, *, code: str, name: str, kind: str,
                 alliance_id: int | None = None, areas: Iterable[tuple[str, str | None]] = ()) -> RecognitionScope:
    fields: dict[str, str] = {}
    if kind not in SCOPE_KINDS:
        fields["kind"] = "范围类型须为 alliance、city、province 或 region"
    if not code.strip():
        fields["code"] = "请填写范围编码"
    if not name.strip():
        fields["name"] = "请填写范围名称"
    area_list = [(p.strip(), (c or "").strip() or None) for p, c in areas]
    if kind == "alliance" and alliance_id is None:
        fields["alliance_id"] = "医联体范围须指定医联体"
    if kind in ("city", "province", "region") and not area_list:
        fields["areas"] = "请至少填写一个省或市"
    if kind == "city" and any(c is None for _, c in area_list):
        fields["areas"] = "市级范围须写明省和市"
    if fields:
        raise InvalidInput(fields=fields)
    if repo.scope_by_code(db, code.strip()) is not None:
        raise Conflict("范围编码已存在")
    scope = RecognitionScope(code=code.strip(), name=name.strip(), kind=kind, alliance_id=alliance_id)
    db.add(scope)
    db.flush()
    for p, c in area_list:
        db.add(RecognitionScopeArea(scope_id=scope.id, province=p, city=c))
    db.flush()
    audit.record(db, actor, "create", "recognition_scope", scope.id,
                 detail={"code": scope.code, "kind": kind, "areas": [list(a) for a in area_list]})
    return scope


VALID_DAYS_MAX = 3650
"""The longest a result stays recognised: ten years."""
VALID_DAYS_MESSAGE = "有效期天数应在 1–3650 天之间"


def valid_days_ok(days: int | None) -> bool:
    """A rule's validity window: 1 … VALID_DAYS_MAX days (the API, the form and the catalogue upload)."""
    return days is not None and 0 < days <= VALID_DAYS_MAX


def set_rule(db: Session, actor: Subject | None, *, item_code: str, scope_code: str, valid_days: int) -> RecognitionRule:
    """Recognise an item in a scope with its validity window (days, valid_days_ok)."""
    if not valid_days_ok(valid_days):
        raise InvalidInput(VALID_DAYS_MESSAGE, code="invalid_valid_days", fields={"valid_days": VALID_DAYS_MESSAGE})
    item = require_item(db, item_code)
    scope = repo.scope_by_code(db, scope_code)
    if scope is None:
        raise InvalidInput(fields={"scope_code": "未知的互认范围编码"})
    rule = repo.rule_of_scope(db, item.id, scope.id)
    before = rule.valid_days if rule else None
    if rule is None:
        rule = RecognitionRule(item_id=item.id, scope_id=scope.id, valid_days=int(valid_days))
        db.add(rule)
    else:
        rule.valid_days = int(valid_days)
    db.flush()
    audit.record(db, actor, "update" if before else "create", "recognition_rule", rule.id,
                 detail={"item": item.code, "scope": scope.code, "valid_days": {"from": before, "to": int(valid_days)}})
    return rule


# ------------------------------------------------------------------------------------ results and the HR mark


def result_date(order: DiagnosticOrder) -> date | None:
    at = order.reported_at or None
    return clock.to_local(at).date() if at else None


def source_institution_id(order: DiagnosticOrder) -> int:
    """Whose quality control a result rests on: the lab that ran it, the site that acquired the image."""
    return source_of(order.kind, order.ordering_institution_id, order.reading_centre_institution_id,
                     order.performing_institution_id)


def source_of(kind: str, ordering: int, centre: int | None, performing: int | None) -> int:
    """`source_institution_id` from an order's columns (the hot paths read rows, not models)."""
    if kind == "lab":
        return centre or performing or ordering
    return performing or centre or ordering


def source_clause(order: Any = DiagnosticOrder) -> ColumnElement[int]:
    """`source_of` in SQL, on DiagnosticOrder (or an alias of it)."""
    return case((order.kind == "lab", func.coalesce(order.reading_centre_institution_id,
                                                    order.performing_institution_id, order.ordering_institution_id)),
                else_=func.coalesce(order.performing_institution_id, order.reading_centre_institution_id,
                                    order.ordering_institution_id))


@dataclass
class HrMark:
    marked: bool
    scopes: list[str] = field(default_factory=list)
    scope_ids: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ("HR " + "、".join(self.scopes)) if self.marked else ""


def _qualified(db: Session, pairs: set[tuple[int, int]],
               names: dict[int, str] | None = None) -> dict[tuple[int, int], list[tuple[QualifiedInstitution, str, int]]]:
    """(institution, item) → [(qualification, scope name, valid_days)] where the item has a rule in that scope;
    fills `names` with the qualified institutions' names (same query)."""
    if not pairs:
        return {}
    insts = {p[0] for p in pairs}
    items = {p[1] for p in pairs}
    rows = repo.qualifications_with_rules(db, insts, items)
    out: dict[tuple[int, int], list[tuple[QualifiedInstitution, str, int]]] = defaultdict(list)
    for q, name, days, inst_name in rows:
        out[(q.institution_id, q.item_id)].append((q, name, days))
        if names is not None:
            names[q.institution_id] = inst_name
    return out


Qual = tuple[int, date, date, str]  # a QC qualification: (scope id, from, to, scope name)


def qualified_on(quals: Iterable[Qual], on: date) -> list[tuple[int, str]]:
    """The HR mark's scopes: (id, name) of each scope the producer was QC-qualified in on the result's date,
    once each, in the qualifications' order (for `hr_marks` and the hot paths' catalogue alike)."""
    out: list[tuple[int, str]] = []
    for scope_id, qc_from, qc_to, name in quals:
        if qc_from <= on <= qc_to and all(scope_id != s for s, _ in out):
            out.append((scope_id, name))
    return out


def hr_marks(db: Session, orders: Sequence[DiagnosticOrder]) -> dict[int, HrMark]:
    """The HR mark of each order's result, decided by the QC status on the result's date.

    For diagnostics report pages and the shared record: `hr_marks(db, orders)[order.id].label`
    is "HR 京津冀" (or "" when the result carries no mark).
    """
    items = repo.items_by_code(db, {o.item_code for o in orders})
    pairs = {(source_institution_id(o), items[o.item_code].id) for o in orders if o.item_code in items}
    quals = _qualified(db, pairs)
    out: dict[int, HrMark] = {}
    for o in orders:
        mark = HrMark(False)
        item = items.get(o.item_code)
        on = result_date(o)
        if item is not None and on is not None and o.status in RESULTED:
            for scope_id, name in qualified_on([(q.scope_id, q.qc_from, q.qc_to, name)
                                                for q, name, _days in quals.get((source_institution_id(o), item.id), [])],
                                               on):
                mark.scope_ids.append(scope_id)
                mark.scopes.append(name)
            mark.marked = bool(mark.scopes)
        out[o.id] = mark
    return out


def hr_mark(db: Session, order: DiagnosticOrder) -> HrMark:
    return hr_marks(db, [order])[order.id]


# ------------------------------------------------------------------------------------ the order-time lookup


@dataclass
class RecognisedResult:
    order_id: int
    accession_number: str
    item_code: str
    item_name: str
    institution_id: int
    institution_name: str
    result_date: date
    valid_until: date
    days_left: int
    scopes: list[str]
    scope_id: int
    own: bool
    imported: bool
    observations: list[dict[str, Any]]


@dataclass
class Lookup:
    patient_id: int
    item: RecognitionItem
    results: list[RecognisedResult]
    consent_missing: bool
    in_scope: bool  # the deciding institution is in at least one scope recognising the item
    scope_names: list[str]

    @property
    def message(self) -> str:
        if not self.in_scope:
            return "本机构不在该项目的互认范围内"
        if self.consent_missing:
            return "患者未授权共享（或已撤回），无法显示其他成员机构的结果"
        if not self.results:
            return "没有在有效期内的互认结果"
        return ""


@dataclass(frozen=True)
class Valid(Generic[OrderT]):
    """One result recognised for the deciding institution, valid today."""

    order: OrderT
    source: int
    on: date  # the result's date
    valid_until: date
    scope_id: int  # the scope with the longest window
    scopes: list[str]  # every scope the result is recognised in (its HR mark)


@dataclass(frozen=True)
class Recognised(Generic[OrderT]):
    results: list[Valid[OrderT]]
    in_scope: bool
    consent_missing: bool


def recognise(orders: Sequence[OrderT], *, source: Callable[[OrderT], int], on: Callable[[OrderT], date], item_id: int,
              rules: Mapping[int, int], quals: Callable[[set[tuple[int, int]]], Mapping[tuple[int, int], list[Qual]]],
              inst_id: int, shared: bool, today: date) -> Recognised[OrderT]:
    """The lookup's decision, for the ORM path and the hot path alike: of the patient's resulted orders (newest
    first), the ones the deciding institution may see (its own, or every member's with the shared record),
    recognised in a scope covering it (`rules`: scope id → valid days) because the producer was QC-qualified in
    that scope on the result's date, and still valid today. `quals` gives the qualifications of the
    (source, item) pairs asked for."""
    if not rules:
        orders = []
    hidden_other = False
    if not shared:
        hidden_other = any(source(o) != inst_id for o in orders)
        orders = [o for o in orders if source(o) == inst_id]
    qualified = quals({(source(o), item_id) for o in orders}) if orders else {}
    results: list[Valid[OrderT]] = []
    for o in orders:
        src, day = source(o), on(o)
        best: tuple[int, int] | None = None  # (valid_days, scope_id)
        in_scopes: list[str] = []
        for scope_id, qc_from, qc_to, name in qualified.get((src, item_id), []):
            if scope_id in rules and qc_from <= day <= qc_to:
                days = rules[scope_id]
                if name not in in_scopes:
                    in_scopes.append(name)
                if best is None or days > best[0]:
                    best = (days, scope_id)
        if best is None:
            continue
        valid_until = day + timedelta(days=best[0])
        if valid_until < today:
            continue
        results.append(Valid(o, src, day, valid_until, best[1], in_scopes))
    return Recognised(results, bool(rules), not shared and (hidden_other or bool(rules)))


def lookup(db: Session, subject: Subject, patient_id: int, item_code: str, *, audit_action: str = "read") -> Lookup:
    """The patient's valid recognised results for an item, newest first, for the acting institution."""
    if not subject.is_clinical:
        raise Forbidden("此功能仅限临床人员（医生、护士、诊断医师、转诊协调员）")
    item = require_item(db, item_code)
    access = policy.decide(db, subject, patient_id)
    if access is None:
        raise NotFound()
    inst_id = subject.acting_institution_id
    assert inst_id is not None
    found = _lookup(db, patient_id, item, inst_id, shared=access.shared)
    audit.record(db, subject, audit_action, "recognition_lookup", item.code, patient_id=patient_id,
                 basis=policy.read_basis(access.basis, any(not r.own for r in found.results)),
                 detail={"item_code": item_code})
    return found


def _reported_on(order: DiagnosticOrder) -> date:
    on = result_date(order)
    assert on is not None  # the lookup reads reported orders only
    return on


def _lookup(db: Session, patient_id: int, item: RecognitionItem, inst_id: int, *, shared: bool) -> Lookup:
    today = clock.today_local()
    mine = {s.id: s for s in covering_scopes(db, inst_id)}
    rules = {r.scope_id: r.valid_days for r in repo.rules_in_scopes(db, item.id, mine)}
    scope_names = [mine[s].name for s in rules]
    codes = item_codes(db, item)
    orders = repo.resulted_orders(db, patient_id, codes, clock.now() - timedelta(days=max(rules.values()) + 1)
                                  ) if rules else []
    names: dict[int, str] = {}

    def quals(pairs: set[tuple[int, int]]) -> dict[tuple[int, int], list[Qual]]:
        return {k: [(q.scope_id, q.qc_from, q.qc_to, name) for q, name, _d in v]
                for k, v in _qualified(db, pairs, names).items()}

    decided = recognise(orders, source=source_institution_id, on=_reported_on,
                        item_id=item.id, rules=rules, quals=quals, inst_id=inst_id, shared=shared, today=today)
    results = [RecognisedResult(
        order_id=v.order.id, accession_number=v.order.accession_number, item_code=v.order.item_code,
        item_name=v.order.item_name, institution_id=v.source, institution_name=names.get(v.source, ""),
        result_date=v.on, valid_until=v.valid_until, days_left=(v.valid_until - today).days, scopes=v.scopes,
        scope_id=v.scope_id, own=v.source == inst_id, imported=v.order.accession_number.startswith("EXT-"),
        observations=[]) for v in decided.results]
    if results:
        obs: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for ob in repo.observations_of_orders(db, [r.order_id for r in results]):
            obs[ob.order_id].append({"code": ob.code, "name": ob.name, "value": ob.value, "units": ob.units,
                                     "reference_range": ob.reference_range, "abnormal_flags": ob.abnormal_flags})
        for r in results:
            r.observations = obs.get(r.order_id, [])
    return Lookup(patient_id, item, results, consent_missing=decided.consent_missing, in_scope=decided.in_scope,
                  scope_names=scope_names)


# ------------------------------------------------------------------------------------ decisions


@dataclass
class DecisionIn:
    patient_id: int
    item_code: str
    decision: str
    reused_order_id: int | None = None
    reason_code: str | None = None
    reason_text: str | None = None
    patient_informed: bool = False
    order_id: int | None = None
    referral_id: int | None = None
    department_id: int | None = None


def price_at(db: Session, item: RecognitionItem, institution_id: int) -> int:
    """What the test costs at this member: its diagnostics catalogue price, else the item's price."""
    price = repo.lowest_price(db, institution_id, item_codes(db, item), item.loinc)
    if price is not None:
        return price
    return int(item.price_fen or 0)


def decide(db: Session, subject: Subject, data: DecisionIn) -> RecognitionDecision:
    """Record the doctor's decision: reuse a valid recognised result, or re-test with a coded reason."""
    if not subject.has("doctor"):
        raise Forbidden("只有医生可以作出互认决定")
    fields: dict[str, str] = {}
    if data.decision not in DECISIONS:
        fields["decision"] = "请选择互认或重新检查"
    if data.decision == "retest":
        if data.reason_code not in RETEST_REASONS:
            fields["reason_code"] = "重新检查须选择原因"
        elif data.reason_code == "other" and not (data.reason_text or "").strip():
            fields["reason_text"] = "选择“其他”时须写明原因"
        if not data.patient_informed:
            fields["patient_informed"] = "请确认已告知患者"
    if data.decision == "reuse" and data.reused_order_id is None:
        fields["reused_order_id"] = "请选择要采用的结果"
    item = require_item(db, data.item_code)
    found = lookup(db, subject, data.patient_id, data.item_code, audit_action="read")
    if fields:
        raise InvalidInput(fields=fields)
    inst_id = subject.acting_institution_id
    assert inst_id is not None
    order = None
    if data.order_id is not None:
        order = kit.get(db, DiagnosticOrder, data.order_id)
        if order is None or order.patient_id != data.patient_id or order.ordering_institution_id != inst_id:
            raise NotFound("未找到该申请单")
        if repo.decision_of_order(db, order.id) is not None:
            raise Conflict("该申请单已有互认决定", code="already_decided")
        if order.item_code not in item_codes(db, item):
            raise InvalidInput(fields={"order_id": "申请单的项目与互认项目不一致"})
        if data.decision == "reuse" and order.status not in BEFORE_RECEIPT:
            raise Conflict("该申请已采集或送检，不能再由互认结果满足", code="order_in_progress")
    if data.referral_id is not None:
        ref = kit.get(db, Referral, data.referral_id)
        if ref is None or ref.patient_id != data.patient_id or inst_id not in (ref.from_institution_id, ref.to_institution_id):
            raise NotFound("未找到该转诊单")
    chosen = None
    if data.decision == "reuse":
        chosen = next((r for r in found.results if r.order_id == data.reused_order_id), None)
        if chosen is None:
            raise Conflict("所选结果不在有效的互认范围内（已过期、无质控资格或未获共享授权）", code="result_not_recognised")
    dept_id = data.department_id
    prac_id = subject.practitioner_id
    if dept_id is None and prac_id is not None:
        dept_id = repo.department_of_practitioner(db, prac_id)
    if dept_id is not None:
        d = kit.get(db, Department, dept_id)
        if d is None or d.institution_id != inst_id:
            dept_id = None
    row = RecognitionDecision(
        patient_id=data.patient_id, item_id=item.id, requested_code=data.item_code.strip(),
        order_id=order.id if order else None, referral_id=data.referral_id, decision=data.decision,
        reused_order_id=chosen.order_id if chosen else None,
        reused_result_date=chosen.result_date if chosen else None,
        reused_institution_id=chosen.institution_id if chosen else None,
        scope_id=chosen.scope_id if chosen else None, offered_count=len(found.results),
        reason_code=data.reason_code if data.decision == "retest" else None,
        reason_text=(data.reason_text or "").strip() or None,
        patient_informed=bool(data.patient_informed), user_id=subject.user_id, practitioner_id=prac_id,
        institution_id=inst_id, department_id=dept_id, decided_at=clock.now(),
        price_saved_fen=price_at(db, item, inst_id) if chosen else 0,
    )
    db.add(row)
    db.flush()
    if order is not None and chosen is not None:
        # the platform order is satisfied by recognition: it leaves the worklists through the
        # diagnostics state machine (cancelled, with the recognition as its reason)
        from yilianti.diagnostics.orders import workflow

        workflow.cancel(db, subject, order.id, f"由互认结果满足：{chosen.institution_name} {chosen.result_date.isoformat()}"
                        f"（HR {'、'.join(chosen.scopes)}，互认决定 #{row.id}）")
    audit.record(db, subject, f"recognition_{data.decision}", "recognition_decision", row.id,
                 patient_id=data.patient_id,
                 reason=RETEST_REASONS.get(data.reason_code or "") if data.decision == "retest" else None,
                 detail={"item": item.code, "reused_order_id": row.reused_order_id, "order_id": row.order_id,
                         "referral_id": row.referral_id, "reason_code": row.reason_code,
                         "reason_text": row.reason_text, "patient_informed": row.patient_informed,
                         "price_saved_fen": row.price_saved_fen, "offered": row.offered_count})
    return row


def get_decision(db: Session, subject: Subject, decision_id: int) -> RecognitionDecision:
    row = kit.get(db, RecognitionDecision, decision_id)
    if row is None or not subject.is_clinical:
        raise NotFound()
    if row.institution_id != subject.acting_institution_id:
        raise NotFound()
    policy.require_patient(db, subject, row.patient_id, resource_type="recognition_decision", resource_id=row.id)
    return row


def satisfied_by_recognition(db: Session, order_ids: Iterable[int]) -> dict[int, RecognitionDecision]:
    """Orders marked satisfied by recognition (a reuse decision), for diagnostics order pages."""
    ids = list(order_ids)
    if not ids:
        return {}
    return {d.order_id: d for d in repo.reuse_decisions_of_orders(db, ids) if d.order_id is not None}


# ------------------------------------------------------------------------------------ the monthly report


def report_institutions(db: Session, subject: Subject) -> list[int] | None:
    """Which deciding institutions the subject may report on (None = all)."""
    if subject.is_system_admin:
        return None
    ids: set[int] = set()
    if subject.alliance_admin_of:
        ids.update(repo.members_of_alliances(db, subject.alliance_admin_of))
    if subject.acting_institution_id is not None:
        ids.add(subject.acting_institution_id)
    if not ids:
        raise Forbidden()
    return sorted(ids)


def _month(at: datetime) -> str:
    return clock.to_local(at).strftime("%Y-%m")


def month_start(months_back: int) -> datetime:
    today = clock.today_local()
    y, m = today.year, today.month - months_back
    while m <= 0:
        y, m = y - 1, m + 12
    return datetime(y, m, 1, tzinfo=clock.SHANGHAI)


def monthly_report(db: Session, subject: Subject, *, months: int = 6, institution_id: int | None = None) -> dict[str, Any]:
    allowed = report_institutions(db, subject)
    months = max(1, min(int(months), 36))
    start = month_start(months - 1)
    if institution_id is not None:
        if allowed is not None and institution_id not in allowed:
            raise NotFound()
        allowed = [institution_id]
    rows = repo.decisions_since(db, start, allowed)
    inst_names, dept_names, user_names = repo.names_for_report(
        db, {r.institution_id for r in rows}, {r.department_id for r in rows if r.department_id},
        {r.user_id for r in rows if r.user_id})
    month_keys = [month_start(i).strftime("%Y-%m") for i in range(months - 1, -1, -1)]
    by_month: dict[str, dict[str, Any]] = {m: {"month": m, "decisions": 0, "reused": 0, "retested": 0,
                                               "saved_fen": 0, "offered": 0} for m in month_keys}
    reasons: dict[tuple[str, str, str, str], int] = defaultdict(int)  # (month, dimension, name, reason) → n
    per_inst: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"reused": 0, "retested": 0, "saved_fen": 0})
    for r in rows:
        m = _month(r.decided_at)
        if m not in by_month:
            continue
        b = by_month[m]
        b["decisions"] += 1
        if r.offered_count:
            b["offered"] += 1
        pi = per_inst[(m, inst_names.get(r.institution_id, str(r.institution_id)))]
        if r.decision == "reuse":
            b["reused"] += 1
            b["saved_fen"] += r.price_saved_fen
            pi["reused"] += 1
            pi["saved_fen"] += r.price_saved_fen
        else:
            b["retested"] += 1
            pi["retested"] += 1
            code = r.reason_code or "other"
            reasons[(m, "doctor", user_names.get(r.user_id or 0, "—"), code)] += 1
            reasons[(m, "department", dept_names.get(r.department_id or 0, "—"), code)] += 1
            reasons[(m, "institution", inst_names.get(r.institution_id, "—"), code)] += 1
    out_months = []
    for m in month_keys:
        b = by_month[m]
        # recognition rate: decisions where a recognised result was reused ÷ decisions where one was offered
        b["rate"] = round(b["reused"] / b["offered"], 4) if b["offered"] else None
        b["tests_avoided"] = b["reused"]
        b["saved_yuan"] = round(b["saved_fen"] / 100, 2)
        out_months.append(b)
    return {
        "months": out_months,
        "by_institution": [{"month": m, "institution": name, **v, "saved_yuan": round(v["saved_fen"] / 100, 2)}
                           for (m, name), v in sorted(per_inst.items())],
        "retest_reasons": [{"month": m, "dimension": dim, "name": name, "reason_code": code,
                            "reason": RETEST_REASONS.get(code, code), "count": n}
                           for (m, dim, name, code), n in sorted(reasons.items())],
        "totals": {"decisions": sum(b["decisions"] for b in out_months),
                   "reused": sum(b["reused"] for b in out_months),
                   "retested": sum(b["retested"] for b in out_months),
                   "saved_fen": sum(b["saved_fen"] for b in out_months)},
    }
