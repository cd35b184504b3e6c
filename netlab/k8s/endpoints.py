"""How a person names the ends of a trace in a cluster.

Sources: ``pod/NS/NAME`` (or ``pod/NAME`` in ``default``), ``node/NAME``.
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


def _node(cluster: Cluster, name: str):
    node = next((n for n in cluster.nodes if n.name == name), None)
    if node is None:
        raise NotFound(f"no node {name} (nodes: {', '.join(n.name for n in cluster.nodes)})")
    return node


def source_netns(cluster: Cluster, ref: str) -> str:
    """The namespace key a trace starts in."""
    kind, _, rest = ref.partition("/")
    if kind == "pod" and rest:
        return pod_netns_key(_pod(cluster, rest))
    if kind == "node" and rest:
        return ns_key(_node(cluster, rest).name)
    raise NotFound(f"'{ref}' is not pod/NS/NAME or node/NAME")


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
