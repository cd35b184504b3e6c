"""The CNI plugins on netlab's virtual namespaces: the bridge plugin's Host as Ops
applied by a ModelBackend, the World kept in a JSON file (NETLAB_WORLD) or
handed in by the caller (``invoke``).

Namespaces: CNI_NETNS ``/var/run/netns/NAME`` (or ``/run/netns/NAME``, or any
path ending in NAME) is namespace NAME of the node NETLAB_NODE (default: the
World's first node); the plugin's "host" is that node's root namespace.

IPAM: ``ipam.type`` must be ``host-local`` and runs in-process on the same
allocation code as the executable. Its data dir lives in the World, as the
node's files (``World.files[node]``, paths ``<dataDir>/<network>/<file>`` with
the reference's names and contents), so it travels with the World JSON; the
in-process ``invoke`` can instead be given ``data_dir_state``, a dict
``{network: {filename: content}}``.

Locking: with NETLAB_WORLD every call holds an exclusive flock on
``<world>.lock`` from load to save, so parallel plugin calls are safe; the
World is written only after a command succeeded (atomically, by rename), so a
failed ADD leaves the file as it was.

The model is IPv4-only, and has no VLANs, promiscuous mode or hairpin flag:
``vlan`` is refused, promiscMode/hairpinMode/macspoofchk are accepted and not modelled,
IPv6 addresses fail the ADD.
"""

from __future__ import annotations

import os

from netlab.cni.errors import CniError, internal
from netlab.cni.ip import Net, go_ipnet, parse_cidr, parse_ip


class _Link:
    """A model link as the bridge logic reads a netlink one."""

    def __init__(self, world, ns, link):
        from netlab.backends.model import oper_up
        self.index = link.ifindex
        self.name = link.name
        self.kind = link.kind
        self.mac = link.mac
        self.up = link.up
        self.oper_up = oper_up(world, ns, link)
        master = ns.links.get(link.master) if link.master else None
        self.master = master.ifindex if master else 0
        self.promisc = link.conf.get("promisc") == "1"
        self.mtu = link.mtu


def veth_name(container_id: str, ifname: str, taken) -> str:
    """``veth`` + 8 hex digits, as the plugin names the host end. The plugin draws
    them at random; the model, deterministic, hashes the container id and ifname
    (and a counter on the rare clash with a name in ``taken``), so every run gives the
    same names."""
    import hashlib
    for n in range(1 << 16):
        seed = f"{container_id}/{ifname}/{n}".encode()
        name = "veth" + hashlib.sha256(seed).hexdigest()[:8]
        if name not in taken:
            return name
    raise internal("failed to find a free veth name")


