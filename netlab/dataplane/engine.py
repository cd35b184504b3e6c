"""Walk one packet through a World the way Linux does, and its reply.

Locally generated: route lookup and source selection, OUTPUT (raw, conntrack,
mangle, nat, filter), a second route lookup when the destination changed,
POSTROUTING (mangle, nat, confirm), neighbour resolution, out of the device.
Received: PREROUTING (raw, conntrack, mangle, nat), the routing decision,
then INPUT (mangle, filter, nat, confirm) and the socket, or FORWARD
(ip_forward, rp_filter, TTL; mangle, filter) and POSTROUTING. A bridge whose
namespace has bridge-nf-call-iptables=1 sends the IPv4 frames it switches
between two ports through PREROUTING, FORWARD and POSTROUTING of that
namespace (``-i``/``-o`` the bridge, ``-m physdev`` the ports), and the
frames for the bridge device itself through PREROUTING once. Packets
looped back on ``lo`` keep their conntrack entry (nat is not consulted again).

A ``-m statistic --mode random`` match forks the walk: ``trace`` follows every
branch (each path carries its probability) or the one asked for.

A dropped packet is a result (a Path with a verdict), never an exception. The
only change a trace makes to the World is the conntrack table of each
namespace it crossed (what ``conntrack -L`` shows).

What a trace derives from the World and not from the packet's own state (segments,
route decisions, local addresses, arrivals, carrier, ARP resolutions, the steps of a
frame, hook plans, and each table's chain walks, see dataplane.netfilter.walk) is kept
for the next traces until the World changes (a backend's change bumps its generation).
Hops made from kept answers are shared between traces: hops are read-only.
"""

from __future__ import annotations

import ipaddress
import random
import weakref
import zlib
from dataclasses import dataclass, field
from typing import Callable

from netlab.backends.model import enabled, oper_up
from netlab.dataplane import l2
from netlab.dataplane import conntrack as ct
from netlab.dataplane.conntrack import (
    DST, ESTABLISHED, INVALID, NEW, ORIGINAL, RELATED, REPLY, SRC, UNTRACKED, Conn,
    ConntrackTable, IcmpError,
)
from netlab.dataplane.netfilter import NAT_KINDS, Decision, NetnsRules, ipset_contains, kept_leaf, \
    rules_of, walk
from netlab.dataplane.routing import RouteDecision, in_address_net, ip_int, lookup_main, route_get
from netlab.errors import CommandError, NotFound
from netlab.model import Link, Netns, World
from netlab.netfilter.types import ConnView, PacketView
from netlab.trace import (
    DELIVERED, DROPPED, ERROR, EXITED, FORWARDING_DISABLED, HOST_UNREACHABLE, LINK_DOWN, NO_LISTENER,
    NO_ROUTE, REFUSED, REJECTED, SUCCESS, TIMEOUT, TTL_EXCEEDED, UNREACHABLE, Hop, Packet, Path,
    Trace,
)

DEFAULT_SPORT = 40000
ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, ICMP_UNREACH, ICMP_TIME_EXCEEDED = 8, 0, 3, 11
NET_UNREACH, HOST_UNREACH, PORT_UNREACH = 0, 1, 3
REJECT_CODES = {"icmp-net-unreachable": 0, "icmp-host-unreachable": 1,
                "icmp-proto-unreachable": 2, "icmp-port-unreachable": 3,
                "icmp-net-prohibited": 9, "icmp-host-prohibited": 10,
                "icmp-admin-prohibited": 13}
CONNTRACK_MODES = ("auto", "new", "continue")
# icmp_err_convert[]: a UDP socket (without IP_RECVERR) reports only the "fatal" ICMP
# errors; net/host unreachable (also for a TOS, or unknown-ish 4/5) and time exceeded
# leave it waiting. TCP in SYN_SENT and ping see them all.
UDP_SILENT_UNREACH = frozenset({0, 1, 4, 5, 11, 12})
MAX_PATHS = 4096
KEPT_WALKS = True       # False: every walk is asked with a PacketView (the oracle of tests)
_NO_TUPLE = (None, None, None, None)     # a ConnView's tuples when it has no connection
# What receive decides besides forwarding (_arrival)
MARTIAN, RP_FILTERED, LOCAL = "martian", "rp_filter", "local"
MAX_RETARGETS = 8

# --- the per-World index (rebuilt when a backend changes the World) -------------------
class _Static:
    """What traces read of one state of the World, derived once and kept until the World
    changes: the L2 segments, and as they are asked for (each a pure function of that
    state) route decisions, local addresses, what a received packet's addresses decide
    (martian, rp_filter, local or forwarded), carrier states, frame paths and their steps,
    ARP resolutions, hooks' plans and the namespaces' compiled rules."""

    __slots__ = ("held", "seg", "routes", "locals", "local_ips", "carrier",
                 "frames", "steps", "arp", "hops", "rules", "plans", "in_sets", "arrivals",
                 "br_netfilter")

    def __init__(self, world: World):
        # Entries are keyed by id(ns): the namespaces are held, so no id is another's.
        self.held = list(world.namespaces.values())
        self.seg = l2.Segments()
        self.routes: dict[tuple, RouteDecision] = {}
        self.locals: dict[int, tuple[frozenset[str], tuple]] = {}       # by id(ns)
        self.local_ips: dict[tuple[int, str], bool] = {}     # in lo's networks
        self.carrier: dict[tuple[str, str], bool] = {}
        self.frames: dict[tuple[l2.End, l2.End], list[l2.End]] = {}
        self.steps: dict[tuple[l2.End, l2.End], tuple] = {}     # _frame: one step of a frame
        self.arp: dict[tuple[int, str, str], tuple] = {}        # output: a resolved next hop
        # hops that are the same whenever their inputs are (route, forward, deliver): shared, so
        # never changed once made (the engine changes only netfilter hops, which it copies)
        self.hops: dict[tuple, tuple] = {}
        self.rules: dict[int, NetnsRules] = {}                  # by id(ns)
        self.plans: dict[tuple[int, str], tuple] = {}           # by (id(ns), hook)
        self.in_sets: dict[int, tuple[Callable, Callable]] = {}  # by id(ns): addrtype, in_set
        self.arrivals: dict[tuple, object] = {}     # receive: by (id(ns), link, src, dst)
        self.br_netfilter: dict[int, bool] = {}     # by id(ns)


_INDEX: dict[int, tuple[weakref.ref, int, _Static]] = {}
MEMO_SIZE = 1 << 16          # entries a _Static dict keeps (then it starts again)


def static_of(world: World) -> _Static:
    generation = getattr(world, "_generation", 0)
    cached = _INDEX.get(id(world))
    if cached is not None and cached[0]() is world and cached[1] == generation:
        return cached[2]
    static = _Static(world)
    key = id(world)
    _INDEX[key] = (weakref.ref(world, lambda _ref, key=key: _INDEX.pop(key, None)), generation,
                   static)
    return static


VXLAN_SOCKET = "udp port "     # the start of the hop where a VXLAN socket takes a datagram
_TUNNEL_ARP = False             # tracing an ARP's datagrams through a tunnel: no nested ARP


def _at_vxlan_socket(t: Trace, ns: Netns) -> bool:
    """The plain datagram of ``t`` reached ``ns`` and was taken by a VXLAN device's socket
    there (where an encapsulated frame would be decapsulated)."""
    live = [p for p in t.paths if p.probability > 0]
    return bool(live) and all(
        p.verdict == DROPPED and p.delivered_to == ns.label and p.hops
        and p.hops[-1].event == "drop" and p.hops[-1].detail.startswith(VXLAN_SOCKET)
        for p in live)


def trace(world: World, source: str, dst: str, proto: str = "icmp", dport: int | None = None,
          sport: int | None = None, src: str | None = None, ttl: int = 64,
          oif: str | None = None, *, pick: int | None = None, seed: int | None = None,
          conntrack: str = "auto", record: bool = True) -> Trace:
    """Trace a packet sent from namespace ``source`` (key ``node/name``) to ``dst``.

    Every branch of a ``-m statistic`` fork is a path of its own, in rule order;
    ``pick=N`` keeps path N only (0-based), ``seed=S`` follows one branch at random
    (reproducibly). ``conntrack`` says how the packet relates to the connections
    earlier traces left in the World: ``"auto"`` — a TCP/UDP packet with an explicit
    ``sport`` is the kernel's next packet of a flow conntrack already knows (a SYN on a
    closed one opens a new one), while a ping or a packet from the default source port
    is a new socket's first packet; ``"new"`` — always a new connection; ``"continue"``
    — the next packet of the known flow (TCP: an ACK). With ``record`` the conntrack
    tables of the path followed (the picked one, else the most likely) are written
    back to the World.
    """
    ns = world.namespaces.get(source)
    if ns is None:
        raise NotFound(f"no namespace {source}")
    ipaddress.IPv4Address(dst)
    if conntrack not in CONNTRACK_MODES:
        raise CommandError(f"conntrack must be one of {', '.join(CONNTRACK_MODES)}")
    fresh = conntrack == "new" or (conntrack == "auto" and (proto == "icmp" or sport is None))
    if proto in ("tcp", "udp") and sport is None:
        sport = DEFAULT_SPORT
    packet = Packet(proto=proto, src=src, dst=dst, sport=sport if proto != "icmp" else None,
                    dport=dport if proto != "icmp" else None, ttl=ttl,
                    icmp_type=ICMP_ECHO_REQUEST if proto == "icmp" else None,
                    tcp_flags=("A" if conntrack == "continue" else "S") if proto == "tcp"
                    else None)
    static = static_of(world)

    def run(choose: _Chooser) -> tuple[Path, _Walk]:
        walker = _Walk(world, static, ns, choose, fresh=fresh)
        path = walker.probe(packet, oif)
        path.probability = choose.probability
        return path, walker

    runs = _explore(run, pick=pick, seed=seed)
    if pick is not None:
        runs = [runs[pick]]
    if record:
        chosen = max(runs, key=lambda r: r[0].probability)   # first of the most likely
        chosen[1].record(chosen[0])
    sent = runs[0][1].sent or packet
    return Trace(packet=packet.with_(src=sent.src), source=ns.label,
                 paths=[path for path, _ in runs])


