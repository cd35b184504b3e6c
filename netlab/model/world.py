"""World: nodes, their namespaces, links, addresses, routes, sysctls, listeners.

Plain dataclasses. A namespace is addressed by its key ``node/name``; a node's
own namespace is called ``root``. A veth names its peer by (namespace key,
link name), kept up to date when either end is renamed or moved.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from netlab.model.netfilter import Chain, ConntrackEntry, IpSet, Table

ROOT = "root"


def ns_key(node: str, name: str = ROOT) -> str:
    return f"{node}/{name}"


def split_key(key: str) -> tuple[str, str]:
    node, _, name = key.partition("/")
    return node, name or ROOT


@lru_cache(maxsize=1 << 18)
def _network(ip: str, prefixlen: int) -> ipaddress.IPv4Network:
    """An address's network (immutable, so one object serves every caller)."""
    return ipaddress.IPv4Network(f"{ip}/{prefixlen}", strict=False)


@dataclass
class Address:
    ip: str
    prefixlen: int
    broadcast: str | None = None

    @property
    def network(self) -> ipaddress.IPv4Network:
        return _network(self.ip, self.prefixlen)

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.prefixlen}"


@dataclass
class Link:
    name: str
    kind: str                      # loopback | veth | bridge | dummy
    ifindex: int
    mac: str
    mtu: int = 1500
    mtu_set: bool = False          # a bridge's MTU set by hand no longer follows its ports
    up: bool = False               # administrative state (IFF_UP)
    master: str | None = None      # the bridge this link is a port of (same namespace)
    peer_netns: str | None = None  # veth: key of the namespace holding the peer
    peer_name: str | None = None   # veth: the peer's name there
    addresses: list[Address] = field(default_factory=list)
    conf: dict[str, str] = field(default_factory=dict)  # net.ipv4.conf.<name>.<key>
    vxlan: dict | None = None      # vxlan: {"vni", "dstport", "dev", "local", "remote", "learning"}
    fdb: list[dict] = field(default_factory=list)       # vxlan: [{"mac", "dst"}]


@functools.lru_cache(maxsize=1 << 14)
def route_network(dst: str) -> ipaddress.IPv4Network:
    """A route's destination as a network (parsed once: routes are looked at in every
    lookup, and IPv4Network objects are immutable)."""
    return ipaddress.IPv4Network("0.0.0.0/0" if dst == "default" else dst)


@dataclass
class Route:
    dst: str                        # "default" or a normalised CIDR "10.0.0.0/24"
    dev: str | None = None
    gateway: str | None = None
    src: str | None = None
    metric: int = 0
    proto: str = "boot"             # kernel | boot | static | dhcp | ...
    scope: str = "global"           # global | link | host
    type: str = "unicast"           # unicast | blackhole | unreachable | prohibit
    onlink: bool = False            # the gateway is on the link even with no connected route

    @property
    def network(self) -> ipaddress.IPv4Network:
        return route_network(self.dst)


@dataclass
class Listener:
    proto: str                      # tcp | udp
    port: int
    addr: str = "0.0.0.0"


@dataclass
class Neighbour:
    ip: str
    dev: str
    mac: str | None                 # None: FAILED / INCOMPLETE
    state: str = "REACHABLE"


@dataclass
class Netns:
    node: str
    name: str
    links: dict[str, Link] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    next_ifindex: int = 1
    main_table: bool = False        # the kernel creates table main with its first route
    kind: str = "netns"             # netns | node (a node's root) | switch (a LAN)
    tables: dict[str, Table] = field(default_factory=dict)   # iptables tables in use
    ipsets: dict[str, IpSet] = field(default_factory=dict)
    conntrack: list[ConntrackEntry] = field(default_factory=list)  # from the last traces

    def __post_init__(self) -> None:
        self._key = (self.node, self.name, ns_key(self.node, self.name))

    @property
    def key(self) -> str:
        # Kept with the node and name it was made from (traces ask for it at every step):
        # a namespace given another node or name (the very objects differ), or made
        # without __init__, makes it again. Not a field: equality, hash and JSON do not
        # see it.
        try:
            node, name, key = self._key
            if node is self.node and name is self.name:
                return key
        except AttributeError:
            pass
        key = ns_key(self.node, self.name)
        self._key = (self.node, self.name, key)
        return key

    @property
    def label(self) -> str:
        """How a person names it: ``red``, ``node1/red`` or ``node1``."""
        return self.node if self.name == ROOT else f"{self.node}/{self.name}"

    def __getattr__(self, name: str):
        # Called only for an attribute the namespace lacks: ``routes``, when the model gave
        # it a batch of routes to make later (LATER), is made now, on its first read.
        if name == "routes":
            later = self.__dict__.pop(LATER, None)
            if later is not None:
                return later.settle(self)
        raise AttributeError(f"'Netns' object has no attribute {name!r}")

    def __getstate__(self) -> dict:
        if LATER in self.__dict__:
            self.routes     # (a copy or a pickle holds the list)
        return self.__dict__


