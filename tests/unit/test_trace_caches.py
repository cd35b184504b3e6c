"""What the trace engine keeps between traces of one state of the World (netfilter walks,
route decisions, local addresses, carrier, ARP resolutions, frame steps, hook plans) must
never change a result: a change to the World between two traces changes the second as it
would without anything kept, a trace that meets kept answers equals one that computes
them all, and the all-branches trace of a fork is the union of its one-branch traces."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from netlab import ops as O
from netlab.errors import CommandError
from netlab.dataplane import engine, trace
from netlab.k8s.build import build_model
from netlab.k8s.cluster import load_cluster
from netlab.netfilter.types import ConnView, PacketView
from netlab.trace import (
    DELIVERED, DROPPED, FORWARDING_DISABLED, HOST_UNREACHABLE, NO_LISTENER, NO_ROUTE, SUCCESS,
    TIMEOUT,
)
from tests.unit import builders as B

SERVICES = Path(__file__).parents[1] / "data" / "k8s" / "services"


def iptables(b, ns: str, line: str) -> None:
    """One iptables change through the backend (as ``ip netns exec NS iptables …``)."""
    table, _, rule = line.partition(" ")
    b.apply(O.IptablesRestore(ns, f"*{table}\n{rule}\nCOMMIT\n", noflush=True, command=line))


def router_lab():
    b = B.router()
    for port in (80, 81, 82):
        b.apply(O.AddListener("host/h2", "tcp", port))
    b.apply(O.AddListener("host/h2", "udp", 53))
    return b


def kube_service(b) -> None:
    """ClusterIP 10.96.0.10:80 on r, three endpoints on h2 (ports 80-82), as kube-proxy."""
    for line in (
            "nat -N KUBE-SERVICES", "nat -N KUBE-SVC-WEB",
            "nat -N KUBE-SEP-1", "nat -N KUBE-SEP-2", "nat -N KUBE-SEP-3",
            "nat -A PREROUTING -j KUBE-SERVICES",
            "nat -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-WEB",
            "nat -A KUBE-SVC-WEB -m statistic --mode random --probability 0.33333333349 "
            "-j KUBE-SEP-1",
            "nat -A KUBE-SVC-WEB -m statistic --mode random --probability 0.50000000000 "
            "-j KUBE-SEP-2",
            "nat -A KUBE-SVC-WEB -j KUBE-SEP-3",
            "nat -A KUBE-SEP-1 -p tcp -m tcp -j DNAT --to-destination 10.0.2.2:80",
            "nat -A KUBE-SEP-2 -p tcp -m tcp -j DNAT --to-destination 10.0.2.2:81",
            "nat -A KUBE-SEP-3 -p tcp -m tcp -j DNAT --to-destination 10.0.2.2:82"):
        iptables(b, "host/r", line)


def cold(world) -> None:
    """Forget everything kept for the World (what any change to it does)."""
    world._generation = getattr(world, "_generation", 0) + 1


def as_json(t) -> str:
    return json.dumps(t.to_json(), sort_keys=True)


# --- a change between two traces changes the second ------------------------------------------

def test_a_drop_rule_added_between_two_traces_drops_the_second():
    b = router_lab()
    iptables(b, "host/r", "filter -A FORWARD -p tcp -m tcp --dport 80 -j ACCEPT")
    first = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False)
    assert first.paths[0].verdict == DELIVERED
    iptables(b, "host/r", "filter -I FORWARD 1 -s 10.0.1.2/32 -j DROP")
    second = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False)
    assert (second.paths[0].verdict, second.paths[0].outcome) == (DROPPED, TIMEOUT)
    iptables(b, "host/r", "filter -D FORWARD 1")
    third = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False)
    assert as_json(third) == as_json(first)


def test_a_deleted_route_makes_the_next_trace_fail_and_a_new_one_heals_it():
    b = router_lab()
    ok = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False)
    assert ok.paths[0].outcome == SUCCESS
    b.apply(O.DelRoute("host/h1", "default"))
    (p,) = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False).paths
    assert p.verdict == NO_ROUTE
    b.apply(O.AddRoute("host/h1", "10.0.2.0/24", gateway="10.0.1.1"))
    (p,) = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False).paths
    assert p.outcome == SUCCESS and "(route 10.0.2.0/24)" in p.hops[0].detail


def test_forwarding_turned_off_between_two_traces():
    b = router_lab()
    trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False)
    b.apply(O.SetSysctl("host/r", "net.ipv4.ip_forward", "0"))
    (p,) = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False).paths
    assert p.verdict == FORWARDING_DISABLED


def test_a_link_set_down_between_two_traces_breaks_arp():
    b = router_lab()
    trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False)
    b.apply(O.SetLinkUp("host/h2", "eth0", False))
    (p,) = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False).paths
    assert p.verdict == HOST_UNREACHABLE
    assert any(h.event == "arp" and "no carrier" in h.detail for h in p.hops)


def test_an_address_moved_between_two_traces_moves_the_delivery():
    b = router_lab()
    (p,) = trace(b.world, "host/h1", "10.0.1.1", proto="tcp", dport=80, record=False).paths
    assert (p.verdict, p.delivered_to) == (NO_LISTENER, "host/r")
    b.apply(O.DelAddress("host/r", "eth1", "10.0.1.1", 24))
    b.apply(O.AddAddress("host/r", "eth1", "10.0.1.9", 24))
    b.apply(O.AddRoute("host/h1", "10.0.1.1/32", gateway="10.0.1.9"))
    (p,) = trace(b.world, "host/h1", "10.0.1.1", proto="tcp", dport=80, record=False).paths
    assert p.verdict != NO_LISTENER or p.delivered_to != "host/r"
    assert not any(h.event == "deliver" and h.netns == "r" for h in p.hops)


def test_an_endpoint_changed_between_two_traces_changes_its_path_only():
    b = router_lab()
    kube_service(b)
    before = trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80, record=False)
    assert [p.packet_out.dport for p in before.paths] == [80, 81, 82]
    iptables(b, "host/r", "nat -R KUBE-SEP-2 1 -p tcp -m tcp -j DNAT --to-destination "
                          "10.0.2.2:83")
    after = trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80, record=False)
    assert [p.packet_out.dport for p in after.paths] == [80, 83, 82]
    assert after.paths[1].verdict == NO_LISTENER
    assert [p.to_json() for p in after.paths[::2]] == [p.to_json() for p in before.paths[::2]]


# --- what a kept walk is keyed on ------------------------------------------------------------

def test_the_same_packet_in_another_conntrack_state_walks_again():
    # Two identical UDP datagrams: the first opens the connection (NEW), the second is
    # ESTABLISHED (its reply was seen); a rule for ESTABLISHED drops only the second.
    b = router_lab()
    iptables(b, "host/r", "filter -A FORWARD -p udp -m conntrack --ctstate ESTABLISHED "
                          "-m udp --dport 53 -j DROP")
    (first,) = trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53, sport=45000).paths
    assert (first.verdict, first.outcome) == (DELIVERED, SUCCESS)
    (second,) = trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53, sport=45000).paths
    assert second.verdict == DROPPED
    assert "--ctstate ESTABLISHED" in second.diagnosis


def test_the_same_rules_for_another_source_walk_again():
    # Two packets that differ only in their source address meet the same FORWARD chain.
    b = router_lab()
    b.apply(O.AddAddress("host/h1", "eth0", "10.0.1.3", 24))
    iptables(b, "host/r", "filter -A FORWARD -s 10.0.1.2/32 -p tcp -j DROP")
    (there,) = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False).paths
    assert there.verdict == DROPPED
    (other,) = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, src="10.0.1.3",
                     record=False).paths
    assert (other.verdict, other.outcome) == (DELIVERED, SUCCESS)
    (there,) = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False).paths
    assert there.verdict == DROPPED


def test_a_mark_set_earlier_on_the_path_is_part_of_what_a_walk_sees():
    # OUTPUT of h1 marks half of its packets; filter OUTPUT then sees the same packet
    # with mark 0x1 on one branch and 0x0 on the other.
    b = router_lab()
    iptables(b, "host/h1", "mangle -A OUTPUT -m statistic --mode random --probability "
                           "0.50000000000 -j MARK --set-xmark 0x1/0xffffffff")
    iptables(b, "host/h1", "filter -A OUTPUT -m mark --mark 0x1 -j DROP")
    for _ in range(2):          # computed, then kept
        t = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False)
        assert [(p.verdict, p.probability) for p in t.paths] == [(DROPPED, 0.5),
                                                                   (DELIVERED, 0.5)]
    for seed in range(8):
        (p,) = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False,
                     seed=seed).paths
        marked = any(h.action == "mark" for h in p.hops)
        assert p.verdict == (DROPPED if marked else DELIVERED)


def test_a_walk_kept_for_one_conntrack_table_content_is_not_used_for_another():
    b = router_lab()
    iptables(b, "host/r", "filter -A FORWARD -m conntrack --ctstate NEW -p tcp -j ACCEPT")
    iptables(b, "host/r", "filter -A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT")
    iptables(b, "host/r", "filter -P FORWARD DROP")
    first = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, sport=46000)
    assert first.paths[0].outcome == SUCCESS
    b.apply(O.FlushConntrack("host/r"))
    cont = trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, sport=46000,
                 conntrack="continue", record=False)
    # an ACK with no entry is picked up mid-stream as NEW (nf_conntrack_tcp_loose)
    assert cont.paths[0].verdict == DELIVERED


# --- kept answers give the same traces as computed ones -----------------------------------------

@pytest.fixture(scope="module")
def cluster():
    c = load_cluster([str(SERVICES)])
    return c, build_model(c).world


def probes(c):
    from netlab.k8s.kubelet import pod_netns_key

    out = []
    for pod in c.pods:
        src = pod_netns_key(pod)
        for svc in c.services:
            for port in svc.ports:
                out.append((src, svc.cluster_ip, port.protocol.lower(), port.port))
        for other in c.pods:
            out.append((src, other.ip, "tcp", 8080))
            out.append((src, other.ip, "icmp", None))
    return out


def test_every_trace_of_a_cluster_is_the_same_cold_and_warm(cluster):
    c, world = cluster
    for src, dst, proto, port in probes(c):
        cold(world)
        computed = as_json(trace(world, src, dst, proto=proto, dport=port, record=False))
        kept = [as_json(trace(world, src, dst, proto=proto, dport=port, record=False))
                for _ in range(2)]
        assert kept == [computed, computed], (src, dst, proto, port)


def test_a_service_trace_is_the_union_of_its_one_branch_traces(cluster):
    c, world = cluster
    from netlab.k8s.kubelet import pod_netns_key

    client = next(p for p in c.pods if p.name == "client")
    web = next(s for s in c.services if s.name == "web")
    src = pod_netns_key(client)
    every = trace(world, src, web.cluster_ip, proto="tcp", dport=80, record=False)
    assert len(every.paths) == 3
    one_branch = {}
    for seed in range(40):
        (p,) = trace(world, src, web.cluster_ip, proto="tcp", dport=80, record=False,
                     seed=seed).paths
        one_branch[p.delivered_to] = json.dumps(p.to_json(), sort_keys=True)
    assert sorted(one_branch.values()) == sorted(json.dumps(p.to_json(), sort_keys=True)
                                                 for p in every.paths)
    for n in range(3):      # pick=N: the Nth path of the whole trace, kept walks or not
        (p,) = trace(world, src, web.cluster_ip, proto="tcp", dport=80, record=False,
                     pick=n).paths
        assert p.to_json() == every.paths[n].to_json()


def test_recorded_conntrack_is_the_same_cold_and_warm(cluster):
    c, world = cluster
    import copy

    from netlab.k8s.kubelet import pod_netns_key

    client = pod_netns_key(next(p for p in c.pods if p.name == "client"))
    tables = []
    for warm in (False, True):
        w = copy.deepcopy(world)
        if warm:
            trace(w, client, "10.96.0.20", proto="tcp", dport=80, sport=47000, record=False)
        t = trace(w, client, "10.96.0.20", proto="tcp", dport=80, sport=47000, pick=1)
        again = trace(w, client, "10.96.0.20", proto="tcp", dport=80, sport=47000,
                      conntrack="continue")
        tables.append((as_json(t), as_json(again),
                       {k: [dataclasses.asdict(e) for e in ns.conntrack]
                        for k, ns in w.namespaces.items() if ns.conntrack}))
    assert tables[0] == tables[1]
    assert tables[0][2]             # something was recorded


def test_the_engine_builds_every_field_of_a_packet_view():
    b = router_lab()
    iptables(b, "host/r", "filter -A FORWARD -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT")
    seen = []
    real = engine.walk

    def spy(ns, table, hook, view, choose, hops, *key):
        seen.append(view)
        return real(ns, table, hook, view, choose, hops, *key)

    engine.walk = spy
    try:
        trace(b.world, "host/h1", "10.0.2.2", proto="tcp", dport=80, record=False)
    finally:
        engine.walk = real
    names = {f.name for f in dataclasses.fields(PacketView)}
    assert seen and all(set(vars(v)) == names for v in seen)
    conns = [v.conn for v in seen if v.conn is not None]
    assert conns and all(set(vars(c)) == {f.name for f in dataclasses.fields(ConnView)}
                         for c in conns)


@pytest.mark.parametrize("where, rule, proto, port, added", [
    ("host/h1", "filter -A OUTPUT -p udp -j DROP", "udp", 53, "errno"),
    ("host/r", "nat -A POSTROUTING -j SNAT --to-source 10.9.9.9", "tcp", 80,
     "SNAT 10.0.1.2:40000 → 10.9.9.9:40000"),
    ("host/r", "nat -A PREROUTING -p tcp -j DNAT --to-destination 10.0.2.2:81", "tcp", 80,
     "DNAT 10.0.2.2:80 → 10.0.2.2:81"),
], ids=["drop-eperm", "snat", "dnat"])
def test_what_the_engine_adds_to_a_deciding_hop_is_never_kept_with_its_walk(
        where, rule, proto, port, added):
    """A kept walk shares its hops with the traces that meet it, but for the deciding one
    (a NAT, DROP or REJECT), to which the engine adds the rewrite or the errno: each trace
    gets it once, as the first did."""
    b = router_lab()
    iptables(b, where, rule)
    cold(b.world)
    first = as_json(trace(b.world, "host/h1", "10.0.2.2", proto=proto, dport=port,
                          record=False))
    again = [as_json(trace(b.world, "host/h1", "10.0.2.2", proto=proto, dport=port,
                           record=False)) for _ in range(3)]
    assert again == [first] * 3
    assert first.count(json.dumps(added)[1:-1]) == 1, first      # as_json writes \\u2192


def test_a_walk_is_kept_by_every_field_of_its_packet():
    """A kept walk is found by the packet's fields: two equal packets (one made by the
    engine's rewrite) find the same walk, and a packet that differs in any one field (a
    field added to Packet one day too), or that is an ICMP error with the same fields,
    does not."""
    from netlab.dataplane.conntrack import IcmpError, rewrite
    from netlab.dataplane.netfilter import _walk_key, rules_of
    from netlab.trace import Packet

    b = router_lab()
    iptables(b, "host/r", "filter -A FORWARD -m conntrack --ctstate NEW -j ACCEPT")
    ns = b.world.namespaces["host/r"]
    table = rules_of(b.world, ns).table("filter")
    base = Packet("tcp", "10.0.1.2", "10.0.2.2", 40000, 80, 64, None, None, "S")

    def key(pkt):
        view = PacketView(packet=pkt, table="filter", hook="FORWARD", in_dev="eth0",
                          out_dev="eth1", conn=ConnView(state="NEW"))
        return _walk_key(table, "FORWARD", view, None)      # rules that may read anything

    assert key(rewrite(base, ttl=64)) == key(base)
    others = {"proto": "udp", "src": "10.0.1.3", "dst": "10.0.2.3", "sport": 1, "dport": 2,
              "ttl": 63, "icmp_type": 8, "icmp_code": 0, "tcp_flags": "A"}
    assert set(others) == {f.name for f in dataclasses.fields(Packet)}
    for name, value in others.items():
        assert key(rewrite(base, **{name: value})) != key(base), name
    error = IcmpError(**{f.name: getattr(base, f.name) for f in dataclasses.fields(Packet)})
    assert key(error) != key(base)
    assert key(error) == key(IcmpError(**vars(error)))


def _all_traces(world, probes_, monkeypatch, narrow: bool) -> list[str]:
    from netlab.dataplane import netfilter

    if not narrow:
        monkeypatch.setattr(netfilter, "reads_of", lambda table, hook: None)
    out = []
    for src, dst, proto, port in probes_:
        if not narrow:
            cold(world)         # every walk computed: nothing kept from another packet
        for kw in ({}, {"seed": 3}):
            out.append(as_json(trace(world, src, dst, proto=proto, dport=port, record=False,
                                     **kw)))
    monkeypatch.undo()
    return out


def test_walks_kept_by_what_their_rules_read_give_the_traces_of_walks_computed(
        cluster, monkeypatch):
    """A walk through rules that read only some of the packet (kube-proxy's FORWARD and
    POSTROUTING: the ctstate and the mark) is kept by those alone and met by other
    packets: every trace of the cluster, one after the other on one World, equals the
    trace computed from nothing kept and with walks kept by the whole packet."""
    c, world = cluster
    cases = probes(c)
    cold(world)
    narrow = _all_traces(world, cases, monkeypatch, narrow=True)
    assert narrow == _all_traces(world, cases, monkeypatch, narrow=False)


def random_lab_worlds(n: int, tmp_path, seed: str):
    """n random labs (tests/privileged/random_labs.py), each run on the model: the lab, its
    World and its probes as trace cases from the namespaces it has."""
    import random
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "privileged"))
    from random_labs import random_lab

    from netlab.labs.loader import load_lab
    from netlab.labs.runner import run_lab

    for i in range(n):
        lab = random_lab(random.Random(f"{seed}-{i}"), f"{seed[0]}{i}")
        path = tmp_path / f"{seed[0]}{i}.yaml"
        path.write_text(lab.yaml())
        world = run_lab(load_lab(path), check_expect=False).world
        cases = [(f"host/{src}" if "/" not in src else src, dst, proto, port)
                 for src, dst, proto, port in lab.probes]
        yield lab, world, [case for case in cases if case[0] in world.namespaces]


def test_walks_kept_by_what_their_rules_read_in_random_labs(monkeypatch, tmp_path):
    """The same in random labs (filter and nat rules, marks, conntrack states, -i/-o)."""
    for lab, world, cases in random_lab_worlds(12, tmp_path, "reads"):
        cold(world)
        narrow = _all_traces(world, cases, monkeypatch, narrow=True)
        assert narrow == _all_traces(world, cases, monkeypatch, narrow=False), lab.yaml()


def test_what_a_walk_reads_is_known_for_kube_proxys_forward_and_nothing_unknown():
    import sys

    from netlab.dataplane.netfilter import reads_of, rules_of

    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from cluster_bench import synthetic

    world = build_model(synthetic(3, 12, 3)).world
    rules = rules_of(world, next(ns for ns in world.namespaces.values()
                                 if ns.name == "root" and "filter" in ns.tables))
    assert reads_of(rules.table("filter"), "FORWARD") == {"ct_state", "mark"}
    assert reads_of(rules.table("nat"), "POSTROUTING") == {"mark"}
    assert reads_of(rules.table("nat"), "PREROUTING") is None      # too many rules to look at
    b = router_lab()
    iptables(b, "host/r", "filter -A FORWARD -m addrtype --dst-type LOCAL -j DROP")
    iptables(b, "host/r", "nat -A POSTROUTING -o eth1 -s 10.0.1.0/24 -j MASQUERADE")
    r = rules_of(b.world, b.world.namespaces["host/r"])
    assert reads_of(r.table("filter"), "FORWARD") == {"addrtype", "dst_local"}
    assert reads_of(r.table("nat"), "POSTROUTING") == {"out_dev", "src"}


def test_a_walk_kept_by_its_ctstate_and_direction_tells_a_reply_from_its_request(
        monkeypatch):
    """--ctdir is read: the ESTABLISHED datagram of a known flow and its ESTABLISHED reply
    walk FORWARD apart (the reply is dropped, the datagram is not)."""
    import copy

    from netlab.dataplane import netfilter

    b = router_lab()
    iptables(b, "host/r", "filter -A FORWARD -m conntrack --ctstate ESTABLISHED --ctdir REPLY "
                          "-j DROP")
    trace(b.world, "host/h1", "10.0.2.2", proto="udp", dport=53, sport=41000)
    results = []
    for narrow in (True, False):
        if not narrow:
            monkeypatch.setattr(netfilter, "reads_of", lambda table, hook: None)
        w = copy.deepcopy(b.world)
        results.append(as_json(trace(w, "host/h1", "10.0.2.2", proto="udp", dport=53,
                                     sport=41000, record=False)))
    assert results[0] == results[1]
    assert '"verdict": "dropped"' in results[0]          # the reply


@pytest.mark.parametrize("match, other", [
    ("-m conntrack --ctstate NEW --ctorigdst 10.0.2.2", "10.0.2.3"),
    ("-m conntrack --ctdir REPLY", None),
    ("-m conntrack --ctstatus SEEN_REPLY", None),
    ("-m mark --mark 0x1", None),
])
def test_a_walk_kept_by_what_its_rules_read_tells_packets_apart_by_it(match, other):
    """The connection's tuples, direction and status, and the mark are what these rules
    read: a packet that differs in them walks again (the probe and its reply through
    FORWARD; two destinations)."""
    b = router_lab()
    b.apply(O.AddAddress("host/h2", "eth0", "10.0.2.3", 24))
    iptables(b, "host/r", f"filter -A FORWARD {match} -j DROP")
    iptables(b, "host/h1", "mangle -A OUTPUT -d 10.0.2.3/32 -j MARK --set-mark 0x1")
    targets = ["10.0.2.2", "10.0.2.3"]
    warm = [as_json(trace(b.world, "host/h1", dst, proto="tcp", dport=80, record=False))
            for dst in targets]
    computed = []
    for dst in targets:
        cold(b.world)
        computed.append(as_json(trace(b.world, "host/h1", dst, proto="tcp", dport=80,
                                      record=False)))
    assert warm == computed


# --- L2 segments, found as traces ask for them ------------------------------------------------

def segments_alike(world) -> None:
    """Segments found one at a time (in any order) are those of the full build."""
    from netlab.dataplane import l2

    full = l2.build_segments(world)
    ends = list(full.segment)
    lazy = l2.Segments()
    for end in reversed(ends):          # asked in the opposite order of the build
        assert lazy.segment_of(world, end) is not None, end
    root = {}
    for seg in (full, lazy):
        by_sid = {}
        for end in seg.segment:
            x = end
            while seg.parent[x] is not None:
                x = seg.parent[x]
            by_sid[seg.segment[end]] = x
        root[id(seg)] = by_sid
    for end in ends:
        assert (lazy.parent[end], lazy.depth[end]) == (full.parent[end], full.depth[end]), end
    assert {(root[id(lazy)][sid], ip): end for (sid, ip), end in lazy.owners.items()} == \
        {(root[id(full)][sid], ip): end for (sid, ip), end in full.owners.items()}
    assert {root[id(lazy)][sid] for sid in lazy.open} == {root[id(full)][sid] for sid in full.open}


def test_segments_found_one_at_a_time_are_those_of_the_full_build(cluster):
    from netlab.labs.catalog import bundled
    from netlab.labs.loader import load_lab
    from netlab.labs.runner import run_lab

    segments_alike(cluster[1])
    for path in bundled():
        segments_alike(run_lab(load_lab(path), check_expect=False, keep_going=True)
                       .backend.world)


def test_a_bridge_in_a_bridge_is_searched_as_the_full_build_does():
    # The kernel refuses to enslave a bridge to a bridge; a World read from JSON can
    # still say so, and a down bridge in a bridge reaches it without being reached.
    b = B.bridge_with(["red", "blue"])
    b.apply(O.AddLink("host/root", "inner", "bridge"))              # down
    b.apply(O.AddLink("host/root", "outer", "bridge"))
    b.apply(O.SetLinkUp("host/root", "outer", True))
    links = b.world.namespaces["host/root"].links
    links["inner"].master = "v-net-0"
    links["v-net-0"].master = "outer"
    cold(b.world)
    segments_alike(b.world)
    (p,) = trace(b.world, "host/red", "192.168.15.2", proto="tcp", dport=80,
                 record=False).paths
    assert p.verdict == NO_LISTENER


def bench_cluster():
    """benchmarks/cluster_bench.py's generator, small: every node gets the same rules."""
    import sys
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    try:
        from cluster_bench import synthetic
    finally:
        sys.path.pop(0)
    return synthetic(4, 24, 6)


