"""Kernel behaviours of the L2/L3 path, each test named after the behaviour.

Each was checked on a real kernel (see tests/privileged/ for the twins that
run the same topology in namespaces)."""

from __future__ import annotations

import pytest

from netlab import ops as O
from netlab.dataplane import trace
from netlab.errors import CommandError
from netlab.trace import (
    DELIVERED, EXITED, FORWARDING_DISABLED, HOST_UNREACHABLE, LINK_DOWN, NO_LISTENER, NO_ROUTE, REFUSED,
    SUCCESS, TIMEOUT, TTL_EXCEEDED, UNREACHABLE,
)
from tests.unit import builders as B


def path(b, source, dst, **kw):
    t = trace(b.world, source, dst, **kw)
    assert len(t.paths) == 1
    return t.paths[0]


def test_veth_pair_ping_both_ways():
    b = B.pair()
    p = path(b, "host/red", "192.168.15.2")
    assert (p.verdict, p.outcome, p.delivered_to) == (DELIVERED, SUCCESS, "host/blue")
    assert p.reply.verdict == DELIVERED and p.reply.delivered_to == "host/red"
    assert path(b, "host/blue", "192.168.15.1").outcome == SUCCESS


def test_source_address_is_selected_from_the_egress_device():
    b = B.pair()
    t = trace(b.world, "host/red", "192.168.15.2")
    assert t.packet.src == "192.168.15.1"
    assert t.paths[0].reply.packet_out.dst == "192.168.15.1"


def test_lo_down_in_new_namespace_own_address_times_out():
    b = B.host()
    B.netns(b, "red", lo_up=False)
    B.netns(b, "blue")
    B.veth(b, "host/red", "veth-red", "host/blue", "veth-blue",
           a_ip="192.168.15.1/24", b_ip="192.168.15.2/24")
    p = path(b, "host/red", "192.168.15.1")
    assert (p.verdict, p.outcome) == (LINK_DOWN, TIMEOUT)
    assert "ip link set lo up" in p.diagnosis


def test_lo_down_127_0_0_1_is_network_unreachable():
    b = B.host()
    B.netns(b, "red", lo_up=False)
    p = path(b, "host/red", "127.0.0.1")
    assert (p.verdict, p.outcome) == (NO_ROUTE, UNREACHABLE)


def test_lo_up_gives_127_0_0_1():
    b = B.host()
    ns = B.netns(b, "red")
    assert path(b, ns, "127.0.0.1").outcome == SUCCESS
    assert path(b, ns, "127.1.2.3").outcome == SUCCESS


def test_lo_down_does_not_stop_answering_a_peer():
    b = B.host()
    B.netns(b, "red", lo_up=False)
    B.netns(b, "blue", lo_up=False)
    B.veth(b, "host/red", "veth-red", "host/blue", "veth-blue",
           a_ip="192.168.15.1/24", b_ip="192.168.15.2/24")
    assert path(b, "host/red", "192.168.15.2").outcome == SUCCESS


def test_address_without_prefix_has_no_connected_route():
    b = B.host()
    ns = B.netns(b, "red")
    b.apply(O.AddLink(ns, "d0", "dummy"))
    b.apply(O.SetLinkUp(ns, "d0", True))
    b.apply(O.AddAddress(ns, "d0", "10.1.1.1", 32))
    assert [r.dst for r in b.world.namespaces[ns].routes] == []
    with pytest.raises(CommandError, match="Nexthop has invalid gateway"):
        b.apply(O.AddRoute(ns, "default", gateway="10.1.1.254"))


def test_connected_route_appears_only_when_the_link_is_up():
    b = B.host()
    ns = B.netns(b, "red")
    b.apply(O.AddLink(ns, "d0", "dummy"))
    b.apply(O.AddAddress(ns, "d0", "10.2.2.1", 24))
    assert b.world.namespaces[ns].routes == []
    b.apply(O.SetLinkUp(ns, "d0", True))
    (route,) = b.world.namespaces[ns].routes
    assert (route.dst, route.dev, route.proto, route.scope, route.src) == (
        "10.2.2.0/24", "d0", "kernel", "link", "10.2.2.1")


def test_link_down_removes_static_routes_and_up_does_not_restore_them():
    b = B.router()
    h1 = b.world.namespaces["host/h1"]
    assert {r.dst for r in h1.routes} == {"10.0.1.0/24", "default"}
    b.apply(O.SetLinkUp("host/h1", "eth0", False))
    assert h1.routes == []
    b.apply(O.SetLinkUp("host/h1", "eth0", True))
    assert {r.dst for r in h1.routes} == {"10.0.1.0/24"}


