"""The cockpit's PDF report (a month or a quarter, with its charts, in Chinese with an embedded font) and its wall
screen (full screen, large type, rotating panels, reloading itself)."""

from __future__ import annotations

import io
import re
from datetime import date

from pypdf import PdfReader

from tests import builders as b
from yilianti.cockpit import pages, report


def _text(pdf: bytes) -> str:
    return "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages)


def _fonts(pdf: bytes) -> set[str]:
    """The fonts of the pages: their names, marked "embedded:" when the font file travels in the PDF."""
    out = set()
    for p in PdfReader(io.BytesIO(pdf)).pages:
        for f in (p["/Resources"].get("/Font") or {}).values():
            f = f.get_object()
            for font in [f, *(d.get_object() for d in f.get("/DescendantFonts", []))]:
                desc = font.get("/FontDescriptor")
                embedded = desc is not None and any(k in desc.get_object() for k in ("/FontFile2", "/FontFile3"))
                out.add(("embedded:" if embedded else "") + str(font["/BaseFont"]))
    return out


def test_the_quarterly_report_holds_the_indicators_their_figures_and_charts(db, client, world) -> None:  # type: ignore[no-untyped-def]
    aid = world["alliance"].id
    csrf = b.login(client, "cockpitadmin")
    r = client.get(f"/cockpit/report.pdf?alliance_id={aid}&kind=quarter&period=2026-Q1")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    text = _text(r.content)
    compact = re.sub(r"\s+", "", text)
    # the indicators by their Chinese names, with the quarter's figures: 3 up, 1 down, 1/3 down-referral rate
    for name in ("医联体驾驶舱报告", "保定托管医联体", "2026年第1季度", "上转人次", "下转人次", "下转率（下转÷上转）",
                 "号源下沉比例", "国家紧密型县域医共体监测指标", "双向转诊曲线", "基层就诊与县域内住院"):
        assert name in compact, name
    assert re.search(r"上转人次\s*3\b", text) and re.search(r"下转人次\s*1\b", text)
    assert "33.3%" in text and "达标" in text
    # the Chinese font travels inside the file
    assert any(f.startswith("embedded:") and "YiliantiSansSC" in f for f in _fonts(r.content))
    # a month, by default the last complete one; a malformed period is a 422
    assert client.get(f"/cockpit/report.pdf?alliance_id={aid}&kind=month&period=2026-03").status_code == 200
    assert client.get(f"/cockpit/report.pdf?alliance_id={aid}").status_code == 200
    assert client.get(f"/cockpit/report.pdf?alliance_id={aid}&kind=quarter&period=2026-Q5").status_code == 422
    assert client.get(f"/cockpit/report.pdf?alliance_id={aid}&kind=month&period=2026-13").status_code == 422
    # a stranger gets no report
    client.post("/logout", data={"csrf_token": csrf})
    b.login(client, "cockpitstranger")
    assert client.get(f"/cockpit/report.pdf?alliance_id={aid}").status_code == 403


def test_report_periods() -> None:
    today = date(2026, 12, 7)
    assert pages.report_period("month", "", today) == (date(2026, 11, 1), date(2026, 11, 30), "2026年11月")
    assert pages.report_period("quarter", "", today)[:2] == (date(2026, 7, 1), date(2026, 9, 30))
    assert pages.report_period("quarter", "", date(2026, 2, 1))[:2] == (date(2025, 10, 1), date(2025, 12, 31))
    assert pages.report_period("quarter", "2026-Q1", today)[2] == "2026年第1季度"


def test_the_font_covers_the_library_and_the_demo_alliances() -> None:
    from reportlab.pdfbase.ttfonts import TTFontFile

    from yilianti.cockpit import library

    cmap = TTFontFile(str(report.FONT_FILE)).charToGlyph
    text = "".join(e["name"] + e["definition"] for e in library.entries())
    missing = {ch for ch in text if ord(ch) not in cmap and not ch.isspace()}
    assert not missing


def test_wall_screen_is_full_screen_with_rotating_panels(db, client, world) -> None:  # type: ignore[no-untyped-def]
    aid = world["alliance"].id
    b.login(client, "cockpitadmin")
    page = client.get(f"/cockpit/wall?alliance_id={aid}&start=2026-01&end=2026-03&rotate=7")
    assert page.status_code == 200
    html = page.text
    assert 'class="wall"' in html and 'data-rotate="7"' in html and 'http-equiv="refresh"' in html
    assert html.count('<section class="wall-panel') == 8  # the headline tiles, six charts (the grassroots one too), the national set
    assert 'id="panel-chart-grassroots"' in html
    assert 'id="tile-referral-up"' in html and "main-nav" not in html  # no page chrome
    assert client.get(f"/cockpit/wall?alliance_id={aid}&rotate=1").text.count('data-rotate="5"') == 1  # at least 5 s
    assert f'/cockpit/wall?alliance_id={aid}' in client.get(f"/cockpit?alliance_id={aid}").text
