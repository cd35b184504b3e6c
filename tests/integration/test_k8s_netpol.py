"""NetworkPolicy truth tables in the style of the Kubernetes e2e suite
(test/e2e/network/netpol): namespaces x, y, z with pods a, b, c in each, serving
TCP and UDP on ports 80 and 81, spread round robin over three nodes; each case
applies policies and compares the whole 9 x 9 reachability matrix, probed by
tracing packets through the nodes' iptables rules.

A pod reaching itself goes over its own loopback and is always allowed (the
suite's AllowLoopback).
"""

from __future__ import annotations

import fnmatch
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netlab.k8s.build import build_model
from netlab.k8s.cluster import load_cluster
from netlab.k8s.reach import explain, matrix

E2E = Path(__file__).parents[1] / "data" / "k8s" / "e2e"
PODS = [f"{ns}/{p}" for ns in "xyz" for p in "abc"]


class Truth:
    """A reachability matrix: start from a default, then set cells by pattern."""

    def __init__(self, default: bool = True):
        self.cells = {s: {d: default or s == d for d in PODS} for s in PODS}

    def expect(self, frm: str = "*", to: str = "*", ok: bool = False) -> "Truth":
        for s in PODS:
            for d in PODS:
                if fnmatch.fnmatch(s, frm) and fnmatch.fnmatch(d, to) and s != d:
                    self.cells[s][d] = ok
        return self


def table(cells: dict[str, dict[str, bool]]) -> str:
    lines = ["       " + " ".join(f"{d:>4}" for d in PODS)]
    for s in PODS:
        lines.append(f"{s:>6} " + " ".join(f"{'.' if cells[s][d] else 'X':>4}" for d in PODS))
    return "\n".join(lines)


@dataclass
class Case:
    id: str
    policies: str
    expect: Truth
    proto: str = "tcp"
    port: int | None = 80
    extra: list = field(default_factory=list)     # more (proto, port, Truth) probes


def policy(ns: str, name: str, spec: str) -> str:
    return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: "
            f"{{name: {name}, namespace: {ns}}}\nspec:\n" + textwrap.indent(textwrap.dedent(spec),
                                                                            "  "))


