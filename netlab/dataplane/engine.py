"""Walk one packet through a World the way Linux does, and its reply.

Locally generated: route lookup and source selection, [OUTPUT], [POSTROUTING],
neighbour resolution, out of the device. Received: [PREROUTING], routing
decision, local delivery [INPUT] or forwarding (ip_forward, rp_filter, TTL)
[FORWARD] [POSTROUTING]. The bracketed netfilter hooks are marked where the
kernel has them; they pass every packet until the netfilter model fills them.

A dropped packet is a result (a Path with a verdict), never an exception.
"""

from __future__ import annotations

import ipaddress
import weakref

from netlab.backends.model import enabled, oper_up
from netlab.dataplane import l2
from netlab.dataplane.routing import RouteDecision, is_local, lookup_main, route_get
from netlab.errors import NotFound
from netlab.model import Link, Netns, World
from netlab.trace import (
    DELIVERED, DROPPED, FORWARDING_DISABLED, HOST_UNREACHABLE, LINK_DOWN, NO_LISTENER, NO_ROUTE,
    REFUSED, SUCCESS, TIMEOUT, TTL_EXCEEDED, UNREACHABLE, Hop, Packet, Path, Trace,
)

DEFAULT_SPORT = 40000
ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, ICMP_UNREACH, ICMP_TIME_EXCEEDED = 8, 0, 3, 11
NET_UNREACH, HOST_UNREACH, PORT_UNREACH = 0, 1, 3

# --- the per-World index (rebuilt when a backend changes the World) -------------------
_INDEX: dict[int, tuple[weakref.ref, int, l2.Segments]] = {}


def segments_of(world: World) -> l2.Segments:
    generation = getattr(world, "_generation", 0)
    cached = _INDEX.get(id(world))
    if cached is not None and cached[0]() is world and cached[1] == generation:
        return cached[2]
    seg = l2.build_segments(world)
    key = id(world)
    _INDEX[key] = (weakref.ref(world, lambda _ref, key=key: _INDEX.pop(key, None)), generation, seg)
    return seg


def trace(world: World, source: str, dst: str, proto: str = "icmp", dport: int | None = None,
          sport: int | None = None, src: str | None = None, ttl: int = 64,
          oif: str | None = None) -> Trace:
    """Trace a packet sent from namespace ``source`` (key ``node/name``) to ``dst``."""
    ns = world.namespaces.get(source)
    if ns is None:
        raise NotFound(f"no namespace {source}")
    ipaddress.IPv4Address(dst)
    if proto in ("tcp", "udp") and sport is None:
        sport = DEFAULT_SPORT
    packet = Packet(proto=proto, src=src, dst=dst, sport=sport if proto != "icmp" else None,
                    dport=dport if proto != "icmp" else None, ttl=ttl,
                    icmp_type=ICMP_ECHO_REQUEST if proto == "icmp" else None,
                    tcp_flags="S" if proto == "tcp" else None)
    walk = _Walk(world, segments_of(world), ns)
    path = walk.send(ns, packet, oif=oif)
    first = path.hops[0].extra if path.hops and path.hops[0].extra else {}
    return Trace(packet=packet.with_(src=first.get("src", packet.src)), source=ns.label,
                 paths=[path])


