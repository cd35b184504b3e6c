"""`ip` read the way ip(8) reads it: text -> Ops (parse is pure, no World)."""

from __future__ import annotations

import pytest

from netlab import ops as O
from netlab.commands import parse
from netlab.errors import CommandError, UnsupportedCommand

H = "host/root"


def ops_of(line: str, node: str = "host") -> list:
    return parse(line, node=node).ops


# --- ip netns ---------------------------------------------------------------------------

NETNS = [
    ("add", "ip netns add red", [O.AddNetns("host", "red")]),
    ("add-abbrev", "ip netns a red", [O.AddNetns("host", "red")]),
    ("delete", "ip netns delete red", [O.DelNetns("host", "red")]),
    ("del-abbrev", "ip netns del red", [O.DelNetns("host", "red")]),
    ("add-other-node", "ip netns add blue", [O.AddNetns("host", "blue")]),
]


@pytest.mark.parametrize("line,expected", [(l, e) for _, l, e in NETNS],
                         ids=[i for i, *_ in NETNS])
def test_netns_changes(line, expected):
    assert ops_of(line) == expected


@pytest.mark.parametrize("line", ["ip netns", "ip netns list", "ip netns ls", "ip netns show",
                                  "ip netns lst", "ip netns l"])
def test_netns_list_is_a_query(line):
    cmd = parse(line, node="host")
    assert cmd.ops == [] and cmd.query is not None and cmd.kind == "show"


def test_netns_exec_runs_the_inner_command_in_that_namespace():
    cmd = parse("ip netns exec red ip link set lo up", node="host")
    assert cmd.netns == "host/red"
    assert cmd.ops == [O.SetLinkUp("host/red", "lo", True)]


def test_netns_exec_nests_and_keeps_the_node():
    cmd = parse("ip netns exec red ip -n blue link set lo up", node="node1")
    assert cmd.ops == [O.SetLinkUp("node1/blue", "lo", True)]


# --- ip link ----------------------------------------------------------------------------

LINK = [
    ("veth-peer-netns", "ip link add veth-red type veth peer name veth-blue netns blue",
     [O.AddLink(H, "veth-red", "veth", peer="veth-blue", peer_netns="host/blue")]),
    ("veth-same-ns", "ip link add veth-red type veth peer name veth-red-br",
     [O.AddLink(H, "veth-red", "veth", peer="veth-red-br", peer_netns=H)]),
    ("veth-peer-without-name-keyword", "ip link add veth0 type veth peer veth1",
     [O.AddLink(H, "veth0", "veth", peer="veth1", peer_netns=H)]),
    ("name-keyword", "ip link add name a type veth peer name b",
     [O.AddLink(H, "a", "veth", peer="b", peer_netns=H)]),
    ("dev-keyword", "ip link add dev br0 type bridge", [O.AddLink(H, "br0", "bridge")]),
    ("bridge", "ip link add v-net-0 type bridge", [O.AddLink(H, "v-net-0", "bridge")]),
    ("dummy-mtu-address", "ip link add d0 mtu 9000 address 02:AA:00:00:00:01 type dummy",
     [O.AddLink(H, "d0", "dummy", mtu=9000, address="02:aa:00:00:00:01")]),
    ("add-in-other-netns", "ip link add veth-r netns red type veth peer name veth-r-br",
     [O.AddLink("host/red", "veth-r", "veth", peer="veth-r-br", peer_netns=H)]),
    ("add-up-master", "ip link add d1 master br0 up type dummy",
     [O.AddLink(H, "d1", "dummy"), O.SetLinkMaster(H, "d1", "br0"), O.SetLinkUp(H, "d1", True)]),
    ("ip-n", "ip -n red link add veth-x type veth peer name veth-y",
     [O.AddLink("host/red", "veth-x", "veth", peer="veth-y", peer_netns="host/red")]),
    ("set-up", "ip link set veth-red up", [O.SetLinkUp(H, "veth-red", True)]),
    ("set-dev-down", "ip link set dev veth-red down", [O.SetLinkUp(H, "veth-red", False)]),
    ("set-abbrev", "ip l s veth-red up", [O.SetLinkUp(H, "veth-red", True)]),
    ("set-netns", "ip link set veth-red netns red", [O.MoveLink(H, "veth-red", "host/red")]),
    ("set-netns-pid-1", "ip -n red link set eth9 netns 1",
     [O.MoveLink("host/red", "eth9", H)]),
    ("set-master", "ip link set veth-red-br master v-net-0",
     [O.SetLinkMaster(H, "veth-red-br", "v-net-0")]),
    ("set-nomaster", "ip link set veth-red-br nomaster", [O.SetLinkMaster(H, "veth-red-br", None)]),
    ("set-mtu", "ip link set dev eth0 mtu 1450", [O.SetLinkMtu(H, "eth0", 1450)]),
    ("set-address", "ip link set eth0 address 02:00:00:00:00:09",
     [O.SetLinkAddress(H, "eth0", "02:00:00:00:00:09")]),
    ("set-name", "ip link set eth0 name wan0", [O.RenameLink(H, "eth0", "wan0")]),
    # do_setlink's order: netns, address, mtu, name, flags, master -- and later
    # changes act on the moved, renamed device.
    ("set-several-kernel-order", "ip link set veth-red up mtu 1400 netns red name eth0",
     [O.MoveLink(H, "veth-red", "host/red"), O.SetLinkMtu("host/red", "veth-red", 1400),
      O.RenameLink("host/red", "veth-red", "eth0"), O.SetLinkUp("host/red", "eth0", True)]),
    ("set-master-and-up", "ip link set br-1 master br0 up",
     [O.SetLinkUp(H, "br-1", True), O.SetLinkMaster(H, "br-1", "br0")]),
    ("delete", "ip link delete veth-red", [O.DelLink(H, "veth-red")]),
    ("del-dev-type", "ip link del dev veth-red type veth", [O.DelLink(H, "veth-red")]),
]


