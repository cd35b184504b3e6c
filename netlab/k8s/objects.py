"""The Kubernetes objects netlab understands, as plain data.

Only the fields that decide networking are kept: labels and selectors,
ports, placement, Service types and policies, NetworkPolicy rules. What the
API server and the controllers would fill in (ClusterIPs, NodePorts, pod IPs,
nodes, EndpointSlices) is filled in by ``netlab.k8s.cluster``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry: key, operator (In, NotIn, Exists, DoesNotExist), values."""
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels                       # DoesNotExist


@dataclass(frozen=True)
class LabelSelector:
    """metav1.LabelSelector: every matchLabels pair and every expression must hold;
    the empty selector selects everything."""
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and \
            all(r.matches(labels) for r in self.match_expressions)

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True)
class Source:
    """Where an object came from, for error messages: file, line, ``Kind ns/name``."""
    path: str
    line: int
    what: str


@dataclass(frozen=True)
class ContainerPort:
    port: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass
class Pod:
    namespace: str
    name: str
    labels: dict[str, str]
    ports: list[ContainerPort]
    node_name: str | None = None            # spec.nodeName
    node_selector: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    ready: bool = True
    owner: str | None = None                # "Deployment shop/frontend" when expanded
    source: Source | None = None
    node: str | None = None                 # filled in by placement
    ip: str | None = None                   # filled in by the emulated kubelet (host-local)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServicePort:
    name: str                               # "" for a single unnamed port
    protocol: str                           # TCP | UDP | SCTP
    port: int
    target_port: int | str                  # a number, or a container port's name
    node_port: int | None = None


@dataclass
class Service:
    namespace: str
    name: str
    type: str                               # ClusterIP | NodePort | LoadBalancer
    selector: dict[str, str] | None
    ports: list[ServicePort]
    cluster_ip: str | None = None           # None: allocate; "None": headless
    session_affinity: str = "None"          # None | ClientIP
    affinity_timeout: int = 10800
    external_traffic_policy: str = "Cluster"
    internal_traffic_policy: str = "Cluster"
    source: Source | None = None
    health_check_node_port: int | None = None     # LoadBalancer with externalTrafficPolicy Local

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"


@dataclass(frozen=True)
class Endpoint:
    ip: str
    node: str | None
    pod: str | None                          # "ns/name" of the pod
    ready: bool = True
    hostname: str | None = None


@dataclass
class EndpointSlice:
    """discovery.k8s.io/v1, as the EndpointSlice controller writes it: one slice per
    Service and port mapping (pods whose named ports resolve alike share one)."""
    namespace: str
    name: str
    service: str
    ports: list[tuple[str, str, int]]        # (name, protocol, port)
    endpoints: list[Endpoint]


@dataclass(frozen=True)
class PolicyPort:
    protocol: str = "TCP"
    port: int | str | None = None            # None: every port of the protocol
    end_port: int | None = None


@dataclass(frozen=True)
class IPBlock:
    cidr: str
    excepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyPeer:
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyRule:
    """One ingress or egress rule: no ``peers`` (the field absent or empty) means every
    peer; no ``ports`` means every port."""
    peers: tuple[PolicyPeer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]
    ingress: list[PolicyRule]
    egress: list[PolicyRule]
    source: Source | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Namespace:
    name: str
    labels: dict[str, str]


@dataclass(frozen=True)
class NodeSpec:
    name: str
    ip: str
    labels: tuple[tuple[str, str], ...] = ()
    pod_cidr: str | None = None


@dataclass
class ClusterSpec:
    """The cluster file (DESIGN.md §3 "Cluster file")."""
    name: str
    nodes: list[NodeSpec]
    pod_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    cluster_domain: str = "cluster.local"
    network: str = "host-gw"                 # host-gw | vxlan
    proxy_mode: str = "iptables"
    lan_subnet: str | None = None
    dns: bool = True                         # a CoreDNS Deployment and the kube-dns Service
    path: str = "<cluster>"


@dataclass
class Manifests:
    """Everything read from the manifests, in the order it was read."""
    namespaces: list[Namespace] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    policies: list[NetworkPolicy] = field(default_factory=list)
    workloads: list["Workload"] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)      # "file: Kind name" of unknown kinds


@dataclass
class Workload:
    """A Deployment, ReplicaSet or DaemonSet: a pod template and how many pods."""
    kind: str
    namespace: str
    name: str
    replicas: int                            # ignored for a DaemonSet
    selector: LabelSelector
    template: Pod                            # name unset; labels from the template
    source: Source | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"
