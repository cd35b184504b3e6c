"""AddRoutes checked the quick way (the last batch with one route changed) does what an
AddRoute for each route does: the same routes, the same first error, nothing changed on
an error."""

from __future__ import annotations

import random

import pytest

from netlab import ops as O
from netlab.backends import route_batch
from netlab.backends.model import ModelBackend
from netlab.dataplane.routing import lookup_main
from netlab.errors import CommandError
from netlab.model import World, ns_key
from netlab.model.route_index import route_index

NODES = 80          # batches of 79 routes: above route_batch.QUICK_FROM


def lan(n: int = NODES) -> ModelBackend:
    """n nodes on 10.0.0.0/16 (eth0), each with a bridge cni0 on its own 10.244.i.0/24."""
    b = ModelBackend(World())
    b.apply(O.AddSwitch("lan", "10.0.0.0/16"))
    for i in range(1, n + 1):
        key = ns_key(f"n{i}")
        b.apply(O.AddNode(f"n{i}"))
        b.apply(O.AttachToSwitch("lan", f"n{i}", "eth0"))
        b.apply(O.AddAddress(key, "eth0", f"10.0.{i // 200}.{i % 200 + 1}", 16))
        b.apply(O.AddLink(key, "cni0", "bridge"))
        b.apply(O.SetLinkUp(key, "cni0", True))
        b.apply(O.AddAddress(key, "cni0", f"10.244.{i}.1", 24))
    return b


def node_ip(i: int) -> str:
    return f"10.0.{i // 200}.{i % 200 + 1}"


def host_gw(n: int = NODES) -> list[tuple[str, str]]:
    return [(f"10.244.{j}.0/24", node_ip(j)) for j in range(1, n + 1)]


def one_by_one(b: ModelBackend, key: str, routes, dev=None) -> str | None:
    """AddRoute for each, undone whole on the first refusal: its error, or None. (Only
    the namespace's routes and its main table change.)"""
    ns = b.world.namespaces[key]
    routes_before, main_before = list(ns.routes), ns.main_table
    for dst, gw in routes:
        try:
            b.apply(O.AddRoute(key, dst, gateway=gw, dev=dev))
        except CommandError as e:
            ns.routes, ns.main_table = routes_before, main_before
            return str(e)
    return None


def both(batch: ModelBackend, single: ModelBackend, key: str, routes, dev=None) -> str | None:
    """The batch and the routes one by one: the same error (or none), the same namespace."""
    error = None
    try:
        batch.apply(O.AddRoutes(key, tuple(routes), dev=dev))
    except CommandError as e:
        error = str(e)
    assert error == one_by_one(single, key, routes, dev)
    a, b = batch.world.namespaces[key], single.world.namespaces[key]
    assert (a.routes, a.main_table) == (b.routes, b.main_table)
    return error


@pytest.fixture
def counted(monkeypatch):
    """How many batches were checked route by route."""
    calls = []
    real = route_batch.RouteBatches._one_by_one

    def spy(self, *args):
        calls.append(1)
        return real(self, *args)

    monkeypatch.setattr(route_batch.RouteBatches, "_one_by_one", spy)
    return calls


def test_host_gw_batches_are_checked_quickly_and_match_one_by_one(counted):
    batch, single = lan(), lan()
    every = host_gw()
    for i in range(1, NODES + 1):
        assert both(batch, single, ns_key(f"n{i}"), every[:i - 1] + every[i:]) is None
    assert len(counted) == 1                  # only the first batch went route by route
    assert batch.world.to_json() == single.world.to_json()
    # equal routes are one object in every namespace
    ns1, ns2 = (batch.world.namespaces[ns_key(n)] for n in ("n1", "n2"))
    assert ns1.routes[-1] is ns2.routes[-1]
    # the index, dropped by the batch, is built again for a look-up
    route = lookup_main(ns1, "10.244.7.9")
    assert (route.dst, route.gateway, route.dev) == ("10.244.7.0/24", node_ip(7), "eth0")
    assert route_index(ns1).valid_for(ns1.routes)


def test_the_same_batch_twice_is_refused_on_the_second_node_too():
    batch, single = lan(4), lan(4)
    routes = host_gw(4)[2:] * 30          # repeats: no quick way for this one
    assert "File exists" in both(batch, single, ns_key("n1"), routes)


