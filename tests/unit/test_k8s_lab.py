"""Labs whose machines are a cluster (`cluster:` with inline manifests)."""

from __future__ import annotations

import pytest

from netlab.errors import LabError
from netlab.labs import parse_lab, run_lab

LAB = """\
netlab: 1
name: c
title: A cluster lab
cluster:
  nodes:
    - {name: node1, ip: 192.168.1.11}
    - {name: node2, ip: 192.168.1.12}
  dns: false
  manifests: |
    apiVersion: v1
    kind: Pod
    metadata: {name: a}
    spec:
      nodeName: node1
      containers: [{name: c, image: x, ports: [{containerPort: 80}]}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: b}
    spec:
      nodeName: node2
      containers: [{name: c, image: x, ports: [{containerPort: 80}]}]
steps:
  - title: a reaches b across the nodes
    explain: host-gw routes
    node: node2
    run: |
      ip route
    expect:
      - reach: {from: node1/default.a, to: 10.244.2.2, proto: tcp, port: 80}
      - output: {run: "ip route", contains: "10.244.1.0/24 via 192.168.1.11 dev eth0"}
"""


def test_a_cluster_lab_builds_the_cluster_and_runs_its_steps():
    lab = parse_lab(LAB, "c.yaml")
    assert lab.nodes == ["node1", "node2"] and lab.lans == []
    result = run_lab(lab)
    assert all(e.ok for s in result.steps for e in s.expect), result.steps


def test_errors_in_the_manifests_carry_the_lab_files_lines():
    text = LAB.replace("containerPort: 80}]}]\n    ---", "containerPort: eighty}]}]\n    ---")
    with pytest.raises(LabError) as err:
        parse_lab(text, "c.yaml")
    message = str(err.value)
    assert message.startswith("c.yaml:15: Pod default/a: spec.containers[0].ports[0]"), message
    assert "containerPort: eighty" in text.splitlines()[14]


@pytest.mark.parametrize("extra, message", [
    ("nodes: [node1]\n", "'nodes' and 'cluster' exclude each other"),
    ("lan: {nodes: [node1, node2]}\n", "'lan' and 'cluster' exclude each other"),
])
def test_a_cluster_names_its_own_nodes(extra, message):
    with pytest.raises(LabError, match=message):
        parse_lab(LAB.replace("cluster:\n", extra + "cluster:\n"), "c.yaml")


def test_unknown_cluster_keys_are_refused():
    with pytest.raises(LabError, match="unknown key 'pods' in 'cluster'"):
        parse_lab(LAB.replace("  dns: false\n", "  pods: 3\n"), "c.yaml")
