"""The Op vocabulary: one small immutable record per kernel change.

Parsers produce Ops, backends apply them; nothing else changes state. Every
Op names the namespace it acts in by key (``node/name``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Op:
    def describe(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if v is not None)
        return f"{type(self).__name__}({fields})"


@dataclass(frozen=True)
class AddNode(Op):
    """A machine: its root namespace, booted (lo up, ip_forward 0, br_netfilter on)."""
    node: str


@dataclass(frozen=True)
class AddNetns(Op):
    node: str
    name: str


@dataclass(frozen=True)
class DelNetns(Op):
    node: str
    name: str


@dataclass(frozen=True)
class AddLink(Op):
    netns: str
    name: str
    kind: str                       # veth | bridge | dummy
    peer: str | None = None         # veth peer name
    peer_netns: str | None = None   # key of the namespace for the peer (default: same)
    mtu: int | None = None
    address: str | None = None


@dataclass(frozen=True)
class AddVxlan(Op):
    """``ip link add NAME type vxlan id VNI [local IP] [remote IP] dstport PORT dev DEV
    [nolearning]``: a VXLAN device; frames out of it travel in UDP to the FDB's
    destination (or ``remote``) and arrive on the peer's device with the same VNI/port."""
    netns: str
    name: str
    vni: int
    dstport: int
    dev: str | None = None          # the underlay device
    local: str | None = None
    remote: str | None = None
    learning: bool = True
    mtu: int | None = None
    address: str | None = None


@dataclass(frozen=True)
class AddFdb(Op):
    """``bridge fdb append MAC dev VXLAN dst IP``: where frames for MAC are sent
    (00:00:00:00:00:00: every unknown destination)."""
    netns: str
    dev: str
    mac: str
    dst: str


@dataclass(frozen=True)
class DelLink(Op):
    netns: str
    name: str


@dataclass(frozen=True)
class SetLinkUp(Op):
    netns: str
    name: str
    up: bool


@dataclass(frozen=True)
class SetLinkMtu(Op):
    netns: str
    name: str
    mtu: int


@dataclass(frozen=True)
class SetLinkAddress(Op):
    netns: str
    name: str
    address: str


@dataclass(frozen=True)
class SetLinkMaster(Op):
    netns: str
    name: str
    master: str | None              # None: nomaster


@dataclass(frozen=True)
class MoveLink(Op):
    netns: str
    name: str
    to_netns: str


@dataclass(frozen=True)
class RenameLink(Op):
    netns: str
    name: str
    new_name: str


@dataclass(frozen=True)
class AddAddress(Op):
    netns: str
    dev: str
    ip: str
    prefixlen: int
    broadcast: str | None = None


@dataclass(frozen=True)
class DelAddress(Op):
    netns: str
    dev: str
    ip: str
    prefixlen: int | None = None    # None: as typed without a prefix (kernel warns, /32 assumed)


@dataclass(frozen=True)
class FlushAddresses(Op):
    netns: str
    dev: str


@dataclass(frozen=True)
class AddRoute(Op):
    netns: str
    dst: str                        # "default" or CIDR
    dev: str | None = None
    gateway: str | None = None
    src: str | None = None
    metric: int = 0
    proto: str = "boot"
    scope: str | None = None        # None: link for a direct route, global via a gateway
    type: str = "unicast"
    replace: bool = False
    onlink: bool = False            # trust that the gateway is on dev


@dataclass(frozen=True)
class AddRoutes(Op):
    """Many ``ip route add DST via GATEWAY [dev DEV]`` at once (``ip -batch``), in order:
    host-gw's route to every other node's pods. The model takes all of them or none."""
    netns: str
    routes: tuple[tuple[str, str], ...]     # (dst CIDR, gateway)
    dev: str | None = None


@dataclass(frozen=True)
class DelRoute(Op):
    netns: str
    dst: str
    dev: str | None = None
    gateway: str | None = None
    metric: int | None = None


@dataclass(frozen=True)
class SetSysctl(Op):
    netns: str
    key: str                        # dotted: net.ipv4.ip_forward
    value: str


@dataclass(frozen=True)
class AddListener(Op):
    netns: str
    proto: str                      # tcp | udp
    port: int
    addr: str = "0.0.0.0"


@dataclass(frozen=True)
class AddSwitch(Op):
    """A LAN's switch: a namespace of its own (kind "switch", not a node) holding
    a bridge ``br0`` that is up, with bridge-nf-call-iptables 0 (a plain switch)."""
    name: str
    subnet: str | None = None


@dataclass(frozen=True)
class AttachToSwitch(Op):
    """Plug a node into a switch: veth ``dev`` in the node's root namespace, its peer
    (named after the node) a port of the switch's ``br0``; both ends up."""
    switch: str
    node: str
    dev: str


@dataclass(frozen=True)
class AddNeighbour(Op):
    """A neighbour (ARP) entry: learned by a probe's ARP, or `ip neigh add|replace`."""
    netns: str
    ip: str
    dev: str
    mac: str | None                 # None: INCOMPLETE / FAILED
    state: str = "REACHABLE"        # REACHABLE | STALE | DELAY | FAILED | INCOMPLETE | PERMANENT


@dataclass(frozen=True)
class FlushNeighbours(Op):
    """`ip neigh flush` / `ip neigh del`: drops entries that are not PERMANENT (or all,
    with ``permanent``), optionally only on one device or for one address."""
    netns: str
    dev: str | None = None
    ip: str | None = None
    permanent: bool = False


@dataclass(frozen=True)
class IptablesRestore(Op):
    """Every iptables change, as the payload iptables-restore would read.

    ``iptables -t nat -A POSTROUTING …`` becomes ``*nat / -A POSTROUTING … /
    COMMIT`` with noflush=True; ``command`` keeps the line it came from, so
    a refusal can be worded as iptables words it (rather than as
    iptables-restore's "line N failed").
    """
    netns: str
    payload: str
    noflush: bool = False
    command: str | None = None


@dataclass(frozen=True)
class Ipset(Op):
    """An ipset change: ``create NAME TYPE [options]``, ``add NAME MEMBER``,
    ``del NAME MEMBER``, ``flush [NAME]``, ``destroy [NAME]`` (argument list as typed)."""
    netns: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class FlushConntrack(Op):
    """``conntrack -F``: empties the namespace's conntrack table."""
    netns: str


@dataclass(frozen=True)
class WriteFile(Op):
    """A file on a node (``content`` None: removed): a lab's ``files:``, the files
    CNI's host-local keeps in its data dir. Not kernel state: the model keeps them
    in ``World.files`` so commands that read files (``< FILE``, cnitool) find them."""
    node: str
    path: str
    content: str | None

    def describe(self) -> str:
        return f"WriteFile(node={self.node!r}, path={self.path!r})"
