"""A shared route index (a base's index and a namespace's few differences) answers as an
index built from the namespace's own list does, whatever the list became."""

from __future__ import annotations

import dataclasses
import random

import pytest

from netlab.model import Netns, Route
from netlab.model.world import LATER
from netlab.model import route_index as ri
from netlab.model.route_index import RouteIndex, SharedRouteIndex, append_route, route_index


@pytest.fixture(autouse=True)
def small_bases(monkeypatch):
    monkeypatch.setattr(ri, "SHARE_FROM", 8)
    monkeypatch.setattr(ri, "MAX_DIFFERENCES", 12)
    monkeypatch.setattr(ri, "_BASES", [])


def dotted(ip: int) -> str:
    return f"{ip >> 24}.{ip >> 16 & 255}.{ip >> 8 & 255}.{ip & 255}"


def a_route(rng: random.Random) -> Route:
    plen = rng.choice([0, 8, 16, 24, 24, 24, 25, 32])
    ip = rng.choice([0x0A000000, 0x0A010000, 0xC0A80100]) | rng.getrandbits(6) << 8
    net = ip & ri.mask_of(plen)
    return Route(dst="default" if plen == 0 else f"{dotted(net)}/{plen}",
                 dev=rng.choice(["eth0", "eth1", "cni0", None]),
                 gateway=rng.choice([None, None, "10.0.0.1"]),
                 metric=rng.choice([0, 0, 0, 10, 100]),
                 scope=rng.choice(["link", "global", "host"]),
                 type=rng.choice(["unicast"] * 6 + ["blackhole"]))


def changed(rng: random.Random, routes: list[Route], pool: list[Route]) -> list[Route]:
    """A new list: a few appends, deletes, replacements, moves, equal copies; or a flush."""
    out = list(routes)
    for _ in range(rng.randint(0, 6)):
        kind = rng.choice(["append", "insert", "delete", "replace", "move", "copy", "again",
                           "flush"] if len(out) > 2 else ["append"])
        if kind == "append":
            out.append(rng.choice(pool))
        elif kind == "insert":
            out.insert(rng.randrange(len(out) + 1), a_route(rng))
        elif kind == "delete":
            del out[rng.randrange(len(out))]
        elif kind == "replace":
            out[rng.randrange(len(out))] = a_route(rng)
        elif kind == "move":
            out.insert(rng.randrange(len(out)), out.pop(rng.randrange(len(out))))
        elif kind == "copy":           # an equal route, another object
            k = rng.randrange(len(out))
            out[k] = dataclasses.replace(out[k])
        elif kind == "again":          # one object twice
            out.insert(rng.randrange(len(out)), rng.choice(out))
        elif rng.random() < 0.1:
            out = []
    return out


def same_answers(index, routes: list[Route], rng: random.Random) -> None:
    assert index.valid_for(routes)
    full = RouteIndex(list(routes))
    assert [id(r) for r in index.connected] == [id(r) for r in full.connected]
    for r in routes + [a_route(rng) for _ in range(5)]:
        assert [id(x) for x in index.same_prefix(r.dst)] == \
            [id(x) for x in full.same_prefix(r.dst)]
        for metric in (0, 10, 100):
            assert index.first(r.dst, metric) is full.first(r.dst, metric)
    for _ in range(60):
        ip = rng.choice([0x0A000000, 0x0A010000, 0xC0A80100, 0x08080808]) | rng.getrandbits(14)
        for oif in (None, "eth0", "eth1", "cni0"):
            assert index.longest_match(ip, oif) is full.longest_match(ip, oif), (dotted(ip), oif)


def test_a_shared_index_answers_as_the_full_one_over_random_changes():
    rng = random.Random(6)
    shared = 0
    for _ in range(60):
        pool = [a_route(rng) for _ in range(rng.randint(8, 40))]
        first = rng.sample(pool, rng.randint(8, len(pool)))
        ns = Netns(node="n", name="root", routes=first)
        same_answers(route_index(ns), first, rng)
        for _ in range(8):
            other = Netns(node="m", name="root", routes=changed(rng, first, pool))
            index = route_index(other)
            shared += isinstance(index, SharedRouteIndex) and index.base.routes is not \
                other.routes and bool(index.mine)
            same_answers(index, other.routes, rng)
            for _ in range(3):                      # appends it follows
                append_route(other, rng.choice(pool + [a_route(rng)]))
                assert route_index(other) is index
                same_answers(index, other.routes, rng)
            other.routes.pop(rng.randrange(len(other.routes)))   # behind its back
            same_answers(route_index(other), other.routes, rng)
    assert shared > 100         # the shared path was taken, with differences


def test_a_base_is_a_copy_that_later_changes_to_the_list_do_not_reach():
    rng = random.Random(7)
    routes = [a_route(rng) for _ in range(30)]
    ns = Netns(node="n", name="root", routes=routes)
    index = route_index(ns)
    assert isinstance(index, SharedRouteIndex) and index.base.routes is not routes
    frozen = list(index.base.routes)
    for _ in range(20):
        append_route(ns, a_route(rng))
        ns.routes[rng.randrange(len(ns.routes))] = a_route(rng)  # a new list would be made
        ns.routes = list(ns.routes)
        same_answers(route_index(ns), ns.routes, rng)
    assert index.base.routes == frozen and all(a is b for a, b in zip(index.base.routes, frozen))


