"""A cluster as Ops: nodes on a LAN, pods attached by the kubelet, routes between
the nodes' pod ranges, kube-proxy's and the NetworkPolicy rules.

The kubelet runs the CNI plugins in-process, and they decide from the state they
find, so the cluster is built on a model as it goes (``build``): a ``Recorder``
keeps every Op applied (a pod whose plugin run the kubelet replayed, see
netlab.k8s.kubelet, has its Ops made when they are asked for). ``cluster_ops`` gives
that list (the same for either backend); ``build_model`` gives the model it was built
on (with host-local's files, which are not kernel state and so are not in the list).
"""

from __future__ import annotations

import gc
import hashlib
import ipaddress
from collections.abc import Iterator

from netlab import ops as O
from netlab.cni.replay import touched
from netlab.k8s import kubelet, kubeproxy
from netlab.k8s.cluster import APISERVER_PORT, Cluster
from netlab.model import World, ns_key

LAN = "lan"
NODE_DEV = "eth0"
KUBELET_PORT = 10250


def lan_subnet(cluster: Cluster) -> ipaddress.IPv4Network:
    if cluster.spec.lan_subnet:
        return ipaddress.IPv4Network(cluster.spec.lan_subnet)
    ips = [ipaddress.IPv4Address(n.ip) for n in cluster.nodes]
    for prefix in range(24, 7, -1):
        net = ipaddress.IPv4Network(f"{ips[0]}/{prefix}", strict=False)
        if all(ip in net for ip in ips):
            return net
    return ipaddress.IPv4Network("0.0.0.0/0")


def node_ops(cluster: Cluster) -> list[O.Op]:
    subnet = lan_subnet(cluster)
    ops: list[O.Op] = [O.AddNode(n.name) for n in cluster.nodes]
    ops.append(O.AddSwitch(LAN, str(subnet)))
    for n in cluster.nodes:
        ops += [O.AttachToSwitch(LAN, n.name, NODE_DEV),
                O.AddAddress(ns_key(n.name), NODE_DEV, n.ip, subnet.prefixlen),
                O.AddListener(ns_key(n.name), "tcp", KUBELET_PORT)]
    ops.append(O.AddListener(ns_key(cluster.nodes[0].name), "tcp", APISERVER_PORT))
    # kube-proxy's health check server, on every node, for each LoadBalancer Service with
    # externalTrafficPolicy Local.
    for port in sorted({s.health_check_node_port for s in cluster.services
                        if s.health_check_node_port}):
        ops += [O.AddListener(ns_key(n.name), "tcp", port) for n in cluster.nodes]
    # A node has a default route, as every machine on a LAN does: via the LAN's first
    # address (its router, not modelled), so ClusterIPs are routable from the node too.
    gateway = str(subnet.network_address + 1)
    if subnet.prefixlen < 31 and all(n.ip != gateway for n in cluster.nodes):
        ops += [O.AddRoute(ns_key(n.name), "default", gateway=gateway) for n in cluster.nodes]
    return ops


def route_ops(cluster: Cluster) -> Iterator[O.Op]:
    """host-gw: on each node, a route to every other node's pod range via that node (one
    AddRoutes a node: flannel adds them as it learns of the other nodes' leases). Made
    one at a time: each holds a route per node (at 5,000 nodes, 200 MB if all were held
    at once). Node i's routes are node i-1's with one changed (``others``: ``every`` but
    node i's), so each is one copy."""
    if cluster.spec.network != "host-gw":
        return
    every = tuple((n.pod_cidr, n.ip) for n in cluster.nodes)
    others = list(every[1:])
    for i, n in enumerate(cluster.nodes):
        if i:
            others[i - 1] = every[i - 1]
        yield O.AddRoutes(ns_key(n.name), tuple(others))


VXLAN_DEV = "flannel.1"
VXLAN_VNI = 1
VXLAN_PORT = 8472           # flannel's (the Linux default); IANA's is 4789
VXLAN_MTU = 1450            # eth0's 1500 less the 50 bytes of outer headers


