"""L2 answers found without searching a segment (Segments.owner, Segments.path) are those
of the full build (build_segments): which end answers ARP for each address from each end,
the path of a frame between two ends, and whether a segment is open — asked in random
order, so that answers seen from around an end mix with segments searched meanwhile."""

from __future__ import annotations

import random
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from netlab import ops as O
from netlab.dataplane import l2
from netlab.k8s.build import build_model
from netlab.k8s.cluster import load_cluster
from netlab.model.world import Link
from tests.unit import builders as B

DATA = Path(__file__).parents[1] / "data" / "k8s"


def questions(world, full, rng):
    """Every (end, address) ARP question, path questions between ends of one segment, and
    open questions, shuffled."""
    ends = list(full.segment)
    ips = sorted({a.ip for ns in world.namespaces.values() for link in ns.links.values()
                  for a in link.addresses} | {"203.0.113.9"})
    asked = [("owner", end, ip) for end in ends for ip in ips]
    by_sid: dict[int, list] = {}
    for end in ends:
        by_sid.setdefault(full.segment[end], []).append(end)
    for members in by_sid.values():
        for _ in range(3 * len(members)):
            asked.append(("path", rng.choice(members), rng.choice(members)))
    asked += [("open", end, None) for end in ends]
    rng.shuffle(asked)
    return asked


def l2_alike(world, seed: int = 0) -> int:
    """Asks a lazy Segments every question, compares with the full build, then asks a new
    one only the ARP questions that have an answer (as a trace asks them); returns how many
    ARP answers came without searching the segment."""
    full = l2.build_segments(world)
    rng = random.Random(seed)
    asked = questions(world, full, rng)
    answered = [q for q in asked if q[0] == "owner" and (full.segment[q[1]], q[2]) in full.owners]
    for q in rng.sample(asked, min(len(asked), 100)):       # each asked first
        answers_alike(world, full, [q])
    return answers_alike(world, full, asked) + answers_alike(world, full, answered)


def answers_alike(world, full, asked) -> int:
    lazy = l2.Segments()
    seen = 0
    for kind, end, x in asked:
        if kind == "owner":
            searched = end in lazy.segment
            want = full.owners.get((full.segment[end], x))
            assert lazy.owner(world, end, x) == want, (end, x)
            seen += not searched and end not in lazy.segment
            if want is not None:        # what the engine asks next
                assert lazy.path(world, end, want) == l2.frame_path(full, end, want), (end, x)
        elif kind == "path":
            assert lazy.path(world, end, x) == l2.frame_path(full, end, x), (end, x)
        else:
            assert (lazy.segment_of(world, end) in lazy.open) == (full.segment[end] in full.open)
    return seen


# --- hand-made worlds -----------------------------------------------------------------------

def two_bridges():
    """v-net-0 (red, blue, green) and br1 (cyan, pink), joined by a veth between them."""
    b = B.bridge_with(["red", "blue", "green"])
    b.apply(O.AddLink("host/root", "br1", "bridge"))
    b.apply(O.SetLinkUp("host/root", "br1", True))
    for i, name in enumerate(["cyan", "pink"], start=20):
        ns = B.netns(b, name)
        B.veth(b, ns, f"veth-{name}", "host/root", f"veth-{name}-br", a_ip=f"192.168.15.{i}/24")
        b.apply(O.SetLinkMaster("host/root", f"veth-{name}-br", "br1"))
    B.veth(b, "host/root", "join-a", "host/root", "join-b")
    b.apply(O.SetLinkMaster("host/root", "join-a", "v-net-0"))
    b.apply(O.SetLinkMaster("host/root", "join-b", "br1"))
    return b