def test_nodes_sharing_one_table_share_its_parsed_chains_and_trace_as_with_copies():
    """A cluster's nodes hold the very same kube-proxy Table objects: their rules are parsed
    and indexed once for all nodes; each node still walks them against its own addresses
    (addrtype LOCAL, NodePorts), so every trace equals the one on a World whose nodes hold
    copies of the tables."""
    import copy

    from netlab.dataplane.netfilter import rules_of
    c = bench_cluster()
    world = build_model(c).world
    nodes = [world.namespaces[f"{n.name}/root"] for n in c.nodes]
    assert nodes[0].tables["nat"] is nodes[1].tables["nat"], "the build shares the tables"
    cold(world)
    chains = [rules_of(world, ns).table("nat").chain("KUBE-SERVICES") for ns in nodes]
    assert chains[0] is not None and all(ch is chains[0] for ch in chains)

    copies = copy.deepcopy(world)
    for ns in copies.namespaces.values():
        ns.tables = copy.deepcopy(ns.tables)
    assert copies.namespaces[nodes[0].key].tables["nat"] is not \
        copies.namespaces[nodes[1].key].tables["nat"]
    probes_of_nodes = [(ns.key, dst, proto, port) for ns in nodes
                       for _, dst, proto, port in probes(c)[:40]]
    for src, dst, proto, port in probes_of_nodes:
        got = as_json(trace(world, src, dst, proto=proto, dport=port, record=False))
        alone = as_json(trace(copies, src, dst, proto=proto, dport=port, record=False))
        assert got == alone, (src, dst, proto, port)


