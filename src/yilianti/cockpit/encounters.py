"""Encounters imported from the members' HIS and the out-of-county visit register imported from the insurance
settlement data (models/encounter.py): the rows behind the national indicators 7–12 (issue 19).

Both imports take a batch — a spreadsheet uploaded on the page, or a JSON batch posted to the API — checked whole
first: any row's error refuses the batch, naming the row and the field (`row3.visit_date`), and nothing is stored
(as the help records' import, cockpit/assistance.py). A row is keyed by its source's number (the HIS encounter
number within the institution; the settlement number within the alliance): a row already imported is updated, so
a batch sent again, or a day's batch sent after the month's, changes nothing twice (incremental, idempotent).

A resident ID given with an encounter is matched to the platform's person by the patient register's own lookup
(`patients.repository.identifier_owner`, here for the batch at once); an ID failing its check digit, or held by
nobody, leaves the encounter without a patient (counted in the visits, not linked to chronic care).

Who imports:
- encounters of an institution: its administrators, a system client of it (OAuth2 client credentials with a
  `system/Encounter.write` scope, auth/clients.py), the administrators of an alliance it is a member of, system
  administrators;
- the out-of-county register of an alliance: its administrators and the health commission of its region (who hold
  the insurance statistics: `service.can_enter_figures`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from yilianti.alliance.repository import departments_of, memberships_of_alliance, memberships_of_institution
from yilianti.audit import service as audit
from yilianti.auth import clients
from yilianti.authz.subject import Subject
from yilianti.cockpit import repository
from yilianti.cockpit.service import can_enter_figures, id_span
from yilianti.exceptions import Forbidden, InvalidInput, NotFound
from yilianti.kit import clock, validate
from yilianti.kit import repository as kit
from yilianti.kit.i18n import code_table
from yilianti.models.alliance import Institution
from yilianti.models.auth import Role
from yilianti.models.encounter import Encounter, EncounterKind, OutOfCountyVisit, counted_on
from yilianti.models.patient import Authority
from yilianti.patients import repository as patients

KIND = "encounter.kind"  # the code table of an encounter's kind
KIND_LABELS = code_table(KIND, {"outpatient": "门诊", "emergency": "急诊", "inpatient": "住院"})
MAX_ROWS = 20_000  # one batch: a month of a township's visits; a county hospital sends a day or a week at a time
TRUE = {"1", "true", "yes", "y", "是", "中医", "√"}


@dataclass
class EncounterIn:
    source_no: str
    kind: str  # a code, or its Chinese label (门诊 / 急诊 / 住院)
    visit_date: date | None
    discharge_date: date | None = None
    department: str | None = None  # as the HIS names it
    resident_id: str | None = None
    total_cost: float | None = None
    insurance_paid: float | None = None
    tcm: bool = False


@dataclass
class OutOfCountyIn:
    settlement_no: str
    kind: str
    hospital: str
    visit_date: date | None
    discharge_date: date | None = None
    home_institution_id: int | None = None
    total_cost: float | None = None
    insurance_paid: float | None = None


@dataclass
class Imported:
    """What a batch did: rows created and updated, and (encounters) how many were matched to a person."""

    created: int = 0
    updated: int = 0
    matched: int = 0
    ids: list[int] = field(default_factory=list)


def kind_of(text: str) -> str:
    """A kind by code or by its Chinese label ('门急诊' is read as outpatient)."""
    value = (text or "").strip()
    return {v: k for k, v in KIND_LABELS.items()}.get(value, "outpatient" if value == "门急诊" else value.lower())


def flag(value: object) -> bool:
    return str(value or "").strip().lower() in TRUE


# ------------------------------------------------------------------------------------------ access


def can_import(db: Session, subject: Subject, institution_id: int) -> bool:
    """Encounters of the institution: its administrators or system clients, the administrators of an alliance it is
    currently a member of, system administrators."""
    if subject.is_system_admin:
        return True
    if subject.acting_institution_id == institution_id and (
            subject.has(Role.institution_admin) or (subject.scopes is not None
                                                    and clients.permits(subject.scopes, "Encounter", "write"))):
        return True
    today = clock.today_local()
    return any(m.alliance_id in subject.alliance_admin_of and m.is_current(today)
               for m in memberships_of_institution(db, institution_id))


def can_import_register(db: Session, subject: Subject, alliance_id: int) -> bool:
    return can_enter_figures(db, subject, alliance_id)


# ------------------------------------------------------------------------------------------ checks


def _money(errors: dict[str, str], total: float | None, paid: float | None) -> None:
    for name, v in (("total_cost", total), ("insurance_paid", paid)):
        if v is not None and v < 0:
            errors[name] = "金额不能为负数"
    if total is not None and paid is not None and paid > total + 0.005:
        errors["insurance_paid"] = "医保基金支付不能多于总费用"


def _dates(errors: dict[str, str], kind: str, visit: date | None, discharge: date | None, today: date) -> None:
    if visit is None:
        errors["visit_date"] = "请填写就诊（入院）日期"
    elif visit > today:
        errors["visit_date"] = "就诊日期不能晚于今天"
    if discharge is not None:
        if kind != EncounterKind.inpatient:
            errors["discharge_date"] = "只有住院才有出院日期"
        elif visit is not None and discharge < visit:
            errors["discharge_date"] = "出院日期不能早于入院日期"
        elif discharge > today:
            errors["discharge_date"] = "出院日期不能晚于今天"


def _number_of(errors: dict[str, str], name: str, value: str, seen: set[str]) -> None:
    if not value:
        errors[name] = "请填写编号"
    elif len(value) > 64:
        errors[name] = "编号不超过 64 个字符"
    elif value in seen:
        errors[name] = "编号在本批中重复"
    seen.add(value)


def _raise(errors_by_row: list[dict[str, str]]) -> None:
    """InvalidInput naming `row{n}.{field}` (the page puts "第n行" before the message) — or nothing when every row is
    right."""
    errors = {f"row{n}.{k}": v for n, row in enumerate(errors_by_row, start=1) for k, v in row.items()}
    if not errors_by_row:
        errors["file"] = "文件中没有数据行"
    if errors:
        raise InvalidInput(fields=errors)


def _batch_size(rows: list[Any]) -> None:
    if len(rows) > MAX_ROWS:
        raise InvalidInput(fields={"file": f"一次最多导入 {MAX_ROWS} 行"})


# ------------------------------------------------------------------------------------------ encounters


def import_encounters(db: Session, subject: Subject, institution_id: int, rows: list[EncounterIn]) -> Imported:
    """All or nothing: every row checked, then created or updated by its HIS number (see the module)."""
    if kit.get(db, Institution, institution_id) is None:
        raise NotFound("没有这个机构")
    if not can_import(db, subject, institution_id):
        raise Forbidden("只有该机构的管理员或其接入系统可以导入就诊记录")
    _batch_size(rows)
    today, seen, problems = clock.today_local(), set[str](), []
    for data in rows:
        data.source_no, data.kind = (data.source_no or "").strip(), kind_of(data.kind)
        errors: dict[str, str] = {}
        _number_of(errors, "source_no", data.source_no, seen)
        if data.kind not in EncounterKind.ALL:
            errors["kind"] = "类型应为门诊、急诊或住院"
        _dates(errors, data.kind, data.visit_date, data.discharge_date, today)
        _money(errors, data.total_cost, data.insurance_paid)
        problems.append(errors)
    _raise(problems)
    departments = {d.name: d.id for d in departments_of(db, institution_id)}
    ids = {r.resident_id: _resident_id(r.resident_id) for r in rows if r.resident_id}
    owners = patients.identifier_owners(db, Authority.resident_id, [v for v in ids.values() if v])
    existing = {e.source_no: e for e in repository.encounters_numbered(db, institution_id, [r.source_no for r in rows])}
    out, now = Imported(), clock.now()
    keyed = []
    for data in rows:
        patient = owners.get(ids.get(data.resident_id or "") or "")
        out.matched += patient is not None
        dept = (data.department or "").strip()[:64] or None
        values = {**_visit(data, subject.user_id, now), "department_name": dept,
                  "department_id": departments.get(dept or ""), "patient_id": patient, "tcm": bool(data.tcm)}
        keyed.append((existing.get(data.source_no), values, {"institution_id": institution_id,
                                                            "source_no": data.source_no}))
    return _write(db, subject, Encounter, "encounter", keyed, out, {"institution_id": institution_id},
                  lambda: {"matched": out.matched})


def _resident_id(value: str) -> str | None:
    """The normalised resident ID, or None when it fails its check (then it matches nobody)."""
    try:
        return validate.resident_id(value.strip().upper()).number
    except ValueError:
        return None


def _visit(data: EncounterIn | OutOfCountyIn, user_id: int | None, now: Any) -> dict[str, Any]:
    """The columns an encounter and an out-of-county visit share: kind, days (and the one that dates it), money, who
    imported it when."""
    return {"kind": data.kind, "visit_date": data.visit_date, "discharge_date": data.discharge_date,
            "day": counted_on(data.kind, data.visit_date, data.discharge_date), "total_cost": data.total_cost or 0.0,
            "insurance_paid": data.insurance_paid or 0.0, "imported_by_user_id": user_id, "imported_at": now}


def _store(row: Any, values: dict[str, Any], new: list[dict[str, Any]], ids_of: list[int], key: dict[str, Any]) -> None:
    """A row already imported is updated in place; a new one is queued for the batch's one INSERT."""
    if row is None:
        new.append({**key, **values})
        return
    for name, value in values.items():
        setattr(row, name, value)
    ids_of.append(row.id)


