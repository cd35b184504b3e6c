"""The harness's own rules, checked without a kernel: a learner's namespace names never reach
the real machine unrenamed, and the lines the harness treats specially are recognised."""

from __future__ import annotations

import shlex

import pytest

from kernel_host import NetnsNames, listener_of, proc_write, rename_netns, strip_netns_exec

NAMES = NetnsNames("ab01")


def renamed(line: str) -> str:
    return shlex.join(rename_netns(shlex.split(line), NAMES.real))


@pytest.mark.parametrize("typed, real", [
    ("ip netns add red", "ip netns add nltab01-red"),
    ("ip netns del red", "ip netns del nltab01-red"),
    ("ip netns delete red", "ip netns delete nltab01-red"),
    ("ip netns exec red ip link set lo up", "ip netns exec nltab01-red ip link set lo up"),
    ("ip netns exec red ip link set veth-x netns blue",
     "ip netns exec nltab01-red ip link set veth-x netns nltab01-blue"),
    ("ip -n red addr add 192.168.15.1/24 dev veth-red",
     "ip -n nltab01-red addr add 192.168.15.1/24 dev veth-red"),
    ("ip -4 -netns red route", "ip -4 -netns nltab01-red route"),
    ("ip link set veth-red netns red", "ip link set veth-red netns nltab01-red"),
    ("ip link add veth-red netns red type veth peer name veth-blue netns blue",
     "ip link add veth-red netns nltab01-red type veth peer name veth-blue netns nltab01-blue"),
    ("ip link set veth-red netns 1234", "ip link set veth-red netns 1234"),
    ("ip netns list", "ip netns list"),
    ("ip link add v-net-0 type bridge", "ip link add v-net-0 type bridge"),
    ("sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.ipv4.ip_forward=1"),
])
def test_namespace_names_are_rewritten_and_interfaces_kept(typed, real):
    assert renamed(typed) == real


def test_the_machine_itself_is_a_namespace_of_its_own():
    assert NAMES.real("host") == "nlt-ab01-host"
    assert NAMES.ours("nlt-ab01-host") and NAMES.ours("nltab01-red")
    assert not NAMES.ours("nltab02-red") and not NAMES.ours("red")


@pytest.mark.parametrize("typed, where, listen", [
    ("ip netns exec blue nc -l -p 80", "blue", ("tcp", 80)),
    ("ip netns exec blue nc -l -u -p 53", "blue", ("udp", 53)),
    ("ip netns exec blue nc -lu 53", "blue", ("udp", 53)),
    ("nc -lkp 8080", "host", ("tcp", 8080)),
    ("ip netns exec blue nc 10.0.0.1 80", "blue", None),
])
def test_listeners_are_recognised(typed, where, listen):
    ns, inner = strip_netns_exec(shlex.split(typed))
    assert ns == where
    assert listener_of(inner) == listen


@pytest.mark.parametrize("typed, write", [
    ("echo 1 > /proc/sys/net/ipv4/ip_forward", ("net.ipv4.ip_forward", "1")),
    ("echo 0 >/proc/sys/net/ipv4/conf/all/rp_filter", ("net.ipv4.conf.all.rp_filter", "0")),
    ("echo 1 > /tmp/x", None),
    ("echo hello", None),
])
def test_proc_writes_become_sysctl_writes(typed, write):
    assert proc_write(shlex.split(typed)) == write
