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
            .replace("%CSS%", CSS)
            .replace("%SCRIPT%", SCRIPT)
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

CSS = """
:root { --ink: #1b1f23; --muted: #4a5560; --line: #c8d0d8; --hit: #c0392b;
        --current: #b35900; --accept: #1e7b34; --drop: #b3261e; --nat: #7a5a00;
        --bg: #ffffff; --soft: #f3f5f7; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--ink); background: var(--bg); }
header { padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.15rem; margin: 0; }
main { display: flex; flex-wrap: wrap; gap: 1rem; padding: 1rem; }
.stage { flex: 3 1 30rem; min-width: 0; overflow: auto; }
#diagram svg { max-width: 100%; height: auto; }
.panel { flex: 2 1 22rem; min-width: 0; border: 1px solid var(--line); border-radius: 6px; padding: .8rem;
         background: var(--soft); }
.controls label { font-weight: 600; margin-right: .4rem; }
select, button { font: inherit; color: var(--ink); }
select { width: 100%; margin-top: .2rem; }
header pre { overflow-x: auto; background: var(--soft); padding: .4rem; }
header code { background: var(--soft); padding: 0 .2rem; }
.buttons { display: flex; align-items: center; gap: .6rem; margin: .6rem 0; }
button { padding: .35rem .8rem; border: 1px solid #5b6672; border-radius: 4px; background: #fff;
         cursor: pointer; }
button:focus-visible, select:focus-visible { outline: 3px solid #1f5fa8; outline-offset: 2px; }
button:disabled { color: #6b7580; cursor: default; }
#hop { background: #fff; border: 1px solid var(--line); border-radius: 4px; padding: .6rem; }
#hop h2 { font-size: 1rem; margin: 0 0 .3rem; }
#hop .where { color: var(--muted); }
#hop code, #hops code { font-family: ui-monospace, monospace; font-size: .9em; word-break: break-word; }
.rule { border-left: 4px solid var(--muted); padding: .2rem .5rem; margin: .4rem 0; background: var(--soft); }
.tone-accept .rule, .tone-accept.tag { border-color: var(--accept); color: var(--accept); }
.tone-drop .rule, .tone-drop.tag { border-color: var(--drop); color: var(--drop); }
.tone-nat .rule, .tone-nat.tag { border-color: var(--nat); color: var(--nat); }
table.headers { border-collapse: collapse; margin-top: .4rem; width: 100%; }
table.headers th, table.headers td { text-align: left; padding: .1rem .4rem; border-bottom: 1px solid var(--line); }
tr.changed td { background: #fff1c2; font-weight: 600; }
tr.changed td .was { font-weight: 400; color: var(--muted); }
table.headers th { white-space: nowrap; }
#hops { position: relative; padding-left: 0; list-style: none; max-height: 16rem; overflow: auto; margin: .6rem 0; }
#hops button { width: 100%; text-align: left; border: 0; border-radius: 0; background: transparent;
               padding: .15rem .3rem; }
#hops button[aria-current="step"] { background: #ffe3c4; outline: 2px solid var(--current); }
.tag { font-weight: 600; }
#ending p { margin: .2rem 0; font-weight: 600; }
.missing { color: var(--muted); }
#diagram g.current polygon, #diagram g.current ellipse, #diagram g.current path {
  stroke: var(--current) !important; stroke-width: 5px; }
#diagram g.node.current polygon, #diagram g.node.current ellipse { fill: #ffe3c4; }
#diagram g.current text { font-weight: bold; }
"""

SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('trace-data').textContent);
  const legSelect = document.getElementById('leg');
  const prev = document.getElementById('prev'), next = document.getElementById('next');
  const hopBox = document.getElementById('hop'), list = document.getElementById('hops');
  const position = document.getElementById('position'), ending = document.getElementById('ending');
  let leg = 0, index = 0;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  data.legs.forEach((l, i) => legSelect.appendChild(el('option', {value: i}, l.title)));

  function headers(step) {
    const table = el('table', {class: 'headers'});
    table.appendChild(el('caption', {}, 'Packet here: ' + step.summary));
    const changed = step.changed || {};
    const rows = Object.entries(step.packet);
    const ether = step.encap ? 'outer ether' : 'ether';
    if (step.ether) rows.unshift([ether + ' src', step.ether.src || '?'], [ether + ' dst', step.ether.dst || '?']);
    for (const [name, value] of rows) {
      const tr = el('tr', name in changed ? {class: 'changed'} : {});
      tr.appendChild(el('th', {scope: 'row'}, name));
      const td = el('td', {}, String(value));
      if (name in changed) td.appendChild(el('span', {class: 'was'}, ' (was ' + changed[name] + ', rewritten here)'));
      tr.appendChild(td);
      table.appendChild(tr);
    }
    if (step.encap) {
      const o = step.encap.outer || {};
      const tr = el('tr');
      tr.appendChild(el('th', {scope: 'row'}, step.encap.type || 'tunnel'));
      tr.appendChild(el('td', {}, 'vni ' + step.encap.vni + ', outer udp ' + o.src + ':' + o.sport + ' > ' + o.dst + ':' + o.dport));
      table.appendChild(tr);
    }
    return table;
  }

  function highlight(id) {
    document.querySelectorAll('#diagram g.current').forEach(g => g.classList.remove('current'));
    if (!id) return;
    const g = document.getElementById(id);
    if (g) g.classList.add('current');
  }

  function show() {
    const l = data.legs[leg], step = l.steps[index];
    if (!step) { hopBox.textContent = 'This path has no hops.'; prev.disabled = next.disabled = true; return; }
    legSelect.value = String(leg);
    position.textContent = 'Hop ' + (index + 1) + ' of ' + l.steps.length;
    prev.disabled = index === 0;
    next.disabled = index === l.steps.length - 1;
    hopBox.className = 'tone-' + step.tone;
    hopBox.replaceChildren();
    hopBox.appendChild(el('h2', {}, step.n + '. ' + step.event + (step.dev ? ' [' + step.dev + ']' : '')));
    hopBox.appendChild(el('p', {class: 'where'}, 'at ' + step.where));
    if (step.table || step.chain) {
      const rule = el('div', {class: 'rule', 'data-chain': (step.table || '') + ' ' + (step.chain || '')});
      rule.appendChild(el('div', {class: 'chain'}, 'table ' + (step.table || '?') + ', chain ' + (step.chain || '?')));
      if (step.rule) rule.appendChild(el('code', {class: 'rule-text'}, step.rule));
      if (step.action) rule.appendChild(el('div', {class: 'tag tone-' + step.tone}, '→ ' + step.action.toUpperCase()));
      hopBox.appendChild(rule);
    }
    hopBox.appendChild(el('p', {class: 'explain'}, step.detail));
    hopBox.appendChild(headers(step));
    list.querySelectorAll('button').forEach((b, i) => {
      if (i === index) b.setAttribute('aria-current', 'step'); else b.removeAttribute('aria-current');
    });
    const current = list.querySelector('[aria-current="step"]');
    if (current) {          // keep the current hop in view inside the list, not the page
      const top = current.offsetTop, bottom = top + current.offsetHeight;
      if (top < list.scrollTop || bottom > list.scrollTop + list.clientHeight)
        list.scrollTop = Math.max(0, top - list.clientHeight / 2);
    }
    highlight(step.element);
    document.body.dataset.element = step.element || '';
  }

  function chooseLeg(i) {
    leg = i; index = 0;
    const l = data.legs[leg];
    list.replaceChildren();
    l.steps.forEach((s, i) => {
      const li = el('li');
      const b = el('button', {type: 'button', class: 'tone-' + s.tone}, s.n + '. ' + s.where + ' — ' + s.event + (s.chain ? ' ' + s.table + ' ' + s.chain : ''));
      b.addEventListener('click', () => { index = i; show(); });
      li.appendChild(b);
      list.appendChild(li);
    });
    ending.replaceChildren(...l.ending.map(t => el('p', {}, t)));
    show();
  }

  if (!data.legs.length) {
    document.querySelector('.controls').hidden = true;
    hopBox.textContent = 'No trace on this page: draw one with --from NS --to IP.';
    return;
  }
  prev.addEventListener('click', () => { if (index > 0) { index--; show(); } });
  next.addEventListener('click', () => { if (index < data.legs[leg].steps.length - 1) { index++; show(); } });
  legSelect.addEventListener('change', () => chooseLeg(Number(legSelect.value)));
  document.addEventListener('keydown', e => {
    if (e.target === legSelect || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === 'ArrowRight') { next.click(); e.preventDefault(); }
    else if (e.key === 'ArrowLeft') { prev.click(); e.preventDefault(); }
    else if (e.key === 'Home') { index = 0; show(); e.preventDefault(); }
    else if (e.key === 'End') { index = data.legs[leg].steps.length - 1; show(); e.preventDefault(); }
  });
  chooseLeg(0);
})();
"""
