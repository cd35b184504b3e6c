"""Cluster file and manifests: reading, field-path errors, what the control plane fills in."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from netlab.errors import LabError
from netlab.k8s.cluster import build_cluster, load_cluster
from netlab.k8s.manifests import load

SHOP = Path(__file__).parents[1] / "data" / "k8s" / "shop"

CLUSTER = """\
netlab: 1
kind: Cluster
name: t
nodes:
  - {name: node1, ip: 192.168.1.11}
  - {name: node2, ip: 192.168.1.12, labels: {disk: ssd}}
  - {name: node3, ip: 192.168.1.13}
"""


def cluster_of(tmp_path: Path, manifests: str, cluster: str = CLUSTER):
    (tmp_path / "cluster.yaml").write_text(cluster)
    (tmp_path / "m.yaml").write_text(textwrap.dedent(manifests))
    return load_cluster([str(tmp_path / "cluster.yaml"), str(tmp_path / "m.yaml")])


def error_of(tmp_path: Path, manifests: str, cluster: str = CLUSTER) -> str:
    with pytest.raises(LabError) as err:
        cluster_of(tmp_path, manifests, cluster)
    return str(err.value)


DEPLOY = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend}}
    spec:
      containers:
        - name: web
          image: nginx
          ports:
            - containerPort: 80
"""


def test_a_directory_of_multi_document_files_loads_and_unknown_kinds_are_listed():
    spec, manifests = load([str(SHOP)])
    assert [n.name for n in spec.nodes] == ["node1", "node2"]
    assert spec.network == "host-gw" and spec.cluster_domain == "cluster.local"
    assert [w.name for w in manifests.workloads] == ["frontend", "backend"]
    assert len(manifests.ignored) == 1 and "ConfigMap settings" in manifests.ignored[0]


def test_each_node_gets_a_slash_24_in_node_order_counting_from_one():
    c = load_cluster([str(SHOP)])
    assert [(n.name, n.pod_cidr, n.gateway) for n in c.nodes] == [
        ("node1", "10.244.1.0/24", "10.244.1.1"), ("node2", "10.244.2.0/24", "10.244.2.1")]


def test_deployment_expands_into_replicaset_named_pods_with_the_template_hash(tmp_path):
    c = cluster_of(tmp_path, DEPLOY)
    pods = [p for p in c.pods if p.namespace == "shop"]
    assert len(pods) == 3
    rs = {p.name.rsplit("-", 1)[0] for p in pods}
    assert len(rs) == 1 and rs.pop().startswith("frontend-")
    for p in pods:
        assert p.labels["app"] == "frontend"
        assert p.labels["pod-template-hash"] == p.name.split("-")[1]
        assert len(p.name.rsplit("-", 1)[1]) == 5
        assert p.owner == "Deployment shop/frontend"
    assert len({p.name for p in pods}) == 3
    # Deterministic: the same files give the same names and addresses.
    again = cluster_of(tmp_path, DEPLOY)
    assert [(p.key, p.node, p.ip) for p in again.pods] == [(p.key, p.node, p.ip) for p in c.pods]


def test_placement_round_robin_follows_node_order_after_the_system_pods(tmp_path):
    c = cluster_of(tmp_path, DEPLOY)
    # coredns x2 go to node1, node2; the three frontends continue at node3.
    assert [p.node for p in c.pods] == ["node1", "node2", "node3", "node1", "node2"]


def test_node_name_and_node_selector_decide_before_round_robin(tmp_path):
    c = cluster_of(tmp_path, """\
        apiVersion: v1
        kind: Pod
        metadata: {name: pinned}
        spec: {nodeName: node3, containers: [{name: c, image: x}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: fast}
        spec: {nodeSelector: {disk: ssd}, containers: [{name: c, image: x}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: any}
        spec: {containers: [{name: c, image: x}]}
        """)
    where = {p.name: (p.node, p.ip) for p in c.pods if p.namespace == "default"}
    assert where == {"pinned": ("node3", "10.244.3.2"), "fast": ("node2", "10.244.2.3"),
                     "any": ("node3", "10.244.3.3")}


def test_daemonset_puts_one_pod_on_each_matching_node(tmp_path):
    c = cluster_of(tmp_path, """\
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: agent, namespace: kube-system}
        spec:
          selector: {matchLabels: {app: agent}}
          template:
            metadata: {labels: {app: agent}}
            spec:
              nodeSelector: {kubernetes.io/os: linux}
              containers: [{name: a, image: x}]
        """)
    agents = [p for p in c.pods if p.labels.get("app") == "agent"]
    assert sorted(p.node for p in agents) == ["node1", "node2", "node3"]


