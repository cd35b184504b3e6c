"""Layer 2: which interfaces share a broadcast domain, and the path a frame
takes between two of them (veth pairs, bridge ports, bridges).

The segments of a World are found as traces need them and kept per state of
the World, so an ARP resolution is a dictionary look-up and a path is a walk
up a tree, whatever the number of ports on a bridge.
"""

from __future__ import annotations

from collections import deque

from netlab.backends.model import open_end, oper_up
from netlab.model import Link, Netns, World

End = tuple[str, str]  # (namespace key, link name)


class Segments:
    """Broadcast domains: a BFS forest over L2 adjacency with parent pointers, found one
    domain at a time as a trace asks for it (a cluster has one per node's bridge and
    pod: a trace needs a few of them). Each domain is the one a full build would find:
    searched from its first end in the World's order (namespaces, then their links),
    so its tree, and which end answers for an address, are the same. (A bridge that
    is a port of another bridge can reach it without being reachable from it: then
    every domain is searched, in that order, as the full build does.)"""

    def __init__(self) -> None:
        self.segment: dict[End, int] = {}
        self.parent: dict[End, End | None] = {}
        self.depth: dict[End, int] = {}
        # L3 interfaces (not bridge ports) per segment, by IPv4 address they own.
        self.owners: dict[tuple[int, str], End] = {}
        # segments that reach a link with nothing modelled behind it: a packet no
        # modelled interface answers for leaves the model there
        self.open: set[int] = set()
        self._next = 0
        self._order: dict[str, int] | None = None      # namespace key -> its position

    def segment_of(self, world: World, end: End) -> int | None:
        """The segment of ``end`` (None for lo, which is in none)."""
        sid = self.segment.get(end)
        if sid is not None:
            return sid
        ns = world.namespaces.get(end[0])
        link = ns.links.get(end[1]) if ns is not None else None
        if link is None or link.kind == "loopback":
            return None
        found = self._reach(world, end)
        if found is None:
            self.search_all(world)
        else:
            reach, tree = found
            start = self._first(world, reach)
            # searched from its first end already: the tree is the one _search would grow
            self._search(world, start, reach, tree if start == end else None)
        return self.segment.get(end)

    def search_all(self, world: World) -> None:
        for ns in world.namespaces.values():
            for link in ns.links.values():
                if link.kind != "loopback" and (ns.key, link.name) not in self.segment:
                    self._search(world, (ns.key, link.name))

    def _reach(self, world: World, end: End):
        """The ends reachable from ``end`` in the order a search from it meets them, each
        with its namespace, link and neighbours, and the end each was met from (those
        that reach it: the links are symmetric but for bridges in bridges, and then
        None)."""
        reach: dict[End, tuple[Netns, Link, list[End]]] = {}
        queue = deque([end])
        seen: dict[End, End | None] = {end: None}
        carrier: dict = {}          # the links are held by the World: their ids hold
        namespaces = world.namespaces
        while queue:
            here = queue.popleft()
            ns = namespaces[here[0]]
            link = ns.links[here[1]]
            if link.kind == "bridge" and (link.master is not None or any(
                    p.kind == "bridge" and p.master == link.name for p in ns.links.values())):
                return None
            found = _adjacent(world, ns, link, carrier)
            reach[here] = (ns, link, found)
            for nxt in found:
                if nxt not in seen:
                    seen[nxt] = here
                    queue.append(nxt)
        return reach, seen

    def _first(self, world: World, ends) -> End:
        """The first of ``ends`` in the World's order: namespaces, then their links."""
        if self._order is None:
            self._order = {key: i for i, key in enumerate(world.namespaces)}
        key = min({e[0] for e in ends}, key=self._order.__getitem__)
        links = list(world.namespaces[key].links)
        return key, min((e[1] for e in ends if e[0] == key), key=links.index)

    def _search(self, world: World, start: End,
                reach: dict[End, tuple[Netns, Link, list[End]]] | None = None,
                tree: dict[End, End | None] | None = None) -> None:
        """One domain, from its first end: the tree, then its open links and owners
        (``reach``: what _reach found of it, else it is looked up; ``tree``: what _reach
        found searching from ``start``, each end's parent in the order met)."""
        if reach is None:
            reach = {}

            def at(end: End) -> tuple[Netns, Link, list[End]]:
                ns = world.namespaces[end[0]]
                link = ns.links[end[1]]
                found = reach[end] = (ns, link, _adjacent(world, ns, link, None))
                return found
        else:
            at = reach.__getitem__
        sid = self._next
        self._next += 1
        segment, parent, depth = self.segment, self.parent, self.depth
        segment[start] = sid
        parent[start] = None
        depth[start] = 0
        found = [start]
        queue = deque([start] if tree is None else ())
        if tree is not None:
            found = list(tree)
            for nxt in found[1:]:
                up = tree[nxt]
                segment[nxt] = sid
                parent[nxt] = up
                depth[nxt] = depth[up] + 1
        while queue:
            end = queue.popleft()
            below = depth[end] + 1
            for nxt in at(end)[2]:
                if nxt not in segment:
                    segment[nxt] = sid
                    parent[nxt] = end
                    depth[nxt] = below
                    found.append(nxt)
                    queue.append(nxt)
        members = []
        for end in found:
            ns, link, _ = reach[end]
            if link.up and open_end(link):
                self.open.add(sid)
            if link.master is None and link.up:     # a bridge port is not an L3 interface
                members.append((end, ns))
        # ARP (arp_ignore=0): a namespace answers for any of its local addresses on
        # any interface it has in the segment.
        owners = self.owners
        for end, ns in members:
            for other in ns.links.values():
                if other.kind != "loopback":
                    for addr in other.addresses:
                        owners.setdefault((sid, addr.ip), end)


def _adjacent(world: World, ns: Netns, link: Link, seen: dict | None) -> list[End]:
    """The ends one L2 step away from ``link`` of ``ns``, if frames can cross (link state).
    ``seen``: the carrier of the links already looked at in this search (a veth's needs
    its peer)."""
    out: list[End] = []
    kind = link.kind
    if kind == "veth":
        up, peer = _veth(world, ns, link, seen)
        if not up:
            return out
        if peer is not None and peer[1].up:
            out.append((peer[0].key, peer[1].name))
    elif kind != "bridge" and not oper_up(world, ns, link):
        return out
    key = ns.key
    if link.master is not None:
        bridge = ns.links.get(link.master)
        if bridge is not None and bridge.up:
            out.append((key, bridge.name))
    if kind == "bridge" and link.up:
        name = link.name
        for port in ns.links.values():
            if port.master == name and (_veth(world, ns, port, seen)[0] if port.kind == "veth"
                                        else oper_up(world, ns, port)):
                out.append((key, port.name))
    return out


def _veth(world: World, ns: Netns, link: Link, seen: dict | None):
    """(oper_up, the peer) of a veth, as oper_up says it."""
    found = seen.get(id(link)) if seen is not None else None
    if found is None:
        peer = world.peer_of(ns, link)
        found = (link.up and (link.peer_name is None or (peer is not None and peer[1].up)),
                 peer)
        if seen is not None:
            seen[id(link)] = found
    return found


def build_segments(world: World) -> Segments:
    """Every segment of the World (a trace finds them as it needs them: Segments)."""
    seg = Segments()
    seg.search_all(world)
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