def test_route_via_unconnected_gateway_is_refused():
    b = B.pair()
    with pytest.raises(CommandError, match="Nexthop has invalid gateway"):
        b.apply(O.AddRoute("host/red", "10.9.0.0/16", gateway="10.3.3.3"))


def test_duplicate_route_is_file_exists_and_replace_works():
    b = B.pair()
    b.apply(O.AddRoute("host/red", "10.9.0.0/16", gateway="192.168.15.2"))
    with pytest.raises(CommandError, match="File exists"):
        b.apply(O.AddRoute("host/red", "10.9.0.0/16", gateway="192.168.15.3"))
    b.apply(O.AddRoute("host/red", "10.9.0.0/16", gateway="192.168.15.3", replace=True))
    routes = [r for r in b.world.namespaces["host/red"].routes if r.dst == "10.9.0.0/16"]
    assert [r.gateway for r in routes] == ["192.168.15.3"]


def test_veth_down_on_one_side_breaks_arp():
    b = B.pair()
    b.apply(O.SetLinkUp("host/blue", "veth-blue", False))
    red = b.world.namespaces["host/red"]
    assert any(r.dev == "veth-red" for r in red.routes), "routes stay when only the peer is down"
    p = path(b, "host/red", "192.168.15.2")
    assert (p.verdict, p.outcome) == (HOST_UNREACHABLE, UNREACHABLE)


def test_bridge_joins_namespaces():
    b = B.bridge_with(["red", "blue", "green"])
    p = path(b, "host/red", "192.168.15.3")
    assert (p.outcome, p.delivered_to) == (SUCCESS, "host/green")
    events = [h.event for h in p.hops]
    assert events.count("bridge") == 2, events


def test_host_reaches_namespace_through_bridge_address():
    b = B.bridge_with(["red", "blue"])
    t = trace(b.world, "host/root", "192.168.15.2")
    assert t.packet.src == "192.168.15.5"
    assert t.paths[0].outcome == SUCCESS and t.paths[0].delivered_to == "host/blue"


def test_bridge_port_down_breaks_reachability():
    b = B.bridge_with(["red", "blue"])
    b.apply(O.SetLinkUp("host/root", "veth-blue-br", False))
    p = path(b, "host/red", "192.168.15.2")
    assert p.verdict == HOST_UNREACHABLE


def test_bridge_down_breaks_reachability():
    b = B.bridge_with(["red", "blue"])
    b.apply(O.SetLinkUp("host/root", "v-net-0", False))
    assert path(b, "host/red", "192.168.15.2").verdict == HOST_UNREACHABLE


def test_forwarding_needs_ip_forward():
    b = B.router(forwarding=False)
    p = path(b, "host/h1", "10.0.2.2")
    assert (p.verdict, p.outcome) == (FORWARDING_DISABLED, TIMEOUT)
    assert "sysctl -w net.ipv4.ip_forward=1" in p.diagnosis
    b.apply(O.SetSysctl("host/r", "net.ipv4.ip_forward", "1"))
    p = path(b, "host/h1", "10.0.2.2")
    assert (p.verdict, p.outcome, p.delivered_to) == (DELIVERED, SUCCESS, "host/h2")
    assert p.packet_out.ttl == 63


def test_router_without_route_answers_net_unreachable():
    b = B.router()
    p = path(b, "host/h1", "10.0.9.9")
    assert (p.verdict, p.outcome) == (NO_ROUTE, UNREACHABLE)
    assert p.reply.packet_out.src == "10.0.1.1"
    assert (p.reply.packet_out.icmp_type, p.reply.packet_out.icmp_code) == (3, 0)


def test_ttl_exceeded_comes_from_the_router():
    b = B.router()
    p = path(b, "host/h1", "10.0.2.2", ttl=1)
    assert (p.verdict, p.outcome) == (TTL_EXCEEDED, UNREACHABLE)
    assert p.reply.packet_out.src == "10.0.1.1" and p.reply.packet_out.icmp_type == 11


def test_routing_loop_ends_in_ttl_exceeded():
    b = B.router()
    b.apply(O.AddRoute("host/r", "10.7.0.0/16", gateway="10.0.1.2"))
    b.apply(O.SetSysctl("host/h1", "net.ipv4.ip_forward", "1"))
    b.apply(O.AddRoute("host/h1", "10.7.0.0/16", gateway="10.0.1.1"))
    p = path(b, "host/h2", "10.7.1.1")
    assert p.verdict == TTL_EXCEEDED


