"""A trace as packets (pcapng, for Wireshark and tshark): the frame as each device
it crosses sees it — Ethernet with the lab's MACs, IPv4, ICMP/TCP/UDP, VXLAN
around the inner frame where the trace says it was encapsulated — and the reply.

One packet per veth hop (captured on the device it leaves), per loopback and exit
hop, and on the VXLAN device at each end of a tunnel (the inner frame). Each packet
names its device (``node/netns:dev``, the pcapng interface) and carries a comment
with the path, the hop number and what happened there. scapy is imported when a
capture is built.
"""

from __future__ import annotations

from netlab.trace import Packet, Trace
from netlab.viz.journey import Leg, Step, legs, place

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
        tunnelled = encap is not None and step.hop.event not in ("encap", "decap")
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


def captured(step: Step) -> bool:
    """Whether a device sees the packet at this step: a veth it leaves by, lo, the
    device it exits through, the VXLAN device at either end of a tunnel."""
    return step.hop.event in ("veth", "loopback", "exit", "encap", "decap") \
        and bool(step.hop.dev)


def frames(trace: Trace):
    """(frame, device, comment) for every captured step of every leg, in order; each
    frame is good until the next one is made."""
    made = _Frames()
    for leg in legs(trace):
        for step in leg.steps:
            if captured(step):
                yield (made.frame(step, leg.reply), f"{place(step.hop)}:{step.hop.dev}",
                       _comment(leg, step))


def _stamp(pkt, n: int, device: str, comment: str):
    pkt.time = START_TIME + n / 1000.0
    pkt.sniffed_on = device
    pkt.comments = [comment.encode()]
    return pkt


def packets(trace: Trace) -> list:
    """The scapy packets of every leg, in order, each with its device and a comment."""
    return [_stamp(pkt.copy(), n, device, comment)
            for n, (pkt, device, comment) in enumerate(frames(trace))]


def _comment(leg: Leg, step: Step) -> str:
    return f"{leg.title} · hop {step.number} · {step.hop.event}: {step.hop.detail}"


def write_pcap(trace: Trace, path: str) -> int:
    """Write the capture to ``path`` (pcapng); the number of packets."""
    from scapy.utils import PcapNgWriter

    writer = PcapNgWriter(path)
    n = 0
    try:
        for n, (pkt, device, comment) in enumerate(frames(trace), 1):
            pkt = _stamp(pkt, n - 1, device, comment)
            if not writer.header_present:
                writer.write_header(pkt)
            # write_packet, not write: write iterates a packet, which clones it per field
            writer.write_packet(pkt)
    finally:
        writer.close()
    return n