def test_pods_on_one_bridge_are_answered_without_a_search():
    b = B.bridge_with(["red", "blue", "green"])
    assert l2_alike(b.world) > 0
    lazy = l2.Segments()
    red, bridge = ("host/red", "veth-red"), ("host/root", "v-net-0")
    assert lazy.owner(b.world, bridge, "192.168.15.1") == red
    assert lazy.owner(b.world, red, "192.168.15.5") == bridge
    assert lazy.path(b.world, red, bridge) == [red, ("host/root", "veth-red-br"), bridge]
    assert lazy.segment == {}, "nothing was searched"


def test_two_bridges_joined_by_a_veth_or_by_two_in_a_loop():
    b = two_bridges()
    l2_alike(b.world)
    B.veth(b, "host/root", "loop-a", "host/root", "loop-b")
    b.apply(O.SetLinkMaster("host/root", "loop-a", "v-net-0"))
    b.apply(O.SetLinkMaster("host/root", "loop-b", "br1"))
    for seed in range(3):
        l2_alike(b.world, seed)


def test_a_pendant_veth_on_its_own_and_a_pod_with_two_legs_in_one_bridge():
    b = B.bridge_with(["red", "blue"])
    B.veth(b, "host/red", "leg2", "host/root", "leg2-br", a_ip="192.168.15.31/24")
    b.apply(O.SetLinkMaster("host/root", "leg2-br", "v-net-0"))
    B.netns(b, "lone")
    B.veth(b, "host/lone", "a", "host/blue", "b", a_ip="10.9.0.1/24", b_ip="10.9.0.2/24")
    l2_alike(b.world)


@pytest.mark.parametrize("down", [
    ("host/red", "veth-red"), ("host/root", "veth-red-br"), ("host/root", "v-net-0"),
    ("host/root", "join-a")])
def test_down_links(down):
    b = two_bridges()
    b.apply(O.SetLinkUp(*down, False))
    for seed in range(2):
        l2_alike(b.world, seed)


def test_one_address_twice_in_a_segment_and_in_two_segments():
    b = two_bridges()
    b.apply(O.AddAddress("host/blue", "veth-blue", "192.168.15.1", 24))     # red's, too
    b.apply(O.AddAddress("host/cyan", "veth-cyan", "10.1.1.1", 24))
    b.apply(O.AddLink("host/pink", "dum", "dummy"))
    b.apply(O.AddAddress("host/pink", "dum", "10.1.1.1", 24))
    for seed in range(3):
        l2_alike(b.world, seed)
    b.apply(O.SetLinkUp("host/root", "join-a", False))              # two segments now
    l2_alike(b.world)


def test_open_ends_and_devices_on_their_own():
    b = two_bridges()
    b.apply(O.AddLink("host/root", "dum0", "dummy"))
    b.apply(O.SetLinkUp("host/root", "dum0", True))
    b.apply(O.AddAddress("host/root", "dum0", "10.2.0.1", 24))
    b.apply(O.AddLink("host/root", "lonely", "bridge"))
    b.apply(O.SetLinkUp("host/root", "lonely", True))
    root = b.world.namespaces["host/root"]
    root.links["eno1"] = Link(name="eno1", kind="physical", ifindex=99, mac="02:00:00:00:00:99",
                              up=True, master="br1")
    blue = b.world.namespaces["host/blue"]
    blue.links["veth-blue"].peer_name = None                        # its peer outside
    root.links["veth-blue-br"].peer_name = None
    for seed in range(3):
        l2_alike(b.world, seed)


def test_bridges_in_bridges():
    b = two_bridges()
    b.apply(O.AddLink("host/root", "inner", "bridge"))              # down
    links = b.world.namespaces["host/root"].links
    links["inner"].master = "v-net-0"
    links["br1"].master = "v-net-0"
    for seed in range(3):
        l2_alike(b.world, seed)


