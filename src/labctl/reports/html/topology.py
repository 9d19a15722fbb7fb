"""The topology drawing: nodes with their interfaces and addresses, the switch and its
kinds, the veth links and the numbered taps, as SVG. Shared by the matrix report and
`labctl graph`; it reads the Topology model. This module places every shape;
templates/topology.svg.j2 writes them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from markupsafe import Markup

from labctl.core.model import Interface, Node, Topology
from labctl.core.validate import parse_endpoint
from labctl.reports.html.svg import Text, fit, n, text
from labctl.reports.html.templating import environment

NODE_WIDTH = 230.0
LEFT_X = 20.0
RIGHT_X = 710.0
SWITCH_X = 390.0
SWITCH_WIDTH = 180.0
ROW = 20.0


@dataclass
class NodeBox:
    name: str
    x: float
    y: float
    interfaces: list[tuple[str, str]]  # (ifname, addresses)
    role: str
    side: str  # "left" | "right"

    @property
    def height(self) -> float:
        return 48 + ROW * max(1, len(self.interfaces)) + (14 if self.role else 0)

    def row_y(self, ifname: str) -> float:
        names = [name for name, _ in self.interfaces]
        index = names.index(ifname) if ifname in names else 0
        return self.y + 44 + (14 if self.role else 0) + ROW * index

    @property
    def inner_edge(self) -> float:
        """The x of the side that faces the switch."""
        return self.x + NODE_WIDTH if self.side == "left" else self.x


@dataclass
class Drawing:
    nodes: dict[str, NodeBox] = field(default_factory=dict)
    # (node, ifname, switch port)
    switch_links: list[tuple[str, str, str]] = field(default_factory=list)
    # (node a, if a, node b, if b)
    node_links: list[tuple[str, str, str, str]] = field(default_factory=list)
    # switch port -> its switch ("switch" for the single `switch:`)
    port_switch: dict[str, str] = field(default_factory=dict)
    # (switch a, port a, switch b, port b): links between two switches
    switch_pairs: list[tuple[str, str, str, str]] = field(default_factory=list)
    # switch -> (top, bottom) of the band its nodes take, top to bottom in switch order
    bands: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def switches(self) -> list[str]:
        return list(self.bands)


def _addresses(interface: Interface) -> str:
    return " ".join(v for v in (interface.ipv4, interface.ipv6) if v)


def layout(topology: Topology) -> Drawing:
    """Nodes left and right of the switches; with several switches, each switch's nodes in
    a band of their own, the switches one below the other in the middle."""
    drawing = Drawing()
    nodes = topology.nodes
    switch_names = topology.switch_names() or {"switch"}
    for link in topology.links:
        a, b = parse_endpoint(link.a, switch_names), parse_endpoint(link.b, switch_names)
        if a is None or b is None:
            continue
        if a.is_switch and b.is_switch:
            drawing.switch_pairs.append((a.node, a.name, b.node, b.name))
            drawing.port_switch.update({a.name: a.node, b.name: b.node})
        elif a.node not in nodes:
            continue
        elif b.is_switch:
            drawing.switch_links.append((a.node, a.name, b.name))
            drawing.port_switch[b.name] = b.node
        elif b.node in nodes:
            drawing.node_links.append((a.node, a.name, b.node, b.name))
    traffic = topology.traffic
    roles: dict[str, str] = {}
    if traffic is not None:
        roles[traffic.client] = "HTTP client"
        roles[traffic.server] = f"HTTP server :{traffic.port}"
    switches = list(topology.all_switches()) or (["switch"] if drawing.switch_links else [])
    groups: dict[str, list[str]] = {name: [] for name in switches}
    placed: set[str] = set()
    for node, _, port in drawing.switch_links:
        if node not in placed:
            groups.setdefault(drawing.port_switch[port], []).append(node)
            placed.add(node)
    top = 20.0
    for switch, members in groups.items():
        sides = {name: "left" if i % 2 == 0 else "right" for i, name in enumerate(members)}
        next_y = {"left": top, "right": top}
        for name in members:
            next_y[sides[name]] += _place(drawing, nodes, name, sides[name], next_y, roles)
        bottom = max(next_y.values(), default=top)
        drawing.bands[switch] = (top, max(bottom, top + 90))
        top = max(bottom, top + 90) + 40
    next_y = {"left": top, "right": top}
    sides_taken = {"left": 0, "right": 0}
    for box in drawing.nodes.values():
        sides_taken[box.side] += 1
    if len(groups) <= 1:
        # One switch (or none): the other nodes continue below their side, as always.
        next_y = {"left": 20.0, "right": 20.0}
        for box in drawing.nodes.values():
            next_y[box.side] = max(next_y[box.side], box.y + box.height + 36)
    for name in nodes:
        if name not in drawing.nodes:
            side = "left" if sides_taken["left"] <= sides_taken["right"] else "right"
            sides_taken[side] += 1
            next_y[side] += _place(drawing, nodes, name, side, next_y, roles)
    return drawing


def _place(
    drawing: Drawing,
    nodes: Mapping[str, Node],
    name: str,
    side: str,
    next_y: Mapping[str, float],
    roles: Mapping[str, str],
) -> float:
    """Put node `name` at the next free place of its side; how far that side moves down."""
    interfaces = [(ifname, _addresses(i)) for ifname, i in nodes[name].interfaces.items()]
    box = NodeBox(
        name,
        LEFT_X if side == "left" else RIGHT_X,
        next_y[side],
        interfaces,
        roles.get(name, ""),
        side,
    )
    drawing.nodes[name] = box
    return box.height + 36


@dataclass(frozen=True)
class TapMark:
    number: int
    name: str
    where: str  # words for the legend
    point: tuple[float, float] | None  # None: not drawn (unknown place)


@dataclass(frozen=True)
class Rect:
    kind: ClassVar[str] = "rect"
    x: str
    y: str
    width: str
    height: str
    rx: str
    cls: str


@dataclass(frozen=True)
class Line:
    kind: ClassVar[str] = "line"
    x1: str
    y1: str
    x2: str
    y2: str
    cls: str


@dataclass(frozen=True)
class Polyline:
    kind: ClassVar[str] = "polyline"
    points: str
    cls: str


@dataclass(frozen=True)
class TapMarker:
    kind: ClassVar[str] = "tap"
    title: str
    x: str
    y: str
    number: Text


Shape = Rect | Line | Polyline | Text | TapMarker


def switch_kinds(topology: Topology, listed: Sequence[str] = ()) -> list[str]:
    """The switch kinds to name on the switch: those listed, else the topology's."""
    if not listed and topology.switch is not None:
        return [topology.switch.kind.value]
    return list(listed)


