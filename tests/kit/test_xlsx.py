"""The list exports' workbook (kit/listing.xlsx, written without openpyxl's cell objects) as a spreadsheet reads it:
openpyxl opens it, the header is bold, dates are dates, times are local, numbers are numbers, text comes back as
typed (markup characters, spaces at the ends, characters XML cannot carry dropped), and wide rows keep their columns."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from io import BytesIO

from openpyxl import load_workbook

from yilianti.kit import listing


def _sheet(content: bytes):  # type: ignore[no-untyped-def]
    return load_workbook(BytesIO(content)).active


def test_an_export_reads_back_as_written() -> None:
    at = datetime(2026, 3, 1, 1, 30, 15, tzinfo=UTC)  # 09:30:15 in 上海
    rows = [("王小明", 35, 2.5, date(1990, 1, 2), at, True, None, "<b>&\"甲\"</b>", "  缩进 ", "换\n行\x07"),
            ("", 0, -1, None, None, False, "", "x", "y", "z")]
    ws = _sheet(listing.xlsx("患者[一]/二", ["姓名", "年龄", "分", "出生", "时间", "是", "空", "标记", "空格", "控制"],
                             rows))
    assert ws.title == "患者_一__二"
    got = [tuple(r) for r in ws.iter_rows(values_only=True)]
    assert got[0] == ("姓名", "年龄", "分", "出生", "时间", "是", "空", "标记", "空格", "控制")
    assert ws["A1"].font.b and not ws["A2"].font.b
    assert got[1] == ("王小明", 35, 2.5, datetime(1990, 1, 2), datetime(2026, 3, 1, 9, 30, 15), True, None,
                      "<b>&\"甲\"</b>", "  缩进 ", "换\n行")
    assert ws["D2"].number_format == "yyyy-mm-dd" and ws["E2"].is_date
    assert got[2] == (None, 0, -1, None, None, False, None, "x", "y", "z")


def test_a_wide_row_keeps_its_columns_and_a_cell_hook_applies() -> None:
    ws = _sheet(listing.xlsx("宽", [f"c{i}" for i in range(30)], [list(range(30))], cell=lambda v: v * 2))
    assert ws["Z2"].value == 50 and ws["AA2"].value == 52 and ws["AD1"].value == "c29"
    assert listing._column(701) == "ZZ" and listing._column(702) == "AAA"


def test_thousands_of_rows_take_milliseconds() -> None:
    """What the grassroots doctor's patient export is: a few thousand rows of nine columns (openpyxl's cell
    objects took ~190 ms for 2 000 such rows; the test allows a loaded machine four times the ~25 ms now)."""
    row = ("王小明", "男", "35岁", date(1990, 1, 2), "110105********002X", "138****1234", "天津市河西区桃园街3号",
           "河西区桃园街社区卫生服务中心", datetime(2026, 1, 1, tzinfo=UTC))
    best = min(_timed(lambda: listing.xlsx("患者", ["姓名"] * 9, [row] * 2000)) for _ in range(3))
    assert best < 0.1, f"{best * 1000:.0f} ms"
    assert _sheet(listing.xlsx("患者", ["姓名"] * 9, [row] * 2000)).max_row == 2001


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