def test_host_local_gives_addresses_in_order_after_the_gateway():
    c = load_cluster([str(SHOP)])
    by_node: dict[str, list[str]] = {}
    for p in c.pods:
        by_node.setdefault(p.node, []).append(p.ip)
    assert by_node == {"node1": ["10.244.1.2", "10.244.1.3"],
                       "node2": ["10.244.2.2", "10.244.2.3", "10.244.2.4"]}


def test_service_ips_kubernetes_first_kube_dns_tenth_then_in_order():
    c = load_cluster([str(SHOP)])
    assert [(s.key, s.cluster_ip) for s in c.services] == [
        ("default/kubernetes", "10.96.0.1"), ("kube-system/kube-dns", "10.96.0.10"),
        ("shop/backend", "10.96.0.11"), ("shop/frontend", "10.96.0.12")]
    assert c.dns_ip == "10.96.0.10"
    frontend = c.service("shop/frontend")
    assert frontend.ports[0].node_port == 30080


def test_node_ports_are_allocated_from_30000_skipping_the_ones_asked_for(tmp_path):
    c = cluster_of(tmp_path, """\
        apiVersion: v1
        kind: Service
        metadata: {name: a}
        spec: {type: NodePort, selector: {app: a}, ports: [{port: 80}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: b}
        spec: {type: NodePort, selector: {app: b}, ports: [{port: 80, nodePort: 30001}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: c}
        spec: {type: NodePort, selector: {app: c}, ports: [{name: x, port: 80}, {name: y, port: 81}]}
        """)
    ports = {s.name: [p.node_port for p in s.ports] for s in c.services if s.namespace == "default"}
    assert ports == {"kubernetes": [None], "a": [30000], "b": [30001], "c": [30002, 30003]}


def test_endpoint_slices_resolve_named_ports_per_pod_and_keep_readiness(tmp_path):
    c = cluster_of(tmp_path, """\
        apiVersion: v1
        kind: Pod
        metadata: {name: new, labels: {app: api}}
        spec: {containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: old, labels: {app: api}}
        spec: {containers: [{name: c, image: x, ports: [{name: http, containerPort: 9090}]}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: sick, labels: {app: api}, annotations: {netlab.io/ready: "false"}}
        spec: {containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: other, labels: {app: api}}
        spec: {containers: [{name: c, image: x}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: api}
        spec:
          selector: {app: api}
          ports: [{name: web, port: 80, targetPort: http}]
        """)
    svc = c.service("default/api")
    slices = c.slices[svc.key]
    assert sorted(tuple(sl.ports) for sl in slices) == [(), (("web", "TCP", 8080),),
                                                      (("web", "TCP", 9090),)]
    eps = sorted((ep.pod, ep.ready, port) for ep, port in c.endpoints(svc, svc.ports[0]))
    assert eps == [("default/new", True, 8080), ("default/old", True, 9090),
                   ("default/sick", False, 8080)]


def test_headless_and_selectorless_services(tmp_path):
    c = cluster_of(tmp_path, """\
        apiVersion: v1
        kind: Service
        metadata: {name: db}
        spec: {clusterIP: None, selector: {app: db}, ports: [{port: 3306}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: outside}
        spec: {ports: [{port: 443}]}
        """)
    assert c.service("default/db").headless and c.service("default/db").cluster_ip == "None"
    assert c.slices["default/outside"] == []


BAD = [
    ("containerPort: http", "ports:\n            - containerPort: 80",
     "ports:\n            - containerPort: http",
     "Deployment shop/frontend: spec.template.spec.containers[0].ports[0].containerPort: "
     "expected an integer, not 'http'"),
    ("replicas", "replicas: 3", "replicas: three",
     "Deployment shop/frontend: spec.replicas: expected an integer, not 'three'"),
    ("selector mismatch", "selector: {matchLabels: {app: frontend}}",
     "selector: {matchLabels: {app: web}}",
     "Deployment shop/frontend: spec.template.metadata.labels: `selector` does not match template "
     "`labels`"),
    ("protocol", "- containerPort: 80", "- {containerPort: 80, protocol: tcp}",
     "spec.template.spec.containers[0].ports[0].protocol: unsupported value 'tcp': expected one "
     "of TCP, UDP, SCTP"),
    ("unknown field", "replicas: 3", "replica: 3", "Deployment shop/frontend: spec.replica: "
     "unknown field"),
]


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_manifests_name_file_line_object_and_field_path(tmp_path, case):
    _, old, new, message = case
    text = DEPLOY.replace(old, new)
    assert text != DEPLOY
    error = error_of(tmp_path, text)
    assert error.startswith(str(tmp_path / "m.yaml") + ":")
    line = int(error.split(":")[1])
    assert 1 <= line <= text.count("\n") + 1
    assert message in error