class _Walk:
    def __init__(self, world: World, seg: l2.Segments, origin: Netns):
        self.world = world
        self.seg = seg
        self.origin = origin

    # --- helpers --------------------------------------------------------------------
    @staticmethod
    def hop(ns: Netns, event: str, detail: str, dev: str | None = None, **extra) -> Hop:
        return Hop(node=ns.node, netns=ns.name, event=event, detail=detail, dev=dev,
                   extra=extra or None)

    @staticmethod
    def end(verdict: str, outcome: str, hops: list[Hop], packet: Packet, *,
            diagnosis: str | None = None, delivered_to: str | None = None,
            reply: Path | None = None) -> Path:
        return Path(verdict=verdict, outcome=outcome, hops=hops, packet_out=packet,
                    diagnosis=diagnosis, delivered_to=delivered_to, reply=reply)

    # --- locally generated -------------------------------------------------------------
    def send(self, ns: Netns, pkt: Packet, *, oif: str | None = None, reply: bool = False,
             hops: list[Hop] | None = None) -> Path:
        hops = [] if hops is None else hops
        d = route_get(ns, pkt.dst, src=pkt.src, oif=oif)
        if not d.ok:
            return self._no_route(ns, pkt, d, hops)
        if pkt.src is None:
            pkt = pkt.with_(src=d.src or "0.0.0.0")
        hops.append(self.hop(ns, "route", _describe_route(d), dev=d.dev, src=pkt.src))
        # [netfilter: raw, mangle, nat, filter OUTPUT — re-route after DNAT]
        if d.kind == "local":
            lo = ns.links.get("lo")
            if lo is None or not lo.up:
                hops.append(self.hop(ns, "drop", "lo is down: packets to the namespace's own "
                                     "addresses loop back through lo", dev="lo"))
                return self.end(LINK_DOWN, TIMEOUT, hops, pkt,
                                diagnosis=f"lo is down in {ns.label} — ip link set lo up"
                                + (f" (ip netns exec {ns.name} …)" if ns.name != "root" else ""))
            hops.append(self.hop(ns, "loopback", f"looped back on lo to {pkt.dst}", dev="lo"))
            return self.deliver(ns, lo, pkt, hops, reply=reply)
        return self.output(ns, d.dev, d.nexthop, pkt, hops, local=True, reply=reply)

    def _no_route(self, ns: Netns, pkt: Packet, d: RouteDecision, hops: list[Hop]) -> Path:
        if d.kind in ("blackhole", "prohibit", "unreachable"):
            hops.append(self.hop(ns, "route", f"{d.kind} route {d.route.dst} matches {pkt.dst}"))
            return self.end(DROPPED if d.kind == "blackhole" else NO_ROUTE, UNREACHABLE, hops, pkt,
                            diagnosis=f"{ns.label} has a {d.kind} route {d.route.dst} for {pkt.dst}")
        hops.append(self.hop(ns, "route", f"no route to {pkt.dst}: Network is unreachable"))
        return self.end(NO_ROUTE, UNREACHABLE, hops, pkt,
                        diagnosis=f"{ns.label} has no route to {pkt.dst} — add one, e.g. "
                                  f"ip route add default via GATEWAY")

    # --- out of a device -----------------------------------------------------------
    def output(self, ns: Netns, dev: str, nexthop: str, pkt: Packet, hops: list[Hop], *,
               local: bool, reply: bool) -> Path:
        # [netfilter: mangle, nat POSTROUTING]
        link = ns.links[dev]
        start = (ns.key, dev)
        owner = None
        if self._carrier(ns, link):
            sid = self.seg.segment.get(start)
            owner = self.seg.owners.get((sid, nexthop)) if sid is not None else None
            if owner is not None and owner[0] == ns.key:
                owner = None  # an address of our own on another device: not on this link
        if owner is None:
            why = (f"{dev} has no carrier (its peer is down)" if not self._carrier(ns, link)
                   else f"nobody on {dev}'s link answers for {nexthop}")
            hops.append(self.hop(ns, "arp", f"ARP who-has {nexthop} on {dev}: no reply — {why}",
                                 dev=dev, ip=nexthop, mac=None))
            return self._arp_failed(ns, pkt, nexthop, dev, hops, local=local, reply=reply)
        peer_ns, peer_link = l2.link_at(self.world, owner)
        hops.append(self.hop(ns, "arp", f"ARP {nexthop} is-at {peer_link.mac} "
                             f"({peer_ns.label} {peer_link.name})", dev=dev,
                             ip=nexthop, mac=peer_link.mac))
        self._frame(l2.frame_path(self.seg, start, owner), hops)
        return self.receive(peer_ns, peer_link, pkt, hops, reply=reply)

    def _carrier(self, ns: Netns, link: Link) -> bool:
        return oper_up(self.world, ns, link)

    def _frame(self, ends: list[l2.End], hops: list[Hop]) -> None:
        """Hops for a frame crossing veth pairs and bridges."""
        for a, b in zip(ends, ends[1:]):
            ns_a, link_a = l2.link_at(self.world, a)
            ns_b, link_b = l2.link_at(self.world, b)
            if a[0] != b[0] or (link_a.kind == "veth" and link_a.peer_name == link_b.name
                                and link_a.peer_netns == ns_b.key):
                hops.append(self.hop(ns_a, "veth", f"{link_a.name} → {link_b.name} "
                                     f"({ns_b.label})", dev=link_a.name))
            elif link_b.kind == "bridge" and link_a.master == link_b.name:
                hops.append(self.hop(ns_b, "bridge", f"{link_b.name} receives the frame on port "
                                     f"{link_a.name}", dev=link_b.name))
                # [br_netfilter: PREROUTING/FORWARD/POSTROUTING when bridge-nf-call-iptables=1]
            elif link_a.kind == "bridge" and link_b.master == link_a.name:
                hops.append(self.hop(ns_a, "bridge", f"{link_a.name} forwards the frame out of "
                                     f"port {link_b.name}", dev=link_b.name))

    def _arp_failed(self, ns: Netns, pkt: Packet, nexthop: str, dev: str, hops: list[Hop], *,
                    local: bool, reply: bool) -> Path:
        diagnosis = f"{ns.label} gets no ARP reply for {nexthop} on {dev}"
        if local:
            lo = ns.links.get("lo")
            outcome = UNREACHABLE if lo is not None and lo.up else TIMEOUT
            return self.end(HOST_UNREACHABLE, outcome, hops, pkt, diagnosis=diagnosis)
        # A router that cannot resolve the next hop answers "host unreachable".
        return self._icmp_error(ns, pkt, ICMP_UNREACH, HOST_UNREACH, HOST_UNREACHABLE, hops,
                                diagnosis)

    # --- received --------------------------------------------------------------------
    def receive(self, ns: Netns, link: Link, pkt: Packet, hops: list[Hop], *,
                reply: bool) -> Path:
        # [netfilter: raw, conntrack, mangle, nat PREROUTING]
        local = is_local(ns, pkt.dst)
        if not self._rp_filter_ok(ns, link, pkt):
            hops.append(self.hop(ns, "drop", f"rp_filter: the route back to {pkt.src} does not "
                                 f"leave through {link.name}", dev=link.name))
            return self.end(DROPPED, TIMEOUT, hops, pkt,
                            diagnosis=f"rp_filter drops {pkt.src} arriving on {link.name} in "
                                      f"{ns.label} — fix the routes or sysctl -w "
                                      f"net.ipv4.conf.all.rp_filter=0")
        if local:
            return self.deliver(ns, link, pkt, hops, reply=reply)
        return self.forward(ns, link, pkt, hops, reply=reply)

    def _rp_filter_ok(self, ns: Netns, link: Link, pkt: Packet) -> bool:
        mode = max(int(ns.sysctls.get("net.ipv4.conf.all.rp_filter", "0")),
                   int(link.conf.get("rp_filter", "0")))
        if not mode or pkt.src is None or pkt.src == "0.0.0.0":
            return True
        back = lookup_main(ns, pkt.src)
        if back is None or back.type != "unicast":
            return False
        return mode == 2 or back.dev == link.name

    def forward(self, ns: Netns, link: Link, pkt: Packet, hops: list[Hop], *,
                reply: bool) -> Path:
        if not enabled(link.conf.get("forwarding")):
            hops.append(self.hop(ns, "drop", f"not for {ns.label} and forwarding is off on "
                                 f"{link.name}: dropped silently", dev=link.name))
            return self.end(FORWARDING_DISABLED, TIMEOUT, hops, pkt,
                            diagnosis=f"ip_forward is 0 on {ns.label} — "
                                      f"sysctl -w net.ipv4.ip_forward=1")
        d = route_get(ns, pkt.dst, src=pkt.src, iif=link.name)
        if not d.ok:
            hops.append(self.hop(ns, "route", f"no route to {pkt.dst} for a forwarded packet"))
            return self._icmp_error(ns, pkt, ICMP_UNREACH, NET_UNREACH, NO_ROUTE, hops,
                                    f"{ns.label} has no route to {pkt.dst}")
        if pkt.ttl <= 1:
            hops.append(self.hop(ns, "ttl", f"TTL {pkt.ttl} would reach 0: time exceeded"))
            return self._icmp_error(ns, pkt, ICMP_TIME_EXCEEDED, 0, TTL_EXCEEDED, hops,
                                    f"the TTL ran out at {ns.label} (a routing loop, or "
                                    f"traceroute's probe)")
        pkt = pkt.with_(ttl=pkt.ttl - 1)
        hops.append(self.hop(ns, "forward", f"forward {link.name} → {d.dev}"
                             + (f" via {d.gateway}" if d.gateway else "")
                             + f", TTL {pkt.ttl}", dev=d.dev))
        # [netfilter: mangle, filter FORWARD]
        return self.output(ns, d.dev, d.nexthop, pkt, hops, local=False, reply=reply)

    # --- local delivery ----------------------------------------------------------------
    def deliver(self, ns: Netns, link: Link, pkt: Packet, hops: list[Hop], *,
                reply: bool) -> Path:
        # [netfilter: mangle, filter, nat INPUT]
        label = ns.label
        if reply or pkt.proto == "icmp" and pkt.icmp_type != ICMP_ECHO_REQUEST:
            hops.append(self.hop(ns, "deliver", f"delivered to {label}", dev=link.name))
            return self.end(DELIVERED, SUCCESS, hops, pkt, delivered_to=label)
        if pkt.proto == "icmp":
            if enabled(ns.sysctls.get("net.ipv4.icmp_echo_ignore_all")):
                hops.append(self.hop(ns, "drop", "icmp_echo_ignore_all=1: no echo reply"))
                return self.end(DROPPED, TIMEOUT, hops, pkt, delivered_to=label)
            hops.append(self.hop(ns, "deliver", f"echo request delivered to {label}",
                                 dev=link.name))
            answer = Packet("icmp", src=pkt.dst, dst=pkt.src, icmp_type=ICMP_ECHO_REPLY)
            return self._answered(ns, pkt, answer, hops, DELIVERED, SUCCESS)
        listening = any(l.proto == pkt.proto and l.port == pkt.dport and l.addr in ("0.0.0.0",
                        pkt.dst) for l in ns.listeners)
        if pkt.proto == "tcp":
            if listening:
                hops.append(self.hop(ns, "deliver", f"SYN to {pkt.dst}:{pkt.dport} accepted by "
                                     f"a listener in {label}", dev=link.name))
                answer = Packet("tcp", src=pkt.dst, dst=pkt.src, sport=pkt.dport,
                                dport=pkt.sport, tcp_flags="SA")
                return self._answered(ns, pkt, answer, hops, DELIVERED, SUCCESS)
            hops.append(self.hop(ns, "deliver", f"nothing listens on tcp port {pkt.dport} in "
                                 f"{label}: answer with RST", dev=link.name))
            answer = Packet("tcp", src=pkt.dst, dst=pkt.src, sport=pkt.dport, dport=pkt.sport,
                            tcp_flags="RA")
            return self._answered(ns, pkt, answer, hops, NO_LISTENER, REFUSED,
                                  diagnosis=f"nothing listens on tcp port {pkt.dport} in {label}"
                                            f" — start one: nc -l -p {pkt.dport}")
        if listening:
            hops.append(self.hop(ns, "deliver", f"datagram to {pkt.dst}:{pkt.dport} delivered to "
                                 f"a listener in {label}", dev=link.name))
            answer = Packet("udp", src=pkt.dst, dst=pkt.src, sport=pkt.dport, dport=pkt.sport)
            path = self._answered(ns, pkt, answer, hops, DELIVERED, SUCCESS)
            path.outcome = SUCCESS  # the datagram arrived, whatever happens to an answer
            return path
        hops.append(self.hop(ns, "deliver", f"nothing listens on udp port {pkt.dport} in "
                             f"{label}: answer with ICMP port unreachable", dev=link.name))
        answer = Packet("icmp", src=pkt.dst, dst=pkt.src, icmp_type=ICMP_UNREACH,
                        icmp_code=PORT_UNREACH)
        return self._answered(ns, pkt, answer, hops, NO_LISTENER, REFUSED,
                              diagnosis=f"nothing listens on udp port {pkt.dport} in {label}"
                                        f" — start one: nc -l -u -p {pkt.dport}")

    def _answered(self, ns: Netns, pkt: Packet, answer: Packet, hops: list[Hop], verdict: str,
                  outcome: str, diagnosis: str | None = None) -> Path:
        """The path ends here; its outcome holds only if the answer gets back."""
        back = self.send(ns, answer, reply=True)
        if back.verdict != DELIVERED:
            outcome = TIMEOUT
            diagnosis = diagnosis or self._reply_diagnosis(back)
        return self.end(verdict, outcome, hops, pkt, delivered_to=ns.label, reply=back,
                        diagnosis=diagnosis)

    def _reply_diagnosis(self, back: Path) -> str:
        last = back.hops[-1] if back.hops else None
        where = (f"{last.node}/{last.netns}" if last and last.netns != "root" else
                 (last.node if last else "?"))
        pkt = back.packet_out
        sender_net = self._sender_network(pkt.dst)
        if back.verdict == NO_ROUTE:
            return (f"the reply from {pkt.src} has no route back to {sender_net} at {where} — "
                    f"add a route there (ip route add {sender_net} via ROUTER) or MASQUERADE "
                    f"on the router")
        return f"the reply from {pkt.src} does not get back: {back.diagnosis or back.verdict}"

    def _sender_network(self, ip: str) -> str:
        for link in self.origin.links.values():
            for addr in link.addresses:
                if addr.ip == ip:
                    return str(addr.network)
        return ip

    def _icmp_error(self, ns: Netns, pkt: Packet, icmp_type: int, code: int, verdict: str,
                    hops: list[Hop], diagnosis: str) -> Path:
        if pkt.proto == "icmp" and pkt.icmp_type not in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY):
            return self.end(verdict, TIMEOUT, hops, pkt, diagnosis=diagnosis)  # never about an error
        back_route = route_get(ns, pkt.src)
        src = back_route.src if back_route.ok else None
        if src is None:
            return self.end(verdict, TIMEOUT, hops, pkt, diagnosis=diagnosis)
        error = Packet("icmp", src=src, dst=pkt.src, icmp_type=icmp_type, icmp_code=code)
        hops.append(self.hop(ns, "icmp", f"{ns.label} answers with {error.describe()}"))
        back = self.send(ns, error, reply=True)
        outcome = UNREACHABLE if back.verdict == DELIVERED else TIMEOUT
        return self.end(verdict, outcome, hops, pkt, diagnosis=diagnosis, reply=back)


def _describe_route(d: RouteDecision) -> str:
    if d.kind == "local":
        return f"local {d.dst} dev lo src {d.src}"
    via = f" via {d.gateway}" if d.gateway else ""
    matched = d.route.dst if d.route is not None else "on-link"
    return f"{d.dst}{via} dev {d.dev} src {d.src} (route {matched})"