def netns_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class ModelHost:
    def __init__(self, backend, node: str, container_id: str = ""):
        from netlab.model import ns_key
        self.b = backend
        self.node = node
        self.container_id = container_id
        self.host_key = ns_key(node)
        self.ctr_key: str | None = None
        self.bridge_mac: str | None = None

    @property
    def world(self):
        return self.b.world

    def _apply(self, op) -> None:
        self.b.apply(op)

    def _key(self, side: str) -> str:
        return self.ctr_key if side == "ctr" else self.host_key

    def _ns(self, side: str):
        return self.world.namespaces[self._key(side)]

    # --- namespaces ------------------------------------------------------------------------
    def netns_exists(self, path: str) -> bool:
        from netlab.model import ns_key
        return ns_key(self.node, netns_name(path)) in self.world.namespaces

    def open_container(self, path: str) -> None:
        from netlab.model import ns_key
        key = ns_key(self.node, netns_name(path))
        if key not in self.world.namespaces or key == self.host_key:
            raise internal(f'failed to open netns "{path}": failed to Statfs "{path}": '
                           "no such file or directory")
        self.ctr_key = key

    def close(self) -> None:
        pass

    def sysctl(self, side: str, key: str, value: str) -> None:
        from netlab import ops as O
        from netlab.errors import CommandError
        try:
            self._apply(O.SetSysctl(self._key(side), key.replace("/", "."), value))
        except CommandError:
            pass                  # as on a kernel: a sysctl the model lacks is ignored

    # --- links -----------------------------------------------------------------------------
    def link(self, side: str, name: str):
        ns = self._ns(side)
        link = ns.links.get(name)
        return _Link(self.world, ns, link) if link is not None else None

    def ensure_bridge(self, name: str, mtu: int, promisc: bool, vlan_filtering: bool) -> bool:
        from netlab import ops as O
        if vlan_filtering:
            raise OSError(95, "Operation not supported")
        ns = self._ns("host")
        created = name not in ns.links
        if created:
            self._apply(O.AddLink(self.host_key, name, "bridge", mtu=mtu or None))
        link = ns.links[name]
        if link.kind != "bridge":
            raise ValueError(f'"{name}" already exists but is not a bridge')
        self.bridge_mac = link.mac
        self._apply(O.SetLinkUp(self.host_key, name, True))
        return created

    def add_veth(self, ifname: str, mtu: int, mac: str) -> str:
        from netlab import ops as O
        if ifname in self._ns("ctr").links:
            raise internal(f"container veth name provided ({ifname}) already exists")
        name = self.veth_name(ifname)
        self._apply(O.AddLink(self.host_key, name, "veth", peer=ifname, peer_netns=self.ctr_key,
                              mtu=mtu or None))
        if mac:
            self._apply(O.SetLinkAddress(self.ctr_key, ifname, mac))
        self._apply(O.SetLinkUp(self.ctr_key, ifname, True))
        self._apply(O.SetLinkUp(self.host_key, name, True))
        return name

    def veth_name(self, ifname: str) -> str:
        return veth_name(self.container_id, ifname, self._ns("host").links)

    def attach_port(self, name: str, bridge: str, hairpin: bool, vlan: int) -> None:
        from netlab import ops as O
        self._apply(O.SetLinkMaster(self.host_key, name, bridge))
        if vlan:
            raise internal(f'failed to setup vlan tag on interface "{name}": operation not supported')

    def set_up(self, side: str, name: str) -> None:
        from netlab import ops as O
        self._apply(O.SetLinkUp(self._key(side), name, True))

    def del_link(self, side: str, name: str) -> None:
        from netlab import ops as O
        key = self._key(side)
        if key is not None and name in self.world.namespaces[key].links:
            self._apply(O.DelLink(key, name))

    def container_mac(self, ifname: str) -> str:
        return self._ns("ctr").links[ifname].mac

    def wait_port_up(self, name: str) -> None:
        if not self.link("host", name).oper_up:
            raise internal("bridge port in error state: down")

    # --- addresses and routes ----------------------------------------------------------------
    def configure_container(self, ifname: str, result: dict, enabledad: bool) -> None:
        from netlab import ops as O
        from netlab.errors import CommandError
        self.sysctl("ctr", f"net/ipv4/conf/{ifname}/arp_notify", "1")
        gws = {}
        for ipc in result["ips"]:
            addr = parse_cidr(ipc["address"])
            if addr.bits != 32:
                raise internal(f'failed to add IP addr {ipc["address"]} to "{ifname}": '
                               "the model is IPv4 only")
            bcast = None
            if addr.prefixlen < 31:
                from netlab.cni.ip import IP
                bcast = str(IP(32, addr.ip.value | ((1 << (32 - addr.prefixlen)) - 1)))
            self._apply(O.AddAddress(self.ctr_key, ifname, str(addr.ip), addr.prefixlen, bcast))
            if ipc.get("gateway"):
                gws.setdefault(32, ipc["gateway"])
        self._apply(O.SetLinkUp(self.ctr_key, ifname, True))
        for route in result["routes"]:
            dst = parse_cidr(route["dst"])
            gw = route.get("gw") or gws.get(dst.bits)
            text = "default" if dst.prefixlen == 0 else f"{dst.network}/{dst.prefixlen}"
            try:
                self._apply(O.AddRoute(self.ctr_key, text, dev=ifname, gateway=gw))
            except CommandError as exc:
                reason = "file exists" if "File exists" in exc.message else exc.message
                raise internal(f"failed to add route '{go_ipnet(dst)} via {gw or '<nil>'} "
                               f"dev {ifname}': {reason}") from None

    def ensure_bridge_addr(self, bridge: str, gw: Net, force: bool) -> None:
        from netlab import ops as O
        link = self._ns("host").links[bridge]
        want = str(gw)
        for a in list(link.addresses):
            have = Net(parse_ip(a.ip), a.prefixlen)
            if str(have) == want:
                return
            if not force:
                raise ValueError(f'"{bridge}" already has an IP address different from {want}')
            self._apply(O.DelAddress(self.host_key, bridge, a.ip, a.prefixlen))
        from netlab.cni.ip import IP
        bcast = str(IP(32, gw.ip.value | ((1 << (32 - gw.prefixlen)) - 1))) if gw.prefixlen < 31 else None
        self._apply(O.AddAddress(self.host_key, bridge, str(gw.ip), gw.prefixlen, bcast))
        self._apply(O.SetLinkAddress(self.host_key, bridge, self.bridge_mac or link.mac))

    def addrs(self, side: str, name: str) -> list[tuple[str, int, int]]:
        link = self._ns(side).links.get(name)
        return [(a.ip, a.prefixlen, 0) for a in link.addresses] if link else []

    def routes(self, side: str, name: str) -> list[tuple[str, str | None]]:
        return [("0.0.0.0/0" if r.dst == "default" else r.dst, r.gateway)
                for r in self._ns(side).routes if r.dev == name]

    def del_container_link(self, ifname: str) -> list[Net]:
        from netlab import ops as O
        link = self._ns("ctr").links.get(ifname)
        if link is None:
            return []
        addrs = [Net(parse_ip(a.ip), a.prefixlen) for a in link.addresses]
        self._apply(O.DelLink(self.ctr_key, ifname))
        return addrs

    # --- iptables: the same restore payloads as on a kernel ------------------------------------
    def save(self, bits: int) -> str:
        if bits != 32:
            return ""
        from netlab.netfilter.restore import iptables_save
        return iptables_save(self._ns("host"), "nat")

    def restore(self, bits: int, payload: str) -> None:
        from netlab import ops as O
        self._apply(O.IptablesRestore(self.host_key, payload, noflush=True))

    def masq_setup(self, net: Net, chain: str, note: str) -> None:
        from netlab.cni.masq import setup
        setup(self, net, chain, note)

    def masq_teardown(self, nets: list[Net], chain: str, note: str, whole: bool) -> None:
        from netlab.cni.masq import teardown
        teardown(self, nets, chain, note, whole)

    def spoofchk_setup(self, host_veth: str, mac: str, uid: str) -> None:
        pass                    # the model has no nftables: macspoofchk is not modelled

    def spoofchk_teardown(self, uid: str) -> None:
        pass

    def masq_teardown_stale(self, chain: str, note: str) -> None:
        from netlab.cni.masq import teardown_stale
        live = {a.ip for link in self._ns("ctr").links.values() for a in link.addresses}
        teardown_stale(self, live, chain, note)

    def masq_gc(self, network: str, keep: set[str]) -> None:
        from netlab.cni.masq import gc
        gc(self, network, keep)


