"""Names as CoreDNS's kubernetes plugin answers them, and the search list a pod's
resolver walks (kubelet's resolv.conf: ``search <ns>.svc.<domain> svc.<domain>
<domain>``, ``options ndots:5``).

- ``<svc>.<ns>.svc.<domain>``: the ClusterIP; a headless Service: its ready
  endpoints' addresses.
- ``<a-b-c-d>.<ns>.pod.<domain>``: the address written in the name (``pods insecure``,
  kubeadm's Corefile).
- ``<svc>.<ns>`` alone, ``<svc>`` alone: found through the search list.
"""

from __future__ import annotations

import ipaddress

from netlab.k8s.cluster import Cluster

NDOTS = 5


def search_list(cluster: Cluster, namespace: str) -> list[str]:
    d = cluster.spec.cluster_domain
    return [f"{namespace}.svc.{d}", f"svc.{d}", d]


def lookup(cluster: Cluster, fqdn: str) -> list[str] | None:
    """The A records of a fully qualified name; None for NXDOMAIN."""
    name = fqdn.rstrip(".").lower()
    domain = cluster.spec.cluster_domain
    if not name.endswith("." + domain):
        return None
    labels = name[: -len(domain) - 1].split(".")
    if len(labels) == 3 and labels[2] == "svc":
        svc = cluster.service(f"{labels[1]}/{labels[0]}")
        if svc is None:
            return None
        if not svc.headless:
            return [svc.cluster_ip]
        ips = []
        for sl in cluster.slices.get(svc.key, []):
            ips += [ep.ip for ep in sl.endpoints if ep.ready and ep.ip not in ips]
        return ips or None
    if len(labels) == 3 and labels[2] == "pod":
        if labels[1] not in cluster.namespaces:
            return None
        try:
            return [str(ipaddress.IPv4Address(labels[0].replace("-", ".")))]
        except ValueError:
            return None
    return None


def queries(cluster: Cluster, name: str, namespace: str) -> list[tuple[str, list[str] | None]]:
    """The queries a pod's resolver sends, in order, with each answer, until one answers."""
    if name.endswith("."):
        candidates = [name]
    else:
        expanded = [f"{name}.{s}." for s in search_list(cluster, namespace)]
        candidates = expanded + [name + "."] if name.count(".") < NDOTS else \
            [name + "."] + expanded
    out = []
    for q in candidates:
        answer = lookup(cluster, q)
        out.append((q, answer))
        if answer:
            break
    return out


def resolve_name(cluster: Cluster, name: str, namespace: str) -> list[str]:
    asked = queries(cluster, name, namespace)
    return asked[-1][1] or [] if asked else []
