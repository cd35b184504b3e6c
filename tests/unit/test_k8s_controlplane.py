"""The control plane's output pinned whole: pod names, placement, pod and Service IPs,
NodePorts and EndpointSlices of two clusters, compared with what the code gave before it
was made fast (tests/data/k8s/controlplane/expected.json, written by the earlier,
straightforward implementation with ``python tests/unit/test_k8s_controlplane.py``).

The YAML cluster has a bit of everything: Deployments (one with a second template
behind the same Service), a ReplicaSet and a DaemonSet with node selectors, a
hostNetwork DaemonSet, pods with nodeName and nodeSelector, a not-ready pod, a node
with a podCIDR of its own, named and numbered target ports that resolve differently per
pod (several slices a Service), headless, selectorless, NodePort and LoadBalancer
(externalTrafficPolicy Local) Services, an asked-for ClusterIP and NodePort. The
synthetic one is the benchmark's, at a size whose pod ranges cross an octet.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "k8s" / "controlplane"
EXPECTED = DATA / "expected.json"
sys.path.insert(0, str(ROOT / "benchmarks"))


def yaml_cluster():
    from netlab.k8s.cluster import load_cluster

    return load_cluster([str(DATA / "cluster.yaml"), str(DATA / "manifests.yaml")])


def synthetic_cluster():
    from cluster_bench import synthetic

    return synthetic(260, 520, 13)


def whole(cluster) -> dict:
    """Everything the control plane made, as JSON (file paths relative to the data)."""
    text = json.dumps(dataclasses.asdict(cluster), sort_keys=True)
    return json.loads(text.replace(str(DATA), "<data>"))


def compact(cluster) -> dict:
    return {"pods": [[p.key, p.node, p.ip, p.owner, sorted(p.labels.items())]
                     for p in cluster.pods],
            "services": [[s.key, s.cluster_ip, [dataclasses.astuple(p) for p in s.ports]]
                         for s in cluster.services],
            "slices": {k: [[sl.name, sl.ports, [dataclasses.astuple(e) for e in sl.endpoints]]
                           for sl in v] for k, v in cluster.slices.items()}}


def computed() -> dict:
    return json.loads(json.dumps({"yaml": whole(yaml_cluster()),
                                  "synthetic": compact(synthetic_cluster())}))


def test_the_yaml_cluster_is_built_as_before():
    assert whole(yaml_cluster()) == json.loads(EXPECTED.read_text())["yaml"]


def test_the_benchmark_cluster_is_built_as_before():
    got = json.loads(json.dumps(compact(synthetic_cluster())))
    want = json.loads(EXPECTED.read_text())["synthetic"]
    assert got["pods"] == want["pods"]
    assert got["services"] == want["services"]
    assert got["slices"] == want["slices"]


def test_pods_and_services_are_found_by_key():
    c = yaml_cluster()
    for pod in c.pods:
        assert c.pod(pod.key) is pod
    for svc in c.services:
        assert c.service(svc.key) is svc
    assert c.pod("shop/nope") is None and c.service("default/nope") is None
    assert c.pod("default/sick") is None          # sick is in shop
    for node in c.nodes:
        assert c.node(node.name) is node and c.find_node(node.name) is node
    assert c.find_node("node9") is None


def test_a_workload_first_pod_is_the_first_placed():
    c = yaml_cluster()
    owners = {p.owner for p in c.pods if p.owner}
    assert len(owners) == 6
    for owner in owners:
        assert c.first_pod_of(owner) is next(p for p in c.pods if p.owner == owner)
    assert c.first_pod_of("Deployment shop/nope") is None


def test_lookups_follow_changes_to_the_lists():
    c = yaml_cluster()
    assert c.pod("shop/client") is not None
    extra = dataclasses.replace(c.pod("shop/client"), name="late")
    c.pods.append(extra)
    assert c.pod("shop/late") is extra
    c.pods = [p for p in c.pods if p.name != "client"]
    assert c.pod("shop/client") is None
    extra.name = "renamed"
    assert c.pod("shop/late") is None and c.pod("shop/renamed") is extra


if __name__ == "__main__":
    EXPECTED.write_text(json.dumps(computed(), sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {EXPECTED}")
