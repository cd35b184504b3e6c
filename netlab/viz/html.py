"""One self-contained web page that steps through a trace hop by hop.

Everything is inline (CSS, script, the SVG diagram, the trace as JSON): the page
fetches nothing. The diagram has the path drawn on it; Next and Previous (buttons,
or the arrow keys) move through the hops, the current hop's element is highlighted,
and a side panel shows the packet's headers there (fields a NAT rewrote are marked),
the table, chain and rule, and the explanation. A selector picks the path of a
probability fork, or a reply.
"""

from __future__ import annotations

import html
import json
from typing import Any, Iterable

from netlab.trace import Packet, Trace
from netlab.viz.journey import Leg, Step, legs, place, verdict_text
from netlab.viz.topology import Overlay

ICMP_TYPES = {0: "echo-reply", 3: "destination-unreachable", 8: "echo-request",
              11: "time-exceeded"}


def _asset(name: str) -> str:
    """The stepper's style and script, shipped next to this module."""
    from importlib.resources import files

    return files("netlab.viz").joinpath(name).read_text(encoding="utf-8")


def _headers(pkt: Packet) -> dict[str, Any]:
    out: dict[str, Any] = {"proto": pkt.proto, "src": pkt.src, "dst": pkt.dst}
    if pkt.sport is not None:
        out["sport"] = pkt.sport
    if pkt.dport is not None:
        out["dport"] = pkt.dport
    if pkt.proto == "icmp":
        out["icmp"] = ICMP_TYPES.get(pkt.icmp_type, str(pkt.icmp_type)) + \
            (f" code {pkt.icmp_code}" if pkt.icmp_code is not None else "")
    if pkt.tcp_flags:
        out["flags"] = pkt.tcp_flags
    out["ttl"] = pkt.ttl
    inner = getattr(pkt, "inner", None)
    if inner is not None:               # an ICMP error: the header it is about
        out["quoted"] = inner.describe()
    return out


def _step_json(step: Step, element: str | None, switches: frozenset[str]) -> dict[str, Any]:
    hop = step.hop
    data: dict[str, Any] = {
        "n": step.number, "where": place(hop, switches), "event": hop.event,
        "tone": step.tone, "detail": hop.detail, "element": element,
        "packet": _headers(step.packet), "summary": step.packet.describe(),
    }
    for name in ("dev", "table", "chain", "rule", "action"):
        value = getattr(hop, name)
        if value is not None:
            data[name] = value
    if step.before is not None:
        before = _headers(step.before)
        data["changed"] = {f: before.get(f) for f in step.changed}
    if step.ether is not None:
        data["ether"] = {"src": step.ether[0], "dst": step.ether[1]}
    if step.encap is not None:
        data["encap"] = step.encap
    return data


def inline_markdown(text: str) -> str:
    """A lab's explanation as HTML: paragraphs, indented code blocks, `code`, **bold**
    and *emphasis* — all a lab's explain text uses; everything else is escaped."""
    import re

    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.split("\n")
        if all(line.startswith("    ") or not line.strip() for line in lines):
            out.append("<pre>" + html.escape("\n".join(l[4:] for l in lines)) + "</pre>")
            continue
        para = html.escape(" ".join(line.strip() for line in lines))
        para = re.sub(r"`([^`]+)`", r"<code>\1</code>", para)
        para = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", para)
        para = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", para)
        out.append(f"<p>{para}</p>")
    return "\n".join(out)


def _leg_json(trace_title: str | None, leg: Leg, over: Overlay,
              switches: frozenset[str]) -> dict[str, Any]:
    path = leg.path
    where = over.at.get(leg.key, [None] * len(leg.steps))
    ending = [f"verdict: {verdict_text(path)}"]
    if not leg.reply:
        ending.append(f"outcome: {path.outcome}")
    if path.diagnosis:
        ending.append(f"diagnosis: {path.diagnosis}")
    title = f"{trace_title} — {leg.title}" if trace_title else leg.title
    return {"key": leg.key, "title": title, "reply": leg.reply,
            "steps": [_step_json(s, e, switches) for s, e in zip(leg.steps, where)],
            "ending": ending}


def page_legs(traces: list[tuple[str, Trace]]) -> list[tuple[str | None, Leg]]:
    """(title, leg) for every leg of every trace on the page; with several traces the
    legs' keys get the trace's number (t2p1r) and their titles the trace's title."""
    out = []
    for n, (title, trace) in enumerate(traces, 1):
        for leg in legs(trace):
            if len(traces) > 1:
                leg.key = f"t{n}{leg.key}"
            out.append((title if len(traces) > 1 else None, leg))
    return out


def build_page(title: str, world, traces: list[tuple[str, Trace]], *, intro: str = "",
               with_svg: bool = True) -> str:
    """The page for ``traces`` on ``world``: the diagram (SVG when Graphviz's dot is
    there and ``with_svg``) with every path drawn on it."""
    from netlab.viz.topology import overlay, topology

    entries = page_legs(traces)
    topo = topology(world)
    over = overlay(topo, world, [leg for _, leg in entries])
    svg = None
    if with_svg:
        from netlab.viz.dot import DotUnavailable, to_dot, to_svg

        try:
            svg = to_svg(to_dot(topo, over))
        except DotUnavailable:
            svg = None
    switches = [lan.name for lan in world.lans]
    return html_page(title, entries, over, svg, switches=switches, intro=intro)


def html_page(title: str, entries: list[tuple[str | None, Leg]], over: Overlay,
              svg: str | None, *, switches: Iterable[str] = (), intro: str = "") -> str:
    """The page. ``over`` places the hops on the diagram; ``svg`` is the diagram (None:
    the page says it is missing and steps through the hop list alone)."""
    names = frozenset(switches)
    data = {"title": title,
            "legs": [_leg_json(t, leg, over, names) for t, leg in entries]}
    blob = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    if svg:
        start = svg.find("<svg")
        diagram = svg[start:] if start >= 0 else svg
    else:
        diagram = ('<p class="missing">No diagram: it needs Graphviz\'s <code>dot</code> '
                   '(apt-get install graphviz). The hops are listed beside it.</p>')
    return (PAGE.replace("%TITLE%", html.escape(title))
            .replace("%INTRO%", intro)
            .replace("%DIAGRAM%", diagram)
            .replace("%CSS%", _asset("stepper.css"))
            .replace("%SCRIPT%", _asset("stepper.js"))
            .replace("%DATA%", blob))


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title>
<style>%CSS%</style>
</head>
<body>
<header><h1>%TITLE%</h1>%INTRO%</header>
<main>
<section class="stage" aria-label="Diagram">
<div id="diagram" role="img" aria-label="The lab as a diagram, with the path drawn on it; the hops are listed beside it">%DIAGRAM%</div>
</section>
<aside class="panel" aria-label="The current hop">
<div class="controls">
<label for="leg">Path</label>
<select id="leg"></select>
<div class="buttons">
<button type="button" id="prev" aria-keyshortcuts="ArrowLeft">&#8592; Previous</button>
<span id="position" aria-live="polite"></span>
<button type="button" id="next" aria-keyshortcuts="ArrowRight">Next &#8594;</button>
</div>
</div>
<div id="hop" aria-live="polite"></div>
<ol id="hops" aria-label="Hops"></ol>
<div id="ending"></div>
</aside>
</main>
<script type="application/json" id="trace-data">%DATA%</script>
<script>%SCRIPT%</script>
</body>
</html>
"""