def test_host_gw_lists_share_one_base():
    every = [Route(dst=f"10.244.{i}.0/24", dev="eth0", gateway=f"10.0.0.{i}", scope="global")
             for i in range(40)]
    spaces = []
    for i in range(40):
        own = [Route(dst="10.0.0.0/24", dev="eth0", src=f"10.0.0.{i}", scope="link"),
               Route(dst=f"10.244.{i}.0/24", dev="cni0", src=f"10.244.{i}.1", scope="link")]
        spaces.append(Netns(node=f"n{i}", name="root", routes=own + every[:i] + every[i + 1:]))
    rng = random.Random(1)
    for ns in spaces:
        same_answers(route_index(ns), ns.routes, rng)
    assert len({id(route_index(ns).base) for ns in spaces}) == 1


def test_indexes_are_neither_copied_nor_pickled():
    import copy
    import pickle

    ns = Netns(node="n", name="root", routes=[a_route(random.Random(2)) for _ in range(20)])
    route_index(ns)
    for twin in (copy.deepcopy(ns), pickle.loads(pickle.dumps(ns))):
        assert twin.__dict__.get(ri.ATTR) is None and twin.routes == ns.routes
        assert route_index(twin).valid_for(twin.routes)


def expand(pieces: list, base: list[Route]) -> list[Route]:
    out: list[Route] = []
    end = 0
    for piece in pieces:
        if type(piece) is tuple:
            j, n = piece
            assert n > 0 and j >= end       # runs in the base's order, none twice
            out += base[j:j + n]
            end = j + n
        else:
            out.append(piece)
    return out


def test_a_batchs_pieces_follow_its_replacements():
    from netlab.backends.route_batch import replaced

    rng = random.Random(3)
    for _ in range(200):
        base = [a_route(rng) for _ in range(rng.randint(1, 30))]
        pos = {id(r): i for i, r in enumerate(base)}
        routes, pieces = list(base), [(0, len(base))]
        for _ in range(rng.randint(1, 20)):
            k = rng.randrange(len(routes))
            route = rng.choice(base) if rng.random() < 0.6 else a_route(rng)
            routes[k] = route
            pieces = replaced(pieces, k, route, pos)
            if pieces is None:
                break
            got = expand(pieces, base)
            assert len(got) == len(routes) and all(a is b for a, b in zip(got, routes))
    # host-gw: node i's batch is every route but its own; node i's is node i-1's with one
    # route replaced: against node 0's, one route of its own and two runs at most
    every = [a_route(rng) for _ in range(50)]
    base = every[1:]
    pos = {id(r): i for i, r in enumerate(base)}
    routes, pieces = list(base), [(0, 49)]
    for i in range(1, 50):
        routes[i - 1] = every[i - 1]
        pieces = replaced(pieces, i - 1, every[i - 1], pos)
        assert pieces == [every[0]] + ([(0, i - 1)] if i > 1 else []) + \
            ([(i, 49 - i)] if i < 49 else [])


def lan_with_routes(n: int):
    """test_route_batch's LAN of n nodes, each given the routes to every other node's pods
    in one batch (host-gw)."""
    from netlab import ops as O
    from netlab.model import ns_key
    from tests.unit.test_route_batch import lan, node_ip

    b = lan(n)
    every = [(f"10.244.{j}.0/24", node_ip(j)) for j in range(1, n + 1)]
    for i in range(1, n + 1):
        b.apply(O.AddRoutes(ns_key(f"n{i}"), tuple(every[:i - 1] + every[i:])))
    return b


def test_the_nodes_of_host_gw_batches_get_their_index_from_the_batch():
    from netlab import ops as O
    from netlab.model import ns_key

    import copy
    import pickle

    b = lan_with_routes(70)
    spaces = [b.world.namespaces[ns_key(f"n{i}")] for i in range(1, 71)]
    # the batches are given later (no list yet), then joined as each list is first read
    later = [LATER in ns.__dict__ and "routes" not in ns.__dict__ for ns in spaces]
    assert later[1:] == [True] * 69, later
    assert [len(ns.routes) for ns in spaces] == [71] * 70     # 69 routes and eth0's, cni0's
    noted = [ns.__dict__.get(ri.ATTR).__class__.__name__ for ns in spaces]
    assert noted[2:] == ["Pending"] * 68, noted
    for twin in (copy.deepcopy(spaces[9]), pickle.loads(pickle.dumps(spaces[9]))):
        assert twin.__dict__.get(ri.ATTR) is None and twin.routes == spaces[9].routes
    rng = random.Random(5)
    for ns in spaces:
        same_answers(route_index(ns), ns.routes, rng)
    assert len({id(route_index(ns).base) for ns in spaces[2:]}) == 1
    # and after the changes a person makes
    n5 = ns_key("n5")
    b.apply(O.AddRoute(n5, "10.244.9.0/24", gateway="10.0.0.20", replace=True))
    b.apply(O.DelRoute(n5, "10.244.12.0/24"))
    b.apply(O.AddRoute(n5, "10.244.12.0/24", gateway="10.0.0.33", metric=5))
    b.apply(O.AddRoute(n5, "10.244.0.0/16", dev="cni0"))
    ns = b.world.namespaces[n5]
    same_answers(route_index(ns), ns.routes, rng)
    assert route_index(ns).longest_match(ri.ip_int("10.244.9.1")).gateway == "10.0.0.20"
