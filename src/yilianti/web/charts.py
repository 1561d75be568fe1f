"""Small charts drawn on the server as SVG (no script, no CDN): a value over time with its reference band."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from yilianti.kit import clock

_RANGE = re.compile(r"^\s*([0-9.]+)\s*[-~–]\s*([0-9.]+)\s*$")


def reference_band(text: str | None) -> tuple[float, float] | None:
    """"3.1-6.8" → (3.1, 6.8); anything else (<5, 阴性) → None."""
    m = _RANGE.match(text or "")
    if not m:
        return None
    try:
        low, high = float(m.group(1)), float(m.group(2))
    except ValueError:
        return None
    return (low, high) if low < high else None


@dataclass
class Dot:
    x: float
    y: float
    label: str
    abnormal: bool


@dataclass
class LineChart:
    width: int
    height: int
    line: str = ""  # polyline points
    dots: list[Dot] = field(default_factory=list)
    band: tuple[float, float] | None = None  # (y top, height) of the reference band
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    left: int = 48
    bottom: int = 24


def line_chart(points: list[tuple[datetime, float, bool]], band: tuple[float, float] | None,
               width: int = 720, height: int = 240) -> LineChart | None:
    """Geometry of a time-value chart: points (time, value, abnormal), oldest first; None without points."""
    if not points:
        return None
    chart = LineChart(width, height)
    left, right, top, bottom = chart.left, 12, 12, chart.bottom
    values = [v for _t, v, _a in points] + (list(band) if band else [])
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    span = (t1 - t0) or 1.0

    def x(t: datetime) -> float:
        return left + (width - left - right) * ((t.timestamp() - t0) / span if t1 > t0 else 0.5)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - lo) / (hi - lo))

    chart.dots = [Dot(round(x(t), 1), round(y(v), 1), f"{clock.to_local(t):%Y-%m-%d} {v:g}", a) for t, v, a in points]
    chart.line = " ".join(f"{d.x},{d.y}" for d in chart.dots)
    if band:
        chart.band = (round(y(band[1]), 1), round(y(band[0]) - y(band[1]), 1))
    chart.y_ticks = [(round(y(v), 1), f"{v:.4g}") for v in (lo + (hi - lo) * i / 4 for i in range(5))]
    stamps = [points[0][0]] if len(points) == 1 else [points[0][0], points[len(points) // 2][0], points[-1][0]]
    chart.x_ticks = [(round(x(t), 1), f"{clock.to_local(t):%Y-%m-%d}") for t in stamps]
    return chart
