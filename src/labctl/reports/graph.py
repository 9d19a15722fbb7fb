"""`labctl graph`: the topology drawing of the HTML report, on its own.

SVG is the report's own drawing (reports.html.topology_drawing) made standalone
with the report's drawing styles; Mermaid (for Markdown docs and issues) and
Graphviz DOT render the same layout data: nodes with role, interfaces and
addresses, the switch and its kind, veth links, and the taps numbered as in the
report. Pure: input is the Topology model (a file's, or a running lab's).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from labctl.core.model import Topology
from labctl.core.validate import parse_endpoint
from labctl.reports.html.page import css
from labctl.reports.html.topology import (
    Drawing,
    TapMark,
    has_switch,
    layout,
    switch_kinds,
    topology_drawing,
)

FORMATS = ("mermaid", "dot", "svg")
SVG_NS = "http://www.w3.org/2000/svg"


def render(topology: Topology, fmt: str) -> str:
    renderers: dict[str, Callable[[Topology], str]] = {
        "mermaid": mermaid,
        "dot": dot,
        "svg": svg,
    }
    return renderers[fmt](topology)


def svg(topology: Topology) -> str:
    """The report's drawing as a standalone SVG file."""
    markup, _marks = topology_drawing(topology)
    drawing = str(markup)  # plain text from here: Markup.replace would escape the namespace
    style = f"<style>\n{_svg_css()}\n</style>"
    drawing = drawing.replace("<svg ", f'<svg xmlns="{SVG_NS}" ', 1)
    head, _, rest = drawing.partition("\n")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{head}\n{style}\n{rest}\n'


def _svg_css() -> str:
    """The report's rules for its drawings (and its colour variables)."""
    rules = [rule.strip() + " }" for rule in css().split("}") if rule.strip()]
    return "\n".join(r for r in rules if r.startswith((":root", "svg")))


def _nodes_and_taps(
    topology: Topology,
) -> tuple[Drawing, list[str], list[tuple[TapMark, str | None]]]:
    """The layout, the switch's kinds, and each tap with the node it sits on (None: on
    the switch)."""
    drawing = layout(topology)
    _svg, marks = topology_drawing(topology)
    placed: list[tuple[TapMark, str | None]] = []
    for mark, tap in zip(marks, topology.taps, strict=True):
        where = tap.node or tap.host
        end = parse_endpoint(where) if where else None
        node = end.node if end is not None else None
        placed.append((mark, node if node in drawing.nodes else None))
    return drawing, switch_kinds(topology), placed


def _node_lines(drawing: Drawing, name: str) -> list[str]:
    box = drawing.nodes[name]
    lines = [name] + ([box.role] if box.role else [])
    lines += [f"{ifname} {addresses}".strip() for ifname, addresses in box.interfaces]
    return lines


def _id(name: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def mermaid(topology: Topology) -> str:
    drawing, kinds, taps = _nodes_and_taps(topology)

    def text(value: str) -> str:
        return value.replace('"', "#quot;")

    name = topology.name
    out = ["flowchart LR", f"  %% topology {text(name)}: nodes, switch, links and taps"]
    for node in drawing.nodes:
        out.append(f'  {_id(node)}["{"<br/>".join(text(x) for x in _node_lines(drawing, node))}"]')
    if has_switch(topology, drawing):
        out.append(f'  switch{{{{"{"<br/>".join(["switch", *kinds])}"}}}}')
    for node, ifname, port in drawing.switch_links:
        out.append(f'  {_id(node)} ---|"{text(ifname)} - {text(port)}"| switch')
    for a, if_a, b, if_b in drawing.node_links:
        out.append(f'  {_id(a)} ---|"{text(if_a)} - {text(if_b)}"| {_id(b)}')
    for mark, on_node in taps:
        target = _id(on_node) if on_node else "switch"
        out.append(f'  tap{mark.number}(("{mark.number}")):::tap')
        out.append(f'  tap{mark.number} -.-|"{text(mark.name)}: {text(mark.where)}"| {target}')
    if taps:
        out.append("  classDef tap fill:#d93025,color:#fff,stroke:#fff")
    return "\n".join(out) + "\n"


def dot(topology: Topology) -> str:
    drawing, kinds, taps = _nodes_and_taps(topology)

    def q(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def label(lines: Sequence[str]) -> str:
        return q("\n".join(lines)).replace("\n", "\\n")

    name = topology.name
    out = [
        f"graph {q(name or 'topology')} {{",
        "  graph [rankdir=LR];",
        '  node [shape=box, style="rounded,filled", fillcolor="#e8f0fe", color="#4e79a7"];',
    ]
    for node in drawing.nodes:
        out.append(f"  {q(node)} [label={label(_node_lines(drawing, node))}];")
    if has_switch(topology, drawing):
        out.append(
            f'  "switch" [shape=hexagon, fillcolor="#fef7e0", color="#b06000", '
            f"label={label(['switch', *kinds])}];"
        )
    for node, ifname, port in drawing.switch_links:
        out.append(f'  {q(node)} -- "switch" [taillabel={q(ifname)}, headlabel={q(port)}];')
    for a, if_a, b, if_b in drawing.node_links:
        out.append(f"  {q(a)} -- {q(b)} [taillabel={q(if_a)}, headlabel={q(if_b)}];")
    for mark, on_node in taps:
        tap = q(f"tap {mark.number}")
        out.append(
            f'  {tap} [shape=circle, fillcolor="#d93025", color="#ffffff", fontcolor="#ffffff", '
            f"label={q(str(mark.number))}, tooltip={q(f'{mark.name}: {mark.where}')}];"
        )
        target = q(on_node) if on_node else '"switch"'
        out.append(f"  {tap} -- {target} [style=dashed, label={q(mark.name)}];")
    out.append("}")
    return "\n".join(out) + "\n"
