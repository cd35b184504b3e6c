"""Layer 2: which interfaces share a broadcast domain, and the path a frame
takes between two of them (veth pairs, bridge ports, bridges).

The segments of a World are computed once per state of the World and
indexed, so an ARP resolution is a dictionary look-up and a path is a walk
up a tree, whatever the number of ports on a bridge.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from netlab.backends.model import open_end, oper_up
from netlab.model import Link, Netns, World

End = tuple[str, str]  # (namespace key, link name)


@dataclass
class Segments:
    """Broadcast domains: a BFS forest over L2 adjacency with parent pointers."""
    segment: dict[End, int] = field(default_factory=dict)
    parent: dict[End, End | None] = field(default_factory=dict)
    depth: dict[End, int] = field(default_factory=dict)
    # L3 interfaces (not bridge ports) per segment, by IPv4 address they own.
    owners: dict[tuple[int, str], End] = field(default_factory=dict)
    # which namespaces answer ARP on a segment: (segment, ns key) -> the interface there
    members: dict[int, list[End]] = field(default_factory=dict)
    # segments that reach a link with nothing modelled behind it: a packet no modelled
    # interface answers for leaves the model there
    open: set[int] = field(default_factory=set)


def _neighbours(world: World, end: End) -> list[End]:
    """Ends one L2 step away from ``end``, if frames can cross (link state)."""
    ns = world.namespaces[end[0]]
    link = ns.links[end[1]]
    out: list[End] = []
    if not oper_up(world, ns, link) and link.kind != "bridge":
        return out
    if link.kind == "veth":
        peer = world.peer_of(ns, link)
        if peer is not None and peer[1].up:
            out.append((peer[0].key, peer[1].name))
    if link.master is not None:
        bridge = ns.links.get(link.master)
        if bridge is not None and bridge.up:
            out.append((ns.key, bridge.name))
    if link.kind == "bridge" and link.up:
        for port in ns.links.values():
            if port.master == link.name and oper_up(world, ns, port):
                out.append((ns.key, port.name))
    return out


def build_segments(world: World) -> Segments:
    seg = Segments()
    next_id = 0
    for ns in world.namespaces.values():
        for link in ns.links.values():
            start = (ns.key, link.name)
            if start in seg.segment or link.kind == "loopback":
                continue
            seg.segment[start] = next_id
            seg.parent[start] = None
            seg.depth[start] = 0
            queue = deque([start])
            while queue:
                end = queue.popleft()
                for nxt in _neighbours(world, end):
                    if nxt not in seg.segment:
                        seg.segment[nxt] = next_id
                        seg.parent[nxt] = end
                        seg.depth[nxt] = seg.depth[end] + 1
                        queue.append(nxt)
            next_id += 1
    for end, sid in seg.segment.items():
        ns = world.namespaces[end[0]]
        link = ns.links[end[1]]
        if link.up and open_end(link):
            seg.open.add(sid)
        if link.master is not None or not link.up:
            continue  # a bridge port is not an L3 interface
        seg.members.setdefault(sid, []).append(end)
    # ARP (arp_ignore=0): a namespace answers for any of its local addresses on
    # any interface it has in the segment.
    for sid, ends in seg.members.items():
        for end in ends:
            ns = world.namespaces[end[0]]
            for other in ns.links.values():
                if other.kind != "loopback":
                    for addr in other.addresses:
                        seg.owners.setdefault((sid, addr.ip), end)
    return seg


def frame_path(seg: Segments, a: End, b: End) -> list[End]:
    """The ends a frame crosses from a to b (both included), through the BFS tree."""
    up_a: list[End] = [a]
    up_b: list[End] = [b]
    x, y = a, b
    while seg.depth[x] > seg.depth[y]:
        x = seg.parent[x]  # type: ignore[assignment]
        up_a.append(x)
    while seg.depth[y] > seg.depth[x]:
        y = seg.parent[y]  # type: ignore[assignment]
        up_b.append(y)
    while x != y:
        x = seg.parent[x]  # type: ignore[assignment]
        y = seg.parent[y]  # type: ignore[assignment]
        up_a.append(x)
        up_b.append(y)
    up_b.pop()  # the common ancestor is already last in up_a
    return up_a + up_b[::-1]


def link_at(world: World, end: End) -> tuple[Netns, Link]:
    ns = world.namespaces[end[0]]
    return ns, ns.links[end[1]]