def kinds_per_switch(topology: Topology, listed: Sequence[str] = ()) -> dict[str, list[str]]:
    """Each switch of `switches:` with the kinds it takes in the listed cells (KIND: every
    switch; NAME=KIND+...: those named, the others their topology kind), else its own."""
    own = {name: spec.kind.value for name, spec in topology.all_switches().items()}
    if not listed:
        return {name: [kind] for name, kind in own.items()}
    found: dict[str, list[str]] = {name: [] for name in own}
    for value in listed:
        named = dict(part.partition("=")[::2] for part in value.split("+") if "=" in part)
        for name in own:
            kind = value if not named else named.get(name, own[name])
            if kind not in found[name]:
                found[name].append(kind)
    return found


def has_switch(topology: Topology, drawing: Drawing) -> bool:
    return bool(topology.all_switches()) or bool(drawing.switch_links)


def topology_drawing(
    topology: Topology, listed_kinds: Sequence[str] = ()
) -> tuple[Markup, list[TapMark]]:
    """The SVG drawing of a topology with its taps, and the taps' legend. Shared by the
    matrix report and `labctl graph`."""
    drawing = layout(topology)
    several = topology.switches is not None
    kinds_of = (
        kinds_per_switch(topology, listed_kinds)
        if several
        else {"switch": switch_kinds(topology, listed_kinds)}
    )
    body: list[Shape] = []
    ports: dict[str, tuple[float, float]] = {}  # port name -> point on the switch edge
    link_ends: dict[tuple[str, str], tuple[tuple[float, float], tuple[float, float]]] = {}
    lowest = max((b.y + b.height for b in drawing.nodes.values()), default=40.0)
    boxes: dict[str, tuple[float, float]] = {}  # switch -> (top, bottom)
    if has_switch(topology, drawing):
        for switch in drawing.switches:
            kinds = kinds_of.get(switch, [])
            rows = [
                drawing.nodes[n].row_y(i)
                for n, i, port in drawing.switch_links
                if drawing.port_switch.get(port) == switch
            ]
            ys = rows or [drawing.bands[switch][0] + 40]
            label_height = 24 + 15 * len(kinds)
            box_height = max(90.0, max(ys) - min(ys) + 60, label_height + 24)
            box_top = max(drawing.bands[switch][0] - 10, (max(ys) + min(ys)) / 2 - box_height / 2)
            boxes[switch] = (box_top, box_top + box_height)
            body.append(
                Rect(n(SWITCH_X), n(box_top), n(SWITCH_WIDTH), n(box_height), "10", "switch")
            )
            text_y = box_top + box_height / 2 - label_height / 2 + 16
            body.append(text(SWITCH_X + SWITCH_WIDTH / 2, text_y, switch, "switch-name", "middle"))
            for index, kind in enumerate(kinds):
                body.append(
                    text(
                        SWITCH_X + SWITCH_WIDTH / 2,
                        text_y + 17 + 15 * index,
                        fit(kind, SWITCH_WIDTH - 20, 11),
                        "switch-kind",
                        "middle",
                    )
                )
            lowest = max(lowest, box_top + box_height)
        for node, ifname, port in drawing.switch_links:
            box = drawing.nodes[node]
            y = box.row_y(ifname)
            start = (box.inner_edge, y)
            end = (SWITCH_X if box.side == "left" else SWITCH_X + SWITCH_WIDTH, y)
            ports.setdefault(port, end)
            link_ends[(node, ifname)] = (start, end)
            body += _link(start, end, ifname, port)
        body += _switch_pairs(drawing, boxes, ports, topology)
    for index, (node_a, if_a, node_b, if_b) in enumerate(drawing.node_links):
        lane = lowest + 30 + 22 * index
        a, b = drawing.nodes[node_a], drawing.nodes[node_b]
        start = (a.x + NODE_WIDTH / 2 + 30, a.y + a.height)
        end = (b.x + NODE_WIDTH / 2 - 30, b.y + b.height)
        points = [start, (start[0], lane), (end[0], lane), end]
        body.append(Polyline(" ".join(f"{n(x)},{n(y)}" for x, y in points), "link"))
        body.append(text(start[0] + 5, start[1] + 14, if_a, "ifname"))
        body.append(text(end[0] + 5, end[1] + 14, if_b, "ifname"))
        link_ends.setdefault((node_a, if_a), (start, start))
        link_ends.setdefault((node_b, if_b), (end, end))
        lowest = max(lowest, lane)
    for box in drawing.nodes.values():
        body += _node(box)
    marks, markers = _tap_marks(topology, drawing, link_ends, ports)
    body += markers
    svg = (
        environment()
        .get_template("topology.svg.j2")
        .render(name=topology.name, height=n(lowest + 30), shapes=body)
    )
    return Markup(svg.rstrip("\n")), marks