def vtep_mac(node: str) -> str:
    """flannel.1's MAC on a node (flannel publishes it in the node's annotations)."""
    digest = hashlib.sha256(f"vtep:{node}".encode()).digest()
    return "0a:" + ":".join(f"{b:02x}" for b in digest[:5])


def vxlan_ops(cluster: Cluster) -> list[O.Op]:
    """flannel's vxlan backend: a VTEP flannel.1 per node (VNI 1, UDP 8472, the node's
    address), holding its pod range's network address; for each other node a route to
    its pod range via its VTEP address (onlink), the VTEP's MAC as a permanent
    neighbour, and an FDB entry sending that MAC to the node's address."""
    ops: list[O.Op] = []
    for n in cluster.nodes:
        root = ns_key(n.name)
        net = ipaddress.ip_network(n.pod_cidr)
        ops += [O.AddVxlan(root, VXLAN_DEV, VXLAN_VNI, VXLAN_PORT, dev=NODE_DEV, local=n.ip,
                           learning=False, mtu=VXLAN_MTU, address=vtep_mac(n.name)),
                O.AddAddress(root, VXLAN_DEV, str(net.network_address), 32),
                O.SetLinkUp(root, VXLAN_DEV, True)]
        for other in cluster.nodes:
            if other is n:
                continue
            vtep = str(ipaddress.ip_network(other.pod_cidr).network_address)
            ops += [O.AddRoute(root, other.pod_cidr, dev=VXLAN_DEV, gateway=vtep, onlink=True),
                    O.AddNeighbour(root, vtep, VXLAN_DEV, vtep_mac(other.name), "PERMANENT"),
                    O.AddFdb(root, VXLAN_DEV, vtep_mac(other.name), other.ip)]
    return ops


def proxy_ops(cluster: Cluster) -> list[O.Op]:
    """kubelet's and kube-proxy's rules on every node. The rules differ between nodes only
    for Services with a Local traffic policy, so nodes that hold the same local endpoints
    of those get the very same payload (and the model shares the tables it makes)."""
    ports = kubeproxy.service_ports(cluster)
    local = [p for p in ports if p.uses_local_endpoints]
    fixed = [kubeproxy.kubelet_payload(), kubeproxy.startup_payload()]
    made: dict[tuple, str] = {}
    ops: list[O.Op] = []
    for n in cluster.nodes:
        key = tuple(tuple(ep for ep in p.endpoints if ep.node == n.name) for p in local)
        sync = made.get(key)
        if sync is None:
            sync = made[key] = kubeproxy.sync_payload(ports, n.name, cluster.spec.pod_cidr,
                                                      style="save")
        ops += [O.IptablesRestore(ns_key(n.name), payload, noflush=True)
                for payload in (*fixed, sync)]
    return ops


def policy_ops(cluster: Cluster) -> list[O.Op]:
    from netlab.k8s import netpol

    return [O.IptablesRestore(ns_key(n.name), payload, noflush=True)
            for n in cluster.nodes if (payload := netpol.node_payload(cluster, n.name))]


