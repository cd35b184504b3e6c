"""Show commands print the World the way iproute2 prints the kernel's state.

The transcripts (test_commands_golden.py) pin most formats; these pin the
cases the transcripts do not reach, with the model's deterministic MACs.
"""

from __future__ import annotations

import pytest

from netlab.backends.model import ModelBackend
from netlab.commands import Shell

BRIDGED = """
ip netns add red
ip netns add blue
ip link add v-net-0 type bridge
ip link set v-net-0 up
ip addr add 192.168.15.5/24 dev v-net-0
ip link add veth-red type veth peer name veth-red-br
ip link add veth-blue type veth peer name veth-blue-br
ip link set veth-red netns red
ip link set veth-blue netns blue
ip link set veth-red-br master v-net-0
ip link set veth-blue-br master v-net-0
ip link set veth-red-br up
ip link set veth-blue-br up
ip -n red addr add 192.168.15.1/24 dev veth-red
ip -n blue addr add 192.168.15.2/24 dev veth-blue
ip -n red link set veth-red up
ip -n blue link set veth-blue up
ip -n red link set lo up
"""


@pytest.fixture
def shell():
    sh = Shell(ModelBackend(), default_node="host")
    for r in sh.run_script(BRIDGED):
        assert r.ok, (r.cmd, r.error)
    return sh


def out(shell, line):
    r = shell.run(line)
    assert r.ok, (line, r.error)
    return r.output


def test_netns_list_shows_ids_for_namespaces_the_root_has_veths_into(shell):
    assert out(shell, "ip netns") == "red (id: 0)\nblue (id: 1)\n"
    assert out(shell, "ip netns add green") == ""
    assert out(shell, "ip netns list") == "red (id: 0)\nblue (id: 1)\ngreen\n"
    # Run inside red, the ids are red's: its veth leads to the node's own namespace only.
    assert out(shell, "ip -n red netns") == "red\nblue\ngreen\n"


def test_root_side_of_a_moved_veth(shell):
    assert out(shell, "ip link show veth-red-br") == (
        "3: veth-red-br@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master "
        "v-net-0 state UP mode DEFAULT group default qlen 1000\n"
        "    link/ether 02:00:00:00:00:02 brd ff:ff:ff:ff:ff:ff link-netns red\n")


def test_peer_in_the_nodes_own_namespace_is_a_netnsid(shell):
    # The node's root namespace has no name under /run/netns: iproute2 prints the id.
    assert out(shell, "ip -n red link show veth-red") == (
        "4: veth-red@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP "
        "mode DEFAULT group default qlen 1000\n"
        "    link/ether 02:00:00:00:00:03 brd ff:ff:ff:ff:ff:ff link-netnsid 0\n")


def test_link_filters(shell):
    assert [l.split(":")[1].strip() for l in out(shell, "ip -o link show master v-net-0")
            .splitlines()] == ["veth-red-br@if4", "veth-blue-br@if6"]
    assert out(shell, "ip -br link show type bridge") == (
        "v-net-0          UP             02:00:00:00:00:01 <BROADCAST,MULTICAST,UP,LOWER_UP> \n")
    assert len(out(shell, "ip -o link show type bridge_slave").splitlines()) == 2
    assert out(shell, "ip -br link show up").count("\n") == 4


def test_oneline_addresses(shell):
    assert out(shell, "ip -o -4 addr") == (
        "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
        "2: v-net-0    inet 192.168.15.5/24 scope global v-net-0\\       valid_lft forever "
        "preferred_lft forever\n")


def test_brief_addresses_skip_links_without_ipv4_with_minus_4(shell):
    assert out(shell, "ip -br -4 a") == ("lo               UNKNOWN        127.0.0.1/8 \n"
                                         "v-net-0          UP             192.168.15.5/24 \n")