@pytest.mark.parametrize("line,expected", [(l, e) for _, l, e in LINK], ids=[i for i, *_ in LINK])
def test_link_changes(line, expected):
    assert ops_of(line) == expected


@pytest.mark.parametrize("line", [
    "ip link", "ip l", "ip link show", "ip link sh", "ip link list", "ip link ls", "ip link lst",
    "ip link show dev lo", "ip link show lo", "ip -br link", "ip -o link", "ip -d link show lo",
    "ip link show type bridge", "ip link show master br0", "ip link show up", "ip -c l",
    "ip -color=auto link", "ip -s link", "ip --brief link",
])
def test_link_show_forms_are_queries(line):
    cmd = parse(line, node="host")
    assert cmd.ops == [] and cmd.query is not None


def test_link_add_without_names_is_planned_against_the_world():
    cmd = parse("ip link add type veth", node="host")
    assert cmd.ops == [] and cmd.plan is not None


# --- ip address ---------------------------------------------------------------------------

ADDR = [
    ("add", "ip addr add 192.168.15.1/24 dev veth-red",
     [O.AddAddress(H, "veth-red", "192.168.15.1", 24)]),
    ("a-a", "ip a a 10.0.0.1/8 dev eth0", [O.AddAddress(H, "eth0", "10.0.0.1", 8)]),
    ("no-prefix-is-32", "ip addr add 10.1.1.1 dev d0", [O.AddAddress(H, "d0", "10.1.1.1", 32)]),
    ("brd-plus", "ip addr add 10.3.3.3/24 brd + dev d0",
     [O.AddAddress(H, "d0", "10.3.3.3", 24, "10.3.3.255")]),
    ("broadcast-explicit", "ip addr add 10.3.3.3/24 broadcast 10.3.3.128 dev d0",
     [O.AddAddress(H, "d0", "10.3.3.3", 24, "10.3.3.128")]),
    ("dev-first", "ip address add dev d0 local 10.9.9.9/30",
     [O.AddAddress(H, "d0", "10.9.9.9", 30)]),
    ("netmask-form", "ip addr add 10.0.0.1/255.255.0.0 dev d0",
     [O.AddAddress(H, "d0", "10.0.0.1", 16)]),
    ("short-dotted", "ip addr add 10.1/16 dev d0", [O.AddAddress(H, "d0", "10.1.0.0", 16)]),
    ("del", "ip addr del 10.2.2.1/24 dev d0", [O.DelAddress(H, "d0", "10.2.2.1", 24)]),
    ("del-without-prefix", "ip addr del 10.2.2.1 dev d0", [O.DelAddress(H, "d0", "10.2.2.1", None)]),
    ("flush", "ip addr flush dev d0", [O.FlushAddresses(H, "d0")]),
    ("flush-bare-dev", "ip a f d0", [O.FlushAddresses(H, "d0")]),
    ("in-netns", "ip -n red addr add 192.168.15.1/24 dev veth-red",
     [O.AddAddress("host/red", "veth-red", "192.168.15.1", 24)]),
]