def _switch_pairs(
    drawing: Drawing,
    boxes: Mapping[str, tuple[float, float]],
    ports: dict[str, tuple[float, float]],
    topology: Topology,
) -> list[Shape]:
    """Links between switches: down the middle from one box to the next (beside the boxes
    in between, when the two are not neighbours), ports named at each end."""
    from labctl.core.validate import patch_datapath

    out: list[Shape] = []
    order = drawing.switches
    kinds = {name: spec.kind for name, spec in topology.all_switches().items()}
    for index, (sw_a, port_a, sw_b, port_b) in enumerate(drawing.switch_pairs):
        if sw_a not in boxes or sw_b not in boxes:
            continue
        upper, lower = (sw_a, sw_b) if order.index(sw_a) < order.index(sw_b) else (sw_b, sw_a)
        up_port, low_port = (port_a, port_b) if upper == sw_a else (port_b, port_a)
        x = SWITCH_X + SWITCH_WIDTH / 2 + 24 * index
        start, end = (x, boxes[upper][1]), (x, boxes[lower][0])
        if order.index(lower) - order.index(upper) > 1:
            lane = SWITCH_X - 16 - 10 * index
            points = [start, (x, start[1] + 12), (lane, start[1] + 12), (lane, end[1] - 12)]
            points += [(x, end[1] - 12), end]
            out.append(Polyline(" ".join(f"{n(px)},{n(py)}" for px, py in points), "link"))
        else:
            out.append(Line(n(x), n(start[1]), n(x), n(end[1]), "link"))
        patch = sw_a in kinds and sw_b in kinds and patch_datapath(kinds[sw_a], kinds[sw_b])
        middle = (start[1] + end[1]) / 2
        out.append(text(x + 6, start[1] + 14, up_port, "port"))
        out.append(text(x + 6, end[1] - 6, low_port, "port"))
        out.append(text(x - 6, middle + 4, "patch" if patch else "veth", "veth", "end"))
        ports.setdefault(up_port, start)
        ports.setdefault(low_port, end)
    return out


