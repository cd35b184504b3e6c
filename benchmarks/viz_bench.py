"""Rendering a long trace in every format: a chain of namespaces joined by veth pairs,
each routing to the next, so one ping crosses 100 hops or more.

Prints one JSON object per format (DESIGN.md, "Benchmarks"): the median time to render
the trace, target 50 ms (SVG has none: it is Graphviz's layout), against the trace
itself measured in the same process.

    python benchmarks/viz_bench.py [--hops 100] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netlab import ops as O  # noqa: E402
from netlab.backends.model import ModelBackend  # noqa: E402
from netlab.commands.shell import Shell  # noqa: E402
from netlab.dataplane import trace  # noqa: E402

TARGET_MS = 50


def chain_script(n: int) -> str:
    """r0 — r1 — … — r(n-1): link i is 10.(i//256).(i%256).0/30 between r(i) and r(i+1)."""
    lines = []
    for i in range(n):
        lines += [f"ip netns add r{i}", f"ip -n r{i} link set lo up"]
        if 0 < i < n - 1:
            lines.append(f"ip netns exec r{i} sysctl -w net.ipv4.ip_forward=1")
    for i in range(n - 1):
        net = f"10.{i // 256}.{i % 256}"
        lines += [f"ip link add a{i} netns r{i} type veth peer name b{i} netns r{i + 1}",
                  f"ip -n r{i} addr add {net}.1/30 dev a{i}",
                  f"ip -n r{i + 1} addr add {net}.2/30 dev b{i}",
                  f"ip -n r{i} link set a{i} up", f"ip -n r{i + 1} link set b{i} up"]
    for i in range(n):
        if i < n - 1:
            lines.append(f"ip -n r{i} route add 10.0.0.0/8 via 10.{i // 256}.{i % 256}.2")
        if i > 1:           # back to r0's link, through the previous namespace
            j = i - 1
            lines.append(f"ip -n r{i} route add 10.0.0.0/30 via 10.{j // 256}.{j % 256}.1")
    return "\n".join(lines)


def build(n: int):
    backend = ModelBackend()
    backend.apply(O.AddNode("host"))
    results = Shell(backend, "host").run_script(chain_script(n))
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"build failed: {failed[0].cmd}: {failed[0].error}")
    return backend.world


def long_trace(hops: int):
    """The smallest chain whose ping crosses at least ``hops`` hops one way."""
    n = max(3, hops // 3)
    while True:
        world = build(n)
        last = n - 2
        dst = f"10.{last // 256}.{last % 256}.2"
        t = trace(world, "host/r0", dst)
        if len(t.paths[0].hops) >= hops:
            return world, t
        n += 1


def median_ms(fn, runs: int) -> float:
    fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def figure(name: str, value: float, target, base: float, hops: int) -> None:
    print(json.dumps({"figure": name, "value": round(value, 2), "unit": "ms", "target": target,
                      "baseline": f"the trace itself ({hops} hops one way, with its reply)",
                      "baseline_value": round(base, 2),
                      "ratio": round(value / base, 2) if base else None}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", type=int, default=100)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    from rich.console import Console

    from netlab.viz.dot import DotUnavailable, to_dot, to_svg
    from netlab.viz.html import html_page, page_legs
    from netlab.viz.journey import legs
    from netlab.viz.mermaid import to_mermaid
    from netlab.viz.pcap import write_pcap
    from netlab.viz.text import ansi, plain, rich_text, trace_lines
    from netlab.viz.topology import overlay, topology

    world, t = long_trace(args.hops)
    hops = len(t.paths[0].hops)
    dst = t.paths[0].packet_out.dst
    base = median_ms(lambda: trace(world, "host/r0", dst), args.runs)
    console = Console(file=open(os.devnull, "w"), force_terminal=True, width=200)

    def text():
        return plain(trace_lines(t))

    def text_colour():                   # what netlab trace writes to a terminal
        return ansi(trace_lines(t))

    def text_rich():                     # through a rich console (lab run --step)
        console.print(rich_text(trace_lines(t)), soft_wrap=True)

    def diagram(writer):
        topo = topology(world)
        return writer(topo, overlay(topo, world, legs(t)))

    def html():
        entries = page_legs([("bench", t)])
        topo = topology(world)
        return html_page("bench", entries, overlay(topo, world, [leg for _, leg in entries]),
                         svg=None)

    tmp = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False)
    tmp.close()
    dot_source = diagram(to_dot)
    formats = [("text", text), ("text_colour", text_colour), ("text_rich_console", text_rich),
               ("dot", lambda: diagram(to_dot)), ("mermaid", lambda: diagram(to_mermaid)),
               ("html_without_svg", html), ("pcap", lambda: write_pcap(t, tmp.name, world))]
    for name, fn in formats:
        figure(f"viz_{name}_{hops}hops_ms", median_ms(fn, args.runs), TARGET_MS, base, hops)
    try:
        figure(f"viz_svg_{hops}hops_ms", median_ms(lambda: to_svg(dot_source), 3), None,
               base, hops)
    except DotUnavailable as err:
        print(json.dumps({"figure": f"viz_svg_{hops}hops_ms", "value": None, "unit": "ms",
                          "target": None, "skipped": str(err)}))
    os.unlink(tmp.name)


if __name__ == "__main__":
    main()