def test_a_large_clusters_objects_are_frozen_out_of_the_cyclic_collector(monkeypatch):
    """After a large build the cluster's objects are in gc's permanent generation (so the
    first full collection, in the first trace, does not walk millions of them); a small
    build leaves the collector as it was."""
    import gc

    from netlab.k8s import build as build_module
    c = bench_cluster()
    gc.unfreeze()
    try:
        build_module.build_model(c)
        assert gc.get_freeze_count() == 0, "a small cluster is not frozen"
        monkeypatch.setattr(build_module, "FREEZE_PODS", len(c.pods))
        world = build_module.build_model(c).world
        assert gc.get_freeze_count() > 0
        assert not gc.is_tracked(world) or world not in gc.get_objects(), \
            "the World is out of the collector's sight"
    finally:
        gc.unfreeze()


# --- walks shared by the namespaces that hold the same Table ------------------------------------

def _shared_and_alone(world, cases, monkeypatch, share: bool) -> list[str]:
    """Every trace of ``cases``, one after the other on one World (all branches, and one
    branch), with walks shared across namespaces or each namespace walking for itself."""
    from netlab.dataplane import netfilter

    monkeypatch.setattr(netfilter, "SHARE_WALKS", share)
    cold(world)
    out = []
    for src, dst, proto, port in cases:
        for kw in ({}, {"seed": 3}):
            out.append(as_json(trace(world, src, dst, proto=proto, dport=port, record=False,
                                     **kw)))
    monkeypatch.undo()
    return out