def _args(command: str, netconf: dict, container_id: str, netns: str, ifname: str,
          cni_args: str, path: list[str] | None = None):
    from netlab.cni import fastjson, skel
    return skel.Args(command, container_id, netns, ifname, cni_args, path or ["/opt/cni/bin"],
                     fastjson.dumps_compact(netconf).encode(), env={})


def _handlers(backend, node: str, memory: dict, plugin: str, container_id: str = "") -> dict:
    from netlab.cni import bridge, delegate, hostlocal
    if plugin == "host-local":
        return hostlocal.handlers(memory)
    if plugin != "bridge":
        raise internal(f'failed to find plugin "{plugin}" in path [/opt/cni/bin]')
    return bridge.handlers(lambda: ModelHost(backend, node, container_id),
                           lambda a, t: delegate.Ipam(a, t, memory, in_process_only=True))


def invoke(backend, command: str, netconf: dict, *, container_id: str, netns: str, ifname: str,
           node: str, cni_args: str = "", data_dir_state: dict | None = None) -> dict:
    """Run one CNI command in-process on a ModelBackend, as a runtime would run the plugin.

    ``backend``: a netlab.backends.model.ModelBackend (its World is changed in place).
    ``command``: ADD, DEL, CHECK, STATUS, GC (VERSION is answered too).
    ``netconf``: the plugin's network configuration (``type`` bridge or host-local;
    the bridge's ``ipam.type`` must be host-local), as libcni would send it.
    ``container_id``, ``netns`` (``/var/run/netns/NAME``: namespace NAME of ``node``),
    ``ifname``, ``cni_args`` (CNI_ARGS): the CNI_* variables.
    ``data_dir_state``: host-local's files as ``{network: {filename: content}}``; None
    keeps them in the World, as the node's files under ipam.dataDir.

    Returns the result as the plugin prints it (in the netconf's cniVersion) for ADD,
    ``{}`` for the other commands. Raises netlab.cni.CniError(code, msg, details) with
    the codes and messages the reference plugins use. A failed ADD leaves the World as
    it was.
    """
    from netlab.cni.store import Files
    memory = data_dir_state if data_dir_state is not None else \
        Files(backend.world.files.setdefault(node, {}))
    args = _args(command, netconf, container_id, netns, ifname, cni_args)
    from netlab.cni import skel
    if command == "VERSION":
        return skel.version_info(args.stdin)
    if command not in skel.COMMANDS:
        raise CniError(4, f"unknown CNI_COMMAND: {command}")
    saved = _Saved(backend.world, node, netns, data_dir_state)
    try:
        out = skel.dispatch(args, _handlers(backend, node, memory, str(netconf.get("type", "")),
                                            container_id))
    except BaseException:
        saved.restore()
        getattr(backend, "_changed", lambda: None)()
        raise
    return out or {}


