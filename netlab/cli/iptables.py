"""`netlab iptables trace`: a real node's iptables-save, and one packet through it.

    netlab iptables trace --save node1.save --local-ip 192.168.1.11 \\
        --from 10.244.1.9 --to 10.96.0.10:53 --proto udp

The node is built from the flags (netlab.netfilter.hostmode): its interfaces
(`--iface NAME=IP/PFX`, or one `eth0` holding every `--local-ip`), a default
route out of the first one, forwarding on. The packet arrives on `--in-iface`
(default eth0) from `--from`, or is sent by the node itself when `--from` is
one of its addresses. Every rule it traverses is printed with its position
(table/chain #n), then the NAT applied, the mark, and each path with its
probability.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import typer

from netlab.cli.common import examples, fail, handles_errors, print_json

app = typer.Typer(
    name="iptables",
    rich_markup_mode="markdown",
    help="Load a real node's `iptables-save` and trace packets through its rules.",
    no_args_is_help=True,
)

EPILOG = examples(
    "netlab iptables trace --save node1.save --local-ip 192.168.1.11 --from 10.244.1.9 "
    "--to 10.96.0.10:53 --proto udp",
    "netlab iptables trace --save node1.save --local-ip 192.168.1.11 --from 192.168.1.50 "
    "--to 192.168.1.11:30080 --proto tcp --json",
    "netlab iptables trace --save docker.save --iface eth0=192.168.1.2/24 "
    "--iface docker0=172.17.0.1/16 --from 192.168.1.3 --to 192.168.1.2:8080 --proto tcp",
)


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="iptables")


@app.command("trace", epilog=EPILOG)
@handles_errors
def trace_command(
    save: str = typer.Option(..., "--save", metavar="FILE",
                             help="The node's rules: what `iptables-save` printed there."),
    local_ip: list[str] = typer.Option([], "--local-ip", metavar="IP[/PFX]",
                                       help="An address of the node (repeat for more)."),
    iface: list[str] = typer.Option([], "--iface", metavar="NAME=IP/PFX",
                                    help="An interface of the node and its address (repeat). "
                                         "Without: one eth0 holding the --local-ip addresses."),
    source: str = typer.Option(..., "--from", metavar="IP",
                               help="The sender: an outside address (the packet arrives on "
                                    "--in-iface), or one of the node's (sent by the node)."),
    to: str = typer.Option(..., "--to", metavar="IP[:PORT]",
                           help="Destination IP, or IP:PORT for tcp/udp."),
    proto: str = typer.Option(None, "--proto", metavar="tcp|udp|icmp",
                              help="icmp, tcp or udp (default: tcp with a port, else icmp)."),
    in_iface: str = typer.Option(None, "--in-iface", metavar="DEV",
                                 help="The interface the packet arrives on (default: eth0, "
                                      "or the first --iface)."),
    sport: int = typer.Option(None, "--sport", min=1, max=65535,
                              help="Source port for tcp/udp (default 40000)."),
    all_paths: bool = typer.Option(True, "--all-paths", help="Show every path (the default)."),
    pick: int = typer.Option(None, "--pick", metavar="N", min=1, help="Show only path N."),
    as_json: bool = typer.Option(False, "--json", help="Print the Trace JSON."),
) -> None:
    """Trace one packet through a node's iptables rules, rule by rule.

    Prints each rule the packet traverses with its position (table/chain #n), the NAT
    applied, the packet mark, and every path a `-m statistic` rule opens with its
    probability. A packet that leaves the node towards a network that is not modelled
    ends `exited`, as it is when it left (after POSTROUTING).
    """
    from netlab.cli.trace import parse_target
    from netlab.netfilter import hostmode

    ip, port, proto = parse_target(to, proto)
    if sport is not None and proto == "icmp":
        fail("--sport needs --proto tcp or udp")
    _check_ip(source, "--from")
    dump = read_dump(save)
    spec = hostmode.HostSpec.from_flags(local_ips=local_ip, ifaces=iface)
    host = hostmode.build(spec, dump, dump_name=save)
    traced = hostmode.trace_packet(host, src=source, dst=ip, proto=proto, dport=port,
                                   sport=sport, in_iface=in_iface or spec.names[0])
    if pick is not None:
        if pick > len(traced.paths):
            fail(f"--pick {pick}: the trace has {len(traced.paths)} path(s)")
        traced.paths = [traced.paths[pick - 1]]
    if as_json:
        print_json(traced.to_json())
        return
    for line in trace_text(traced, host, numbered_from=pick or 1):
        typer.echo(line)


def _check_ip(text: str, flag: str) -> None:
    import ipaddress

    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        fail(f"{flag}: '{text}' is not an IPv4 address")


def read_dump(path: str) -> str:
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{path}: no such file (expected the output of iptables-save)")
    except IsADirectoryError:
        fail(f"{path}: is a directory, not an iptables-save file")
    except (OSError, UnicodeDecodeError) as err:
        fail(f"{path}: cannot read it: {err}")
    raise AssertionError("unreachable")


# --- text --------------------------------------------------------------------------------

def rule_position(host, hop) -> int | None:
    """The rule's number in its chain (1-based), as `iptables -L --line-numbers` shows it."""
    extra = hop.extra or {}
    for key in ("position", "rule_number", "number", "index"):
        if isinstance(extra.get(key), int):
            return extra[key]
    if not hop.rule or not hop.table or not hop.chain:
        return None
    ns = host.world.namespaces.get(f"{hop.node}/{hop.netns}")
    table = ns.tables.get(hop.table) if ns is not None else None
    chain = table.chains.get(hop.chain) if table is not None else None
    if chain is None:
        return None
    body = hop.rule
    prefix = f"-A {hop.chain} "
    if body.startswith(prefix):
        body = body[len(prefix):]
    try:
        return chain.rules.index(body) + 1
    except ValueError:
        return None


REDUNDANT = re.compile(r"^(?:jump to|goto|go to|RETURN to) \S+\s*(?:\((.*)\))?$")


def netfilter_line(host, hop) -> str:
    """``nat/KUBE-SERVICES #2  -A KUBE-SERVICES … → jump``, and what the hop adds."""
    where = "/".join(x for x in (hop.table, hop.chain) if x)
    policy = not hop.rule or hop.rule.startswith("-P ")
    number = None if policy else rule_position(host, hop)
    head = f"{where} policy" if policy else f"{where} #{number}" if number is not None else where
    text = hop.rule or ""
    if text and not text.startswith("-"):
        text = f"-A {hop.chain} {text}"
    action = f" → {hop.action}" if hop.action else ""
    return f"{head}  {text}{action}{detail_note(hop, text)}"


def detail_note(hop, text: str) -> str:
    detail = (hop.detail or "").strip()
    if not detail or detail == text:
        return ""
    if " — " in detail and detail.split(" — ")[0].endswith(tuple(("ACCEPT", "DROP"))):
        detail = detail.split(" — ", 1)[1]          # "filter FORWARD: policy DROP — why"
    found = REDUNDANT.match(detail)
    if found:
        detail = found.group(1) or ""
    return f"  ({detail})" if detail else ""


def other_line(hop) -> str:
    from netlab.cli.render import hop_line

    return hop_line(hop)


def hop_text(host, hop) -> str:
    return netfilter_line(host, hop) if hop.event == "netfilter" else other_line(hop)


def nat_lines(before, after) -> list[str]:
    """What NAT changed between the packet sent and the packet out."""
    out = []
    if (before.dst, before.dport) != (after.dst, after.dport):
        out.append(f"DNAT {endpoint(before.dst, before.dport)} → "
                   f"{endpoint(after.dst, after.dport)}")
    if (before.src, before.sport) != (after.src, after.sport):
        out.append(f"SNAT {endpoint(before.src, before.sport)} → "
                   f"{endpoint(after.src, after.sport)}")
    return out


def endpoint(ip, port) -> str:
    return f"{ip}:{port}" if port is not None else str(ip)


MARK_CHANGE = re.compile(r"\bmark (0x[0-9a-fA-F]+) → (0x[0-9a-fA-F]+)")


def mark_changes(host, path) -> list[str]:
    """``0x0 → 0x4000 (nat/KUBE-MARK-MASQ #1)`` for each rule that changed the mark."""
    out = []
    for hop in path.hops:
        if hop.event != "netfilter" or not hop.detail:
            continue
        found = MARK_CHANGE.search(hop.detail)
        if found:
            number = rule_position(host, hop)
            where = f"{hop.table}/{hop.chain}" + (f" #{number}" if number else "")
            out.append(f"{found.group(1)} → {found.group(2)} ({where})")
    return out


def probability_text(p: float) -> str:
    frac = Fraction(p).limit_denominator(64)
    exact = abs(float(frac) - p) < 1e-6
    return f"{p:.4g}" + (f" ({frac.numerator}/{frac.denominator})" if exact and frac.denominator > 1
                         else "")


def trace_text(traced, host, numbered_from: int = 1) -> list[str]:
    lines = [f"{traced.packet.describe()} from {traced.source}"]
    total = len(traced.paths)
    if total > 1:
        lines.append(f"{total} paths")
    for i, path in enumerate(traced.paths, numbered_from):
        lines.append("")
        lines.append(f"path {i} (probability {probability_text(path.probability)})"
                     if total > 1 or numbered_from > 1 else
                     f"path (probability {probability_text(path.probability)})")
        lines += [f"  {hop_text(host, hop)}" for hop in path.hops]
        nat = nat_lines(traced.packet, path.packet_out)
        lines.append(f"  nat: {'; '.join(nat) if nat else 'none'}")
        marks = mark_changes(host, path)
        if marks:
            lines.append(f"  mark: {', '.join(marks)}")
        verdict = path.verdict + (f" at {path.delivered_to}" if path.delivered_to else "")
        lines.append(f"  verdict: {verdict}")
        lines.append(f"  outcome: {path.outcome}" + (" (nothing modelled answers out there)"
                                                      if path.verdict == "exited" else ""))
        if path.diagnosis:
            lines.append(f"  diagnosis: {path.diagnosis}")
        lines.append(f"  packet out: {path.packet_out.describe()}")
        if path.reply is not None:
            reply = path.reply
            lines.append(f"  reply: {reply.packet_out.describe()}")
            lines += [f"    {hop_text(host, hop)}" for hop in reply.hops]
            lines.append(f"    reply verdict: {reply.verdict}"
                         + (f" at {reply.delivered_to}" if reply.delivered_to else ""))
            if reply.diagnosis:
                lines.append(f"    reply diagnosis: {reply.diagnosis}")
    return lines
