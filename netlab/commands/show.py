"""The World printed the way iproute2 prints the kernel's state.

``ip link``, ``ip addr``, ``ip route`` (main and local tables), ``ip route
get``, ``ip neigh``, ``ip netns list``, ``bridge link`` and ``bridge fdb``.
Flags, qdisc and state words are the kernel's (tests/data/kernel/*.txt are
real transcripts). What the model does not keep is derived:

- qdisc: ``noop`` until a link is up, then ``noqueue`` (the kernel keeps
  ``noqueue`` after a later ``down``; the model has no memory of it, except
  for ``lo``, whose 127.0.0.1 shows it was up once).
- IPv6: a link that is up with carrier shows its EUI-64 link-local address
  (``lo``: ``::1``), as the kernel does once DAD is over (never ``tentative``).
- netnsid numbers (``link-netnsid N``, ``(id: N)``) are counted in the order
  the namespaces were created.
- bridge timers read 0.00; the fdb lists, as learned, the MAC at the far end
  of each port's veth once both are up (the kernel learns it from the first
  IPv6 frames), not the MACs of traffic further away.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable

from netlab.backends.model import oper_up, sysctl_value
from netlab.model import ROOT, Address, Link, Netns, Route, World

QLEN = 1000
GSO = "gso_max_size 65536 gso_max_segs 65535"
GRO = "gro_max_size 65536"


@dataclass(frozen=True)
class ShowOptions:
    family: int | None = None      # 4, 6 or None (both)
    brief: bool = False
    oneline: bool = False
    details: bool = False


# --- links ------------------------------------------------------------------------------

def carrier(world: World, ns: Netns, link: Link) -> bool:
    return oper_up(world, ns, link)


def _ports(ns: Netns, bridge: Link) -> list[Link]:
    return sorted((p for p in ns.links.values() if p.master == bridge.name),
                  key=lambda p: p.ifindex)


def is_physical(world: World, ns: Netns, link: Link) -> bool:
    """A node's interface on a LAN: a veth whose far end is a modelled switch."""
    if link.kind != "veth" or link.peer_netns is None:
        return False
    peer_ns = world.namespaces.get(link.peer_netns)
    return peer_ns is not None and peer_ns.kind == "switch" and ns.kind != "switch"


def link_flags(world: World, ns: Netns, link: Link) -> list[str]:
    flags: list[str] = []
    up = link.up
    has_carrier = up and carrier(world, ns, link)
    if up and not has_carrier:
        flags.append("NO-CARRIER")
    if link.kind == "loopback":
        flags.append("LOOPBACK")
    elif link.kind == "dummy":
        flags += ["BROADCAST", "NOARP"]
    else:
        flags += ["BROADCAST", "MULTICAST"]
    if up:
        flags.append("UP")
    if has_carrier:
        flags.append("LOWER_UP")
    if _mdown(world, ns, link):
        flags.append("M-DOWN")
    return flags


def _mdown(world: World, ns: Netns, link: Link) -> bool:
    """iproute2 prints M-DOWN when the link's lower device, in the same
    namespace, is down: for a veth, a peer beside it that is down."""
    if link.kind != "veth" or link.peer_netns != ns.key or is_physical(world, ns, link):
        return False
    peer = ns.links.get(link.peer_name or "")
    return peer is not None and not peer.up


def oper_state(world: World, ns: Netns, link: Link) -> str:
    if not link.up:
        return "DOWN"
    if link.kind in ("loopback", "dummy"):
        return "UNKNOWN"
    if link.kind == "bridge" and not _ports(ns, link):
        return "UNKNOWN"
    return "UP" if carrier(world, ns, link) else "DOWN"


def qdisc(world: World, ns: Netns, link: Link) -> str:
    if link.up or (link.kind == "loopback" and link.addresses):
        return "fq_codel" if is_physical(world, ns, link) else "noqueue"
    return "noop"


