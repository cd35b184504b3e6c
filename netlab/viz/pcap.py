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
        return ip / UDP(sport=pkt.sport or 0, dport=pkt.dport or 0) / b"netlab"
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


def _ether(macs):
    from scapy.layers.l2 import Ether

    src, dst = macs if macs else (None, None)
    return Ether(src=src or UNKNOWN_MAC, dst=dst or UNKNOWN_MAC)


def frame(step: Step, answer: bool = False):
    """The frame on the wire at this step: inside its tunnel's outer headers on the
    underlay, the inner frame alone on the VXLAN device itself (encap, decap)."""
    inner = _ether(step.inner_ether if step.encap else step.ether) / _l4(step.packet, answer)
    encap = step.encap
    if encap is None or step.hop.event in ("encap", "decap"):
        return inner
    from scapy.layers.inet import IP, UDP
    from scapy.layers.vxlan import VXLAN

    outer = encap.get("outer", {})
    return (_ether(step.ether)
            / IP(src=outer.get("src"), dst=outer.get("dst"), ttl=max(encap.get("ttl", 64), 0))
            / UDP(sport=outer.get("sport") or 0, dport=outer.get("dport") or VXLAN_PORT)
            / VXLAN(vni=encap.get("vni") or 0, flags=0x08)
            / inner)


def captured(step: Step) -> bool:
    """Whether a device sees the packet at this step: a veth it leaves by, lo, the
    device it exits through, the VXLAN device at either end of a tunnel."""
    return step.hop.event in ("veth", "loopback", "exit", "encap", "decap") \
        and bool(step.hop.dev)


def packets(trace: Trace) -> list:
    """The scapy packets of every leg, in order, each with its device and a comment."""
    out = []
    n = 0
    for leg in legs(trace):
        for step in leg.steps:
            if not captured(step):
                continue
            pkt = frame(step, leg.reply)
            pkt.time = START_TIME + n / 1000.0
            pkt.sniffed_on = f"{place(step.hop)}:{step.hop.dev}"
            pkt.comments = [_comment(leg, step).encode()]
            out.append(pkt)
            n += 1
    return out


def _comment(leg: Leg, step: Step) -> str:
    return f"{leg.title} · hop {step.number} · {step.hop.event}: {step.hop.detail}"


def write_pcap(trace: Trace, path: str) -> int:
    """Write the capture to ``path`` (pcapng); the number of packets."""
    from scapy.utils import PcapNgWriter

    pkts = packets(trace)
    writer = PcapNgWriter(path)
    try:
        for pkt in pkts:
            writer.write(pkt)
    finally:
        writer.close()
    return len(pkts)
