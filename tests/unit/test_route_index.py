"""The route index gives what a scan of the route list gives, and follows the list."""

from __future__ import annotations

import random

import pytest

from netlab import ops as O
from netlab.backends.model import ModelBackend
from netlab.dataplane.routing import SHORT, lookup_main
from netlab.errors import CommandError
from netlab.model import Netns, Route, World, ns_key
from netlab.model.route_index import ip_int, prefix_of, route_index


def scan(routes: list[Route], dst: str, oif: str | None) -> Route | None:
    """fib_lookup by hand: the longest prefix, then the lowest metric, the first on a tie."""
    ip = ip_int(dst)
    best, best_len = None, -1
    for r in routes:
        if oif is not None and r.dev is not None and r.dev != oif:
            continue
        net, mask, plen = prefix_of(r.dst)
        if ip & mask == net and (plen > best_len or (plen == best_len and r.metric < best.metric)):
            best, best_len = r, plen
    return best


def random_routes(rng: random.Random, n: int) -> list[Route]:
    out = []
    for _ in range(n):
        plen = rng.choice([0, 8, 16, 23, 24, 24, 25, 32])
        ip = rng.choice([0x0A000000, 0x0A010000, 0xC0A80100]) | rng.getrandbits(10)
        mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0
        net = ip & mask
        dst = "default" if plen == 0 else \
            f"{net >> 24}.{net >> 16 & 255}.{net >> 8 & 255}.{net & 255}/{plen}"
        out.append(Route(dst=dst, dev=rng.choice(["eth0", "eth1", None]),
                         metric=rng.choice([0, 0, 10, 100])))
    return out


def test_longest_match_agrees_with_a_scan():
    # lookup_main searches a short list (a pod's) and indexes a longer one: both, and the
    # index of a short list too, answer as the scan does
    rng = random.Random(6)
    for k in range(60):
        n = rng.randint(0, SHORT + 2) if k % 2 else rng.randint(0, 60)
        ns = Netns(node="n", name="root", routes=random_routes(rng, n))
        for _ in range(40):
            ip = rng.choice([0x0A000000, 0x0A010000, 0xC0A80100, 0x08080808]) | \
                rng.getrandbits(10)
            dst = f"{ip >> 24}.{ip >> 16 & 255}.{ip >> 8 & 255}.{ip & 255}"
            for oif in (None, "eth0", "eth1"):
                expected = scan(ns.routes, dst, oif)
                assert lookup_main(ns, dst, oif) is expected
                assert route_index(ns).longest_match(ip_int(dst), oif) is expected


def test_the_index_follows_the_list():
    ns = Netns(node="n", name="root", routes=[Route(dst="10.0.0.0/8", dev="eth0")])
    assert lookup_main(ns, "10.1.2.3").dst == "10.0.0.0/8"
    ns.routes.append(Route(dst="10.1.0.0/16", dev="eth0"))          # appended behind its back
    assert lookup_main(ns, "10.1.2.3").dst == "10.1.0.0/16"
    ns.routes.pop()
    assert lookup_main(ns, "10.1.2.3").dst == "10.0.0.0/8"
    ns.routes = []                                                   # a new list
    assert lookup_main(ns, "10.1.2.3") is None
    assert route_index(ns).first("10.1.0.0/16", 0) is None and route_index(ns).by_prefix == {}


def two_nodes() -> ModelBackend:
    b = ModelBackend(World())
    for n in ("a", "b"):
        b.apply(O.AddNode(n))
        b.apply(O.AddLink(ns_key(n), "d0", "dummy"))
        b.apply(O.SetLinkUp(ns_key(n), "d0", True))
        b.apply(O.AddAddress(ns_key(n), "d0", "192.168.1.1", 24))
        b.apply(O.AddRoute(ns_key(n), "10.9.0.0/16", gateway="192.168.1.254"))
    return b


def test_a_rename_changes_one_namespace_only():
    b = two_nodes()
    b.apply(O.RenameLink(ns_key("a"), "d0", "d1"))
    dev = {n: {r.dst: r.dev for r in b.world.namespaces[ns_key(n)].routes} for n in "ab"}
    assert dev["a"]["10.9.0.0/16"] == "d1" and dev["b"]["10.9.0.0/16"] == "d0"
    assert lookup_main(b.world.namespaces[ns_key("a")], "10.9.1.1").dev == "d1"


