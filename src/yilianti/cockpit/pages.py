"""The cockpit (驾驶舱) pages: an alliance's indicators against target, the monthly curves, the numbers behind
them, the targets and their history, and the export for the monthly assessment meeting."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from openpyxl import Workbook, load_workbook

from yilianti.alliance.repository import (
    all_alliances,
    all_institution_names,
    current_memberships,
    institution_names,
)
from yilianti.auth.deps import DB, CurrentSubject, ReadDB
from yilianti.authz.subject import Subject
from yilianti.cockpit import assistance, drill, encounters, report, repository, service
from yilianti.cockpit.display import CHARTED, CHARTS, GROUPS, fmt
from yilianti.cockpit.filters import Focus, focus_of, month_start, period
from yilianti.cockpit.service import Figure
from yilianti.exceptions import AppError, InvalidInput, NotFound, request_locale
from yilianti.kit import clock
from yilianti.kit import repository as kit
from yilianti.kit.i18n import code_table, label
from yilianti.kit.listing import ListParams
from yilianti.models.alliance import Alliance
from yilianti.scheduling.repository import alliances_with_figures_for
from yilianti.web.forms import errors_of, opt_int
from yilianti.web.render import render_page, t, xlsx_response
from yilianti.workforce.schemas import PERIODS

router = APIRouter(include_in_schema=False)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

def visible_alliances(db: Any, subject: Subject) -> list[Alliance]:
    ids = alliances_with_figures_for(db, subject)
    return [a for a in all_alliances(db) if a.active and (ids is None or a.id in ids)]


def _chosen(db: Any, subject: Subject, alliance_id: str) -> tuple[list[Alliance], Alliance | None]:
    """The alliances the subject may look at, and the one asked for (the first by default)."""
    alliances = visible_alliances(db, subject)
    chosen = opt_int(alliance_id) or (alliances[0].id if alliances else None)
    return alliances, service.require_view(db, subject, kit.get(db, Alliance, chosen)) if chosen else None


def _context(request: Request, db: Any, subject: Subject, alliance_id: str, start: str, end: str,
             member: str = "", department: str = "", reads: Any = None) -> dict[str, Any]:
    """`reads`: the session the figures are computed on (the read replica when one is set: auth/deps.ReadDB)."""
    alliances, alliance = _chosen(db, subject, alliance_id)
    s, e = period(start, end)
    focus = focus_of(db, alliance, member, department)
    figures = service.compute(reads or db, alliance.id, s, e, member=focus.member, department=focus.department,
                              rollups=True) if alliance else []
    locale = request_locale(request)
    return {"replica_max_lag": (reads or db).info.get("replica_max_lag"), "alliances": alliances, "alliance": alliance, "start": f"{s:%Y-%m}", "end": f"{e:%Y-%m}",
            "focus": focus, "wall": False, "quarter": f"{e.year}-Q{(e.month - 1) // 3 + 1}",
            "figures": figures, "groups": GROUPS, "fmt": fmt, "months": service.months_between(s, e),
            "charts": [(cid, title, service.chart(figures, codes, locale)) for cid, title, codes in CHARTS],
            "charted": CHARTED,
            "can_set": bool(alliance) and service.can_set_targets(subject, alliance.id) if alliance else False,
            "targets": repository.targets_of(db, alliance.id) if alliance else [],
            "can_enter": bool(alliance) and service.can_enter_figures(db, subject, alliance.id) if alliance else False,
            "library": repository.library(db)}


@router.get("/cockpit")
def cockpit(request: Request, db: DB, reads: ReadDB, subject: CurrentSubject, alliance_id: str = "",
            start: str = "", end: str = "", member: str = "", department: str = "") -> Response:
    return render_page(request, "cockpit/index.html",
                       _context(request, db, subject, alliance_id, start, end, member, department, reads))


# the wall screen's headline tiles (the commission's monitoring room): the figures read from across the room
WALL_TILES = ("referral.up", "referral.down", "referral.down_rate", "sinking.slot_ratio", "sinking.reserve_use",
              "centres.remote_reads", "centres.tat_median", "recognition.rate", "recognition.saved",
              "assistance.person_days")


@router.get("/cockpit/wall")
def wall(request: Request, db: DB, reads: ReadDB, subject: CurrentSubject, alliance_id: str = "", start: str = "",
         end: str = "", member: str = "", department: str = "", rotate: str = "") -> Response:
    """The cockpit on a wall screen: full screen, large type, one panel at a time (rotating every `rotate`
    seconds, 20 by default), the page reloading its figures every five minutes."""
    ctx = _context(request, db, subject, alliance_id, start, end, member, department, reads)
    seconds = opt_int(rotate) or 20
    ctx.update(wall=True, rotate=min(max(seconds, 5), 600), refresh=300,
               tiles=[f for code in WALL_TILES for f in ctx["figures"] if f.indicator.code == code],
               now=clock.to_local(clock.now()))
    return render_page(request, "cockpit/wall.html", ctx)


@router.post("/cockpit/targets")
async def set_target(request: Request, db: DB, subject: CurrentSubject) -> Response:
    form = {k: str(v).strip() for k, v in (await request.form()).items() if isinstance(v, str)}
    alliance_id = opt_int(form.get("alliance_id")) or 0
    try:
        try:
            value = float(form.get("value", ""))
        except ValueError:
            raise InvalidInput(fields={"value": "请输入数字"}) from None
        effective = None
        if form.get("effective_from"):
            try:
                effective = date.fromisoformat(form["effective_from"])
            except ValueError:
                raise InvalidInput(fields={"effective_from": "日期格式应为 YYYY-MM-DD"}) from None
        service.require_view(db, subject, kit.get(db, Alliance, alliance_id))
        service.set_target(db, subject, alliance_id, code=form.get("code", ""), value=value,
                           source=form.get("source", ""), effective_from=effective)
    except AppError as exc:
        db.rollback()
        ctx = _context(request, db, subject, str(alliance_id), "", "")
        ctx.update(errors=errors_of(request, exc), form=form)
        return render_page(request, "cockpit/index.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/cockpit?alliance_id={alliance_id}&saved=1#targets", status_code=303)


def _cell(value: float | None, scale: int) -> float | None:
    return None if value is None else round(value * scale, 2)


def workbook(figures: list[Figure], months: list[str], locale: str, title: str) -> bytes:
    """The indicator table as xlsx: one row per indicator, its period value, target, status and each month."""
    wb = Workbook()
    ws = wb.active
    ws.title = "indicators"
    zh = locale == "zh"
    ws.append([title])
    ws.append(["指标代码" if zh else "Code", "指标" if zh else "Indicator", "单位" if zh else "Unit",
               "本期" if zh else "Period", "目标" if zh else "Target", "状态" if zh else "Status", *months])
    for f in figures:
        scale = 100 if f.indicator.unit == "ratio" else 1
        ws.append([f.indicator.code, f.indicator.name if zh else f.indicator.name_en,
                   "%" if f.indicator.unit == "ratio" else f.indicator.unit, _cell(f.value, scale),
                   _cell(f.target, scale), f.status or "", *[_cell(v, scale) for v in f.series]])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _title(alliance: Alliance | None, focus: Focus, period: str = "") -> str:
    """The alliance, the member and department filters (and the period), as an export's heading."""
    parts = [alliance.name if alliance else "", focus.members.get(focus.member or 0, ""),
             focus.departments.get(focus.department or 0, ""), period]
    return " ".join(p for p in parts if p)


