"""The version view of a matrix over platforms: platform x switch x offload, with each
platform's kernel, Open vSwitch, DPDK and Docker, so "which versions are affected" is
one table. Appended to the Markdown and HTML reports by labctl.platform_matrix."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from labctl.core.result import MatrixResult
from labctl.reports.common import summarize_cell

VERSION_KEYS = (
    ("os", "OS"),
    ("kernel", "kernel"),
    ("ovs", "Open vSwitch"),
    ("dpdk", "DPDK"),
    ("docker", "Docker"),
)


def platform_result(
    result: MatrixResult, platform: str, with_handed_over: bool = False
) -> MatrixResult:
    """The matrix result narrowed to one platform's cells (for the per-switch grids). With
    `with_handed_over`, also the cells that platform handed to a VM (the ovs-kernel cells
    of a host without the openvswitch module): its grid then has no hole."""
    handed_to = (result.platforms.get(platform) or {}).get("ovs_kernel_vm")
    cells = [
        c
        for c in result.cells
        if c.platform == platform
        or (with_handed_over and c.platform == handed_to and c.switch == "ovs-kernel")
    ]
    switches = list(dict.fromkeys(c.switch for c in cells))
    return result.model_copy(update={"cells": cells, "switches": switches})


def rows(result: MatrixResult) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: one row per platform and switch kind, one column per offload
    setting, after the platform's versions."""
    offloads = list(result.offload_axis)
    headers = [
        "platform",
        *(label for _k, label in VERSION_KEYS),
        "switch",
        *(f"offload {o}" for o in offloads),
    ]
    table = []
    for name, block in result.platforms.items():
        versions = block.get("versions") or {}
        matrix = platform_result(result, name)
        if block.get("error") and not matrix.cells:
            failed = f"error: {block['error']}"
            table.append([name, *("-" for _ in VERSION_KEYS), "-", *(failed for _ in offloads)])
            continue
        for line in matrix.row_axis:
            row = [name, *(str(versions.get(key) or "-") for key, _l in VERSION_KEYS), line.label]
            for offload in offloads:
                cell = matrix.cell(line.switch, offload, line.ovs_config)
                row.append("" if cell is None else summarize_cell(cell, platform=False).line())
            table.append(row)
    return headers, table


def _costs(block: Mapping[str, Any]) -> str:
    parts = []
    for key, label in (
        ("boot_seconds", "boot"),
        ("imports_seconds", "labctl imported at"),
        ("setup_seconds", "dockerd up at"),
        ("first_cell_seconds", "first cell at"),
        ("matrix_seconds", "cells"),
        ("vm_seconds", "VM in all"),
    ):
        if block.get(key) is not None:
            parts.append(f"{label} {float(block[key]):.1f} s")
    if block.get("accel"):
        parts.append(f"({block['accel']})")
    return ", ".join(parts)


def markdown(result: MatrixResult) -> str:
    from labctl.reports.markdown import escape

    headers, table = rows(result)
    lines = ["## Platforms", ""]
    for note in result.platform_notes:
        lines += [f"Note: {escape(note)}", ""]
    lines += ["| " + " | ".join(escape(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(escape(v) for v in row) + " |" for row in table]
    lines.append("")
    for name, block in result.platforms.items():
        costs = _costs(block)
        if costs:
            lines.append(f"- {escape(name)}: {escape(costs)}")
        if block.get("report"):
            lines.append(f"- {escape(name)}: its own report in `{block['report']}`")
    return "\n".join(lines).rstrip() + "\n"


def html_section(result: MatrixResult) -> str:
    headers, table = rows(result)
    esc = html.escape
    parts = ['<section id="platforms"><h2>Platforms</h2>']
    for note in result.platform_notes:
        parts.append(f"<p>Note: {esc(note)}</p>")
    parts.append(
        "<table><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in headers)
        + "</tr></thead><tbody>"
    )
    for row in table:
        parts.append("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>")
    parts.append("</tbody></table><ul>")
    for name, block in result.platforms.items():
        costs = _costs(block)
        if costs:
            parts.append(f"<li>{esc(name)}: {esc(costs)}</li>")
    parts.append("</ul></section>")
    return "\n".join(parts)
