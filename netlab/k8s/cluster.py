"""A cluster as the control plane would leave it: what the API server, the
controllers and the scheduler fill in, done deterministically.

- Namespaces: ``default``, ``kube-system``, ``kube-public``, ``kube-node-lease`` and the
  ones declared; an object in an undeclared namespace is refused, as by the API server.
- Workloads expand into pods: a Deployment into a ReplicaSet ``NAME-<pod-template-hash>``
  and its pods ``RS-<5 chars>``, a ReplicaSet into pods, a DaemonSet into one pod per
  eligible node. The suffixes are derived from the names, so every run gives the same.
- Placement: ``spec.nodeName``, else ``nodeSelector`` then round robin over the nodes in
  order (a cursor that moves past each node chosen).
- Pod IPs: host-local on each node's range (``podCIDR`` split into /24s; the k-th node,
  counting from 1, gets the k-th /24: node1 10.244.1.0/24, node2 10.244.2.0/24); the
  gateway .1 is skipped, pods get .2, .3, … in the order they are placed.
- Service IPs: ``default/kubernetes`` the 1st address of ``serviceCIDR``, ``kube-dns``
  the 10th, others the address asked for or the next free one after the 10th.
  NodePorts: the one asked for, or the next free one from 30000.
- EndpointSlices: one per Service and port mapping, from the Service's selector and the
  pods' readiness and named ports, as the EndpointSlice controller writes them.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import ipaddress
import socket
from dataclasses import dataclass, field, replace
from functools import lru_cache

from netlab.errors import LabError
from netlab.k8s.objects import (
    ClusterSpec, ContainerPort, Endpoint, EndpointSlice, LabelSelector, Manifests, Namespace,
    NetworkPolicy, Pod, Service, ServicePort, Workload,
)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"     # k8s.io/apimachinery/pkg/util/rand
NODE_PORT_RANGE = (30000, 32767)
APISERVER_PORT = 6443
COREDNS_REPLICAS = 2


@dataclass
class Node:
    name: str
    ip: str
    labels: dict[str, str]
    pod_cidr: str

    @property
    def gateway(self) -> str:
        """The bridge address the CNI bridge plugin gives the node (network + 1)."""
        return _first_host(self.pod_cidr)


@lru_cache(maxsize=1 << 16)
def _first_host(cidr: str) -> str:
    return str(ipaddress.ip_network(cidr).network_address + 1)


@lru_cache(maxsize=1 << 16)
def prefixlen(cidr: str) -> int:
    return ipaddress.ip_network(cidr).prefixlen


@dataclass
class Cluster:
    spec: ClusterSpec
    nodes: list[Node]
    namespaces: dict[str, Namespace]
    pods: list[Pod]
    services: list[Service]
    slices: dict[str, list[EndpointSlice]]          # service key -> its slices
    policies: list[NetworkPolicy]
    ignored: list[str] = field(default_factory=list)

    def node(self, name: str) -> Node:
        node = self.find_node(name)
        if node is None:
            raise KeyError(f"no node {name}")
        return node

    def find_node(self, name: str) -> Node | None:
        found = self._by("nodes", lambda n: n.name).get(name)
        return found if found is not None and found.name == name else \
            next((n for n in self.nodes if n.name == name), None)

    def pod(self, key: str) -> Pod | None:
        found = self._by("pods", lambda p: p.key).get(key)
        return found if found is not None and found.key == key else \
            next((p for p in self.pods if p.key == key), None)

    def service(self, key: str) -> Service | None:
        found = self._by("services", lambda s: s.key).get(key)
        return found if found is not None and found.key == key else \
            next((s for s in self.services if s.key == key), None)

    def first_pod_of(self, owner: str) -> Pod | None:
        """The first pod (in placement order) of ``owner``, e.g. ``Deployment shop/web``."""
        found = self._by("pods", lambda p: p.owner, "owner").get(owner)
        return found if found is not None and found.owner == owner else \
            next((p for p in self.pods if p.owner == owner), None)

    def _by(self, what: str, key, name: str = "key") -> dict:
        """The objects of the list ``what`` by ``key`` (the first of equal keys), made when
        first asked for and again when the list is another one or another length; a hit
        is checked against the key again, a miss looks at the list (so a changed object is
        never answered wrongly)."""
        items = getattr(self, what)
        cached = self.__dict__.get(f"_{what}_by_{name}")
        if cached is None or cached[0] is not items or cached[1] != len(items):
            index: dict = {}
            for item in items:
                index.setdefault(key(item), item)
            cached = self.__dict__[f"_{what}_by_{name}"] = (items, len(items), index)
        return cached[2]

    @property
    def dns_ip(self) -> str:
        return nth_address(self.spec.service_cidr, 10)

    def endpoints(self, svc: Service, port: ServicePort) -> list[tuple[Endpoint, int]]:
        """The (endpoint, target port) pairs of one Service port, across its slices."""
        out = []
        for sl in self.slices.get(svc.key, []):
            number = next((n for name, proto, n in sl.ports
                           if name == port.name and proto == port.protocol), None)
            if number is not None:
                out += [(ep, number) for ep in sl.endpoints]
        return out


def nth_address(cidr: str, n: int) -> str:
    return str(ipaddress.ip_network(cidr).network_address + n)


def ip_str(ip: int) -> str:
    return socket.inet_ntoa(ip.to_bytes(4, "big"))


@lru_cache(maxsize=1 << 16)
def host_range(cidr: str) -> tuple[int, int]:
    """A range's network address as an integer, and its number of addresses."""
    net = ipaddress.ip_network(cidr)
    return int(net.network_address), net.num_addresses


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: each byte mapped onto the alphabet without vowels."""
    return "".join(NAME_ALPHABET[ord(c) % len(NAME_ALPHABET)] for c in text)


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


# byte -> its letter of NAME_ALPHABET (byte value modulo the alphabet's length)
_SUFFIX_LETTERS = bytes(ord(NAME_ALPHABET[b % len(NAME_ALPHABET)]) for b in range(256))


def suffix(seed: str, length: int = 5) -> str:
    """A deterministic stand-in for the random 5-character name suffix: the first bytes of
    the seed's SHA-256, each mapped onto the alphabet."""
    return hashlib.sha256(seed.encode()).digest()[:length].translate(_SUFFIX_LETTERS).decode()


