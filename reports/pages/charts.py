"""Server-side SVG charts: plain data for templates, so pages draw offline with no JS library.

Coordinates are computed here (in Python) and the templates only write them into `<svg>`
elements, so a chart is a few hundred bytes of markup and needs nothing from the network.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")


# Series drawn on top of each other stay visible when they coincide: each later one is drawn
# thinner and dashed, so the wider line under it shows its colour around and between the dashes.
DASHES = ("", "10 4", "4 4", "2 3", "12 3 2 3", "6 2")


@dataclass
class Line:
    name: str
    color: str
    path: str
    points: int
    last_label: str = ""
    width: float = 1.8
    dash: str = ""


@dataclass
class Tick:
    pos: float
    label: str


@dataclass
class LineChart:
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    lines: list[Line] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.lines

    @property
    def bottom(self) -> int:
        return self.top + self.plot_height

    @property
    def right(self) -> int:
        return self.left + self.plot_width


def format_value(value: float) -> str:
    """A short axis label: 4 significant digits, thousands separators for big numbers."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def line_chart(
    series: list[tuple[str, list[tuple[datetime, float | None]]]],
    *,
    width: int = 1200,
    height: int = 300,
    x_ticks: int = 5,
    y_ticks: int = 4,
) -> LineChart:
    """Lay out time series as SVG paths: `series` is [(name, [(time, value or None), ...])].

    Points with a missing or non-finite value break the line (a gap, not a drop to zero).
    Series without a single finite point are left out; no series at all gives an empty chart.
    """
    left, top, right_pad, bottom_pad = 64, 12, 24, 28
    chart = LineChart(width, height, left, top, width - left - right_pad, height - top - bottom_pad)
    usable = [(name, [(t, v) for t, v in points if _finite(v)], points) for name, points in series]
    usable = [(name, finite, points) for name, finite, points in usable if finite]
    if not usable:
        return chart
    times = [t for _, finite, _ in usable for t, _ in finite]
    values = [v for _, finite, _ in usable for _, v in finite]
    t_min, t_max = min(times), max(times)
    v_min, v_max = min(values), max(values)
    if v_min == v_max:  # a flat line sits in the middle of the plot
        pad = abs(v_min) * 0.01 or 1.0
        v_min, v_max = v_min - pad, v_max + pad
    span = (t_max - t_min).total_seconds() or 1.0

    def x_of(t: datetime) -> float:
        return left + (t - t_min).total_seconds() / span * chart.plot_width

    def y_of(v: float) -> float:
        return top + (v_max - v) / (v_max - v_min) * chart.plot_height

    count = len(usable)
    for index, (name, finite, points) in enumerate(usable):
        commands, pen_down = [], False
        for t, v in points:
            if not _finite(v):
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{x_of(t):.1f},{y_of(v):.1f}")
            pen_down = True
        chart.lines.append(
            Line(
                name=name,
                color=PALETTE[index % len(PALETTE)],
                path=" ".join(commands),
                points=len(finite),
                last_label=format_value(finite[-1][1]),
                width=round(1.8 + 1.6 * (count - 1 - index), 1),  # the first is drawn widest, underneath
                dash=DASHES[index % len(DASHES)],
            )
        )
    for i in range(y_ticks + 1):
        v = v_min + (v_max - v_min) * i / y_ticks
        chart.y_ticks.append(Tick(pos=round(y_of(v), 1), label=format_value(v)))
    chart.x_ticks = time_ticks(t_min, t_max, count=x_ticks, x_of=x_of)
    return chart


def time_ticks(t_min: datetime, t_max: datetime, *, count: int, x_of) -> list[Tick]:
    """Up to `count + 1` x-axis ticks whose labels are all different: seconds are shown when the
    span is short, the date when it crosses days, and a tick whose label repeats is dropped."""
    span = (t_max - t_min).total_seconds()
    if t_min.date() != t_max.date():
        fmt = "%m-%d %H:%M"
    elif span < count * 60:
        fmt = "%H:%M:%S"
    else:
        fmt = "%H:%M"
    ticks, seen = [], set()
    for i in range(count + 1 if span else 1):
        t = t_min + (t_max - t_min) * i / count
        label = t.strftime(fmt)
        if label not in seen:
            seen.add(label)
            ticks.append(Tick(pos=round(x_of(t), 1), label=label))
    return ticks


def sparkline(values: list[float | None], *, width: int = 120, height: int = 28) -> str:
    """SVG polyline points for a small trend of `values` (oldest first); '' with fewer than 2 points."""
    finite = [v for v in values if _finite(v)]
    if len(finite) < 2:
        return ""
    v_min, v_max = min(finite), max(finite)
    spread = (v_max - v_min) or 1.0
    step = (width - 2) / (len(finite) - 1)
    return " ".join(f"{1 + i * step:.1f},{1 + (v_max - v) / spread * (height - 2):.1f}" for i, v in enumerate(finite))
