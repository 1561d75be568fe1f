"""The cockpit's PDF report for the monthly or quarterly assessment meeting, drawn on the server with reportlab.

The figures of the period in tables (value, target, status, trend), the national monitoring set, and the curves
of the twelve months up to the period's end as charts. Chinese needs a font the reader's machine may lack, so the
report embeds one: a subset of Noto Sans CJK SC (SIL OFL 1.1) committed under cockpit/fonts/ (built by
tools/cjk_font_subset.py) — nothing is fetched at run time. reportlab embeds only the glyphs a report uses.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.linecharts import HorizontalLineChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from yilianti.cockpit.display import CHARTS, GROUPS, fmt
from yilianti.cockpit.service import Figure, chart

FONT = "YiliantiSansSC"
FONT_FILE = Path(__file__).with_name("fonts") / "YiliantiSansSC-Regular.ttf"
STATUS_COLOURS = {"green": colors.HexColor("#d9f2df"), "amber": colors.HexColor("#fcefc7"),
                  "red": colors.HexColor("#f8d7d3")}
SERIES_COLOURS = (colors.HexColor("#1f5fa8"), colors.HexColor("#c2410c"), colors.HexColor("#2f8f46"))
ARROWS = {"up": "↑", "down": "↓", "flat": "→"}


@lru_cache(maxsize=1)
def font() -> str:
    """Register the embedded CJK font once per process."""
    pdfmetrics.registerFont(TTFont(FONT, str(FONT_FILE)))
    return FONT


@dataclass
class ReportInput:
    title: str  # the alliance, member and department
    period_label: str  # 2026年11月 / 2026年第3季度
    start: date
    end: date
    figures: list[Figure]  # the period
    history: list[Figure]  # the twelve months to the period's end, for the charts
    generated_at: datetime  # local time
    locale: str = "zh"


def _styles() -> dict[str, ParagraphStyle]:
    f = font()
    return {"h1": ParagraphStyle("h1", fontName=f, fontSize=18, leading=24, spaceAfter=4),
            "h2": ParagraphStyle("h2", fontName=f, fontSize=13, leading=18, spaceBefore=10, spaceAfter=4,
                                 textColor=colors.HexColor("#243b53")),
            "body": ParagraphStyle("body", fontName=f, fontSize=9, leading=12),
            "small": ParagraphStyle("small", fontName=f, fontSize=7.5, leading=10, textColor=colors.HexColor("#52606d"))}


def _name(f: Figure, locale: str) -> str:
    return f.indicator.name if locale == "zh" else f.indicator.name_en


def _table(rows: list[list[object]], widths: Sequence[float], statuses: list[str | None]) -> Table:
    t = Table(rows, colWidths=widths, repeatRows=1)
    style = [("FONTNAME", (0, 0), (-1, -1), font()), ("FONTSIZE", (0, 0), (-1, -1), 8.5),
             ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e4ebf2")), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
             ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#bcccdc")), ("ALIGN", (1, 1), (-2, -1), "RIGHT")]
    for i, s in enumerate(statuses, start=1):
        if s in STATUS_COLOURS:
            style.append(("BACKGROUND", (3, i), (3, i), STATUS_COLOURS[s]))
    t.setStyle(TableStyle(style))
    return t


def _indicator_table(figures: list[Figure], tr: Callable[[str], str], locale: str, body: ParagraphStyle) -> Table:
    head: list[object] = [tr("指标"), tr("本期"), tr("目标"), tr("状态"), tr("趋势")]
    rows: list[list[object]] = [head]
    for f in figures:
        unit = f.indicator.unit
        target = "—" if f.target is None else {"up": "≥", "down": "≤"}.get(f.indicator.direction, "") + tr(fmt(f.target, unit))
        status = tr({"green": "达标", "amber": "接近目标", "red": "未达标"}[f.status]) if f.status else ""
        value = tr(f.note) if f.note and f.value is None else tr(fmt(f.value, unit))
        rows.append([Paragraph(_name(f, locale), body), value, target, status, ARROWS.get(f.trend or "", "")])
    return _table(rows, (70 * mm, 30 * mm, 30 * mm, 22 * mm, 14 * mm), [f.status for f in figures])


def _national_table(figures: list[Figure], tr: Callable[[str], str], locale: str, body: ParagraphStyle) -> Table:
    rows: list[list[object]] = [[tr("指标"), tr("数值"), tr("目标"), tr("统计期"), tr("来源")]]
    for f in figures:
        period = f"{f.figure.period_start} – {f.figure.period_end}" if f.figure else ("" if f.indicator.source != "computed" else tr("本期"))
        source = f.figure.source if f.figure else (tr("平台数据计算") if f.indicator.source == "computed" else tr("未录入"))
        rows.append([Paragraph(_name(f, locale), body), tr(fmt(f.value, f.indicator.unit)),
                     "—" if f.target is None else tr(fmt(f.target, f.indicator.unit)),
                     Paragraph(period, body), Paragraph(source, body)])
    t = _table(rows, (66 * mm, 22 * mm, 20 * mm, 32 * mm, 30 * mm), [None] * len(figures))
    return t


def _filled(data: list[float | None], unit: str) -> tuple[float, ...]:
    """A series without gaps (reportlab draws no line through a missing point): a count with nothing is 0, a ratio
    or a time with nothing to divide or rank keeps the month before (the first known value before that)."""
    if unit not in ("ratio", "hours", "minutes", "times"):
        return tuple(v or 0.0 for v in data)
    known = [v for v in data if v is not None]
    last = known[0] if known else 0.0
    out = []
    for v in data:
        last = v if v is not None else last
        out.append(last)
    return tuple(out)


def _chart(title: str, data: dict[str, Any], tr: Callable[[str], str]) -> Drawing:
    """A line chart of the monthly series (ratios in percent), one colour per indicator, with a legend."""
    months: list[str] = data["months"]
    series: list[dict[str, Any]] = data["series"]
    values = [v for s in series for v in s["data"] if v is not None]
    width, height = 170 * mm, (62 if months and values else 14) * mm
    d = Drawing(width, height)
    d.add(String(0, height - 10, tr(title), fontName=font(), fontSize=10))
    if not months or not values:
        d.add(String(0, height - 26, tr("本期无数据"), fontName=font(), fontSize=8, fillColor=colors.grey))
        return d
    lc = HorizontalLineChart()
    lc.x, lc.y, lc.width, lc.height = 30, 28, width - 40, height - 62
    lc.data = [_filled(s["data"], s["unit"]) for s in series]
    lc.categoryAxis.categoryNames = [m[2:] for m in months]  # 26-01: twelve labels fit
    lc.categoryAxis.labels.fontName = font()
    lc.categoryAxis.labels.fontSize = 7
    lc.valueAxis.labels.fontName = font()
    lc.valueAxis.labels.fontSize = 7
    lc.valueAxis.valueMin = 0
    if max(values) == 0:
        lc.valueAxis.valueMax = 1
    for i in range(len(series)):
        lc.lines[i].strokeColor = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        lc.lines[i].strokeWidth = 1.5
    d.add(lc)
    legend = Legend()
    legend.x, legend.y = 30, height - 20
    legend.fontName = font()
    legend.fontSize = 8
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.dx = legend.dy = 6
    legend.deltax = 150
    legend.colorNamePairs = [(SERIES_COLOURS[i % len(SERIES_COLOURS)],
                              str(s["name"]) + (" (%)" if s["unit"] == "ratio" else ""))
                             for i, s in enumerate(series)]
    d.add(legend)
    return d


def render(data: ReportInput, tr: Callable[[str], str]) -> bytes:
    """The report as PDF bytes."""
    st = _styles()
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=16 * mm, rightMargin=16 * mm, topMargin=16 * mm,
                            bottomMargin=16 * mm, title=f"{data.title} {data.period_label}", author="Yilianti",
                            subject=tr("医联体驾驶舱报告"))
    story: list[Any] = [
        Paragraph(tr("医联体驾驶舱报告"), st["h1"]),
        Paragraph(f"{data.title} · {data.period_label}（{data.start} – {data.end}）", st["body"]),
        Paragraph(tr("生成时间") + f"：{data.generated_at:%Y-%m-%d %H:%M}（{tr('北京时间')}）", st["small"]),
        Spacer(1, 4 * mm)]
    for key, label in GROUPS:
        group = [f for f in data.figures if f.indicator.group == key]
        if group:
            story.append(KeepTogether([Paragraph(tr(label), st["h2"]),
                                       _indicator_table(group, tr, data.locale, st["body"])]))
    national = [f for f in data.figures if f.indicator.group == "national"]
    if national:
        story += [Paragraph(tr("国家紧密型县域医共体监测指标（2024 版）"), st["h2"]),
                  _national_table(national, tr, data.locale, st["body"])]
    story.append(Paragraph(tr("月度曲线") + f"（{tr('截至本期的 12 个月')}）", st["h2"]))
    for _cid, title, codes in CHARTS:
        story += [_chart(title, chart(data.history, codes, data.locale), tr), Spacer(1, 3 * mm)]
    story.append(Paragraph(tr("状态：达标（绿）、接近目标（黄，差距在目标的 10% 以内）、未达标（红）；趋势为最近两个月的变化。"),
                           st["small"]))

    def footer(canvas: Any, _doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(font(), 7.5)
        canvas.drawRightString(A4[0] - 16 * mm, 9 * mm, f"{data.title} · {data.period_label} · {canvas.getPageNumber()}")
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()
