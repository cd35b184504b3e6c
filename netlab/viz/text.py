"""A trace in the terminal: a tree grouped by node and namespace.

Each hop is a line: its number, the event, the device, and what decided it. A
netfilter hop shows the table, the chain and the rule that matched, coloured by what
it did (accept green, drop and reject red, NAT yellow with the header before → after).
Each path ends with its verdict, outcome and diagnosis; a path of a probability fork
says its probability; the reply is a tree of its own.

The tree is built as lines of (text, style) segments: ``plain()`` joins them (no
colour, what golden files pin), ``ansi()`` colours them for a terminal with rich's
styles, ``rich_text()`` makes a rich Text of them for a rich console.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from netlab.trace import Hop, Trace
from netlab.viz.journey import Leg, Step, legs, tunnel_action, verdict_text

Segment = tuple[str, str]           # (text, rich style or "")
Line = list[Segment]

STYLES = {
    "accept": "green", "drop": "bold red", "nat": "yellow", "rule": "dim",
    "warn": "magenta", "route": "cyan", "arp": "blue", "bridge": "blue", "veth": "",
    "place": "bold", "head": "bold", "ok": "bold green", "bad": "bold red",
    "note": "dim", "vxlan": "cyan",
}
EVENT_WIDTH = 9


@dataclass
class Node:
    label: Line
    children: list["Node"] = field(default_factory=list)


def _hop_label(step: Step) -> Line:
    hop = step.hop
    tone = step.tone
    style = tone if tone in STYLES else ""
    line: Line = [(f"{step.number:>2} ", "note"), (f"{hop.event:<{EVENT_WIDTH}}", style)]
    if hop.dev:
        line.append((f" [{hop.dev}]", ""))
    if hop.event == "netfilter":
        where = " ".join(x for x in (hop.table, hop.chain) if x)
        line.append((f" {where}", "bold"))
        if hop.rule:
            line.append((f"  {hop.rule}", style if tone != "rule" else ""))
        if hop.action:
            line.append((f" → {hop.action.upper()}", style or "bold"))
        detail = hop.detail or ""
        if detail and hop.rule and not detail.startswith(f"{hop.table} {hop.chain}: policy") \
                and detail.upper() != (hop.action or "").upper():
            line.append((f"  ({detail})", "note"))
    else:
        if hop.detail:
            line.append((f" {hop.detail}", style if tone in ("drop", "nat", "warn") else ""))
        if hop.action:
            line.append((f" → {hop.action}", style))
    return line


def _hop_node(step: Step) -> Node:
    node = Node(_hop_label(step))
    if step.before is not None:
        node.children.append(Node([(f"{step.before.describe()}  →  {step.packet.describe()}",
                                    "yellow")]))
    encap = step.encap if tunnel_action(step.hop) == "encap" else None
    if encap:
        outer = encap.get("outer", {})
        node.children.append(Node([(f"{encap.get('type', 'tunnel')} vni {encap.get('vni')}: "
                                    f"outer udp {outer.get('src')}:{outer.get('sport')} > "
                                    f"{outer.get('dst')}:{outer.get('dport')}", "cyan")]))
    return node


def _grouped(steps: Iterable[Step], switches: frozenset[str]) -> list[Node]:
    """Hops under their node, then under their namespace (consecutive runs); a LAN's
    switch has no namespaces to tell apart."""
    nodes: list[Node] = []
    node_name = netns = None
    for step in steps:
        hop: Hop = step.hop
        switch = hop.node in switches
        if hop.node != node_name:
            nodes.append(Node([(f"{hop.node} (switch)" if switch else hop.node, "place")]))
            node_name, netns = hop.node, None
        if switch:
            nodes[-1].children.append(_hop_node(step))
            continue
        if hop.netns != netns:
            name = "root namespace" if hop.netns == "root" else f"netns {hop.netns}"
            nodes[-1].children.append(Node([(name, "place")]))
            netns = hop.netns
        nodes[-1].children[-1].children.append(_hop_node(step))
    return nodes


def _good(leg: Leg) -> bool:
    path = leg.path
    return path.verdict == "delivered" and (leg.reply or path.outcome == "success")


def _verdict_lines(leg: Leg) -> list[Line]:
    path = leg.path
    head = "reply verdict" if leg.reply else "verdict"
    lines: list[Line] = [[(f"{head}: ", "bold"),
                          (verdict_text(path), "ok" if _good(leg) else "bad")]]
    if path.packet_out is not None:
        lines.append([("packet out: ", "bold"), (path.packet_out.describe(), "")])
    if leg.reply and path.diagnosis:
        lines.append([("reply diagnosis: ", "bold"), (path.diagnosis, "bad")])
    return lines


def _outcome_lines(leg: Leg) -> list[Line]:
    """What the sender sees and why: last, after the reply it depends on."""
    path = leg.path
    lines: list[Line] = [[("outcome: ", "bold"),
                          (path.outcome, "ok" if path.outcome == "success" else "bad")]]
    if path.diagnosis:
        lines.append([("diagnosis: ", "bold"), (path.diagnosis, "" if _good(leg) else "bad")])
    return lines


def _render(nodes: list[Node], prefix: str, out: list[Line]) -> None:
    for i, node in enumerate(nodes):
        last = i == len(nodes) - 1
        out.append([(prefix + ("└── " if last else "├── "), "note"), *node.label])
        _render(node.children, prefix + ("    " if last else "│   "), out)


def trace_lines(trace: Trace, switches: Iterable[str] = ()) -> list[Line]:
    """The whole trace as lines of styled segments."""
    names = frozenset(switches)
    out: list[Line] = [[(trace.packet.describe(), "head"), (f" from {trace.source}", "")]]
    ending: list[Line] = []
    for leg in legs(trace):
        if leg.reply:
            out.append([("reply: ", "bold"), (leg.start.describe() if leg.start else "", "")])
            _render(_grouped(leg.steps, names), "", out)
            out += [[("  ", ""), *line] for line in _verdict_lines(leg)]
            continue
        out += ending
        if len(trace.paths) > 1:
            out.append([(leg.title, "head")])
        _render(_grouped(leg.steps, names), "", out)
        out += _verdict_lines(leg)
        ending = _outcome_lines(leg)
    out += ending
    return out


def plain(lines: list[Line]) -> str:
    return "\n".join("".join(text for text, _ in line) for line in lines) + "\n"


def rich_text(lines: list[Line]):
    from rich.text import Text

    text = Text()
    for n, line in enumerate(lines):
        if n:
            text.append("\n")
        for part, style in line:
            text.append(part, style=STYLES.get(style, style) or None)
    return text


def ansi(lines: list[Line]) -> str:
    """The lines with rich's ANSI colour codes (the 16 standard colours), written
    straight to a terminal: a long trace need not go through a console's layout."""
    from rich.color import ColorSystem
    from rich.style import Style

    styles: dict[str, Style] = {}
    out: list[str] = []
    for line in lines:
        for part, name in line:
            spec = STYLES.get(name, name)
            if not spec:
                out.append(part)
                continue
            style = styles.get(spec)
            if style is None:
                style = styles[spec] = Style.parse(spec)
            out.append(style.render(part, color_system=ColorSystem.STANDARD))
        out.append("\n")
    return "".join(out)
