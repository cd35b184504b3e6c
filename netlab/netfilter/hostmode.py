"""Single-host mode: one real node's ``iptables-save`` in a World of its own.

``netlab iptables trace`` asks "what does this node do with a packet to
10.96.0.10:53?" without modelling the rest of the cluster. The World is built
from what the person tells us about the node:

    spec = HostSpec.from_flags(local_ips=["192.168.1.11"], ifaces=[])
    host = build(spec, dump_text, dump_name="node1.save")
    result = trace_packet(host, src="10.244.1.9", dst="10.96.0.10", proto="udp", dport=53)

The node ("node") has the interfaces of ``--iface NAME=IP/PFX`` (with none:
one interface ``eth0`` holding every ``--local-ip``), a default route out of
the first one, and ip_forward=1 (a Kubernetes or Docker host forwards).
``--local-ip`` addresses that no interface holds go on ``lo``, as kube-proxy's
IPVS addresses or a MetalLB VIP would be local.

What lies behind each interface is not modelled. So that the trace can start
where the packet really arrives and end where it really leaves, each
interface is one end of a veth pair whose other end is in a namespace
``outside/<iface>``: the sender (``--from``, when it is not a local address)
lives there, so its packet arrives on ``--in-iface``. Hops in ``outside/…`` are
taken out of the trace again; a packet the node sends out of an interface
towards an address nobody modelled answers for ends ``exited`` there, with
``packet_out`` as it left (after POSTROUTING). Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace

from netlab import ops as O
from netlab.errors import CommandError, NetlabError
from netlab.model import ROOT, World, ns_key
from netlab.trace import EXITED, HOST_UNREACHABLE, TIMEOUT, Hop, Path, Trace

NODE = "node"
OUTSIDE = "outside"              # the node whose namespaces stand for the unmodelled networks
WIRE = "wire"                    # the outside end of each interface's veth pair
DEFAULT_IFACE = "eth0"
IFNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")


class HostModeError(NetlabError):
    """Bad input to single-host mode: one line, naming the flag or file:line."""


# --- the node as the flags describe it ---------------------------------------------------

@dataclass(frozen=True)
class Iface:
    name: str
    addresses: tuple[tuple[str, int], ...]      # (ip, prefixlen)


@dataclass(frozen=True)
class HostSpec:
    ifaces: tuple[Iface, ...]
    on_lo: tuple[tuple[str, int], ...] = ()    # --local-ip addresses no interface holds

    @classmethod
    def from_flags(cls, local_ips: list[str] | tuple[str, ...] = (),
                   ifaces: list[str] | tuple[str, ...] = ()) -> "HostSpec":
        locals_ = [parse_address(text, "--local-ip", default_prefix=32) for text in local_ips]
        if not ifaces:
            if not locals_:
                raise HostModeError("give the node's addresses: --local-ip IP (on eth0) "
                                    "or --iface NAME=IP/PFX")
            return cls(ifaces=(Iface(DEFAULT_IFACE, tuple(dict.fromkeys(locals_))),))
        by_name: dict[str, list[tuple[str, int]]] = {}
        for text in ifaces:
            name, address = parse_iface(text)
            by_name.setdefault(name, []).append(address)
        held = {ip for addrs in by_name.values() for ip, _ in addrs}
        on_lo = tuple(dict.fromkeys(a for a in locals_ if a[0] not in held))
        return cls(ifaces=tuple(Iface(n, tuple(a)) for n, a in by_name.items()), on_lo=on_lo)

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.ifaces]


def parse_address(text: str, flag: str, default_prefix: int | None = None) -> tuple[str, int]:
    ip, sep, prefix = text.strip().partition("/")
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        raise HostModeError(f"{flag}: '{text}' is not an IPv4 address") from None
    if not sep:
        if default_prefix is None:
            raise HostModeError(f"{flag}: '{text}' needs a prefix length, e.g. {ip}/24")
        return ip, default_prefix
    if not prefix.isdigit() or not 0 <= int(prefix) <= 32:
        raise HostModeError(f"{flag}: '{text}' has a bad prefix length (0-32)")
    return ip, int(prefix)


def parse_iface(text: str) -> tuple[str, tuple[str, int]]:
    """``eth0=192.168.1.11/24`` -> ("eth0", ("192.168.1.11", 24))."""
    name, sep, address = text.partition("=")
    if not sep or not name:
        raise HostModeError(f"--iface: '{text}' is not NAME=IP/PFX (e.g. eth0=192.168.1.11/24)")
    if not IFNAME.match(name) or name in ("lo", WIRE):
        raise HostModeError(f"--iface: '{name}' is not a usable interface name")
    return name, parse_address(address, "--iface", default_prefix=None)


# --- building the World ---------------------------------------------------------------------

@dataclass
class HostWorld:
    world: World
    backend: object
    spec: HostSpec
    node_key: str = ns_key(NODE)
    outside: dict[str, str] = field(default_factory=dict)     # iface -> outside namespace key

    @property
    def ns(self):
        return self.world.namespaces[self.node_key]


def build(spec: HostSpec, dump: str, dump_name: str = "<dump>") -> HostWorld:
    """The node of ``spec`` with the rules of ``dump`` (iptables-save text) loaded."""
    from netlab.backends.model import ModelBackend

    backend = ModelBackend(World(name="iptables-trace"))
    host = HostWorld(world=backend.world, backend=backend, spec=spec)
    apply = backend.apply
    apply(O.AddNode(NODE))
    apply(O.AddNode(OUTSIDE))
    for iface in spec.ifaces:
        outside = ns_key(OUTSIDE, iface.name)
        apply(O.AddNetns(OUTSIDE, iface.name))
        apply(O.AddLink(host.node_key, iface.name, "veth", peer=WIRE, peer_netns=outside))
        apply(O.SetLinkUp(outside, "lo", True))
        apply(O.SetLinkUp(outside, WIRE, True))
        apply(O.SetLinkUp(host.node_key, iface.name, True))
        for ip, prefix in iface.addresses:
            apply(O.AddAddress(host.node_key, iface.name, ip, prefix))
        host.outside[iface.name] = outside
    for ip, prefix in spec.on_lo:
        apply(O.AddAddress(host.node_key, "lo", ip, prefix))
    apply(O.AddRoute(host.node_key, "default", dev=spec.ifaces[0].name))
    apply(O.SetSysctl(host.node_key, "net.ipv4.ip_forward", "1"))
    load_dump(host, dump, dump_name)
    return host


def load_dump(host: HostWorld, dump: str, dump_name: str) -> None:
    """iptables-restore the dump into the node; a refused line becomes ``FILE:N: …``."""
    if not dump.strip():
        raise HostModeError(f"{dump_name}: the file is empty (expected iptables-save output)")
    if not any(line.startswith("*") for line in dump.splitlines()):
        raise HostModeError(f"{dump_name}:1: no '*table' line: this is not iptables-save output")
    try:
        restore(host, dump)
    except CommandError as err:
        text = " ".join(str(err.message).split())
        found = re.search(r"\bline:? (\d+)", text)
        where = f"{dump_name}:{found.group(1)}" if found else dump_name
        raise HostModeError(f"{where}: {text}") from None


def restore(host: HostWorld, payload: str) -> None:
    """The dump as one IptablesRestore Op (validated first, swapped in whole)."""
    host.backend.apply(O.IptablesRestore(host.node_key, payload, noflush=False))


# --- tracing --------------------------------------------------------------------------------

def is_local(host: HostWorld, ip: str) -> bool:
    from netlab.dataplane.routing import is_local as local

    return local(host.ns, ip)


def place_sender(host: HostWorld, src: str, in_iface: str) -> str:
    """The namespace the packet is sent from: the node itself for a local ``src``, else
    the outside of ``in_iface`` holding ``src``, routed to the node."""
    if is_local(host, src):
        return host.node_key
    outside = host.outside.get(in_iface)
    if outside is None:
        raise HostModeError(f"--in-iface: the node has no interface '{in_iface}' "
                            f"(it has: {', '.join(host.spec.names)})")
    gateway = _gateway_on(host, in_iface)
    apply = host.backend.apply
    wire = host.world.namespaces[outside].links[WIRE]
    for addr in list(wire.addresses):              # the sender of an earlier trace
        if addr.ip != src:
            apply(O.DelAddress(outside, WIRE, addr.ip, addr.prefixlen))
    if not wire.addresses:
        apply(O.AddAddress(outside, WIRE, src, 32))
    apply(O.AddRoute(outside, "default", dev=WIRE, gateway=gateway, onlink=True, replace=True))
    return outside


def _gateway_on(host: HostWorld, iface: str) -> str:
    link = host.ns.links[iface]
    if link.addresses:
        return link.addresses[0].ip
    raise HostModeError(f"--in-iface: {iface} has no address to send to")


def trace_packet(host: HostWorld, *, src: str, dst: str, proto: str, dport: int | None = None,
                 sport: int | None = None, in_iface: str = DEFAULT_IFACE) -> Trace:
    """Trace one packet from ``src`` (arriving on ``in_iface``, or sent by the node when
    ``src`` is one of its addresses) to ``dst``; the outside's hops are taken out.

    Each trace starts from an empty conntrack table: it is the first packet of a new
    connection, as the question "what happens to a packet to …" means."""
    from netlab.dataplane.engine import trace

    sender = place_sender(host, src, in_iface)
    for ns in host.world.namespaces.values():      # every trace is a connection's first packet
        ns.conntrack.clear()
    raw = trace(host.world, sender, dst, proto=proto, dport=dport, sport=sport, src=src,
                conntrack="new")
    arrived = in_iface if sender != host.node_key else None
    what = raw.packet.with_(src=src).describe()
    paths = [clean_path(host, p, arrived=arrived, what=what) for p in raw.paths]
    return Trace(packet=raw.packet.with_(src=src), source=_label(host, sender, src),
                 paths=paths)


def _label(host: HostWorld, key: str, src: str) -> str:
    return "node" if key == host.node_key else f"{src} (outside, on {split_outside(key)})"


def split_outside(key: str) -> str:
    return key.partition("/")[2]


def clean_path(host: HostWorld, path: Path, *, arrived: str | None, what: str) -> Path:
    """The path as seen from the node: the outside's own hops removed, an ``arrive`` hop
    first, and a packet sent towards nobody behind an interface ``exited``."""
    hops = [h for h in path.hops if h.node != OUTSIDE]
    if arrived is not None and not (hops and hops[0].event == "arrive"):
        hops.insert(0, Hop(node=NODE, netns=ROOT, event="arrive",
                           detail=f"{what} arrives on {arrived}",
                           dev=arrived))
    reply = path.reply
    exit_at = _exit_hop(host, hops) if path.verdict == HOST_UNREACHABLE else None
    if exit_at is not None:
        hop = hops[exit_at]
        hops = hops[:exit_at] + [replace(hop, event="exit", detail=(
            f"leaves through {hop.dev} towards {(hop.extra or {}).get('ip', '?')}: "
            f"the network behind {hop.dev} is not modelled"), extra=None)]
        return replace(path, verdict=EXITED, outcome=_exited_outcome(path), hops=hops,
                       diagnosis=None, reply=None, delivered_to=None)
    hops = [_towards_outside(h) for h in hops]
    if reply is not None:
        reply = clean_path(host, reply, arrived=None, what=what)
    return replace(path, hops=hops, reply=reply)


def _towards_outside(hop: Hop) -> Hop:
    """The node's frame into an interface's outside: say so, without the stand-in's names."""
    marker = f"({OUTSIDE}/"
    if hop.node != NODE or marker not in hop.detail:
        return hop
    if hop.event == "veth":
        return replace(hop, detail=f"out of {hop.dev} to the network behind it")
    if hop.event == "arp":
        ip = (hop.extra or {}).get("ip", "?")
        return replace(hop, detail=f"ARP {ip} is-at {(hop.extra or {}).get('mac')} "
                                   f"(the sender, behind {hop.dev})")
    return hop


def _exit_hop(host: HostWorld, hops: list[Hop]) -> int | None:
    """Index of the node's failed ARP out of an interface that leads outside, if that is
    where the path ended (the engine's 'host unreachable' for a next hop nobody owns)."""
    for i in range(len(hops) - 1, -1, -1):
        hop = hops[i]
        if hop.event == "arp" and hop.node == NODE and hop.dev in host.outside \
                and (hop.extra or {}).get("mac", "") is None:
            return i
    return None


def _exited_outcome(path: Path) -> str:
    """What the sender observes when the packet left the model: nothing we know of."""
    return TIMEOUT


__all__ = ["HostModeError", "HostSpec", "HostWorld", "Iface", "build", "load_dump",
           "parse_address", "parse_iface", "trace_packet"]