CASES = [
    Case("no-policies-everything-reaches-everything", "", Truth()),
    Case("default-deny-ingress", policy("x", "deny-ingress", """\
        podSelector: {}
        policyTypes: [Ingress]
        """), Truth().expect(to="x/*", ok=False)),
    Case("default-deny-egress", policy("x", "deny-egress", """\
        podSelector: {}
        policyTypes: [Egress]
        """), Truth().expect(frm="x/*", ok=False)),
    Case("default-deny-all-in-a-namespace", policy("x", "deny-all", """\
        podSelector: {}
        policyTypes: [Ingress, Egress]
        """), Truth().expect(frm="x/*", ok=False).expect(to="x/*", ok=False)),
    Case("allow-all-ingress-overrides-default-deny", policy("x", "deny", """\
        podSelector: {}
        policyTypes: [Ingress]
        """) + "---\n" + policy("x", "allow-all", """\
        podSelector: {}
        ingress: [{}]
        """), Truth()),
    Case("ingress-from-pod-selector-in-the-same-namespace", policy("x", "allow-b", """\
        podSelector: {matchLabels: {pod: a}}
        ingress:
          - from: [{podSelector: {matchLabels: {pod: b}}}]
        """), Truth().expect(to="x/a", ok=False).expect(frm="x/b", to="x/a", ok=True)),
    Case("ingress-from-namespace-selector", policy("x", "allow-ns-y", """\
        podSelector: {matchLabels: {pod: a}}
        ingress:
          - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
        """), Truth().expect(to="x/a", ok=False).expect(frm="y/*", to="x/a", ok=True)),
    Case("ingress-from-pod-and-namespace-selector-in-one-peer", policy("x", "allow-yb", """\
        podSelector: {matchLabels: {pod: a}}
        ingress:
          - from:
              - namespaceSelector: {matchLabels: {ns: y}}
                podSelector: {matchLabels: {pod: b}}
        """), Truth().expect(to="x/a", ok=False).expect(frm="y/b", to="x/a", ok=True)),
    Case("ingress-from-pod-or-namespace-selector-two-peers", policy("x", "allow-b-or-y", """\
        podSelector: {matchLabels: {pod: a}}
        ingress:
          - from:
              - namespaceSelector: {matchLabels: {ns: y}}
              - podSelector: {matchLabels: {pod: b}}
        """), Truth().expect(to="x/a", ok=False).expect(frm="y/*", to="x/a", ok=True)
        .expect(frm="x/b", to="x/a", ok=True)),
    Case("namespace-selector-match-expressions", policy("x", "not-x-or-y", """\
        podSelector: {matchLabels: {pod: a}}
        ingress:
          - from:
              - namespaceSelector:
                  matchExpressions: [{key: ns, operator: NotIn, values: [x, y]}]
        """), Truth().expect(to="x/a", ok=False).expect(frm="z/*", to="x/a", ok=True)),
    Case("pod-selector-match-expressions-exists", policy("x", "any-pod-label", """\
        podSelector:
          matchExpressions: [{key: pod, operator: In, values: [a, b]}]
        ingress:
          - from:
              - podSelector:
                  matchExpressions: [{key: pod, operator: Exists}]
                namespaceSelector:
                  matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [z]}]
        """), Truth().expect(to="x/a", ok=False).expect(to="x/b", ok=False)
        .expect(frm="z/*", to="x/a", ok=True).expect(frm="z/*", to="x/b", ok=True)),
    Case("ingress-port-number-only-81", policy("x", "allow-81", """\
        podSelector: {matchLabels: {pod: a}}
        ingress:
          - ports: [{port: 81, protocol: TCP}]
        """), Truth().expect(to="x/a", ok=False), extra=[("tcp", 81, Truth())]),
    Case("ingress-named-port", policy("x", "allow-named-81", """\
        podSelector: {matchLabels: {pod: a}}
        ingress:
          - ports: [{port: serve-81-tcp}]
        """), Truth().expect(to="x/a", ok=False),
        extra=[("tcp", 81, Truth()), ("udp", 81, Truth().expect(to="x/a", ok=False))]),
    Case("ingress-port-range-with-end-port", policy("x", "allow-80-81", """\
        podSelector: {matchLabels: {pod: a}}
        ingress:
          - ports: [{port: 79, endPort: 80, protocol: TCP}]
        """), Truth(), extra=[("tcp", 81, Truth().expect(to="x/a", ok=False))]),
    Case("udp-only-allowed", policy("x", "udp-80", """\
        podSelector: {}
        ingress:
          - ports: [{port: 80, protocol: UDP}]
        """), Truth().expect(to="x/*", ok=False), extra=[("udp", 80, Truth())]),
    Case("egress-to-ip-block-with-except", "", Truth()),   # filled in below (needs addresses)
    Case("egress-and-ingress-both-required", policy("x", "a-egress-to-y", """\
        podSelector: {matchLabels: {pod: a}}
        policyTypes: [Egress]
        egress:
          - to: [{namespaceSelector: {matchLabels: {ns: y}}}]
        """) + "---\n" + policy("y", "b-only-from-z", """\
        podSelector: {matchLabels: {pod: b}}
        ingress:
          - from: [{namespaceSelector: {matchLabels: {ns: z}}}]
        """), Truth().expect(frm="x/a", ok=False).expect(frm="x/a", to="y/*", ok=True)
        .expect(to="y/b", ok=False).expect(frm="z/*", to="y/b", ok=True)),
    Case("policies-are-ored", policy("x", "from-xb", """\
        podSelector: {matchLabels: {pod: a}}
        ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]
        """) + "---\n" + policy("x", "from-zc", """\
        podSelector: {matchLabels: {pod: a}}
        ingress:
          - from: [{podSelector: {matchLabels: {pod: c}}, namespaceSelector: {matchLabels: {ns: z}}}]
        """), Truth().expect(to="x/a", ok=False).expect(frm="x/b", to="x/a", ok=True)
        .expect(frm="z/c", to="x/a", ok=True)),
    Case("egress-named-port-resolves-on-the-destination", policy("x", "egress-81", """\
        podSelector: {matchLabels: {pod: a}}
        policyTypes: [Egress]
        egress:
          - ports: [{port: serve-81-tcp}]
        """), Truth().expect(frm="x/a", ok=False), extra=[("tcp", 81, Truth())]),
]


def build(tmp_path: Path, policies: str):
    (tmp_path / "policies.yaml").write_text(policies or "")
    cluster = load_cluster([str(E2E), str(tmp_path / "policies.yaml")])
    return cluster, build_model(cluster).world