def ifname(world: World, ns: Netns, link: Link) -> str:
    """``veth-red@if2`` (peer elsewhere) or ``veth-a@veth-b`` (peer beside it)."""
    if link.kind != "veth" or is_physical(world, ns, link):
        return link.name
    peer = world.peer_of(ns, link)
    if peer is None:
        return link.name
    peer_ns, peer_link = peer
    if peer_ns is ns:
        return f"{link.name}@{peer_link.name}"
    return f"{link.name}@if{peer_link.ifindex}"


def netnsids(world: World, ns: Netns) -> dict[str, int]:
    """The ids ``ns`` gives the namespaces its veths lead into."""
    wanted = set()
    for link in ns.links.values():
        if link.kind == "veth" and link.peer_netns and link.peer_netns != ns.key \
                and not is_physical(world, ns, link):
            wanted.add(link.peer_netns)
    return {key: i for i, key in enumerate(k for k in world.namespaces if k in wanted)}


def link_netns(world: World, ns: Netns, link: Link) -> str:
    """`` link-netns red`` or `` link-netnsid 0`` for a veth whose peer is elsewhere."""
    if link.kind != "veth" or not link.peer_netns or link.peer_netns == ns.key \
            or is_physical(world, ns, link):
        return ""
    peer_ns = world.namespaces.get(link.peer_netns)
    if peer_ns is None:
        return ""
    if peer_ns.node == ns.node and peer_ns.name != ROOT:
        return f" link-netns {peer_ns.name}"
    return f" link-netnsid {netnsids(world, ns).get(peer_ns.key, 0)}"


def link_header(world: World, ns: Netns, link: Link, *, mode: bool = True) -> str:
    master = f" master {link.master}" if link.master else ""
    tail = " mode DEFAULT" if mode else ""
    return (f"{link.ifindex}: {ifname(world, ns, link)}: <{','.join(link_flags(world, ns, link))}>"
            f" mtu {link.mtu} qdisc {qdisc(world, ns, link)}{master}"
            f" state {oper_state(world, ns, link)}{tail} group default qlen {QLEN}")


def link_layer(world: World, ns: Netns, link: Link) -> str:
    if link.kind == "loopback":
        return f"    link/loopback {link.mac} brd 00:00:00:00:00:00"
    return f"    link/ether {link.mac} brd ff:ff:ff:ff:ff:ff{link_netns(world, ns, link)}"


def _hexid(mac: str) -> str:
    return ":".join("%x" % int(part, 16) for part in mac.split(":"))


def link_details(world: World, ns: Netns, link: Link) -> tuple[str, list[str]]:
    """``ip -d``: text appended to the link/ether line, and the lines after it."""
    port = link.master is not None
    minmtu, maxmtu = ("0", "0") if link.kind in ("loopback", "dummy") else ("68", "65535")
    common = (f" promiscuity {1 if port else 0}  allmulti {1 if port else 0}"
              f" minmtu {minmtu} maxmtu {maxmtu} ")
    queues = "numtxqueues 2 numrxqueues 2" if link.kind == "veth" else \
        "numtxqueues 1 numrxqueues 1"
    tso = "tso_max_size 524280 tso_max_segs 65535"
    if link.kind == "bridge" and not _ports(ns, link):
        tso = "tso_max_size 65536 tso_max_segs 65535"
    tail = f"addrgenmode eui64 {queues} {GSO} {tso} {GRO} "
    if link.kind == "loopback":
        return common + tail, []
    lines: list[str] = []
    if link.kind == "bridge":
        lines.append(f"    bridge {_bridge_details(ns, link)}{tail}")
    elif port:
        lines.append(f"    {link.kind} ")
        lines.append(f"    bridge_slave {_port_details(world, ns, link)}{tail}")
    else:
        lines.append(f"    {link.kind} {tail}")
    return common, lines


def _bridge_id(ns: Netns, bridge: Link) -> str:
    return "8000." + (_hexid(bridge.mac) if _ports(ns, bridge) else "0:0:0:0:0:0")