class _Chooser:
    """Which branch each probability fork of one walk takes: the branches listed in
    ``prefix`` first, then the matching branch (or a random one, with ``rng``)."""

    def __init__(self, prefix: list[int] | None = None, rng: random.Random | None = None):
        self.prefix = prefix or []
        self.rng = rng
        self.taken: list[int] = []
        self.probability = 1.0

    def __call__(self, p: float) -> bool:
        k = len(self.taken)
        if k < len(self.prefix):
            branch = self.prefix[k]
        elif self.rng is not None:
            branch = 0 if self.rng.random() < p else 1
        else:
            branch = 0
        self.taken.append(branch)
        self.probability *= p if branch == 0 else 1.0 - p
        return branch == 0


def _explore(run: Callable[[_Chooser], tuple[Path, "_Walk"]], *, pick: int | None,
             seed: int | None) -> list[tuple[Path, "_Walk"]]:
    """Every path of the fork tree, depth first with the matching branch first (the
    order of the rules); or the one a seed picks; or paths up to ``pick``."""
    if seed is not None:
        return [run(_Chooser(rng=random.Random(seed)))]
    if pick is not None and pick < 0:
        raise CommandError(f"pick {pick}: paths are numbered from 0")
    runs = []
    prefix: list[int] = []
    while True:
        chooser = _Chooser(prefix)
        runs.append(run(chooser))
        if pick is not None and len(runs) > pick:
            return runs
        taken = chooser.taken
        while taken and taken[-1] == 1:
            taken.pop()
        if not taken:
            break
        prefix = taken[:-1] + [1]
        if len(runs) >= MAX_PATHS:
            raise CommandError(f"the trace forks into more than {MAX_PATHS} paths: "
                               "pick one (pick=N) or give a seed")
    if pick is not None:
        raise CommandError(f"pick {pick}: the trace has {len(runs)} path(s), numbered from 0")
    return runs


@dataclass(slots=True)       # slots: its fields are read and written at every step
class _Skb:
    """A packet in flight and what the kernel keeps with it (skb->mark, skb->_nfct)."""
    pkt: Packet
    hops: list[Hop] = field(default_factory=list)
    probe: bool = False            # the traced packet itself
    answer: bool = False           # an answer to it (reply, ICMP error, RST)
    fresh: bool = False            # the probe opens a new connection everywhere
    local: Netns | None = None     # the namespace that generated it (while it is there)
    mark: int = 0
    conn: Conn | None = None
    direction: str = ORIGINAL
    state: str | None = None       # ctstate in the namespace ct_ns
    ct_ns: Netns | None = None     # the namespace whose table holds conn
    untracked: bool = False
    inner: "_Skb | None" = None    # a VXLAN packet: the frame it carries, and its VNI
    vni: int | None = None

    def crossed(self, netns_changed: bool) -> None:
        """A veth hands the packet over: skb_scrub_packet drops the conntrack reference
        (and, into another namespace, the mark)."""
        self.conn = None
        self.state = None
        self.ct_ns = None
        self.untracked = False
        self.local = None
        if netns_changed:
            self.mark = 0