class _Saved:
    """What one plugin call can change, kept to put back if it fails: the node's root
    namespace and the container's, the node's files (or ``data_dir_state``) and the
    MAC counter. Copying only these (not the whole World) keeps a call's cost
    independent of the cluster's size. iptables tables are copied on write by the
    backend (a restore swaps in new ones), so they are kept by reference."""

    def __init__(self, world, node: str, netns: str, data_dir_state: dict | None):
        import pickle
        from netlab.model import ns_key
        self.world = world
        spaces = [world.namespaces[k] for k in (ns_key(node), ns_key(node, netns_name(netns)))
                  if k in world.namespaces]
        self.keys = [ns.key for ns in spaces]
        self.tables = [ns.tables for ns in spaces]
        try:                                    # pickle is C: far faster than deepcopy
            for ns in spaces:
                ns.tables = {}
            self.blob = pickle.dumps(spaces, pickle.HIGHEST_PROTOCOL)
        finally:
            for ns, tables in zip(spaces, self.tables):
                ns.tables = tables
        self.tables = [dict(t) for t in self.tables]
        self.node = node
        self.files = dict(world.files[node]) if node in world.files else None
        self.state = data_dir_state
        self.state_copy = {k: dict(v) for k, v in data_dir_state.items()} \
            if data_dir_state is not None else None
        self.mac_counter = world.mac_counter

    def restore(self) -> None:
        import pickle
        for key, ns, tables in zip(self.keys, pickle.loads(self.blob), self.tables):
            ns.tables = tables
            self.world.namespaces[key] = ns
        if self.files is None:
            self.world.files.pop(self.node, None)
        else:
            tree = self.world.files.setdefault(self.node, {})
            tree.clear()
            tree.update(self.files)
        if self.state is not None:
            self.state.clear()
            self.state.update(self.state_copy)
        self.world.mac_counter = self.mac_counter


# --- the executables with NETLAB_WORLD -------------------------------------------------------

class WorldFile:
    """A World in a JSON file, locked (``<world>.lock``) for one plugin call."""

    def __init__(self, path: str):
        self.path = path
        self.lock_fd = -1

    def __enter__(self) -> "WorldFile":
        import fcntl
        self.lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.lock_fd)

    def load(self):
        import json
        from netlab import ops as O
        from netlab.backends.model import ModelBackend
        from netlab.model import World
        try:
            with open(self.path) as f:
                return ModelBackend(World.from_json(json.load(f)))
        except FileNotFoundError:
            backend = ModelBackend(World())
            backend.apply(O.AddNode("host"))
            return backend

    def save(self, backend) -> None:
        import json
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(backend.world.to_json(), f, indent=1)
        os.replace(tmp, self.path)


def plugin_handlers(environ, plugin: str = "bridge") -> dict:
    """skel handlers for an executable run with NETLAB_WORLD set: each call locks the
    World file, loads it, runs the plugin on it and saves it (not after CHECK)."""
    world_path = environ["NETLAB_WORLD"]

    def wrap(command: str):
        def handler(args):
            with WorldFile(world_path) as wf:
                from netlab.cni.store import Files
                backend = wf.load()
                nodes = backend.world.nodes
                node = environ.get("NETLAB_NODE") or (nodes[0] if nodes else "host")
                memory = Files(backend.world.files.setdefault(node, {}))
                out = _handlers(backend, node, memory, plugin, args.container_id)[command](args)
                if command != "CHECK":
                    wf.save(backend)
                return out
        return handler

    return {c: wrap(c) for c in ("ADD", "DEL", "CHECK", "GC", "STATUS")}
