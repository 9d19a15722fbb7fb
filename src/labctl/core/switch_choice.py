"""Which switch kinds a lab runs with: one kind for every switch, or kinds for some switches
by name (a combination). Pure.

Written as `ovs-dpdk` (every switch of the topology) or `sw2=ovs-userspace` /
`{sw2: ovs-userspace}` (switch sw2; the others keep the kind the topology gives them), on
the command line (`--switch`) and in lab.yaml (`matrix.switches`, `when.switch`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from labctl.core.model import SwitchKind, Topology

SWITCH_ABBREVIATIONS = {
    SwitchKind.LINUX_BRIDGE: "lb",
    SwitchKind.OVS_KERNEL: "ok",
    SwitchKind.OVS_USERSPACE: "ou",
    SwitchKind.OVS_DPDK: "od",
}


@dataclass(frozen=True)
class SwitchCombo:
    """Kinds for named switches; the topology's other switches keep theirs."""

    kinds: tuple[tuple[str, SwitchKind], ...]

    @property
    def value(self) -> str:
        """As written on the command line, e.g. "sw1=linux-bridge+sw2=ovs-userspace"."""
        return "+".join(f"{name}={kind.value}" for name, kind in self.kinds)

    @property
    def abbreviation(self) -> str:
        """For lab names ([a-z0-9-]): e.g. "sw1lb-sw2ou"."""
        return "-".join(
            f"{name.replace('_', '')}{SWITCH_ABBREVIATIONS[kind]}" for name, kind in self.kinds
        )

    def __str__(self) -> str:
        return self.value


SwitchChoice = SwitchKind | SwitchCombo


def parse_switch_choice(text: str) -> SwitchChoice:
    """`KIND`, or `NAME=KIND[,NAME=KIND...]` (also joined by "+"); ValueError says why not."""
    allowed = ", ".join(k.value for k in SwitchKind)
    if "=" not in text:
        try:
            return SwitchKind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a switch kind ({allowed}) nor NAME=KIND") from None
    kinds: dict[str, SwitchKind] = {}
    for part in text.replace("+", ",").split(","):
        name, _sep, kind = part.partition("=")
        if not name or not kind:
            raise ValueError(f"{part!r} in {text!r} is not NAME=KIND")
        try:
            kinds[name] = SwitchKind(kind)
        except ValueError:
            raise ValueError(f"{kind!r} in {text!r} is not a switch kind ({allowed})") from None
    return SwitchCombo(tuple(kinds.items()))


def combo_of(mapping: Mapping[str, SwitchKind]) -> SwitchCombo:
    return SwitchCombo(tuple(mapping.items()))


def unknown_switches(choice: SwitchChoice, topology: Topology) -> list[str]:
    """The names in a combination that are not switches of the topology."""
    if isinstance(choice, SwitchKind):
        return []
    return [name for name, _kind in choice.kinds if name not in topology.switch_names()]


def apply_choice(topology: Topology, choice: SwitchChoice) -> Topology:
    if isinstance(choice, SwitchKind):
        return topology.with_switch_kind(choice)
    return topology.with_switch_kinds(dict(choice.kinds))


def effective_kinds(topology: Topology, choice: SwitchChoice) -> dict[str, SwitchKind]:
    """Every switch's kind in a cell with this choice."""
    return {name: spec.kind for name, spec in apply_choice(topology, choice).all_switches().items()}


def selector_matches(selector: str, kinds: Mapping[str, SwitchKind]) -> bool:
    """`KIND`: every switch of the cell has this kind; `NAME=KIND`: switch NAME has it."""
    name, sep, kind = selector.partition("=")
    if not sep:
        return bool(kinds) and all(k.value == selector for k in kinds.values())
    return kinds.get(name) is not None and kinds[name].value == kind


def selector_problem(selector: str) -> str | None:
    """What is wrong with a `when.switch` item, or None."""
    allowed = ", ".join(k.value for k in SwitchKind)
    name, sep, kind = selector.partition("=")
    if not sep:
        kind = selector
    if kind not in {k.value for k in SwitchKind}:
        return f"{kind!r} is not a switch kind ({allowed}); write KIND or SWITCH=KIND"
    if sep and not name:
        return f"{selector!r} names no switch; write KIND or SWITCH=KIND"
    return None