def template_hash(w: Workload) -> str:
    t = w.template
    text = repr((sorted(t.labels.items()), t.ports, t.node_name, sorted(t.node_selector.items()),
                 t.host_network))
    return safe_encode(str(fnv32a(text.encode())))


# --- the pieces the control plane adds ------------------------------------------------------

def system_objects(spec: ClusterSpec, nodes: list[Node]) -> tuple[list[Workload], list[Service]]:
    """CoreDNS (kubeadm's Deployment) and the kube-dns and kubernetes Services."""
    workloads: list[Workload] = []
    services = [Service("default", "kubernetes", "ClusterIP", None,
                        [ServicePort("https", "TCP", 443, APISERVER_PORT)],
                        cluster_ip=nth_address(spec.service_cidr, 1))]
    if spec.dns:
        labels = {"k8s-app": "kube-dns"}
        template = Pod("kube-system", "", dict(labels),
                       [ContainerPort(53, "UDP", "dns"), ContainerPort(53, "TCP", "dns-tcp"),
                        ContainerPort(9153, "TCP", "metrics")])
        workloads.append(Workload("Deployment", "kube-system", "coredns", COREDNS_REPLICAS,
                                  LabelSelector((("k8s-app", "kube-dns"),)), template))
        services.append(Service("kube-system", "kube-dns", "ClusterIP", dict(labels),
                                [ServicePort("dns", "UDP", 53, 53),
                                 ServicePort("dns-tcp", "TCP", 53, 53),
                                 ServicePort("metrics", "TCP", 9153, 9153)],
                                cluster_ip=nth_address(spec.service_cidr, 10)))
    return workloads, services


def make_nodes(spec: ClusterSpec) -> list[Node]:
    net = ipaddress.ip_network(spec.pod_cidr)
    if net.prefixlen > 24:
        raise LabError(f"podCIDR {spec.pod_cidr} is too small to give each node a /24",
                       path=spec.path)
    first = int(net.network_address)
    count = 1 << (24 - net.prefixlen)           # the /24s in podCIDR
    nodes = []
    for k, n in enumerate(spec.nodes, start=1):
        if n.pod_cidr is not None:
            cidr = n.pod_cidr
        elif k < count:
            cidr = f"{ip_str(first + (k << 8))}/24"
        else:
            raise LabError(f"podCIDR {spec.pod_cidr} has no /24 left for node {n.name}",
                           path=spec.path)
        nodes.append(Node(n.name, n.ip, dict(n.labels), cidr))
    # In network order (then the shorter prefix first, as IPv4Network sorts), each range
    # against the next.
    ranges = sorted(((*host_range(n.pod_cidr), prefixlen(n.pod_cidr), n) for n in nodes),
                    key=lambda r: (r[0], r[2]))
    for (start_a, size_a, _, a), (start_b, size_b, _, b) in zip(ranges, ranges[1:]):
        if start_b < start_a + size_a and start_a < start_b + size_b:
            raise LabError(f"the pod ranges of {a.name} ({a.pod_cidr}) and {b.name} "
                           f"({b.pod_cidr}) overlap", path=spec.path)
    return nodes