def test_missing_return_route_times_out():
    b = B.router()
    h2 = b.world.namespaces["host/h2"]
    b.apply(O.DelRoute("host/h2", "default"))
    assert all(r.dst != "default" for r in h2.routes)
    p = path(b, "host/h1", "10.0.2.2")
    assert (p.verdict, p.outcome) == (DELIVERED, TIMEOUT)
    assert p.reply.verdict == NO_ROUTE
    assert "no route back to 10.0.1.0/24" in p.diagnosis


def test_tcp_without_listener_is_refused_by_rst():
    b = B.pair()
    p = path(b, "host/red", "192.168.15.2", proto="tcp", dport=80)
    assert (p.verdict, p.outcome) == (NO_LISTENER, REFUSED)
    assert p.reply.packet_out.tcp_flags == "RA"


def test_tcp_with_listener_connects():
    b = B.pair()
    b.apply(O.AddListener("host/blue", "tcp", 80))
    p = path(b, "host/red", "192.168.15.2", proto="tcp", dport=80)
    assert (p.verdict, p.outcome) == (DELIVERED, SUCCESS)
    assert p.reply.packet_out.tcp_flags == "SA" and p.reply.packet_out.sport == 80


def test_udp_to_closed_port_gets_port_unreachable():
    b = B.pair()
    p = path(b, "host/red", "192.168.15.2", proto="udp", dport=53)
    assert (p.verdict, p.outcome) == (NO_LISTENER, REFUSED)
    assert (p.reply.packet_out.icmp_type, p.reply.packet_out.icmp_code) == (3, 3)


def test_udp_with_listener_is_delivered():
    b = B.pair()
    b.apply(O.AddListener("host/blue", "udp", 53))
    assert path(b, "host/red", "192.168.15.2", proto="udp", dport=53).outcome == SUCCESS


def test_no_route_locally_is_network_unreachable():
    b = B.pair()
    p = path(b, "host/red", "8.8.8.8")
    assert (p.verdict, p.outcome) == (NO_ROUTE, UNREACHABLE)


def test_weak_host_model_answers_for_any_local_address():
    b = B.router()
    # h1 pings the router's far-side address: local to r, answered on eth1.
    p = path(b, "host/h1", "10.0.2.1")
    assert (p.outcome, p.delivered_to) == (SUCCESS, "host/r")


def test_strict_rp_filter_drops_asymmetric_traffic():
    b = B.router()
    b.apply(O.SetSysctl("host/r", "net.ipv4.conf.all.rp_filter", "1"))
    # h1 sends with source 10.0.2.99, which r routes back out of eth2, not eth1.
    b.apply(O.AddAddress("host/h1", "eth0", "10.0.2.99", 32))
    p = path(b, "host/h1", "10.0.2.2", src="10.0.2.99")
    assert p.outcome == TIMEOUT and "rp_filter" in p.diagnosis


def test_trace_json_has_the_design_shape():
    b = B.pair()
    data = trace(b.world, "host/red", "192.168.15.2", proto="tcp", dport=80).to_json()
    assert data["packet"]["dst"] == "192.168.15.2" and data["packet"]["dport"] == 80
    assert data["from"] == "host/red"
    (p,) = data["paths"]
    assert {"probability", "outcome", "verdict", "packet_out", "hops", "reply"} <= set(p)
    assert all({"node", "netns", "event", "detail"} <= set(h) for h in p["hops"])


def test_onlink_gateway_behind_a_32_is_reached_by_arp():
    b = B.host()
    B.netns(b, "red")
    B.netns(b, "blue")
    B.veth(b, "host/red", "veth-red", "host/blue", "veth-blue",
           a_ip="10.1.1.1/32", b_ip="10.1.1.254/24")
    with pytest.raises(CommandError, match="Nexthop has invalid gateway"):
        b.apply(O.AddRoute("host/red", "default", gateway="10.1.1.254", dev="veth-red"))
    b.apply(O.AddRoute("host/red", "default", gateway="10.1.1.254", dev="veth-red", onlink=True))
    p = path(b, "host/red", "10.1.1.254")
    assert (p.outcome, p.delivered_to) == (SUCCESS, "host/blue")


def test_a_veth_whose_peer_is_outside_the_world_is_where_packets_exit():
    # A snapshot of one namespace: its veth's other end was not read.
    b = B.pair()
    b.apply(O.AddRoute("host/red", "default", gateway="192.168.15.254"))
    red = b.world.namespaces["host/red"]
    del b.world.namespaces["host/blue"]
    red.links["veth-red"].peer_netns = red.links["veth-red"].peer_name = None
    b.world._generation += 1
    p = path(b, "host/red", "8.8.8.8")
    assert (p.verdict, p.outcome) == (EXITED, TIMEOUT)
    assert p.packet_out.dst == "8.8.8.8" and p.hops[-1].event == "exit"
