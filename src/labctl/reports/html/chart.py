"""The chart: per cell the share of HTTP requests that succeeded (bars, left axis) and the
median latency (dots, right axis), as SVG. This module places everything;
templates/chart.svg.j2 writes it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup

from labctl.core.result import CellResult, MatrixResult
from labctl.reports.common import format_ms, offload_settings
from labctl.reports.html.svg import Text, fit, n, text
from labctl.reports.html.templating import environment

OFFLOAD_COLOURS = ("#4e79a7", "#f28e2b", "#76b7b2", "#9c755f", "#b07aa1", "#8c8c3a")
WIDTH, HEIGHT = 960, 330
LEFT, RIGHT, TOP, BOTTOM = 80.0, 880.0, 70.0, 270.0


@dataclass(frozen=True)
class LegendEntry:
    x: str
    colour: str
    label: Text


@dataclass(frozen=True)
class GridLine:
    y: str
    share: Text  # left axis
    latency: Text  # right axis


@dataclass(frozen=True)
class Bar:
    label: Text  # the offload setting, under the bar
    missing: Text | None  # instead of a bar: why there is none
    differs: bool = False
    tooltip: str = ""
    x: str = ""
    y: str = ""
    width: str = ""
    height: str = ""
    colour: str = ""
    frame_x: str = ""  # the box around a bar whose cell differs
    frame_y: str = ""
    frame_width: str = ""
    frame_height: str = ""
    value: Text | None = None  # the share, above the bar


@dataclass(frozen=True)
class Group:
    label: Text  # the switch kind
    bars: list[Bar]


@dataclass(frozen=True)
class Dot:
    tooltip: str
    x: str
    y: str
    label: Text


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: str
    right: str
    top: str
    bottom: str
    legend: list[LegendEntry]
    dot_x: str
    dot_label: Text
    differs_x: str
    differs_label: Text
    grid: list[GridLine]
    share_axis: Text
    latency_axis: Text
    groups: list[Group]
    dots: list[Dot]  # drawn after every bar, so no bar hides a latency label


def chart_svg(matrix: MatrixResult) -> Markup:
    rendered = environment().get_template("chart.svg.j2").render(c=chart(matrix))
    return Markup(rendered.rstrip("\n"))


def chart(matrix: MatrixResult) -> Chart:
    plot_height = BOTTOM - TOP
    offloads = list(matrix.offload_axis)
    medians = [
        c.observed.latency_ms.median
        for c in matrix.cells
        if c.observed is not None and c.observed.latency_ms is not None
    ]
    latency_max = _nice_ceiling(max(medians) * 1.1) if medians else 1.0
    grid = []
    for step in range(6):
        fraction = step / 5
        y = BOTTOM - fraction * plot_height
        grid.append(
            GridLine(
                n(y),
                text(LEFT - 8, y + 4, f"{round(fraction * 100)}%", "tick", "end"),
                text(RIGHT + 8, y + 4, _tick(fraction * latency_max), "tick"),
            )
        )
    groups_count = max(1, len(matrix.row_axis))
    group_width = (RIGHT - LEFT) / groups_count
    gap = 10.0
    bar_width = min(56.0, (group_width * 0.75 - gap * (len(offloads) - 1)) / max(1, len(offloads)))
    groups, dots = [], []
    for index_group, row in enumerate(matrix.row_axis):
        centre = LEFT + group_width * (index_group + 0.5)
        bars = []
        for index, offload in enumerate(offloads):
            x = centre + (index - (len(offloads) - 1) / 2) * (bar_width + gap) - bar_width / 2
            colour = OFFLOAD_COLOURS[index % len(OFFLOAD_COLOURS)]
            label = text(
                x + bar_width / 2, BOTTOM + 18, fit(offload, bar_width + gap, 11), "tick", "middle"
            )
            cell = matrix.cell(row.switch, offload, row.ovs_config)
            bars.append(_bar(cell, label, x, bar_width, colour))
            dot = _latency_dot(cell, x + bar_width / 2, latency_max)
            if dot is not None:
                dots.append(dot)
        label = text(centre, BOTTOM + 42, fit(row.label, group_width - 8, 13), "group", "middle")
        groups.append(Group(label, bars))
    legend, after_legend = _legend(matrix)
    middle = (TOP + BOTTOM) / 2
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=n(LEFT),
        right=n(RIGHT),
        top=n(TOP),
        bottom=n(BOTTOM),
        legend=legend,
        dot_x=n(after_legend + 7),
        dot_label=text(after_legend + 18, 32, "median latency", "legend"),
        differs_x=n(after_legend + 140),
        differs_label=text(after_legend + 160, 32, "differs from the expectation", "legend"),
        grid=grid,
        share_axis=text(22, middle, "HTTP requests succeeded (%)", "axis-label", "middle", -90),
        latency_axis=text(940, middle, "median latency (ms)", "axis-label", "middle", 90),
        groups=groups,
        dots=dots,
    )


def _legend(matrix: MatrixResult) -> tuple[list[LegendEntry], float]:
    """The offload settings' colours, and where the legend goes on after them."""
    entries = []
    x = LEFT
    for index, (name, settings) in enumerate(matrix.offload_axis.items()):
        colour = OFFLOAD_COLOURS[index % len(OFFLOAD_COLOURS)]
        described = offload_settings(settings)
        label = f"offload {name}" + (f" ({described})" if described else "")
        entries.append(LegendEntry(n(x), colour, text(x + 20, 32, label, "legend")))
        x += 28 + len(label) * 7.2
    return entries, x


def _bar(cell: CellResult | None, label: Text, x: float, width: float, colour: str) -> Bar:
    centre = x + width / 2
    if cell is None or cell.observed is None or cell.observed.success_rate is None:
        word = "not run" if cell is None else cell.status if cell.status != "passed" else "no data"
        cls = "no-bar error" if cell is not None and cell.status == "error" else "no-bar"
        return Bar(label, text(centre + 4, BOTTOM - 8, word, cls, "start", -90))
    observed = cell.observed
    rate = observed.success_rate or 0.0
    height = rate * (BOTTOM - TOP)
    y = BOTTOM - height
    tooltip = f"{cell.title}: {observed.succeeded} of {observed.requests} requests succeeded"
    if observed.latency_ms is not None:
        tooltip += f", median {format_ms(observed.latency_ms.median)}"
    return Bar(
        label,
        None,
        differs=cell.differs,
        tooltip=tooltip,
        x=n(x),
        y=n(y),
        width=n(width),
        height=n(max(height, 2)),
        colour=colour,
        frame_x=n(x - 3),
        frame_y=n(y - 3),
        frame_width=n(width + 6),
        frame_height=n(max(height, 2) + 6),
        value=text(
            centre,
            y - 8,
            f"{round(rate * 100)}%",
            "bar-label" if rate > 0 else "bar-label zero",
            "middle",
        ),
    )


def _latency_dot(cell: CellResult | None, centre: float, latency_max: float) -> Dot | None:
    if cell is None or cell.observed is None or cell.observed.latency_ms is None:
        return None
    median = cell.observed.latency_ms.median
    y = BOTTOM - min(median / latency_max, 1.0) * (BOTTOM - TOP)
    return Dot(
        f"{cell.title}: median latency {format_ms(median)}",
        n(centre),
        n(y),
        text(centre + 9, y + 4, format_ms(median), "dot-label"),
    )


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above `value` (an axis maximum)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for mantissa in (1.0, 2.0, 5.0, 10.0):
        candidate = mantissa * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)


def _tick(value: float) -> str:
    return f"{value:.6g}"
