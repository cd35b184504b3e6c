"""The trace engine's fast paths give what the full computation gives: a kept walk replayed
straight from the skb (no PacketView) equals the walk asked with a view, its key made from
the skb equals the one made from the view, what a received packet's addresses decide
(kept per namespace, link, source and destination) equals what is computed from nothing
kept, and a namespace's cached key follows its node and name."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import sys
from pathlib import Path

import pytest

from netlab.dataplane import engine, netfilter, trace
from netlab.dataplane.conntrack import ESTABLISHED, INVALID, NEW, ORIGINAL, REPLY, Conn, Tuple
from netlab.k8s.build import build_model
from netlab.model import Netns, World
from netlab.trace import Packet
from tests.unit.test_trace_caches import (
    as_json, cold, conntrack_json, iptables, random_lab_worlds, router_lab,
)

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "privileged"))


def _traces(world, cases, monkeypatch, fast: bool) -> list[str]:
    """Every trace of ``cases`` twice over on one World (the second pass meets the walks
    the first kept), all branches and one branch, then the conntrack a recorded trace
    writes, on a copy; with the fast paths on, or every walk asked with a view."""
    monkeypatch.setattr(engine, "KEPT_WALKS", fast)
    cold(world)
    out = []
    for _ in range(2):
        for src, dst, proto, port in cases:
            for kw in ({}, {"seed": 3}):
                out.append(as_json(trace(world, src, dst, proto=proto, dport=port,
                                         record=False, **kw)))
    recorded = copy.deepcopy(world)
    for src, dst, proto, port in cases[:: max(1, len(cases) // 10)]:
        out.append(as_json(trace(recorded, src, dst, proto=proto, dport=port, record=True)))
        out.append(conntrack_json(recorded))
    monkeypatch.undo()
    return out


def _oracle(world, cases, monkeypatch, why="") -> None:
    assert cases
    assert _traces(world, cases, monkeypatch, True) == _traces(world, cases, monkeypatch, False), \
        why


def _cold_and_warm(world, cases, why="") -> None:
    """Each trace computed from nothing kept equals it traced again on what it kept."""
    for src, dst, proto, port in cases:
        cold(world)
        computed = as_json(trace(world, src, dst, proto=proto, dport=port, record=False))
        again = as_json(trace(world, src, dst, proto=proto, dport=port, record=False))
        assert again == computed, (why, src, dst, proto, port)


# --- kept walks replayed from the skb ---------------------------------------------------------

def test_kept_walks_replayed_from_the_skb_give_the_walks_asked_with_a_view_in_random_labs(
        monkeypatch, tmp_path):
    """Random labs (filter, nat and mangle rules, marks and connmarks, ctstates, -i/-o,
    NOTRACK): the same traces and recorded conntrack with the fast path and without."""
    for lab, world, cases in random_lab_worlds(16, tmp_path, "fast"):
        if cases:
            _oracle(world, cases, monkeypatch, lab.yaml())


@pytest.mark.parametrize("seed", range(6))
def test_kept_walks_replayed_from_the_skb_in_random_clusters(seed, monkeypatch):
    """Random clusters: NodePorts, LoadBalancers, Local traffic policies, affinity,
    Services without endpoints."""
    from k8s_services_random import random_cluster
    from tests.unit.test_trace_caches import _cluster_probes

    c = random_cluster(seed)
    world = build_model(c).world
    cases = _cluster_probes(c, world)
    _oracle(world, cases[:: max(1, len(cases) // 80)], monkeypatch, seed)


def test_a_mark_and_a_connmark_left_by_a_kept_walk_are_seen_by_the_next_tables(monkeypatch):
    """MARK in mangle and CONNMARK in filter, read by the rules of later hooks: the marks a
    replayed walk leaves on the skb are those the walk left on its view."""
    b = router_lab()
    for line in ("mangle -A PREROUTING -p tcp -j MARK --set-mark 7",
                 "mangle -A FORWARD -m mark --mark 7 -j CONNMARK --save-mark",
                 "filter -A FORWARD -m connmark --mark 7 -j ACCEPT",
                 "filter -A FORWARD -m mark --mark 7 -j LOG",
                 "filter -P FORWARD DROP",
                 "nat -A POSTROUTING -m mark --mark 7 -j MASQUERADE"):
        iptables(b, "host/r", line)
    cases = [("host/h1", "10.0.2.2", "tcp", port) for port in (80, 81)] + \
        [("host/h1", "10.0.2.2", "udp", 53)]
    _oracle(b.world, cases, monkeypatch)
    monkeypatch.setattr(engine, "KEPT_WALKS", True)
    cold(b.world)
    first = as_json(trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False))
    assert "MASQUERADE" in first and '"verdict": "delivered"' in first, first


def test_a_warm_trace_makes_no_packet_view_but_for_a_fork(monkeypatch):
    """The fast path is taken: traced again, a trace without a probability fork builds no
    PacketView; one through kube-proxy's statistic chain builds one for that walk only."""
    from tests.unit.test_trace_caches import kube_service

    b = router_lab()
    iptables(b, "host/r", "filter -A FORWARD -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT")
    views = []
    real = engine._Walk._view
    monkeypatch.setattr(engine._Walk, "_view", lambda self, *a: views.append(a[2]) or
                        real(self, *a))
    cold(b.world)
    trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False)
    assert views
    views.clear()
    trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False)
    assert views == []
    kube_service(b)
    trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80, record=False)
    views.clear()
    got = trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80, record=False)
    assert len(got.paths) == 3
    assert views and set(views) == {"PREROUTING"}, views       # the nat walk that forks