class _Walk:
    def __init__(self, world: World, static: _Static, origin: Netns,
                 choose: Callable[[float], bool] | None = None, *, fresh: bool = False):
        self.world = world
        self.static = static
        self.seg = static.seg
        self.origin = origin
        self.choose = choose or _Chooser()
        self.fresh = fresh
        self.tables: dict[int, tuple[Netns, ConntrackTable]] = {}   # by id(ns)
        self.sent: Packet | None = None          # the probe as its socket sent it
        self.forward_hops: list[Hop] = []
        self._retargets = 0

    # --- helpers --------------------------------------------------------------------
    @staticmethod
    def hop(ns: Netns, event: str, detail: str, dev: str | None = None,
            action: str | None = None, **extra) -> Hop:
        # positional: a dataclass's __init__ is quickest so (a hop is made at every step)
        return Hop(ns.node, ns.name, event, detail, dev, None, None, None, action, extra or None)

    @staticmethod
    def end(verdict: str, outcome: str, hops: list[Hop], packet: Packet, *,
            diagnosis: str | None = None, delivered_to: str | None = None,
            reply: Path | None = None) -> Path:
        return Path(verdict, outcome, hops, packet, 1.0, delivered_to, diagnosis, reply)

    def probe(self, pkt: Packet, oif: str | None) -> Path:
        skb = _Skb(pkt, probe=True, fresh=self.fresh)
        self.forward_hops = skb.hops
        return self.send(self.origin, skb, oif=oif)

    # --- locally generated -------------------------------------------------------------
    def send(self, ns: Netns, skb: _Skb, *, oif: str | None = None,
             forged: bool = False) -> Path:
        """Out of a namespace's own stack. ``forged``: the source is not ours (a RST
        that REJECT sends in the name of the destination)."""
        pkt = skb.pkt
        d = self._route(ns, pkt.dst, src=None if forged else pkt.src, oif=oif)
        if not d.ok:
            return self._no_route(ns, skb, d)
        if pkt.src is None:
            pkt = skb.pkt = ct.rewrite(pkt, src=d.src or "0.0.0.0")
        if skb.probe and self.sent is None:
            self.sent = pkt
        if skb.answer:      # the answer as the answering stack sends it (viz/ needs it)
            route_hop = self.hop(ns, "route", _describe_route(d), dev=d.dev, src=pkt.src)
            route_hop.extra["packet"] = packet_json(pkt)
        else:
            key = ("route", id(d), pkt.src)
            route_hop = self._shared_hop(key, d)
            if route_hop is None:
                route_hop = self._share_hop(key, d, self.hop(ns, "route", _describe_route(d),
                                                             dev=d.dev, src=pkt.src))
        skb.hops.append(route_hop)
        skb.local = ns
        decided = self._hook(ns, "OUTPUT", skb, None, d.dev or "lo")
        if decided is not None:
            return self._decided(ns, skb, decided)
        if skb.pkt.dst != pkt.dst:
            # ip_route_me_harder: the destination changed, route again (same source).
            d = self._route(ns, skb.pkt.dst, src=None if forged else skb.pkt.src, oif=oif)
            if not d.ok:
                if skb.probe and skb.pkt.proto == "tcp":
                    # ip_route_me_harder fails: NF_DROP with ENETUNREACH, which
                    # tcp_connect ignores; the SYN is retried until connect() times out.
                    skb.hops.append(self.hop(ns, "drop", f"no route to {skb.pkt.dst} after "
                                             f"DNAT: the SYN is dropped"))
                    return self.end(NO_ROUTE, TIMEOUT, skb.hops, skb.pkt,
                                    diagnosis=f"{ns.label} has no route to {skb.pkt.dst}, the "
                                              f"destination after DNAT; TCP retries the "
                                              f"dropped SYN and times out")
                return self._no_route(ns, skb, d)
            skb.hops.append(self.hop(ns, "route", f"re-routed after DNAT: {_describe_route(d)}",
                                     dev=d.dev, src=skb.pkt.src))
        if d.kind == "local":
            decided = self._hook(ns, "POSTROUTING", skb, out_dev="lo", nexthop=skb.pkt.dst)
            if decided is not None:
                return self._decided(ns, skb, decided)
            lo = ns.links.get("lo")
            if lo is None or not lo.up:
                skb.hops.append(self.hop(ns, "drop", "lo is down: packets to the namespace's own "
                                         "addresses loop back through lo", dev="lo"))
                return self.end(LINK_DOWN, TIMEOUT, skb.hops, skb.pkt,
                                diagnosis=f"lo is down in {ns.label} — ip link set lo up"
                                + (f" (ip netns exec {ns.name} …)" if ns.name != "root" else ""))
            skb.hops.append(self.hop(ns, "loopback", f"looped back on lo to {skb.pkt.dst}",
                                     dev="lo"))
            skb.local = None    # sent: what happens on the way in is not the sender's errno
            return self.receive(ns, lo, skb, loopback=True)
        return self.output(ns, d.dev, d.nexthop, skb)

    def _no_route(self, ns: Netns, skb: _Skb, d: RouteDecision) -> Path:
        pkt, hops = skb.pkt, skb.hops
        if d.kind in ("blackhole", "prohibit", "unreachable"):
            hops.append(self.hop(ns, "route", f"{d.kind} route {d.route.dst} matches {pkt.dst}"))
            return self.end(DROPPED if d.kind == "blackhole" else NO_ROUTE, UNREACHABLE, hops, pkt,
                            diagnosis=f"{ns.label} has a {d.kind} route {d.route.dst} for {pkt.dst}")
        hops.append(self.hop(ns, "route", f"no route to {pkt.dst}: Network is unreachable"))
        return self.end(NO_ROUTE, UNREACHABLE, hops, pkt,
                        diagnosis=f"{ns.label} has no route to {pkt.dst} — add one, e.g. "
                                  f"ip route add default via GATEWAY")

    # --- out of a device -----------------------------------------------------------
    def output(self, ns: Netns, dev: str, nexthop: str, skb: _Skb) -> Path:
        decided = self._hook(ns, "POSTROUTING", skb, None, dev, None, None, False,
                             nexthop)
        if decided is not None:
            return self._decided(ns, skb, decided)
        resolved = self.static.arp.get((id(ns), dev, nexthop))
        if resolved is not None and resolved[0] is ns:
            skb.hops.append(resolved[1])
            return self._frame(resolved[2], skb)
        link = ns.links[dev]
        if link.kind == "vxlan":
            return self._vxlan_xmit(ns, link, nexthop, skb)
        start = (ns.key, dev)
        owner = None
        if self._carrier(ns, link):
            owner = self.seg.owner(self.world, start, nexthop)
            if owner is not None and owner[0] == ns.key:
                owner = None  # an address of our own on another device: not on this link
        if owner is None and self._carrier(ns, link) \
                and self.seg.segment_of(self.world, start) in self.seg.open:
            skb.hops.append(self.hop(ns, "exit", f"leaves through {dev} towards {nexthop}: "
                                     f"nothing is modelled behind {dev}", dev=dev))
            return self.end(EXITED, TIMEOUT, skb.hops, skb.pkt,
                            diagnosis=f"the packet left the model through {dev} of {ns.label}; "
                                      f"what is behind it is not modelled")
        if owner is None:
            why = (f"{dev} has no carrier (its peer is down)" if not self._carrier(ns, link)
                   else f"nobody on {dev}'s link answers for {nexthop}")
            skb.hops.append(self.hop(ns, "arp", f"ARP who-has {nexthop} on {dev}: no reply — "
                                     f"{why}", dev=dev, ip=nexthop, mac=None))
            return self._arp_failed(ns, skb, nexthop, dev)
        peer_ns, peer_link = l2.link_at(self.world, owner)
        hop = self.hop(ns, "arp", f"ARP {nexthop} is-at {peer_link.mac} "
                       f"({peer_ns.label} {peer_link.name})", dev=dev,
                       ip=nexthop, mac=peer_link.mac, src_mac=link.mac)
        ends = self._frame_path(start, owner)
        if len(self.static.arp) >= MEMO_SIZE:
            self.static.arp.clear()
        self.static.arp[(id(ns), dev, nexthop)] = (ns, hop, ends)    # shared from now on
        skb.hops.append(hop)
        return self._frame(ends, skb)

    def _vxlan_xmit(self, ns: Netns, link: Link, nexthop: str, skb: _Skb) -> Path:
        """vxlan_xmit: the next hop's MAC from the neighbour table, that MAC's VTEP from the
        device's FDB (else the all-zeros entry, else ``remote``), and the frame inside a UDP
        datagram to it, sent by the namespace's own stack (so its routes and hooks apply)."""
        vx = link.vxlan or {}
        if not self._carrier(ns, link):
            skb.hops.append(self.hop(ns, "drop", f"{link.name} is down", dev=link.name))
            return self.end(LINK_DOWN, TIMEOUT, skb.hops, skb.pkt,
                            diagnosis=f"{link.name} of {ns.label} is down")
        neigh = next((n for n in ns.neighbours if n.ip == nexthop and n.dev == link.name
                      and n.mac), None)
        mac = neigh.mac if neigh is not None else None
        if mac is None:
            found = self._vxlan_arp(ns, link, nexthop)
            if found is None:
                skb.hops.append(self.hop(ns, "arp", f"ARP who-has {nexthop} on {link.name}: no "
                                         "neighbour entry, and no answer through the tunnel "
                                         "(an overlay writes them: ip neigh add … nud "
                                         "permanent)", dev=link.name, ip=nexthop, mac=None))
                return self._arp_failed(ns, skb, nexthop, link.name)
            mac, who = found
            skb.hops.append(self.hop(ns, "arp", f"ARP who-has {nexthop}, broadcast through "
                                     f"{link.name}'s tunnel: is-at {mac} ({who})",
                                     dev=link.name, ip=nexthop, mac=mac, src_mac=link.mac))
        zero = "00:00:00:00:00:00"
        entry = next((e for e in link.fdb if e["mac"] == mac), None) or \
            next((e for e in link.fdb if e["mac"] == zero), None)
        remote = entry["dst"] if entry else vx.get("remote")
        if remote is None:
            skb.hops.append(self.hop(ns, "drop", f"{link.name}: no FDB entry for {mac} "
                                     "and no remote: the frame is dropped", dev=link.name))
            return self.end(DROPPED, TIMEOUT, skb.hops, skb.pkt,
                            diagnosis=f"{link.name} of {ns.label} does not know where "
                                      f"{mac} is — bridge fdb append {mac} dev "
                                      f"{link.name} dst VTEP")
        inner = skb.pkt
        flow = f"{inner.proto} {inner.src} {inner.sport} {inner.dst} {inner.dport}".encode()
        sport = 32768 + zlib.crc32(flow) % (60999 - 32768 + 1)   # udp_flow_src_port
        src = vx.get("local")
        if src is None:         # no ``local``: the source the outer packet's route gives it
            d = self._route(ns, remote, oif=vx.get("dev"))
            src = d.src if d.ok else None
        outer_pkt = Packet("udp", src=src, dst=remote, sport=sport, dport=vx["dstport"])
        shown = outer_pkt.with_(src=src or "(no route)")
        # The tunnel contract (trace.py, Hop): this hop and the decapsulating one.
        skb.hops.append(self.hop(
            ns, "vxlan", f"{link.name} encapsulates (VNI {vx['vni']}, FDB {mac} dst "
            f"{remote}): outer {shown.describe()}, inner {inner.describe()}", dev=link.name,
            action="encap", vni=vx["vni"], outer=shown.to_json(), inner=inner.to_json(),
            mac=mac, src_mac=link.mac))
        outer = _Skb(outer_pkt, hops=skb.hops, inner=skb, vni=vx["vni"])
        return self.send(ns, outer, oif=vx.get("dev"))

    def _vxlan_rcv(self, ns: Netns, skb: _Skb) -> Link | None:
        """The VXLAN device a datagram is for: its port and VNI."""
        if skb.inner is None or skb.pkt.proto != "udp":
            return None
        return next((l for l in ns.links.values() if l.kind == "vxlan" and l.vxlan
                     and l.vxlan["dstport"] == skb.pkt.dport and l.vxlan["vni"] == skb.vni
                     and l.up), None)

    def _vxlan_arp(self, ns: Netns, link: Link, nexthop: str) -> tuple[str, str] | None:
        """ARP through a VXLAN device (no neighbour entry): the broadcast goes to the
        default destination (the all-zeros FDB entry, or ``remote``); the VTEP there
        (same VNI and port, up) answers for an address of its namespace, and its answer
        finds the way back by its FDB (the sender's MAC, learned when learning is on, or
        its own default). Both datagrams must cross the underlay (routes, firewalls).
        (MAC, who answered) or None."""
        global _TUNNEL_ARP
        vx = link.vxlan or {}
        zero = "00:00:00:00:00:00"
        dst = next((e["dst"] for e in link.fdb if e["mac"] == zero), None) or vx.get("remote")
        if dst is None or _TUNNEL_ARP:
            return None
        peer = next((p for p in self.world.namespaces.values()
                     if p is not ns and p.kind != "switch" and self._is_local(p, dst)), None)
        if peer is None or not self._is_local(peer, nexthop):
            return None
        vtep = next((l for l in peer.links.values() if l.kind == "vxlan" and l.vxlan
                     and l.vxlan["vni"] == vx["vni"] and l.vxlan["dstport"] == vx["dstport"]
                     and self._carrier(peer, l)), None)
        if vtep is None:
            return None
        src = vx.get("local") or self._route(ns, dst).src
        pvx = vtep.vxlan or {}
        back = next((e["dst"] for e in vtep.fdb if e["mac"] == link.mac), None) or \
            (src if pvx.get("learning") else None) or \
            next((e["dst"] for e in vtep.fdb if e["mac"] == zero), None) or pvx.get("remote")
        if src is None or back is None or not self._is_local(ns, back):
            return None
        _TUNNEL_ARP = True
        try:
            there = trace(self.world, ns.key, dst, "udp", dport=vx["dstport"], src=src,
                          record=False)
            again = trace(self.world, peer.key, back, "udp", dport=pvx["dstport"],
                          src=pvx.get("local"), record=False)
        finally:
            _TUNNEL_ARP = False
        if not (_at_vxlan_socket(there, peer) and _at_vxlan_socket(again, ns)):
            return None
        return vtep.mac, f"{peer.label} {vtep.name}"

    def _vxlan_socket(self, ns: Netns, skb: _Skb) -> Link | None:
        """A VXLAN device that is up holds a UDP socket on its port (any address): a
        datagram it has no device for is dropped there, without an ICMP error."""
        if skb.pkt.proto != "udp":
            return None
        return next((l for l in ns.links.values() if l.kind == "vxlan" and l.vxlan
                     and l.vxlan["dstport"] == skb.pkt.dport and l.up), None)

    def _carrier(self, ns: Netns, link: Link) -> bool:
        carrier = self.static.carrier
        key = (ns.key, link.name)
        up = carrier.get(key)
        if up is None:
            up = carrier[key] = oper_up(self.world, ns, link)
        return up

    def _route(self, ns: Netns, dst: str, src: str | None = None, iif: str | None = None,
               oif: str | None = None) -> RouteDecision:
        """route_get, once per question in this state of the World."""
        routes = self.static.routes
        key = (id(ns), dst, src, iif, oif)
        d = routes.get(key)
        if d is None:
            if len(routes) >= MEMO_SIZE:
                routes.clear()
            d = routes[key] = route_get(ns, dst, src, iif, oif, self._is_local)
        return d

    def _locals(self, ns: Netns) -> tuple[frozenset[str], tuple]:
        """The namespace's addresses, and lo's (whose whole networks are local)."""
        found = self.static.locals.get(id(ns))
        if found is None:
            links = ns.links.values()
            found = self.static.locals[id(ns)] = (
                frozenset(a.ip for link in links for a in link.addresses),
                tuple(a for link in links if link.kind == "loopback" for a in link.addresses))
        return found

    def _is_local(self, ns: Netns, ip: str) -> bool:
        """routing.is_local, from the namespace's address set."""
        addrs, loopback = self._locals(ns)
        if ip in addrs:
            return True
        if not loopback:
            return False
        known = self.static.local_ips
        key = (id(ns), ip)
        found = known.get(key)
        if found is None:
            if len(known) >= MEMO_SIZE:
                known.clear()
            found = known[key] = any(in_address_net(ip_int(ip), a) for a in loopback)
        return found

    def _frame_path(self, a: l2.End, b: l2.End) -> list[l2.End]:
        frames = self.static.frames
        ends = frames.get((a, b))
        if ends is None:
            if len(frames) >= MEMO_SIZE:
                frames.clear()
            ends = frames[(a, b)] = self.seg.path(self.world, a, b)
        return ends

    def _frame(self, ends: list[l2.End], skb: _Skb, start: int = 0) -> Path:
        """A frame crossing veth pairs and bridges to the last end, which receives it (from
        ends[start] on). Bridges with bridge-nf-call-iptables=1 run their namespace's hooks."""
        hops = skb.hops
        seq, last = self._steps_of(ends, keep=not start)
        for i in range(start, len(seq)):
            step = seq[i]
            kind, hop = step[0], step[1]
            if hop is not None:
                hops.append(hop)
            if kind == "veth":
                skb.crossed(step[2])        # netns_changed
            elif kind == "in":
                went = self._into_bridge(step[2], step[3], step[4], ends, i, skb)
                if went is not ends:        # the end (a Path), or bridged to a new destination
                    return went if isinstance(went, Path) else self._frame(went, skb, i + 1)
        return self.receive(last[0], last[1], skb)

    def _steps_of(self, ends: list[l2.End], keep: bool = True) -> tuple[tuple, tuple]:
        """The steps from each end to the next (``_step``), and the (namespace, link) of the
        last end; with ``keep``, kept with the list of ends (those of ARP and frame_path
        live as long as this state of the World)."""
        steps = self.static.steps
        kept = steps.get(id(ends))
        if kept is not None and kept[0] is ends:
            return kept[1]
        seq = tuple(steps.get((a, b)) or self._step(a, b) for a, b in zip(ends, ends[1:]))
        found = (seq, l2.link_at(self.world, ends[-1]))
        if not keep:
            return found
        if len(steps) >= MEMO_SIZE:
            steps.clear()
        steps[id(ends)] = (ends, found)      # the list held: its id stays its own
        return found

    def _step(self, a: l2.End, b: l2.End) -> tuple:
        """What a frame does from end a to end b: cross a veth ("veth", hop, netns changed),
        enter a bridge through a port ("in", hop, ns, bridge, port), leave one ("out", hop),
        or nothing ("none", None). The same in one state of the World: kept, hop shared."""
        ns_a, link_a = l2.link_at(self.world, a)
        ns_b, link_b = l2.link_at(self.world, b)
        if a[0] != b[0] or (link_a.kind == "veth" and link_a.peer_name == link_b.name
                            and link_a.peer_netns == ns_b.key):
            step = ("veth", self.hop(ns_a, "veth", f"{link_a.name} → {link_b.name} "
                                     f"({ns_b.label})", dev=link_a.name), a[0] != b[0])
        elif link_b.kind == "bridge" and link_a.master == link_b.name:
            step = ("in", self.hop(ns_b, "bridge", f"{link_b.name} receives the frame on port "
                                   f"{link_a.name}", dev=link_b.name), ns_b, link_b, link_a)
        elif link_a.kind == "bridge" and link_b.master == link_a.name:
            step = ("out", self.hop(ns_a, "bridge", f"{link_a.name} forwards the frame out of "
                                    f"port {link_b.name}", dev=link_b.name))
        else:
            step = ("none", None)
        steps = self.static.steps
        if len(steps) >= MEMO_SIZE:
            steps.clear()
        steps[(a, b)] = step
        return step

    def _shared_hop(self, key: tuple, keep: object) -> Hop | None:
        """The hop kept for ``key``, which is the same whenever ``key`` is (``keep``: the
        object whose id is in the key, held so the id stays its own); None when none is."""
        found = self.static.hops.get(key)
        if found is not None and found[0] is keep:
            return found[1]
        return None

    def _share_hop(self, key: tuple, keep: object, hop: Hop) -> Hop:
        """Keep ``hop`` for ``key`` (see _shared_hop)."""
        hops = self.static.hops
        if len(hops) >= MEMO_SIZE:
            hops.clear()
        hops[key] = (keep, hop)
        return hop

    def _into_bridge(self, ns: Netns, bridge: Link, port: Link, ends: list[l2.End], i: int,
                     skb: _Skb) -> list[l2.End] | Path:
        """A frame enters ``bridge`` through ``port`` (ends[i] -> ends[i + 1]). For the bridge
        device itself it goes up to the namespace's IP layer; otherwise the bridge switches
        it to ends[i + 2]. With br_netfilter the bridged IPv4 frame crosses PREROUTING,
        FORWARD and POSTROUTING (-i/-o the bridge, physdev the ports), and a frame for the
        bridge crosses PREROUTING here instead of in the IP layer. The ends to go on with."""
        last = i + 2 == len(ends)
        if not self._br_netfilter(ns, skb):
            return self.receive(ns, bridge, skb) if last else ends
        before = skb.pkt.dst
        decided = self._hook(ns, "PREROUTING", skb, in_dev=bridge.name, physdev_in=port.name,
                             bridged=True)
        if decided is not None:
            return self._decided(ns, skb, decided)
        if skb.pkt.dst != before:
            again = self._retarget(ns, bridge, port, skb)
            if isinstance(again, Path):
                return again
            ends = ends[:i + 1] + again
        elif last:
            return self.receive(ns, bridge, skb, physdev_in=port.name, prerouted=True)
        _, out_port = l2.link_at(self.world, ends[i + 2])
        where = dict(out_dev=bridge.name, physdev_in=port.name, physdev_out=out_port.name,
                     bridged=True)
        decided = self._hook(ns, "FORWARD", skb, in_dev=bridge.name, **where) or \
            self._hook(ns, "POSTROUTING", skb, nexthop=skb.pkt.dst, **where)
        if decided is not None:
            return self._decided(ns, skb, decided)
        return ends

    def _br_netfilter(self, ns: Netns, skb: _Skb) -> bool:
        """Does the namespace send the IPv4 frames its bridges switch through its hooks?
        (Kept per namespace.)"""
        known = self.static.br_netfilter
        on = known.get(id(ns))
        if on is None:
            on = known[id(ns)] = (bool(ns.tables) and enabled(
                ns.sysctls.get("net.bridge.bridge-nf-call-iptables", "0")))
        return on

    def _rules_of(self, ns: Netns):
        rules = self.static.rules
        nf = rules.get(id(ns))
        if nf is None:
            nf = rules[id(ns)] = rules_of(self.world, ns)
        return nf

    def _retarget(self, ns: Netns, bridge: Link, port: Link, skb: _Skb) -> list[l2.End] | Path:
        """br_nf_pre_routing_finish after a DNAT (or an un-SNAT) on a frame that came in
        through a bridge port: an input route lookup for the new destination. To a
        destination behind the same bridge the frame is bridged there ("bridged DNAT"); to
        one of the namespace's own addresses or another device it goes up to the IP layer.
        With forwarding off the lookup gives an unreachable route (ip_error): dropped."""
        pkt = skb.pkt
        self._retargets += 1
        if self._is_local(ns, pkt.dst) or self._retargets > MAX_RETARGETS:
            return self.receive(ns, bridge, skb, physdev_in=port.name, prerouted=True)
        if not enabled(bridge.conf.get("forwarding")):
            skb.hops.append(self.hop(ns, "drop", f"the frame's destination became {pkt.dst}, "
                                     f"which {ns.label} must route, and forwarding is off on "
                                     f"{bridge.name}: dropped silently", dev=bridge.name))
            return self.end(FORWARDING_DISABLED, TIMEOUT, skb.hops, pkt,
                            diagnosis=f"ip_forward is 0 on {ns.label}: after the address "
                                      f"translation {pkt.dst} is not the frame's destination "
                                      f"any more and must be routed — sysctl -w "
                                      f"net.ipv4.ip_forward=1")
        d = self._route(ns, pkt.dst, src=pkt.src, iif=bridge.name)
        if not (d.ok and d.dev == bridge.name):
            return self.receive(ns, bridge, skb, physdev_in=port.name, prerouted=True)
        sid = self.seg.segment_of(self.world, (ns.key, bridge.name))
        owner = self.seg.owners.get((sid, d.nexthop)) if sid is not None else None
        if owner is None or owner[0] == ns.key:
            skb.hops.append(self.hop(ns, "arp", f"ARP who-has {d.nexthop} on {bridge.name}: "
                                     "no reply", dev=bridge.name, ip=d.nexthop, mac=None))
            return self.end(HOST_UNREACHABLE, TIMEOUT, skb.hops, pkt,
                            diagnosis=f"{ns.label} gets no ARP reply for {d.nexthop} on "
                                      f"{bridge.name} (the bridged frame's new destination)")
        owner_ns, owner_link = l2.link_at(self.world, owner)
        skb.hops.append(self.hop(ns, "arp", f"ARP {d.nexthop} is-at {owner_link.mac} "
                                 f"({owner_ns.label} {owner_link.name}): the frame is bridged "
                                 f"to its new destination", dev=bridge.name, ip=d.nexthop,
                                 mac=owner_link.mac, src_mac=bridge.mac))
        return self._frame_path((ns.key, bridge.name), owner)

    def _arp_failed(self, ns: Netns, skb: _Skb, nexthop: str, dev: str) -> Path:
        diagnosis = f"{ns.label} gets no ARP reply for {nexthop} on {dev}"
        # A router that cannot resolve the next hop answers "host unreachable"; so does the
        # sender's own stack (ipv4_link_failure): that answer loops back through lo and the
        # namespace's own OUTPUT and INPUT hooks, so lo down or an INPUT DROP keeps it from
        # the socket, which then times out.
        return self._icmp_error(ns, skb, ICMP_UNREACH, HOST_UNREACH, HOST_UNREACHABLE, diagnosis)

    # --- received --------------------------------------------------------------------
    def receive(self, ns: Netns, link: Link, skb: _Skb, *, physdev_in: str | None = None,
                prerouted: bool = False, loopback: bool = False) -> Path:
        if not prerouted:
            decided = self._hook(ns, "PREROUTING", skb, link.name, None, physdev_in)
            if decided is not None:
                return self._decided(ns, skb, decided)
        pkt = skb.pkt
        fate = self._arrival(ns, link, pkt) if not loopback else \
            LOCAL if self._is_local(ns, pkt.dst) else self._forwarding(ns, link, pkt)
        if fate is MARTIAN:
            skb.hops.append(self.hop(ns, "drop", f"martian source: {pkt.src} is an address of "
                                     f"{ns.label} itself, arriving on {link.name}",
                                     dev=link.name))
            return self.end(DROPPED, TIMEOUT, skb.hops, pkt,
                            diagnosis=f"{ns.label} drops a packet from its own address "
                                      f"{pkt.src} arriving on {link.name} (fib_validate_source: "
                                      f"a martian source; accept_local=1 allows it) — often a "
                                      f"routing loop that brings the packet back")
        if fate is RP_FILTERED:
            skb.hops.append(self.hop(ns, "drop", f"rp_filter: the route back to {pkt.src} does "
                                     f"not leave through {link.name}", dev=link.name))
            return self.end(DROPPED, TIMEOUT, skb.hops, pkt,
                            diagnosis=f"rp_filter drops {pkt.src} arriving on {link.name} in "
                                      f"{ns.label} — fix the routes or sysctl -w "
                                      f"net.ipv4.conf.all.rp_filter=0")
        if fate is LOCAL:
            return self.deliver(ns, link, skb, physdev_in=physdev_in)
        return self.forward(ns, link, skb, fate, physdev_in)

    def _arrival(self, ns: Netns, link: Link, pkt: Packet) -> object:
        """What the IP layer decides for a packet from its source to its destination that
        arrives on ``link`` (after PREROUTING): MARTIAN, RP_FILTERED, LOCAL, else what
        _forwarding says. A pure function of this state of the World: kept."""
        arrivals = self.static.arrivals
        key = (id(ns), link.name, pkt.src, pkt.dst)
        fate = arrivals.get(key)
        if fate is None:
            if len(arrivals) >= MEMO_SIZE:
                arrivals.clear()
            if self._martian_source(ns, link, pkt):
                fate = MARTIAN
            elif not self._rp_filter_ok(ns, link, pkt):
                fate = RP_FILTERED
            elif self._is_local(ns, pkt.dst):
                fate = LOCAL
            else:
                fate = self._forwarding(ns, link, pkt)
            arrivals[key] = fate
        return fate

    def _forwarding(self, ns: Netns, link: Link, pkt: Packet) -> RouteDecision | None:
        """A packet not for the namespace: the input route's decision, or None when
        forwarding is off on ``link``."""
        if not enabled(link.conf.get("forwarding")):
            return None
        return self._route(ns, pkt.dst, src=pkt.src, iif=link.name)

    def _martian_source(self, ns: Netns, link: Link, pkt: Packet) -> bool:
        """fib_validate_source: without rp_filter, a packet whose source is one of the
        namespace's own interface addresses is refused on input (unless accept_local)."""
        if pkt.src is None or link.kind == "loopback" or pkt.src not in self._locals(ns)[0]:
            return False
        return not (enabled(ns.sysctls.get("net.ipv4.conf.all.accept_local", "0"))
                    or enabled(link.conf.get("accept_local", "0")))

    def _rp_filter_ok(self, ns: Netns, link: Link, pkt: Packet) -> bool:
        mode = max(int(ns.sysctls.get("net.ipv4.conf.all.rp_filter", "0")),
                   int(link.conf.get("rp_filter", "0")))
        if not mode or pkt.src is None or pkt.src == "0.0.0.0":
            return True
        back = lookup_main(ns, pkt.src)
        if back is None or back.type != "unicast":
            return False
        return mode == 2 or back.dev == link.name

    def forward(self, ns: Netns, link: Link, skb: _Skb, d: RouteDecision | None,
                physdev_in: str | None = None) -> Path:
        """ip_forward, with the input route's decision ``d`` (None: forwarding is off on
        ``link``, see _forwarding)."""
        pkt = skb.pkt
        if d is None:
            skb.hops.append(self.hop(ns, "drop", f"not for {ns.label} and forwarding is off on "
                                     f"{link.name}: dropped silently", dev=link.name))
            return self.end(FORWARDING_DISABLED, TIMEOUT, skb.hops, pkt,
                            diagnosis=f"ip_forward is 0 on {ns.label} — "
                                      f"sysctl -w net.ipv4.ip_forward=1")
        if not d.ok:
            skb.hops.append(self.hop(ns, "route", f"no route to {pkt.dst} for a forwarded packet"))
            return self._icmp_error(ns, skb, ICMP_UNREACH, NET_UNREACH, NO_ROUTE,
                                    f"{ns.label} has no route to {pkt.dst}")
        if pkt.ttl <= 1:
            skb.hops.append(self.hop(ns, "ttl", f"TTL {pkt.ttl} would reach 0: time exceeded"))
            return self._icmp_error(ns, skb, ICMP_TIME_EXCEEDED, 0, TTL_EXCEEDED,
                                    f"the TTL ran out at {ns.label} (a routing loop, or "
                                    f"traceroute's probe)")
        skb.pkt = pkt = ct.rewrite(pkt, ttl=pkt.ttl - 1)
        key = ("forward", id(d), link.name, pkt.ttl)
        hop = self._shared_hop(key, d)
        if hop is None:
            hop = self._share_hop(key, d, self.hop(
                ns, "forward", f"forward {link.name} → {d.dev}"
                + (f" via {d.gateway}" if d.gateway else "") + f", TTL {pkt.ttl}", dev=d.dev))
        skb.hops.append(hop)
        decided = self._hook(ns, "FORWARD", skb, link.name, d.dev, physdev_in)
        if decided is not None:
            return self._decided(ns, skb, decided)
        return self.output(ns, d.dev, d.nexthop, skb)

    # --- local delivery ----------------------------------------------------------------
    def deliver(self, ns: Netns, link: Link, skb: _Skb, *,
                physdev_in: str | None = None) -> Path:
        decided = self._hook(ns, "INPUT", skb, link.name, None, physdev_in)
        if decided is not None:
            return self._decided(ns, skb, decided)
        pkt, hops = skb.pkt, skb.hops
        label = ns.label
        vxlan = self._vxlan_rcv(ns, skb)
        if vxlan is not None:
            inner = skb.inner
            hops.append(self.hop(ns, "vxlan", f"{vxlan.name} decapsulates (udp port {pkt.dport}, "
                                 f"VNI {skb.vni}): inner {inner.pkt.describe()} arrives on "
                                 f"{vxlan.name}", dev=vxlan.name, action="decap",
                                 vni=skb.vni, outer=pkt.to_json(), inner=inner.pkt.to_json()))
            inner.crossed(netns_changed=True)
            return self.receive(ns, vxlan, inner)
        taker = self._vxlan_socket(ns, skb)
        if taker is not None:               # vxlan_rcv: not for any of its VNIs, dropped
            what = f"VNI {skb.vni}" if skb.inner is not None else "no VXLAN frame"
            hops.append(self.hop(ns, "drop", f"{VXLAN_SOCKET}{pkt.dport} is {taker.name}'s "
                                 f"(VNI "
                                 f"{taker.vxlan['vni']}): {what}, the datagram is dropped",
                                 dev=link.name))
            return self.end(DROPPED, TIMEOUT, hops, pkt, delivered_to=label,
                            diagnosis=f"{taker.name} of {label} takes udp port {pkt.dport} "
                                      f"but not {what}: nothing answers")
        if skb.answer or pkt.proto == "icmp" and pkt.icmp_type != ICMP_ECHO_REQUEST:
            key = ("delivered", id(ns), link.name)
            hop = self._shared_hop(key, ns) or self._share_hop(key, ns, self.hop(
                ns, "deliver", f"delivered to {label}", dev=link.name))
            hops.append(hop)
            return self.end(DELIVERED, SUCCESS, hops, pkt, delivered_to=label)
        if pkt.proto == "icmp":
            if enabled(ns.sysctls.get("net.ipv4.icmp_echo_ignore_all")):
                hops.append(self.hop(ns, "drop", "icmp_echo_ignore_all=1: no echo reply"))
                return self.end(DROPPED, TIMEOUT, hops, pkt, delivered_to=label)
            hops.append(self.hop(ns, "deliver", f"echo request delivered to {label}",
                                 dev=link.name))
            answer = Packet("icmp", src=pkt.dst, dst=pkt.src, icmp_type=ICMP_ECHO_REPLY)
            return self._answered(ns, skb, answer, DELIVERED, SUCCESS)
        listening = any(l.proto == pkt.proto and l.port == pkt.dport and l.addr in ("0.0.0.0",
                        pkt.dst) for l in ns.listeners)
        if pkt.proto == "tcp":
            syn = "S" in (pkt.tcp_flags or "")
            if listening:
                what = "SYN" if syn else "segment"
                key = ("accepted", id(ns), link.name, what, pkt.dst, pkt.dport)
                hop = self._shared_hop(key, ns) or self._share_hop(key, ns, self.hop(
                    ns, "deliver", f"{what} to {pkt.dst}:{pkt.dport} accepted by a listener "
                    f"in {label}", dev=link.name))
                hops.append(hop)
                answer = Packet("tcp", pkt.dst, pkt.src, pkt.dport, pkt.sport, 64, None, None,
                                "SA" if syn else "A")      # positional: quicker
                return self._answered(ns, skb, answer, DELIVERED, SUCCESS)
            hops.append(self.hop(ns, "deliver", f"nothing listens on tcp port {pkt.dport} in "
                                 f"{label}: answer with RST", dev=link.name))
            answer = Packet("tcp", src=pkt.dst, dst=pkt.src, sport=pkt.dport, dport=pkt.sport,
                            tcp_flags="RA" if syn else "R")
            return self._answered(ns, skb, answer, NO_LISTENER, REFUSED,
                                  diagnosis=f"nothing listens on tcp port {pkt.dport} in {label}"
                                            f" — start one: nc -l -p {pkt.dport}")
        if listening:
            hops.append(self.hop(ns, "deliver", f"datagram to {pkt.dst}:{pkt.dport} delivered to "
                                 f"a listener in {label}", dev=link.name))
            answer = Packet("udp", src=pkt.dst, dst=pkt.src, sport=pkt.dport, dport=pkt.sport)
            path = self._answered(ns, skb, answer, DELIVERED, SUCCESS)
            path.outcome = SUCCESS  # the datagram arrived, whatever happens to an answer
            return path
        hops.append(self.hop(ns, "deliver", f"nothing listens on udp port {pkt.dport} in "
                             f"{label}: answer with ICMP port unreachable", dev=link.name))
        answer = IcmpError("icmp", src=pkt.dst, dst=pkt.src, icmp_type=ICMP_UNREACH,
                           icmp_code=PORT_UNREACH, inner=pkt)
        return self._answered(ns, skb, answer, NO_LISTENER, REFUSED, attach=True,
                              diagnosis=f"nothing listens on udp port {pkt.dport} in {label}"
                                        f" — start one: nc -l -u -p {pkt.dport}")

    def _answered(self, ns: Netns, skb: _Skb, answer: Packet, verdict: str, outcome: str,
                  diagnosis: str | None = None, *, attach: bool = False) -> Path:
        """The path ends here; its outcome holds only if the answer gets back."""
        reply = _Skb(answer, answer=True)
        if attach:
            self._attach(ns, reply, skb)
        back = self.send(ns, reply)
        problem = self._answer_problem(back)
        if problem is not None:
            outcome = TIMEOUT
            diagnosis = diagnosis or problem
        return self.end(verdict, outcome, skb.hops, skb.pkt, delivered_to=ns.label, reply=back,
                        diagnosis=diagnosis)

    def _answer_problem(self, back: Path) -> str | None:
        """Why an answer does not reach the sending socket, or None when it does."""
        if back.verdict != DELIVERED:
            return self._reply_diagnosis(back)
        origin = self.origin.label
        if back.delivered_to != origin:
            return (f"the answer is delivered to {back.delivered_to}, not to {origin}: "
                    f"an address translation is not undone on the way back")
        sent, got = self.sent, back.packet_out
        quoted = got.inner if isinstance(got, IcmpError) else None
        if sent is not None and quoted is not None and quoted.proto != sent.proto:
            return (f"the ICMP error is about a {quoted.proto} datagram to {quoted.dst}:"
                    f"{quoted.dport} (a tunnel's), not about what {origin} sent: its socket "
                    f"does not get it")
        if sent is None or sent.proto != "tcp":
            return None
        if got.proto == "tcp":
            ours = (got.src, got.sport) == (sent.dst, sent.dport)
            came = f"{got.src}:{got.sport}"
        elif quoted is not None:
            ours = (quoted.dst, quoted.dport) == (sent.dst, sent.dport)
            came = f"an ICMP error about {quoted.dst}:{quoted.dport}"
        else:
            return None
        if ours:
            return None
        return (f"the answer comes from {came}, but {origin} connected to "
                f"{sent.dst}:{sent.dport}: its socket does not take it (the translation is not "
                f"undone: the answer does not go back through the namespace that did the NAT)")

    def _reply_diagnosis(self, back: Path) -> str:
        last = back.hops[-1] if back.hops else None
        where = (f"{last.node}/{last.netns}" if last and last.netns != "root" else
                 (last.node if last else "?"))
        pkt = back.packet_out
        sender_net = self._network_of(pkt.dst)
        if back.verdict == NO_ROUTE:
            router = self._router()
            fix = (f"MASQUERADE on {router} (iptables -t nat -A POSTROUTING -s {sender_net} "
                   f"-j MASQUERADE)" if router else "MASQUERADE on the router")
            return (f"the reply from {pkt.src} has no route back to {sender_net} at {where} — "
                    f"add a route there (ip route add {sender_net} via ROUTER) or {fix}")
        return f"the reply from {pkt.src} does not get back: {back.diagnosis or back.verdict}"

    def _router(self) -> str | None:
        """The first namespace that forwarded the probe."""
        for hop in self.forward_hops:
            if hop.event == "forward":
                return hop.node if hop.netns == "root" else f"{hop.node}/{hop.netns}"
        return None

    def _network_of(self, ip: str) -> str:
        for ns in [self.origin, *self.world.namespaces.values()]:
            for link in ns.links.values():
                for addr in link.addresses:
                    if addr.ip == ip and link.kind != "loopback":
                        return str(addr.network)
        return f"{ip}/32"

    def _icmp_error(self, ns: Netns, skb: _Skb, icmp_type: int, code: int, verdict: str,
                    diagnosis: str) -> Path:
        pkt, hops = skb.pkt, skb.hops
        if pkt.proto == "icmp" and pkt.icmp_type not in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY):
            return self.end(verdict, TIMEOUT, hops, pkt, diagnosis=diagnosis)  # never about an error
        back_route = self._route(ns, pkt.src)
        src = back_route.src if back_route.ok else None
        if src is None:
            return self.end(verdict, TIMEOUT, hops, pkt, diagnosis=diagnosis)
        error = IcmpError("icmp", src=src, dst=pkt.src, icmp_type=icmp_type, icmp_code=code,
                          inner=pkt)
        hops.append(self.hop(ns, "icmp", f"{ns.label} answers with {error.describe()}"))
        answer = _Skb(error, answer=True)
        self._attach(ns, answer, skb)
        back = self.send(ns, answer)
        outcome = UNREACHABLE if self._answer_problem(back) is None else TIMEOUT
        if outcome == UNREACHABLE and self._silent_for_udp(skb, icmp_type, code):
            outcome = TIMEOUT
            diagnosis += (f"; a UDP socket does not report {error.describe()} (only with "
                          "IP_RECVERR): the sender just waits")
        return self.end(verdict, outcome, hops, pkt, diagnosis=diagnosis, reply=back)

    @staticmethod
    def _silent_for_udp(skb: _Skb, icmp_type: int, code: int) -> bool:
        return skb.probe and skb.pkt.proto == "udp" and (
            icmp_type == ICMP_TIME_EXCEEDED
            or (icmp_type == ICMP_UNREACH and code in UDP_SILENT_UNREACH))

    # --- netfilter ----------------------------------------------------------------------
    def _hook(self, ns: Netns, hook: str, skb: _Skb, in_dev: str | None = None,
              out_dev: str | None = None, physdev_in: str | None = None,
              physdev_out: str | None = None, bridged: bool = False,
              nexthop: str | None = None) -> Decision | None:
        """Run a hook of ``ns``; a Decision when the packet ends here (DROP, REJECT). (The
        hot callers pass the devices by position: a call with keywords costs more.)"""
        if not ns.tables:
            return None
        plans = self.static.plans
        plan = plans.get((id(ns), hook))
        if plan is None:
            plan = plans[(id(ns), hook)] = self._rules_of(ns).plan(hook)
        if not plan:
            return None
        # physdev information is there for every packet that came through br_netfilter
        # (bridged between ports, or up to the bridge device)
        where = (in_dev, out_dev, physdev_in, physdev_out, bridged or physdev_in is not None)
        for step, table in plan:
            if step == "walk":
                decided = self._walk_table(ns, table, hook, skb, where)
                kind = decided.kind
                if kind == "drop" or kind == "reject":
                    return decided
            elif step == "ct":
                self._conntrack_in(ns, skb)
            elif step == "nat":
                decided = self._nat(ns, table, hook, skb, where, nexthop)
                if decided is not None:
                    return decided
            else:
                self._confirm(ns, skb)
        return None

    def _walk_table(self, ns: Netns, table, hook: str, skb: _Skb, where: tuple) -> Decision:
        """netfilter.walk of ``table``'s chain for the hook, for the packet as it is now.
        A kept walk that did not fork is replayed straight from the skb; otherwise the
        packet is shown to the walk as a PacketView (made only then)."""
        uses_conn = table._uses_conn
        if uses_conn is None:
            uses_conn = table.uses_conn
        conn = self._conn_of(skb) if uses_conn else None
        leaf, key = kept_leaf(table, hook, skb.pkt, where, skb.mark, conn) if KEPT_WALKS \
            else (None, None)
        if leaf is None:
            view = self._view(ns, table, hook, skb, where)
            decided = walk(ns, table, hook, view, self.choose, skb.hops, key)
            self._after_walk(skb, view, decided)
            return decided
        decided = leaf.replay_hops(skb.hops, ns)
        if leaf.mark is not None:
            skb.mark = leaf.mark
        if leaf.connmark is not None and conn is not None and skb.conn is not None:
            skb.conn.mark = leaf.connmark
        if decided.notrack:
            skb.untracked = True
            skb.conn = None
            skb.state = UNTRACKED
        return decided

    @staticmethod
    def _conn_of(skb: _Skb) -> tuple | None:
        """The connection as netfilter.walk_key takes it, from the ConnView a walk would be
        shown (_conn_view); None when there is none."""
        conn = skb.conn
        if skb.untracked:
            return (UNTRACKED, (), ORIGINAL, _NO_TUPLE, _NO_TUPLE, 0)
        if conn is not None:
            return (skb.state or NEW, conn.status, skb.direction, conn.orig, conn.reply,
                    conn.mark)
        if skb.state == INVALID:
            return (INVALID, (), ORIGINAL, _NO_TUPLE, _NO_TUPLE, 0)
        return None

    def _view(self, ns: Netns, table, hook: str, skb: _Skb, where: tuple) -> PacketView:
        asks = self.static.in_sets.get(id(ns))
        if asks is None:
            asks = self.static.in_sets[id(ns)] = (
                self._addrtype(ns), lambda name, values, ns=ns: ipset_contains(ns, name, values))
        in_dev, out_dev, physdev_in, physdev_out, bridged = where
        view = object.__new__(PacketView)       # PacketView(...) without its __init__'s cost
        view.__dict__ = {"packet": skb.pkt, "table": table.name, "hook": hook, "in_dev": in_dev,
                         "out_dev": out_dev, "physdev_in": physdev_in,
                         "physdev_out": physdev_out, "bridged": bridged, "mark": skb.mark,
                         "conn": self._conn_view(skb) if table.uses_conn else None,
                         "addrtype": asks[0], "in_set": asks[1]}
        return view

    @staticmethod
    def _conn_view(skb: _Skb) -> ConnView | None:
        if skb.untracked:
            return ConnView(state=UNTRACKED)
        conn = skb.conn
        if conn is None:
            return ConnView(state=INVALID) if skb.state == INVALID else None
        orig, reply = conn.orig, conn.reply
        view = object.__new__(ConnView)         # ConnView(...) without its __init__'s cost
        view.__dict__ = {"state": skb.state or NEW, "status": conn.status,
                         "direction": skb.direction, "orig_src": orig.src,
                         "orig_dst": orig.dst, "orig_sport": orig.sport,
                         "orig_dport": orig.dport, "reply_src": reply.src,
                         "reply_dst": reply.dst, "reply_sport": reply.sport,
                         "reply_dport": reply.dport, "mark": conn.mark}
        return view

    @staticmethod
    def _after_walk(skb: _Skb, view: PacketView, decided: Decision) -> None:
        skb.mark = view.mark
        if skb.conn is not None and view.conn is not None:
            skb.conn.mark = view.conn.mark
        if decided.notrack:
            skb.untracked = True
            skb.conn = None
            skb.state = UNTRACKED

    def _addrtype(self, ns: Netns) -> Callable[[str, str | None], str]:
        return self._rules_of(ns).addrtype()

    def _table(self, ns: Netns) -> ConntrackTable:
        found = self.tables.get(id(ns))
        if found is None:
            found = self.tables[id(ns)] = (ns, ConntrackTable(ns.conntrack))
        return found[1]

    def _conntrack_in(self, ns: Netns, skb: _Skb) -> None:
        """nf_conntrack_in: find the packet's connection, or start one."""
        if skb.untracked:
            skb.state = UNTRACKED
            return
        if skb.conn is not None and skb.ct_ns is ns:
            return          # looped back, or an answer this namespace made for the packet
        table = self._table(ns)
        pkt = skb.pkt
        skb.ct_ns = ns
        if pkt.proto == "icmp" and pkt.icmp_type in ct.ICMP_ERRORS:
            quoted = pkt.inner if isinstance(pkt, IcmpError) else None
            found = table.find_quoted(quoted) if quoted is not None else None
            if found is None:
                skb.conn, skb.state = None, INVALID
                return
            conn, direction = found
            conn.touched = True
            skb.conn, skb.direction, skb.state = conn, direction, RELATED
            return
        found = table.find(pkt)
        if found is not None:
            conn, direction = found
            stale = skb.probe and skb.fresh and not conn.touched
            if stale or ct.reopens(conn, pkt, direction):
                table.remove(conn)
                found = None
        if found is not None:
            conn, direction = found
            ct.seen(conn, pkt, direction)
            skb.conn, skb.direction = conn, direction
            skb.state = ESTABLISHED if (direction == REPLY or "SEEN_REPLY" in conn.status) \
                else NEW
            return
        if not ct.opens_connection(pkt):
            skb.conn, skb.state = None, INVALID
            return
        skb.conn, skb.direction, skb.state = ct.new_conn(pkt), ORIGINAL, NEW

    def _confirm(self, ns: Netns, skb: _Skb) -> None:
        conn = skb.conn
        if (conn is not None and skb.ct_ns is ns and not conn.confirmed
                and skb.direction == ORIGINAL and skb.state != RELATED and not conn.closed):
            self._table(ns).insert(conn)

    def _attach(self, ns: Netns, answer: _Skb, skb: _Skb) -> None:
        """nf_ct_attach: an error or RST this namespace makes about a packet belongs to that
        packet's connection, in the other direction (RELATED)."""
        if skb.conn is not None and skb.ct_ns is ns:
            answer.conn, answer.ct_ns = skb.conn, ns
            answer.direction, answer.state = ct.other(skb.direction), RELATED

    def _nat(self, ns: Netns, table, hook: str, skb: _Skb, where: tuple,
             nexthop: str | None) -> Decision | None:
        """nf_nat_inet_fn: a connection's first packet walks the nat chain and decides its
        binding; every packet (that one included) is then rewritten from the binding."""
        conn = skb.conn
        if conn is None or skb.untracked or skb.ct_ns is not ns:
            return None
        manip = DST if hook in ("PREROUTING", "OUTPUT") else SRC
        pkt = skb.pkt
        rule_hop = None
        if skb.state == RELATED and isinstance(pkt, IcmpError):
            pass        # nf_nat_icmp_reply_translation: no chain, outer and quoted header
        elif manip not in conn.nat_done:
            if skb.state == NEW and table is not None:
                decided = self._walk_table(ns, table, hook, skb, where)
                if decided.kind in ("drop", "reject"):
                    return decided
                if decided.kind in NAT_KINDS:
                    failed = self._bind(ns, conn, decided, hook, where, nexthop)
                    if failed is not None:
                        decided.hop.detail += f": {failed} — the packet is dropped"
                        decided.hop.action = "drop"
                        return Decision("drop", decided.action, decided.hop, decided.table,
                                        decided.chain, decided.rule, decided.position)
                    rule_hop = decided.hop
                if skb.untracked:
                    return None
            conn.nat_done.add(manip)
        new = ct.manip_packet(pkt, conn, skb.direction, manip)
        if new is pkt or new == pkt:
            return None
        what = _nat_name(manip, skb.direction)
        change = _change(pkt, new, manip)
        if rule_hop is not None:
            head, sep, notes = rule_hop.detail.partition(" (")
            rule_hop.detail = f"{head} {change}{sep}{notes}"
            rule_hop.extra = {**(rule_hop.extra or {}), "nat": what, "packet": packet_json(new)}
        else:
            about = " in the ICMP error" if isinstance(pkt, IcmpError) else ""
            note = "" if skb.direction == REPLY or isinstance(pkt, IcmpError) else \
                " (a known connection: the nat table is not consulted)"
            skb.hops.append(self.hop(ns, "conntrack", f"{what}{about} {change}{note}", nat=what,
                                     packet=packet_json(new)))
        skb.pkt = new
        return None

    def _bind(self, ns: Netns, conn: Conn, decided: Decision, hook: str, where: tuple,
              nexthop: str | None) -> str | None:
        """Record the NAT binding a target chose; the reason when it cannot be done."""
        action = decided.action
        kind = decided.kind
        first = action.to_addr[0] if action.to_addr else None
        port = action.to_port[0] if action.to_port else None
        if kind == "dnat":
            ct.bind_dnat(conn, first or conn.reply.src, port)
        elif kind == "redirect":
            if hook == "OUTPUT":
                addr = "127.0.0.1"
            else:
                link = ns.links.get(where[0] or "")
                if link is None or not link.addresses:
                    return f"{where[0]} has no address to REDIRECT to"
                addr = link.addresses[0].ip
            ct.bind_dnat(conn, addr, port)
        elif kind == "snat":
            ct.bind_snat(self._table(ns), conn, first or conn.reply.dst, action.to_port)
        elif kind == "masquerade":
            dev = where[1]
            addr = masquerade_source(ns, dev, nexthop or conn.orig.dst)
            if addr is None:
                return f"{dev} has no address to MASQUERADE with"
            ct.bind_snat(self._table(ns), conn, addr, action.to_port)
        return None

    def _decided(self, ns: Netns, skb: _Skb, decided: Decision) -> Path:
        """The packet ends at a DROP or REJECT (a rule's or a policy's)."""
        if decided.kind == "reject":
            return self._reject(ns, skb, decided)
        pkt = skb.pkt
        diagnosis = self._drop_diagnosis(ns, skb, decided)
        outcome = TIMEOUT
        if self._sender_errno(ns, skb):
            outcome = ERROR
            diagnosis += " — send() fails at once with EPERM (Operation not permitted)"
            if decided.hop is not None:
                decided.hop.extra = {**(decided.hop.extra or {}), "errno": "EPERM"}
        return self.end(DROPPED, outcome, skb.hops, pkt, diagnosis=diagnosis)

    def _sender_errno(self, ns: Netns, skb: _Skb) -> bool:
        """A UDP socket sees EPERM when its own namespace drops the datagram on the way out
        (ip_local_out returns the NF_DROP); ping and TCP just wait (KERNEL_NOTES)."""
        return skb.probe and skb.local is ns and skb.pkt.proto == "udp"

    def _drop_diagnosis(self, ns: Netns, skb: _Skb, decided: Decision) -> str:
        if not decided.by_policy:
            return (f"dropped by `{decided.rule}` ({decided.table} {decided.chain}, rule "
                    f"{decided.position}) on {ns.label}")
        return (f"the {decided.chain} policy of {decided.table} on {ns.label} is DROP and no "
                f"rule accepts this packet — add e.g. "
                f"{self._accept_hint(ns, skb, decided.chain)}")

    def _accept_hint(self, ns: Netns, skb: _Skb, chain: str) -> str:
        pkt = skb.pkt
        prefix = f"ip netns exec {ns.name} " if ns.name != "root" else ""
        if skb.answer:
            what = "-m conntrack --ctstate ESTABLISHED,RELATED"
        elif chain == "FORWARD":
            what = f"-s {self._network_of(self.sent.src if self.sent else pkt.src)}"
        elif chain == "OUTPUT":
            what = f"-d {pkt.dst}/32"
        elif pkt.proto in ("tcp", "udp"):
            what = f"-p {pkt.proto} --dport {pkt.dport}"
        else:
            what = f"-p {pkt.proto}"
        return f"{prefix}iptables -A {chain} {what} -j ACCEPT"

    def _reject(self, ns: Netns, skb: _Skb, decided: Decision) -> Path:
        """REJECT: the namespace answers in the packet's place (ipt_REJECT)."""
        pkt, hops = skb.pkt, skb.hops
        with_ = decided.action.reject_with if decided.action else None
        with_ = with_ or "icmp-port-unreachable"
        diagnosis = (f"rejected by `{decided.rule}` ({decided.table} {decided.chain}, rule "
                     f"{decided.position}) on {ns.label}")
        errno = self._sender_errno(ns, skb)
        if (pkt.proto == "icmp" and pkt.icmp_type not in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY)) \
                or (pkt.proto == "tcp" and "R" in (pkt.tcp_flags or "")):
            # never an answer about an ICMP error, nor a RST for a RST
            return self.end(REJECTED, TIMEOUT, hops, pkt, diagnosis=diagnosis)
        forged = False
        if with_ == "tcp-reset" and pkt.proto == "tcp":
            # nf_send_reset: the RST is sent in the name of the destination.
            answer = Packet("tcp", src=pkt.dst, dst=pkt.src, sport=pkt.dport, dport=pkt.sport,
                            tcp_flags="RA")
            forged, refused = True, True
            event = "tcp-reset"
        else:
            code = REJECT_CODES.get(with_, PORT_UNREACH)
            # icmp_send: from the packet's destination when it was ours, else the address
            # the route back chooses.
            if self._is_local(ns, pkt.dst):
                src = pkt.dst
            else:
                back_route = self._route(ns, pkt.src)
                src = back_route.src if back_route.ok else None
            if src is None:
                return self.end(REJECTED, ERROR if errno else TIMEOUT, hops, pkt,
                                diagnosis=diagnosis)
            answer = IcmpError("icmp", src=src, dst=pkt.src, icmp_type=ICMP_UNREACH,
                               icmp_code=code, inner=pkt)
            refused = code == PORT_UNREACH
            event = "icmp"
        hops.append(self.hop(ns, event, f"{ns.label} answers with {answer.describe()}"))
        reply = _Skb(answer, answer=True)
        self._attach(ns, reply, skb)
        back = self.send(ns, reply, forged=forged)
        if errno:
            outcome = ERROR
            diagnosis += " — send() fails at once with EPERM (Operation not permitted)"
        elif self._answer_problem(back) is None:
            outcome = REFUSED if refused else UNREACHABLE
            if not refused and self._silent_for_udp(skb, ICMP_UNREACH, code):
                outcome = TIMEOUT
                diagnosis += "; a UDP socket does not report it (only with IP_RECVERR)"
        else:
            outcome = TIMEOUT
        return self.end(REJECTED, outcome, hops, pkt, diagnosis=diagnosis + f": answered with "
                        f"{answer.describe()}", reply=back)

    # --- the conntrack tables, back into the World ----------------------------------------
    def record(self, path: Path) -> None:
        """Write this walk's conntrack tables to the namespaces (what conntrack -L shows).
        A TCP handshake that succeeded is followed by the probe closing its socket: its
        entries end in TIME_WAIT, as after ``nc -z`` or curl."""
        handshake = self.sent is not None and self.sent.proto == "tcp" \
            and path.outcome == SUCCESS
        for ns, table in self.tables.values():
            if handshake:
                for conn in table.conns:
                    if conn.touched and conn.proto == "tcp" and conn.tcp_state == "SYN_RECV":
                        conn.tcp_state = "TIME_WAIT"
                        conn.status.add("ASSURED")
            ns.conntrack = table.entries()


