"""Netfilter in the dataplane: hook order, NAT, conntrack, REJECT, forks, indexing.

Each case is a kernel behaviour (the twins in tests/privileged/test_netfilter_twins.py
run the same commands in real namespaces). Tables are filled with the canonical rule
text iptables-save prints, so these tests do not depend on the iptables command parser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from netlab import ops as O
from netlab.dataplane import netfilter as nf
from netlab.dataplane import trace
from netlab.dataplane.engine import ERROR
from netlab.errors import CommandError
from netlab.model.netfilter import new_table
from netlab.netfilter.rules import builtin_matches, parse_rule
from netlab.trace import (
    DELIVERED, DROPPED, FORWARDING_DISABLED, NO_LISTENER, REFUSED, REJECTED, SUCCESS, TIMEOUT,
    UNREACHABLE,
)
from tests.unit import builders as B


def rule(b, ns: str, table: str, chain: str, *bodies: str, policy: str | None = None) -> None:
    """Append rule bodies to a chain (made if needed), as iptables -t TABLE -A CHAIN would."""
    from netlab.model.netfilter import Chain

    tables = b.world.namespaces[ns].tables
    if table not in tables:
        tables[table] = new_table(table)
    chains = tables[table].chains
    if chain not in chains:
        chains[chain] = Chain(policy=None)
    chains[chain].rules.extend(bodies)
    if policy is not None:
        chains[chain].policy = policy
    b.world._generation = getattr(b.world, "_generation", 0) + 1


def listen(b, ns: str, proto: str, *ports: int) -> None:
    for port in ports:
        b.apply(O.AddListener(ns, proto, port))


def one(t):
    assert len(t.paths) == 1, [p.to_json() for p in t.paths]
    return t.paths[0]


def nf_hops(path):
    return [h for h in path.hops if h.event == "netfilter"]


def chains_crossed(path, netns: str):
    """(table, chain) of each chain walk in ``netns``, in order (the hops of one walk —
    its rules', then its policy's — count once)."""
    out, prev = [], None
    for h in path.hops:
        if h.event != "netfilter" or h.netns != netns:
            continue
        key = (h.table, h.chain)
        if prev is None or prev[0] != key or prev[1]:
            out.append(key)
        prev = (key, h.rule.startswith("-P"))
    return out


# --- topologies -------------------------------------------------------------------------------

def router_lab(route_back: bool = True):
    """h1 10.0.1.2 — (10.0.1.1) r (10.0.2.1) — h2 10.0.2.2, listeners on h2."""
    b = B.router()
    if not route_back:
        b.apply(O.DelRoute("host/h2", "default"))
    listen(b, "host/h2", "tcp", 80, 81, 82)
    listen(b, "host/h2", "udp", 53, 54)
    return b


def bridge_lab():
    b = B.bridge_with(["red", "blue", "green"])
    listen(b, "host/blue", "tcp", 80)
    return b


# --- DNAT and the routing decision --------------------------------------------------------

def test_dnat_in_prerouting_happens_before_the_routing_decision():
    b = router_lab()
    rule(b, "host/r", "nat", "PREROUTING",
         "-d 10.0.1.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.2.2:80")
    p = one(trace(b.world, "host/h1", "10.0.1.1", proto="tcp", dport=8080, sport=41001))
    assert (p.verdict, p.outcome, p.delivered_to) == (DELIVERED, SUCCESS, "host/h2")
    assert (p.packet_out.src, p.packet_out.dst, p.packet_out.dport) == ("10.0.1.2", "10.0.2.2", 80)
    events = [(h.netns, h.event) for h in p.hops]
    assert events.index(("r", "netfilter")) < events.index(("r", "forward"))
    (dnat,) = nf_hops(p)
    assert (dnat.table, dnat.chain, dnat.action) == ("nat", "PREROUTING", "dnat")
    assert dnat.extra["position"] == 1
    assert "10.0.1.1:8080 → 10.0.2.2:80" in dnat.detail
    # The reply is un-DNATed on its way out of r: red sees the address it connected to.
    back = p.reply.packet_out
    assert (back.src, back.sport, back.dst) == ("10.0.1.1", 8080, "10.0.1.2")
    undo = [h for h in p.reply.hops if h.event == "conntrack"]
    assert undo and "un-DNAT 10.0.2.2:80 → 10.0.1.1:8080" in undo[0].detail


def test_a_port_the_dnat_does_not_cover_reaches_the_router_itself():
    b = router_lab()
    rule(b, "host/r", "nat", "PREROUTING",
         "-d 10.0.1.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.2.2:80")
    p = one(trace(b.world, "host/h1", "10.0.1.1", proto="tcp", dport=8081, sport=41002))
    assert (p.verdict, p.outcome, p.delivered_to) == (NO_LISTENER, REFUSED, "host/r")


def test_dnat_in_output_routes_again_and_keeps_the_first_source():
    b = router_lab()
    b.apply(O.AddRoute("host/r", "default", gateway="10.0.1.2"))
    rule(b, "host/r", "nat", "OUTPUT",
         "-d 10.9.9.9/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.2.2:80")
    p = one(trace(b.world, "host/r", "10.9.9.9", proto="tcp", dport=80, sport=41003))
    assert (p.outcome, p.delivered_to) == (SUCCESS, "host/h2")
    assert (p.packet_out.src, p.packet_out.dst) == ("10.0.1.1", "10.0.2.2")
    routes = [h.detail for h in p.hops if h.event == "route"]
    assert routes[0].startswith("10.9.9.9 via 10.0.1.2") and "re-routed after DNAT" in routes[1]
    # the answer is un-DNATed on input (SRC manip at INPUT): from 10.9.9.9:80
    assert (p.reply.packet_out.src, p.reply.packet_out.sport) == ("10.9.9.9", 80)
    p81 = one(trace(b.world, "host/r", "10.9.9.9", proto="tcp", dport=81, sport=41004))
    assert (p81.verdict, p81.outcome) == (FORWARDING_DISABLED, TIMEOUT)


# --- MASQUERADE, SNAT and the reply ------------------------------------------------------------

def test_without_masquerade_the_reply_has_no_route_back():
    b = router_lab(route_back=False)
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80))
    assert (p.verdict, p.outcome) == (DELIVERED, TIMEOUT)
    assert "no route back to 10.0.1.0/24" in p.diagnosis
    assert "MASQUERADE on host/r" in p.diagnosis
    assert "iptables -t nat -A POSTROUTING -s 10.0.1.0/24 -j MASQUERADE" in p.diagnosis


@pytest.mark.parametrize("proto,port", [("tcp", 80), ("udp", 53), ("icmp", None)],
                         ids=["tcp", "udp", "ping"])
def test_masquerade_picks_the_egress_address_and_the_reply_is_un_nated(proto, port):
    b = router_lab(route_back=False)
    rule(b, "host/r", "nat", "POSTROUTING", "-s 10.0.1.0/24 -j MASQUERADE")
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto=proto, dport=port))
    assert (p.outcome, p.delivered_to) == (SUCCESS, "host/h2")
    assert p.packet_out.src == "10.0.2.1"
    (masq,) = nf_hops(p)
    assert (masq.chain, masq.action) == ("POSTROUTING", "masquerade")
    assert p.reply.verdict == DELIVERED and p.reply.packet_out.dst == "10.0.1.2"
    assert any(h.event == "conntrack" and "un-SNAT" in h.detail for h in p.reply.hops)


def test_masquerade_uses_the_address_on_the_next_hops_network():
    b = router_lab(route_back=False)
    r = b.world.namespaces["host/r"]
    eth2 = r.links["eth2"]
    b.apply(O.DelAddress("host/r", "eth2", "10.0.2.1", 24))
    b.apply(O.AddAddress("host/r", "eth2", "10.0.3.1", 24))
    b.apply(O.AddAddress("host/r", "eth2", "10.0.2.1", 24))
    assert [a.ip for a in eth2.addresses] == ["10.0.3.1", "10.0.2.1"]
    rule(b, "host/r", "nat", "POSTROUTING", "-o eth2 -j MASQUERADE")
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80))
    assert (p.outcome, p.packet_out.src) == (SUCCESS, "10.0.2.1")


def test_masquerade_follows_the_egress_device_both_ways():
    b = router_lab()
    listen(b, "host/h1", "tcp", 80)
    rule(b, "host/r", "nat", "POSTROUTING", "-j MASQUERADE")
    there = one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, sport=41010))
    back = one(trace(b.world, "host/h2", "10.0.1.2", proto="tcp", dport=80, sport=41011))
    assert (there.outcome, there.packet_out.src) == (SUCCESS, "10.0.2.1")
    assert (back.outcome, back.packet_out.src) == (SUCCESS, "10.0.1.1")


def test_two_flows_that_collide_after_snat_get_another_source_port():
    b = router_lab(route_back=False)
    b.apply(O.AddAddress("host/h1", "eth0", "10.0.1.3", 24))
    rule(b, "host/r", "nat", "POSTROUTING", "-s 10.0.1.0/24 -j MASQUERADE")
    first = one(trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53, sport=5000,
                      src="10.0.1.2"))
    second = one(trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53, sport=5000,
                       src="10.0.1.3"))
    assert (first.packet_out.src, first.packet_out.sport) == ("10.0.2.1", 5000)
    assert (second.packet_out.src, second.packet_out.sport) == ("10.0.2.1", 5001)
    assert second.outcome == SUCCESS and second.reply.packet_out.dst == "10.0.1.3"


def test_an_icmp_error_is_un_nated_with_the_packet_it_quotes():
    b = router_lab(route_back=False)
    rule(b, "host/r", "nat", "POSTROUTING", "-s 10.0.1.0/24 -j MASQUERADE")
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=99))
    assert (p.verdict, p.outcome) == (NO_LISTENER, REFUSED)
    error = p.reply.packet_out
    assert (error.icmp_type, error.icmp_code, error.dst) == (3, 3, "10.0.1.2")
    assert error.inner.src == "10.0.1.2"


# --- conntrack state: FORWARD DROP with ESTABLISHED,RELATED -------------------------------------

STATEFUL = ("-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "-i eth1 -o eth2 -j ACCEPT")


@pytest.mark.parametrize("src,dst,proto,port,expect", [
    ("host/h1", "10.0.2.2", "tcp", 80, SUCCESS),
    ("host/h1", "10.0.2.2", "icmp", None, SUCCESS),
    ("host/h1", "10.0.2.2", "udp", 53, SUCCESS),
    ("host/h1", "10.0.2.2", "udp", 99, REFUSED),      # the ICMP error is RELATED
    ("host/h2", "10.0.1.2", "icmp", None, TIMEOUT),   # a new connection the other way
], ids=["tcp", "ping", "udp", "udp-closed-port-related", "reverse-ping-dropped"])
def test_forward_drop_policy_with_established_related_accept(src, dst, proto, port, expect):
    b = router_lab()
    rule(b, "host/r", "filter", "FORWARD", *STATEFUL, policy="DROP")
    p = one(trace(b.world, src, dst, proto=proto, dport=port))
    assert p.outcome == expect, p.to_json()


def test_forward_drop_policy_without_the_established_rule_drops_the_replies():
    b = router_lab()
    rule(b, "host/r", "filter", "FORWARD", "-i eth1 -o eth2 -j ACCEPT", policy="DROP")
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80))
    assert (p.verdict, p.outcome) == (DELIVERED, TIMEOUT)
    assert p.reply.verdict == DROPPED
    assert p.reply.diagnosis.startswith("the FORWARD policy of filter on host/r is DROP")
    assert "--ctstate ESTABLISHED,RELATED -j ACCEPT" in p.reply.diagnosis
    assert "does not get back" in p.diagnosis
    udp = one(trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53))
    assert udp.outcome == SUCCESS   # the datagram itself arrives


def test_the_forward_policy_diagnosis_suggests_an_accept_rule():
    b = router_lab()
    rule(b, "host/r", "filter", "FORWARD", policy="DROP")
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80))
    assert (p.verdict, p.outcome) == (DROPPED, TIMEOUT)
    assert p.diagnosis == ("the FORWARD policy of filter on host/r is DROP and no rule accepts "
                           "this packet — add e.g. ip netns exec r iptables -A FORWARD "
                           "-s 10.0.1.0/24 -j ACCEPT")
    (policy,) = nf_hops(p)
    assert (policy.rule, policy.action) == ("-P FORWARD DROP", "drop")


def test_a_drop_rule_is_named_with_its_position():
    b = router_lab()
    rule(b, "host/r", "filter", "FORWARD", "-p udp -j ACCEPT", "-s 10.0.9.0/24 -j DROP",
         "-s 10.0.1.0/24 -p tcp -j DROP")
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80))
    assert p.verdict == DROPPED
    assert p.diagnosis == ("dropped by `-A FORWARD -s 10.0.1.0/24 -p tcp -j DROP` (filter "
                           "FORWARD, rule 3) on host/r")
    (hop,) = nf_hops(p)
    assert hop.extra["position"] == 3 and hop.action == "drop"


# --- nat sees only a connection's first packet ---------------------------------------------------

def test_nat_is_not_consulted_for_an_established_flow():
    b = router_lab()
    rule(b, "host/r", "nat", "PREROUTING",
         "-p udp -m udp --dport 5353 -j DNAT --to-destination 10.0.2.2:53")
    first = one(trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53, sport=43053))
    assert first.packet_out.dport == 53
    rule(b, "host/r", "nat", "PREROUTING",
         "-p udp -m udp --dport 53 -j DNAT --to-destination 10.0.2.2:54")
    again = one(trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53, sport=43053))
    assert again.packet_out.dport == 53
    assert not [h for h in again.hops if h.table == "nat"], "nat walked for an ESTABLISHED packet"
    fresh = one(trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53, sport=43054))
    assert fresh.packet_out.dport == 54


def test_the_second_packet_of_a_flow_reuses_its_binding_not_a_new_fork():
    b = router_lab()
    kube_service(b)
    first = trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80, sport=42000, pick=2)
    assert first.paths[0].packet_out.dport == 82
    again = trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80, sport=42000,
                  conntrack="continue")
    (p,) = again.paths
    assert p.probability == 1.0 and p.packet_out.dport == 82
    assert any(h.event == "conntrack" and "not consulted" in h.detail for h in p.hops)


def test_conntrack_starts_with_the_first_rule_that_needs_it():
    b = router_lab()
    first = one(trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53, sport=43153))
    assert first.packet_out.dport == 53
    assert b.world.namespaces["host/r"].conntrack == []
    rule(b, "host/r", "nat", "PREROUTING",
         "-p udp -m udp --dport 53 -j DNAT --to-destination 10.0.2.2:54")
    again = one(trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53, sport=43153))
    assert again.packet_out.dport == 54


def test_a_ping_is_a_new_connection_each_time():
    b = router_lab(route_back=False)
    rule(b, "host/r", "nat", "PREROUTING", "-p tcp -j ACCEPT")     # conntrack runs on r
    assert one(trace(b.world, "host/h1", "10.0.2.2")).outcome == TIMEOUT
    rule(b, "host/r", "nat", "POSTROUTING", "-s 10.0.1.0/24 -j MASQUERADE")
    assert one(trace(b.world, "host/h1", "10.0.2.2")).outcome == SUCCESS


# --- the conntrack table a trace leaves --------------------------------------------------------

def test_conntrack_table_after_a_masqueraded_connection():
    b = router_lab(route_back=False)
    rule(b, "host/r", "nat", "POSTROUTING", "-s 10.0.1.0/24 -j MASQUERADE")
    trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80)
    (entry,) = b.world.namespaces["host/r"].conntrack
    assert entry.orig == ("10.0.1.2", 40000, "10.0.2.2", 80)
    assert entry.reply == ("10.0.2.2", 80, "10.0.2.1", 40000)
    assert entry.state == "TIME_WAIT"
    assert {"SEEN_REPLY", "ASSURED", "SNAT"} <= set(entry.status)
    assert b.world.namespaces["host/h1"].conntrack == []     # no rules there: no conntrack


@pytest.mark.parametrize("proto,port,entries,status", [
    ("tcp", 99, 0, None),                 # answered only by a RST: the entry goes
    ("udp", 99, 1, ["UNREPLIED"]),        # answered by ICMP: stays UNREPLIED
    ("udp", 53, 1, ["SEEN_REPLY"]),
], ids=["tcp-rst", "udp-icmp-error", "udp-answered"])
def test_conntrack_entries_follow_the_answer(proto, port, entries, status):
    b = router_lab()
    rule(b, "host/r", "nat", "PREROUTING", "-p tcp -m tcp --dport 1 -j ACCEPT")
    trace(b.world, "host/h1", "10.0.2.2", proto=proto, dport=port)
    table = b.world.namespaces["host/r"].conntrack
    assert len(table) == entries
    if status is not None:
        assert table[0].status == status


def test_a_packet_dropped_before_confirmation_leaves_no_entry():
    b = router_lab()
    rule(b, "host/r", "nat", "POSTROUTING", "-j MASQUERADE")
    rule(b, "host/r", "filter", "FORWARD", "-j DROP")
    trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53)
    assert b.world.namespaces["host/r"].conntrack == []


def test_record_false_leaves_the_world_alone():
    b = router_lab()
    rule(b, "host/r", "nat", "POSTROUTING", "-j MASQUERADE")
    trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53, record=False)
    assert b.world.namespaces["host/r"].conntrack == []


# --- REJECT ------------------------------------------------------------------------------------

REJECTS = ("-p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset",
           "-p tcp -m tcp --dport 81 -j REJECT --reject-with icmp-port-unreachable",
           "-p tcp -m tcp --dport 82 -j REJECT --reject-with icmp-host-unreachable",
           "-p udp -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable",
           "-p icmp -j REJECT --reject-with icmp-port-unreachable")


@pytest.mark.parametrize("proto,port,outcome,answer", [
    ("tcp", 80, REFUSED, ("tcp", "10.0.2.2", "RA")),
    ("tcp", 81, REFUSED, ("icmp", "10.0.1.1", (3, 3))),
    ("tcp", 82, UNREACHABLE, ("icmp", "10.0.1.1", (3, 1))),
    ("udp", 53, REFUSED, ("icmp", "10.0.1.1", (3, 3))),
    ("icmp", None, REFUSED, ("icmp", "10.0.1.1", (3, 3))),
], ids=["tcp-reset", "tcp-port-unreachable", "tcp-host-unreachable", "udp", "ping"])
def test_reject_in_forward_answers(proto, port, outcome, answer):
    b = router_lab()
    rule(b, "host/r", "filter", "FORWARD", *REJECTS)
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto=proto, dport=port))
    assert (p.verdict, p.outcome) == (REJECTED, outcome)
    got = p.reply.packet_out
    kind, src, what = answer
    assert (got.proto, got.src, got.dst) == (kind, src, "10.0.1.2")
    assert (got.tcp_flags if kind == "tcp" else (got.icmp_type, got.icmp_code)) == what
    assert p.diagnosis.startswith("rejected by `-A FORWARD ")


def test_reject_in_forward_leaves_the_routers_own_ports_alone():
    b = router_lab()
    rule(b, "host/r", "filter", "FORWARD", *REJECTS)
    p = one(trace(b.world, "host/h1", "10.0.2.1", proto="tcp", dport=22))
    assert (p.verdict, p.outcome) == (NO_LISTENER, REFUSED)


def test_reject_in_input_answers_from_the_address_asked_for():
    b = router_lab()
    rule(b, "host/r", "filter", "INPUT", "-p icmp -j REJECT --reject-with icmp-host-prohibited")
    p = one(trace(b.world, "host/h1", "10.0.2.1"))
    assert (p.verdict, p.outcome) == (REJECTED, UNREACHABLE)
    assert (p.reply.packet_out.src, p.reply.packet_out.icmp_code) == ("10.0.2.1", 10)


# --- OUTPUT DROP and REJECT ---------------------------------------------------------------------

@pytest.mark.parametrize("target,proto,port,outcome", [
    ("DROP", "icmp", None, TIMEOUT),
    ("DROP", "tcp", 80, TIMEOUT),
    ("DROP", "udp", 53, ERROR),
    ("REJECT", "icmp", None, REFUSED),
    ("REJECT", "tcp", 80, REFUSED),
    ("REJECT", "udp", 53, ERROR),
], ids=["drop-ping", "drop-tcp", "drop-udp-eperm", "reject-ping", "reject-tcp",
        "reject-udp-eperm"])
def test_output_drop_and_reject(target, proto, port, outcome):
    b = router_lab()
    rule(b, "host/h1", "filter", "OUTPUT", f"-d 10.0.2.2/32 -j {target}")
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto=proto, dport=port))
    assert p.outcome == outcome, p.to_json()
    assert [h.netns for h in p.hops if h.event in ("veth", "forward")] == []
    if outcome == ERROR:
        assert "EPERM" in p.diagnosis
    if target == "REJECT" and proto == "icmp":
        # ping prints "Destination Port Unreachable" from its own address
        assert (p.reply.packet_out.src, p.reply.packet_out.icmp_code) == ("10.0.1.2", 3)
    other = one(trace(b.world, "host/h1", "10.0.1.1", proto=proto, dport=port))
    assert other.verdict in (DELIVERED, NO_LISTENER)


# --- bridges and br_netfilter ------------------------------------------------------------------

@pytest.mark.parametrize("call_iptables,proto,port,outcome", [
    ("1", "icmp", None, TIMEOUT),
    ("1", "tcp", 80, TIMEOUT),
    ("0", "icmp", None, SUCCESS),
    ("0", "tcp", 80, SUCCESS),
], ids=["br-nf-on-ping", "br-nf-on-tcp", "br-nf-off-ping", "br-nf-off-tcp"])
def test_bridged_traffic_hits_forward_only_with_br_netfilter(call_iptables, proto, port,
                                                             outcome):
    b = bridge_lab()
    rule(b, "host/root", "filter", "FORWARD", policy="DROP")
    b.apply(O.SetSysctl("host/root", "net.bridge.bridge-nf-call-iptables", call_iptables))
    p = one(trace(b.world, "host/red", "192.168.15.2", proto=proto, dport=port))
    assert p.outcome == outcome
    if outcome == TIMEOUT:
        assert p.diagnosis.startswith("the FORWARD policy of filter on host is DROP")


def test_the_hosts_own_traffic_to_a_bridged_namespace_is_not_forwarded():
    b = bridge_lab()
    rule(b, "host/root", "filter", "FORWARD", policy="DROP")
    p = one(trace(b.world, "host/root", "192.168.15.2"))
    assert p.outcome == SUCCESS
    assert not nf_hops(p) and not nf_hops(p.reply)


def test_bridged_forward_matches_the_bridge_name_and_the_ports():
    b = bridge_lab()
    rule(b, "host/root", "filter", "FORWARD",
         "-i v-net-0 -o v-net-0 -m physdev --physdev-in veth-red-br --physdev-is-bridged "
         "-j ACCEPT", "-m conntrack --ctstate ESTABLISHED -j ACCEPT", policy="DROP")
    p = one(trace(b.world, "host/red", "192.168.15.2", proto="tcp", dport=80))
    assert p.outcome == SUCCESS
    (accept,) = nf_hops(p)
    assert (accept.chain, accept.action, accept.extra["position"]) == ("FORWARD", "accept", 1)
    assert one(trace(b.world, "host/green", "192.168.15.2", proto="tcp", dport=80)).outcome \
        == TIMEOUT


@pytest.mark.parametrize("proto,port", [("tcp", 80), ("icmp", None)], ids=["tcp", "ping"])
def test_masquerade_on_the_same_bridge_rewrites_the_source(proto, port):
    b = bridge_lab()
    b.apply(O.SetSysctl("host/root", "net.ipv4.ip_forward", "1"))
    rule(b, "host/root", "nat", "POSTROUTING", "-s 192.168.15.0/24 -j MASQUERADE")
    p = one(trace(b.world, "host/red", "192.168.15.2", proto=proto, dport=port))
    assert (p.outcome, p.delivered_to) == (SUCCESS, "host/blue"), p.to_json()
    assert p.packet_out.src == "192.168.15.5"
    assert p.reply.delivered_to == "host/red"
    assert p.reply.packet_out.dst == "192.168.15.1"


@pytest.mark.parametrize("proto,port", [("tcp", 80), ("icmp", None)], ids=["tcp", "ping"])
def test_masquerade_on_the_same_bridge_needs_ip_forward_for_the_answer(proto, port):
    """The answer goes to the bridge's address; un-SNATed in PREROUTING it is for red, which
    the host must route (an input route lookup), and forwarding is off: dropped."""
    b = bridge_lab()
    rule(b, "host/root", "nat", "POSTROUTING", "-s 192.168.15.0/24 -j MASQUERADE")
    p = one(trace(b.world, "host/red", "192.168.15.2", proto=proto, dport=port))
    assert (p.verdict, p.outcome) == (DELIVERED, TIMEOUT)
    assert p.reply.verdict == FORWARDING_DISABLED
    assert "sysctl -w net.ipv4.ip_forward=1" in p.reply.diagnosis


@pytest.mark.parametrize("forward,outcome", [("1", SUCCESS), ("0", TIMEOUT)],
                         ids=["ip-forward-on", "ip-forward-off"])
def test_dnat_on_a_bridge_to_a_neighbour_port_is_bridged_there(forward, outcome):
    b = bridge_lab()
    b.apply(O.SetSysctl("host/root", "net.ipv4.ip_forward", forward))
    listen(b, "host/green", "tcp", 8080)
    rule(b, "host/root", "nat", "PREROUTING",
         "-d 192.168.15.2/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination "
         "192.168.15.3:8080")
    p = one(trace(b.world, "host/red", "192.168.15.2", proto="tcp", dport=80))
    assert p.outcome == outcome, p.to_json()
    if outcome == SUCCESS:
        assert p.delivered_to == "host/green"
        assert not [h for h in p.hops if h.event == "forward"], "bridged, not routed"
        assert (p.reply.packet_out.src, p.reply.packet_out.sport) == ("192.168.15.2", 80)


# --- probability forks ---------------------------------------------------------------------------

def kube_service(b):
    """A kube-proxy style ClusterIP 10.96.0.10:80 with three endpoints on h2 (ports 80-82)."""
    rule(b, "host/r", "nat", "PREROUTING", "-m comment --comment \"kubernetes service "
         "portals\" -j KUBE-SERVICES")
    rule(b, "host/r", "nat", "KUBE-SERVICES", "-d 10.96.0.10/32 -p tcp -m comment --comment "
         "\"default/web cluster IP\" -m tcp --dport 80 -j KUBE-SVC-WEB")
    rule(b, "host/r", "nat", "KUBE-SVC-WEB",
         "-m comment --comment default/web -m statistic --mode random --probability "
         "0.33333333349 -j KUBE-SEP-1",
         "-m comment --comment default/web -m statistic --mode random --probability "
         "0.50000000000 -j KUBE-SEP-2",
         "-m comment --comment default/web -j KUBE-SEP-3")
    for i, port in ((1, 80), (2, 81), (3, 82)):
        rule(b, "host/r", "nat", f"KUBE-SEP-{i}", f"-p tcp -m comment --comment default/web "
             f"-m tcp -j DNAT --to-destination 10.0.2.2:{port}")


def test_statistic_forks_a_service_into_three_paths_at_one_third():
    b = router_lab()
    kube_service(b)
    t = trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80)
    assert [p.packet_out.dport for p in t.paths] == [80, 81, 82]
    assert [round(p.probability, 6) for p in t.paths] == [0.333333] * 3
    assert math.isclose(sum(p.probability for p in t.paths), 1.0, abs_tol=1e-9)
    assert all(p.outcome == SUCCESS for p in t.paths)
    sep = [h for h in t.paths[1].hops if h.chain == "KUBE-SVC-WEB"]
    assert [(h.action, h.extra["position"]) for h in sep] == [("jump", 2)]
    assert t.to_json()["paths"][2]["probability"] == t.paths[2].probability


def test_pick_keeps_one_path_and_a_seed_is_reproducible():
    b = router_lab()
    kube_service(b)
    picked = trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80, pick=1)
    (p,) = picked.paths
    assert p.packet_out.dport == 81 and math.isclose(p.probability, 1 / 3, rel_tol=1e-6)
    seeded = [trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80, seed=7)
              for _ in range(2)]
    assert seeded[0].paths[0].packet_out == seeded[1].paths[0].packet_out
    ports = {trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80, seed=s)
             .paths[0].packet_out.dport for s in range(30)}
    assert ports == {80, 81, 82}
    with pytest.raises(CommandError, match="3 path"):
        trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80, pick=3)


# --- chain walk: goto, mark, hook order ----------------------------------------------------------

@pytest.mark.parametrize("verb,verdict", [("-g", DELIVERED), ("-j", DROPPED)],
                         ids=["goto-does-not-return", "jump-returns"])
def test_goto_does_not_return_to_the_chain_that_went(verb, verdict):
    b = router_lab()
    rule(b, "host/r", "filter", "FORWARD", "-p tcp -j X")
    rule(b, "host/r", "filter", "X", f"{verb} Y", "-j DROP")
    rule(b, "host/r", "filter", "Y", "-p udp -j DROP")
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80))
    assert p.verdict == verdict


def test_a_mark_set_in_mangle_is_matched_in_filter():
    b = router_lab()
    rule(b, "host/r", "filter", "FORWARD", "-m mark --mark 0x1 -j DROP")
    assert one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80)).outcome == SUCCESS
    rule(b, "host/r", "mangle", "PREROUTING", "-s 10.0.1.2/32 -j MARK --set-mark 0x1")
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80))
    assert p.verdict == DROPPED and "(filter FORWARD, rule 1)" in p.diagnosis
    mark = [h for h in p.hops if h.action == "mark"]
    assert mark and "0x0 → 0x1" in mark[0].detail


def test_the_mark_does_not_cross_into_another_namespace():
    b = router_lab()
    rule(b, "host/h1", "mangle", "OUTPUT", "-j MARK --set-mark 0x1")
    rule(b, "host/r", "filter", "FORWARD", "-m mark --mark 0x1 -j DROP")
    assert one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80)).outcome == SUCCESS


def log_everywhere(b, ns: str) -> None:
    from netlab.model.netfilter import BUILTIN_CHAINS

    for table, chains in BUILTIN_CHAINS.items():
        for chain in chains:
            rule(b, ns, table, chain, f"-j LOG --log-prefix \"{table}-{chain} \"")


@dataclass(frozen=True)
class Order:
    id: str
    src: str
    dst: str
    netns: str
    path: list = field(default_factory=list)
    reply: list = field(default_factory=list)


ORDERS = [
    Order("forwarded", "host/h1", "10.0.2.2", "r",
          [("raw", "PREROUTING"), ("mangle", "PREROUTING"), ("nat", "PREROUTING"),
           ("mangle", "FORWARD"), ("filter", "FORWARD"), ("mangle", "POSTROUTING"),
           ("nat", "POSTROUTING")],
          # the reply is ESTABLISHED: no nat chain
          [("raw", "PREROUTING"), ("mangle", "PREROUTING"), ("mangle", "FORWARD"),
           ("filter", "FORWARD"), ("mangle", "POSTROUTING")]),
    Order("local-delivery", "host/h1", "10.0.1.1", "r",
          [("raw", "PREROUTING"), ("mangle", "PREROUTING"), ("nat", "PREROUTING"),
           ("mangle", "INPUT"), ("filter", "INPUT"), ("nat", "INPUT")],
          [("raw", "OUTPUT"), ("mangle", "OUTPUT"), ("filter", "OUTPUT"),
           ("mangle", "POSTROUTING")]),
    Order("locally-generated", "host/r", "10.0.2.2", "r",
          [("raw", "OUTPUT"), ("mangle", "OUTPUT"), ("nat", "OUTPUT"), ("filter", "OUTPUT"),
           ("mangle", "POSTROUTING"), ("nat", "POSTROUTING")],
          [("raw", "PREROUTING"), ("mangle", "PREROUTING"), ("mangle", "INPUT"),
           ("filter", "INPUT")]),
    # to itself over lo: the nat chains of PREROUTING and INPUT are not consulted again
    Order("loopback", "host/r", "10.0.2.1", "r",
          [("raw", "OUTPUT"), ("mangle", "OUTPUT"), ("nat", "OUTPUT"), ("filter", "OUTPUT"),
           ("mangle", "POSTROUTING"), ("nat", "POSTROUTING"), ("raw", "PREROUTING"),
           ("mangle", "PREROUTING"), ("mangle", "INPUT"), ("filter", "INPUT")]),
]


@pytest.mark.parametrize("case", ORDERS, ids=[o.id for o in ORDERS])
def test_hook_order(case):
    b = router_lab()
    log_everywhere(b, "host/r")
    p = one(trace(b.world, case.src, case.dst, proto="tcp", dport=80))
    assert chains_crossed(p, case.netns)[:len(case.path)] == case.path
    if case.reply:
        assert chains_crossed(p.reply, case.netns) == case.reply


def test_bridged_hook_order_and_devices():
    b = bridge_lab()
    log_everywhere(b, "host/root")
    p = one(trace(b.world, "host/red", "192.168.15.2", proto="tcp", dport=80))
    assert chains_crossed(p, "root") == [
        ("raw", "PREROUTING"), ("mangle", "PREROUTING"), ("nat", "PREROUTING"),
        ("mangle", "FORWARD"), ("filter", "FORWARD"), ("mangle", "POSTROUTING"),
        ("nat", "POSTROUTING")]


def test_notrack_in_raw_leaves_the_packet_untranslated():
    b = router_lab()
    rule(b, "host/r", "nat", "PREROUTING",
         "-d 10.0.1.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.2.2:80")
    rule(b, "host/r", "raw", "PREROUTING", "-p tcp -m tcp --dport 8080 -j NOTRACK")
    p = one(trace(b.world, "host/h1", "10.0.1.1", proto="tcp", dport=8080))
    assert (p.outcome, p.delivered_to) == (REFUSED, "host/r")


def test_redirect_sends_to_the_address_of_the_incoming_interface():
    b = router_lab()
    listen(b, "host/r", "tcp", 3128)
    rule(b, "host/r", "nat", "PREROUTING", "-p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128")
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80))
    assert (p.outcome, p.delivered_to) == (SUCCESS, "host/r")
    assert (p.packet_out.dst, p.packet_out.dport) == ("10.0.1.1", 3128)
    assert (p.reply.packet_out.src, p.reply.packet_out.sport) == ("10.0.2.2", 80)


def test_a_namespace_without_rules_behaves_as_before():
    b = router_lab()
    p = one(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80))
    assert not nf_hops(p) and not [h for h in p.hops if h.event == "conntrack"]
    assert all(ns.conntrack == [] for ns in b.world.namespaces.values())


# --- the index: the positions of a linear walk ---------------------------------------------------

def long_chain(b):
    bodies = []
    for i in range(60):
        bodies.append(f"-d 10.0.2.{100 + i}/32 -p tcp -m comment --comment \"svc {i}\" -m tcp "
                      f"--dport 80 -j ACCEPT")
        if i % 7 == 3:
            bodies.append(f"-s 10.0.1.0/24 -p udp -j LOG --log-prefix \"u{i} \"")
        if i == 40:
            bodies.append("-d 10.0.2.2/32 -p tcp -m tcp --dport 81 -j DROP")
            bodies.append("-d 10.0.2.2/32 -p tcp -m tcp --dport 80 -j LOG --log-prefix hit")
            bodies.append("-d 10.0.2.2/32 -j DROP")
    rule(b, "host/r", "filter", "FORWARD", *bodies)


@pytest.mark.parametrize("proto,port", [("tcp", 80), ("tcp", 81), ("udp", 53), ("icmp", None)],
                         ids=["tcp80", "tcp81", "udp", "icmp"])
def test_the_index_reports_the_positions_of_a_linear_walk(monkeypatch, proto, port):
    def hops_with(min_rules):
        monkeypatch.setattr(nf, "INDEX_MIN_RULES", min_rules)
        b = router_lab()
        long_chain(b)
        p = one(trace(b.world, "host/h1", "10.0.2.2", proto=proto, dport=port))
        return [(h.rule, h.action, h.extra) for h in nf_hops(p)], p.verdict

    indexed, linear = hops_with(16), hops_with(10 ** 9)
    assert indexed == linear
    assert indexed[0][0]


def test_index_keys():
    key = nf.index_key(parse_rule("-d 10.96.0.10/32 -p tcp -m comment --comment x -m tcp "
                                    "--dport 53 -j KUBE-SVC-X"))
    assert key == (nf.ip_int("10.96.0.10"), "tcp", 53)
    for body in ("-d 10.0.0.0/8 -j ACCEPT", "! -d 10.0.0.1/32 -j ACCEPT",
                 "-s 1.2.3.4/32 -d 10.0.0.1/32 -j ACCEPT",
                 "-d 10.0.0.1/32 -p tcp -m tcp ! --dport 80 -j ACCEPT",
                 "-d 10.0.0.1/32 -m addrtype --dst-type LOCAL -j ACCEPT"):
        assert nf.index_key(parse_rule(body)) is None, body


# --- the compiled built-in matches agree with the rule language's -----------------------------

BUILTIN_RULES = ["-s 10.0.1.0/24 -j ACCEPT", "! -s 10.0.1.0/24 -j ACCEPT",
                 "-d 10.0.2.2/32 -j ACCEPT", "! -d 10.0.2.0/24 -j ACCEPT",
                 "-s 0.0.0.0/0 -j ACCEPT", "-p tcp -j ACCEPT", "! -p tcp -j ACCEPT",
                 "-p udp -j ACCEPT", "-p icmp -j ACCEPT", "-p all -j ACCEPT",
                 "-i eth1 -j ACCEPT", "! -i eth1 -j ACCEPT", "-i eth+ -j ACCEPT",
                 "-i veth+ -j ACCEPT", "-o eth2 -j ACCEPT", "! -o eth+ -j ACCEPT",
                 "-s 10.0.1.2/32 -d 10.0.2.0/24 -p tcp -i eth1 -o eth2 -j ACCEPT"]
BUILTIN_PACKETS = [("tcp", "10.0.1.2", "10.0.2.2", "eth1", "eth2"),
                   ("udp", "10.0.1.9", "10.0.3.1", "eth1", None),
                   ("icmp", "192.168.1.1", "10.0.2.2", None, "eth2"),
                   ("tcp", "10.0.2.2", "10.0.1.2", "veth0", "eth1")]


@pytest.mark.parametrize("body", BUILTIN_RULES)
def test_compiled_builtin_matches_agree_with_the_rule_language(body):
    from netlab.netfilter.types import PacketView
    from netlab.trace import Packet

    parsed = parse_rule(body)
    compiled = nf.CompiledRule(parsed, body)
    for proto, src, dst, i, o in BUILTIN_PACKETS:
        pkt = Packet(proto, src=src, dst=dst, sport=1 if proto != "icmp" else None,
                     dport=2 if proto != "icmp" else None)
        view = PacketView(packet=pkt, table="filter", hook="FORWARD", in_dev=i, out_dev=o)
        expect = builtin_matches(parsed, view)
        got = compiled.builtin(nf.ip_int(src), nf.ip_int(dst), proto, view)
        assert got == expect, (body, proto, src, dst, i, o)


# --- more of the bridge: REJECT there, INPUT of frames for the bridge itself ---------------------

def test_reject_with_tcp_reset_between_two_ports_of_a_bridge():
    b = bridge_lab()
    rule(b, "host/root", "filter", "FORWARD",
         "-p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset")
    p = one(trace(b.world, "host/red", "192.168.15.2", proto="tcp", dport=80))
    assert (p.verdict, p.outcome) == (REJECTED, REFUSED)
    assert (p.reply.packet_out.src, p.reply.packet_out.tcp_flags) == ("192.168.15.2", "RA")


def test_frames_for_the_bridge_itself_cross_input_with_their_port():
    b = bridge_lab()
    rule(b, "host/root", "filter", "INPUT",
         "-i v-net-0 -m physdev --physdev-in veth-red-br -j DROP")
    assert one(trace(b.world, "host/red", "192.168.15.5")).verdict == DROPPED
    assert one(trace(b.world, "host/blue", "192.168.15.5")).outcome == SUCCESS


def test_dnat_in_prerouting_then_router_errors_are_related_and_un_nated():
    """The router has no route to the DNAT target: its "net unreachable" is RELATED to the
    connection and is un-DNATed (source and quoted packet) on the way back."""
    b = router_lab()
    rule(b, "host/r", "nat", "PREROUTING",
         "-d 10.96.0.10/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.9.9.9:80")
    p = one(trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=8080))
    assert p.outcome == UNREACHABLE, p.to_json()
    error = p.reply.packet_out
    assert (error.icmp_type, error.icmp_code) == (3, 0)
    # nf_nat_icmp_reply_translation: the quoted packet is the one h1 sent, and the outer
    # source is rewritten like a reply's (the error seems to come from the Service address)
    assert (error.inner.dst, error.inner.dport) == ("10.96.0.10", 8080)
    assert error.src == "10.96.0.10"


def test_trace_refuses_an_unknown_conntrack_mode():
    b = router_lab()
    with pytest.raises(CommandError):
        trace(b.world, "host/h1", "10.0.2.2", conntrack="maybe")


@pytest.mark.parametrize("body", [
    '-d 10.96.0.10/32 -p tcp -m comment --comment "kube-system/kube-dns:dns-tcp cluster IP" '
    '-m tcp --dport 53 -j KUBE-SVC-ERIFXISQEP7F7OF4',
    '-d 10.96.0.10/32 -p udp -m comment --comment "a \\"quoted\\" one" -m udp --dport 53 '
    '-j KUBE-SVC-X',
    "-d 10.96.0.1/32 -p tcp -m comment --comment default/kubernetes:https -m tcp --dport 443 "
    "-j KUBE-SVC-NPX46M4PTMTKRN6Y",
    "-d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.1.1.1:8080",
    "-d 10.0.0.1/32 -p tcp -m tcp --dport 80 -m comment --comment after -j ACCEPT",
    # not for the quick reader: the full parse decides
    "-d 10.0.0.1/32 -p tcp -m tcp --dport 80 -m mark --mark 0x1 -j ACCEPT",
    "-d 10.0.0.1/32 -p tcp -m tcp --dport 80:90 -j ACCEPT",
    "-s 10.0.0.0/8 -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j ACCEPT",
    "-d 10.0.0.1/32 -p tcp -m tcp ! --dport 80 -j ACCEPT",
])
def test_the_quick_index_reader_agrees_with_the_parsed_rule(body):
    quick = nf.quick_index_key(body)
    parsed = nf.index_key(parse_rule(body))
    assert quick is None or quick == parsed
    if "--comment" in body and "mark" not in body:
        assert quick is not None
