"""How a person names the ends of a trace in a cluster.

Sources: ``pod/NS/NAME`` (or ``pod/NAME`` in ``default``), ``node/NAME``, and
``deploy/NS/NAME`` (also ``rs/``, ``ds/``): the workload's first pod, as ``kubectl exec
deploy/NAME`` picks one.
Destinations: those, ``svc/NS/NAME[:PORT]`` (PORT a number or a port name; the
Service's only port when left out), an IP, or a DNS name as a pod would write it
(``backend.shop``, ``backend.shop.svc.cluster.local``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netlab.errors import NotFound
from netlab.k8s.cluster import Cluster
from netlab.k8s.kubelet import pod_netns_key
from netlab.k8s.objects import Pod, Service, ServicePort
from netlab.model import ns_key


@dataclass(frozen=True)
class Target:
    ip: str
    port: int | None = None
    proto: str | None = None           # from a Service port's protocol
    label: str = ""


def _pod(cluster: Cluster, ref: str) -> Pod:
    ns, _, name = ref.rpartition("/")
    key = f"{ns or 'default'}/{name}"
    pod = cluster.pod(key)
    if pod is None:
        near = [p.key for p in cluster.pods if p.name.startswith(name)]
        hint = f" (did you mean {', '.join(near[:3])}?)" if near else ""
        raise NotFound(f"no pod {key}{hint}")
    return pod


WORKLOAD_KINDS = {"deploy": "Deployment", "deployment": "Deployment", "rs": "ReplicaSet",
                  "replicaset": "ReplicaSet", "ds": "DaemonSet", "daemonset": "DaemonSet"}


def _workload_pod(cluster: Cluster, kind: str, ref: str) -> Pod:
    ns, _, name = ref.rpartition("/")
    owner = f"{WORKLOAD_KINDS[kind]} {ns or 'default'}/{name}"
    pod = cluster.first_pod_of(owner)
    if pod is None:
        raise NotFound(f"no pods of {owner}")
    return pod


def _node(cluster: Cluster, name: str):
    node = cluster.find_node(name)
    if node is None:
        raise NotFound(f"no node {name} (nodes: {', '.join(n.name for n in cluster.nodes)})")
    return node


def pod_of(cluster: Cluster, ref: str) -> Pod:
    """``pod/NS/NAME``, ``NS/NAME`` or ``deploy/NS/NAME`` (the workload's first pod)."""
    kind, _, rest = ref.partition("/")
    if kind in WORKLOAD_KINDS and rest:
        return _workload_pod(cluster, kind, rest)
    return _pod(cluster, rest if kind == "pod" and rest else ref)


def source_netns(cluster: Cluster, ref: str) -> str:
    """The namespace key a trace starts in."""
    kind, _, rest = ref.partition("/")
    if kind == "pod" and rest:
        return pod_netns_key(_pod(cluster, rest))
    if kind in WORKLOAD_KINDS and rest:
        return pod_netns_key(_workload_pod(cluster, kind, rest))
    if kind == "node" and rest:
        return ns_key(_node(cluster, rest).name)
    raise NotFound(f"'{ref}' is not pod/NS/NAME, deploy/NS/NAME or node/NAME")


def service_port(svc: Service, port: str | None) -> ServicePort:
    if port is None:
        if len(svc.ports) != 1:
            names = ", ".join(p.name or str(p.port) for p in svc.ports)
            raise NotFound(f"svc/{svc.key} has several ports ({names}): add :PORT")
        return svc.ports[0]
    for p in svc.ports:
        if port == p.name or (port.isdigit() and int(port) == p.port):
            return p
    raise NotFound(f"svc/{svc.key} has no port {port}")


def target(cluster: Cluster, ref: str) -> Target:
    """Where a trace goes: an IP and, from a Service port, its port and protocol."""
    kind, _, rest = ref.partition("/")
    if kind == "pod" and rest:
        body, _, port = rest.partition(":")
        pod = _pod(cluster, body)
        return Target(pod.ip, int(port) if port.isdigit() else None, None, f"pod/{pod.key}")
    if kind in WORKLOAD_KINDS and rest:
        body, _, port = rest.partition(":")
        pod = _workload_pod(cluster, kind, body)
        return Target(pod.ip, int(port) if port.isdigit() else None, None, f"pod/{pod.key}")
    if kind == "node" and rest:
        body, _, port = rest.partition(":")
        node = _node(cluster, body)
        return Target(node.ip, int(port) if port.isdigit() else None, None, f"node/{node.name}")
    if kind in ("svc", "service") and rest:
        body, _, port = rest.partition(":")
        ns, _, name = body.rpartition("/")
        svc = cluster.service(f"{ns or 'default'}/{name}")
        if svc is None:
            raise NotFound(f"no Service {ns or 'default'}/{name}")
        if svc.headless:
            raise NotFound(f"svc/{svc.key} is headless: it has no ClusterIP (trace a pod)")
        p = service_port(svc, port or None)
        return Target(svc.cluster_ip, p.port, p.protocol.lower(), f"svc/{svc.key}:{p.name or p.port}")
    host, _, port = ref.partition(":")
    try:
        ipaddress.IPv4Address(host)
        return Target(host, int(port) if port.isdigit() else None)
    except ValueError:
        pass
    from netlab.k8s.dns import resolve_name

    ips = resolve_name(cluster, host, "default")
    if not ips:
        raise NotFound(f"'{host}' does not resolve in the cluster (NXDOMAIN)")
    return Target(ips[0], int(port) if port.isdigit() else None, None, host)


@dataclass
class ClusterTrace:
    """A trace in a cluster: the connection's, and for a DNS name the resolver's queries
    (name, answer) and the trace of the query packet to the kube-dns Service."""
    world: object
    trace: object
    dns_queries: list | None = None
    dns_trace: object | None = None
    switches: tuple = ()


def cluster_world(files: list[str]):
    """The cluster ``files`` describe (a cluster file, manifests) and the World built
    from it: (cluster, world)."""
    from netlab.k8s.build import build_model
    from netlab.k8s.cluster import load_cluster

    cluster = load_cluster(files)
    return cluster, build_model(cluster).world


def cluster_trace(files: list[str], source: str, to: str, proto: str | None,
                  sport: int | None) -> ClusterTrace:
    """Build the cluster from ``files`` and trace ``source`` → ``to`` (see module doc)."""
    from netlab.dataplane.engine import trace as run
    from netlab.k8s.dns import queries

    cluster, world = cluster_world(files)
    key = source_netns(cluster, source)
    host = to.partition(":")[0]
    asked = dns_trace = None
    if "/" not in to and not _is_ip(host):
        namespace = _namespace_of(cluster, source)
        asked = queries(cluster, host, namespace)
        dns_trace = run(world, key, cluster.dns_ip, proto="udp", dport=53, sport=sport)
    t = target(cluster, to) if asked is None else _answered(asked, to)
    proto = (proto or t.proto or ("tcp" if t.port else "icmp")).lower()
    if proto in ("tcp", "udp") and t.port is None:
        raise NotFound(f"--to {to}: give a port (:PORT) for {proto}")
    traced = run(world, key, t.ip, proto=proto, dport=t.port if proto != "icmp" else None,
                 sport=sport)
    return ClusterTrace(world, traced, asked, dns_trace, tuple(lan.name for lan in world.lans))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False


def _namespace_of(cluster: Cluster, source: str) -> str:
    kind, _, rest = source.partition("/")
    if kind == "pod":
        return _pod(cluster, rest).namespace
    if kind in WORKLOAD_KINDS:
        return _workload_pod(cluster, kind, rest).namespace
    return "default"


def _answered(asked, to: str) -> Target:
    name, answer = asked[-1]
    if not answer:
        tried = ", ".join(q for q, _ in asked)
        raise NotFound(f"'{to.partition(':')[0]}' does not resolve (NXDOMAIN for {tried})")
    port = to.partition(":")[2]
    return Target(answer[0], int(port) if port.isdigit() else None, None, name)