def masquerade_source(ns: Netns, dev: str | None, nexthop: str) -> str | None:
    """inet_select_addr(out, nexthop, RT_SCOPE_UNIVERSE): the device's primary address on
    the next hop's network, else its first primary address, else another device's."""
    link = ns.links.get(dev) if dev else None
    usable = [a for a in link.addresses if not ipaddress.IPv4Address(a.ip).is_loopback] \
        if link is not None else []       # RT_SCOPE_UNIVERSE: lo's 127.0.0.1 is host scope
    if link is not None and usable:
        target = ipaddress.IPv4Address(nexthop)
        primaries = []
        for addr in usable:
            if not any(p.network == addr.network for p in primaries):
                primaries.append(addr)
        for addr in primaries:
            if target in addr.network:
                return addr.ip
        return primaries[0].ip
    for other in ns.links.values():          # any device's first address of global scope,
        for addr in other.addresses:         # up or not (in_dev_select_addr)
            if not ipaddress.IPv4Address(addr.ip).is_loopback:
                return addr.ip
    return None


def packet_json(pkt: Packet) -> dict:
    """A hop's ``packet``: the packet from that hop on, with the quoted header of an ICMP
    error (set where the packet changes or an answer starts; the renderers in viz/ read it)."""
    out = pkt.to_json()
    if isinstance(pkt, IcmpError) and pkt.inner is not None:
        out["inner"] = pkt.inner.to_json()
    return out