def _recorded(world, cases, monkeypatch, share: bool) -> list[str]:
    """The conntrack tables a trace writes back (record=True), trace after trace, on a copy
    of the World."""
    import copy

    from netlab.dataplane import netfilter

    monkeypatch.setattr(netfilter, "SHARE_WALKS", share)
    world = copy.deepcopy(world)
    out = []
    for src, dst, proto, port in cases:
        out.append(as_json(trace(world, src, dst, proto=proto, dport=port, record=True)))
        out.append(conntrack_json(world))
    monkeypatch.undo()
    return out


def conntrack_json(world) -> str:
    """Every namespace's conntrack table (what a trace with ``record`` writes back)."""
    return json.dumps({key: [dataclasses.asdict(e) for e in ns.conntrack]
                       for key, ns in sorted(world.namespaces.items())},
                      sort_keys=True, default=str)


def _oracle(world, cases, monkeypatch, why="") -> None:
    shared = _shared_and_alone(world, cases, monkeypatch, share=True)
    assert shared == _shared_and_alone(world, cases, monkeypatch, share=False), why
    few = cases[:: max(1, len(cases) // 12)]
    assert _recorded(world, few, monkeypatch, True) == _recorded(world, few, monkeypatch, False), \
        why


def _cluster_probes(c, world) -> list[tuple]:
    """Pods to Services (cluster IPs, and NodePorts on every node) and to pods, and nodes
    to NodePorts."""
    from netlab.k8s.kubelet import pod_netns_key

    nodes = [(f"{n.name}/root", n.ip) for n in c.nodes if f"{n.name}/root" in world.namespaces]
    out = []
    for pod in c.pods:
        if pod.ip is None:
            continue
        src = pod_netns_key(pod)
        for svc in c.services:
            for port in svc.ports:
                proto = port.protocol.lower()
                if svc.cluster_ip and svc.cluster_ip != "None":
                    out.append((src, svc.cluster_ip, proto, port.port))
                if port.node_port:
                    out.extend((src, ip, proto, port.node_port) for _, ip in nodes)
        for other in c.pods[:6]:
            if other.ip:
                out.append((src, other.ip, "tcp", 8080))
    for key, _ in nodes:
        for svc in c.services:
            for port in svc.ports:
                if port.node_port:
                    out.extend((key, ip, port.protocol.lower(), port.node_port)
                               for _, ip in nodes)
    return out


def test_walks_shared_across_nodes_give_the_traces_each_node_walks_itself(cluster, monkeypatch):
    """kube-proxy's FORWARD and POSTROUTING walks read only the packet's view (ctstate, mark):
    kept once for every node that holds the Table, relabelled for each, every trace of
    the services cluster (and the conntrack recorded) equals the one where each node
    walks for itself."""
    c, world = cluster
    _oracle(world, _cluster_probes(c, world), monkeypatch)


def test_a_node_meets_the_walk_of_another_node_with_its_own_labels(monkeypatch):
    """A walk made on one node is met on another (it is not walked again there) and its
    hops name the node that meets it."""
    from netlab.dataplane import netfilter
    from netlab.k8s.kubelet import pod_netns_key

    c = bench_cluster()
    world = build_model(c).world
    cold(world)
    walked = []
    real = netfilter._walk
    monkeypatch.setattr(netfilter, "_walk", lambda ns, table, hook, *a: walked.append(
        (ns.key, table.name, hook)) or real(ns, table, hook, *a))
    by_node = {}
    for pod in c.pods:
        by_node.setdefault(pod.node, pod)
    first, second = list(by_node.values())[:2]
    dst = next(p.ip for p in c.pods if p.node not in (first.node, second.node))
    trace(world, pod_netns_key(first), dst, proto="tcp", dport=8080, record=False)
    walked.clear()
    got = trace(world, pod_netns_key(second), dst, proto="tcp", dport=8080, record=False)
    root = f"{second.node}/root"
    assert (root, "filter", "FORWARD") not in walked, walked
    forward = [h for p in got.paths for h in p.hops if h.chain and h.table == "filter"
               and h.event == "netfilter" and h.node == second.node]
    assert forward and all(h.netns == "root" for h in forward)
    monkeypatch.setattr(netfilter, "SHARE_WALKS", False)
    cold(world)
    alone = trace(world, pod_netns_key(second), dst, proto="tcp", dport=8080, record=False)
    assert as_json(got) == as_json(alone)


@pytest.mark.parametrize("seed", range(8))
def test_walks_shared_across_nodes_in_random_clusters(seed, monkeypatch):
    """The same on random clusters: NodePort, LoadBalancer, Local traffic policies,
    affinity, Services without endpoints."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from k8s_services_random import random_cluster

    c = random_cluster(seed)
    world = build_model(c).world
    cases = _cluster_probes(c, world)
    _oracle(world, cases[:: max(1, len(cases) // 150)], monkeypatch, seed)


def test_walks_shared_across_nodes_with_network_policies(tmp_path, monkeypatch):
    """The same with NetworkPolicy rules in the nodes' filter tables."""
    e2e = Path(__file__).parents[1] / "data" / "k8s" / "e2e"
    (tmp_path / "policies.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: allow-y, namespace: x}\n"
        "spec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress:\n"
        "    - from: [{namespaceSelector: {matchLabels: {ns: y}}}]\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: deny-egress, namespace: z}\n"
        "spec:\n  podSelector: {matchLabels: {pod: b}}\n  policyTypes: [Egress]\n")
    c = load_cluster([str(e2e), str(tmp_path / "policies.yaml")])
    world = build_model(c).world
    from netlab.k8s.kubelet import pod_netns_key

    cases = [(pod_netns_key(a), b.ip, proto, port) for a in c.pods for b in c.pods
             if a is not b for proto, port in (("tcp", 80), ("udp", 81))]
    _oracle(world, cases, monkeypatch)


def test_walks_shared_by_namespaces_with_one_table_and_other_addresses(monkeypatch, tmp_path):
    """Random labs where namespaces are made to hold the very same Table objects while their
    addresses, devices, routes and conntrack differ: sharing never changes a trace."""
    import random
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "privileged"))
    from random_labs import random_lab

    from netlab.labs.loader import load_lab
    from netlab.labs.runner import run_lab

    for i in range(12):
        rng = random.Random(f"share-{i}")
        lab = random_lab(rng, f"s{i}")
        path = tmp_path / f"s{i}.yaml"
        path.write_text(lab.yaml())
        world = run_lab(load_lab(path), check_expect=False).world
        holders = sorted(key for key, ns in world.namespaces.items() if ns.tables)
        if len(holders) < 2:
            continue
        model = world.namespaces[rng.choice(holders)].tables
        for key in holders:
            if rng.random() < 0.8:
                world.namespaces[key].tables = model
        cases = [(f"host/{src}" if "/" not in src else src, dst, proto, port)
                 for src, dst, proto, port in lab.probes]
        cases = [case for case in cases if case[0] in world.namespaces]
        _oracle(world, cases, monkeypatch, lab.yaml())


