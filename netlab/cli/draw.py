"""`netlab draw LAB|--world FILE`: the topology as DOT, SVG, Mermaid or a web page,
with a trace drawn on it; and the outputs `netlab trace` and `lab run` share (the
terminal tree, --html, --pcap)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from netlab.cli.common import examples, fail, handles_errors, open_lab, resolve_netns
from netlab.cli.lab import LAB_HELP

FORMATS = ("dot", "svg", "mermaid", "html")
SUFFIXES = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".mmd": "mermaid", ".md": "mermaid",
            ".html": "html", ".htm": "html"}

EPILOG = examples(
    "netlab draw 03",
    "netlab draw 05 --format svg -o lab05.svg",
    "netlab draw 05 --from red --to 192.168.1.3 -o trace.html",
    "netlab draw --world world.json --format mermaid",
    "netlab draw -f cluster.yaml -f manifests/ --format svg -o cluster.svg",
)


# --- shared outputs ----------------------------------------------------------------------
def write_output(path: str, data: str | bytes) -> None:
    """Write a file the user asked for; a one-line error when it cannot be written."""
    try:
        if isinstance(data, bytes):
            Path(path).write_bytes(data)
        else:
            Path(path).write_text(data, encoding="utf-8")
    except OSError as err:
        fail(f"{path}: cannot write: {err.strerror or err}")


def print_trace(trace, world, *, no_color: bool = False, switches=None) -> None:
    """The trace as a tree: coloured on a terminal, plain text otherwise. ``switches``:
    the names of the LAN switches (default: the World's)."""
    import os

    from netlab.viz.text import ansi, plain, trace_lines

    if switches is None:
        switches = [lan.name for lan in world.lans]
    lines = trace_lines(trace, switches=switches)
    colour = not no_color and sys.stdout.isatty() and not os.environ.get("NO_COLOR") \
        and os.environ.get("TERM") != "dumb"
    sys.stdout.write(ansi(lines) if colour else plain(lines))
    sys.stdout.flush()


def write_html(path: str, world, traces, *, title: str, intro: str = "") -> None:
    from netlab.viz.html import build_page

    write_output(path, build_page(title, world, traces, intro=intro))


def write_pcap(path: str, trace, world) -> None:
    from netlab.viz.pcap import write_pcap as write

    try:
        write(trace, path, world)
    except OSError as err:
        fail(f"{path}: cannot write: {err.strerror or err}")


def load_world(lab: str | None, world_file: str | None, after_step: int | None):
    """The World a command looks at: a lab's state after its steps (or step N), or a
    World file. (world, the node names default to)."""
    from netlab.labs import run_lab

    if (lab is None) == (world_file is None):
        fail("give a LAB or --world FILE (one of them)")
    if world_file is not None and after_step is not None:
        fail("--after-step needs a LAB, not --world")
    if world_file is not None:
        from netlab.cli.snapshot import load_world_file

        world = load_world_file(world_file)
        return world, world.nodes[0] if world.nodes else None
    loaded = open_lab(lab)
    if after_step is not None and after_step > len(loaded.steps):
        fail(f"{loaded.path}: --after-step {after_step}: the lab has {len(loaded.steps)} steps")
    result = run_lab(loaded, until=after_step, check_expect=False, keep_going=True)
    return result.world, loaded.nodes[0]


# --- netlab draw ---------------------------------------------------------------------------
def register(app: typer.Typer) -> None:
    app.command("draw", epilog=EPILOG)(draw_command)


def pick_format(fmt: str | None, output: str | None) -> str:
    if fmt is None:
        fmt = SUFFIXES.get(Path(output).suffix.lower(), "dot") if output else "dot"
    fmt = fmt.lower()
    if fmt not in FORMATS:
        fail(f"--format: '{fmt}' is not one of {', '.join(FORMATS)}")
    return fmt


@handles_errors
def draw_command(
    lab: str = typer.Argument(None, help=LAB_HELP + " (or --world FILE)", metavar="LAB"),
    world_file: str = typer.Option(None, "--world", metavar="FILE",
                                   help="Draw a World file (netlab snapshot) instead of a LAB."),
    fmt: str = typer.Option(None, "--format", metavar="dot|svg|mermaid|html",
                            help="What to write (default: from -o's suffix, else dot)."),
    output: str = typer.Option(None, "-o", "--output", metavar="FILE",
                               help="Write to FILE instead of standard output."),
    after_step: int = typer.Option(None, "--after-step", metavar="N", min=0,
                                   help="Draw the state after step N (default: the last)."),
    source: str = typer.Option(None, "--from", metavar="NS",
                               help="Draw a trace from this namespace (with --to)."),
    to: str = typer.Option(None, "--to", metavar="IP[:PORT]", help="The trace's destination."),
    proto: str = typer.Option(None, "--proto", metavar="tcp|udp|icmp",
                              help="The trace's protocol (as for netlab trace)."),
    trace_file: str = typer.Option(None, "--trace", metavar="FILE",
                                   help="Draw a trace saved by netlab trace --json."),
    files: list[str] = typer.Option(None, "-f", "--file", metavar="PATH",
                                    help="A cluster file and manifests instead of a LAB (as "
                                         "for netlab trace -f)."),
) -> None:
    """Draw a lab's (or with -f a cluster's) topology: nodes as boxes with their
    namespaces inside, veth pairs as lines labelled with both ends' names and addresses,
    bridges and LANs as hubs, VXLAN tunnels dashed.

    With --from and --to a trace is drawn on it: every element the packet crossed, with
    its hop numbers (r1, r2, … for the reply). The html format is a page that steps
    through the hops.
    """
    from netlab.viz.journey import legs as trace_legs
    from netlab.viz.topology import overlay, topology

    kind = pick_format(fmt, output)
    if (source is None) != (to is None):
        fail("a trace needs both --from NS and --to IP[:PORT]")
    if source is not None and trace_file is not None:
        fail("give --from/--to or --trace FILE, not both")
    if files:
        if lab is not None or world_file is not None or after_step is not None:
            fail("-f (a cluster) replaces LAB, --world and --after-step: give one of them")
        from netlab.k8s.endpoints import cluster_trace, cluster_world

        if source is not None:
            ct = cluster_trace(files, source, to, proto, None)
            world, traced = ct.world, ct.trace
        else:
            world = cluster_world(files)[1]
            traced = load_trace(trace_file) if trace_file is not None else None
    else:
        world, default_node = load_world(lab, world_file, after_step)
        traced = load_trace(trace_file) if trace_file is not None else None
    if source is not None and not files:
        from netlab.cli.trace import parse_target
        from netlab.dataplane.engine import trace

        ip, port, proto = parse_target(to, proto)
        ns = resolve_netns(world, source, default_node)
        traced = trace(world, ns.key, ip, proto=proto, dport=port)
    if kind == "html":
        from netlab.viz.html import build_page

        traces = [] if traced is None else \
            [(f"{traced.packet.describe()} from {traced.source}", traced)]
        title = traces[0][0] if traces else f"{world.name}: topology"
        emit(output, build_page(title, world, traces))
        return
    topo = topology(world)
    over = overlay(topo, world, trace_legs(traced)) if traced is not None else None
    if kind == "mermaid":
        from netlab.viz.mermaid import to_mermaid

        emit(output, to_mermaid(topo, over))
        return
    from netlab.viz.dot import DotUnavailable, to_dot, to_svg

    source_text = to_dot(topo, over)
    if kind == "dot":
        emit(output, source_text)
        return
    try:
        emit(output, to_svg(source_text))
    except DotUnavailable as err:
        fail(f"--format svg: {err} (or use --format dot)")


def load_trace(path: str):
    """A Trace from the JSON `netlab trace --json` prints; a one-line error otherwise."""
    import json

    from netlab.trace import Trace

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        fail(f"--trace {path}: cannot read: {err.strerror or err}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        fail(f"{path}:{err.lineno}: not JSON ({err.msg}): expected what netlab trace --json "
             "prints")
    try:
        return Trace.from_json(data)
    except (KeyError, TypeError, AttributeError) as err:
        fail(f"{path}: not a trace: missing {err} — save one with netlab trace … --json > FILE")


def emit(output: str | None, text: str) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_output(output, text)


# --- lab run --html DIR ----------------------------------------------------------------------
class StepPages:
    """`lab run --html DIR`: one page per step (the diagram of the state after it, its
    commands and checks, its traces to step through) and an index.html."""

    def __init__(self, folder: str, lab) -> None:
        self.dir = Path(folder)
        self.lab = lab
        self.written: list[tuple[str, str]] = []
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            fail(f"--html {folder}: cannot make the folder: {err.strerror or err}")

    def add(self, record, world) -> None:
        import html

        from netlab.viz.html import build_page, inline_markdown

        step = record.step
        name = f"step-{step.number:02d}.html"
        traces = [(f"{exp.kind}: {exp.trace.packet.describe()} from {exp.trace.source}",
                   exp.trace) for exp in record.expect if exp.trace is not None]
        parts = [f"<p><a href=\"index.html\">{html.escape(self.lab.title)}</a> — step "
                 f"{step.number} of {len(self.lab.steps)}</p>"]
        if step.explain:
            parts.append(inline_markdown(step.explain))
        details = []
        if record.commands:
            commands = "\n".join(f"$ {c.cmd}" for c in record.commands)
            details.append(f"<pre>{html.escape(commands)}</pre>")
        checks = "".join(f"<li>{'✓' if e.ok else '✗'} {html.escape(e.detail)}</li>"
                         for e in record.expect)
        if checks:
            details.append(f"<ul>{checks}</ul>")
        if details:
            parts.append("<details><summary>Commands and checks</summary>"
                         + "".join(details) + "</details>")
        title = f"{self.lab.title} — step {step.number}: {step.title}"
        write_output(str(self.dir / name), build_page(title, world, traces,
                                                      intro="\n".join(parts)))
        self.written.append((name, step.title))

    def finish(self) -> None:
        import html

        items = "".join(f'<li><a href="{name}">{html.escape(title)}</a></li>'
                        for name, title in self.written)
        write_output(str(self.dir / "index.html"),
                     f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                     f"<title>{html.escape(self.lab.title)}</title></head><body>"
                     f"<h1>{html.escape(self.lab.title)}</h1><ol>{items}</ol></body></html>\n")
