"""Who can reach whom: the pod × pod truth table, traced through the World.

Every cell is a real trace (the same dataplane `netlab trace` uses) from the
source pod's namespace to the destination pod's address; it is true when the
sender would see its connection established (or its ping answered). The
traces leave the World's conntrack tables as they were.
"""

from __future__ import annotations

from netlab.dataplane.engine import trace
from netlab.k8s.cluster import Cluster
from netlab.k8s.kubelet import pod_netns_key
from netlab.k8s.objects import Pod

SYSTEM = ("kube-system",)


def pods_of(cluster: Cluster, namespaces: list[str] | None = None) -> list[Pod]:
    return [p for p in cluster.pods if not p.host_network and p.ip
            and (p.namespace in namespaces if namespaces else p.namespace not in SYSTEM)]


def probe(cluster: Cluster, world, src: Pod, dst: Pod, proto: str, port: int | None):
    return trace(world, pod_netns_key(src), dst.ip, proto=proto,
                 dport=port if proto != "icmp" else None, record=False)


def matrix(cluster: Cluster, world, proto: str = "tcp", port: int | None = 80,
           namespaces: list[str] | None = None) -> dict[str, dict[str, bool]]:
    pods = pods_of(cluster, namespaces)
    out: dict[str, dict[str, bool]] = {}
    for src in pods:
        out[src.key] = {dst.key: probe(cluster, world, src, dst, proto, port).outcome == "success"
                        for dst in pods}
    return out


def explain(cluster: Cluster, world, src: Pod, dst: Pod, proto: str, port: int | None
            ) -> list[str]:
    """Why a cell is what it is: the policy rules the packet met, and the verdict."""
    tr = probe(cluster, world, src, dst, proto, port)
    lines = []
    for i, path in enumerate(tr.paths):
        head = f"{src.key} → {dst.key} ({proto}{'/' + str(port) if port else ''}): "
        head += f"{path.outcome} ({path.verdict})"
        if len(tr.paths) > 1:
            head = f"path {i + 1} p={path.probability:.3f}: " + head
        lines.append(head)
        for hop in path.hops:
            if hop.event == "netfilter" and hop.chain and hop.chain.startswith("NETPOL") \
                    and hop.rule and ("MARK --set-xmark 0x10000/0x10000" in hop.rule
                                      or "-j DROP" in hop.rule):
                lines.append(f"  {hop.node}: {hop.rule}")
        if path.diagnosis:
            lines.append(f"  {path.diagnosis}")
    return lines