def test_the_line_points_at_the_bad_field(tmp_path):
    text = DEPLOY.replace("- containerPort: 80", "- containerPort: http")
    error = error_of(tmp_path, text)
    line = int(error.split(":")[1])
    assert "containerPort: http" in text.splitlines()[line - 1]


@pytest.mark.parametrize("snippet, message", [
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}, "
     "{port: 81}]}\n", "Service default/s: spec.ports[0].name: required when a Service has more "
                       "than one port"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, "
     "targetPort: 'Http'}]}\n", "spec.ports[0].targetPort: 'Http' is not a port number or a "
                                "port name"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: ClusterIP, ports: "
     "[{port: 80, nodePort: 30000}]}\n", "spec.ports[0].nodePort: may not be used when `type` "
                                         "is 'ClusterIP'"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: NodePort, ports: "
     "[{port: 80, nodePort: 80}]}\n", "spec.ports[0].nodePort: 80 is out of range (30000-32767)"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: nope}\nspec: {containers: "
     "[{name: c}]}\n", 'Pod nope/p: metadata.namespace: namespaces "nope" not found'),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: node9, containers: "
     "[{name: c}]}\n", "Pod default/p: spec.nodeName: no node called 'node9'"),
    ("apiVersion: apps/v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n",
     "apiVersion: Pod is read as apiVersion v1, not 'apps/v1'"),
    ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec:\n"
     "  podSelector: {}\n  ingress: [{ports: [{port: 80, endPort: 70}]}]\n",
     "NetworkPolicy default/n: spec.ingress[0].ports[0].endPort: must be at least port (80)"),
    ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec:\n"
     "  podSelector: {matchExpressions: [{key: a, operator: In}]}\n",
     "spec.podSelector.matchExpressions[0].values: must be non-empty when operator is In"),
    ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec:\n"
     "  podSelector: {}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/8]}}]}]\n",
     "spec.egress[0].to[0].ipBlock.except[0]: 11.0.0.0/8 must be a strict subset of 10.0.0.0/8"),
])
def test_invalid_objects_give_the_field_path(tmp_path, snippet, message):
    assert message in error_of(tmp_path, snippet)


@pytest.mark.parametrize("edit, message", [
    (("ip: 192.168.1.12", "ip: 192.168.1.300"), "Cluster: nodes[1].ip: expected an IPv4 address"),
    (("name: t", "name: t\nnetwork: calico"), "Cluster: network: unsupported value 'calico'"),
    (("name: t", "name: t\nserviceCIDR: 10.244.0.0/20"), "serviceCIDR: 10.244.0.0/20 overlaps"),
    (("name: node3", "name: node2"), "nodes[2].name: two nodes are called 'node2'"),
])
def test_bad_cluster_files(tmp_path, edit, message):
    cluster = CLUSTER.replace(*edit)
    assert cluster != CLUSTER
    assert message in error_of(tmp_path, "", cluster)


def test_a_cluster_file_is_required(tmp_path):
    (tmp_path / "m.yaml").write_text(DEPLOY)
    with pytest.raises(LabError, match="no cluster file"):
        load([str(tmp_path / "m.yaml")])


def test_policy_types_default_as_the_api_server_sets_them(tmp_path):
    c = cluster_of(tmp_path, """\
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: in-only}
        spec: {podSelector: {}}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: both}
        spec: {podSelector: {}, egress: [{}]}
        """)
    assert [(p.name, p.policy_types) for p in c.policies] == [
        ("in-only", ("Ingress",)), ("both", ("Ingress", "Egress"))]


def test_build_cluster_accepts_parsed_objects():
    spec, manifests = load([str(SHOP)])
    c = build_cluster(spec, manifests)
    assert {p.namespace for p in c.pods} == {"kube-system", "shop"}
