"""Import of the recognition catalogue and the QC-qualified institutions from a spreadsheet.

One sheet (CSV, UTF-8 with or without BOM, or the first sheet of an XLSX workbook), one row per
item × scope, optionally naming one qualified institution and its QC period:

    item_code, item_name, kind (lab|imaging|检验|检查), loinc, codes (other codes, ; separated),
    price_yuan, scope_code, valid_days, institution, qc_from, qc_to, qc_body

Items are created or updated by `item_code`, rules by (item, scope), qualifications by
(item, scope, institution, qc_from). Every row is checked first; when any row is wrong the
import raises `InvalidInput` with one message per row (`fields["第3行"]`) and stores nothing.
The scopes themselves are set up beforehand (`service.create_scope`) and referenced by code;
the institution must lie within the scope it is qualified in.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from yilianti.alliance.repository import all_institutions
from yilianti.audit import service as audit
from yilianti.authz.subject import Subject
from yilianti.exceptions import InvalidInput
from yilianti.models.recognition import (
    QualifiedInstitution,
    RecognitionItem,
    RecognitionItemCode,
    RecognitionRule,
)
from yilianti.recognition import repository as repo
from yilianti.recognition.service import VALID_DAYS_MESSAGE, covering_scopes, scopes, valid_days_ok

COLUMNS = ("item_code", "item_name", "kind", "loinc", "codes", "price_yuan", "scope_code", "valid_days",
           "institution", "qc_from", "qc_to", "qc_body")
REQUIRED = ("item_code", "item_name", "kind", "scope_code", "valid_days")
KINDS = {"lab": "lab", "检验": "lab", "imaging": "imaging", "检查": "imaging", "影像": "imaging"}
HEADER_ALIASES = {"项目编码": "item_code", "项目名称": "item_name", "类别": "kind", "LOINC": "loinc", "loinc": "loinc",
                  "其他编码": "codes", "价格(元)": "price_yuan", "价格": "price_yuan", "范围编码": "scope_code",
                  "有效期(天)": "valid_days", "有效期": "valid_days", "机构": "institution",
                  "质控起": "qc_from", "质控止": "qc_to", "质控机构": "qc_body"}


@dataclass
class ImportSummary:
    rows: int
    items_created: int
    items_updated: int
    rules: int
    qualifications: int


def read_rows(content: bytes, filename: str = "") -> list[dict[str, str]]:
    """Rows as dicts keyed by the canonical column names (header aliases in Chinese accepted)."""
    if filename.lower().endswith(".xlsx") or content[:2] == b"PK":
        try:
            import openpyxl
        except ImportError as exc:  # pragma: no cover - pinned in requirements.lock
            raise InvalidInput("服务器未安装 XLSX 支持，请上传 CSV") from exc
        try:
            wb = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable workbook is a user error
            raise InvalidInput("无法读取该 XLSX 文件", fields={"file": "文件不是有效的 XLSX"}) from exc
        ws = wb.worksheets[0]
        raw: list[list[Any]] = [list(r) for r in ws.iter_rows(values_only=True)]
        wb.close()
    else:
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput("文件须为 UTF-8 编码的 CSV", fields={"file": "文件须为 UTF-8 编码"}) from exc
        try:
            raw = [list(r) for r in csv.reader(io.StringIO(text, newline=""))]
        except csv.Error as exc:  # a malformed CSV is the sender's file, answered 422 (found by schemathesis)
            raise InvalidInput("无法读取该 CSV 文件", fields={"file": "CSV 格式有误"}) from exc
    raw = [r for r in raw if any(c not in (None, "") for c in r)]
    if not raw:
        raise InvalidInput("文件是空的", fields={"file": "文件是空的"})
    header = [HEADER_ALIASES.get(str(h or "").strip(), str(h or "").strip()) for h in raw[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InvalidInput("缺少必需的列：{cols}", fields={"file": "缺少必需的列"}, cols=", ".join(missing))
    rows = []
    for r in raw[1:]:
        row: dict[str, str] = {}
        for i, name in enumerate(header):
            v = r[i] if i < len(r) else None
            if isinstance(v, datetime):
                v = v.date().isoformat()
            elif isinstance(v, date):
                v = v.isoformat()
            elif isinstance(v, float) and v.is_integer():
                v = int(v)
            row[name] = "" if v is None else str(v).strip()
        rows.append(row)
    return rows


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value.replace("/", "-"))
    except ValueError:
        return None


def import_catalogue(db: Session, actor: Subject | None, rows: list[dict[str, str]]) -> ImportSummary:
    all_scopes = {s.code: s for s in scopes(db)}
    institutions = {i.name: i for i in all_institutions(db)}
    by_short = {i.short_name: i for i in institutions.values() if i.short_name}
    errors: dict[str, str] = {}
    plans: list[dict[str, Any]] = []
    seen_kind: dict[str, str] = {}
    for n, row in enumerate(rows, start=2):  # row 1 is the header
        problems: list[str] = []
        code = row.get("item_code", "")
        if not code:
            problems.append("项目编码为空")
        if not row.get("item_name"):
            problems.append("项目名称为空")
        kind = KINDS.get(row.get("kind", ""))
        if kind is None:
            problems.append("类别须为 lab/检验 或 imaging/检查")
        elif code in seen_kind and seen_kind[code] != kind:
            problems.append("同一项目的类别前后不一致")
        elif code:
            seen_kind[code] = kind
        scope = all_scopes.get(row.get("scope_code", ""))
        if scope is None:
            problems.append(f"未知的互认范围编码：{row.get('scope_code', '')}")
        try:
            valid_days = int(row.get("valid_days", ""))
        except ValueError:
            valid_days = 0
            problems.append("有效期天数须为整数")
        else:
            if not valid_days_ok(valid_days):
                problems.append(VALID_DAYS_MESSAGE)
        price_fen = None
        if row.get("price_yuan"):
            try:
                price = Decimal(row["price_yuan"])
                if price < 0:
                    raise InvalidOperation
                price_fen = int(price * 100)
            except InvalidOperation:
                problems.append("价格须为非负数（元）")
        inst = None
        qc_from = qc_to = None
        if row.get("institution"):
            inst = institutions.get(row["institution"]) or by_short.get(row["institution"])
            if inst is None:
                problems.append(f"未知的机构：{row['institution']}")
            qc_from, qc_to = _date(row.get("qc_from", "")), _date(row.get("qc_to", ""))
            if qc_from is None or qc_to is None:
                problems.append("质控期须填写起止日期（YYYY-MM-DD）")
            elif qc_to < qc_from:
                problems.append("质控截止日期早于开始日期")
            if inst is not None and scope is not None and scope.id not in {s.id for s in covering_scopes(db, inst.id, list(all_scopes.values()))}:
                problems.append(f"{inst.name}不在互认范围“{scope.name}”内")
        if problems:
            errors[f"第{n}行"] = "；".join(problems)
            continue
        plans.append({"code": code, "name": row["item_name"], "kind": kind, "loinc": row.get("loinc") or None,
                      "codes": [c.strip() for c in row.get("codes", "").replace("；", ";").split(";") if c.strip()],
                      "price_fen": price_fen, "scope": scope, "valid_days": valid_days, "inst": inst,
                      "qc_from": qc_from, "qc_to": qc_to, "qc_body": row.get("qc_body") or None})
    if not rows:
        errors["file"] = "文件中没有数据行"
    if errors:
        raise InvalidInput("导入失败：{n} 行有误，未导入任何数据", code="import_rejected", fields=errors, n=len(errors))
    return _apply(db, actor, plans)


def _apply(db: Session, actor: Subject | None, plans: list[dict[str, Any]]) -> ImportSummary:
    created = updated = rules = quals = 0
    items: dict[str, RecognitionItem] = {}
    for p in plans:
        item = items.get(p["code"]) or repo.item_with_code(db, p["code"])
        if item is None:
            item = RecognitionItem(code=p["code"], name=p["name"], kind=p["kind"], loinc=p["loinc"],
                                   numeric=p["kind"] == "lab", price_fen=p["price_fen"])
            db.add(item)
            db.flush()
            created += 1
        elif p["code"] not in items:
            item.name, item.kind, item.active = p["name"], p["kind"], True
            item.loinc = p["loinc"] or item.loinc
            item.price_fen = p["price_fen"] if p["price_fen"] is not None else item.price_fen
            updated += 1
        items[p["code"]] = item
        extra = list(p["codes"]) + ([p["loinc"]] if p["loinc"] else [])
        for c in extra:
            existing = repo.code_mapping(db, c)
            if existing is None:
                db.add(RecognitionItemCode(item_id=item.id, system="LN" if c == p["loinc"] else "local", code=c))
                db.flush()
        scope = p["scope"]
        rule = repo.rule_of_scope(db, item.id, scope.id)
        if rule is None:
            db.add(RecognitionRule(item_id=item.id, scope_id=scope.id, valid_days=p["valid_days"]))
            rules += 1
        elif rule.valid_days != p["valid_days"]:
            rule.valid_days = p["valid_days"]
            rules += 1
        if p["inst"] is not None:
            q = repo.qualification_on(db, item.id, scope.id, p["inst"].id, p["qc_from"])
            if q is None:
                db.add(QualifiedInstitution(item_id=item.id, scope_id=scope.id, institution_id=p["inst"].id,
                                            qc_from=p["qc_from"], qc_to=p["qc_to"], qc_body=p["qc_body"]))
            else:
                q.qc_to, q.qc_body = p["qc_to"], p["qc_body"] or q.qc_body
            quals += 1
        db.flush()
    summary = ImportSummary(len(plans), created, updated, rules, quals)
    audit.record(db, actor, "import", "recognition_catalogue", None, detail=summary.__dict__)
    return summary