# A namespace's routes may be given later: the model puts a host-gw batch (a route to
# every other node's pods: at 5,000 nodes, 25 million list entries, 200 MB) here instead
# of in ``routes``, as a few pieces of a list other nodes share
# (netlab.model.route_index.Later). The first read of ``routes`` (a change, ``ip route``,
# JSON, equality, a copy) makes the list as it would have been; look-ups do not need it.
LATER = "_routes_later"


@dataclass
class Lan:
    """A switch joining nodes' interfaces; modelled as a bridge in a namespace of its own."""
    name: str
    subnet: str | None
    members: dict[str, str] = field(default_factory=dict)   # node -> interface name


@dataclass
class World:
    name: str = "lab"
    nodes: list[str] = field(default_factory=list)
    namespaces: dict[str, Netns] = field(default_factory=dict)
    lans: list[Lan] = field(default_factory=list)
    mac_seed: int = 0
    mac_counter: int = 0
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> path -> content

    # --- lookups -----------------------------------------------------------------
    def netns(self, key: str) -> Netns:
        return self.namespaces[key]

    def peer_of(self, ns: Netns, link: Link) -> tuple[Netns, Link] | None:
        if link.peer_netns is None or link.peer_name is None:
            return None
        peer_ns = self.namespaces.get(link.peer_netns)
        if peer_ns is None:
            return None
        peer = peer_ns.links.get(link.peer_name)
        return (peer_ns, peer) if peer is not None else None

    def resolve(self, name: str, default_node: str | None = None) -> Netns | None:
        """Find a namespace by how a person names it: ``red``, ``node1/red``, ``node1``."""
        if "/" in name:
            return self.namespaces.get(name) or self.namespaces.get(ns_key(*name.split("/", 1)))
        if name in self.nodes:
            return self.namespaces.get(ns_key(name))
        if default_node is not None and ns_key(default_node, name) in self.namespaces:
            return self.namespaces[ns_key(default_node, name)]
        found = [ns for ns in self.namespaces.values() if ns.name == name]
        return found[0] if len(found) == 1 else None

    def new_mac(self) -> str:
        self.mac_counter += 1
        n = self.mac_counter
        s = self.mac_seed
        return "02:%02x:%02x:%02x:%02x:%02x" % ((s >> 8) & 0xFF, s & 0xFF,
                                                (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF)

    # --- JSON ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "World":
        namespaces = {}
        for key, ns in data["namespaces"].items():
            links = {name: Link(**{**l, "addresses": [Address(**a) for a in l["addresses"]]})
                     for name, l in ns["links"].items()}
            tables = {name: Table(chains={c: Chain(**ch) for c, ch in t["chains"].items()})
                      for name, t in ns.get("tables", {}).items()}
            conntrack = [ConntrackEntry(**{**e, "orig": tuple(e["orig"]), "reply": tuple(e["reply"])})
                         for e in ns.get("conntrack", [])]
            namespaces[key] = Netns(**{
                **ns,
                "links": links,
                "tables": tables,
                "ipsets": {n: IpSet(**s) for n, s in ns.get("ipsets", {}).items()},
                "conntrack": conntrack,
                "routes": [Route(**r) for r in ns["routes"]],
                "listeners": [Listener(**x) for x in ns["listeners"]],
                "neighbours": [Neighbour(**x) for x in ns["neighbours"]],
            })
        return cls(**{**data, "namespaces": namespaces,
                      "lans": [Lan(**lan) for lan in data["lans"]]})
