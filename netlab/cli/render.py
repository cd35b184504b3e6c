"""Text for people: a lab step as it runs, a trace hop by hop.

Plain strings built from the data; rich only styles them. A trace prints one
line per hop, grouped under the namespace the hop happened in.
"""

from __future__ import annotations

from typing import Iterable

from netlab.trace import Hop, Path, Trace

TICK, CROSS = "✓", "✗"


def esc(text: str) -> str:
    """Escape rich markup in text that comes from a lab or a command."""
    return text.replace("[", "\\[")


# --- traces --------------------------------------------------------------------------
def place(hop: Hop, switches: frozenset[str] = frozenset()) -> str:
    if hop.netns == "root":
        return f"{hop.node} (switch)" if hop.node in switches else hop.node
    return f"{hop.node}/{hop.netns}"


def verdict_text(path: Path) -> str:
    if not path.delivered_to:
        return path.verdict
    word = "to" if path.verdict == "delivered" else "at"
    return f"{path.verdict} {word} {path.delivered_to}"


def hop_line(hop: Hop) -> str:
    parts = [f"{hop.event:<10}"]
    if hop.dev:
        parts.append(f"[{hop.dev}]")
    if hop.table or hop.chain:
        parts.append("/".join(x for x in (hop.table, hop.chain) if x) + ":")
    if hop.rule:
        parts.append(hop.rule)
        if hop.action:
            parts.append(f"→ {hop.action}")
        if hop.detail:
            parts.append(f"({hop.detail})")
    else:
        if hop.detail:
            parts.append(hop.detail)
        if hop.action:
            parts.append(f"→ {hop.action}")
    return " ".join(parts)


def hop_lines(hops: Iterable[Hop], indent: str = "  ",
              switches: frozenset[str] = frozenset()) -> list[str]:
    lines: list[str] = []
    current: str | None = None
    for hop in hops:
        where = place(hop, switches)
        if where != current:
            lines.append(f"{indent}{where}")
            current = where
        lines.append(f"{indent}  {hop_line(hop)}")
    return lines


def path_lines(path: Path, number: int, total: int,
               switches: frozenset[str] = frozenset()) -> list[str]:
    lines: list[str] = []
    if total > 1:
        lines.append(f"path {number} of {total} (probability {path.probability:g})")
    lines += hop_lines(path.hops, switches=switches)
    lines.append(f"verdict: {verdict_text(path)}")
    lines.append(f"outcome: {path.outcome}")
    if path.diagnosis:
        lines.append(f"diagnosis: {path.diagnosis}")
    if path.packet_out is not None:
        lines.append(f"packet out: {path.packet_out.describe()}")
    if path.reply is not None:
        reply = path.reply
        head = f"reply: {reply.packet_out.describe() if reply.packet_out else ''}".rstrip()
        lines.append(head)
        lines += hop_lines(reply.hops, indent="    ", switches=switches)
        lines.append(f"  reply verdict: {verdict_text(reply)}")
        if reply.diagnosis:
            lines.append(f"  reply diagnosis: {reply.diagnosis}")
    return lines


def trace_lines(trace: Trace, switches: Iterable[str] = ()) -> list[str]:
    """The trace as text; ``switches`` names the LANs, whose hops are marked (switch)."""
    names = frozenset(switches)
    lines = [f"{trace.packet.describe()} from {trace.source}"]
    for i, path in enumerate(trace.paths, 1):
        lines += path_lines(path, i, len(trace.paths), names)
    return lines


# --- lab steps -------------------------------------------------------------------------
def prompt(node: str, nodes: list[str]) -> str:
    return "$" if len(nodes) == 1 else f"{node}$"
