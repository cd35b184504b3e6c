"""Traces the viz tests render, all traced by the engine: bundled labs (lab 09 for a
VXLAN tunnel) and a vxlan cluster built by netlab.k8s."""

from __future__ import annotations

from netlab.dataplane.engine import trace
from netlab.labs import find_lab, load_lab, run_lab
from netlab.trace import Trace


def lab_world(ref: str):
    lab = load_lab(find_lab(ref))
    return run_lab(lab, check_expect=False, keep_going=True).world, lab.nodes[0]


def lab_trace(ref: str, source: str, to: str, proto: str = "icmp", port: int | None = None):
    world, node = lab_world(ref)
    ns = world.resolve(source, default_node=node)
    return world, trace(world, ns.key, to, proto=proto, dport=port)


def vxlan_case() -> tuple[object, Trace]:
    """Lab 09 after its 4th step (a VTEP on each node, before the firewall cuts the
    tunnel): red on node1 pings blue on node2 through vxlan0, and the echo reply comes
    back — as the engine traces it."""
    lab = load_lab(find_lab("09"))
    world = run_lab(lab, until=4, check_expect=False, keep_going=True).world
    return world, trace(world, "node1/red", "10.244.2.2")


def vxlan_cluster_case() -> tuple[object, Trace, object]:
    """A flannel vxlan cluster (the shop cluster, network: vxlan) built by netlab.k8s: a
    pod on node1 pings a pod on node2 through flannel.1. (world, trace, cluster)"""
    import tempfile
    from pathlib import Path as FsPath

    from netlab.k8s.build import build_model
    from netlab.k8s.cluster import load_cluster
    from netlab.k8s.kubelet import pod_netns_key

    shop = FsPath(__file__).parents[1] / "data" / "k8s" / "shop"
    with tempfile.TemporaryDirectory() as tmp:
        path = FsPath(tmp) / "cluster.yaml"
        path.write_text((shop / "cluster.yaml").read_text().replace("network: host-gw",
                                                                    "network: vxlan"))
        cluster = load_cluster([str(path), str(shop / "shop.yaml")])
    world = build_model(cluster).world
    pods = [p for p in cluster.pods if not p.host_network]
    src = next(p for p in pods if p.node == "node1")
    dst = next(p for p in pods if p.node == "node2")
    return world, trace(world, pod_netns_key(src), dst.ip), cluster


def service_fork() -> tuple[object, Trace]:
    """A ClusterIP with three endpoints: the trace forks into three paths at 1/3 each."""
    from tests.unit.test_netfilter_dataplane import kube_service, router_lab

    b = router_lab()
    kube_service(b)
    return b.world, trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80)


# name -> () -> (world, trace): the traces the golden files pin
CASES = {
    "lab05-masquerade": lambda: lab_trace("05", "red", "192.168.1.3"),
    "lab06-published-port": lambda: lab_trace("06", "node2", "192.168.1.2", "tcp", 8080),
    "lab06-dropped": lambda: lab_trace("06", "node2", "172.17.0.2", "tcp", 22),
    "lab02-no-route": lambda: lab_trace("02", "red", "10.9.9.9"),
    "service-fork": service_fork,
    "vxlan": vxlan_case,
}
