"""A trace as packets (pcapng, for Wireshark and tshark): the frame as each device
it crosses sees it — Ethernet with the lab's MACs, IPv4, ICMP/TCP/UDP, VXLAN
around the inner frame where the trace says it was encapsulated — and the reply.

A frame is captured on the veth it leaves by and (given the World) on the peer it
arrives on, on a bridge device it goes up through or is routed out of, on lo, on
the device it exits the model through, and on the VXLAN device at each end of a
tunnel (the inner frame). Each packet names its device (``node/netns:dev``, the
pcapng interface), its direction there, and carries a comment with the path, the
hop number and what happened there. scapy is imported when a
capture is built.
"""

from __future__ import annotations

from netlab.trace import Packet, Trace
from netlab.viz.journey import Leg, Step, legs, place, tunnel_action

UNKNOWN_MAC = "00:00:00:00:00:00"
VXLAN_PORT = 4789
ECHO_ID = 0x4E4C                 # "NL": the id of the trace's echo request and reply
START_TIME = 1_700_000_000.0     # timestamps: fixed, one millisecond apart


def _l4(pkt: Packet, answer: bool = False):
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror, ICMPerror

    ip = IP(src=pkt.src or "0.0.0.0", dst=pkt.dst, ttl=max(pkt.ttl, 0))
    if pkt.proto == "tcp":
        flags = pkt.tcp_flags or "S"
        # the sender's sequence numbers start at 1000, the answering side's at 5000
        seq, ack = (5000, 1001) if answer else (1000, 5001)
        return ip / TCP(sport=pkt.sport or 0, dport=pkt.dport or 0, flags=flags,
                        seq=seq, ack=ack if "A" in flags else 0)
    if pkt.proto == "udp":
        udp = ip / UDP(sport=pkt.sport or 0, dport=pkt.dport or 0)
        if 53 in (pkt.sport, pkt.dport):     # what a resolver would send, so it decodes
            from scapy.layers.dns import DNS, DNSQR

            udp /= DNS(id=ECHO_ID, qr=int(answer), rd=1, qd=DNSQR(qname="netlab.example."))
        return udp
    icmp = ICMP(type=pkt.icmp_type if pkt.icmp_type is not None else 8,
                code=pkt.icmp_code or 0)
    inner = getattr(pkt, "inner", None)
    if inner is not None:       # an ICMP error quotes the header of the packet it is about
        quoted = IPerror(src=inner.src or "0.0.0.0", dst=inner.dst, ttl=max(inner.ttl, 0))
        if inner.proto == "tcp":
            quoted /= TCPerror(sport=inner.sport or 0, dport=inner.dport or 0,
                               flags=inner.tcp_flags or "S")
        elif inner.proto == "udp":
            quoted /= UDPerror(sport=inner.sport or 0, dport=inner.dport or 0)
        else:
            quoted /= ICMPerror(type=inner.icmp_type or 8, id=ECHO_ID, seq=1)
        return ip / icmp / quoted
    if icmp.type in (0, 8):
        icmp.id, icmp.seq = ECHO_ID, 1
    return ip / icmp


def _mac(value: str | None) -> str:
    return value or UNKNOWN_MAC


class _Frames:
    """The frame on the wire at a step: inside its tunnel's outer headers on the
    underlay, the inner frame alone on the VXLAN device itself (encap, decap).

    Built from templates: one scapy packet per distinct header (the packet but its TTL,
    the tunnel but its TTL); per device only the MACs and TTLs change. A frame is good
    until the next call (write it, or copy it)."""

    def __init__(self) -> None:
        self.templates: dict = {}

    def frame(self, step: Step, answer: bool):
        encap = step.encap
        tunnelled = encap is not None and tunnel_action(step.hop) is None
        outer = tuple(sorted((encap.get("outer") or {}).items())) if tunnelled else None
        key = (step.packet.with_(ttl=0), answer, outer,
               encap.get("vni") if tunnelled else None)
        made = self.templates.get(key)
        if made is None:
            made = self.templates[key] = self._template(step, answer, tunnelled)
        pkt, inner_ether, inner_ip, outer_ip = made
        macs = (step.inner_ether if encap is not None else step.ether) or (None, None)
        inner_ether.src, inner_ether.dst = _mac(macs[0]), _mac(macs[1])
        inner_ip.ttl = max(step.packet.ttl, 0)
        if tunnelled:
            macs = step.ether or (None, None)
            pkt.src, pkt.dst = _mac(macs[0]), _mac(macs[1])
            outer_ip.ttl = max(encap.get("ttl", 64), 0)
        # Every field holds one value (no ranges, nothing random): building need not
        # resolve them first, which would clone each layer (setting a field clears it).
        layer = pkt
        while layer:
            layer.explicit = 1
            layer = layer.payload
        return pkt

    @staticmethod
    def _template(step: Step, answer: bool, tunnelled: bool):
        from scapy.layers.inet import IP, UDP
        from scapy.layers.l2 import Ether
        from scapy.layers.vxlan import VXLAN

        inner = Ether() / _l4(step.packet, answer)
        if tunnelled:
            encap = step.encap
            outer = encap.get("outer", {})
            pkt = (Ether() / IP(src=outer.get("src"), dst=outer.get("dst"))
                   / UDP(sport=outer.get("sport") or 0, dport=outer.get("dport") or VXLAN_PORT)
                   / VXLAN(vni=encap.get("vni") or 0, flags=0x08) / inner)
            inner = pkt[VXLAN].payload
        else:
            pkt = inner
        return pkt, inner, inner[IP], pkt[IP] if tunnelled else None