@pytest.mark.parametrize("rule", [
    "filter -A OUTPUT -m addrtype --dst-type LOCAL -j DROP",
    "filter -A OUTPUT -m set --match-set near dst -j DROP",
])
def test_a_walk_that_reads_the_namespace_is_not_shared_with_another(rule, monkeypatch):
    """Two namespaces hold the very same Table, whose rule reads the namespace (its
    addresses, its sets): the same packet view walks to DROP in the one and to the policy
    in the other, as each walks for itself."""
    from netlab.model.netfilter import IpSet
    from netlab.trace import Packet

    b = router_lab()
    world = b.world
    h1, h2 = world.namespaces["host/h1"], world.namespaces["host/h2"]
    h1.ipsets["near"] = IpSet("hash:ip", members=["10.0.1.2"])
    h2.ipsets["near"] = IpSet("hash:ip")
    iptables(b, "host/h1", rule)
    h2.tables = h1.tables
    pkt = Packet("tcp", "10.0.2.2", "10.0.1.2", 40000, 80, 64, None, None, "S")

    alone = _walks_in_turn(world, h1, h2, pkt, monkeypatch, share=False)
    assert [kind for kind, _ in alone] == ["drop", "accept"] * 2
    assert _walks_in_turn(world, h1, h2, pkt, monkeypatch, share=True) == alone


def _walks_in_turn(world, h1, h2, pkt, monkeypatch, share: bool) -> list:
    """The filter OUTPUT walk of ``pkt`` in h1, h2, h1 and h2 again (which hold the very
    same Table), with walks shared or not: each one's decision and hops."""
    from netlab.dataplane import netfilter

    monkeypatch.setattr(netfilter, "SHARE_WALKS", share)
    cold(world)
    out = []
    for ns in (h1, h2, h1, h2):
        rules = netfilter.rules_of(world, ns)
        view = PacketView(packet=pkt, table="filter", hook="OUTPUT", in_dev=None,
                          out_dev="eth0", mark=0, addrtype=rules.addrtype(),
                          in_set=lambda name, values, ns=ns:
                          netfilter.ipset_contains(ns, name, values))
        hops = []
        decided = netfilter.walk(ns, rules.table("filter"), "OUTPUT", view, lambda p: True,
                                 hops)
        out.append((decided.kind, [h.to_json() for h in hops]))
    return out


def test_rules_that_differ_in_the_chain_they_jump_to_parse_as_each_alone(tmp_path):
    """parse_stored (a rule like one parsed before but for its ``-j CHAIN``) gives what
    parse_rule gives, for every rule of kube-proxy's tables (random clusters, both orders)
    and of random labs; and it does take the shortcut."""
    import random
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    sys.path.insert(0, str(Path(__file__).parents[1] / "privileged"))
    from k8s_services_random import random_cluster
    from random_labs import random_lab

    from netlab.labs.loader import load_lab
    from netlab.labs.runner import run_lab

    worlds = [build_model(bench_cluster()).world]
    worlds += [build_model(random_cluster(seed)).world for seed in range(6)]
    for i in range(6):
        path = tmp_path / f"p{i}.yaml"
        path.write_text(random_lab(random.Random(f"parse-{i}"), f"p{i}").yaml())
        worlds.append(run_lab(load_lab(path), check_expect=False).world)
    bodies = sorted({body for world in worlds for ns in world.namespaces.values()
                     for table in ns.tables.values() for chain in table.chains.values()
                     for body in chain.rules})
    bodies += ["-j KUBE-SEP-A", "-j ACCEPT", "-j X", "-m mark --mark 0x1 -g KUBE-SEP-B",
               "-m mark --mark 0x1 -j KUBE-SEP-B", "-m mark --mark 0x1 -j KUBE-SEP-C",
               "-m mark --mark 0x1 -j DROP", "-m mark --mark 0x1 -j " + "Y" * 29]
    shortcuts = sum(_parsed_alike(order)[0] for order in (bodies, bodies[::-1]))
    assert shortcuts > 20


