"""ModelBackend: applies Ops to a World the way the kernel would.

A change the kernel would refuse raises CommandError with the kernel's own
words and leaves the World unchanged. Connected routes come and go with
addresses and link state as in Linux (fib_add_ifaddr / fib_sync_down_dev).
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
from functools import lru_cache
from typing import Iterable

from netlab import ops as O
from netlab.errors import CommandError
from netlab.model import ROOT, Address, Lan, Link, Listener, Netns, Route, World, ns_key
from netlab.backends.route_batch import RouteBatches
from netlab.model.route_index import (
    Later, RouteIndex, append_route, forget_route_index, give_later, prefix_of, route_index,
)
from netlab.model.sysctl import (
    FORWARDING_ALIASES, NETNS_DEFAULTS, NODE_ONLY_DEFAULTS, device_defaults, device_key, own,
    proc_path,
)

EEXIST = "RTNETLINK answers: File exists"
ESRCH = "RTNETLINK answers: No such process"
MAX_IFNAME = 15
SWITCH_BRIDGE = "br0"           # the bridge inside a LAN's switch namespace


def no_device(name: str) -> CommandError:
    return CommandError(f'Cannot find device "{name}"', status=1)


MODELLED_KINDS = ("loopback", "veth", "bridge", "dummy", "vxlan")


def open_end(link: Link) -> bool:
    """A link with nothing modelled behind it: a veth whose peer is outside the World,
    or a device netlab does not model (a snapshot's physical NIC, a vxlan, ...)."""
    return (link.kind == "veth" and link.peer_name is None) or link.kind not in MODELLED_KINDS


def oper_up(world: World, ns: Netns, link: Link) -> bool:
    """Carrier and admin state together: what `ip link` shows as state UP."""
    if not link.up:
        return False
    if link.kind == "veth":
        if link.peer_name is None:
            return True     # its other end is outside the World (a snapshot): assume it is up
        peer = world.peer_of(ns, link)
        return peer is not None and peer[1].up
    if link.kind == "bridge":
        ports = [p for p in ns.links.values() if p.master == link.name]
        return not ports or any(oper_up(world, ns, p) for p in ports)
    return True


class ModelBackend:
    def __init__(self, world: World | None = None):
        self.world = world if world is not None else World()

    # --- entry points --------------------------------------------------------------
    def apply_all(self, ops: Iterable[O.Op]) -> None:
        """Apply a command's Ops; if one is refused, the World is left as it was."""
        ops = list(ops)
        if len(ops) == 1:
            self.apply(ops[0])
            return
        saved = copy.deepcopy(self.world.__dict__)
        try:
            for op in ops:
                self.apply(op)
        except Exception:
            self.world.__dict__.update(saved)
            self._changed()
            raise

    def apply(self, op: O.Op) -> None:
        handler = getattr(self, "_" + type(op).__name__, None)
        if handler is None:
            raise CommandError(f"the model cannot apply {type(op).__name__}")
        try:
            handler(op)
        finally:
            self._changed()

    def _changed(self) -> None:
        # Indexes built from the World (dataplane.engine) are keyed on this counter.
        self.world._generation = getattr(self.world, "_generation", 0) + 1

    # --- helpers ---------------------------------------------------------------------
    def _ns(self, key: str) -> Netns:
        ns = self.world.namespaces.get(key)
        if ns is None:
            node, _, name = key.partition("/")
            raise CommandError(f'Cannot open network namespace "{name}": No such file or directory',
                               status=1)
        return ns

    def _link(self, ns: Netns, name: str) -> Link:
        link = ns.links.get(name)
        if link is None:
            raise no_device(name)
        return link

    def _new_link(self, ns: Netns, name: str, kind: str, *, mtu: int | None = None,
                  mac: str | None = None) -> Link:
        if name in ns.links:
            raise CommandError(EEXIST)
        if len(name) > MAX_IFNAME:
            raise CommandError(f'Error: argument "{name}" is wrong: "name" not a valid ifname',
                               status=1)
        link = Link(name=name, kind=kind, ifindex=self._ifindex(ns),
                    mac=mac or ("00:00:00:00:00:00" if kind == "loopback" else self.world.new_mac()),
                    mtu=mtu or (65536 if kind == "loopback" else 1500))
        link.conf = device_defaults(ns.sysctls)
        ns.links[name] = link
        return link

    @staticmethod
    def _ifindex(ns: Netns) -> int:
        index = ns.next_ifindex
        ns.next_ifindex += 1
        return index

    def _make_netns(self, node: str, name: str, kind: str) -> Netns:
        sysctls = dict(NETNS_DEFAULTS)
        if kind == "node":
            sysctls.update(NODE_ONLY_DEFAULTS)
        ns = Netns(node=node, name=name, kind=kind, sysctls=sysctls,
                   main_table=kind == "node")
        self.world.namespaces[ns.key] = ns
        self._new_link(ns, "lo", "loopback")
        return ns

    # --- namespaces --------------------------------------------------------------------
    def _AddNode(self, op: O.AddNode) -> None:
        # (a node always has its root namespace: the dict answers "no" for the list)
        if ns_key(op.node) in self.world.namespaces and op.node in self.world.nodes:
            raise CommandError(f"node {op.node} exists already")
        self.world.nodes.append(op.node)
        ns = self._make_netns(op.node, ROOT, "node")
        self._set_up(ns, ns.links["lo"], True)

    def _AddNetns(self, op: O.AddNetns) -> None:
        key = ns_key(op.node, op.name)
        if key in self.world.namespaces:
            raise CommandError(
                f'Cannot create namespace file "/var/run/netns/{op.name}": File exists', status=1)
        self._make_netns(op.node, op.name, "netns")

    def _DelNetns(self, op: O.DelNetns) -> None:
        key = ns_key(op.node, op.name)
        ns = self.world.namespaces.get(key)
        if ns is None or op.name == ROOT:
            raise CommandError(
                f'Cannot remove namespace file "/var/run/netns/{op.name}": No such file or directory',
                status=1)
        # Destroying a namespace destroys its veths, and with them their peers elsewhere.
        for link in list(ns.links.values()):
            if link.kind == "veth":
                self._drop_peer(ns, link)
        del self.world.namespaces[key]

    # --- links ---------------------------------------------------------------------------
    def _AddLink(self, op: O.AddLink) -> None:
        ns = self._ns(op.netns)
        if op.kind not in ("veth", "bridge", "dummy"):
            raise CommandError(f"the model does not support links of type {op.kind}")
        if op.kind != "veth":
            self._new_link(ns, op.name, op.kind, mtu=op.mtu, mac=op.address)
            return
        peer_ns = self._ns(op.peer_netns or op.netns)
        peer_name = op.peer or self._free_veth_name(peer_ns)
        if op.name in ns.links or peer_name in peer_ns.links or (
                peer_ns is ns and peer_name == op.name):
            raise CommandError(EEXIST)
        # veth_newlink registers the peer first: it takes the lower ifindex.
        peer = self._new_link(peer_ns, peer_name, "veth", mtu=op.mtu)
        link = self._new_link(ns, op.name, "veth", mtu=op.mtu, mac=op.address)
        link.peer_netns, link.peer_name = peer_ns.key, peer.name
        peer.peer_netns, peer.peer_name = ns.key, link.name

    def _AddVxlan(self, op: O.AddVxlan) -> None:
        ns = self._ns(op.netns)
        if op.dev is not None:
            self._link(ns, op.dev)
        if not 0 <= op.vni < 1 << 24:
            raise CommandError(f'Error: argument "{op.vni}" is wrong: invalid id', status=1)
        for other in ns.links.values():
            if other.vxlan and other.vxlan["vni"] == op.vni and \
                    other.vxlan["dstport"] == op.dstport:
                raise CommandError("RTNETLINK answers: File exists", status=2)
        link = self._new_link(ns, op.name, "vxlan", mtu=op.mtu, mac=op.address)
        link.vxlan = {"vni": op.vni, "dstport": op.dstport, "dev": op.dev, "local": op.local,
                      "remote": op.remote, "learning": op.learning}
        if op.remote is not None:       # the kernel's default destination: an all-zeros entry
            link.fdb.append({"mac": "00:00:00:00:00:00", "dst": op.remote})

    def _AddFdb(self, op: O.AddFdb) -> None:
        ns = self._ns(op.netns)
        link = self._link(ns, op.dev)
        if link.kind != "vxlan":
            raise CommandError("RTNETLINK answers: Operation not supported", status=2)
        entry = {"mac": op.mac.lower(), "dst": op.dst}
        if entry not in link.fdb:
            link.fdb.append(entry)

    @staticmethod
    def _free_veth_name(ns: Netns) -> str:
        n = 0
        while f"veth{n}" in ns.links:
            n += 1
        return f"veth{n}"

    def _DelLink(self, op: O.DelLink) -> None:
        ns = self._ns(op.netns)
        link = self._link(ns, op.name)
        if link.kind == "loopback":
            raise CommandError("RTNETLINK answers: Operation not supported")
        if link.kind == "veth":
            self._drop_peer(ns, link)
        self._remove_link(ns, link)

    def _drop_peer(self, ns: Netns, link: Link) -> None:
        peer = self.world.peer_of(ns, link)
        if peer is not None:
            self._remove_link(*peer)

    def _remove_link(self, ns: Netns, link: Link) -> None:
        if link.up:
            self._set_up(ns, link, False)
        if link.kind == "bridge":
            for port in ns.links.values():
                if port.master == link.name:
                    port.master = None
        del ns.links[link.name]
        ns.neighbours = [n for n in ns.neighbours if n.dev != link.name]
        if link.master is not None:
            self._bridge_mtu(ns, link.master)

    def _SetLinkUp(self, op: O.SetLinkUp) -> None:
        ns = self._ns(op.netns)
        self._set_up(ns, self._link(ns, op.name), op.up)

    def _set_up(self, ns: Netns, link: Link, up: bool) -> None:
        if link.up == up:
            return
        link.up = up
        if up and link.kind == "loopback" and not link.addresses:
            link.addresses.append(Address("127.0.0.1", 8))
        if up:
            for addr in link.addresses:
                self._add_prefix_route(ns, link, addr)
        else:
            # fib_sync_down_dev: every route through the device goes, static ones too.
            ns.routes = [r for r in ns.routes if r.dev != link.name]
            ns.neighbours = [n for n in ns.neighbours if n.dev != link.name]

    def _SetLinkMtu(self, op: O.SetLinkMtu) -> None:
        ns = self._ns(op.netns)
        link = self._link(ns, op.name)
        if op.mtu < 68 and link.kind != "loopback":
            raise CommandError("Error: mtu less than device minimum.")
        if op.mtu > 65535 and link.kind in ("veth", "bridge"):   # their max_mtu; lo/dummy: none
            raise CommandError("Error: mtu greater than device maximum.")
        link.mtu = op.mtu
        if link.kind == "bridge":
            link.mtu_set = True
        elif link.master is not None:
            self._bridge_mtu(ns, link.master)

    @staticmethod
    def _bridge_mtu(ns: Netns, bridge: str) -> None:
        """br_mtu_auto_adjust: unless set by hand, a bridge takes its ports' lowest MTU."""
        br = ns.links.get(bridge)
        if br is None or br.mtu_set:
            return
        br.mtu = min((p.mtu for p in ns.links.values() if p.master == bridge), default=1500)

    def _SetLinkAddress(self, op: O.SetLinkAddress) -> None:
        ns = self._ns(op.netns)
        link = self._link(ns, op.name)
        first = int(op.address.split(":")[0], 16)
        if first & 1:
            raise CommandError("RTNETLINK answers: Cannot assign requested address")
        link.mac = op.address.lower()

    def _SetLinkMaster(self, op: O.SetLinkMaster) -> None:
        ns = self._ns(op.netns)
        link = self._link(ns, op.name)
        if op.master is None:
            old, link.master = link.master, None
            if old is not None:
                self._bridge_mtu(ns, old)
            return
        master = self._link(ns, op.master)
        if master.kind == "bridge" and link.kind == "bridge":   # also a bridge into itself
            raise CommandError("Error: Can not enslave a bridge to a bridge.")
        if master.kind != "bridge" or master is link:
            raise CommandError("RTNETLINK answers: Operation not supported")
        old, link.master = link.master, master.name
        for bridge in {old, master.name} - {None}:
            self._bridge_mtu(ns, bridge)

    def _MoveLink(self, op: O.MoveLink) -> None:
        ns = self._ns(op.netns)
        link = self._link(ns, op.name)
        dest = self._ns(op.to_netns)
        if dest is ns:
            return
        if link.kind == "loopback":
            raise CommandError("Error: The interface netns is immutable.")
        if link.name in dest.links:
            raise CommandError("RTNETLINK answers: File exists")
        # Moving a device takes it down, detaches it, and drops its addresses.
        self._set_up(ns, link, False)
        old_master, link.master = link.master, None
        link.addresses = []
        del ns.links[link.name]
        if old_master is not None:
            self._bridge_mtu(ns, old_master)
        ns.neighbours = [n for n in ns.neighbours if n.dev != link.name]
        if link.kind == "bridge":
            for port in ns.links.values():
                if port.master == link.name:
                    port.master = None
        link.ifindex = link.ifindex if all(l.ifindex != link.ifindex for l in dest.links.values()) \
            else self._ifindex(dest)
        dest.next_ifindex = max(dest.next_ifindex, link.ifindex + 1)
        link.conf = device_defaults(dest.sysctls)
        dest.links[link.name] = link
        peer = self.world.peer_of(dest, link)
        if peer is not None:
            peer[1].peer_netns = dest.key

    def _RenameLink(self, op: O.RenameLink) -> None:
        ns = self._ns(op.netns)
        link = self._link(ns, op.name)
        # Linux >= 6.2 renames a device that is up (tests/data/kernel/addr_errors_routes.txt).
        if op.new_name in ns.links:
            raise CommandError(EEXIST)
        del ns.links[link.name]
        old, link.name = link.name, op.new_name
        ns.links[link.name] = link
        for other in ns.links.values():
            if other.master == old:
                other.master = link.name
        # Routes are shared between namespaces (see _AddRoute): renamed by replacing them.
        if any(route.dev == old for route in ns.routes):
            ns.routes = [dataclasses.replace(route, dev=link.name) if route.dev == old else route
                         for route in ns.routes]
        peer = self.world.peer_of(ns, Link(name="", kind="veth", ifindex=0, mac="",
                                           peer_netns=link.peer_netns, peer_name=link.peer_name))
        if peer is not None:
            peer[1].peer_name = link.name

    # --- addresses ---------------------------------------------------------------------
    def _AddAddress(self, op: O.AddAddress) -> None:
        ns = self._ns(op.netns)
        link = self._link(ns, op.dev)
        if any(a.ip == op.ip and a.prefixlen == op.prefixlen for a in link.addresses):
            raise CommandError("Error: ipv4: Address already assigned.")
        addr = Address(op.ip, op.prefixlen, op.broadcast)
        link.addresses.append(addr)
        if link.up:
            self._add_prefix_route(ns, link, addr)

    def _add_prefix_route(self, ns: Netns, link: Link, addr: Address) -> None:
        net = addr.network
        if addr.prefixlen == 32 or link.kind == "loopback":
            return
        # Only the primary address of a prefix on a device installs the route.
        primary = next(a for a in link.addresses if a.network == net)
        if primary is not addr:
            return
        dst = str(net)
        if any(r.dst == dst and r.dev == link.name and r.proto == "kernel"
               for r in route_index(ns).same_prefix(dst)):
            return
        append_route(ns, Route(dst=dst, dev=link.name, src=addr.ip, proto="kernel",
                               scope="link", metric=0))
        ns.main_table = True

    def _DelAddress(self, op: O.DelAddress) -> None:
        ns = self._ns(op.netns)
        link = self._link(ns, op.dev)
        match = [a for a in link.addresses
                 if a.ip == op.ip and (op.prefixlen is None or a.prefixlen == op.prefixlen)]
        if not match:
            raise CommandError("Error: ipv4: Address not found.")
        addr = match[0]
        primary = next(a for a in link.addresses if a.network == addr.network)
        # Without promote_secondaries, deleting a primary deletes its secondaries too.
        doomed = [a for a in link.addresses if a.network == addr.network] \
            if primary is addr else [addr]
        for a in doomed:
            self._remove_address(ns, link, a)

    def _remove_address(self, ns: Netns, link: Link, addr: Address) -> None:
        link.addresses.remove(addr)
        # Routes that used it as preferred source go (fib_del_ifaddr), unless the
        # namespace still holds the same address elsewhere.
        if not self._is_local(ns, addr.ip):
            ns.routes = [r for r in ns.routes if not (r.dev == link.name and r.src == addr.ip)]
        if not link.addresses:
            # The last address gone disables IP on the device (fib_disable_ip).
            ns.routes = [r for r in ns.routes if r.dev != link.name]

    def _FlushAddresses(self, op: O.FlushAddresses) -> None:
        ns = self._ns(op.netns)
        link = self._link(ns, op.dev)
        for addr in list(link.addresses):
            self._remove_address(ns, link, addr)

    # --- routes ------------------------------------------------------------------------
    def _AddRoute(self, op: O.AddRoute) -> None:
        ns = self._ns(op.netns)
        index = route_index(ns)
        dev = op.dev
        if op.type == "unicast":
            if dev is not None:
                link = self._link(ns, dev)
            if op.onlink and op.gateway is not None:
                if dev is None:
                    raise CommandError("Error: Nexthop device required for onlink.")
            elif op.gateway is not None:
                # The gateway is checked first (a down link has no connected route).
                gw_dev = self._gateway_device(ns, op.gateway, dev, index)
                if gw_dev is None:
                    raise CommandError("Error: Nexthop has invalid gateway.")
                dev = gw_dev
            if dev is not None and not ns.links[dev].up:
                raise CommandError("Error: Device for nexthop is not up.")
            elif dev is None:
                raise CommandError("RTNETLINK answers: No such device")
            if op.src is not None and not self._is_local(ns, op.src):
                raise CommandError("Error: Invalid prefsrc address.")
        scope = op.scope or ("link" if op.gateway is None and op.type == "unicast" else "global")
        if op.type != "unicast":
            scope = op.scope or "global"
        # Routes are never changed in place, so equal routes are one object, whichever
        # namespaces hold them: a cluster's nodes hold the same route to a node's pods.
        dev = dev if op.type == "unicast" else None
        fields = (op.dst, dev, op.gateway, op.src, op.metric, op.proto, scope, op.type,
                  op.onlink)
        interned = self.__dict__.setdefault("_routes", {})
        route = interned.get(fields)
        if route is None:
            if len(interned) >= 1 << 20:
                interned.clear()
            route = interned[fields] = Route(*fields)
        same = index.first(op.dst, op.metric)
        if same is not None:
            if not op.replace:
                raise CommandError(EEXIST)
            # A new list, not one changed in the middle (the index is rebuilt from it).
            ns.routes = [route if r is same else r for r in ns.routes]
            return
        ns.routes.append(route)
        index.add(route)
        ns.main_table = True

    def _AddRoutes(self, op: O.AddRoutes) -> None:
        """What an AddRoute for each (dst, gateway) does, in order, checked whole first:
        with hundreds of thousands of routes, without an Op and a look-up each (see
        backends/route_batch). The route index is not extended: it is built again from
        the list when a look-up needs it."""
        ns = self._ns(op.netns)
        if op.dev is not None:
            self._link(ns, op.dev)
        batches = self.__dict__.get("_route_batches")
        if batches is None:
            batches = self.__dict__["_route_batches"] = RouteBatches()
        local = {a.ip for link in ns.links.values() for a in link.addresses}
        up = {name for name, link in ns.links.items() if link.up}
        new = batches.check(ns, op.routes, op.dev, up, local)
        if type(new) is Later:
            give_later(ns, new)         # (in the list when it is first read: world.LATER)
            ns.main_table = True
        elif new:
            ns.routes += new
            forget_route_index(ns)
            ns.main_table = True

    def _gateway_device(self, ns: Netns, gateway: str, dev: str | None,
                        index: RouteIndex | None = None) -> str | None:
        """The device a gateway is reached through: a connected (scope link) route;
        none for one of the namespace's own addresses."""
        ip = _gateway_int(gateway)
        best: Route | None = None
        best_len = -1
        for r in (index or route_index(ns)).connected:
            if dev is not None and r.dev != dev:
                continue
            net, mask, plen = prefix_of(r.dst)
            if ip & mask == net and plen > best_len:
                best, best_len = r, plen
        if best is None or self._is_local(ns, gateway):
            return None
        return best.dev

    @staticmethod
    def _is_local(ns: Netns, ip: str) -> bool:
        for link in ns.links.values():
            for a in link.addresses:
                if a.ip == ip:
                    return True
        return False

    def _DelRoute(self, op: O.DelRoute) -> None:
        ns = self._ns(op.netns)
        if not ns.main_table:
            # The kernel creates table main with its first route.
            raise CommandError("Error: FIB table does not exist.")
        if op.dev is not None:
            self._link(ns, op.dev)
        for r in ns.routes:
            if r.dst != op.dst:
                continue
            if op.metric is not None and r.metric != op.metric:
                continue
            if op.gateway is not None and r.gateway != op.gateway:
                continue
            if op.dev is not None and r.dev != op.dev:
                continue
            ns.routes.remove(r)
            return
        raise CommandError(ESRCH)

    # --- sysctls and listeners ---------------------------------------------------------
    def _SetSysctl(self, op: O.SetSysctl) -> None:
        ns = self._ns(op.netns)
        key = op.key
        per_dev = device_key(key)
        if per_dev is not None:
            dev, leaf = per_dev
            link = ns.links.get(dev)
            if link is None:
                raise CommandError(f"sysctl: cannot stat {proc_path(key)}: No such file or directory",
                                   status=255)
            if not _is_int(op.value):
                raise CommandError(f'sysctl: setting key "{key}": Invalid argument', status=1)
            link.conf = own(link.conf)
            link.conf[leaf] = op.value
            return
        if key not in ns.sysctls:
            raise CommandError(f"sysctl: cannot stat {proc_path(key)}: No such file or directory",
                               status=255)
        if "\t" not in ns.sysctls[key] and not _is_int(op.value):
            raise CommandError(f'sysctl: setting key "{key}": Invalid argument', status=1)
        sysctls = ns.sysctls = own(ns.sysctls)
        if key in FORWARDING_ALIASES:
            # devinet_sysctl_forward: all, default and every device follow.
            for alias in FORWARDING_ALIASES:
                sysctls[alias] = op.value
            sysctls["net.ipv4.conf.default.forwarding"] = op.value
            for link in ns.links.values():
                link.conf = own(link.conf)
                link.conf["forwarding"] = op.value
            # inet_forward_change: a router does not accept redirects.
            sysctls["net.ipv4.conf.all.accept_redirects"] = "0" if enabled(op.value) else "1"
            return
        sysctls[key] = op.value

    def _AddListener(self, op: O.AddListener) -> None:
        ns = self._ns(op.netns)
        for l in ns.listeners:
            if l.proto == op.proto and l.port == op.port and op.addr in (l.addr, "0.0.0.0"):
                raise CommandError("nc: Address already in use", status=1)
        ns.listeners.append(Listener(op.proto, op.port, op.addr))

    # --- LANs: a switch is a bridge in a namespace of its own, not a node ---------------
    def _AddSwitch(self, op: O.AddSwitch) -> None:
        key = ns_key(op.name)
        if op.name in self.world.nodes or key in self.world.namespaces:
            raise CommandError(f"a node or switch called {op.name} exists already")
        ns = self._make_netns(op.name, ROOT, "switch")
        self._set_up(ns, ns.links["lo"], True)
        for leaf in ("iptables", "ip6tables", "arptables"):
            ns.sysctls[f"net.bridge.bridge-nf-call-{leaf}"] = "0"
        self._set_up(ns, self._new_link(ns, SWITCH_BRIDGE, "bridge"), True)
        self.world.lans.append(Lan(name=op.name, subnet=op.subnet))

    def _AttachToSwitch(self, op: O.AttachToSwitch) -> None:
        switch = self.world.namespaces.get(ns_key(op.switch))
        lan = next((l for l in self.world.lans if l.name == op.switch), None)
        if switch is None or switch.kind != "switch" or lan is None:
            raise CommandError(f"no switch called {op.switch}")
        # (a node's root namespace is of kind node, and only a node's: no scan of the list)
        node_ns = self.world.namespaces.get(ns_key(op.node))
        if node_ns is None or node_ns.kind != "node":
            raise CommandError(f"no node called {op.node}")
        if op.node in lan.members:
            raise CommandError(f"{op.node} is on {op.switch} already")
        self._AddLink(O.AddLink(netns=node_ns.key, name=op.dev, kind="veth", peer=op.node,
                                peer_netns=switch.key))
        port = switch.links[op.node]
        port.master = SWITCH_BRIDGE
        self._set_up(switch, port, True)
        self._set_up(node_ns, node_ns.links[op.dev], True)
        lan.members[op.node] = op.dev

    # --- neighbours ----------------------------------------------------------------------
    def _AddNeighbour(self, op: O.AddNeighbour) -> None:
        from netlab.model import Neighbour
        ns = self._ns(op.netns)
        self._link(ns, op.dev)
        entry = Neighbour(op.ip, op.dev, op.mac, op.state)
        for i, n in enumerate(ns.neighbours):
            if n.ip == op.ip and n.dev == op.dev:
                if n.state == "PERMANENT" and op.state != "PERMANENT":
                    return          # learned traffic never overrides a static entry
                ns.neighbours[i] = entry
                return
        ns.neighbours.append(entry)

    def _FlushNeighbours(self, op: O.FlushNeighbours) -> None:
        ns = self._ns(op.netns)
        if op.dev is not None:
            self._link(ns, op.dev)
        ns.neighbours = [n for n in ns.neighbours
                         if not ((op.dev is None or n.dev == op.dev)
                                 and (op.ip is None or n.ip == op.ip)
                                 and (op.permanent or n.state not in ("PERMANENT", "NOARP")))]

    def _WriteFile(self, op: O.WriteFile) -> None:
        files = self.world.files.setdefault(op.node, {})
        if op.content is None:
            files.pop(op.path, None)
        else:
            files[op.path] = op.content

    # --- netfilter: iptables-restore payloads, ipset, conntrack (netlab.netfilter) ----------
    def _IptablesRestore(self, op: O.IptablesRestore) -> None:
        """Every iptables change: checked whole, then swapped in (nothing changes on error).

        A restore is a function of the tables before and the payload, and it never changes
        a table in place (it copies on write): so when the same payload meets the same
        tables again — the same kube-proxy rules on the next node of a cluster — the
        tables it made last time are taken as they are (shared, like any unchanged table).
        """
        from netlab.netfilter.restore import apply_restore
        ns = self._ns(op.netns)
        memo = self.__dict__.setdefault("_restore_memo", {})
        before = tuple(ns.tables.items())
        key = (op.payload, op.noflush, op.command, tuple((n, id(t)) for n, t in before))
        # Only a payload without ipset matches is ever stored, so a hit needs no scan of it.
        hit = memo.get(key) if not ns.ipsets else None
        if hit is not None:
            ns.tables = dict(hit[1])
            return
        apply_restore(ns, op.payload, op.noflush, op.command)
        if not ns.ipsets and "--match-set" not in op.payload:
            if len(memo) >= 8:
                memo.pop(next(iter(memo)))
            memo[key] = (before, tuple(ns.tables.items()))    # `before` keeps the ids alive

    def _Ipset(self, op: O.Ipset) -> None:
        from netlab.netfilter.ipset import apply_ipset
        ns = self._ns(op.netns)
        saved = copy.deepcopy(ns.ipsets)
        try:
            apply_ipset(ns, op.args)
        except Exception:
            ns.ipsets = saved
            raise

    def _FlushConntrack(self, op: O.FlushConntrack) -> None:
        self._ns(op.netns).conntrack = []


@lru_cache(maxsize=65536)
def _gateway_int(gateway: str) -> int:
    return int(ipaddress.IPv4Address(gateway))


def _is_int(value: str) -> bool:
    try:
        int(value.strip())
    except ValueError:
        return False
    return True


def enabled(value: str | None) -> bool:
    """A boolean sysctl as the kernel reads it: any non-zero integer is on."""
    try:
        return value is not None and int(value) != 0
    except ValueError:
        return False


def sysctl_value(ns: Netns, key: str) -> str | None:
    """Read a sysctl as `sysctl KEY` would; None when the file does not exist."""
    per_dev = device_key(key)
    if per_dev is not None:
        link = ns.links.get(per_dev[0])
        return link.conf.get(per_dev[1]) if link else None
    return ns.sysctls.get(key)


# --- for netlab.cni.replay ---------------------------------------------------------------

def shared_route(backend: ModelBackend, fields: tuple) -> Route:
    """The Route of these fields (Route's own order) as _AddRoute makes and shares it:
    the one the model holds already, else a new one, held from now on."""
    interned = backend.__dict__.setdefault("_routes", {})
    route = interned.get(fields)
    if route is None:
        if len(interned) >= 1 << 20:
            interned.clear()
        route = interned[fields] = Route(*fields)
    return route
