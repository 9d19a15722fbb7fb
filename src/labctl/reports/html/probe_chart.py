"""The probe charts: per probe and figure (throughput, loss, round-trip time), one bar per
cell, as SVG. A cell whose probe measured nothing (iperf3 could not connect) shows why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from markupsafe import Markup, escape

from labctl.core.probes import ProbeObservation
from labctl.core.result import CellResult, MatrixResult
from labctl.reports.html.chart import OFFLOAD_COLOURS, _nice_ceiling, _tick
from labctl.reports.html.svg import fit, n, text


@dataclass(frozen=True)
class Figure:
    title: str
    unit: str
    value: Callable[[ProbeObservation], float | None]


FIGURES = (
    Figure("throughput", "Mbit/s", lambda p: p.throughput_mbps),
    Figure("loss", "%", lambda p: p.loss_percent),
    Figure("average round trip", "ms", lambda p: p.rtt_ms.avg if p.rtt_ms else None),
)

ROW = 22.0
LABEL_WIDTH = 260.0
BAR_LEFT = 270.0
BAR_RIGHT = 820.0


def _figure(value: float) -> str:
    """3454, 12.5, 0.102: as many digits as the size of the value deserves."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def probe_charts(matrix: MatrixResult) -> list[tuple[str, Markup]]:
    """(caption, svg) per probe figure that some cell measured, in the order probes ran."""
    names: dict[str, None] = {}
    for cell in matrix.cells:
        if cell.observed is None or cell.observed.http_only:
            continue
        for probe in cell.observed.probes:
            if probe.kind != "http":
                names.setdefault(probe.name)
    charts = []
    for name in names:
        for figure in FIGURES:
            rows = _rows(matrix, name)
            if any(p is not None and figure.value(p) is not None for _c, p in rows):
                caption = f"probe {name}: {figure.title} ({figure.unit})"
                charts.append((caption, _svg(matrix, caption, rows, figure)))
    return charts


def _rows(matrix: MatrixResult, name: str) -> list[tuple[CellResult, ProbeObservation | None]]:
    rows = []
    for cell in matrix.ordered_cells():
        if cell.status == "skipped":
            continue
        found = None
        if cell.observed is not None:
            found = next((p for p in cell.observed.probes if p.name == name), None)
        rows.append((cell, found))
    return rows


def _svg(
    matrix: MatrixResult,
    caption: str,
    rows: list[tuple[CellResult, ProbeObservation | None]],
    figure: Figure,
) -> Markup:
    values = [figure.value(p) for _c, p in rows if p is not None]
    top_value = _nice_ceiling(max((v for v in values if v is not None), default=0.0) * 1.05)
    if figure.unit == "%":
        top_value = 100.0
    height = 40 + ROW * len(rows) + 24
    offloads = list(matrix.offload_axis)
    out = [
        f'<svg class="chart probe-chart" viewBox="0 0 960 {n(height)}" role="img">',
        f"<title>{escape(caption)}</title>",
    ]
    axis_y = 30 + ROW * len(rows)
    for step in range(5):
        x = BAR_LEFT + (BAR_RIGHT - BAR_LEFT) * step / 4
        out.append(f'<line x1="{n(x)}" y1="24" x2="{n(x)}" y2="{n(axis_y)}" class="grid"/>')
        out.append(text(x, axis_y + 16, _tick(top_value * step / 4), "tick", "middle"))
    out.append(text(BAR_RIGHT + 10, axis_y + 16, figure.unit, "tick"))
    for index, (cell, probe) in enumerate(rows):
        y = 30 + ROW * index
        label = fit(f"{cell.switch}, {cell.offload}", LABEL_WIDTH, 12)
        out.append(text(LABEL_WIDTH, y + 15, label, "tick", "end"))
        value = figure.value(probe) if probe is not None else None
        if value is None:
            why = "did not run" if probe is None else "; ".join(probe.problems) or "no figure"
            out.append(text(BAR_LEFT + 6, y + 15, fit(f"no result: {why}", 540, 11), "no-bar"))
            continue
        colour = OFFLOAD_COLOURS[
            (offloads.index(cell.offload) if cell.offload in offloads else 0) % len(OFFLOAD_COLOURS)
        ]
        width = max(2.0, (BAR_RIGHT - BAR_LEFT) * min(value / top_value, 1.0))
        tooltip = f"{cell.switch}, offload {cell.offload}: {value:g} {figure.unit}"
        if probe is not None and not probe.ok:
            tooltip += f" (probe failed: {'; '.join(probe.problems)})"
        differs = " differs-bar" if cell.differs else ""
        out.append(
            f'<g class="bar{differs}"><title>{escape(tooltip)}</title>'
            f'<rect x="{n(BAR_LEFT)}" y="{n(y + 3)}" width="{n(width)}" height="{n(ROW - 6)}" '
            f'fill="{colour}"/></g>'
        )
        shown = f"{_figure(value)} {figure.unit}" + ("" if probe is None or probe.ok else " (FAIL)")
        out.append(text(BAR_LEFT + width + 6, y + 15, shown, "bar-label"))
    out.append("</svg>")
    return Markup("\n".join(out))
