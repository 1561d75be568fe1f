"""Build the CJK font the cockpit's PDF report embeds: a subset of Noto Sans CJK SC (SIL OFL 1.1) as TrueType.

    python tools/cjk_font_subset.py [/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc]

reportlab embeds TrueType (glyf) outlines only, and Noto Sans CJK ships CFF outlines: the glyphs are kept for
ASCII, Latin-1, punctuation, arrows and the 6,763 hanzi of GB 2312 (plus every character of the indicator library
and the demo alliances), converted to quadratic curves (fontTools cu2qu), and the family renamed — the OFL
forbids a modified version to carry the Reserved Font Name ("Source", from Source Han Sans). The result is
committed (src/yilianti/cockpit/fonts/), so a fresh machine needs nothing more; run this again (needs fontTools
and Debian's fonts-noto-cjk) only to change the character set.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from fontTools import subset
from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTFont, newTable

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src/yilianti/cockpit/fonts/YiliantiSansSC-Regular.ttf"
FAMILY = "Yilianti Sans SC"
SC_FACE = 2  # NotoSansCJK-Regular.ttc: JP, KR, SC, TC, HK …


def gb2312() -> set[int]:
    out = set()
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            with contextlib.suppress(UnicodeDecodeError):  # the gaps of the GB 2312 table
                out.add(ord(bytes((hi, lo)).decode("gb2312")))
    return out


def wanted() -> set[int]:
    ranges = [(0x20, 0x7E), (0xA0, 0xFF), (0x2000, 0x206F), (0x2100, 0x21FF), (0x2200, 0x22FF), (0x2460, 0x24FF),
              (0x25A0, 0x25FF), (0x3000, 0x303F), (0xFF00, 0xFFEF)]
    out = {c for a, b in ranges for c in range(a, b + 1)} | gb2312()
    for text_file in ("src/yilianti/cockpit/library.yaml", "src/yilianti/demo/alliances.yaml"):
        path = ROOT / text_file
        if path.exists():
            out |= {ord(ch) for ch in path.read_text(encoding="utf-8")}
    return out


def to_truetype(font: TTFont) -> None:
    """CFF outlines → glyf (the fontTools otf2ttf recipe)."""
    order = font.getGlyphOrder()
    glyph_set = font.getGlyphSet()
    glyphs = {}
    for name in order:
        pen = TTGlyphPen(glyph_set)
        glyph_set[name].draw(Cu2QuPen(pen, max_err=1.0, reverse_direction=True))
        glyphs[name] = pen.glyph()
    font["loca"] = newTable("loca")
    glyf = font["glyf"] = newTable("glyf")
    glyf.glyphOrder = order
    glyf.glyphs = glyphs
    del font["CFF "]
    if "VORG" in font:
        del font["VORG"]
    glyf.compile(font)
    hmtx = font["hmtx"]
    for name, g in glyphs.items():
        width, _ = hmtx.metrics[name]
        hmtx.metrics[name] = (width, getattr(g, "xMin", 0))
    maxp = font["maxp"] = newTable("maxp")
    maxp.tableVersion = 0x00010000
    for attr in ("maxZones", "maxTwilightPoints", "maxStorage", "maxFunctionDefs", "maxInstructionDefs",
                 "maxStackElements", "maxSizeOfInstructions", "maxComponentElements"):
        setattr(maxp, attr, 1 if attr == "maxZones" else 0)
    post = font["post"]
    post.formatType = 2.0
    post.extraNames = []
    post.mapping = {}
    post.glyphOrder = order
    font["head"].glyphDataFormat = 0
    font.sfntVersion = "\000\001\000\000"


def rename(font: TTFont) -> None:
    name = font["name"]
    copyright_ = name.getDebugName(0) or "© 2014-2021 Adobe (http://www.adobe.com/)."
    name.names = [n for n in name.names if n.nameID in (0, 7, 8, 9, 11, 12, 13, 14)]
    for nid, value in ((0, copyright_), (1, FAMILY), (2, "Regular"), (3, f"{FAMILY} Regular; subset of Noto Sans CJK SC"),
                       (4, f"{FAMILY} Regular"), (6, FAMILY.replace(" ", "") + "-Regular")):
        name.setName(value, nid, 3, 1, 0x409)


def main(source: str) -> None:
    font = TTFont(source, fontNumber=SC_FACE)
    options = subset.Options()
    options.layout_features = []
    options.hinting = False
    options.desubroutinize = True
    options.notdef_outline = True
    options.name_IDs = ["*"]
    sub = subset.Subsetter(options)
    sub.populate(unicodes=wanted())
    sub.subset(font)
    to_truetype(font)
    rename(font)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    font.save(OUT)
    print(f"{OUT}: {OUT.stat().st_size / 1e6:.1f} MB, {len(font.getGlyphOrder())} glyphs", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