def check(cluster, world, proto, port, truth: Truth) -> None:
    got = matrix(cluster, world, proto, port)
    if got != truth.cells:
        wrong = [f"{s} → {d}: expected {truth.cells[s][d]}, got {got[s][d]}"
                 for s in PODS for d in PODS if got[s][d] != truth.cells[s][d]]
        s, d = wrong[0].split(":")[0].split(" → ")
        why = explain(cluster, world, cluster.pod(s), cluster.pod(d), proto, port)
        pytest.fail(f"{proto}/{port}:\nexpected\n{table(truth.cells)}\ngot\n{table(got)}\n"
                    + "\n".join(wrong[:10]) + "\n" + "\n".join(why))


@pytest.mark.parametrize("case", [c for c in CASES if c.policies or c.id.startswith("no-")],
                         ids=lambda c: c.id)
def test_truth_table(tmp_path, case):
    cluster, world = build(tmp_path, case.policies)
    assert {p.node for p in cluster.pods if p.namespace == "x"} == {"node1", "node2", "node3"}
    check(cluster, world, case.proto, case.port, case.expect)
    for proto, port, truth in case.extra:
        check(cluster, world, proto, port, truth)


def test_egress_to_ip_block_with_except(tmp_path):
    cluster, _ = build(tmp_path, "")
    yb = cluster.pod("y/b").ip
    case = policy("x", "egress-cidr", f"""\
        podSelector: {{matchLabels: {{pod: a}}}}
        policyTypes: [Egress]
        egress:
          - to: [{{ipBlock: {{cidr: 10.244.0.0/16, except: [{yb}/32]}}}}]
        """)
    cluster, world = build(tmp_path, case)
    check(cluster, world, "tcp", 80, Truth().expect(frm="x/a", to="y/b", ok=False))


def test_ingress_ip_block_covers_pods_by_address(tmp_path):
    cluster, _ = build(tmp_path, "")
    node2 = next(n for n in cluster.nodes if n.name == "node2")
    case = policy("y", "from-node2-range", f"""\
        podSelector: {{}}
        ingress:
          - from: [{{ipBlock: {{cidr: {node2.pod_cidr}}}}}]
        """)
    cluster, world = build(tmp_path, case)
    on_node2 = [p.key for p in cluster.pods if p.node == "node2" and p.namespace in "xyz"]
    truth = Truth().expect(to="y/*", ok=False)
    for src in on_node2:
        truth.expect(frm=src, to="y/*", ok=True)
    check(cluster, world, "tcp", 80, truth)


def test_explain_names_the_policy_rule_that_allowed_and_the_pod_nobody_allowed(tmp_path):
    cluster, world = build(tmp_path, CASES[5].policies)          # x/a only from x/b
    allowed = "\n".join(explain(cluster, world, cluster.pod("x/b"), cluster.pod("x/a"), "tcp", 80))
    assert "success" in allowed and '"x/allow-b ingress[0]"' in allowed
    denied = "\n".join(explain(cluster, world, cluster.pod("y/c"), cluster.pod("x/a"), "tcp", 80))
    assert "timeout (dropped)" in denied
    assert '"x/a: no NetworkPolicy allows this ingress"' in denied


def test_the_reply_of_an_allowed_connection_is_not_new_egress(tmp_path):
    cluster, world = build(tmp_path, CASES[2].policies)          # x: deny all egress
    # y/a → x/a connects: x/a's SYN-ACK goes out although x/a may send nothing new.
    cells = matrix(cluster, world, "tcp", 80)
    assert cells["y/a"]["x/a"] is True and cells["x/a"]["y/a"] is False


def test_policies_see_the_pod_behind_a_service_after_kube_proxys_dnat(tmp_path):
    services = """\
apiVersion: v1
kind: Service
metadata: {name: to-b, namespace: y}
spec: {selector: {pod: b}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: to-c, namespace: y}
spec: {selector: {pod: c}, ports: [{port: 80}]}
---
"""
    egress = policy("x", "a-to-yb", """\
        podSelector: {matchLabels: {pod: a}}
        policyTypes: [Egress]
        egress:
          - to: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]
        """)
    cluster, world = build(tmp_path, services + egress)
    from netlab.dataplane.engine import trace
    from netlab.k8s.kubelet import pod_netns_key

    src = pod_netns_key(cluster.pod("x/a"))
    ok = trace(world, src, cluster.service("y/to-b").cluster_ip, proto="tcp", dport=80)
    no = trace(world, src, cluster.service("y/to-c").cluster_ip, proto="tcp", dport=80)
    assert [p.outcome for p in ok.paths] == ["success"]
    assert [(p.verdict, p.outcome) for p in no.paths] == [("dropped", "timeout")]
    drop = next(h for h in no.paths[0].hops if h.rule and "-j DROP" in h.rule)
    assert "x/a: no NetworkPolicy allows this egress" in drop.rule
