"""The probe charts: per probe and figure (throughput, loss, round-trip time), one bar per
cell that ran, as SVG. A cell whose probe measured nothing (iperf3 could not connect)
says why. This module places everything; templates/probe_chart.svg.j2 writes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from markupsafe import Markup

from labctl.core.probes import ProbeObservation
from labctl.core.result import CellResult, MatrixResult
from labctl.reports.html.chart import OFFLOAD_COLOURS, _nice_ceiling, _tick
from labctl.reports.html.svg import Text, fit, n, text
from labctl.reports.html.templating import environment

ROW = 22.0
LABEL_RIGHT = 260.0
BAR_LEFT = 270.0
BAR_RIGHT = 820.0


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


@dataclass(frozen=True)
class Tick:
    x: str
    label: Text


@dataclass(frozen=True)
class Row:
    label: Text  # the cell: switch, offload
    missing: Text | None  # instead of a bar: why there is none
    tooltip: str = ""
    y: str = ""
    width: str = ""
    height: str = ""
    colour: str = ""
    differs: bool = False
    value: Text | None = None


@dataclass(frozen=True)
class ProbeChart:
    caption: str
    height: str
    top: str
    axis_y: str
    left: str
    ticks: list[Tick]
    unit: Text
    rows: list[Row]


def probe_charts(matrix: MatrixResult) -> list[tuple[str, Markup]]:
    """(caption, svg) per probe figure that some cell measured, in the order probes ran."""
    template = environment().get_template("probe_chart.svg.j2")
    return [
        (chart.caption, Markup(template.render(c=chart).rstrip("\n"))) for chart in charts(matrix)
    ]


def charts(matrix: MatrixResult) -> list[ProbeChart]:
    names: dict[str, None] = {}
    for cell in matrix.cells:
        if cell.observed is None or cell.observed.http_only:
            continue
        for probe in cell.observed.probes:
            if probe.kind != "http":
                names.setdefault(probe.name)
    found = []
    for name in names:
        rows = _cells(matrix, name)
        for figure in FIGURES:
            if any(p is not None and figure.value(p) is not None for _c, p in rows):
                found.append(
                    _chart(matrix, f"probe {name}: {figure.title} ({figure.unit})", rows, figure)
                )
    return found


def _cells(matrix: MatrixResult, name: str) -> list[tuple[CellResult, ProbeObservation | None]]:
    rows = []
    for cell in matrix.ordered_cells():
        if cell.status == "skipped":
            continue
        found = None
        if cell.observed is not None:
            found = next((p for p in cell.observed.probes if p.name == name), None)
        rows.append((cell, found))
    return rows


def _figure(value: float) -> str:
    """3454, 12.5, 0.102: as many digits as the size of the value deserves."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def _chart(
    matrix: MatrixResult,
    caption: str,
    cells: list[tuple[CellResult, ProbeObservation | None]],
    figure: Figure,
) -> ProbeChart:
    values = [v for _c, p in cells if p is not None and (v := figure.value(p)) is not None]
    top_value = 100.0 if figure.unit == "%" else _nice_ceiling(max(values, default=0.0) * 1.05)
    axis_y = 30 + ROW * len(cells)
    ticks = []
    for step in range(5):
        x = BAR_LEFT + (BAR_RIGHT - BAR_LEFT) * step / 4
        ticks.append(
            Tick(n(x), text(x, axis_y + 16, _tick(top_value * step / 4), "tick", "middle"))
        )
    offloads = list(matrix.offload_axis)
    rows = []
    for index, (cell, probe) in enumerate(cells):
        y = 30 + ROW * index
        label = text(
            LABEL_RIGHT,
            y + 15,
            fit(f"{cell.row.label}, {cell.offload}{cell.on_platform}", LABEL_RIGHT, 12),
            "tick",
            "end",
        )
        value = figure.value(probe) if probe is not None else None
        if value is None:
            why = "did not run" if probe is None else "; ".join(probe.problems) or "no figure"
            rows.append(
                Row(label, text(BAR_LEFT + 6, y + 15, fit(f"no result: {why}", 540, 11), "no-bar"))
            )
            continue
        colour = OFFLOAD_COLOURS[
            (offloads.index(cell.offload) if cell.offload in offloads else 0) % len(OFFLOAD_COLOURS)
        ]
        width = max(2.0, (BAR_RIGHT - BAR_LEFT) * min(value / top_value, 1.0))
        failed = probe is not None and not probe.ok
        tooltip = f"{cell.title}: {value:g} {figure.unit}"
        if failed and probe is not None:
            tooltip += f" (probe failed: {'; '.join(probe.problems)})"
        shown = f"{_figure(value)} {figure.unit}" + (" (FAIL)" if failed else "")
        rows.append(
            Row(
                label,
                None,
                tooltip=tooltip,
                y=n(y + 3),
                width=n(width),
                height=n(ROW - 6),
                colour=colour,
                differs=cell.differs,
                value=text(BAR_LEFT + width + 6, y + 15, shown, "bar-label"),
            )
        )
    return ProbeChart(
        caption=caption,
        height=n(axis_y + 24),
        top="24",
        axis_y=n(axis_y),
        left=n(BAR_LEFT),
        ticks=ticks,
        unit=text(BAR_RIGHT + 10, axis_y + 16, figure.unit, "tick"),
        rows=rows,
    )