_STATES = [
    dict(untracked=True),
    dict(state=INVALID),
    dict(),
    dict(conn=True, state=NEW, direction=ORIGINAL, status=set()),
    dict(conn=True, state=None, direction=ORIGINAL, status={"CONFIRMED"}),
    dict(conn=True, state=ESTABLISHED, direction=REPLY, status={"CONFIRMED", "SEEN_REPLY",
                                                                "DNAT"}, connmark=5),
]


@pytest.mark.parametrize("reads", [None, frozenset(), frozenset({"ct_state"}),
                                   frozenset({"ct_dir", "mark", "src"}),
                                   frozenset({"ct_tuples", "ct_mark", "in_dev", "out_dev"}),
                                   frozenset({"conn", "packet"})], ids=str)
@pytest.mark.parametrize("state", range(len(_STATES)))
def test_a_walks_key_made_from_the_skb_is_the_one_made_from_its_view(state, reads,
                                                                     monkeypatch):
    """netfilter.walk_key from the skb (engine._conn_of) and from the PacketView the engine
    would build (engine._view, netfilter._walk_key) are equal for every conntrack state
    and every set of what the rules read; and they tell the states apart."""
    b = router_lab()
    iptables(b, "host/r", "filter -A FORWARD -m conntrack --ctstate NEW -j ACCEPT")
    ns = b.world.namespaces["host/r"]
    table = netfilter.rules_of(b.world, ns).table("filter")
    assert table.uses_conn
    walker = engine._Walk(b.world, engine.static_of(b.world), ns)
    where = ("eth0", "eth1", None, None, False)

    def skb_of(spec):
        pkt = Packet("tcp", "10.0.1.2", "10.0.2.2", 40000, 80, 63, None, None, "S")
        skb = engine._Skb(pkt, mark=3)
        skb.untracked = spec.get("untracked", False)
        skb.state = spec.get("state")
        if spec.get("conn"):
            skb.conn = Conn("tcp", Tuple("10.0.1.2", 40000, "10.0.2.2", 80),
                            Tuple("10.0.2.2", 80, "10.0.1.2", 40000), set(spec["status"]),
                            mark=spec.get("connmark", 0))
            skb.direction, skb.ct_ns = spec["direction"], ns
        return skb

    keys = []
    for spec in _STATES:
        skb = skb_of(spec)
        view = walker._view(ns, table, "FORWARD", skb, where)
        from_view = netfilter._walk_key(table, "FORWARD", view, reads)
        from_skb = netfilter.walk_key(table, "FORWARD", reads, skb.pkt, where, skb.mark,
                                      engine._Walk._conn_of(skb))
        assert from_skb == from_view, spec
        keys.append(from_skb)
    if reads is None or "conn" in reads:
        assert len(set(keys)) == len(keys)