def _bridge_details(ns: Netns, bridge: Link) -> str:
    bid = _bridge_id(ns, bridge)
    return ("forward_delay 1500 hello_time 200 max_age 2000 ageing_time 30000 stp_state 0"
            f" priority 32768 vlan_filtering 0 bridge_id {bid} designated_root {bid}"
            " root_port 0 root_path_cost 0 topology_change 0 topology_change_detected 0"
            " hello_timer    0.00 tcn_timer    0.00 topology_change_timer    0.00"
            " gc_timer    0.00 group_fwd_mask 0 group_address 01:80:c2:00:00:00"
            " mcast_snooping 1 no_linklocal_learn 0 mcast_vlan_snooping 0 mcast_router 1"
            " mcast_query_use_ifaddr 0 mcast_querier 0 mcast_hash_elasticity 16"
            " mcast_hash_max 4096 mcast_last_member_count 2 mcast_startup_query_count 2"
            " mcast_last_member_interval 100 mcast_membership_interval 26000"
            " mcast_querier_interval 25500 mcast_query_interval 12500"
            " mcast_query_response_interval 1000 mcast_startup_query_interval 3124"
            " mcast_stats_enabled 0 mcast_igmp_version 2 mcast_mld_version 1"
            " nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0 ")


def port_state(world: World, ns: Netns, port: Link) -> str:
    bridge = ns.links.get(port.master or "")
    ok = bridge is not None and bridge.up and carrier(world, ns, port)
    return "forwarding" if ok else "disabled"


def _port_details(world: World, ns: Netns, port: Link) -> str:
    bridge = ns.links[port.master]  # type: ignore[index]
    number = next((i for i, p in enumerate(_ports(ns, bridge), 1) if p is port), 1)
    bid = _bridge_id(ns, bridge)
    return (f"state {port_state(world, ns, port)} priority 32 cost {port_cost(port)}"
            " hairpin off guard off root_block off fastleave off learning on flood on"
            f" port_id 0x{0x8000 + number:x} port_no 0x{number:x}"
            f" designated_port {0x8000 + number} designated_cost 0"
            f" designated_bridge {bid} designated_root {bid}"
            " hold_timer    0.00 message_age_timer    0.00 forward_delay_timer    0.00"
            " topology_change_ack 0 config_pending 0 proxy_arp off proxy_arp_wifi off"
            " mcast_router 1 mcast_fast_leave off mcast_flood on bcast_flood on"
            " mcast_to_unicast off neigh_suppress off group_fwd_mask 0 group_fwd_mask_str 0x0"
            " vlan_tunnel off isolated off locked off ")


def port_cost(port: Link) -> int:
    return 2 if port.kind == "veth" else 100


def sorted_links(ns: Netns) -> list[Link]:
    return sorted(ns.links.values(), key=lambda l: l.ifindex)


def render_link(world: World, ns: Netns, link: Link, opts: ShowOptions) -> str:
    if opts.brief:
        return (f"{ifname(world, ns, link):<16} {oper_state(world, ns, link):<14} "
                f"{link.mac} <{','.join(link_flags(world, ns, link))}> \n")
    lines = [link_header(world, ns, link), link_layer(world, ns, link)]
    if opts.details:
        extra, more = link_details(world, ns, link)
        lines[1] += extra
        lines += more
    if opts.oneline:
        return "\\".join(lines) + "\n"
    return "\n".join(lines) + "\n"


def render_links(world: World, ns: Netns, links: list[Link], opts: ShowOptions) -> str:
    return "".join(render_link(world, ns, link, opts) for link in links)


# --- addresses ------------------------------------------------------------------------

def addr_scope(addr: Address) -> str:
    return "host" if ipaddress.IPv4Address(addr.ip) in ipaddress.IPv4Network("127.0.0.0/8") \
        else "global"


def classify(link: Link) -> list[tuple[Address, bool]]:
    """The addresses of a link in the kernel's list order, with their
    ``secondary`` flag: a second address in the subnet of a primary one is a
    secondary; primaries come first (host scope before global), then
    secondaries."""
    primaries: list[Address] = []
    secondaries: list[Address] = []
    for addr in link.addresses:
        net = addr.network
        if any(p.prefixlen == addr.prefixlen and p.network == net for p in primaries):
            secondaries.append(addr)
        else:
            primaries.append(addr)
    primaries.sort(key=lambda a: 0 if addr_scope(a) == "host" else 1)
    return [(a, False) for a in primaries] + [(a, True) for a in secondaries]