def from_template(base: Pod, **changes) -> Pod:
    """``dataclasses.replace(base, **changes)`` for a pod, at a fraction of its cost: the
    fields are taken as they are (a template's lists and dicts are shared, as there)."""
    pod = object.__new__(Pod)
    fields = base.__dict__.copy()
    fields.update(changes)
    pod.__dict__ = fields
    return pod


def expand(w: Workload, nodes: list[Node]) -> list[Pod]:
    base = w.template
    if w.kind == "DaemonSet":
        owner = f"DaemonSet {w.namespace}/{w.name}"
        return [from_template(base, name=f"{w.name}-{suffix(f'{w.namespace}/{w.name}/{node.name}')}",
                              labels=dict(base.labels), node_name=node.name, owner=owner,
                              source=w.source)
                for node in nodes
                if all(node.labels.get(k) == v for k, v in base.node_selector.items())]
    rs = w.name if w.kind == "ReplicaSet" else f"{w.name}-{template_hash(w)}"
    labels = dict(base.labels)
    if w.kind == "Deployment":
        labels["pod-template-hash"] = rs.rsplit("-", 1)[1]
    owner = f"{w.kind} {w.namespace}/{w.name}"
    names: dict[str, None] = {}         # in order
    prefix = f"{w.namespace}/{rs}/"
    sha256, letters = hashlib.sha256, _SUFFIX_LETTERS       # suffix(), inlined
    for i in range(w.replicas):
        k = 0
        while True:
            digest = sha256(f"{prefix}{i}/{k}".encode()).digest()
            name = f"{rs}-{digest[:5].translate(letters).decode()}"
            if name not in names:
                break
            k += 1
        names[name] = None
    # from_template() for each, with the fields they share made once
    fields = {**base.__dict__, "owner": owner, "source": w.source}
    pods = []
    for name in names:
        pod = object.__new__(Pod)
        own = fields.copy()
        own["name"] = name
        own["labels"] = labels.copy()
        pod.__dict__ = own
        pods.append(pod)
    return pods


def place(pods: list[Pod], nodes: list[Node]) -> None:
    by_name = {n.name: n for n in nodes}
    eligible_by: dict[tuple, list[int]] = {}
    cursor = 0
    for pod in pods:
        if pod.node_name is not None:
            if pod.node_name not in by_name:
                raise _object_error(pod, "spec.nodeName", f"no node called '{pod.node_name}'",
                                    hint="nodes: " + ", ".join(by_name))
            pod.node = pod.node_name
            continue
        wanted = tuple(sorted(pod.node_selector.items())) if pod.node_selector else ()
        eligible = eligible_by.get(wanted)
        if eligible is None:
            eligible = eligible_by[wanted] = [
                i for i, n in enumerate(nodes) if all(n.labels.get(k) == v for k, v in wanted)]
        if not eligible:
            raise _object_error(pod, "spec.nodeSelector", "no node has the labels "
                                + ", ".join(f"{k}={v}" for k, v in pod.node_selector.items()),
                                hint="add labels to the nodes in the cluster file")
        if len(eligible) == len(nodes):         # every node: the cursor's own
            i = cursor if cursor < len(nodes) else 0
        else:
            at = bisect.bisect_left(eligible, cursor)
            i = eligible[at] if at < len(eligible) else eligible[0]
        pod.node = nodes[i].name
        cursor = i + 1


