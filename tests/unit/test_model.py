"""The World and ModelBackend: JSON round trip, link state, kernel refusals."""

from __future__ import annotations

import json

import pytest

from netlab import ops as O
from netlab.backends.model import ModelBackend, oper_up, sysctl_value
from netlab.errors import CommandError
from netlab.model import World
from tests.unit import builders as B


def test_world_round_trips_through_json_exactly():
    b = B.bridge_with(["red", "blue"])
    b.apply(O.AddListener("host/blue", "tcp", 80))
    b.apply(O.AddRoute("host/red", "default", gateway="192.168.15.5", metric=10))
    data = json.loads(json.dumps(b.world.to_json()))
    again = World.from_json(data)
    assert again == b.world
    assert again.to_json() == data


def test_new_namespace_starts_with_lo_down_and_forwarding_off():
    b = B.host()
    b.apply(O.AddNetns("host", "red"))
    red = b.world.namespaces["host/red"]
    assert list(red.links) == ["lo"] and not red.links["lo"].up
    assert red.links["lo"].addresses == []
    assert sysctl_value(red, "net.ipv4.ip_forward") == "0"


def test_node_root_namespace_is_booted():
    b = B.host()
    root = b.world.namespaces["host/root"]
    assert root.links["lo"].up and root.links["lo"].addresses[0].cidr == "127.0.0.1/8"
    assert sysctl_value(root, "net.bridge.bridge-nf-call-iptables") == "1"
    assert sysctl_value(root, "net.ipv4.conf.all.rp_filter") == "0"


def test_veth_is_operationally_up_only_when_both_ends_are_up():
    b = B.pair()
    red, blue = b.world.namespaces["host/red"], b.world.namespaces["host/blue"]
    assert oper_up(b.world, red, red.links["veth-red"])
    b.apply(O.SetLinkUp("host/blue", "veth-blue", False))
    assert not oper_up(b.world, red, red.links["veth-red"])


def test_bridge_without_ports_has_carrier_and_a_down_port_takes_it_away():
    b = B.host()
    b.apply(O.AddLink("host/root", "br0", "bridge"))
    b.apply(O.SetLinkUp("host/root", "br0", True))
    root = b.world.namespaces["host/root"]
    assert oper_up(b.world, root, root.links["br0"])
    b.apply(O.AddLink("host/root", "p0", "dummy"))
    b.apply(O.SetLinkMaster("host/root", "p0", "br0"))
    assert not oper_up(b.world, root, root.links["br0"])


def test_moving_a_veth_end_keeps_the_pair_and_drops_addresses():
    b = B.host()
    B.netns(b, "red")
    b.apply(O.AddLink("host/root", "veth-red", "veth", peer="veth-red-br"))
    b.apply(O.AddAddress("host/root", "veth-red", "192.168.15.1", 24))
    b.apply(O.MoveLink("host/root", "veth-red", "host/red"))
    red = b.world.namespaces["host/red"]
    root = b.world.namespaces["host/root"]
    assert red.links["veth-red"].addresses == []
    assert root.links["veth-red-br"].peer_netns == "host/red"
    assert b.world.peer_of(red, red.links["veth-red"])[1].name == "veth-red-br"


def test_deleting_one_veth_end_deletes_the_other():
    b = B.pair()
    b.apply(O.DelLink("host/red", "veth-red"))
    assert "veth-blue" not in b.world.namespaces["host/blue"].links


def test_deleting_a_namespace_deletes_veth_peers_elsewhere():
    b = B.pair()
    b.apply(O.DelNetns("host", "red"))
    assert "veth-blue" not in b.world.namespaces["host/blue"].links


def test_ip_forward_sets_all_default_and_every_device():
    b = B.pair()
    b.apply(O.SetSysctl("host/red", "net.ipv4.ip_forward", "1"))
    red = b.world.namespaces["host/red"]
    assert sysctl_value(red, "net.ipv4.conf.all.forwarding") == "1"
    assert sysctl_value(red, "net.ipv4.conf.veth-red.forwarding") == "1"


def test_unknown_sysctl_is_refused_like_sysctl():
    b = B.host()
    with pytest.raises(CommandError, match="cannot stat /proc/sys/net/ipv4/nonexistent"):
        b.apply(O.SetSysctl("host/root", "net.ipv4.nonexistent", "1"))


@pytest.mark.parametrize("op, message", [
    (O.AddLink("host/root", "lo", "dummy"), "File exists"),
    (O.SetLinkUp("host/root", "veth-x", True), 'Cannot find device "veth-x"'),
    (O.AddAddress("host/root", "nosuch", "10.0.0.1", 24), 'Cannot find device "nosuch"'),
    (O.DelRoute("host/root", "10.99.0.0/16"), "No such process"),
    (O.AddNetns("host", "root"), "File exists"),
    (O.AddLink("host/root", "a-name-longer-than-15", "dummy"), "not a valid ifname"),
], ids=["link-exists", "set-unknown-device", "addr-unknown-device", "del-missing-route",
        "netns-exists", "ifname-too-long"])
def test_refused_changes_say_what_the_kernel_says(op, message):
    b = B.host()
    before = b.world.to_json()
    with pytest.raises(CommandError, match=message):
        b.apply(op)
    assert b.world.to_json() == before


def test_a_command_of_several_ops_is_atomic():
    b = B.host()
    before = b.world.to_json()
    with pytest.raises(CommandError):
        b.apply_all([O.AddLink("host/root", "d0", "dummy"), O.SetLinkUp("host/root", "nope", True)])
    assert b.world.to_json() == before


def test_ip_forward_turns_accept_redirects_off():
    b = B.pair()
    b.apply(O.SetSysctl("host/red", "net.ipv4.ip_forward", "1"))
    assert sysctl_value(b.world.namespaces["host/red"],
                        "net.ipv4.conf.all.accept_redirects") == "0"


def test_bridge_mtu_follows_its_lowest_port_unless_set_by_hand():
    b = B.bridge_with(["red", "blue"])
    root = b.world.namespaces["host/root"]
    b.apply(O.SetLinkMtu("host/root", "veth-blue-br", 1400))
    assert root.links["v-net-0"].mtu == 1400
    b.apply(O.SetLinkMaster("host/root", "veth-blue-br", None))
    assert root.links["v-net-0"].mtu == 1500
    b.apply(O.SetLinkMtu("host/root", "v-net-0", 9000))
    b.apply(O.SetLinkMaster("host/root", "veth-blue-br", "v-net-0"))
    assert root.links["v-net-0"].mtu == 9000