def test_secondary_addresses_and_the_local_table(shell):
    out(shell, "ip addr add 192.168.15.6/24 dev v-net-0")
    assert out(shell, "ip addr show dev v-net-0") == (
        "2: v-net-0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group "
        "default qlen 1000\n"
        "    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff\n"
        "    inet 192.168.15.5/24 scope global v-net-0\n"
        "       valid_lft forever preferred_lft forever\n"
        "    inet 192.168.15.6/24 scope global secondary v-net-0\n"
        "       valid_lft forever preferred_lft forever\n"
        "    inet6 fe80::ff:fe00:1/64 scope link \n"
        "       valid_lft forever preferred_lft forever\n")
    assert out(shell, "ip route show table local") == (
        "local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1 \n"
        "local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 \n"
        "broadcast 127.255.255.255 dev lo proto kernel scope link src 127.0.0.1 \n"
        "local 192.168.15.5 dev v-net-0 proto kernel scope host src 192.168.15.5 \n"
        "local 192.168.15.6 dev v-net-0 proto kernel scope host src 192.168.15.5 \n"
        "broadcast 192.168.15.255 dev v-net-0 proto kernel scope link src 192.168.15.5 \n")
    assert out(shell, "ip addr show secondary") == (
        "2: v-net-0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group "
        "default qlen 1000\n"
        "    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff\n"
        "    inet 192.168.15.6/24 scope global secondary v-net-0\n"
        "       valid_lft forever preferred_lft forever\n")
    # `to PREFIX` sets the family: no link/ether line (and link-netns joins the first line).
    assert out(shell, "ip addr show to 192.168.15.6/32") == (
        "2: v-net-0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group "
        "default qlen 1000\n"
        "    inet 192.168.15.6/24 scope global secondary v-net-0\n"
        "       valid_lft forever preferred_lft forever\n")
    assert out(shell, "ip -br addr show to 192.168.15.0/24") == \
        "v-net-0          UP             192.168.15.5/24 192.168.15.6/24 \n"


def test_bridge_link_names_the_local_device_with_the_peers_ifindex(shell):
    # bridge(8) resolves IFLA_LINK in its own namespace: @if4 has no device 4
    # in the root namespace here, so it prints the number.
    assert out(shell, "bridge link") == (
        "3: veth-red-br@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master v-net-0 state "
        "forwarding priority 32 cost 2 \n"
        "5: veth-blue-br@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master v-net-0 state "
        "forwarding priority 32 cost 2 \n")
    out(shell, "ip link set v-net-0 down")
    assert "state disabled" in out(shell, "bridge link show dev veth-red-br")


def test_fdb_permanent_and_learned_entries(shell):
    assert out(shell, "bridge fdb show dev veth-red-br") == (
        "02:00:00:00:00:03 master v-net-0 \n"
        "02:00:00:00:00:02 master v-net-0 permanent\n"
        "33:33:00:00:00:01 self permanent\n"
        "01:00:5e:00:00:01 self permanent\n"
        "33:33:ff:00:00:02 self permanent\n")
    assert out(shell, "bridge fdb show br v-net-0").count("\n") == 15


def test_details_of_a_bridge_port(shell):
    text = out(shell, "ip -d link show veth-red-br")
    assert "link-netns red promiscuity 1  allmulti 1 minmtu 68 maxmtu 65535 \n    veth \n" \
           "    bridge_slave state forwarding priority 32 cost 2 " in text
    assert "designated_bridge 8000.2:0:0:0:0:1" in text


def test_neighbours_after_a_ping(shell):
    out(shell, "ip netns exec red ping -c1 192.168.15.2")
    assert out(shell, "ip -n red neigh") == \
        "192.168.15.2 dev veth-red lladdr 02:00:00:00:00:05 REACHABLE \n"
    assert out(shell, "ip -n blue neigh show dev veth-blue") == \
        "192.168.15.1 lladdr 02:00:00:00:00:03 DELAY \n"
    assert out(shell, "ip -n red -br neigh") == \
        "192.168.15.2                            veth-red         02:00:00:00:00:05\n"
    out(shell, "ip -n red neigh flush all")
    assert out(shell, "ip -n red neigh") == ""


def test_failed_arp_is_listed_without_lladdr(shell):
    shell.run("ip netns exec red ping -c1 -W1 192.168.15.99")
    assert "192.168.15.99 dev veth-red FAILED \n" in out(shell, "ip -n red neigh")


