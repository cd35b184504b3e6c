"""`netlab trace LAB --from NS --to IP[:PORT]`: one packet, hop by hop."""

from __future__ import annotations

import ipaddress

import typer

from netlab.cli.common import examples, fail, handles_errors, print_json, resolve_netns
from netlab.cli.lab import LAB_HELP

EPILOG = examples(
    "netlab trace 02 --from red --to 192.168.15.2",
    "netlab trace 04 --from red --to 192.168.1.3 --after-step 3",
    "netlab trace my-lab.yaml --from node1/pod-a --to 10.96.0.10:80 --proto tcp --json",
    "netlab trace 05 --from red --to 192.168.1.3 --html trace.html --pcap trace.pcap",
    "netlab trace -f cluster.yaml -f manifests/ --from pod/shop/web --to svc/shop/backend:80",
)


def parse_target(to: str, proto: str | None) -> tuple[str, int | None, str]:
    """``IP`` or ``IP:PORT`` and --proto -> (ip, port, proto); a port means tcp unless told."""
    ip, sep, port_text = to.partition(":")
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        fail(f"--to: '{to}' is not an IPv4 address (IP or IP:PORT)")
    port: int | None = None
    if sep:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            fail(f"--to: '{port_text}' is not a port (1-65535)")
        port = int(port_text)
    if proto is None:
        proto = "tcp" if port is not None else "icmp"
    proto = proto.lower()
    if proto not in ("icmp", "tcp", "udp"):
        fail(f"--proto: '{proto}' is not icmp, tcp or udp")
    if proto == "icmp" and port is not None:
        fail("--proto icmp takes no port: use --to IP, or --proto tcp|udp")
    if proto in ("tcp", "udp") and port is None:
        fail(f"--proto {proto} needs a port: --to {ip}:PORT")
    return ip, port, proto


def register(app: typer.Typer) -> None:
    app.command("trace", epilog=EPILOG)(trace_command)


@handles_errors
def trace_command(
    lab: str = typer.Argument(None, help=LAB_HELP + " (or --world FILE)", metavar="LAB"),
    source: str = typer.Option(..., "--from", help="The sending namespace: red, node1/red, node1.",
                               metavar="NS"),
    to: str = typer.Option(..., "--to", help="Destination IP, or IP:PORT for tcp/udp.",
                           metavar="IP[:PORT]"),
    proto: str = typer.Option(None, "--proto", help="icmp (default), or tcp|udp (default with a port).",
                              metavar="tcp|udp|icmp"),
    sport: int = typer.Option(None, "--sport", help="Source port for tcp/udp.", min=1, max=65535),
    after_step: int = typer.Option(None, "--after-step", metavar="N", min=0,
                                   help="Trace on the state after step N (default: the last)."),
    all_paths: bool = typer.Option(True, "--all-paths", help="Show every path (the default)."),
    pick: int = typer.Option(None, "--pick", metavar="N", min=1, help="Show only path N."),
    as_json: bool = typer.Option(False, "--json", help="Print the Trace JSON."),
    world_file: str = typer.Option(None, "--world", metavar="FILE",
                                   help="Trace on a World file (netlab snapshot) instead of a LAB."),
    no_color: bool = typer.Option(False, "--no-color", help="Plain text, no colour."),
    html: str = typer.Option(None, "--html", metavar="FILE",
                             help="Also write a web page that steps through the hops."),
    pcap: str = typer.Option(None, "--pcap", metavar="FILE",
                             help="Also write the packets as each device sees them (pcapng)."),
    files: list[str] = typer.Option(None, "-f", "--file", metavar="PATH",
                                    help="A cluster file and manifests instead of a LAB: --from "
                                         "pod/NS/NAME or node/NAME, --to those, svc/NS/NAME:PORT "
                                         "or a DNS name."),
) -> None:
    """Trace one packet through a lab, hop by hop, and its reply.

    The lab's steps run first (all of them, or up to --after-step); a command the kernel
    would refuse changes nothing and the script goes on, as in a shell. The trace shows
    each hop grouped by namespace, the verdict, what the sender sees (success, refused,
    unreachable, timeout), a diagnosis, and the reply.
    """
    from netlab.cli.draw import load_world
    from netlab.dataplane.engine import trace

    if files:
        if lab is not None or world_file is not None:
            fail("-f (a cluster) replaces LAB and --world: give one of them")
        return _cluster_trace(files, source, to, proto, sport, pick, as_json, no_color, html, pcap)
    ip, port, proto = parse_target(to, proto)
    if sport is not None and proto == "icmp":
        fail("--sport needs --proto tcp or udp")
    world, default_node = load_world(lab, world_file, after_step)
    ns = resolve_netns(world, source, default_node)
    traced = trace(world, ns.key, ip, proto=proto, dport=port, sport=sport)
    _pick_and_write(traced, world, pick, html, pcap)
    if as_json:
        print_json(traced.to_json())
        return
    from netlab.cli.draw import print_trace

    print_trace(traced, world, no_color=no_color)


def _pick_and_write(traced, world, pick, html, pcap, before=None) -> None:
    """Keep only path ``pick`` (1-based) if given; write the --html page (with the trace
    ``before`` it, a DNS query, as a page of its own) and the --pcap capture."""
    if pick is not None:
        if pick > len(traced.paths):
            fail(f"--pick {pick}: the trace has {len(traced.paths)} path(s)")
        traced.paths = [traced.paths[pick - 1]]
    if html is not None:
        from netlab.cli.draw import write_html

        title = f"{traced.packet.describe()} from {traced.source}"
        pages = [(title, traced)]
        if before is not None:
            pages.insert(0, (f"DNS query: {before.packet.describe()}", before))
        write_html(html, world, pages, title=title)
    if pcap is not None:
        from netlab.cli.draw import write_pcap

        write_pcap(pcap, traced, world)


def _cluster_trace(files, source, to, proto, sport, pick, as_json, no_color, html, pcap) -> None:
    from netlab.cli.draw import print_trace
    from netlab.k8s.endpoints import cluster_trace

    ct = cluster_trace(files, source, to, proto, sport)
    traced = ct.trace
    _pick_and_write(traced, ct.world, pick, html, pcap, before=ct.dns_trace)
    if as_json:
        out = traced.to_json()
        if ct.dns_queries is not None:
            out["dns"] = {"queries": [{"name": q, "answer": a} for q, a in ct.dns_queries],
                          "trace": ct.dns_trace.to_json()}
        print_json(out)
        return
    if ct.dns_queries is not None:
        for name, answer in ct.dns_queries:
            typer.echo(f"DNS A? {name} -> {', '.join(answer) if answer else 'NXDOMAIN'}")
        typer.echo("DNS query packet to the kube-dns Service:")
        print_trace(ct.dns_trace, ct.world, no_color=no_color, switches=ct.switches)
        typer.echo("The connection:")
    print_trace(traced, ct.world, no_color=no_color, switches=ct.switches)