CHANGES = {
    # what to put at the changed place -> the error expected (None: taken)
    "next node": (lambda i: (f"10.244.{i}.0/24", node_ip(i)), None),
    "gateway off the LAN": (lambda i: (f"10.244.{i}.0/24", "192.168.9.9"), "invalid gateway"),
    "gateway is the node itself": (lambda i: (f"10.244.{i}.0/24", "SELF"), "invalid gateway"),
    "destination twice": (lambda i: ("10.244.3.0/24", node_ip(i)), "File exists"),
    "destination of cni0's route": (lambda i: ("SELF-RANGE", node_ip(i)), "File exists"),
    "another prefix length": (lambda i: (f"10.245.{i}.0/25", node_ip(i)), None),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_one_change_against_the_last_batch(change):
    make, error = CHANGES[change]
    batch, single = lan(), lan()
    every = host_gw()
    assert both(batch, single, ns_key("n1"), every[1:]) is None
    i = 2
    routes = every[:1] + every[2:]
    routes[0] = tuple(x.replace("SELF-RANGE", "10.244.2.0/24").replace("SELF", node_ip(2))
                      for x in make(1))
    got = both(batch, single, ns_key(f"n{i}"), routes)
    assert (got is None) if error is None else (error in got)
    # and the node after it, against whatever the last batch is now
    assert both(batch, single, ns_key("n3"), every[:2] + every[3:]) is None


def test_a_longer_connected_route_takes_some_gateways():
    batch, single = lan(), lan()
    every = host_gw()
    for b in (batch, single):
        b.apply(O.AddLink(ns_key("n3"), "dmz", "dummy"))
        b.apply(O.SetLinkUp(ns_key("n3"), "dmz", True))
        b.apply(O.AddAddress(ns_key("n3"), "dmz", "10.0.0.90", 28))   # n80 is 10.0.0.81
    for i in (1, 2, 3, 4):
        assert both(batch, single, ns_key(f"n{i}"), every[:i - 1] + every[i:]) is None
    ns3 = batch.world.namespaces[ns_key("n3")]
    assert {r.dev for r in ns3.routes if r.gateway} == {"eth0", "dmz"}


def test_a_device_down_or_the_batch_by_device():
    batch, single = lan(), lan()
    every = host_gw()
    assert both(batch, single, ns_key("n1"), every[1:], dev="eth0") is None
    # another device asked for: no connected route on it for these gateways
    assert "invalid gateway" in both(batch, single, ns_key("n2"), every[:1] + every[2:],
                                     dev="cni0")
    for b in (batch, single):
        b.apply(O.SetLinkUp(ns_key("n3"), "eth0", False))
    assert "invalid gateway" in both(batch, single, ns_key("n3"), every[:2] + every[3:])
    assert both(batch, single, ns_key("n4"), every[:3] + every[4:], dev="eth0") is None


def test_random_sequences_of_batches():
    rng = random.Random(6)
    every = host_gw()
    for _ in range(5):
        batch, single = lan(), lan()
        routes = every[1:]
        for i in range(1, 12):
            if rng.random() < 0.6:          # one place changed
                k = rng.randrange(len(routes))
                routes = list(routes)
                routes[k] = rng.choice(every + [("10.250.0.0/24", node_ip(rng.randrange(1, 90))),
                                                ("10.244.1.0/24", "10.9.9.9")])
            both(batch, single, ns_key(f"n{i}"), routes)


def test_batches_given_later_are_the_routes_one_by_one_when_first_read_at_the_end():
    """A batch that is the last one but for a few routes is given later (the list made
    when first read: netlab.model.world.LATER). Read only once every batch is in, each
    namespace holds what an AddRoute for each route makes; so do a copy, a pickle and a
    change made before the first read, and equality and JSON see the same lists; a list
    set before the first read is the namespace's routes."""
    import copy
    import pickle

    from netlab.model.world import LATER

    rng = random.Random(8)
    every = host_gw()
    batch, single = lan(), lan()
    for i in range(1, NODES + 1):
        routes = every[:i - 1] + every[i:]
        if i > 3 and rng.random() < 0.3:          # one more place changed
            routes[rng.randrange(len(routes))] = (f"10.246.{i}.0/24", node_ip(rng.randrange(1, 90)))
        key = ns_key(f"n{i}")
        try:
            batch.apply(O.AddRoutes(key, tuple(routes)))
            error = None
        except CommandError as e:
            error = str(e)
        assert error == one_by_one(single, key, routes)
    spaces = batch.world.namespaces
    later = [k for k, ns in spaces.items() if LATER in ns.__dict__]
    assert len(later) > NODES // 2, later
    # look-ups answer from the batch, and leave the list unmade
    for key, ns in spaces.items():
        if ns.kind == "node":
            for ip in ("10.244.9.1", "10.244.12.7", "10.246.40.1", "10.0.0.3", "8.8.8.8"):
                got, want = lookup_main(ns, ip), lookup_main(single.world.namespaces[key], ip)
                assert got == want, (key, ip)
    assert [k for k, ns in spaces.items() if LATER in ns.__dict__] == later
    changed, copied, compared, replaced = later[3:7]
    spaces[replaced].routes, single.world.namespaces[replaced].routes = [], []
    assert lookup_main(spaces[replaced], "10.244.9.1") is None
    twins = [copy.deepcopy(spaces[copied]), pickle.loads(pickle.dumps(spaces[copied]))]
    gone = single.world.namespaces[changed].routes[-5].dst
    for b in (batch, single):
        b.apply(O.AddRoute(changed, "10.247.0.0/16", gateway=node_ip(20)))
        b.apply(O.DelRoute(changed, gone))
    assert spaces[compared] == single.world.namespaces[compared]
    assert LATER not in spaces[compared].__dict__
    assert all(twin.routes == single.world.namespaces[copied].routes for twin in twins)
    assert batch.world.to_json() == single.world.to_json()
    for key, ns in spaces.items():
        if ns.kind == "node":
            for ip in (gone.replace("0/24", "5"), "10.247.3.3", "10.244.9.1"):
                got, want = lookup_main(ns, ip), lookup_main(single.world.namespaces[key], ip)
                assert got == want, (key, ip)
            assert route_index(ns).valid_for(ns.routes)


def test_route_ops_give_each_node_every_other_nodes_range():
    from types import SimpleNamespace

    from netlab.k8s.build import route_ops

    for n in (1, 2, 3, 7):
        nodes = [SimpleNamespace(name=f"n{i}", ip=node_ip(i), pod_cidr=f"10.244.{i}.0/24")
                 for i in range(n)]
        cluster = SimpleNamespace(nodes=nodes, spec=SimpleNamespace(network="host-gw"))
        every = tuple((x.pod_cidr, x.ip) for x in nodes)
        got = list(route_ops(cluster))
        assert [op.netns for op in got] == [ns_key(x.name) for x in nodes]
        assert [op.routes for op in got] == [every[:i] + every[i + 1:] for i in range(n)]
        assert all(type(op.routes) is tuple for op in got)


@pytest.mark.parametrize("ip", ["10.0.0.1", "0.0.0.0", "255.255.255.255", "1.2.3.04", "1.2.3",
                                "0x1.2.3.4", "1.2.3.4 ", "1.2.3.256", "::1", "1.2.3.4\x00", ""])
def test_ip_int_is_ipaddress(ip):
    import ipaddress

    try:
        want = int(ipaddress.IPv4Address(ip))
    except ValueError as exc:
        with pytest.raises(type(exc)):
            route_batch.ip_int(ip)
    else:
        assert route_batch.ip_int(ip) == want


def test_a_cluster_traces_alike_whether_its_nodes_routes_are_made_or_not():
    """host-gw at 80 nodes: every node's routes but the first's are given later. Traces
    across nodes (each with every branch and its conntrack) are the same as in a twin
    whose lists are all made before the first trace, and tracing makes none."""
    import json
    import sys
    from pathlib import Path

    from netlab.dataplane import trace
    from netlab.k8s.build import build_model
    from netlab.k8s.kubelet import pod_netns_key
    from netlab.model.world import LATER

    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from cluster_bench import synthetic

    cluster = synthetic(80, 160, 20)
    lazy, made = build_model(cluster).world, build_model(cluster).world
    later = [k for k, ns in lazy.namespaces.items() if LATER in ns.__dict__]
    assert len(later) == 79, len(later)
    lengths = [len(ns.routes) for ns in made.namespaces.values()]     # (the lists made)
    assert not any(LATER in ns.__dict__ for ns in made.namespaces.values())
    rng = random.Random(3)
    pods = [p for p in cluster.pods if p.namespace == "default"]
    for _ in range(12):
        client, svc = rng.choice(pods), rng.choice(cluster.services[:20])
        if svc.cluster_ip in (None, "None"):
            continue
        got = [json.dumps(trace(w, pod_netns_key(client), svc.cluster_ip, proto="tcp",
                                dport=svc.ports[0].port, record=True).to_json(), sort_keys=True)
               for w in (lazy, made)]
        assert got[0] == got[1]
        assert '"success"' in got[0]
    assert [k for k, ns in lazy.namespaces.items() if LATER in ns.__dict__] == later
    assert [len(ns.routes) for ns in lazy.namespaces.values()] == lengths
    assert lazy.to_json() == made.to_json()