def assign_pod_ips(pods: list[Pod], nodes: list[Node]) -> None:
    """host-local: the first free address after the gateway, in order, per node."""
    # node name -> [the node, its range's network address, its size, the next offset]
    state = {n.name: [n, *host_range(n.pod_cidr), 2] for n in nodes}
    for pod in pods:
        at = state[pod.node]
        if pod.host_network:
            pod.ip = at[0].ip
            continue
        node, network, size, offset = at
        if offset >= size - 1:
            raise _object_error(pod, "", f"no IP addresses left in {node.pod_cidr} on "
                                f"{node.name}", hint="host-local hands out .2 to .254 of a /24")
        pod.ip = socket.inet_ntoa((network + offset).to_bytes(4, "big"))
        at[3] = offset + 1


def assign_service_ips(spec: ClusterSpec, services: list[Service]) -> None:
    net = ipaddress.ip_network(spec.service_cidr)
    used: dict[str, Service] = {}
    for svc in services:
        if svc.cluster_ip is not None and svc.cluster_ip != "None":
            ip = ipaddress.ip_address(svc.cluster_ip)
            if ip not in net or ip in (net.network_address, net.broadcast_address):
                raise _object_error(svc, "spec.clusterIP", f"{ip} is not in the valid range "
                                    f"{spec.service_cidr}", hint="serviceCIDR in the cluster file")
            if svc.cluster_ip in used:
                raise _object_error(svc, "spec.clusterIP", f"{ip} is already allocated to "
                                    f"{used[svc.cluster_ip].key}")
            used[svc.cluster_ip] = svc
    n = 11
    first, size = int(net.network_address), net.num_addresses
    for svc in services:
        if svc.cluster_ip is None:
            while ip_str(first + n) in used:
                n += 1
            if n >= size - 1:
                raise _object_error(svc, "spec.clusterIP", f"no addresses left in {net}")
            svc.cluster_ip = ip_str(first + n)
            used[svc.cluster_ip] = svc
    taken: dict[int, Service] = {}
    for svc in services:
        if svc.health_check_node_port is not None:
            taken[svc.health_check_node_port] = svc
        for p in svc.ports:
            if p.node_port is not None:
                if p.node_port in taken:
                    raise _object_error(svc, "spec.ports.nodePort", f"{p.node_port}: provided "
                                        f"port is already allocated ({taken[p.node_port].key})")
                taken[p.node_port] = svc
    nxt = NODE_PORT_RANGE[0]
    for svc in services:
        if svc.type == "ClusterIP":
            continue
        ports = []
        for p in svc.ports:
            if p.node_port is None:
                while nxt in taken:
                    nxt += 1
                p = replace(p, node_port=nxt)
                taken[nxt] = svc
            ports.append(p)
        svc.ports = ports
        if svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local" \
                and svc.health_check_node_port is None:
            while nxt in taken:
                nxt += 1
            svc.health_check_node_port = nxt      # the API server allocates one
            taken[nxt] = svc


def find_port(pod: Pod, port: ServicePort) -> int | None:
    """podutil.FindPort: a number is used as it is; a name must be a container port of
    the same protocol."""
    if isinstance(port.target_port, int):
        return port.target_port
    for cp in pod.ports:
        if cp.name == port.target_port and cp.protocol == port.protocol:
            return cp.port
    return None


class PodIndex:
    """Pods by namespace and label, so a selector looks at its candidates only."""

    def __init__(self, pods: list[Pod]):
        self.by_label: dict[tuple[str, str, str], list[Pod]] = {}
        self.by_namespace: dict[str, list[Pod]] = {}
        for pod in pods:
            if pod.ip is None:
                continue
            self.by_namespace.setdefault(pod.namespace, []).append(pod)
            for k, v in pod.labels.items():
                self.by_label.setdefault((pod.namespace, k, v), []).append(pod)

    def select(self, namespace: str, selector: dict[str, str]) -> list[Pod]:
        if not selector:
            return list(self.by_namespace.get(namespace, []))
        if len(selector) == 1:
            (k, v), = selector.items()
            return list(self.by_label.get((namespace, k, v), []))
        lists = [self.by_label.get((namespace, k, v), []) for k, v in selector.items()]
        smallest = min(lists, key=len)
        return [p for p in smallest if all(p.labels.get(k) == v for k, v in selector.items())]