# --- what a received packet's addresses decide ---------------------------------------------------

def test_arrivals_kept_give_the_traces_computed_in_random_labs(tmp_path):
    """Martian sources, rp_filter, local delivery and forwarding (random labs set
    rp_filter, accept_local, forwarding and routes): a trace met by kept arrivals equals
    the one computed from nothing kept."""
    for lab, world, cases in random_lab_worlds(16, tmp_path, "fast"):
        _cold_and_warm(world, cases, lab.yaml())


@pytest.mark.parametrize("rp_filter, accept_local",
                         [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1)])
def test_martian_sources_and_rp_filter_kept_give_the_traces_computed(rp_filter, accept_local):
    """h1 also holds 10.0.2.99 (on h2's side of r: rp_filter at r drops it in strict mode)
    and 10.0.2.1 (r's own address: a martian source at r unless accept_local): each source
    to each destination, kept and computed, and the verdicts the kernel gives."""
    from netlab import ops as O

    b = router_lab()
    b.apply(O.AddAddress("host/h1", "eth0", "10.0.2.99", 32))
    b.apply(O.AddAddress("host/h1", "eth0", "10.0.2.1", 32))
    b.apply(O.SetSysctl("host/r", "net.ipv4.conf.all.rp_filter", str(rp_filter)))
    if accept_local:        # not a sysctl the backend sets: the namespace's own, as read
        b.world.namespaces["host/r"].sysctls["net.ipv4.conf.all.accept_local"] = "1"
    sources = ("10.0.1.2", "10.0.2.99", "10.0.2.1")
    for dst in ("10.0.2.2", "10.0.1.1"):
        for src in sources:
            cold(b.world)
            computed = trace(b.world, "host/h1", dst, src=src, record=False)
            for other in sources:       # arrivals of the other sources kept in between
                trace(b.world, "host/h1", dst, src=other, record=False)
            kept = trace(b.world, "host/h1", dst, src=src, record=False)
            assert as_json(kept) == as_json(computed), (dst, src)
    verdict = {src: trace(b.world, "host/h1", "10.0.2.2", src=src, record=False).paths[0]
               for src in sources}
    assert verdict["10.0.1.2"].outcome == "success"
    assert (verdict["10.0.2.99"].verdict == "dropped") == (rp_filter == 1)
    martian = verdict["10.0.2.1"]
    assert (martian.verdict == "dropped") == (not accept_local or rp_filter == 1), \
        martian.diagnosis


# --- Netns.key ------------------------------------------------------------------------------------

def test_a_namespaces_key_follows_its_node_and_name():
    """The key is kept with the node and name it was made from: a new node or name, a
    replace, a deep copy and a pickle give the key of what they hold; equality, repr and
    JSON do not see it."""
    ns = Netns(node="node1", name="red")
    assert ns.key == "node1/red"
    twin = Netns(node="node1", name="red")
    assert ns == twin and repr(ns) == repr(twin)
    ns.name = "blue"
    assert ns.key == "node1/blue"
    ns.node = "node2"
    assert ns.key == "node2/blue"
    assert dataclasses.replace(ns, node="node3").key == "node3/blue"
    assert copy.deepcopy(ns).key == "node2/blue"
    assert pickle.loads(pickle.dumps(ns)).key == "node2/blue"
    moved = pickle.loads(pickle.dumps(ns))
    moved.node = "node9"
    assert moved.key == "node9/blue"
    world = World(namespaces={ns.key: ns})
    assert "_key" not in json.dumps(world.to_json())
    assert World.from_json(world.to_json()).namespaces["node2/blue"].key == "node2/blue"


def test_every_namespace_of_a_built_cluster_is_found_by_its_key():
    """Namespaces made by the CNI replay (straight-line code from a template) have the key
    of their own node and name."""
    from k8s_services_random import random_cluster

    from netlab.model import ns_key

    world = build_model(random_cluster(1)).world
    for key, ns in world.namespaces.items():
        assert ns.key == key == ns_key(ns.node, ns.name)
