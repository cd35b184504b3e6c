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
