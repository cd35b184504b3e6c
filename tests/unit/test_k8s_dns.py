"""Names as CoreDNS's kubernetes plugin answers them, through a pod's search list; and
the model's sharing of tables between nodes that restored the same payload."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from netlab import ops as O
from netlab.backends.model import ModelBackend
from netlab.errors import CommandError
from netlab.k8s.cluster import load_cluster
from netlab.k8s.dns import lookup, queries, resolve_name
from netlab.model import World
from netlab.netfilter.restore import iptables_save

CLUSTER = """\
netlab: 1
kind: Cluster
name: dns
nodes: [{name: node1, ip: 192.168.1.11}]
clusterDomain: example.internal
"""

MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec: {containers: [{name: c, image: x, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: shop, labels: {app: db}, annotations: {netlab.io/ready: "false"}}
spec: {containers: [{name: c, image: x, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80}]}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("dns")
    (d / "cluster.yaml").write_text(CLUSTER)
    (d / "m.yaml").write_text(textwrap.dedent(MANIFESTS))
    return load_cluster([str(d)])


def test_service_a_record_is_the_cluster_ip(cluster):
    web = cluster.service("shop/web")
    assert lookup(cluster, "web.shop.svc.example.internal.") == [web.cluster_ip]
    assert lookup(cluster, "nope.shop.svc.example.internal.") is None


def test_headless_service_answers_its_ready_pods(cluster):
    db0 = cluster.pod("shop/db-0")
    assert lookup(cluster, "db.shop.svc.example.internal") == [db0.ip]


def test_pod_records_are_the_dashed_address(cluster):
    assert lookup(cluster, "10-244-1-7.shop.pod.example.internal.") == ["10.244.1.7"]
    assert lookup(cluster, "10-244-1-7.nowhere.pod.example.internal.") is None


def test_search_list_and_ndots(cluster):
    d = "example.internal"
    asked = queries(cluster, "web", "shop")
    assert [q for q, _ in asked] == [f"web.shop.svc.{d}."]
    asked = queries(cluster, "web.shop", "default")
    assert [q for q, a in asked] == [f"web.shop.default.svc.{d}.", f"web.shop.svc.{d}."]
    assert asked[-1][1] == [cluster.service("shop/web").cluster_ip]
    # From another namespace a bare name is not found: every search domain, then as is.
    asked = queries(cluster, "web", "default")
    assert [q for q, _ in asked] == [f"web.default.svc.{d}.", f"web.svc.{d}.", f"web.{d}.",
                                     "web."]
    assert resolve_name(cluster, "web", "default") == []
    # An absolute name is asked once, as it is.
    assert [q for q, _ in queries(cluster, f"web.shop.svc.{d}.", "default")] == \
        [f"web.shop.svc.{d}."]


def test_kube_dns_is_the_tenth_address_and_resolv_conf_points_at_it(cluster):
    from netlab.k8s.kubelet import resolv_conf

    assert cluster.dns_ip == "10.96.0.10"
    assert cluster.service("kube-system/kube-dns").cluster_ip == "10.96.0.10"
    assert resolv_conf(cluster, cluster.pod("shop/db-0")) == (
        "search shop.svc.example.internal svc.example.internal example.internal\n"
        "nameserver 10.96.0.10\noptions ndots:5\n")


# --- the model shares the tables one restore made -------------------------------------------

PAYLOAD = "*filter\n:X - [0:0]\n-A INPUT -j X\n-A X -s 10.0.0.1/32 -j DROP\nCOMMIT\n"


def two_nodes() -> ModelBackend:
    b = ModelBackend(World())
    b.apply(O.AddNode("a"))
    b.apply(O.AddNode("b"))
    return b


def test_the_same_payload_on_the_same_tables_gives_shared_tables_that_change_apart():
    b = two_nodes()
    b.apply(O.IptablesRestore("a/root", PAYLOAD, noflush=True))
    b.apply(O.IptablesRestore("b/root", PAYLOAD, noflush=True))
    a, n = b.world.namespaces["a/root"], b.world.namespaces["b/root"]
    assert a.tables["filter"] is n.tables["filter"]
    # A later change on one node does not show on the other.
    b.apply(O.IptablesRestore("b/root", "*filter\n-A X -j ACCEPT\nCOMMIT\n", noflush=True))
    assert "-A X -j ACCEPT" in iptables_save(n) and "-A X -j ACCEPT" not in iptables_save(a)
    b.apply(O.IptablesRestore("a/root", PAYLOAD, noflush=True))     # applied again: on top
    assert iptables_save(a).count("-A INPUT -j X") == 2


def test_a_refused_payload_is_refused_on_every_node():
    b = two_nodes()
    bad = "*filter\n-A INPUT -j NOWHERE\nCOMMIT\n"
    for node in ("a", "b"):
        with pytest.raises(CommandError):
            b.apply(O.IptablesRestore(f"{node}/root", bad, noflush=True))
        assert "filter" not in b.world.namespaces[f"{node}/root"].tables
