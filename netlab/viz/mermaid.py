"""A World as a Mermaid flowchart (GitHub and most Markdown viewers draw it), with a
trace drawn on it: the elements it crossed in red with their hop numbers."""

from __future__ import annotations

from netlab.viz.dot import HIT, REPLY
from netlab.viz.topology import Overlay, Topology, compact

SHAPES = {"netns": ('["', '"]'), "root": ('[["', '"]]'), "bridge": ('(("', '"))'),
          "lan": ('{{"', '"}}')}


def _text(*lines: str) -> str:
    clean = [line.replace('"', "'").replace("\n", "<br/>") for line in lines if line]
    return "<br/>".join(clean)


def to_mermaid(topo: Topology, over: Overlay | None = None) -> str:
    out = ["flowchart LR"]
    hits: dict[str, list[str]] = {"hit": [], "hitreply": []}

    def mark(element: str) -> str:
        if over is None or element not in over.numbers:
            return ""
        hits["hitreply" if element in over.reply_only else "hit"].append(element)
        return f"hops {compact(over.numbers[element])}"   # no '#': Mermaid's entity codes

    def vertex(vid: str, indent: str) -> None:
        v = topo.vertices[vid]
        left, right = SHAPES[v.kind]
        number = mark(vid)
        out.append(f"{indent}{vid}{left}{_text(v.title, *v.lines, number)}{right}")

    for node, members in topo.clusters.items():
        out.append(f'  subgraph cluster_{node}["{_text(node)}"]')
        for vid in members:
            vertex(vid, "    ")
        out.append("  end")
    for vid, v in topo.vertices.items():
        if v.cluster is None:
            vertex(vid, "  ")
    styled: list[tuple[int, str]] = []
    for n, e in enumerate(topo.edges):
        number = mark(e.id)
        if e.kind == "bridge-dev":
            label = _text(e.a_label or "bridge", number)
            out.append(f'  {e.a} -.-|"{label}"| {e.b}')
        elif e.kind == "vxlan":
            label = _text(f"VXLAN {e.a_label} ↔ {e.b_label}", number)
            out.append(f'  {e.a} -.-|"{label}"| {e.b}')
        else:
            label = _text(f"{e.a_label} ↔ {e.b_label}", number)
            out.append(f'  {e.a} ---|"{label}"| {e.b}')
        if number:
            styled.append((n, REPLY if e.id in over.reply_only else HIT))
    out.append(f"  classDef hit stroke:{HIT},stroke-width:3px,color:{HIT}")
    out.append(f"  classDef hitreply stroke:{REPLY},stroke-width:3px,color:{REPLY}")
    for cls, ids in hits.items():
        vertices = [i for i in ids if i in topo.vertices]
        if vertices:
            out.append(f"  class {','.join(vertices)} {cls}")
    for n, colour in styled:
        out.append(f"  linkStyle {n} stroke:{colour},stroke-width:3px")
    return "\n".join(out) + "\n"
