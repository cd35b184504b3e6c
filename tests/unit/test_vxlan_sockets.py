"""What the kernel does with a VXLAN datagram nobody decapsulates (checked against the
kernel in tests/privileged/test_real_cluster_labs.py, the VXLAN variants):

- a VXLAN device that is up owns a UDP socket on its port: a datagram for another VNI
  (or not VXLAN at all) is dropped there, with no ICMP error;
- an ICMP error about the tunnel's datagram goes to the VTEP's socket, never to the
  socket that sent the inner packet, even on the VTEP's own node.
"""

from __future__ import annotations

import pytest

from netlab.dataplane import trace
from netlab.labs import Runner, find_lab, load_lab


@pytest.fixture
def lab09():
    runner = Runner(load_lab(find_lab("09")))
    for step in runner.lab.steps[:4]:
        record = runner.run_step(step, check_expect=False)
        assert record.stopped is None
    return runner


def run(runner, node: str, *lines: str) -> None:
    for line in lines:
        res = runner.shell.run(line, node=node)
        assert res.ok, (line, res.error)


def test_lab09_reaches_blue_from_node1(lab09):
    assert trace(lab09.world, "node1/root", "10.244.2.2", proto="icmp").outcome == "success"


def test_a_datagram_for_another_vni_is_dropped_by_the_vxlan_socket(lab09):
    run(lab09, "node2", "ip link set vxlan0 down",
        "ip link add vxlan1 type vxlan id 43 local 192.168.1.12 dstport 4789 dev eth0",
        "ip link set vxlan1 up")
    t = trace(lab09.world, "node1/root", "10.244.2.2", proto="icmp")
    assert (t.outcome, t.paths[0].verdict) == ("timeout", "dropped")
    assert "VNI 42" in t.paths[0].hops[-1].detail
    plain = trace(lab09.world, "node1/root", "192.168.1.12", proto="udp", dport=4789)
    assert (plain.outcome, plain.paths[0].verdict) == ("timeout", "dropped")


def test_no_vxlan_device_up_on_the_port_means_port_unreachable_to_the_vtep(lab09):
    run(lab09, "node2", "ip link set vxlan0 down")
    t = trace(lab09.world, "node1/root", "10.244.2.2", proto="icmp")
    assert t.outcome == "timeout"               # the error is about the outer datagram
    assert t.paths[0].reply.delivered_to == "node1"    # it got back, to the VTEP
    plain = trace(lab09.world, "node1/root", "192.168.1.12", proto="udp", dport=4789)
    assert plain.outcome == "refused"           # a plain datagram: nothing listens