def _parsed_alike(bodies: list[str]) -> tuple[int, list[str]]:
    """parse_stored == parse_rule (also in what matches and target keep for the packet, and
    in the error for a bad rule) for each body in turn, shapes learnt from none: how many
    took the shortcut, and the bodies that parse."""
    from netlab.dataplane import rule_shapes
    from netlab.netfilter.rules import parse_rule

    rule_shapes.PARSED_BY_SHAPE.clear()
    shortcuts, valid = 0, []
    for body in bodies:
        try:
            alone = parse_rule(body)
        except Exception as exc:        # noqa: BLE001 — the same error, or none
            with pytest.raises(type(exc)):
                rule_shapes.parse_stored(body)
            continue
        got = rule_shapes.parse_stored(body)
        assert rule_shapes.same_parse(got, alone), body
        shortcuts += got is not alone
        valid.append(body)
    return shortcuts, valid


# --- walks resumed at their forks, shared by what the rules read, rules parsed by shape ---------

def _kept_and_computed(world, cases, monkeypatch, share: bool = True) -> tuple[list, list]:
    """Every trace of ``cases`` (all branches, and one branch), one after the other on one
    World, with walks kept (a new branch walked from its fork on, walks shared across
    namespaces when ``share``) and with every walk computed from the start, nothing kept."""
    from netlab.dataplane import netfilter

    def traced(src, dst, proto, port, **kw) -> str:
        try:
            return as_json(trace(world, src, dst, proto=proto, dport=port, record=False, **kw))
        except CommandError as exc:         # too many paths: the same for both
            return str(exc)

    def traces() -> list[str]:
        cold(world)
        # one branch first: a later trace meets forks whose other branch is not walked yet
        return [traced(*case, **kw) for case in cases for kw in ({"seed": 3}, {}, {"seed": 8})]

    monkeypatch.setattr(netfilter, "SHARE_WALKS", share)
    kept = traces()
    monkeypatch.setattr(engine, "KEPT_WALKS", False)
    monkeypatch.setattr(engine, "walk", lambda ns, table, hook, view, choose, hops, key=None:
                        netfilter._walk(ns, table, hook, view, choose, hops))
    computed = traces()
    monkeypatch.undo()
    return kept, computed


def test_a_service_trace_walks_its_fork_once_and_each_branch_from_the_fork_on(monkeypatch):
    """A Service of 15 endpoints forks nat PREROUTING 14 times: the all-branches trace
    walks the table once from its start and each other branch from the fork before it
    (where the walk stood is kept with the fork); the packet to a pod on each endpoint's
    node, which meets no Service and no LOCAL address, is walked once for all nodes."""
    import sys

    from netlab.dataplane import netfilter
    from netlab.k8s.kubelet import pod_netns_key

    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from cluster_bench import synthetic

    c = synthetic(20, 600, 40)
    world = build_model(c).world
    svc = next(s for s in c.services if s.name.startswith("svc"))
    endpoints = {ep.node for sl in c.slices[svc.key] for ep in sl.endpoints}
    client = next(p for p in c.pods if p.namespace == "default" and p.node not in endpoints)
    walked = []
    real = netfilter._walk
    monkeypatch.setattr(netfilter, "_walk", lambda ns, table, hook, view, choose, hops,
                        forks=None, resume=None: walked.append(
                            (ns.node, table.name, hook, resume is not None))
                        or real(ns, table, hook, view, choose, hops, forks, resume))
    got = trace(world, pod_netns_key(client), svc.cluster_ip, proto="tcp", dport=80,
                record=False)
    assert len(got.paths) == 15 and len(endpoints) > 1
    prerouting = [w for w in walked if w[1:3] == ("nat", "PREROUTING")]
    mine = [w[3] for w in prerouting if w[0] == client.node]
    assert mine == [False] + [True] * 14
    theirs = [w for w in prerouting if w[0] != client.node]
    assert len(theirs) == 1 and not theirs[0][3], theirs
    monkeypatch.undo()
    kept, computed = _kept_and_computed(
        world, [(pod_netns_key(client), svc.cluster_ip, "tcp", 80)], monkeypatch)
    assert kept == computed


def test_walks_kept_resumed_and_shared_give_the_walks_computed_in_the_services_cluster(
        cluster, monkeypatch):
    c, world = cluster
    cases = _cluster_probes(c, world)
    kept, computed = _kept_and_computed(world, cases, monkeypatch)
    assert kept == computed


