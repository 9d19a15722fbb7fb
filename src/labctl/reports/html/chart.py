"""The chart: per cell the share of HTTP requests that succeeded (bars, left axis) and the
median latency (dots, right axis), as SVG."""

from __future__ import annotations

import math

from markupsafe import Markup, escape

from labctl.core.result import CellResult, MatrixResult
from labctl.reports.common import format_ms, offload_settings
from labctl.reports.html.svg import fit, n, text

OFFLOAD_COLOURS = ("#4e79a7", "#f28e2b", "#76b7b2", "#9c755f", "#b07aa1", "#8c8c3a")


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


def chart_svg(matrix: MatrixResult) -> Markup:
    width, height = 960, 330
    left, right, top, bottom = 80.0, 880.0, 70.0, 270.0
    plot_height = bottom - top
    offloads = list(matrix.offload_axis)
    medians = [
        c.observed.latency_ms.median
        for c in matrix.cells
        if c.observed is not None and c.observed.latency_ms is not None
    ]
    latency_max = _nice_ceiling(max(medians) * 1.1) if medians else 1.0
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="chart-title">',
        '<title id="chart-title">Share of HTTP requests that succeeded and median latency, '
        "per switch kind and offload setting</title>",
    ]
    out += _chart_legend(matrix, left)
    for step in range(6):
        fraction = step / 5
        y = bottom - fraction * plot_height
        out.append(f'<line x1="{n(left)}" y1="{n(y)}" x2="{n(right)}" y2="{n(y)}" class="grid"/>')
        out.append(text(left - 8, y + 4, f"{round(fraction * 100)}%", "tick", "end"))
        out.append(text(right + 8, y + 4, _tick(fraction * latency_max), "tick"))
    out.append(f'<line x1="{n(left)}" y1="{n(top)}" x2="{n(left)}" y2="{n(bottom)}" class="axis"/>')
    out.append(
        f'<line x1="{n(right)}" y1="{n(top)}" x2="{n(right)}" y2="{n(bottom)}" class="axis"/>'
    )
    out.append(
        f'<line x1="{n(left)}" y1="{n(bottom)}" x2="{n(right)}" y2="{n(bottom)}" class="axis"/>'
    )
    middle = (top + bottom) / 2
    out.append(
        text(
            22,
            middle,
            "HTTP requests succeeded (%)",
            "axis-label",
            "middle",
            f' transform="rotate(-90 22 {n(middle)})"',
        )
    )
    out.append(
        text(
            940,
            middle,
            "median latency (ms)",
            "axis-label",
            "middle",
            f' transform="rotate(90 940 {n(middle)})"',
        )
    )
    groups = max(1, len(matrix.switch_axis))
    group_width = (right - left) / groups
    gap = 10.0
    bar_width = min(56.0, (group_width * 0.75 - gap * (len(offloads) - 1)) / max(1, len(offloads)))
    dots: list[str] = []  # drawn after every bar, so no bar hides a latency label
    for group, switch in enumerate(matrix.switch_axis):
        centre = left + group_width * (group + 0.5)
        out.append(text(centre, bottom + 42, fit(switch, group_width - 8, 13), "group", "middle"))
        for index, offload in enumerate(offloads):
            x = centre + (index - (len(offloads) - 1) / 2) * (bar_width + gap) - bar_width / 2
            colour = OFFLOAD_COLOURS[index % len(OFFLOAD_COLOURS)]
            label = fit(offload, bar_width + gap, 11)
            out.append(text(x + bar_width / 2, bottom + 18, label, "tick", "middle"))
            cell = matrix.cell(switch, offload)
            out += _bar(cell, x, bar_width, colour, top, bottom)
            dots += _latency_dot(cell, x + bar_width / 2, top, bottom, latency_max)
    out += dots
    out.append("</svg>")
    return Markup("\n".join(out))


def _chart_legend(matrix: MatrixResult, left: float) -> list[str]:
    out = []
    x = left
    for index, (name, settings) in enumerate(matrix.offload_axis.items()):
        colour = OFFLOAD_COLOURS[index % len(OFFLOAD_COLOURS)]
        described = offload_settings(settings)
        label = f"offload {name}" + (f" ({described})" if described else "")
        out.append(f'<rect x="{n(x)}" y="20" width="14" height="14" fill="{colour}"/>')
        out.append(text(x + 20, 32, label, "legend"))
        x += 28 + len(label) * 7.2
    out.append(f'<circle cx="{n(x + 7)}" cy="27" r="5" class="dot"/>')
    out.append(text(x + 18, 32, "median latency", "legend"))
    x += 140
    out.append(f'<rect x="{n(x)}" y="20" width="14" height="14" class="differs-box"/>')
    out.append(text(x + 20, 32, "differs from the expectation", "legend"))
    return out


def _bar(
    cell: CellResult | None,
    x: float,
    width: float,
    colour: str,
    top: float,
    bottom: float,
) -> list[str]:
    centre = x + width / 2
    if cell is None or cell.observed is None or cell.observed.success_rate is None:
        word = "not run" if cell is None else cell.status if cell.status != "passed" else "no data"
        cls = "no-bar error" if cell is not None and cell.status == "error" else "no-bar"
        return [
            text(
                centre + 4,
                bottom - 8,
                word,
                cls,
                "start",
                f' transform="rotate(-90 {n(centre + 4)} {n(bottom - 8)})"',
            )
        ]
    observed = cell.observed
    rate = observed.success_rate or 0.0
    height = rate * (bottom - top)
    y = bottom - height
    tooltip = f"{cell.title}: {observed.succeeded} of {observed.requests} requests succeeded"
    if observed.latency_ms is not None:
        tooltip += f", median {format_ms(observed.latency_ms.median)}"
    differs = " differs-bar" if cell.differs else ""
    out = [
        f'<g class="bar{differs}"><title>{escape(tooltip)}</title>',
        f'<rect x="{n(x)}" y="{n(y)}" width="{n(width)}" height="{n(max(height, 2))}" '
        f'fill="{colour}"/>',
    ]
    if cell.differs:
        out.append(
            f'<rect x="{n(x - 3)}" y="{n(y - 3)}" width="{n(width + 6)}" '
            f'height="{n(max(height, 2) + 6)}" class="differs-box"/>'
        )
    label_class = "bar-label" if rate > 0 else "bar-label zero"
    out.append(text(centre, y - 8, f"{round(rate * 100)}%", label_class, "middle"))
    out.append("</g>")
    return out


def _latency_dot(
    cell: CellResult | None, centre: float, top: float, bottom: float, latency_max: float
) -> list[str]:
    if cell is None or cell.observed is None or cell.observed.latency_ms is None:
        return []
    median = cell.observed.latency_ms.median
    y = bottom - min(median / latency_max, 1.0) * (bottom - top)
    return [
        f'<g class="latency"><title>{escape(f"{cell.title}: median latency {format_ms(median)}")}'
        f'</title><circle cx="{n(centre)}" cy="{n(y)}" r="5" class="dot"/>'
        f"{text(centre + 9, y + 4, format_ms(median), 'dot-label')}</g>"
    ]
