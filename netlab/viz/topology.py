"""The picture of a World, as data the diagram writers share.

Nodes are clusters with their namespaces inside; a bridge is a hub in its
namespace's cluster (a LAN's switch is a hub of its own, outside every node);
a veth pair is an edge between the namespaces (or the bridges their ends are
ports of), labelled with both ends' names and addresses; VXLAN devices with the
same VNI are joined by dashed tunnel edges. ``Overlay`` places a trace's hops on
these elements: which element each hop happened at, and the hop numbers each
element collects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import combinations

from netlab.model import Link, Netns, World
from netlab.trace import Hop
from netlab.viz.journey import Leg, tunnel_action


@dataclass
class Vertex:
    id: str
    title: str
    lines: list[str]
    kind: str                       # netns | root | bridge | lan
    cluster: str | None             # the node it belongs to; None for a LAN


@dataclass
class Edge:
    id: str
    a: str
    b: str
    a_label: str
    b_label: str
    kind: str                       # veth | bridge-dev | vxlan


@dataclass
class Topology:
    name: str
    clusters: dict[str, list[str]] = field(default_factory=dict)     # node -> vertex ids
    vertices: dict[str, Vertex] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    netns_vertex: dict[str, str] = field(default_factory=dict)       # ns key -> vertex id
    hub: dict[tuple[str, str], str] = field(default_factory=dict)    # (ns key, bridge) -> id
    link_edge: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns key, dev) -> id


def safe_id(prefix: str, *parts: str) -> str:
    """An id DOT, SVG, HTML and Mermaid all take as it is."""
    return prefix + "_" + "_".join(re.sub(r"[^A-Za-z0-9]", "_", p) for p in parts)


def addresses(link: Link) -> str:
    return ", ".join(a.cidr for a in link.addresses)


def end_label(link: Link) -> str:
    addr = addresses(link)
    return f"{link.name}\n{addr}" if addr else link.name


def _vxlan_group(link: Link) -> str:
    """VXLAN devices with the same VNI and UDP port are one overlay."""
    vx = link.vxlan or {}
    return f"{vx['vni']}/{vx.get('dstport')}" if vx.get("vni") is not None else link.name


def topology(world: World) -> Topology:
    topo = Topology(world.name)
    used: set[str] = set()

    def unique(ident: str) -> str:
        base, n = ident, 1
        while ident in used:
            n += 1
            ident = f"{base}_{n}"
        used.add(ident)
        return ident

    lans = {lan.name: lan for lan in world.lans}
    drawn: set[tuple[str, str]] = set()      # links that are an edge (not listed in a box)
    for ns in world.namespaces.values():
        for link in ns.links.values():
            if link.kind == "veth" and world.peer_of(ns, link) is not None:
                drawn.add((ns.key, link.name))
            elif link.kind == "bridge":
                drawn.add((ns.key, link.name))
    for ns in world.namespaces.values():
        if ns.kind == "switch":
            for link in ns.links.values():
                if link.kind == "bridge":
                    lan = lans.get(ns.node)
                    vid = unique(safe_id("lan", ns.node, link.name))
                    title = f"LAN {ns.node}"
                    lines = [lan.subnet] if lan is not None and lan.subnet else []
                    topo.vertices[vid] = Vertex(vid, title, lines, "lan", None)
                    topo.hub[(ns.key, link.name)] = vid
                    topo.netns_vertex.setdefault(ns.key, vid)
            continue
        cluster = topo.clusters.setdefault(ns.node, [])
        vid = unique(safe_id("ns", ns.node, ns.name))
        title = f"{ns.node} (root)" if ns.name == "root" else ns.name
        lines = [f"{l.name} {addresses(l)}".rstrip() for l in ns.links.values()
                 if (ns.key, l.name) not in drawn and l.kind != "loopback"
                 or l.kind == "loopback" and len(l.addresses) > 1]
        topo.vertices[vid] = Vertex(vid, title, lines, "root" if ns.name == "root" else "netns",
                                    ns.node)
        topo.netns_vertex[ns.key] = vid
        cluster.append(vid)
        for link in ns.links.values():
            if link.kind == "bridge":
                hid = unique(safe_id("br", ns.node, ns.name, link.name))
                topo.vertices[hid] = Vertex(hid, link.name, [], "bridge", ns.node)
                topo.hub[(ns.key, link.name)] = hid
                cluster.append(hid)
                eid = unique(safe_id("dev", ns.node, ns.name, link.name))
                topo.edges.append(Edge(eid, vid, hid, addresses(link), "", "bridge-dev"))
                topo.link_edge[(ns.key, link.name)] = eid
    _veth_edges(world, topo, unique)
    _vxlan_edges(world, topo, unique)
    return topo


def _end_vertex(topo: Topology, ns: Netns, link: Link) -> str | None:
    if link.master is not None and (ns.key, link.master) in topo.hub:
        return topo.hub[(ns.key, link.master)]
    return topo.netns_vertex.get(ns.key)


def _veth_edges(world: World, topo: Topology, unique) -> None:
    seen: set[tuple[str, str]] = set()
    for ns in world.namespaces.values():
        for link in ns.links.values():
            if link.kind != "veth" or (ns.key, link.name) in seen:
                continue
            peer = world.peer_of(ns, link)
            if peer is None:
                continue
            peer_ns, peer_link = peer
            seen |= {(ns.key, link.name), (peer_ns.key, peer_link.name)}
            a, b = _end_vertex(topo, ns, link), _end_vertex(topo, peer_ns, peer_link)
            if a is None or b is None:
                continue
            eid = unique(safe_id("veth", ns.node, ns.name, link.name))
            topo.edges.append(Edge(eid, a, b, end_label(link), end_label(peer_link), "veth"))
            topo.link_edge[(ns.key, link.name)] = eid
            topo.link_edge[(peer_ns.key, peer_link.name)] = eid


def _vxlan_edges(world: World, topo: Topology, unique) -> None:
    groups: dict[str, list[tuple[Netns, Link]]] = {}
    for ns in world.namespaces.values():
        for link in ns.links.values():
            if link.kind == "vxlan":
                groups.setdefault(_vxlan_group(link), []).append((ns, link))
    for group, ends in groups.items():
        for (ns_a, a), (ns_b, b) in combinations(ends, 2):
            if ns_a.node == ns_b.node:
                continue
            va, vb = topo.netns_vertex.get(ns_a.key), topo.netns_vertex.get(ns_b.key)
            if va is None or vb is None:
                continue
            eid = unique(safe_id("vxlan", ns_a.node, ns_a.name, a.name, ns_b.node))
            topo.edges.append(Edge(eid, va, vb, end_label(a), end_label(b), "vxlan"))
            topo.link_edge.setdefault((ns_a.key, a.name), eid)
            topo.link_edge.setdefault((ns_b.key, b.name), eid)


# --- a trace on the picture ------------------------------------------------------------
def element_of(topo: Topology, world: World, hop: Hop) -> str | None:
    """The element a hop happened at: the veth it crossed, the bridge that switched it,
    the tunnel it entered, else its namespace."""
    key = f"{hop.node}/{hop.netns}"
    ns = world.namespaces.get(key)
    link = ns.links.get(hop.dev) if ns is not None and hop.dev else None
    if (hop.event == "veth" or tunnel_action(hop) is not None) and link is not None:
        found = topo.link_edge.get((key, link.name))
        if found is not None:
            return found
    if hop.event == "bridge" and link is not None:
        bridge = link.name if link.kind == "bridge" else link.master
        if bridge is not None and (key, bridge) in topo.hub:
            return topo.hub[(key, bridge)]
    return topo.netns_vertex.get(key)


@dataclass
class Overlay:
    """Where each hop of each leg is, and the hop numbers of each element."""
    at: dict[str, list[str | None]] = field(default_factory=dict)     # leg key -> element per step
    numbers: dict[str, list[str]] = field(default_factory=dict)       # element -> "1", "r2", ...
    reply_only: set[str] = field(default_factory=set)


def overlay(topo: Topology, world: World, legs: list[Leg]) -> Overlay:
    out = Overlay()
    forward: set[str] = set()
    replies: set[str] = set()
    for leg in legs:
        places = [element_of(topo, world, step.hop) for step in leg.steps]
        out.at[leg.key] = places
        for step, element in zip(leg.steps, places):
            if element is None:
                continue
            (replies if leg.reply else forward).add(element)
            mark = f"r{step.number}" if leg.reply else str(step.number)
            marks = out.numbers.setdefault(element, [])
            if mark not in marks:
                marks.append(mark)
    out.reply_only = replies - forward
    return out


def compact(marks: list[str]) -> str:
    """1,2,3,5,r1,r2 -> 1-3,5,r1-2"""
    runs: list[str] = []
    for prefix in ("", "r"):
        nums = [int(m[len(prefix):]) for m in marks
                if (m.startswith("r") if prefix else not m.startswith("r"))]
        nums.sort()
        i = 0
        while i < len(nums):
            j = i
            while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
                j += 1
            runs.append(f"{prefix}{nums[i]}" + (f"-{nums[j]}" if j > i else ""))
            i = j + 1
    return ",".join(runs)