def _link(
    start: tuple[float, float], end: tuple[float, float], ifname: str, port: str
) -> list[Shape]:
    (x1, y1), (x2, y2) = start, end
    leftwards = x2 < x1
    step = -14 if leftwards else 14  # clear of a tap marker (r=10) on either end
    room = abs(x2 - x1) / 2 - 16
    return [
        Line(n(x1), n(y1), n(x2), n(y2), "link"),
        text(x1 + step, y1 - 7, fit(ifname, room, 12), "ifname", "end" if leftwards else "start"),
        text(x2 - step, y2 - 7, fit(port, room, 12), "port", "start" if leftwards else "end"),
        text((x1 + x2) / 2, (y1 + y2) / 2 + 16, "veth", "veth", "middle"),
    ]


def _node(box: NodeBox) -> list[Shape]:
    out: list[Shape] = [
        Rect(n(box.x), n(box.y), n(NODE_WIDTH), n(box.height), "8", "node"),
        text(box.x + 12, box.y + 22, fit(box.name, NODE_WIDTH - 24, 15), "node-name"),
    ]
    if box.role:
        out.append(text(box.x + 12, box.y + 38, box.role, "role"))
    for ifname, addresses in box.interfaces:
        y = box.row_y(ifname) + 4
        out.append(text(box.x + 16, y, fit(ifname, 50, 12), "ifname"))
        out.append(text(box.x + 66, y, fit(addresses, NODE_WIDTH - 74, 11), "address"))
    return out


def _tap_marks(
    topology: Topology,
    drawing: Drawing,
    link_ends: Mapping[tuple[str, str], tuple[tuple[float, float], tuple[float, float]]],
    ports: Mapping[str, tuple[float, float]],
) -> tuple[list[TapMark], list[Shape]]:
    marks: list[TapMark] = []
    used: dict[tuple[float, float], int] = {}
    out: list[Shape] = []
    for number, tap in enumerate(topology.taps, start=1):
        name = tap.name or f"tap {number}"
        point: tuple[float, float] | None = None
        where = "at an unknown place"
        node_end = parse_endpoint(tap.node) if tap.node else None
        host_end = parse_endpoint(tap.host) if tap.host else None
        if node_end is not None:
            where = f"inside node {node_end.node}, on {node_end.name}"
            ends = link_ends.get((node_end.node, node_end.name))
            if ends is not None:
                point = ends[0]
            elif node_end.node in drawing.nodes:
                box = drawing.nodes[node_end.node]
                point = (box.inner_edge, box.row_y(node_end.name))
        elif host_end is not None:
            where = f"on the host end of the veth of {host_end.node}:{host_end.name}"
            ends = link_ends.get((host_end.node, host_end.name))
            if ends is not None and ends[0] != ends[1]:
                (x1, y1), (x2, y2) = ends
                point = (x1 + (x2 - x1) * 0.7, y1 + (y2 - y1) * 0.7)
        elif tap.switch_port is not None:
            where = f"on switch port {tap.switch_port}"
            point = ports.get(tap.switch_port)
        if tap.off_path:
            where += " (off the path)"
        marks.append(TapMark(number, name, where, point))
        if point is None:
            continue
        # Several taps at one place: step the later ones up, clear of the line.
        stacked = used.get(point, 0)
        used[point] = stacked + 1
        x, y = point[0], point[1] - 24 * stacked
        out.append(
            TapMarker(
                f"tap {number}: {name}, {where}",
                n(x),
                n(y),
                text(x, y + 4, str(number), "tap-number", "middle"),
            )
        )
    return marks, out
