"""A trace as the renderers see it: legs (each path and each reply) of numbered steps,
each step a hop with the packet as it is there.

The packet is followed through the hops: a hop that carries ``packet`` (NAT, the start
of an answer) sets it, a ``forward`` hop takes one off the TTL, an ``arp`` hop sets the
Ethernet header, and a tunnel's ``encap`` hop wraps the packet in its outer header until
the next ``decap`` hop (``tunnel_action``; trace.py, Hop.extra).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netlab.trace import Hop, Packet, Path, Trace

NAT_ACTIONS = ("dnat", "snat", "masquerade", "redirect")
HEADER_FIELDS = ("src", "sport", "dst", "dport")


@dataclass
class Step:
    number: int                       # 1-based in its leg
    hop: Hop
    packet: Packet                    # the packet after this hop
    before: Packet | None = None      # the packet before, when this hop rewrote it
    changed: tuple[str, ...] = ()     # header fields this hop rewrote
    ether: tuple[str | None, str | None] | None = None   # (src MAC, dst MAC) in effect
    encap: dict[str, Any] | None = None    # the tunnel the packet is inside, if any
    inner_ether: tuple[str | None, str | None] | None = None   # inside the tunnel

    @property
    def tone(self) -> str:
        return tone(self.hop)


@dataclass
class Leg:
    key: str                          # "p1", "p1r" (the reply of path 1)
    title: str
    path: Path
    reply: bool
    steps: list[Step] = field(default_factory=list)
    start: Packet | None = None


def tone(hop: Hop) -> str:
    """What kind of hop this is, for colour: accept, drop, nat, rule, or the event."""
    extra = hop.extra or {}
    if extra.get("nat") or hop.action in NAT_ACTIONS:
        return "nat"
    if hop.event == "netfilter":
        if hop.action == "accept":
            return "accept"
        if hop.action in ("drop", "reject"):
            return "drop"
        return "rule"
    if hop.event in ("drop", "ttl") or (hop.event == "arp" and "mac" in extra
                                       and extra["mac"] is None):
        return "drop"
    if hop.event in ("icmp", "tcp-reset", "exit"):
        return "warn"
    if hop.event == "deliver":
        return "accept"
    return hop.event


def packet_from_json(data: dict[str, Any]) -> Packet:
    """A hop's ``packet``; an ICMP error keeps the header it quotes (``inner``)."""
    pkt = Packet.from_json(data)
    inner = data.get("inner")
    if inner is None:
        return pkt
    from netlab.dataplane.conntrack import IcmpError

    return IcmpError(**{f: getattr(pkt, f) for f in pkt.__dataclass_fields__},
                     inner=packet_from_json(inner))


def tunnel_action(hop: Hop) -> str | None:
    """"encap" or "decap" for a tunnel's hop (a VXLAN device's), else None."""
    if hop.event == "vxlan" and hop.action in ("encap", "decap"):
        return hop.action
    return None


def tunnel_of(hop: Hop) -> dict[str, Any]:
    """The tunnel an ``encap`` hop opens: type, vni, outer header (and its TTL)."""
    extra = hop.extra or {}
    outer = dict(extra.get("outer") or {})
    return {"type": hop.event, "vni": extra.get("vni"), "outer": outer,
            "ttl": outer.get("ttl", 64)}


def changed_fields(before: Packet, after: Packet) -> tuple[str, ...]:
    return tuple(f for f in HEADER_FIELDS if getattr(before, f) != getattr(after, f))


def walk_hops(hops: list[Hop], start: Packet) -> list[Step]:
    """Number the hops and follow the packet (and its Ethernet header, and its tunnel)
    through them, from ``start``, the packet as its sender's stack made it."""
    steps: list[Step] = []
    pkt = start
    ether = None
    encap = None
    inner_ether = None
    for n, hop in enumerate(hops, 1):
        extra = hop.extra or {}
        before = None
        changed: tuple[str, ...] = ()
        tunnel = tunnel_action(hop)
        if tunnel == "encap":
            encap = tunnel_of(hop)
            inner_ether = (extra.get("src_mac"), extra["mac"]) if extra.get("mac") else ether
            ether = None
        elif tunnel == "decap" and encap is not None:
            encap, ether, inner_ether = None, inner_ether, None
        elif "packet" in extra and encap is None:
            new = packet_from_json(extra["packet"])
            changed = changed_fields(pkt, new)
            if changed:
                before = pkt
            pkt = new
        elif hop.event == "forward":
            if encap is not None:
                encap = {**encap, "ttl": encap["ttl"] - 1}
            else:
                pkt = pkt.with_(ttl=pkt.ttl - 1)
        if hop.event == "arp" and extra.get("mac") and tunnel is None:
            ether = (extra.get("src_mac"), extra["mac"])
        steps.append(Step(n, hop, pkt, before, changed, ether, encap, inner_ether))
    return steps


def reply_start(path: Path) -> Packet | None:
    reply = path.reply
    if reply is None:
        return None
    first = reply.hops[0].extra if reply.hops and reply.hops[0].extra else {}
    if "packet" in first:
        return packet_from_json(first["packet"])
    return reply.packet_out     # an answer that never left: it is as it was made


def legs(trace: Trace) -> list[Leg]:
    """Every path of the trace and its reply, in order."""
    out: list[Leg] = []
    total = len(trace.paths)
    for i, path in enumerate(trace.paths, 1):
        title = f"path {i} of {total} (probability {path.probability:g})" if total > 1 \
            else "the packet"
        leg = Leg(f"p{i}", title, path, False, walk_hops(path.hops, trace.packet),
                  trace.packet)
        out.append(leg)
        if path.reply is not None:
            start = reply_start(path)
            name = f"reply of path {i}" if total > 1 else "the reply"
            out.append(Leg(f"p{i}r", f"{name}: {start.describe()}", path.reply, True,
                           walk_hops(path.reply.hops, start), start))
    return out


def place(hop: Hop, switches: frozenset[str] | set[str] = frozenset()) -> str:
    """Where a hop happened, as a person names it: red, node1/red, node1, lan (switch)."""
    if hop.netns == "root":
        return f"{hop.node} (switch)" if hop.node in switches else hop.node
    return f"{hop.node}/{hop.netns}"


def verdict_text(path: Path) -> str:
    if not path.delivered_to:
        return path.verdict
    word = "to" if path.verdict == "delivered" else "at"
    return f"{path.verdict} {word} {path.delivered_to}"


def endpoint(pkt: Packet, side: str) -> str:
    ip = pkt.src if side == "src" else pkt.dst
    port = pkt.sport if side == "src" else pkt.dport
    return f"{ip}:{port}" if port is not None else f"{ip}"