def primary_of(link: Link, addr: Address) -> Address:
    for p, secondary in classify(link):
        if not secondary and p.prefixlen == addr.prefixlen and p.network == addr.network:
            return p
    return addr


def inet_line(link: Link, addr: Address, secondary: bool) -> str:
    brd = f" brd {addr.broadcast}" if addr.broadcast else ""
    sec = " secondary" if secondary else ""
    return f"    inet {addr.ip}/{addr.prefixlen}{brd} scope {addr_scope(addr)}{sec} {link.name}"


LFT = "       valid_lft forever preferred_lft forever"


def link_local(link: Link) -> str:
    octets = [int(x, 16) for x in link.mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return str(ipaddress.IPv6Address("fe80::" + ":".join(groups)))


def inet6_addresses(world: World, ns: Netns, link: Link) -> list[tuple[str, str]]:
    """(address/len, scope) of the IPv6 addresses the kernel gives a link."""
    if not link.up:
        return []
    if link.kind == "loopback":
        return [("::1/128", "host")]
    if not carrier(world, ns, link):
        return []
    return [(f"{link_local(link)}/64", "link")]


def render_addr_link(world: World, ns: Netns, link: Link, opts: ShowOptions,
                     keep: Callable[[Address, bool], bool] | None = None) -> str:
    """One link of ``ip addr``; ``keep`` selects addresses (``to``, ``scope``,
    ``secondary`` filters), and then only IPv4 is shown."""
    inet = classify(link) if opts.family in (None, 4) else []
    inet6 = inet6_addresses(world, ns, link) if opts.family in (None, 6) else []
    if keep is not None:
        inet = [(a, sec) for a, sec in inet if keep(a, sec)]
        inet6 = []
        if not inet:
            return ""
        if opts.family is None and not opts.brief and not opts.oneline:
            lines = [link_header(world, ns, link, mode=False), link_layer(world, ns, link)]
            for a, sec in inet:
                lines += [inet_line(link, a, sec), LFT]
            return "\n".join(lines) + "\n"
    if opts.family is not None and not inet and not inet6:
        return ""
    if opts.brief:
        addrs = "".join(f"{a.cidr} " for a, _ in inet) + "".join(f"{a} " for a, _ in inet6)
        return f"{ifname(world, ns, link):<16} {oper_state(world, ns, link):<14} {addrs}\n"
    if opts.oneline:
        out = []
        for a, sec in inet:
            out.append(f"{link.ifindex}: {link.name}{inet_line(link, a, sec)}\\{LFT}\n")
        for a, scope in inet6:
            out.append(f"{link.ifindex}: {link.name}    inet6 {a} scope {scope} \\{LFT}\n")
        return "".join(out)
    header = link_header(world, ns, link, mode=False)
    lines = []
    if opts.family is None:
        lines = [header, link_layer(world, ns, link)]
        if opts.details:
            extra, more = link_details(world, ns, link)
            lines[1] += extra
            lines += more
    else:
        lines = [header + link_netns(world, ns, link)]
    for a, sec in inet:
        lines += [inet_line(link, a, sec), LFT]
    for a, scope in inet6:
        lines += [f"    inet6 {a} scope {scope} ", LFT]
    return "\n".join(lines) + "\n"


def render_addrs(world: World, ns: Netns, links: list[Link], opts: ShowOptions) -> str:
    return "".join(render_addr_link(world, ns, link, opts) for link in links)


# --- routes -----------------------------------------------------------------------------

def _dst_text(dst: str) -> str:
    return dst[:-3] if dst.endswith("/32") else dst


def route_key(route: Route) -> tuple[int, int, int]:
    net = route.network
    return int(net.network_address), net.prefixlen, route.metric


def linkdown(world: World, ns: Netns, dev: str | None) -> bool:
    link = ns.links.get(dev or "")
    return link is not None and link.up and not carrier(world, ns, link)


def route_line(world: World, ns: Netns, route: Route, *, hide_dev: bool = False,
               hide_proto: bool = False, table: str | None = None) -> str:
    parts: list[str] = []
    if route.type != "unicast":
        parts.append(route.type)
    parts.append(_dst_text(route.dst))
    if route.gateway:
        parts += ["via", route.gateway]
    if route.dev and not hide_dev:
        parts += ["dev", route.dev]
    if table:
        parts += ["table", table]
    if route.proto != "boot" and not hide_proto:
        parts += ["proto", route.proto]
    if route.scope != "global":
        parts += ["scope", route.scope]
    if route.src:
        parts += ["src", route.src]
    if route.metric:
        parts += ["metric", str(route.metric)]
    if route.onlink:
        parts.append("onlink")
    if route.dev and route.type != "local" and linkdown(world, ns, route.dev):
        parts.append("linkdown")
    return " ".join(parts) + " \n"


@dataclass(frozen=True)
class RouteFilter:
    dev: str | None = None
    proto: str | None = None
    scope: str | None = None
    type: str | None = None
    exact: str | None = None       # normalised dst ("default" or CIDR)
    via: str | None = None

    def accepts(self, route: Route) -> bool:
        if self.dev is not None and route.dev != self.dev:
            return False
        if self.proto is not None and route.proto != self.proto:
            return False
        if self.scope is not None and route.scope != self.scope:
            return False
        if self.type is not None and route.type != self.type:
            return False
        if self.via is not None and route.gateway != self.via:
            return False
        if self.exact is not None and route.dst != self.exact and not (
                self.exact == "0.0.0.0/0" and route.dst == "default"):
            return False
        return True


def main_routes(ns: Netns) -> list[Route]:
    return sorted(ns.routes, key=route_key)


def render_routes(world: World, ns: Netns, filt: RouteFilter, table: str = "main") -> str:
    out: list[str] = []
    if table in ("main", "all"):
        for route in main_routes(ns):
            if filt.accepts(route):
                out.append(route_line(world, ns, route, hide_dev=filt.dev is not None,
                                      hide_proto=filt.proto is not None))
    if table in ("local", "all"):
        for route in local_table(world, ns):
            if filt.accepts(route):
                out.append(route_line(world, ns, route, hide_dev=filt.dev is not None,
                                      hide_proto=filt.proto is not None,
                                      table="local" if table == "all" else None))
    return "".join(out)


def local_table(world: World, ns: Netns) -> list[Route]:
    """The kernel's local table, as fib_add_ifaddr fills it from addresses:
    ``local`` for each address (kept while the link is down), and, while the
    link is up, the subnet broadcast (and an explicit ``brd``) and for ``lo``
    its whole prefix as ``local``."""
    routes: dict[tuple[str, str, str], Route] = {}

    def add(kind: str, dst: str, dev: str, src: str, scope: str) -> None:
        routes.setdefault((kind, dst, dev), Route(dst=dst, dev=dev, src=src, proto="kernel",
                                                  scope=scope, type=kind))

    for link in sorted_links(ns):
        for addr, secondary in classify(link):
            prim = primary_of(link, addr).ip
            add("local", f"{addr.ip}/32", link.name, prim, "host")
            if link.kind == "loopback" and not secondary and addr.prefixlen < 32:
                add("local", str(addr.network), link.name, prim, "host")
            if not link.up:
                continue
            if addr.broadcast and addr.broadcast != "255.255.255.255":
                add("broadcast", f"{addr.broadcast}/32", link.name, prim, "link")
            if not secondary and addr.prefixlen < 31:
                add("broadcast", f"{addr.network.broadcast_address}/32", link.name, prim, "link")
    return sorted(routes.values(), key=lambda r: (route_key(r), r.type != "local"))


def broadcast_dev(world: World, ns: Netns, ip: str) -> Route | None:
    for route in local_table(world, ns):
        if route.type == "broadcast" and route.dst == f"{ip}/32":
            return route
    return None


# --- neighbours --------------------------------------------------------------------------

def render_neigh(ns: Netns, dev: str | None = None, brief: bool = False,
                 to: ipaddress.IPv4Network | None = None) -> str:
    out: list[str] = []
    for n in ns.neighbours:
        if dev is not None and n.dev != dev:
            continue
        if to is not None and ipaddress.IPv4Address(n.ip) not in to:
            continue
        if brief:
            out.append(f"{n.ip:<39} {n.dev:<16} {n.mac or ''}\n")
            continue
        where = "" if dev is not None else f" dev {n.dev}"
        lladdr = f" lladdr {n.mac}" if n.mac else ""
        out.append(f"{n.ip}{where}{lladdr} {n.state} \n")
    return "".join(out)


# --- namespaces ---------------------------------------------------------------------------

def render_netns_list(world: World, node: str, viewer: str | None = None) -> str:
    """``ip netns list`` run in namespace ``viewer`` (default: the node's own):
    a namespace it has a veth into shows the id it gave it."""
    here = world.namespaces.get(viewer or f"{node}/{ROOT}")
    ids = netnsids(world, here) if here is not None else {}
    out = []
    for key, ns in world.namespaces.items():
        if ns.node != node or ns.name == ROOT or ns.kind != "netns":
            continue
        out.append(f"{ns.name} (id: {ids[key]})\n" if key in ids else f"{ns.name}\n")
    return "".join(out)


# --- bridge ----------------------------------------------------------------------------

def render_bridge_links(world: World, ns: Netns, dev: str | None = None) -> str:
    out = []
    for port in sorted_links(ns):
        if port.master is None or (dev is not None and port.name != dev):
            continue
        # bridge(8) names the IFLA_LINK index in its own namespace, whatever
        # namespace the peer is in, and flags M-DOWN when that device is down.
        name, mdown = port.name, False
        peer = world.peer_of(ns, port) if port.kind == "veth" else None
        if peer is not None:
            local = next((l for l in ns.links.values() if l.ifindex == peer[1].ifindex), None)
            if local is not None:
                name, mdown = f"{port.name}@{local.name}", not local.up
            else:
                name = f"{port.name}@if{peer[1].ifindex}"
        flags = [f for f in link_flags(world, ns, port) if f != "M-DOWN"]
        if mdown:
            flags.append("M-DOWN")
        out.append(f"{port.ifindex}: {name}: <{','.join(flags)}> mtu {port.mtu} master "
                   f"{port.master} state {port_state(world, ns, port)} priority 32 "
                   f"cost {port_cost(port)} \n")
    return "".join(out)


def _solicited(mac: str) -> str:
    return "33:33:ff:" + mac[9:]


def render_fdb(world: World, ns: Netns, br: str | None = None, dev: str | None = None) -> str:
    """Permanent fdb entries: the bridge's multicast list, each port's own MAC
    (``master BR permanent``) and the port's multicast list (``self``)."""
    out: list[str] = []

    def line(mac: str, link: Link, rest: str) -> None:
        where = "" if dev is not None else f" dev {link.name}"
        out.append(f"{mac}{where} {rest}\n")

    for link in sorted_links(ns):
        if dev is not None and link.name != dev:
            continue
        if link.kind == "vxlan" and br is None:
            for entry in link.fdb:
                line(entry["mac"], link, f"dst {entry['dst']} self permanent")
            continue
        if link.kind == "bridge":
            if br is not None and link.name != br:
                continue
            if link.up:
                for mac in ("33:33:00:00:00:01", "01:00:5e:00:00:6a", "33:33:00:00:00:6a",
                            "01:00:5e:00:00:01", _solicited(link.mac)):
                    line(mac, link, "self permanent")
            continue
        if link.master is None or (br is not None and link.master != br):
            continue
        peer = world.peer_of(ns, link) if link.kind == "veth" else None
        if peer is not None and link.up and carrier(world, ns, link):
            # Learned from the far end's first frames (IPv6 DAD and router
            # solicitations are sent as soon as it is up).
            line(peer[1].mac, link, f"master {link.master} ")
        line(link.mac, link, f"master {link.master} permanent")
        if link.up:
            for mac in ("33:33:00:00:00:01", "01:00:5e:00:00:01", _solicited(link.mac)):
                line(mac, link, "self permanent")
    return "".join(out)


# --- sysctl -------------------------------------------------------------------------------

def sysctl_line(ns: Netns, key: str) -> str | None:
    value = sysctl_value(ns, key)
    return None if value is None else f"{key} = {value}"
