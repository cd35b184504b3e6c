"""Text for people: a lab step as it runs, one line per hop.

Plain strings built from the data; rich only styles them. The tree of a whole
trace is netlab/viz/text.py.
"""

from __future__ import annotations

from netlab.trace import Hop

TICK, CROSS = "✓", "✗"


def esc(text: str) -> str:
    """Escape rich markup in text that comes from a lab or a command."""
    return text.replace("[", "\\[")


# --- hops (netlab iptables trace; netlab trace draws its tree with netlab/viz/text.py) ---
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


# --- lab steps -------------------------------------------------------------------------
def prompt(node: str, nodes: list[str]) -> str:
    return "$" if len(nodes) == 1 else f"{node}$"