@pytest.mark.parametrize("seed", range(8))
def test_walks_kept_resumed_and_shared_give_the_walks_computed_in_random_clusters(
        seed, monkeypatch):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from k8s_services_random import random_cluster

    c = random_cluster(seed)
    world = build_model(c).world
    cases = _cluster_probes(c, world)
    cases = cases[:: max(1, len(cases) // 120)]
    for share in (True, False):
        kept, computed = _kept_and_computed(world, cases, monkeypatch, share)
        assert kept == computed, (seed, share)


def forking_lab(rng, name: str):
    """A random lab (tests/privileged/random_labs.py) with rules that fork its walks
    (-m statistic random and nth, two in one rule, in a user chain with RETURN), marks
    and connmarks set before a fork and read after it, and -m addrtype of every kind."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "privileged"))
    from random_labs import random_lab

    lab = random_lab(rng, name)
    names = ["host"] + [line.split()[-1] for line in lab.lines if line.startswith("ip netns add")]
    ips = sorted({line.split()[-3].split("/")[0] for line in lab.lines if " addr add " in line})
    ip = rng.choice(ips) if ips else "10.1.0.1"

    def p() -> str:
        return f"{rng.choice((0.2, 0.25, 0.5, 0.6, 0.9)):.11f}"

    hook = rng.choice(("FORWARD", "OUTPUT"))
    groups = [       # rules that go together, in order
        (f"mangle -A {rng.choice(('PREROUTING', 'OUTPUT'))} -m statistic --mode random "
         f"--probability {p()} -j MARK --set-mark 0x1",
         f"filter -A {rng.choice(('INPUT', 'FORWARD', 'OUTPUT'))} -m mark --mark 0x1 "
         f"-m statistic --mode nth --every {rng.choice((2, 3))} -j DROP"),
        (f"filter -A {rng.choice(('INPUT', 'OUTPUT'))} -m statistic --mode random "
         f"--probability {p()} -m statistic --mode nth --every 2 -j REJECT",),
        (f"nat -A {rng.choice(('PREROUTING', 'OUTPUT'))} -p tcp --dport {rng.choice((80, 8080))} "
         f"-m statistic --mode random --probability {p()} -j DNAT --to-destination {ip}:80",),
        ("filter -N FORK", f"filter -A {hook} -j FORK",
         f"filter -A FORK -m statistic --mode random --probability {p()} -j RETURN",
         f"filter -A FORK -m statistic --mode random --probability {p()} -j MARK --set-mark 0x2",
         "filter -A FORK -m mark --mark 0x2 -m statistic --mode nth --every 2 -j DROP",
         f"filter -A {hook} -m mark --mark 0x2 -j ACCEPT", f"filter -A {hook} -p icmp -j DROP"),
        (f"mangle -A {rng.choice(('PREROUTING', 'OUTPUT'))} -j CONNMARK --set-mark 0x4",
         f"mangle -A PREROUTING -m statistic --mode random --probability {p()} "
         "-j CONNMARK --set-mark 0x8",
         "filter -A INPUT -m connmark --mark 0x4 -m statistic --mode nth --every 2 -j REJECT",
         "filter -A INPUT -m connmark --mark 0x8 -j DROP"),
        (f"filter -A {rng.choice(('INPUT', 'FORWARD', 'OUTPUT'))} -m addrtype "
         f"{rng.choice(('', '! '))}--dst-type "
         f"{rng.choice(('LOCAL', 'UNICAST', 'BROADCAST', 'LOCAL,BROADCAST'))} "
         f"-m statistic --mode random --probability {p()} -j DROP",),
        ("nat -A POSTROUTING -m addrtype --src-type LOCAL -m statistic --mode nth --every 2 "
         "-j ACCEPT",),
        (f"mangle -A {rng.choice(('INPUT', 'OUTPUT'))} -m statistic --mode random "
         f"--probability {p()} -j CONNMARK --set-mark 0x10",
         f"filter -A {rng.choice(('INPUT', 'OUTPUT'))} -m statistic --mode random "
         f"--probability {p()} -j ACCEPT",
         "filter -A INPUT -p icmp -j ACCEPT",
         "nat -A POSTROUTING -m connmark --mark 0x10 -j ACCEPT"),
    ]
    lines = list(lab.lines)
    for ns in ["host"] + rng.sample(names[1:], min(len(names) - 1, rng.randint(1, 3))):
        where = f"ip netns exec {ns} " if ns != "host" else ""
        for group in rng.sample(groups, rng.randint(1, 3)):
            for rule in group:
                table, _, rest = rule.partition(" ")
                lines.append(f"{where}iptables -t {table} {rest}")
    lab.lines = lines
    return lab


def _forking_worlds(tmp_path, count: int, tag: str):
    import random

    from netlab.labs.loader import load_lab
    from netlab.labs.runner import run_lab

    for i in range(count):
        rng = random.Random(f"{tag}-{i}")
        lab = forking_lab(rng, f"{tag}{i}")
        path = tmp_path / f"{tag}{i}.yaml"
        path.write_text(lab.yaml())
        world = run_lab(load_lab(path), check_expect=False).world
        cases = [(f"host/{src}" if "/" not in src else src, dst, proto, port)
                 for src, dst, proto, port in lab.probes]
        yield rng, lab, world, [case for case in cases if case[0] in world.namespaces]


def test_walks_kept_and_resumed_give_the_walks_computed_in_random_forking_labs(
        monkeypatch, tmp_path):
    """Random labs whose walks fork (in rules before and after a MARK, CONNMARK, DNAT, in a
    user chain, two forks in one rule): every trace equals the one that computes every
    walk from its start; and so when namespaces hold one Table, shared."""
    forked = 0
    for rng, lab, world, cases in _forking_worlds(tmp_path, 40, "forks"):
        kept, computed = _kept_and_computed(world, cases, monkeypatch)
        assert kept == computed, lab.yaml()
        forked += sum('"probability": 1.0' not in t for t in kept)
        holders = sorted(key for key, ns in world.namespaces.items() if ns.tables)
        if len(holders) > 1:
            model = world.namespaces[rng.choice(holders)].tables
            for key in holders:
                world.namespaces[key].tables = model
            for share in (True, False):
                kept, computed = _kept_and_computed(world, cases, monkeypatch, share)
                assert kept == computed, (share, lab.yaml())
    assert forked > 100


def test_a_packet_no_service_has_walks_kube_services_as_its_rules_outside_the_index():
    """reads_of of kube-proxy's nat PREROUTING (KUBE-SERVICES indexed by destination):
    a packet that meets no bucket reads only what the rules outside the index read (the
    LOCAL-ness of its destination); one to a Service may read anything."""
    import sys

    from netlab.dataplane.netfilter import Indexed, reads_of, rules_of
    from netlab.trace import Packet

    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from cluster_bench import synthetic

    c = synthetic(3, 60, 30)
    world = build_model(c).world
    rules = rules_of(world, world.namespaces[f"{c.nodes[0].name}/root"])
    found = reads_of(rules.table("nat"), "PREROUTING")
    assert isinstance(found, Indexed) and [ch.name for ch in found.chains] == ["KUBE-SERVICES"]
    svc = next(s for s in c.services if s.name.startswith("svc"))
    to_pod = Packet("tcp", c.pods[0].ip, c.pods[-1].ip, 40000, 8080, 64, None, None, "S")
    assert found.of(to_pod) == {"addrtype", "dst_local"}
    assert found.of(dataclasses.replace(to_pod, dst=svc.cluster_ip, dport=80)) is None
    assert found.of(dataclasses.replace(to_pod, dst=svc.cluster_ip, dport=81)) is not None


def test_rules_parsed_by_their_shape_parse_as_each_alone(tmp_path):
    """parse_stored (a rule of the shape of one parsed before, other addresses, ports,
    chain) gives what parse_rule gives, also in what matches and targets keep for the
    packet, and compile_stored what CompiledRule makes of it: every rule of kube-proxy's
    tables (random clusters), of random labs and forking labs, and rules made to sit at
    the edges of the shapes, in both orders."""
    import sys

    from netlab.dataplane import netfilter, rule_shapes
    from netlab.model.netfilter import Chain
    from netlab.netfilter.rules import parse_rule

    sys.path.insert(0, str(Path(__file__).parent))
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from cluster_bench import synthetic
    from k8s_services_random import random_cluster

    worlds = [build_model(synthetic(3, 60, 30)).world]
    worlds += [build_model(random_cluster(seed)).world for seed in range(8)]
    worlds += [world for _, _, world, _ in _forking_worlds(tmp_path, 10, "parse")]
    bodies = sorted({body for world in worlds for ns in world.namespaces.values()
                     for table in ns.tables.values() for chain in table.chains.values()
                     for body in chain.rules})
    for head in ("", "-s 10.1.2.3/32 ", "! -s 10.1.2.3/32 ", "-s 10.1.2.3/24 ",
                 "-s 10.1.2.0/24 ", "! -s 10.9.0.0/0 ", "-s 10.1.2.3/255.0.255.0 ",
                 "-d 10.1.2.4/32 ", "! -d 10.1.2.4/16 ", "-s 10.1.2.3/32 ! -d 10.1.2.4/32 ",
                 "-s 010.1.2.3/32 ", "-s 10.1.2.300/32 ", "-s 10.1.2.3/33 "):
        for tail in ("-j KUBE-SEP-A", "-j KUBE-SEP-B", "-g KUBE-SEP-A", "-j ACCEPT", "-j X",
                     "-j " + "Y" * 29, "-j " + "Z" * 28, "-j DNAT --to-destination 10.0.0.1",
                     "-p tcp -j DNAT --to-destination 10.0.0.1:80",
                     "-p tcp -m tcp -j DNAT --to-destination 10.0.0.2:8080",
                     "-p udp -m udp -j DNAT --to-destination 10.0.0.2:0",
                     "-p udp -m udp -j DNAT --to-destination 10.0.0.2:65535",
                     "-p udp -m udp -j DNAT --to-destination 10.0.0.2:65536",
                     "-p icmp -j DNAT --to-destination 10.0.0.3:53",
                     "-j DNAT --to-destination 10.0.0.1:80",
                     "-p tcp -j DNAT --to-destination 10.0.0.1:80 --random",
                     "-p tcp -j DNAT --to-destination 10.0.0.1-10.0.0.9:80",
                     "-p tcp -m tcp -j DNAT --to-destination 10.0.0.01:80",
                     "-p tcp -j SNAT --to-source 10.0.0.1:80"):
            bodies.append(head + tail)
    middles = ['-m comment --comment "default/svc1:http cluster IP" ', "-m comment --comment a ",
               '-m comment --comment "default/svc2:http cluster IP" ', "-m comment --comment b-c ",
               '-m comment --comment "-x" ', '-m comment --comment "!" ',
               '-m comment --comment "a \\"b" ', '-m comment --comment "it\'s" ',
               '-m comment --comment "a --dport 5 b" ', '-m comment --comment ""  ',
               f'-m comment --comment "{"c" * 255}" ', f'-m comment --comment "{"c" * 256}" ',
               '-m comment --comment x -m comment --comment "y z" ']
    ports = ["-p tcp -m tcp --dport 80 ", "-p tcp -m tcp --dport 81 ", "-p udp -m udp --dport 0 ",
             "-p tcp -m tcp ! --dport 80 ", "-p tcp -m tcp --dport 80:90 ",
             "-p tcp -m tcp --dport 65536 ", "-p tcp -m tcp --sport 5 --dport 80 ",
             "-p tcp -m tcp --dport 80 --tcp-flags SYN,ACK SYN ", "-p tcp -m tcp --dport http ",
             "-p udp -m udp --dport 053 ", "-p tcp -m multiport --dports 80,443 "]
    for head in ("", "-s 10.1.2.3/32 ", "! -s 10.128.0.0/9 -d 10.96.0.9/32 "):
        for middle in middles + [""]:
            for ports_ in ports + [""]:
                for tail in ("-j KUBE-SVC-A", "-j KUBE-MARK-MASQ", "-j ACCEPT",
                             "-j DNAT --to-destination 10.0.0.1:80"):
                    bodies.append(head + ports_[:7] + middle + ports_[7:] + tail)
    shortcuts = compiled = 0
    for order in (bodies, bodies[::-1]):
        netfilter._COMPILED_BY_SHAPE.clear()
        took, valid = _parsed_alike(order)
        shortcuts += took
        # compiled by shape (no parse made): what CompiledRule makes of parse_rule's parse,
        # in a long chain (rules of its index are "certain") and in short ones
        rule_shapes.PARSED_BY_SHAPE.clear()
        long = netfilter.CompiledChain("C", Chain(rules=valid))
        for i, body in enumerate(valid):
            short = netfilter.CompiledChain("C", Chain(rules=[body]))
            for chain, at in ((long, i), (short, 0)):
                alone = netfilter.CompiledRule(parse_rule(body), f"-A C {body}",
                                               at in chain._certain)
                assert netfilter.same_compiled(chain.compile(at), alone), body
                compiled += chain._parsed[at] is None
    assert shortcuts > 400 and compiled > 400


@pytest.mark.parametrize("rule, kinds", [
    ("filter -A OUTPUT -m addrtype --dst-type LOCAL -j DROP", ["drop", "accept"]),
    ("filter -A OUTPUT -m addrtype --src-type LOCAL -j DROP", ["accept", "drop"]),
    ("filter -A OUTPUT -m addrtype ! --dst-type UNICAST -j DROP", ["drop", "accept"]),
    ("filter -A OUTPUT -p tcp -m tcp --dport 80 -m addrtype --dst-type LOCAL -j DROP",
     ["drop", "accept"]),
    ("filter -A OUTPUT -p tcp -m tcp --dport 80 -m addrtype --src-type LOCAL,BROADCAST -j DROP",
     ["accept", "drop"]),
])
def test_a_walk_kept_by_the_address_types_it_reads_is_shared_by_namespaces_alike(
        rule, kinds, monkeypatch):
    """-m addrtype reads the namespace only through the type of an address (LOCAL or not,
    or the type itself), which the walk key holds: two namespaces holding the very same
    Table share the walks of packets whose addresses have the same types there, and a
    packet whose destination is LOCAL in one and not in the other walks apart, as each
    namespace walks for itself (with the rules reading the packet's port as well)."""
    from netlab.dataplane import netfilter
    from netlab.trace import Packet

    b = router_lab()
    world = b.world
    h1, h2 = world.namespaces["host/h1"], world.namespaces["host/h2"]
    iptables(b, "host/h1", rule)
    h2.tables = h1.tables
    pkt = Packet("tcp", "10.0.2.2", "10.0.1.2", 40000, 80, 64, None, None, "S")

    alone = _walks_in_turn(world, h1, h2, pkt, monkeypatch, share=False)
    assert [kind for kind, _ in alone] == kinds * 2
    assert _walks_in_turn(world, h1, h2, pkt, monkeypatch, share=True) == alone
    assert netfilter.reads_of(netfilter.rules_of(world, h1).table("filter"), "OUTPUT") \
        is not None


def test_a_branch_walked_from_its_fork_keeps_the_connmark_of_the_packet_that_walks_it(
        monkeypatch):
    """A fork in a table that does not look at connections (filter INPUT) after one that
    sets the connmark on some branches (mangle INPUT): a branch walked from that fork on by
    a packet of another connmark keeps that packet's connmark (the reply, dropped by its
    connmark on OUTPUT, tells); one-branch traces first, then all branches, equal the traces
    that compute every walk."""
    b = router_lab()
    for line in ("mangle -A INPUT -m statistic --mode random --probability 0.50000000000 "
                 "-j CONNMARK --set-mark 0x10",
                 "filter -A INPUT -m limit --limit 1000/sec -m statistic --mode random "
                 "--probability 0.50000000000 -j ACCEPT",      # (limit: may read anything)
                 "mangle -A OUTPUT -m connmark --mark 0x10 -j DROP"):
        iptables(b, "host/h2", line)
    world = b.world

    def traces() -> list[str]:
        cold(world)
        return [as_json(trace(world, "host/h1", "10.0.2.2", proto="tcp", dport=80,
                              record=False, **kw))
                for kw in [{"seed": s} for s in range(12)] + [{}]]

    kept = traces()
    from netlab.dataplane import netfilter

    monkeypatch.setattr(engine, "KEPT_WALKS", False)
    monkeypatch.setattr(engine, "walk", lambda ns, table, hook, view, choose, hops, key=None:
                        netfilter._walk(ns, table, hook, view, choose, hops))
    assert kept == traces()
    assert '"verdict": "dropped"' in kept[-1]


def test_a_rule_the_walk_does_not_compile_for_its_source_would_not_match():
    """CompiledChain.other_source lets a walk pass a rule that begins with ``-s`` another
    single address without compiling it: wherever it says so, the compiled rule's own
    -s/-d/-p/-i/-o check refuses the packet; and it says so for kube-proxy's hairpin rule
    of a KUBE-SEP chain, for every source but the endpoint."""
    from netlab.dataplane import netfilter
    from netlab.dataplane.routing import ip_int
    from netlab.model.netfilter import Chain
    from netlab.netfilter.rules import parse_rule
    from netlab.trace import Packet

    heads = ["-s 10.1.2.3/32 ", "-s 10.1.2.3 ", "-s 10.1.2.0/24 ", "! -s 10.1.2.3/32 ",
             "-s 10.1.2.3/255.255.255.255 ", "-s 010.1.2.3/32 ", "-s 10.1.2.3/32,10.1.2.4/32 ",
             "-d 10.1.2.3/32 ", "-s 0.0.0.0/32 ", ""]
    tails = ["-j ACCEPT", "-p tcp -m tcp --dport 80 -j DROP",
             '-m comment --comment "default/web:http" -j KUBE-MARK-MASQ', "-i eth0 -j RETURN"]
    sources = ["10.1.2.3", "10.1.2.4", "10.1.3.3", "0.0.0.0", "192.168.1.1"]
    bodies = [head + tail for head in heads for tail in tails]
    chain = netfilter.CompiledChain("C", Chain(rules=bodies))
    view = PacketView(packet=Packet(proto="tcp", src="10.1.2.3", dst="10.1.2.3", sport=1,
                                    dport=80), table="filter", hook="FORWARD", in_dev="eth0")
    skipped = set()
    for src in sources:
        for i, body in enumerate(bodies):
            if chain.other_source(i, ip_int(src)):
                skipped.add((body.split(" -")[0], src))
                rule = netfilter.CompiledRule(parse_rule(body), f"-A C {body}", False)
                assert not rule.builtin(ip_int(src), ip_int("10.1.2.3"), "tcp", view), body
    # the single addresses, other sources only; no prefix, mask, list or negation
    assert skipped == {(head, src) for head in ("-s 10.1.2.3/32", "-s 10.1.2.3")
                       for src in sources if src != "10.1.2.3"} | \
        {("-s 0.0.0.0/32", src) for src in sources if src != "0.0.0.0"}