INBOUND, OUTBOUND = 1, 2          # pcapng's packet direction
QUIET = ("netfilter", "conntrack")  # hops that do not move the frame


def _near(steps: list[Step], i: int, way: int) -> Step | None:
    """The closest step before (way -1) or after (+1) that moves the frame."""
    i += way
    while 0 <= i < len(steps):
        if steps[i].hop.event not in QUIET:
            return steps[i]
        i += way
    return None


def captures(steps: list[Step], i: int, world=None) -> list[tuple[str, int]]:
    """Where the frame of step i is seen: (device, direction). A veth it leaves by and,
    with the World, the peer it arrives on; lo; the device it exits through; the VXLAN
    device at either end of a tunnel; with the World, a bridge device the frame goes up
    through or is routed out of (frames switched between two ports do not show there)."""
    hop = steps[i].hop
    if not hop.dev:
        return []
    here = f"{place(hop)}:{hop.dev}"
    event = hop.event
    tunnel = tunnel_action(hop)
    if event in ("loopback", "exit") or tunnel == "encap":
        return [(here, OUTBOUND)]
    if tunnel == "decap":
        return [(here, INBOUND)]
    if world is None or event not in ("veth", "bridge"):
        return [(here, OUTBOUND)] if event == "veth" else []
    ns = world.namespaces.get(f"{hop.node}/{hop.netns}")
    link = ns.links.get(hop.dev) if ns is not None else None
    if link is None:
        return [(here, OUTBOUND)] if event == "veth" else []
    if event == "veth":
        out = [(here, OUTBOUND)]
        peer = world.peer_of(ns, link)
        if peer is not None:
            out.append((f"{peer[0].label}:{peer[1].name}", INBOUND))
        return out
    same_ns = (hop.node, hop.netns)
    if link.kind == "bridge":              # "receives the frame on port …"
        after = _near(steps, i, +1)
        switched = after is not None and after.hop.event == "bridge" \
            and (after.hop.node, after.hop.netns) == same_ns
        return [] if switched else [(here, INBOUND)]
    if link.master is not None:            # "forwards the frame out of port …"
        before = _near(steps, i, -1)
        routed = before is not None and before.hop.event == "arp" \
            and before.hop.dev == link.master and (before.hop.node, before.hop.netns) == same_ns
        return [(f"{place(hop)}:{link.master}", OUTBOUND)] if routed else []
    return []


def frames(trace: Trace, world=None):
    """(frame, [(device, direction)], comment) for every step a device sees the packet
    at, leg by leg, in order; each frame is good until the next one is made."""
    made = _Frames()
    for leg in legs(trace):
        for i, step in enumerate(leg.steps):
            seen = captures(leg.steps, i, world)
            if seen:
                yield made.frame(step, leg.reply), seen, _comment(leg, step)


class _Record(bytes):
    """A frame's bytes with what the pcapng writer reads off a packet (its time,
    interface, direction, comment): built once, written for each device that sees it."""
    time: float
    sniffed_on: str
    direction: int
    comments: list[bytes]


def records(trace: Trace, world=None):
    n = 0
    for pkt, seen, comment in frames(trace, world):
        raw = bytes(pkt)
        for device, direction in seen:
            record = _Record(raw)
            record.time = START_TIME + n / 1000.0
            record.sniffed_on, record.direction = device, direction
            record.comments = [comment.encode()]
            yield record
            n += 1


def packets(trace: Trace, world=None) -> list:
    """The scapy packets, in order, each with its device and direction."""
    from scapy.layers.l2 import Ether

    out = []
    for record in records(trace, world):
        pkt = Ether(bytes(record))
        pkt.sniffed_on, pkt.direction = record.sniffed_on, record.direction
        out.append(pkt)
    return out


def _comment(leg: Leg, step: Step) -> str:
    return f"{leg.title} · hop {step.number} · {step.hop.event}: {step.hop.detail}"


def write_pcap(trace: Trace, path: str, world=None) -> int:
    """Write the capture to ``path`` (pcapng); the number of packets. With the World
    the trace ran on, each frame is also seen where it arrives (a veth's peer, a bridge
    device)."""
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapNgWriter

    writer = PcapNgWriter(path)
    n = 0
    try:
        writer.write_header(Ether())          # link type Ethernet for every record
        for n, record in enumerate(records(trace, world), 1):
            writer.write_packet(record)
    finally:
        writer.close()
    return n