@pytest.mark.parametrize("line,expected", [(l, e) for _, l, e in ADDR], ids=[i for i, *_ in ADDR])
def test_address_changes(line, expected):
    assert ops_of(line) == expected


def test_del_without_prefix_warns_like_iproute2():
    cmd = parse("ip addr del 10.2.2.1 dev d0", node="host")
    assert cmd.output.startswith("Warning: Executing wildcard deletion")
    assert "(10.2.2.1/32)" in cmd.output


@pytest.mark.parametrize("line", ["ip a", "ip addr", "ip address show", "ip addr sh dev lo",
                                  "ip -4 a", "ip -br a", "ip -o addr", "ip -o -4 addr",
                                  "ip addr show to 10.0.0.0/8", "ip addr list lo"])
def test_address_show_forms_are_queries(line):
    assert parse(line, node="host").query is not None


# --- ip route -----------------------------------------------------------------------------

ROUTE = [
    ("default-via", "ip route add default via 192.168.15.5",
     [O.AddRoute(H, "default", gateway="192.168.15.5")]),
    ("prefix-dev", "ip route add 10.8.0.0/16 dev d0", [O.AddRoute(H, "10.8.0.0/16", dev="d0")]),
    ("all-attrs", "ip route add 10.6.0.0/16 via 10.2.2.254 dev d0 src 10.2.2.1 metric 5 proto static",
     [O.AddRoute(H, "10.6.0.0/16", dev="d0", gateway="10.2.2.254", src="10.2.2.1", metric=5,
                 proto="static")]),
    ("scope-and-proto", "ip route add 10.7.0.0/16 via 10.2.2.254 proto boot scope global",
     [O.AddRoute(H, "10.7.0.0/16", gateway="10.2.2.254", scope="global")]),
    ("priority-alias", "ip r a 10.9.0.0/16 dev d0 priority 100",
     [O.AddRoute(H, "10.9.0.0/16", dev="d0", metric=100)]),
    ("preference-alias", "ip route add 10.9.0.0/16 dev d0 preference 7",
     [O.AddRoute(H, "10.9.0.0/16", dev="d0", metric=7)]),
    ("to-keyword", "ip route add to 10.9.0.0/16 dev d0", [O.AddRoute(H, "10.9.0.0/16", dev="d0")]),
    ("host-route", "ip route add 10.9.9.9 dev d0", [O.AddRoute(H, "10.9.9.9/32", dev="d0")]),
    ("table-main", "ip route add 10.1.0.0/16 dev d0 table main",
     [O.AddRoute(H, "10.1.0.0/16", dev="d0")]),
    ("blackhole", "ip route add blackhole 10.14.0.0/16",
     [O.AddRoute(H, "10.14.0.0/16", type="blackhole")]),
    ("unreachable", "ip route add unreachable 10.15.0.0/16",
     [O.AddRoute(H, "10.15.0.0/16", type="unreachable")]),
    ("prohibit", "ip route add prohibit 10.16.0.0/16",
     [O.AddRoute(H, "10.16.0.0/16", type="prohibit")]),
    ("replace", "ip route replace 10.9.0.0/16 via 10.2.2.253",
     [O.AddRoute(H, "10.9.0.0/16", gateway="10.2.2.253", replace=True)]),
    ("del-exact", "ip route del 10.9.0.0/16 via 10.2.2.254",
     [O.DelRoute(H, "10.9.0.0/16", gateway="10.2.2.254")]),
    ("del-default", "ip route del default", [O.DelRoute(H, "default")]),
    ("del-metric", "ip route delete 10.9.0.0/16 dev d0 metric 100",
     [O.DelRoute(H, "10.9.0.0/16", dev="d0", metric=100)]),
    ("netns-exec", "ip netns exec red ip route add default via 10.0.1.1",
     [O.AddRoute("host/red", "default", gateway="10.0.1.1")]),
]