class Recorder:
    """A ModelBackend that keeps the Ops applied through it, in order (``ops``; a pod
    the kubelet replayed is kept as a netlab.cni.replay.Deferred in ``ops_log`` and its
    Ops made when ``ops`` is read), and while ``tracking`` (the kubelets set it) for
    each namespace the count of the last Op that may have changed it (``touched``: the
    CNI replay checks that nothing else changed a node since its template's run).
    Without ``keep`` only the Ops a plugin run needs to see are kept (those ``apply``
    gets): a replayed pod's are not, as no one will ask for them."""

    def __init__(self, backend, keep: bool = True):
        self.backend = backend
        self.keep = keep
        self.ops_log: list = []         # Ops, and netlab.cni.replay.Deferred runs
        self.touched: dict[str, int] = {}
        self.tracking = False
        self._seq = 0
        self._deferred = False
        self._handlers: dict[type, object] = {}     # apply_new's: the backend's, by Op type

    @property
    def world(self) -> World:
        return self.backend.world

    @property
    def ops(self) -> list[O.Op]:
        if self._deferred:
            from netlab.cni.replay import Deferred
            out: list[O.Op] = []
            for item in self.ops_log:
                if type(item) is Deferred:
                    out += item.ops()
                else:
                    out.append(item)
            self.ops_log[:] = out
            self._deferred = False
        return self.ops_log

    def apply(self, op: O.Op) -> None:
        if self.tracking:
            self._seq += 1
            keys = touched(op)
            if keys is None:                # cannot tell: as if every namespace changed
                self.touched = {k: -self._seq for k in self.touched}
                self.touched.update((k, -self._seq) for k in self.world.namespaces)
            else:
                for key in keys:
                    self.touched[key] = self._seq
        self.backend.apply(op)
        self.ops_log.append(op)

    def apply_new(self, op: O.Op) -> None:
        """``apply`` for an Op on a pod's namespace the caller just made, which the model
        takes as it is (a replayed pod's listeners): its handler straight away, and not
        counted in ``touched`` (the replay checks nodes' namespaces, never a pod's)."""
        handler = self._handlers.get(type(op))
        if handler is None:
            handler = self._handlers[type(op)] = getattr(self.backend, "_" + type(op).__name__)
        handler(op)
        self.backend._changed()
        if self.keep:
            self.ops_log.append(op)

    def replayed(self, deferred) -> None:
        """A replayed plugin run (its Ops made when ``ops`` is read)."""
        if self.keep:
            self.ops_log.append(deferred)
            self._deferred = True
        self.backend._changed()

    def _changed(self) -> None:
        self.backend._changed()


def attach_pods(rec: Recorder, cluster: Cluster, replay: bool | None = None) -> None:
    """Every pod, in placement order, as its node's kubelet starts it (kubelet.attach_pods;
    ``replay`` None: unless NETLAB_CNI_REPLAY=0)."""
    kubelet.attach_pods(rec, cluster, replay=replay)


def build(cluster: Cluster, keep_ops: bool = True) -> Recorder:
    """The cluster built on a fresh model: nodes, then each pod as kubelet starts it (in
    placement order), the pod network, kube-proxy's and the NetworkPolicy rules. Without
    ``keep_ops`` (only the model is wanted) the Recorder keeps only the Ops the kubelets
    need (their plugin runs'), only while they need them, and those that follow go to the
    model alone: at 5,000 nodes they would hold hundreds of MB."""
    from netlab.backends.model import ModelBackend

    rec = Recorder(ModelBackend(World(name=cluster.spec.name)), keep=keep_ops)
    # A cluster is millions of small objects and none of them is garbage: the cyclic
    # collector would walk them all again and again while they are made.
    paused = gc.isenabled()
    gc.disable()
    try:
        for op in node_ops(cluster):
            rec.apply(op)
        attach_pods(rec, cluster)
        apply = rec.apply
        if not keep_ops:
            rec.ops_log.clear()
            rec.ops_log = None      # not the cluster's Ops any more: ``ops`` fails loudly
            apply = rec.backend.apply
        for group in (vxlan_ops(cluster) if cluster.spec.network == "vxlan" else route_ops(cluster),
                      proxy_ops(cluster), policy_ops(cluster)):
            for op in group:
                apply(op)
    finally:
        if paused:
            gc.enable()
    if len(cluster.pods) >= FREEZE_PODS:
        # What was made lives as long as the cluster: moved out of the collector's sight
        # (gc.freeze), the first full collection after the build (seconds at 150,000 pods,
        # in whatever runs next, e.g. the first trace) does not walk it. Objects of a
        # cluster let go later are still freed by their reference counts.
        gc.freeze()
    return rec


FREEZE_PODS = 10000


def cluster_ops(cluster: Cluster) -> list[O.Op]:
    return build(cluster).ops


def build_model(cluster: Cluster):
    return build(cluster, keep_ops=False).backend
