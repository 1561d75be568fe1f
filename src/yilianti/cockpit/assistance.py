"""The help sent down (帮扶) as records: entered one by one or imported from a spreadsheet all or nothing, each
checked against the alliance it belongs to (both institutions members on the day it began)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from yilianti.alliance.repository import memberships_of_alliance
from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.cockpit import repository
from yilianti.cockpit.service import id_span
from yilianti.exceptions import Forbidden, InvalidInput
from yilianti.kit import clock
from yilianti.models.auth import Role
from yilianti.models.cockpit import AssistanceKind, AssistanceRecord
from yilianti.models.workforce import Title

LABELS = {"posting": "专家派驻", "clinic": "下沉坐诊", "surgery": "带教手术", "lecture": "讲座培训",
          "rounds": "教学查房", "trainee": "接收进修", "department": "共建科室", "technique": "新技术落地",
          "equipment": "设备投入", "funds": "资金投入"}
TITLES = tuple(t.value for t in Title)  # 职称: as the workforce register spells them (national indicator 4 reads them)
NUMBERS = ("person_days", "sessions", "patients", "surgeries", "surgeries_grade34", "amount_yuan")


@dataclass
class AssistanceIn:
    kind: str
    from_institution_id: int | None
    to_institution_id: int | None
    start_date: date | None
    end_date: date | None = None
    person: str | None = None
    title: str | None = None
    post: str | None = None
    subject: str | None = None
    person_days: float | None = None
    sessions: float | None = None
    patients: float | None = None
    surgeries: float | None = None
    surgeries_grade34: float | None = None
    amount_yuan: float | None = None
    note: str | None = None


def can_enter(db: Session, subject: Subject, alliance_id: int) -> bool:
    """The alliance's administrators, and the administrators of its member institutions."""
    if subject.is_system_admin or alliance_id in subject.alliance_admin_of:
        return True
    return subject.has(Role.institution_admin) and any(
        m.institution_id == subject.acting_institution_id and m.is_current(clock.today_local())
        for m in memberships_of_alliance(db, alliance_id))


def _check(data: AssistanceIn, members: dict[int, list[Any]]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if data.kind not in AssistanceKind.ALL:
        errors["kind"] = "请选择帮扶类型"
    if data.start_date is None:
        errors["start_date"] = "请填写开始日期（或首次开展日期）"
    elif data.end_date is not None and data.end_date < data.start_date:
        errors["end_date"] = "结束日期不能早于开始日期"
    for field in ("from_institution_id", "to_institution_id"):
        inst = getattr(data, field)
        if inst is None:
            errors[field] = "请选择机构"
        elif data.start_date is not None and not any(m.is_current(data.start_date) for m in members.get(inst, ())):
            errors[field] = "该机构在开始日期不是本医联体成员"
    if "from_institution_id" not in errors and data.from_institution_id == data.to_institution_id:
        errors["to_institution_id"] = "帮扶双方不能是同一机构"
    for field in NUMBERS:
        v = getattr(data, field)
        if v is not None and v < 0:
            errors[field] = "不能为负数"
    if (data.surgeries_grade34 or 0) > (data.surgeries or 0):
        errors["surgeries_grade34"] = "三、四级手术台次不能多于手术台次"
    if (data.title or "").strip() and (data.title or "").strip() not in TITLES:
        errors["title"] = "职称请填写其中之一：" + "、".join(TITLES)
    if data.kind in ("posting", "trainee") and not (data.person or "").strip():
        errors["person"] = "请填写人员姓名"
    if data.kind in ("technique", "department", "lecture") and not (data.subject or "").strip():
        errors["subject"] = "请填写内容（技术名称、科室或讲座主题）"
    return errors


def record(db: Session, subject: Subject, alliance_id: int, data: AssistanceIn) -> AssistanceRecord:
    return import_rows(db, subject, alliance_id, [data])[0]


def import_rows(db: Session, subject: Subject, alliance_id: int, rows: list[AssistanceIn]) -> list[AssistanceRecord]:
    """All or nothing: any row's error → InvalidInput naming `row{n}.{field}`, and nothing is stored."""
    if not can_enter(db, subject, alliance_id):
        raise Forbidden("只有医联体或成员机构的管理员可以录入帮扶记录")
    members: dict[int, list[Any]] = {}
    for m in memberships_of_alliance(db, alliance_id):
        members.setdefault(m.institution_id, []).append(m)
    errors: dict[str, str] = {}
    for n, data in enumerate(rows, start=1):
        for k, v in _check(data, members).items():
            errors[f"row{n}.{k}" if len(rows) > 1 else k] = (f"第{n}行 " if len(rows) > 1 else "") + v
    if not rows:
        errors["file"] = "文件中没有数据行"
    if errors:
        raise InvalidInput(fields=errors)
    out = []
    for data in rows:
        assert data.start_date is not None and data.from_institution_id and data.to_institution_id
        days = data.person_days
        if days is None and data.kind == "posting" and data.end_date is not None:
            days = (data.end_date - data.start_date).days + 1
        row = AssistanceRecord(
            alliance_id=alliance_id, kind=data.kind, from_institution_id=data.from_institution_id,
            to_institution_id=data.to_institution_id, person=(data.person or "").strip() or None,
            title=(data.title or "").strip() or None, post=(data.post or "").strip() or None,
            subject=(data.subject or "").strip()[:200] or None, start_date=data.start_date, end_date=data.end_date,
            person_days=days or 0, sessions=int(data.sessions or 0), patients=int(data.patients or 0),
            surgeries=int(data.surgeries or 0), surgeries_grade34=int(data.surgeries_grade34 or 0),
            amount_yuan=data.amount_yuan or 0, note=(data.note or "").strip() or None,
            entered_by_user_id=subject.user_id, entered_at=clock.now())
        db.add(row)
        out.append(row)
    db.flush()
    audit.record(db, subject, "create", "assistance_record", id_span([r.id for r in out]),
                 detail={"alliance_id": alliance_id, "rows": len(out), "ids": [r.id for r in out]})
    return out


def listing(db: Session, alliance_id: int, start: date, end: date, kind: str | None = None) -> list[AssistanceRecord]:
    return repository.assistance_between(db, alliance_id, start, end, kind or None)