def _write(db: Session, subject: Subject, model: Any, resource: str,
           keyed: list[tuple[Any, dict[str, Any], dict[str, Any]]], out: Imported, detail: dict[str, Any],
           more: Callable[[], dict[str, Any]] = dict) -> Imported:
    """Both imports' last step: each (existing row or None, values, key) updated in place or inserted in one
    statement, then the batch audited once with what it did."""
    new: list[dict[str, Any]] = []
    ids_of: list[int] = []
    for row, values, key in keyed:
        _store(row, values, new, ids_of, key)
    out.created, out.updated = len(new), len(keyed) - len(new)
    out.ids = sorted(ids_of + repository.insert_rows(db, model, new))
    audit.record(db, subject, "import", resource, id_span(out.ids),
                 detail={**detail, "rows": len(keyed), "created": out.created, "updated": out.updated, **more()})
    return out


def import_register(db: Session, subject: Subject, alliance_id: int, rows: list[OutOfCountyIn]) -> Imported:
    """The out-of-county register of the alliance's residents, all or nothing, keyed by settlement number."""
    if not can_import_register(db, subject, alliance_id):
        raise Forbidden("只有医联体管理员或区域卫健委可以导入县外就医登记")
    _batch_size(rows)
    members = {m.institution_id for m in memberships_of_alliance(db, alliance_id)}
    today, seen, problems = clock.today_local(), set[str](), []
    for data in rows:
        data.settlement_no, data.kind = (data.settlement_no or "").strip(), kind_of(data.kind)
        data.hospital = (data.hospital or "").strip()[:200]
        errors: dict[str, str] = {}
        _number_of(errors, "settlement_no", data.settlement_no, seen)
        if data.kind not in EncounterKind.ALL:
            errors["kind"] = "类型应为门诊、急诊或住院"
        if not data.hospital:
            errors["hospital"] = "请填写就医机构"
        if data.home_institution_id is not None and data.home_institution_id not in members:
            errors["home_institution_id"] = "参保地机构不是本医联体成员"
        _dates(errors, data.kind, data.visit_date, data.discharge_date, today)
        _money(errors, data.total_cost, data.insurance_paid)
        problems.append(errors)
    _raise(problems)
    existing = {v.settlement_no: v for v in repository.register_numbered(db, alliance_id,
                                                                         [r.settlement_no for r in rows])}
    now = clock.now()
    keyed = [(existing.get(data.settlement_no),
              {**_visit(data, subject.user_id, now), "hospital": data.hospital,
               "home_institution_id": data.home_institution_id},
              {"alliance_id": alliance_id, "settlement_no": data.settlement_no}) for data in rows]
    return _write(db, subject, OutOfCountyVisit, "out_of_county_visit", keyed, Imported(), {"alliance_id": alliance_id})