ROUTE_GET = [
    ("on-link", "ip -n red route get 192.168.15.2",
     "192.168.15.2 dev veth-red src 192.168.15.1 uid 0 \n    cache \n"),
    ("own-address", "ip -n red route get 192.168.15.1",
     "local 192.168.15.1 dev lo src 192.168.15.1 uid 0 \n    cache <local> \n"),
    ("loopback-range", "ip -n red route get 127.0.0.9",
     "local 127.0.0.9 dev lo src 127.0.0.1 uid 0 \n    cache <local> \n"),
    ("broadcast", "ip -n red route get 192.168.15.255",
     "broadcast 192.168.15.255 dev veth-red src 192.168.15.1 uid 0 \n    cache <local,brd> \n"),
    ("broadcast-from", "ip -n red route get 192.168.15.255 from 192.168.15.1",
     "broadcast 192.168.15.255 from 192.168.15.1 dev veth-red uid 0 \n    cache <local,brd> \n"),
    ("oif-without-route", "ip -n red route get 10.1.1.1 oif veth-red",
     "10.1.1.1 dev veth-red src 192.168.15.1 uid 0 \n    cache \n"),
    ("input-to-local", "ip route get 192.168.15.5 from 192.168.15.1 iif v-net-0",
     "local 192.168.15.5 from 192.168.15.1 dev lo \n    cache <local> iif v-net-0 \n"),
]


@pytest.mark.parametrize("line,expected", [r[1:] for r in ROUTE_GET], ids=[r[0] for r in ROUTE_GET])
def test_route_get(shell, line, expected):
    assert out(shell, line) == expected


def test_route_get_forwarding_decision(shell):
    r = shell.run("ip route get 192.168.15.2 from 10.9.9.9 iif v-net-0")
    assert (r.status, r.error) == (2, "RTNETLINK answers: No route to host")   # ip_forward=0
    out(shell, "sysctl -w net.ipv4.ip_forward=1")
    assert out(shell, "ip route get 192.168.15.2 from 10.9.9.9 iif v-net-0") == \
        "192.168.15.2 from 10.9.9.9 dev v-net-0 \n    cache iif v-net-0 \n"
    r = shell.run("ip route get 8.8.8.8 from 10.9.9.9 iif v-net-0")
    assert r.error == "RTNETLINK answers: Network is unreachable"
    r = shell.run("ip route get 192.168.15.2 iif v-net-0")
    assert r.error == "RTNETLINK answers: Invalid argument"


def test_route_show_filters_and_flush(shell):
    out(shell, "ip -n red route add default via 192.168.15.5")
    out(shell, "ip -n red route add 10.6.0.0/16 via 192.168.15.5 proto static metric 5")
    assert out(shell, "ip -n red route") == (
        "default via 192.168.15.5 dev veth-red \n"
        "10.6.0.0/16 via 192.168.15.5 dev veth-red proto static metric 5 \n"
        "192.168.15.0/24 dev veth-red proto kernel scope link src 192.168.15.1 \n")
    assert out(shell, "ip -n red route show dev veth-red proto static") == \
        "10.6.0.0/16 via 192.168.15.5 metric 5 \n"
    assert out(shell, "ip -n red route show default") == "default via 192.168.15.5 dev veth-red \n"
    assert out(shell, "ip -n red route show table all").count("table local") == 5
    out(shell, "ip -n red route flush proto static")
    assert "10.6.0.0" not in out(shell, "ip -n red route")


def test_linkdown_when_the_peer_is_down(shell):
    out(shell, "ip -n blue link set veth-blue down")
    assert out(shell, "ip link show veth-blue-br").startswith(
        "5: veth-blue-br@if6: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue master "
        "v-net-0 state DOWN")
    out(shell, "ip -n red link set veth-red down")
    # Both ports without carrier: the bridge loses its carrier too.
    assert out(shell, "ip route") == \
        "192.168.15.0/24 dev v-net-0 proto kernel scope link src 192.168.15.5 linkdown \n"
    assert out(shell, "ip -br link show v-net-0") == (
        "v-net-0          DOWN           02:00:00:00:00:01 <NO-CARRIER,BROADCAST,MULTICAST,UP> \n")


def test_pipes_into_grep_head_and_wc(shell):
    assert out(shell, "ip -4 -o addr | grep v-net-0 | wc -l") == "1\n"
    assert out(shell, "ip link | head -n 2") == (
        "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group "
        "default qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n")
    r = shell.run("ip route | grep 10.99")
    assert (r.ok, r.status) == (False, 1)
    assert out(shell, "ip a | grep -E 'inet .*(lo|v-net)' | grep -v 127") == \
        "    inet 192.168.15.5/24 scope global v-net-0\n"
