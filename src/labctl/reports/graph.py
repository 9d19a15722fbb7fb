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
    kinds_per_switch,
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
) -> tuple[Drawing, dict[str, list[str]], list[tuple[TapMark, str]]]:
    """The layout, each switch's kinds, and each tap with the id of the node or switch it
    sits on."""
    drawing = layout(topology)
    _svg, marks = topology_drawing(topology)
    placed: list[tuple[TapMark, str]] = []
    for mark, tap in zip(marks, topology.taps, strict=True):
        where = tap.node or tap.host
        end = parse_endpoint(where, topology.switch_names()) if where else None
        node = end.node if end is not None else None
        if node in drawing.nodes:
            placed.append((mark, _id(node or "")))
        else:
            switch = drawing.port_switch.get(tap.switch_port or "", "switch")
            placed.append((mark, _switch_id(switch)))
    kinds = (
        kinds_per_switch(topology)
        if topology.switches is not None
        else {"switch": switch_kinds(topology)}
    )
    return drawing, kinds, placed


def _switch_id(switch: str) -> str:
    # The single switch keeps the id it always had.
    return "switch" if switch == "switch" else "s_" + re.sub(r"[^A-Za-z0-9_]", "_", switch)


def _switch_label(switch: str, kinds: dict[str, list[str]]) -> list[str]:
    return [switch, *kinds.get(switch, [])]


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
        for switch in drawing.switches:
            label = "<br/>".join(text(x) for x in _switch_label(switch, kinds))
            out.append(f'  {_switch_id(switch)}{{{{"{label}"}}}}')
    for node, ifname, port in drawing.switch_links:
        target = _switch_id(drawing.port_switch[port])
        out.append(f'  {_id(node)} ---|"{text(ifname)} - {text(port)}"| {target}')
    for sw_a, port_a, sw_b, port_b in drawing.switch_pairs:
        out.append(
            f'  {_switch_id(sw_a)} ---|"{text(port_a)} - {text(port_b)}"| {_switch_id(sw_b)}'
        )
    for a, if_a, b, if_b in drawing.node_links:
        out.append(f'  {_id(a)} ---|"{text(if_a)} - {text(if_b)}"| {_id(b)}')
    for mark, target in taps:
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
    ids = {_id(node): node for node in drawing.nodes}
    for node in drawing.nodes:
        out.append(f"  {q(node)} [label={label(_node_lines(drawing, node))}];")
    if has_switch(topology, drawing):
        for switch in drawing.switches:
            ids[_switch_id(switch)] = _switch_id(switch)
            out.append(
                f'  {q(_switch_id(switch))} [shape=hexagon, fillcolor="#fef7e0", '
                f'color="#b06000", label={label(_switch_label(switch, kinds))}];'
            )
    for node, ifname, port in drawing.switch_links:
        target = q(_switch_id(drawing.port_switch[port]))
        out.append(f"  {q(node)} -- {target} [taillabel={q(ifname)}, headlabel={q(port)}];")
    for sw_a, port_a, sw_b, port_b in drawing.switch_pairs:
        out.append(
            f"  {q(_switch_id(sw_a))} -- {q(_switch_id(sw_b))} "
            f"[taillabel={q(port_a)}, headlabel={q(port_b)}];"
        )
    for a, if_a, b, if_b in drawing.node_links:
        out.append(f"  {q(a)} -- {q(b)} [taillabel={q(if_a)}, headlabel={q(if_b)}];")
    for mark, on_node in taps:
        tap = q(f"tap {mark.number}")
        out.append(
            f'  {tap} [shape=circle, fillcolor="#d93025", color="#ffffff", fontcolor="#ffffff", '
            f"label={q(str(mark.number))}, tooltip={q(f'{mark.name}: {mark.where}')}];"
        )
        target = q(ids.get(on_node, on_node))
        out.append(f"  {tap} -- {target} [style=dashed, label={q(mark.name)}];")
    out.append("}")
    return "\n".join(out) + "\n"
