"""Multi-VM mode without VMs: each "VM" is a namespace, the LAN between them a veth pair.

    vmh-<s>-1 [lan0] ==veth== [lan0] vmh-<s>-2          the two machines, nothing else
       `- nl-<lab>-node1: eth0 = macvlan on lan0           `netlab real up LAB --node node1
          `- pod-a 10.244.1.2                               --lan-iface lan0` run in vmh-<s>-1
                            nl-<lab>-node2: eth0 = macvlan on lan0, pod-b 10.244.2.2 -'

The netlab CLI runs in each machine's namespace exactly as it would run in a VM
(`nsenter --net=/run/netns/vmh-<s>-1 netlab real up ...`), each with its own
journal directory. Not `ip netns exec`: it gives the command a private mount
namespace, and the namespaces netlab makes there (bind mounts under /run/netns) would
vanish with it; a VM has its own /run/netns and no such problem.

The lab is tests/data/vm-two-node.yaml under a name of this run (`vm2n<session>`),
so its namespaces are `nl-vm2n<session>-node1...`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from kernel_host import SESSION, Listener, namespaces_now
from vms import Machines, connect, ip_json, wait_settled

pytestmark = pytest.mark.privileged

LAB_FILE = Path(__file__).resolve().parents[1] / "data" / "vm-two-node.yaml"
LAB = f"vm2n{SESSION}"
VM = {"node1": f"vmh-{SESSION}-1", "node2": f"vmh-{SESSION}-2"}
LAN_IFACE = "lan0"
CLUSTER_IP, POD_A, POD_B = "10.96.0.10", "10.244.1.2", "10.244.2.2"
MINE = (f"vmh-{SESSION}-", f"nl-{LAB}-")   # the namespaces this run's test may make


def _mine() -> set[str]:
    return {n for n in namespaces_now() if n.startswith(MINE)}


def _peers_seen(listener: Listener | None, run_dir: Path) -> list[str]:
    """The source addresses pod-b's listener on 8080 saw: ours, or the lab's own `nc -l`
    where real mode starts it (it logs JSON lines under the node's journal directory)."""
    if listener is not None:
        return [line.split()[1] for line in listener.lines if line.startswith("conn ")]
    return [json.loads(line)["peer"][0] for path in sorted(run_dir.glob("*.d/*-tcp-8080.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def _machine_state(netns: str) -> list[tuple]:
    """A VM's own namespace as `ip` shows it: its links (name, kind, up) and addresses."""
    links = [(l["ifname"], l.get("linkinfo", {}).get("info_kind"), "UP" in l["flags"])
             for l in ip_json(netns, "link", "show")]
    addrs = [(a["ifname"], i["local"], i["prefixlen"]) for a in ip_json(netns, "addr", "show")
             for i in a.get("addr_info", []) if i.get("family") == "inet"]
    return sorted(links) + sorted(addrs)


@pytest.fixture
def machines(kernel, tmp_path):
    if shutil.which("nsenter") is None:
        pytest.skip("needs nsenter (apt-get install util-linux)")
    if shutil.which("iptables-restore") is None:
        pytest.skip("needs iptables-restore (apt-get install iptables)")
    before = _mine()
    lab_file = tmp_path / "vm-two-node.yaml"
    lab_file.write_text(LAB_FILE.read_text().replace("name: vm-two-node", f"name: {LAB}", 1))
    try:
        with Machines(tmp_path, lab_file, VM, LAN_IFACE, timeout=60).running() as m:
            yield m
    finally:
        assert _mine() == before, "the test left namespaces behind (or removed others)"


def test_a_pod_on_node1_reaches_a_service_backed_by_a_pod_on_node2(machines):
    vm1_before = _machine_state(VM["node1"])
    up1 = machines.up("node1")
    assert up1["ok"] and up1["lab"] == LAB and up1["node"] == "node1", up1
    assert set(up1["namespaces"]) == {"node1/root", "node1/pod-a"}, "only node1's part"
    assert up1["steps_elsewhere"] == [2], "node2's step is not run on node1"
    node1, pod_a = up1["namespaces"]["node1/root"], up1["namespaces"]["node1/pod-a"]

    eth0 = ip_json(node1, "link", "show", "eth0")[0]
    assert eth0["linkinfo"]["info_kind"] == "macvlan", eth0
    assert eth0.get("link_netnsid") is not None, "its lower device is in another namespace"
    assert _machine_state(VM["node1"]) == vm1_before, "the machine's own namespace is as it was"

    wait_settled([node1, pod_a])
    alone = connect(pod_a, CLUSTER_IP, 80)
    assert not alone.startswith("success"), f"node2 is not up yet, but: {alone}"

    up2 = machines.up("node2")
    assert up2["ok"] and set(up2["namespaces"]) == {"node2/root", "node2/pod-b"}, up2
    assert up2["steps_elsewhere"] == [1, 3]
    node2, pod_b = up2["namespaces"]["node2/root"], up2["namespaces"]["node2/pod-b"]
    listener = None
    if not up2.get("listeners"):          # the lab's `nc -l -p 8080` is not a real one here
        listener = Listener(pod_b, "tcp", 8080)
        machines.listeners.append(listener)
        ready, err = listener.wait_ready()
        assert ready, err
    wait_settled([node1, pod_a, node2, pod_b])

    outcome = connect(pod_a, CLUSTER_IP, 80)
    assert outcome.startswith("success"), f"pod-a -> {CLUSTER_IP}:80: {outcome}"
    time.sleep(0.2)
    peers = _peers_seen(listener, machines.run_dir / "node2")
    assert peers == [POD_A], f"pod-b saw {peers}: the DNAT on node1 sent pod-a's own address"

    direct = connect(pod_a, POD_B, 80)
    assert direct.startswith("refused"), f"pod-b has nothing on 80: {direct}"


def test_down_with_node_removes_that_node_only(machines):
    _, up2 = machines.check_down_of_node1_leaves_node2(_mine)
    assert not (machines.run_dir / "node1" / f"{LAB}@node1.json").exists()
    assert (machines.run_dir / "node2" / f"{LAB}@node2.json").exists()
    eth0 = ip_json(up2["namespaces"]["node2/root"], "link", "show", "eth0")
    assert eth0 and "UP" in eth0[0]["flags"]