def test_duplicate_and_replace_use_the_index():
    b = two_nodes()
    a = ns_key("a")
    with pytest.raises(CommandError, match="File exists"):
        b.apply(O.AddRoute(a, "10.9.0.0/16", gateway="192.168.1.253"))
    b.apply(O.AddRoute(a, "10.9.0.0/16", gateway="192.168.1.253", replace=True))
    ns = b.world.namespaces[a]
    assert [r.gateway for r in ns.routes if r.dst == "10.9.0.0/16"] == ["192.168.1.253"]
    assert lookup_main(ns, "10.9.1.1").gateway == "192.168.1.253"
    other = b.world.namespaces[ns_key("b")]
    assert lookup_main(other, "10.9.1.1").gateway == "192.168.1.254"


def lan(n: int) -> ModelBackend:
    b = ModelBackend(World())
    b.apply(O.AddSwitch("lan", "10.0.0.0/24"))
    for i in range(1, n + 1):
        b.apply(O.AddNode(f"n{i}"))
        b.apply(O.AttachToSwitch("lan", f"n{i}", "eth0"))
        b.apply(O.AddAddress(ns_key(f"n{i}"), "eth0", f"10.0.0.{i}", 24))
        b.apply(O.AddLink(ns_key(f"n{i}"), "cni0", "bridge"))
        b.apply(O.SetLinkUp(ns_key(f"n{i}"), "cni0", True))
        b.apply(O.AddAddress(ns_key(f"n{i}"), "cni0", f"10.244.{i}.1", 24))
    return b


def test_add_routes_is_an_add_route_for_each():
    batch, one_by_one = lan(4), lan(4)
    for i in range(1, 5):
        others = tuple((f"10.244.{j}.0/24", f"10.0.0.{j}") for j in range(1, 5) if j != i)
        batch.apply(O.AddRoutes(ns_key(f"n{i}"), others, dev="eth0" if i % 2 else None))
        for dst, gw in others:
            one_by_one.apply(O.AddRoute(ns_key(f"n{i}"), dst, gateway=gw,
                                        dev="eth0" if i % 2 else None))
    assert batch.world.to_json() == one_by_one.world.to_json()
    assert World.from_json(batch.world.to_json()).to_json() == batch.world.to_json()
    for key, ns in batch.world.namespaces.items():
        for ip in ("10.244.1.7", "10.244.2.7", "10.244.4.7", "10.0.0.3", "8.8.8.8"):
            assert lookup_main(ns, ip) is scan(ns.routes, ip, None), (key, ip)
    ns = batch.world.namespaces[ns_key("n1")]
    assert lookup_main(ns, "10.244.3.7").gateway == "10.0.0.3"
    assert lookup_main(ns, "10.244.1.7").dev == "cni0"


@pytest.mark.parametrize("routes, error", [
    ((("10.244.2.0/24", "10.0.0.2"), ("10.244.3.0/24", "192.168.9.9")), "invalid gateway"),
    ((("10.244.2.0/24", "10.0.0.2"), ("10.244.3.0/24", "10.0.0.1")), "invalid gateway"),
    ((("10.244.2.0/24", "10.0.0.2"), ("10.244.2.0/24", "10.0.0.3")), "File exists"),
    ((("10.244.1.0/24", "10.0.0.2"),), "File exists"),             # cni0's connected route
])
def test_add_routes_refused_changes_nothing(routes, error):
    b = lan(3)
    before = b.world.to_json()
    with pytest.raises(CommandError, match=error):
        b.apply(O.AddRoutes(ns_key("n1"), routes))
    for dst, gw in routes:                                            # as AddRoute says it
        try:
            b.apply(O.AddRoute(ns_key("n1"), dst, gateway=gw))
        except CommandError as e:
            assert error in str(e)
            break
    else:
        raise AssertionError("one route by one was taken")
    b2 = lan(3)
    with pytest.raises(CommandError):
        b2.apply(O.AddRoutes(ns_key("n1"), routes))
    assert b2.world.to_json() == before


def test_prefix_of_reads_a_cidr_as_ipaddress_does():
    import ipaddress

    rng = random.Random(4)
    cases = ["default", "0.0.0.0/0", "255.255.255.255/32", "10.1.2.3/8", "10.0.0.0/33",
             "010.0.0.0/8", "10.0.0/8", "10.0.0.0/08", "1.2.3.4/ 8", "1.2.3.4/-1", "1.2.3.256/8"]
    cases += [".".join(str(rng.randrange(256)) for _ in range(4)) + f"/{rng.randrange(33)}"
              for _ in range(2000)]
    for dst in cases:
        prefix_of.cache_clear()
        try:
            net = ipaddress.IPv4Network("0.0.0.0/0" if dst == "default" else dst, strict=False)
            want = (int(net.network_address), int(net.netmask), net.prefixlen)
        except ValueError:
            want = "refused"
        try:
            got = prefix_of(dst)
        except ValueError:
            got = "refused"
        assert got == want, dst
