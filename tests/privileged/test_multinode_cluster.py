"""A cluster lab on two "VMs": `netlab real up LAB --node node1` in one, `--node node2`
in the other, the two joined only by a veth LAN (as test_multinode.py does for a plain
lab, and for the same reason through `nsenter --net=...`).

    vmh2-<s>-1 [lan0] ==veth== [lan0] vmh2-<s>-2
       `- nl-<lab>-node1 (eth0: macvlan on lan0)      `- nl-<lab>-node2 (eth0: macvlan)
          `- default.client                              `- default.backend-<hash> :8080

The lab is tests/data/vm-two-node-cluster.yaml (a Deployment `backend` of one replica
pinned to node2, its Service, a client pod on node1) under a name of this run
(`vm2c<session>`), built with host-gw routes and with flannel's VXLAN.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from kernel_host import SESSION, namespaces_now, run
from vms import Machines, connect, ip_json, wait_settled

pytestmark = pytest.mark.privileged

LAB_FILE = Path(__file__).resolve().parents[1] / "data" / "vm-two-node-cluster.yaml"
LAB = f"vm2c{SESSION}"
VM = {"node1": f"vmh2-{SESSION}-1", "node2": f"vmh2-{SESSION}-2"}
LAN_IFACE = "lan0"
MINE = (f"vmh2-{SESSION}-", f"nl-{LAB}-")   # the namespaces this test may make


def _mine() -> set[str]:
    return {n for n in namespaces_now() if n.startswith(MINE)}


def _pod_ip(netns: str) -> str:
    return [i["local"] for i in ip_json(netns, "addr", "show", "eth0")[0]["addr_info"]
            if i["family"] == "inet"][0]


@pytest.fixture(params=["host-gw", "vxlan"])
def machines(request, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    for tool in ("ip", "nsenter", "iptables-restore"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (apt-get install iproute2 util-linux iptables)")
    before = _mine()
    text = LAB_FILE.read_text().replace("name: vm-two-node-cluster", f"name: {LAB}")
    lab_file = tmp_path / f"{LAB}.yaml"
    lab_file.write_text(text.replace("network: host-gw", f"network: {request.param}"))
    try:
        with Machines(tmp_path, lab_file, VM, LAN_IFACE).running() as m:
            yield m
    finally:
        assert _mine() == before, "the test left namespaces behind (or removed others)"


def _service_ip(lab_file: Path, name: str) -> str:
    from netlab.labs import load_lab

    cluster = load_lab(str(lab_file)).cluster
    return next(s.cluster_ip for s in cluster.services if s.name == name)


def test_a_pod_on_node1_reaches_a_service_backed_by_a_pod_on_node2(machines):
    cluster_ip = _service_ip(machines.lab_file, "backend")
    up1 = machines.up("node1")
    assert up1["ok"] and up1["node"] == "node1", up1
    assert set(up1["namespaces"]) == {"node1/root", "node1/default.client"}, "node1's part only"
    node1, client = up1["namespaces"]["node1/root"], up1["namespaces"]["node1/default.client"]
    eth0 = ip_json(node1, "link", "show", "eth0")[0]
    assert eth0["linkinfo"]["info_kind"] == "macvlan", eth0
    rules = run(["ip", "netns", "exec", node1, "iptables-save", "-t", "nat"]).stdout
    assert f"-d {cluster_ip}/32" in rules, "kube-proxy's rules for the Service are on node1"

    wait_settled([node1, client])
    alone = connect(client, cluster_ip, 80)
    assert not alone.startswith("success"), f"node2 is not up yet, but: {alone}"

    up2 = machines.up("node2")
    assert up2["ok"], up2
    pods2 = [k for k in up2["namespaces"] if k != "node2/root"]
    assert len(pods2) == 1 and pods2[0].startswith("node2/default.backend-"), up2["namespaces"]
    node2, backend = up2["namespaces"]["node2/root"], up2["namespaces"][pods2[0]]
    assert up2["listeners"] >= 1, "the backend's containerPort 8080 is a real listener"
    wait_settled([node1, client, node2, backend])

    outcome = connect(client, cluster_ip, 80)
    assert outcome.startswith("success"), f"client -> {cluster_ip}:80: {outcome}"
    time.sleep(0.2)
    client_ip = _pod_ip(client)
    assert machines.peers_seen("node2", 8080) == [client_ip], \
        "the backend on node2 saw the client pod's own address"
    assert machines.peers_seen("node1", 8080) == [], "nothing on node1 answered"


def test_down_with_node_leaves_the_other_node(machines):
    machines.check_down_of_node1_leaves_node2(_mine)


POLICY = """\
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: backend-from-frontend}
    spec:
      podSelector: {matchLabels: {app: backend}}
      policyTypes: [Ingress]
      ingress: [{from: [{podSelector: {matchLabels: {app: frontend}}}]}]
"""


def test_node2s_network_policy_drops_the_client_from_node1(machines):
    """The policy's rules are node2's part (the backend's node): the client, which has
    not the label `app: frontend`, reaches the Service's DNAT on node1 but not the pod."""
    text = machines.lab_file.read_text()
    machines.lab_file.write_text(text.replace("steps:", POLICY + "steps:", 1))
    cluster_ip = _service_ip(machines.lab_file, "backend")
    up1, up2 = machines.up("node1"), machines.up("node2")
    client = up1["namespaces"]["node1/default.client"]
    rules = run(["ip", "netns", "exec", up2["namespaces"]["node2/root"], "iptables-save"]).stdout
    assert "backend-from-frontend" in rules, "the policy's rules are on node2"
    wait_settled(list(up1["namespaces"].values()) + list(up2["namespaces"].values()))
    outcome = connect(client, cluster_ip, 80)
    assert not outcome.startswith("success"), f"the policy let the client in: {outcome}"
    assert machines.peers_seen("node2", 8080) == []
