"""Trace, Path, Hop and Packet: what a traced packet did, as data.

Rendering lives in viz/ and cli/; these types only know their JSON form
(DESIGN.md, "Trace JSON").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# Verdicts (where the packet ended) and outcomes (what the sender sees).
DELIVERED = "delivered"
EXITED = "exited"
DROPPED = "dropped"
REJECTED = "rejected"
NO_ROUTE = "no-route"
HOST_UNREACHABLE = "host-unreachable"
NO_LISTENER = "no-listener"
TTL_EXCEEDED = "ttl-exceeded"
FORWARDING_DISABLED = "forwarding-disabled"
LINK_DOWN = "link-down"
VERDICTS = (DELIVERED, EXITED, DROPPED, REJECTED, NO_ROUTE, HOST_UNREACHABLE, NO_LISTENER,
            TTL_EXCEEDED, FORWARDING_DISABLED, LINK_DOWN)

SUCCESS = "success"
REFUSED = "refused"
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
# The sender's own stack refused to send (EPERM from an OUTPUT DROP/REJECT on UDP):
# an extension of the four outcomes of DESIGN.md.
ERROR = "error"
OUTCOMES = (SUCCESS, REFUSED, UNREACHABLE, TIMEOUT, ERROR)


@dataclass(frozen=True)
class Packet:
    proto: str                      # icmp | tcp | udp
    src: str | None
    dst: str
    sport: int | None = None
    dport: int | None = None
    ttl: int = 64
    icmp_type: int | None = None    # 8 echo request, 0 echo reply, 3 unreachable, 11 time exceeded
    icmp_code: int | None = None
    tcp_flags: str | None = None    # "S", "SA", "R", "RA"

    def with_(self, **changes: Any) -> "Packet":
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"proto": self.proto, "src": self.src}
        if self.sport is not None:
            out["sport"] = self.sport
        out["dst"] = self.dst
        if self.dport is not None:
            out["dport"] = self.dport
        if self.proto == "icmp":
            out["icmp_type"] = self.icmp_type
            if self.icmp_code is not None:
                out["icmp_code"] = self.icmp_code
        if self.tcp_flags is not None:
            out["tcp_flags"] = self.tcp_flags
        out["ttl"] = self.ttl
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Packet":
        return cls(proto=data["proto"], src=data.get("src"), dst=data["dst"],
                   sport=data.get("sport"), dport=data.get("dport"), ttl=data.get("ttl", 64),
                   icmp_type=data.get("icmp_type"), icmp_code=data.get("icmp_code"),
                   tcp_flags=data.get("tcp_flags"))

    def describe(self) -> str:
        ip = self.src if self.src is not None else "?"     # no source chosen: no route
        src = f"{ip}:{self.sport}" if self.sport is not None else ip
        dst = f"{self.dst}:{self.dport}" if self.dport is not None else self.dst
        what = self.proto
        if self.proto == "icmp":
            what = ICMP_NAMES.get((self.icmp_type, self.icmp_code),
                                  ICMP_NAMES.get((self.icmp_type, None), f"icmp type {self.icmp_type}"))
        elif self.tcp_flags:
            what = f"tcp [{self.tcp_flags}]"
        return f"{what} {src} > {dst}"


ICMP_NAMES = {
    (8, None): "icmp echo-request",
    (0, None): "icmp echo-reply",
    (3, 0): "icmp net-unreachable",
    (3, 1): "icmp host-unreachable",
    (3, 3): "icmp port-unreachable",
    (3, 13): "icmp admin-prohibited",
    (11, None): "icmp time-exceeded",
    (11, 0): "icmp time-exceeded",
}


HOP_FIELDS = ("node", "netns", "event", "detail", "dev", "table", "chain", "rule", "action")


@dataclass
class Hop:
    node: str
    netns: str
    event: str                      # route | arp | bridge | veth | forward | deliver | drop | icmp | netfilter | ...
    detail: str
    dev: str | None = None
    table: str | None = None
    chain: str | None = None
    rule: str | None = None
    action: str | None = None
    # Structured facts, written into the hop's JSON next to the fields above, each only
    # where it applies: "ip", "mac", "src_mac" (an ARP hop: the next hop, its MAC, the
    # sending device's MAC); "packet" (the packet from this hop on, where it changed — a
    # NAT hop — or where an answer starts — the first hop of a reply); "nat"; "position";
    # "policy". A VXLAN tunnel is two hops of event "vxlan": action "encap" where a
    # VXLAN device wraps the frame ("dev", "vni", "outer" and "inner": the packets as in
    # "packet", "mac" and "src_mac": the inner frame's Ethernet addresses), and action
    # "decap" where the receiving device takes it out ("dev", "vni", "outer" as it
    # arrived, "inner"). The hops between them move the outer packet (viz/ draws and
    # captures it so); the hops after "decap" move the inner one again.
    # A Hop is read-only once a trace returned it: traces of one state of the World share
    # the hops they have in common (dataplane.engine).
    extra: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.node, "netns": self.netns, "event": self.event}
        for name in ("dev", "table", "chain", "rule", "action"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out["detail"] = self.detail
        if self.extra:
            out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Hop":
        extra = {k: v for k, v in data.items() if k not in HOP_FIELDS}
        return cls(**{k: data.get(k) for k in HOP_FIELDS if k in data}, extra=extra or None)


@dataclass
class Path:
    verdict: str
    outcome: str
    hops: list[Hop]
    packet_out: Packet
    probability: float = 1.0
    delivered_to: str | None = None     # label of the namespace: "red", "node1/red", "node1"
    diagnosis: str | None = None        # one plain sentence for a non-delivered verdict
    reply: "Path | None" = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"probability": self.probability, "outcome": self.outcome,
                               "verdict": self.verdict}
        if self.delivered_to is not None:
            out["delivered_to"] = self.delivered_to
        out["packet_out"] = self.packet_out.to_json()
        if self.diagnosis:
            out["diagnosis"] = self.diagnosis
        out["hops"] = [h.to_json() for h in self.hops]
        if self.reply is not None:
            reply = self.reply.to_json()
            reply.pop("probability", None)
            reply.pop("outcome", None)
            out["reply"] = reply
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Path":
        """From ``to_json`` (a reply's JSON has no probability and no outcome of its own)."""
        reply = data.get("reply")
        verdict = data["verdict"]
        return cls(verdict=verdict,
                   outcome=data.get("outcome") or (SUCCESS if verdict == DELIVERED else TIMEOUT),
                   hops=[Hop.from_json(h) for h in data["hops"]],
                   packet_out=Packet.from_json(data["packet_out"]),
                   probability=data.get("probability", 1.0),
                   delivered_to=data.get("delivered_to"), diagnosis=data.get("diagnosis"),
                   reply=cls.from_json(reply) if reply else None)


@dataclass
class Trace:
    packet: Packet
    source: str                          # label of the sending namespace
    paths: list[Path] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"packet": self.packet.to_json(), "from": self.source,
                "paths": [p.to_json() for p in self.paths]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Trace":
        """A trace as ``netlab trace --json`` printed it (KeyError when a key is missing)."""
        return cls(packet=Packet.from_json(data["packet"]), source=data["from"],
                   paths=[Path.from_json(p) for p in data["paths"]])

    @property
    def outcome(self) -> str:
        """The most likely outcome (all paths agree in a deterministic world)."""
        best: dict[str, float] = {}
        for p in self.paths:
            best[p.outcome] = best.get(p.outcome, 0.0) + p.probability
        return max(best, key=best.get) if best else TIMEOUT