def _nat_name(manip: str, direction: str) -> str:
    if direction == ORIGINAL:
        return "SNAT" if manip == SRC else "DNAT"
    return "un-DNAT" if manip == SRC else "un-SNAT"


def _endpoint(pkt: Packet, side: str) -> str:
    ip = pkt.src if side == "src" else pkt.dst
    port = pkt.sport if side == "src" else pkt.dport
    return f"{ip}:{port}" if port is not None else f"{ip}"


def _change(before: Packet, after: Packet, manip: str) -> str:
    side = "src" if manip == SRC else "dst"
    text = f"{_endpoint(before, side)} → {_endpoint(after, side)}"
    if isinstance(before, IcmpError) and isinstance(after, IcmpError) and before.inner \
            and after.inner and before.inner != after.inner:
        quoted = "dst" if manip == SRC else "src"
        text += (f" (quoted packet {_endpoint(before.inner, quoted)} → "
                 f"{_endpoint(after.inner, quoted)})")
    return text


def _describe_route(d: RouteDecision) -> str:
    if d.kind == "local":
        return f"local {d.dst} dev lo src {d.src}"
    via = f" via {d.gateway}" if d.gateway else ""
    matched = d.route.dst if d.route is not None else "on-link"
    return f"{d.dst}{via} dev {d.dev} src {d.src} (route {matched})"
