"""Layer 2: which interfaces share a broadcast domain, and the path a frame
takes between two of them (veth pairs, bridge ports, bridges).

The segments of a World are found as traces need them and kept per state of
the World, so an ARP resolution is a dictionary look-up and a path is a walk
up a tree, whatever the number of ports on a bridge. Most questions are answered
without searching a segment at all: a pod's veth hangs from its node's bridge,
and what ARP and a frame need of it is seen from the pod and the bridge alone.

Those answers assume, as the search does, that a veth's peer names it back (the
kernel's, the model backend's and a snapshot's do); anything else one-way around
the ends asked about (a port of a device that is not a bridge, a veth to a bridge,
a veth to one that names another) and bridges in bridges make them search.
"""

from __future__ import annotations

from collections import deque

from netlab.backends.model import open_end, oper_up
from netlab.model import Link, Netns, World

End = tuple[str, str]  # (namespace key, link name)
HANG_LIMIT = 16         # ends _hang looks at around one
# The index of addresses costs about what searching a third of the World's namespaces
# does: it is made once searches have met an eighth (at once in a small World), so that
# a single trace in a large World pays only its searches.
INDEX_AFTER = 8


class Segments:
    """Broadcast domains: a BFS forest over L2 adjacency with parent pointers, found one
    domain at a time as a trace asks for it (a cluster has one per node's bridge and
    pod: a trace needs a few of them). Each domain is the one a full build would find:
    searched from its first end in the World's order (namespaces, then their links),
    so its tree, and which end answers for an address, are the same. (A bridge that
    is a port of another bridge can reach it without being reachable from it: then
    every domain is searched, in that order, as the full build does.) A trace asks
    ``owner`` and ``path``, which search a domain only when what is around the ends
    asked about does not give the search's answer."""

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
        self._holders: tuple[dict[str, str], dict[str, list[str]]] | None = None
        self._hangs: dict[End, tuple | None] = {}       # _hang's answers
        self._namespaces: dict[str, tuple] = {}         # namespace key -> _seen_in

    def owner(self, world: World, end: End, ip: str) -> End | None:
        """The end that answers ARP for ``ip`` sent from ``end``: ``owners`` of its
        segment (None for lo, or if no interface of the segment has ``ip``). A segment not
        searched yet is not searched when the interfaces of the namespaces holding ``ip``
        (``_holding``) tell: one of them hangs from the bridge ``end`` hangs from
        (``_hang``; or is that bridge), and each other one is in a segment already searched
        or in a small one of its own, so not in this one. (Of two in the segment, the one
        that answers is the first the search meets: then it is searched.)"""
        sid = self.segment.get(end)
        if sid is None:
            if self._holders is not None \
                    or INDEX_AFTER * (len(self.segment) + 64) >= len(world.namespaces):
                found = self._owner_seen(world, end, ip)
                if found is not None:
                    return found[0]
            sid = self.segment_of(world, end)
            if sid is None:
                return None
        return self.owners.get((sid, ip))

    def path(self, world: World, a: End, b: End) -> list[End]:
        """The ends a frame crosses from a to b (both included, in one segment): through
        the BFS tree of the segment (frame_path) — or, when a and b hang from one bridge on
        branches of their own, the only path between them, which every tree holds."""
        if a not in self.segment:
            ends = self._joined(world, a, b)
            if ends is not None:
                return ends
            self.segment_of(world, a)
        return frame_path(self, a, b)

    def _owner_seen(self, world: World, end: End, ip: str) -> tuple[End | None] | None:
        """(owner,) as the search would find it, if the ends around ``end`` and the
        interfaces holding ``ip`` tell; else None."""
        here = self._hang(world, end)
        if here is None or here[0] is None:     # unusual, or small: searching is cheap
            return None
        hub = here[0]
        found = None
        namespaces = world.namespaces
        for key in self._holding(world, ip):
            for other in self._seen_in(key, namespaces[key])[1]:
                if other in self.segment:       # in a segment searched already: not end's
                    continue
                there = self._hang(world, other)
                if there is None or there[0] not in (hub, None):
                    return None                 # it may be in end's segment
                if there[0] is None:            # in a small segment of its own
                    continue
                if found is not None:
                    return None
                found = other
        return (found,)

    def _joined(self, world: World, a: End, b: End) -> list[End] | None:
        """The ends from a to b when both hang from the same bridge on branches of their
        own (or one is the bridge): the only path between them; else None."""
        here, there = self._hang(world, a), self._hang(world, b)
        if here is None or there is None or here[0] is None or here[0] != there[0]:
            return None
        up, down = here[1], there[1]
        if len(up) > 1 and len(down) > 1 and up[-2] == down[-2]:    # one branch: searched
            return None
        return up + down[-2::-1]

    def _hang(self, world: World, end: End) -> tuple | None:
        """How ``end`` hangs in its segment, seen without visiting a bridge's ports:
        (bridge, [end]) for a bridge; (bridge, [end, ..., bridge]) when ``end`` is in a
        small tree of other ends (a pod's eth0 and its veth) that one edge joins to the
        rest of the segment, to a bridge it is a port of: then those ends are the only way
        from ``end`` to the bridge; (None, ends) when that tree is the whole segment;
        None if anything else (too large, a cycle, a second bridge, a one-way edge)."""
        found = self._hangs.get(end, ())
        if found == ():
            found = self._hangs[end] = self._find_hang(world, end)
        return found

    def _find_hang(self, world: World, end: End) -> tuple | None:
        namespaces = world.namespaces
        ns = namespaces.get(end[0])
        link = ns.links.get(end[1]) if ns is not None else None
        if link is None or link.kind == "loopback":
            return None
        if link.kind == "bridge":
            if link.master is None and link.name not in self._seen_in(end[0], ns)[0]:
                return (None, (end,))           # no ports: alone
            return (end, [end])
        adjacent: dict[End, list[End]] = {}
        parent: dict[End, End | None] = {end: None}
        todo = [(end, ns, link)]
        hub = via = None
        while todo:
            here, ns, link = todo.pop()
            if link.name in self._seen_in(here[0], ns)[0]:
                return None                     # its ports reach it unseen from here
            nexts = adjacent[here] = _adjacent(world, ns, link, None)
            for nxt in nexts:
                next_ns = namespaces[nxt[0]]
                next_link = next_ns.links[nxt[1]]
                if next_link.kind == "bridge":
                    if hub is not None or link.master != next_link.name:
                        return None             # a second way out, or not to its master
                    hub, via = nxt, here
                elif nxt not in parent:
                    if len(parent) == HANG_LIMIT:
                        return None
                    parent[nxt] = here
                    todo.append((nxt, next_ns, next_link))
        edges = 0
        for here, nexts in adjacent.items():
            for nxt in nexts:
                if nxt != hub:
                    if here not in adjacent[nxt]:
                        return None             # a one-way edge
                    edges += 1
        if edges != 2 * (len(adjacent) - 1):
            return None                         # a cycle
        if hub is None:
            return (None, tuple(adjacent))
        path = [hub]
        while via is not None:
            path.append(via)
            via = parent[via]
        path.reverse()
        return (hub, path)

    def _seen_in(self, key: str, ns: Netns) -> tuple[set, list[End]]:
        """The masters of a namespace's links, and its L3 interfaces (up, not lo, not a
        bridge port): the ends that answer ARP for its addresses."""
        found = self._namespaces.get(key)
        if found is None:
            links = ns.links.values()
            ns_key = ns.key
            found = self._namespaces[key] = (
                {link.master for link in links},
                [(ns_key, link.name) for link in links
                 if link.master is None and link.up and link.kind != "loopback"])
        return found

    def _holding(self, world: World, ip: str) -> list[str]:
        """The keys of the namespaces holding ``ip`` on a link other than lo: from an
        index of the World's addresses, made at the first question."""
        if self._holders is None:
            pairs = [(addr.ip, key) for key, ns in world.namespaces.items()
                     for link in ns.links.values() if link.addresses and link.kind != "loopback"
                     for addr in link.addresses]
            one = dict(pairs)
            more: dict[str, list[str]] = {}
            if len(one) < len(pairs):           # an address held twice
                for addr, key in pairs:
                    more.setdefault(addr, []).append(key)
                more = {addr: list(dict.fromkeys(keys)) for addr, keys in more.items()
                        if len(keys) > 1}
            self._holders = one, more
        one, more = self._holders
        found = more.get(ip)
        if found is not None:
            return found
        key = one.get(ip)
        return [key] if key is not None else []

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
                if other.addresses and other.kind != "loopback":
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