def test_one_way_edges_get_the_answers_of_the_search():
    # Neither the kernel nor the model backend makes them, and the full build and the
    # search disagree there (which end a one-way edge is met from first): the answers
    # are the search's.
    def weird(kind):
        b = two_bridges()
        red = b.world.namespaces["host/red"]
        if kind == "port of a dummy":
            b.apply(O.AddLink("host/red", "dum", "dummy"))
            b.apply(O.SetLinkUp("host/red", "dum", True))
            red.links["veth-red"].master = "dum"
        elif kind == "veth to a bridge":
            red.links["veth-red"].peer_netns, red.links["veth-red"].peer_name = "host/root", "br1"
            b.apply(O.SetLinkUp("host/root", "join-a", False))
            b.apply(O.SetLinkUp("host/root", "veth-red-br", False))
        else:                       # to a veth whose peer is another
            B.netns(b, "odd")
            B.veth(b, "host/odd", "o", "host/odd", "o2", a_ip="192.168.15.77/24")
            odd = b.world.namespaces["host/odd"]
            odd.links["o"].peer_netns, odd.links["o"].peer_name = "host/blue", "veth-blue"
        return b.world

    for kind in ("port of a dummy", "veth to a bridge", "veth to a veth"):
        for seed in range(3):
            world = weird(kind)
            asked = questions(world, l2.build_segments(world), random.Random(seed))
            assert answers(world, asked, seen=True) == answers(world, asked, seen=False), kind
        for q in asked:             # and each one asked first
            assert answers(world, [q], seen=True) == answers(world, [q], seen=False), (kind, q)


def answers(world, asked, seen: bool) -> list:
    lazy = l2.Segments()
    if not seen:                    # every answer from a search
        lazy._owner_seen = lazy._joined = lambda *_: None
    out: list = []
    for kind, end, x in asked:
        try:
            if kind == "owner":
                out.append(lazy.owner(world, end, x))
            elif kind == "path":
                out.append(lazy.path(world, end, x))
            else:
                out.append(lazy.segment_of(world, end) in lazy.open)
        except KeyError as e:       # a path between ends the search put in two segments
            out.append(repr(e))
    return out


# --- labs and clusters --------------------------------------------------------------------

def test_random_labs(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "privileged"))
    from random_labs import random_lab

    from netlab.labs.loader import load_lab
    from netlab.labs.runner import run_lab

    for i in range(25):
        lab = random_lab(random.Random(f"l2-{i}"), f"r{i}")
        path = tmp_path / f"r{i}.yaml"
        path.write_text(lab.yaml())
        l2_alike(run_lab(load_lab(path), check_expect=False).world, i)


def test_bundled_labs():
    from netlab.labs.catalog import bundled
    from netlab.labs.loader import load_lab
    from netlab.labs.runner import run_lab

    for path in bundled():
        l2_alike(run_lab(load_lab(path), check_expect=False, keep_going=True).backend.world)


@pytest.mark.parametrize("network", ["host-gw", "vxlan"])
def test_random_clusters(network, monkeypatch):
    from tests.unit import k8s_services_random as R

    spec = R.ClusterSpec
    monkeypatch.setattr(R, "ClusterSpec", lambda **kw: replace(spec(**kw), network=network))
    seen = 0
    for seed in range(6):
        seen += l2_alike(build_model(R.random_cluster(seed)).world, seed)
    assert seen > 0


@pytest.mark.parametrize("name", ["services", "shop", "e2e", "controlplane"])
def test_clusters_of_the_test_data(name):
    cluster = load_cluster([str(p) for p in sorted((DATA / name).glob("*.yaml"))])
    assert l2_alike(build_model(cluster).world) > 0


@pytest.mark.parametrize("after", ["never", "midway"])
def test_answers_before_the_index_of_addresses_is_made(after, monkeypatch):
    # A large World is indexed only once searches have met a share of its namespaces:
    # before, every answer is the search's.
    from tests.unit import k8s_services_random as R

    world = build_model(R.random_cluster(5)).world
    monkeypatch.setattr(l2, "INDEX_AFTER", 0 if after == "never" else
                        len(world.namespaces) / (64 + 40))
    seen = l2_alike(world)
    assert (seen > 0) == (after == "midway")
