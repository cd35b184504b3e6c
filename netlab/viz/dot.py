"""Graphviz DOT of a World (with a trace drawn on it), and SVG through Graphviz's dot.

Built with the ``graphviz`` package (it quotes and assembles the DOT); SVG needs
Debian's ``graphviz`` (the ``dot`` program). Every element has an ``id``, so the SVG
keeps them (the HTML stepper highlights hops by id).
"""

from __future__ import annotations

from netlab.viz.topology import Overlay, Topology, compact

HIT = "#c0392b"          # the path
REPLY = "#1f5fa8"        # the reply, where the path did not go
SHAPES = {"netns": "box", "root": "box3d", "bridge": "ellipse", "lan": "doubleoctagon"}


class DotUnavailable(RuntimeError):
    """Graphviz's dot program is not installed."""


def _label(*lines: str) -> str:
    return "\\n".join(line.replace("\\", "\\\\").replace("\n", "\\n") for line in lines if line)


def _hit(element: str, over: Overlay | None) -> dict[str, str]:
    if over is None or element not in over.numbers:
        return {}
    colour = REPLY if element in over.reply_only else HIT
    return {"color": colour, "fontcolor": colour, "penwidth": "2.5"}


def to_dot(topo: Topology, over: Overlay | None = None) -> str:
    """The DOT source; ``over`` draws a trace (hop numbers on the elements it crossed)."""
    import graphviz

    g = graphviz.Graph(topo.name, graph_attr={"rankdir": "LR", "fontname": "Helvetica",
                                              "label": topo.name, "labelloc": "t",
                                              "nodesep": "0.5", "ranksep": "1.1"},
                       node_attr={"fontname": "Helvetica", "fontsize": "11"},
                       edge_attr={"fontname": "Helvetica", "fontsize": "9"})

    def add_vertex(graph, vid: str) -> None:
        v = topo.vertices[vid]
        extra = _hit(vid, over)
        title = v.title
        if extra:
            extra["xlabel"] = f"#{compact(over.numbers[vid])}"
        if v.kind == "netns":
            extra["style"] = "rounded"
        elif v.kind == "lan":
            extra.update(style="filled", fillcolor="#eef3f8")
        graph.node(vid, _label(title, *v.lines), id=vid, shape=SHAPES[v.kind], **extra)

    for node, members in topo.clusters.items():
        with g.subgraph(name=f"cluster_{node}") as c:
            c.attr(label=node, id=f"cluster_{node}", style="rounded", color="#7f8c8d")
            for vid in members:
                add_vertex(c, vid)
    for vid, v in topo.vertices.items():
        if v.cluster is None:
            add_vertex(g, vid)
    for e in topo.edges:
        extra = _hit(e.id, over)
        attrs = {"id": e.id, "taillabel": _label(e.a_label), "headlabel": _label(e.b_label),
                 "labeldistance": "2.2", "labelangle": "25"}
        if e.kind == "vxlan":
            attrs.update(style="dashed", label="VXLAN tunnel")
        elif e.kind == "bridge-dev":
            attrs.update(style="dotted", label=_label(e.a_label))
            del attrs["taillabel"], attrs["headlabel"]
        if extra:
            number = f"#{compact(over.numbers[e.id])}"
            attrs["label"] = f"{attrs['label']} {number}" if attrs.get("label") else number
        g.edge(e.a, e.b, **attrs, **extra)
    return g.source


def to_svg(dot_source: str) -> str:
    """SVG from DOT with Graphviz's dot; DotUnavailable when it is not installed."""
    import shutil
    import subprocess

    exe = shutil.which("dot")
    if exe is None:
        raise DotUnavailable("SVG needs Graphviz's dot program: apt-get install graphviz")
    done = subprocess.run([exe, "-Tsvg"], input=dot_source.encode(), capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dot -Tsvg failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode()