@pytest.mark.parametrize("line,expected", [(l, e) for _, l, e in ROUTE], ids=[i for i, *_ in ROUTE])
def test_route_changes(line, expected):
    assert ops_of(line) == expected


@pytest.mark.parametrize("line", ["ip route", "ip r", "ip ro", "ip route show", "ip route list",
                                  "ip r s table local", "ip route show table all",
                                  "ip route show dev d0", "ip route show proto static",
                                  "ip route show 10.6.0.0/16", "ip route get 8.8.8.8",
                                  "ip route get 8.8.8.8 from 10.2.2.1",
                                  "ip r g 10.0.2.2 from 10.0.1.2 iif veth-r1",
                                  "ip route get to 1.1.1.1 oif eth0"])
def test_route_queries(line):
    assert parse(line, node="host").query is not None


# --- ip neigh -----------------------------------------------------------------------------

NEIGH = [
    ("add-permanent", "ip neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev eth0",
     [O.AddNeighbour(H, "10.0.0.2", "eth0", "02:00:00:00:00:02", "PERMANENT")]),
    ("replace-nud", "ip neigh replace 10.0.0.2 lladdr 02:00:00:00:00:02 dev eth0 nud reachable",
     [O.AddNeighbour(H, "10.0.0.2", "eth0", "02:00:00:00:00:02", "REACHABLE")]),
    ("flush-all", "ip neigh flush all", [O.FlushNeighbours(H)]),
    ("flush-dev", "ip -n red neigh flush dev veth-red", [O.FlushNeighbours("host/red", dev="veth-red")]),
    ("del", "ip neigh del 10.0.0.2 dev eth0",
     [O.FlushNeighbours(H, dev="eth0", ip="10.0.0.2", permanent=True)]),
]


@pytest.mark.parametrize("line,expected", [(l, e) for _, l, e in NEIGH], ids=[i for i, *_ in NEIGH])
def test_neigh_changes(line, expected):
    assert ops_of(line) == expected


@pytest.mark.parametrize("line", ["ip neigh", "ip n", "ip neighbour show", "ip neighbor",
                                  "ip neigh show dev veth-red", "ip -br neigh"])
def test_neigh_queries(line):
    assert parse(line, node="host").query is not None


# --- the abbreviation rule ---------------------------------------------------------------

@pytest.mark.parametrize("line,object_", [
    ("ip a", "address"), ("ip ad", "address"), ("ip r", "route"), ("ip ro", "route"),
    ("ip l", "link"), ("ip li", "link"), ("ip n", "neighbour"), ("ip ne", "neighbour"),
    ("ip net", "netns"),
])
def test_object_abbreviations(line, object_):
    # Each is read as the first object in ip.c's table it abbreviates: a query, no error.
    assert parse(line, node="host").query is not None


def test_a_is_address_in_link_add():
    with pytest.raises(CommandError) as err:
        parse("ip link add a type veth", node="host")
    assert err.value.message == '"type" is invalid lladdr.'
    assert "`a` is read as the keyword `address`" in err.value.hint


def test_unsupported_features_say_so():
    with pytest.raises(UnsupportedCommand):
        parse("ip link add mv0 type macvlan mode bridge", node="host")
    with pytest.raises(UnsupportedCommand):
        parse("ip rule add from 10.0.0.0/8 table 100", node="host")