def endpoint_slices(svc: Service, pods: list[Pod] | PodIndex) -> list[EndpointSlice]:
    if svc.selector is None:
        return []
    index = pods if isinstance(pods, PodIndex) else PodIndex(pods)
    groups: dict[tuple, list[Endpoint]] = {}
    # A workload's pods share their template's list of ports: resolve each list once.
    mappings: dict[int, tuple] = {}
    for pod in index.select(svc.namespace, svc.selector):
        key = mappings.get(id(pod.ports))
        if key is None:
            key = mappings[id(pod.ports)] = tuple(
                (p.name, p.protocol, n) for p in svc.ports if (n := find_port(pod, p)) is not None)
        eps = groups.get(key)
        if eps is None:
            eps = groups[key] = []
        eps.append(Endpoint(pod.ip, pod.node, f"{pod.namespace}/{pod.name}", pod.ready))
    return [EndpointSlice(svc.namespace, f"{svc.name}-{suffix(svc.key + repr(k))}", svc.key,
                          list(k), eps) for k, eps in groups.items()]


def _object_error(obj, field: str, message: str, hint: str | None = None) -> LabError:
    src = obj.source
    if src is None:
        return LabError(f"{type(obj).__name__} {obj.key}: {message}", hint=hint)
    where = f"{field}: " if field else ""
    return LabError(f"{src.what}: {where}{message}", path=src.path, line=src.line, hint=hint)


def check_namespaces(namespaces: dict[str, Namespace], objects) -> None:
    for obj in objects:
        if obj.namespace not in namespaces:
            raise _object_error(obj, "metadata.namespace",
                                f'namespaces "{obj.namespace}" not found',
                                hint=f"add a Namespace manifest: kind: Namespace, "
                                     f"metadata: {{name: {obj.namespace}}}")


def build_cluster(spec: ClusterSpec, manifests: Manifests) -> Cluster:
    # A cluster is hundreds of thousands of small objects and none of them is garbage: the
    # cyclic collector would walk them all again and again while they are made.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _build_cluster(spec, manifests)
    finally:
        if paused:
            gc.enable()


def _build_cluster(spec: ClusterSpec, manifests: Manifests) -> Cluster:
    nodes = make_nodes(spec)
    namespaces = {n: Namespace(n, {"kubernetes.io/metadata.name": n}) for n in SYSTEM_NAMESPACES}
    for ns in manifests.namespaces:
        namespaces[ns.name] = ns
    sys_workloads, sys_services = system_objects(spec, nodes)
    check_namespaces(namespaces, manifests.pods + manifests.services + manifests.policies
                     + manifests.workloads)
    seen: dict[tuple[str, str], object] = {}
    for obj in sys_services + manifests.services + manifests.pods + manifests.policies \
            + manifests.workloads:
        key = (obj.kind if isinstance(obj, Workload) else type(obj).__name__, obj.key)
        if key in seen:
            raise _object_error(obj, "metadata.name", f"{key[0]} {key[1]} is defined twice")
        seen[key] = obj
    pods: list[Pod] = []
    for w in sys_workloads:
        pods += expand(w, nodes)
    pending = list(manifests.pods)
    for w in manifests.workloads:
        pending += expand(w, nodes)
    names = {p.key for p in pods}
    for pod in pending:
        if pod.key in names:
            raise _object_error(pod, "metadata.name", f"pod {pod.key} is defined twice")
        names.add(pod.key)
        pods.append(pod)
    place(pods, nodes)
    assign_pod_ips(pods, nodes)
    services = sys_services + manifests.services
    assign_service_ips(spec, services)
    index = PodIndex(pods)
    slices = {svc.key: endpoint_slices(svc, index) for svc in services}
    first = nodes[0]
    slices["default/kubernetes"] = [EndpointSlice("default", "kubernetes", "default/kubernetes",
                                                  [("https", "TCP", APISERVER_PORT)],
                                                  [Endpoint(first.ip, first.name, None)])]
    ignored = list(manifests.ignored)
    ignored += [f"{svc.source.path}:{svc.source.line}: Service {svc.key} port {p.port}/SCTP "
                "(SCTP is not modelled: no rules for it)"
                for svc in manifests.services for p in svc.ports if p.protocol == "SCTP"]
    ignored += [f"{pol.source.path}:{pol.source.line}: NetworkPolicy {pol.key}: its SCTP ports "
                "(SCTP is not modelled: they allow nothing)"
                for pol in manifests.policies
                if any(pp.protocol == "SCTP" for r in pol.ingress + pol.egress for pp in r.ports)]
    return Cluster(spec, nodes, namespaces, pods, services, slices, list(manifests.policies),
                   ignored)


def load_cluster(paths: list[str]) -> Cluster:
    from netlab.k8s.manifests import load

    spec, manifests = load(paths)
    return build_cluster(spec, manifests)