@router.get("/cockpit/export.xlsx")
def export(request: Request, db: DB, reads: ReadDB, subject: CurrentSubject, alliance_id: str = "", start: str = "",
           end: str = "", member: str = "", department: str = "") -> Response:
    ctx = _context(request, db, subject, alliance_id, start, end, member, department, reads)
    alliance = ctx["alliance"]
    title = _title(alliance, ctx["focus"], f"{ctx['start']} – {ctx['end']}")
    body = workbook(ctx["figures"], ctx["months"], request_locale(request), title)
    name = f"cockpit-{alliance.key if alliance else 'none'}-{ctx['start']}-{ctx['end']}.xlsx"
    return Response(body, media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# ------------------------------------------------------------------------------------------ PDF report

PDF = "application/pdf"


def report_period(kind: str, value: str, today: date) -> tuple[date, date, str]:
    """A month (YYYY-MM) or a quarter (YYYY-Qn) as its first and last day and its label; by default the last one
    complete before today."""
    if kind == "quarter":
        q_now = (today.month - 1) // 3
        default = (today.year, q_now) if q_now else (today.year - 1, 4)
        try:
            y, q = (int(value[:4]), int(value[6:])) if value else default
            if value and (value[4:6].upper() != "-Q" or not 1 <= q <= 4):
                raise ValueError(value)
        except ValueError:
            raise InvalidInput(fields={"period": "季度格式应为 YYYY-Qn，如 2026-Q3"}) from None
        s, e = period(f"{y:04d}-{3 * q - 2:02d}", f"{y:04d}-{3 * q:02d}")
        return s, e, f"{y}年第{q}季度"
    prev = date.fromordinal(today.replace(day=1).toordinal() - 1)
    first = month_start(value) if value else prev.replace(day=1)
    if first is None:
        raise InvalidInput(fields={"period": "月份格式应为 YYYY-MM"})
    s, e = period(f"{first:%Y-%m}", f"{first:%Y-%m}")
    return s, e, f"{first.year}年{first.month}月"


@router.get("/cockpit/report.pdf")
def report_pdf(request: Request, db: DB, subject: CurrentSubject, alliance_id: str = "", kind: str = "month",
               period: str = "", member: str = "", department: str = "") -> Response:
    """The cockpit of a month or a quarter as a PDF with its charts, for the assessment meeting."""
    _alliances, alliance = _chosen(db, subject, alliance_id)
    if alliance is None:
        raise NotFound()
    kind = "quarter" if kind == "quarter" else "month"
    s, e, label_ = report_period(kind, period, clock.today_local())
    focus = focus_of(db, alliance, member, department)
    figures = service.compute(db, alliance.id, s, e, member=focus.member, department=focus.department, rollups=True)
    h_start = date(e.year - 1, e.month % 12 + 1, 1) if e.month != 12 else date(e.year, 1, 1)
    history = service.compute(db, alliance.id, h_start, e, member=focus.member, department=focus.department,
                              rollups=True)
    locale = request_locale(request)
    title = _title(alliance, focus)
    body = report.render(report.ReportInput(title, label_ if locale == "zh" else f"{s:%Y-%m} – {e:%Y-%m}", s, e,
                                            figures, history, clock.to_local(clock.now()), locale),
                         lambda text: t(request, text))
    name = f"cockpit-{alliance.key}-{kind}-{s:%Y-%m}.pdf"
    return Response(body, media_type=PDF, headers={"Content-Disposition": f'attachment; filename="{name}"'})


# ------------------------------------------------------------------------------------------ drill-down

DRILL_KEEP = ("alliance_id", "code", "start", "end", "member", "department", "measure")
TABLE_HEADINGS = {"referral": "转诊单", "diagnostic_order": "远程诊断申请", "consultation": "会诊",
                  "recognition_decision": "互认决定", "assistance_record": "帮扶记录", "practice_site": "多点执业排班",
                  "chronic_registration": "慢病登记", "encounter": "就诊记录", "out_of_county_visit": "县外就医登记"}


DECISIONS = code_table("cockpit.decision", {"reuse": "互认（未重复检查）", "retest": "重新检查"})
# per table: the code table of the row's "what" column (None: plain text), and of its status column
ROW_CODES = {"referral": ("referral.direction", "referral.status"), "diagnostic_order": (None, "diagnostics.status"),
             "consultation": ("consultation.kind", "consultation.status"),
             "recognition_decision": (None, "cockpit.decision"), "assistance_record": (None, None),
             "chronic_registration": ("chronic.condition", None),
             "practice_site": (None, None), "encounter": (None, encounters.KIND),
             "out_of_county_visit": (None, encounters.KIND)}


def _row_what(request: Request, row: drill.Row) -> str:
    """A row's coded columns as labels (referral directions, consultation kinds); names and items as they are."""
    kind = ROW_CODES[row.table][0]
    if row.table == "recognition_decision" or row.what is None:
        return ""  # the requested code is the member's own ordering code: the decision says enough
    return label(kind, row.what, request_locale(request)) if kind else str(row.what)


def _row_status(request: Request, row: drill.Row) -> str:
    if row.status is None:
        return ""
    if row.table == "assistance_record":
        return t(request, assistance.LABELS.get(str(row.status), str(row.status)))
    if row.table == "practice_site":
        return t(request, PERIODS.get(str(row.status), str(row.status)))
    kind = ROW_CODES[row.table][1]
    return label(kind, row.status, request_locale(request)) if kind else str(row.status)


@router.get("/cockpit/rows")
def drill_page(request: Request, db: DB, subject: CurrentSubject, alliance_id: str = "", code: str = "",
               start: str = "", end: str = "", member: str = "", department: str = "",
               measure: str = "") -> Response:
    """The rows behind one figure: the members it sums, then the rows it counts (paged; xlsx export)."""
    _alliances, alliance = _chosen(db, subject, alliance_id)
    if alliance is None:
        raise NotFound()
    s, e = period(start, end)
    focus = focus_of(db, alliance, member, department)
    lp = ListParams.of(request.query_params, keep=DRILL_KEEP)
    d = drill.drill(db, subject, alliance, code, s, e, member=focus.member, department=focus.department,
                    measure=measure or None, lp=lp, everything=lp.export)
    if lp.export and d.page is not None:
        head = ["类型", "编号", "日期", "数值", "机构", "科室", "内容", "状态", "患者"]
        body = [(t(request, TABLE_HEADINGS[r.table]), r.id, r.day, r.value, " → ".join(r.institutions), r.department,
                 _row_what(request, r), _row_status(request, r), r.patient or "") for r in d.page.items]
        return xlsx_response(t(request, "指标明细"), [t(request, h) for h in head], body, f"cockpit-rows-{code}")
    return render_page(request, "cockpit/rows.html", {
        "alliance": alliance, "d": d, "lp": lp, "focus": focus, "start": f"{s:%Y-%m}", "end": f"{e:%Y-%m}",
        "fmt": fmt, "headings": TABLE_HEADINGS, "what": lambda r: _row_what(request, r),
        "status": lambda r: _row_status(request, r), "path": "/cockpit/rows"})


# ------------------------------------------------------------------------------------------ imported figures

IMPORT_COLUMNS = ("指标代码", "开始日期", "结束日期", "数值", "出处", "佐证")


def _date(value: object) -> date | None:
    if isinstance(value, date):
        return value if not hasattr(value, "date") else value.date()  # a datetime cell is a date
    try:
        return date.fromisoformat(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def _number(value: object) -> float | None:
    try:
        return float(str(value).strip().rstrip("%")) / (100 if str(value).strip().endswith("%") else 1) \
            if value not in (None, "") else None
    except ValueError:
        return None


def _figure_in(cells: dict[str, object]) -> service.FigureIn:
    return service.FigureIn(code=str(cells.get("code") or "").strip(), period_start=_date(cells.get("period_start")),
                            period_end=_date(cells.get("period_end")), value=_number(cells.get("value")),
                            source=str(cells.get("source") or ""), evidence=str(cells.get("evidence") or "") or None)


def _table_of(filename: str, content: bytes) -> list[list[Any]]:
    """The cells of an uploaded xlsx or UTF-8 CSV, row by row (the first names the columns)."""
    if filename.lower().endswith(".xlsx") or content[:2] == b"PK":
        try:
            sheet = load_workbook(io.BytesIO(content), read_only=True, data_only=True).active
        except Exception:  # noqa: BLE001 - any unreadable workbook is the user's file, not our fault
            raise InvalidInput(fields={"file": "无法读取该 Excel 文件"}) from None
        table = [list(r) for r in sheet.iter_rows(values_only=True)] if sheet is not None else []
    else:
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput(fields={"file": "CSV 文件应为 UTF-8 编码"}) from None
        try:
            table = [list(r) for r in csv.reader(io.StringIO(text, newline=""))]
        except csv.Error:
            raise InvalidInput(fields={"file": "CSV 格式有误"}) from None
    if not table:
        raise InvalidInput(fields={"file": "文件是空的"})
    return table


def _rows_of(filename: str, content: bytes) -> list[service.FigureIn]:
    """The figures of an uploaded sheet whose first row names the columns (IMPORT_COLUMNS)."""
    keys = dict(zip(IMPORT_COLUMNS, ("code", "period_start", "period_end", "value", "source", "evidence"), strict=True))
    table = _table_of(filename, content)
    header = [str(c or "").strip() for c in table[0]]
    missing = [c for c in IMPORT_COLUMNS[:5] if c not in header]
    if missing:
        raise InvalidInput(fields={"file": "缺少列：" + "、".join(missing)})
    return [_figure_in({keys[h]: row[i] for i, h in enumerate(header) if h in keys and i < len(row)})
            for row in table[1:] if any(c not in (None, "") for c in row)]


async def _figure_action(request: Request, db: Any, subject: Subject, upload: bool) -> Response:
    form = await request.form()
    values: dict[str, object] = {k: v for k, v in form.items() if isinstance(v, str)}
    alliance_id = opt_int(str(values.get("alliance_id") or "")) or 0
    try:
        service.require_view(db, subject, kit.get(db, Alliance, alliance_id))
        if upload:
            file = form.get("file")
            if file is None or isinstance(file, str):
                raise InvalidInput(fields={"file": "请选择要导入的文件"})
            rows = _rows_of(file.filename or "", await file.read())
            stored = service.import_figures(db, subject, alliance_id, rows)
        else:
            stored = [service.record_figure(db, subject, alliance_id, _figure_in(values))]
    except AppError as exc:
        db.rollback()
        ctx = _context(request, db, subject, str(alliance_id), "", "")
        ctx.update(figure_errors=errors_of(request, exc), figure_form=values)
        return render_page(request, "cockpit/index.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/cockpit?alliance_id={alliance_id}&entered={len(stored)}#national", status_code=303)


@router.post("/cockpit/figures")
async def enter_figure(request: Request, db: DB, subject: CurrentSubject) -> Response:
    return await _figure_action(request, db, subject, upload=False)


@router.post("/cockpit/figures/import")
async def import_figures(request: Request, db: DB, subject: CurrentSubject) -> Response:
    return await _figure_action(request, db, subject, upload=True)


@router.get("/cockpit/figures/template.xlsx")
def figures_template(db: DB, subject: CurrentSubject) -> Response:
    """An empty import sheet with its columns, and on a second sheet the indicators it accepts."""
    wb = Workbook()
    ws = wb.active
    ws.title = "figures"
    ws.append(list(IMPORT_COLUMNS))
    ref = wb.create_sheet("indicators")
    ref.append(["指标代码", "指标", "单位", "定义"])
    for i in repository.library(db):
        if i.source == "imported":
            ref.append([i.code, i.name, i.unit, i.definition])
    out = io.BytesIO()
    wb.save(out)
    return Response(out.getvalue(), media_type=XLSX,
                    headers={"Content-Disposition": 'attachment; filename="cockpit-figures-template.xlsx"'})


# ------------------------------------------------------------------------------------------ assistance (帮扶)

ASSISTANCE_COLUMNS = {"类型": "kind", "派出机构": "from", "接收机构": "to", "开始日期": "start_date",
                      "结束日期": "end_date", "人员": "person", "职称": "title", "担任职务": "post",
                      "内容": "subject", "人日": "person_days", "次数": "sessions", "人次": "patients",
                      "手术台次": "surgeries", "三四级手术台次": "surgeries_grade34", "金额（元）": "amount_yuan",
                      "备注": "note"}


def _assistance_in(cells: dict[str, object], names: dict[str, int]) -> assistance.AssistanceIn:
    """A form or sheet row → AssistanceIn: institutions by id or by name, kinds by code or Chinese label."""
    def inst(value: object) -> int | None:
        text = str(value or "").strip()
        return opt_int(text) if text.isdigit() else names.get(text)
    kind = str(cells.get("kind") or "").strip()
    kind = {v: k for k, v in assistance.LABELS.items()}.get(kind, kind)
    nums = {f: _number(cells.get(f)) for f in assistance.NUMBERS}
    return assistance.AssistanceIn(
        kind=kind, from_institution_id=inst(cells.get("from") or cells.get("from_institution_id")),
        to_institution_id=inst(cells.get("to") or cells.get("to_institution_id")),
        start_date=_date(cells.get("start_date")), end_date=_date(cells.get("end_date")),
        person=str(cells.get("person") or "") or None, title=str(cells.get("title") or "") or None,
        post=str(cells.get("post") or "") or None, subject=str(cells.get("subject") or "") or None,
        note=str(cells.get("note") or "") or None, **nums)


def _assistance_context(request: Request, db: Any, subject: Subject, alliance_id: str, start: str, end: str,
                        kind: str) -> dict[str, Any]:
    alliances, alliance = _chosen(db, subject, alliance_id)
    s, e = period(start, end)
    members = current_memberships(db, alliance.id, clock.today_local()) if alliance else []
    rows = assistance.listing(db, alliance.id, s, e, kind) if alliance else []
    names = institution_names(db, {m.institution_id for m in members} |
                              {i for r in rows for i in (r.from_institution_id, r.to_institution_id)})
    return {"alliances": alliances, "alliance": alliance, "start": f"{s:%Y-%m}", "end": f"{e:%Y-%m}",
            "kind": kind, "kinds": assistance.LABELS, "rows": rows, "names": names,
            "members": sorted({m.institution_id for m in members}, key=lambda i: names.get(i, "")),
            "can_enter": bool(alliance) and assistance.can_enter(db, subject, alliance.id) if alliance else False}


@router.get("/cockpit/assistance")
def assistance_page(request: Request, db: DB, subject: CurrentSubject, alliance_id: str = "", start: str = "",
                    end: str = "", kind: str = "") -> Response:
    return render_page(request, "cockpit/assistance.html",
                       _assistance_context(request, db, subject, alliance_id, start, end, kind))


@router.get("/cockpit/assistance/export.xlsx")
def assistance_export(request: Request, db: DB, subject: CurrentSubject, alliance_id: str = "", start: str = "",
                      end: str = "", kind: str = "") -> Response:
    ctx = _assistance_context(request, db, subject, alliance_id, start, end, kind)
    wb = Workbook()
    ws = wb.active
    ws.append(list(ASSISTANCE_COLUMNS))
    for r in ctx["rows"]:
        ws.append([assistance.LABELS[r.kind], ctx["names"].get(r.from_institution_id), ctx["names"].get(r.to_institution_id),
                   r.start_date, r.end_date, r.person, r.title, r.post, r.subject, r.person_days, r.sessions, r.patients,
                   r.surgeries, r.surgeries_grade34, r.amount_yuan, r.note])
    out = io.BytesIO()
    wb.save(out)
    return Response(out.getvalue(), media_type=XLSX,
                    headers={"Content-Disposition": 'attachment; filename="assistance.xlsx"'})


@router.post("/cockpit/assistance")
async def assistance_enter(request: Request, db: DB, subject: CurrentSubject) -> Response:
    form = await request.form()
    values: dict[str, object] = {k: v for k, v in form.items() if isinstance(v, str)}
    alliance_id = opt_int(str(values.get("alliance_id") or "")) or 0
    try:
        service.require_view(db, subject, kit.get(db, Alliance, alliance_id))
        names = {n: i for i, n in all_institution_names(db).items()}
        file = form.get("file")
        if file is not None and not isinstance(file, str) and file.filename:
            table = _table_of(file.filename, await file.read())
            header = [str(c or "").strip() for c in table[0]]
            missing = [c for c in ("类型", "派出机构", "接收机构", "开始日期") if c not in header]
            if missing:
                raise InvalidInput(fields={"file": "缺少列：" + "、".join(missing)})
            rows = [_assistance_in({ASSISTANCE_COLUMNS[h]: r[i] for i, h in enumerate(header)
                                    if h in ASSISTANCE_COLUMNS and i < len(r)}, names)
                    for r in table[1:] if any(c not in (None, "") for c in r)]
        else:
            rows = [_assistance_in(values, names)]
        stored = assistance.import_rows(db, subject, alliance_id, rows)
    except AppError as exc:
        db.rollback()
        ctx = _assistance_context(request, db, subject, str(alliance_id), "", "", "")
        ctx.update(errors=errors_of(request, exc), form=values)
        return render_page(request, "cockpit/assistance.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/cockpit/assistance?alliance_id={alliance_id}&entered={len(stored)}", status_code=303)


# ------------------------------------------------------------------------------------------ encounters (就诊记录)

ENCOUNTER_COLUMNS = {"就诊号": "source_no", "类型": "kind", "就诊日期": "visit_date", "入院日期": "visit_date",
                     "出院日期": "discharge_date", "科室": "department", "身份证号": "resident_id",
                     "总费用（元）": "total_cost", "医保基金支付（元）": "insurance_paid", "中医": "tcm"}
REGISTER_COLUMNS = {"结算单号": "settlement_no", "类型": "kind", "就医机构": "hospital", "就诊日期": "visit_date",
                    "入院日期": "visit_date", "出院日期": "discharge_date", "参保地机构": "home",
                    "总费用（元）": "total_cost", "医保基金支付（元）": "insurance_paid"}
# the columns of the templates (入院日期 is read as 就诊日期: an inpatient sheet may name it so)
ENCOUNTER_TEMPLATE = tuple(c for c in ENCOUNTER_COLUMNS if c != "入院日期")
REGISTER_TEMPLATE = tuple(c for c in REGISTER_COLUMNS if c != "入院日期")
ENCOUNTER_REQUIRED = ("就诊号", "类型", "就诊日期")
REGISTER_REQUIRED = ("结算单号", "类型", "就医机构", "就诊日期")


def _sheet_rows(filename: str, content: bytes, columns: dict[str, str],
                required: tuple[str, ...]) -> list[dict[str, object]]:
    """The rows of an uploaded sheet as {field: cell}, by the Chinese column names of its first row; a date or an
    amount that cannot be read is an error of its row (the whole file refused, as every import)."""
    table = _table_of(filename, content)
    header = [str(c or "").strip() for c in table[0]]
    missing = [c for c in required if c not in header and not (c == "就诊日期" and "入院日期" in header)]
    if missing:
        raise InvalidInput(fields={"file": "缺少列：" + "、".join(missing)})
    out, errors = [], {}
    for n, cells in enumerate((r for r in table[1:] if any(c not in (None, "") for c in r)), start=1):
        row = {columns[h]: cells[i] for i, h in enumerate(header) if h in columns and i < len(cells)}
        for name in ("visit_date", "discharge_date"):
            if row.get(name) not in (None, "") and _date(row[name]) is None:
                errors[f"row{n}.{name}"] = "日期应为 YYYY-MM-DD"
        for name in ("total_cost", "insurance_paid"):
            if row.get(name) not in (None, "") and _number(row[name]) is None:
                errors[f"row{n}.{name}"] = "金额应为数字"
        out.append(row)
    if errors:
        raise InvalidInput(fields=errors)
    return out


def _text(value: object) -> str:
    return str(value if value is not None else "").strip()


def _encounter_in(cells: dict[str, object]) -> encounters.EncounterIn:
    return encounters.EncounterIn(
        source_no=_text(cells.get("source_no")), kind=_text(cells.get("kind")), visit_date=_date(cells.get("visit_date")),
        discharge_date=_date(cells.get("discharge_date")), department=_text(cells.get("department")) or None,
        resident_id=_text(cells.get("resident_id")) or None, total_cost=_number(cells.get("total_cost")),
        insurance_paid=_number(cells.get("insurance_paid")), tcm=encounters.flag(cells.get("tcm")))


def _register_in(cells: dict[str, object], names: dict[str, int]) -> encounters.OutOfCountyIn:
    home = _text(cells.get("home"))
    return encounters.OutOfCountyIn(
        settlement_no=_text(cells.get("settlement_no")), kind=_text(cells.get("kind")),
        hospital=_text(cells.get("hospital")), visit_date=_date(cells.get("visit_date")),
        discharge_date=_date(cells.get("discharge_date")),
        home_institution_id=(opt_int(home) if home.isdigit() else names.get(home, -1)) if home else None,
        total_cost=_number(cells.get("total_cost")), insurance_paid=_number(cells.get("insurance_paid")))


def _encounters_context(request: Request, db: Any, subject: Subject, alliance_id: str) -> dict[str, Any]:
    alliances, alliance = _chosen(db, subject, alliance_id)
    members = sorted({m.institution_id for m in current_memberships(db, alliance.id, clock.today_local())}) \
        if alliance else []
    names = institution_names(db, members)
    return {"alliances": alliances, "alliance": alliance, "names": names,
            "members": sorted(members, key=lambda i: names.get(i, "")),
            "summary": repository.encounter_summary(db, members),
            "register": repository.register_summary(db, alliance.id) if alliance else None,
            "importable": [i for i in members if encounters.can_import(db, subject, i)],
            "can_register": alliance is not None and encounters.can_import_register(db, subject, alliance.id),
            "kinds": encounters.KIND_LABELS, "encounter_columns": ENCOUNTER_TEMPLATE,
            "register_columns": REGISTER_TEMPLATE, "max_rows": encounters.MAX_ROWS}


@router.get("/cockpit/encounters")
def encounters_page(request: Request, db: DB, subject: CurrentSubject, alliance_id: str = "") -> Response:
    """What the members' HIS and the insurance settlement data have brought in, and the uploads."""
    return render_page(request, "cockpit/encounters.html", _encounters_context(request, db, subject, alliance_id))


@router.post("/cockpit/encounters")
async def encounters_upload(request: Request, db: DB, subject: CurrentSubject) -> Response:
    """An uploaded sheet of one member's encounters (what = encounters) or of the alliance's out-of-county register
    (what = register), all or nothing."""
    form = await request.form()
    values: dict[str, object] = {k: v for k, v in form.items() if isinstance(v, str)}
    alliance_id = opt_int(str(values.get("alliance_id") or "")) or 0
    what = "register" if values.get("what") == "register" else "encounters"
    try:
        service.require_view(db, subject, kit.get(db, Alliance, alliance_id))
        file = form.get("file")
        if file is None or isinstance(file, str) or not file.filename:
            raise InvalidInput(fields={"file": "请选择要导入的文件"})
        content = await file.read()
        if what == "register":
            names = {n: i for i, n in all_institution_names(db).items()}
            done = encounters.import_register(db, subject, alliance_id, [
                _register_in(r, names) for r in _sheet_rows(file.filename, content, REGISTER_COLUMNS, REGISTER_REQUIRED)])
        else:
            institution = opt_int(str(values.get("institution_id") or ""))
            if institution is None:
                raise InvalidInput(fields={"institution_id": "请选择机构"})
            done = encounters.import_encounters(db, subject, institution, [
                _encounter_in(r) for r in _sheet_rows(file.filename, content, ENCOUNTER_COLUMNS, ENCOUNTER_REQUIRED)])
    except AppError as exc:
        db.rollback()
        ctx = _encounters_context(request, db, subject, str(alliance_id))
        ctx.update(errors=errors_of(request, exc), form=values, what=what)
        return render_page(request, "cockpit/encounters.html", ctx, status_code=exc.status)
    return RedirectResponse(f"/cockpit/encounters?alliance_id={alliance_id}&what={what}&created={done.created}"
                            f"&updated={done.updated}&matched={done.matched}", status_code=303)


@router.get("/cockpit/encounters/template.xlsx")
def encounters_template(subject: CurrentSubject, what: str = "encounters") -> Response:
    """An empty import sheet with its columns (one row of example)."""
    wb = Workbook()
    ws = wb.active
    if what == "register":
        ws.append(list(REGISTER_TEMPLATE))
        ws.append(["YB2026000001", "住院", "福建医科大学附属协和医院", "2026-03-02", "2026-03-09", "", 18600, 11200])
    else:
        ws.append(list(ENCOUNTER_TEMPLATE))
        ws.append(["MZ20260302001", "门诊", "2026-03-02", "", "中医科", "", 86.5, 52, "是"])
    out = io.BytesIO()
    wb.save(out)
    name = "register" if what == "register" else "encounters"
    return Response(out.getvalue(), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}-template.xlsx"'})
