"""An index over a namespace's routes: by prefix length and network, for a longest-prefix
match and for the duplicate check of a route add; and the connected routes a gateway
must sit on.

``ns.routes`` stays the one truth (the World's JSON, ``ip route`` and every change work
on the list); the index is derived from it, kept on the namespace outside its fields
(so neither JSON nor equality sees it) and rebuilt whenever the list is not the one it
was built from, in length and last element — the model replaces the list, or appends to
it, or removes from it, and never puts a route in the middle of it. A route's ``dst``
and ``metric`` never change in place.

A long list is indexed against a shared Base (a frozen copy of another long list, with
its own full index) when it is that list but for a few routes: host-gw gives every node
the routes to every other node's pods, so each node's index is a few differences, made
in microseconds rather than milliseconds. The differences are found by comparing the
two lists (C slice compares), or, for the namespaces of a host-gw batch, noted where the
batch is checked (backends/route_batch) and checked against the base when it is in.

Such a batch is given to its namespace later (``Later``; netlab.model.world.LATER): the
list is made when it is first read, and until then look-ups use an index made from the
batch's pieces, over the list it stands for (``Joined``). A trace never makes the list.
"""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_right
from functools import lru_cache

from netlab.model.world import LATER, Netns, Route

ATTR = "_route_index"


@lru_cache(maxsize=65536)
def ip_int(ip: str) -> int:
    return int.from_bytes(socket.inet_aton(ip), "big") if ip.count(".") == 3 else \
        int(ipaddress.IPv4Address(ip))


@lru_cache(maxsize=65536)
def prefix_of(dst: str) -> tuple[int, int, int]:
    """``10.0.0.0/24`` or ``default`` -> (network, mask, prefixlen)."""
    addr, slash, plen = dst.partition("/")
    if slash and plen.isdigit() and len(plen) <= 2 and int(plen) <= 32 and addr.count(".") == 3:
        try:
            packed = socket.inet_aton(addr)
        except OSError:
            packed = None
        if packed is not None and socket.inet_ntoa(packed) == addr:     # dotted quad as written
            length = int(plen)
            mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
            return int.from_bytes(packed, "big") & mask, mask, length
    net = ipaddress.IPv4Network("0.0.0.0/0" if dst == "default" else dst, strict=False)
    return int(net.network_address), int(net.netmask), net.prefixlen


def mask_of(plen: int) -> int:
    return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF


def is_connected(route: Route) -> bool:
    """A route a gateway may sit on: unicast, no gateway, not scope host."""
    return route.type == "unicast" and route.gateway is None and route.scope != "host"


def pick(bucket: Route | list[Route], oif: str | None) -> Route | None:
    """Of one prefix's routes (in list order), the one fib_lookup takes: the lowest
    metric, the first on a tie, among those that may leave by ``oif``."""
    if not isinstance(bucket, list):
        return bucket if oif is None or bucket.dev is None or bucket.dev == oif else None
    best: Route | None = None
    for route in bucket:
        if oif is not None and route.dev is not None and route.dev != oif:
            continue
        if best is None or route.metric < best.metric:
            best = route
    return best


def _nothing() -> None:
    return None


class RouteIndex:
    __slots__ = ("routes", "length", "last", "by_prefix", "prefixes", "connected")

    def __init__(self, routes: list[Route]):
        self.routes = routes
        self.length = 0
        self.last: Route | None = None
        # plen -> net -> its route, or its routes in list order when there are several
        # (one route a prefix is the rule: a list for each would cost more than the route)
        self.by_prefix: dict[int, dict[int, Route | list[Route]]] = {}
        self.prefixes: list[tuple[int, int, dict[int, Route | list[Route]]]] = []  # longest first
        self.connected: list[Route] = []   # unicast, no gateway, not scope host: in order
        self.extend(routes)

    def __deepcopy__(self, memo) -> None:
        return None         # a copy of the namespace builds its own when it needs one

    def __reduce__(self):
        return _nothing, ()     # nor does a pickled one carry it

    def valid_for(self, routes: list[Route]) -> bool:
        return routes is self.routes and len(routes) == self.length and \
            (not self.length or routes[-1] is self.last)

    def add(self, route: Route) -> None:
        """Take in ``route``, just appended to the list."""
        self.extend((route,))

    def extend(self, routes) -> None:
        """Take in ``routes``, just appended to the list, in order."""
        by_prefix, connected = self.by_prefix, self.connected
        for route in routes:
            net, _mask, plen = prefix_of(route.dst)
            nets = by_prefix.get(plen)
            if nets is None:
                nets = by_prefix[plen] = {}
                self.prefixes = sorted(((p, mask_of(p), n) for p, n in by_prefix.items()),
                                       key=lambda t: -t[0])
            held = nets.get(net)
            if held is None:
                nets[net] = route
            elif isinstance(held, list):
                held.append(route)
            else:
                nets[net] = [held, route]
            if is_connected(route):
                connected.append(route)
            self.length += 1
        self.last = self.routes[-1] if self.length else None

    def longest_match(self, ip: int, oif: str | None = None) -> Route | None:
        """fib_lookup in table main: the longest prefix, then the lowest metric (the
        first such route on a tie), among routes that may leave by ``oif``."""
        for _plen, mask, nets in self.prefixes:
            bucket = nets.get(ip & mask)
            if bucket is not None:
                best = pick(bucket, oif)
                if best is not None:
                    return best
        return None

    def same_prefix(self, dst: str) -> list[Route]:
        """The routes to ``dst``'s network, in list order (every route whose dst is
        written as ``dst`` is among them)."""
        net, _mask, plen = prefix_of(dst)
        held = self.by_prefix.get(plen, {}).get(net)
        return [] if held is None else held if isinstance(held, list) else [held]

    def first(self, dst: str, metric: int) -> Route | None:
        """The first route with this dst and metric: what a route add collides with."""
        return next((r for r in self.same_prefix(dst) if r.dst == dst and r.metric == metric),
                    None)


class Base:
    """A full index over a frozen copy of one long route list, and where each of its
    routes is in it: shared by the namespaces whose lists are this one but for a few
    routes (host-gw: every node holds the routes to every other node's pods)."""

    __slots__ = ("routes", "index", "pos")

    def __init__(self, routes: list[Route]):
        self.routes = routes        # a copy of its own, never changed (a list: slices of
        self.index = RouteIndex(routes)     # two lists compare in C)
        self.pos = {id(r): i for i, r in enumerate(routes)}    # the tuple holds them: ids hold

    @property
    def usable(self) -> bool:
        return len(self.pos) == len(self.routes)        # no route twice


class SharedRouteIndex:
    """The index of a list that is a Base's list with a few routes added or missing: it
    answers as a RouteIndex built from the list would. The list is runs of the base's
    routes (equal to them, in the base's order) and routes of its own; every (prefix
    length, network) one of its own routes or a missing base route has is ``mine``: its
    routes in this list's order, objects of this list. Any other network is the base's,
    whose routes there are in this list, in the same order; an answer from the base is
    given as this list's object at that place."""

    __slots__ = ("routes", "length", "last", "base", "runs", "starts", "mine", "prefixes",
                 "connected")

    def __init__(self, routes: list[Route], base: Base, runs: list[tuple[int, int, int]],
                 added: list[int], missing: list[int]):
        """``runs``: (position in the list, in the base, length), ascending in both;
        ``added``: the list's other positions; ``missing``: the base's positions in no run."""
        self.routes = routes
        self.length = len(routes)
        self.last = routes[-1] if routes else None
        self.base = base
        self.runs = runs
        self.starts = [j for _i, j, _n in runs]
        self.mine: dict[int, dict[int, list[Route]]] = {}
        by_key: dict[tuple[int, int], list[int]] = {}
        for x in added:
            net, _mask, plen = prefix_of(routes[x].dst)
            by_key.setdefault((plen, net), []).append(x)
        for p in missing:
            net, _mask, plen = prefix_of(base.routes[p].dst)
            by_key.setdefault((plen, net), [])
        by_prefix, pos = base.index.by_prefix, base.pos
        for (plen, net), mine in by_key.items():
            held = by_prefix.get(plen, {}).get(net)
            if held is not None:
                for r in held if isinstance(held, list) else (held,):
                    x = self._place(pos[id(r)])
                    if x is not None:
                        mine.append(x)
                mine.sort()
            self.mine.setdefault(plen, {})[net] = [routes[x] for x in mine]
        connected = [x for x in map(self._place, (pos[id(r)] for r in base.index.connected))
                     if x is not None]
        connected += (x for x in added if is_connected(routes[x]))
        connected.sort()
        self.connected = [routes[x] for x in connected]
        self._prefixes()

    def __deepcopy__(self, memo) -> None:
        return None

    def __reduce__(self):
        return _nothing, ()

    def _prefixes(self) -> None:
        base = self.base.index.by_prefix
        self.prefixes = [(p, mask_of(p), base.get(p), self.mine.get(p))
                         for p in sorted(set(base) | set(self.mine), reverse=True)]

    def _place(self, p: int) -> int | None:
        """Where the base's route at ``p`` is in this list (None: missing)."""
        k = bisect_right(self.starts, p) - 1
        if k < 0:
            return None
        i, j, n = self.runs[k]
        return i + p - j if p < j + n else None

    def _own(self, route: Route) -> Route:
        """The base's ``route`` as this list's object at its place."""
        return self.routes[self._place(self.base.pos[id(route)])]

    valid_for = RouteIndex.valid_for

    def add(self, route: Route) -> None:
        """Take in ``route``, just appended to the list."""
        net, _mask, plen = prefix_of(route.dst)
        bucket = self.same_prefix(route.dst) + [route]
        mine = self.mine.get(plen)
        if mine is None:
            mine = self.mine[plen] = {}
            mine[net] = bucket
            self._prefixes()
        else:
            mine[net] = bucket
        if is_connected(route):
            self.connected.append(route)
        self.length += 1
        self.last = route

    def extend(self, routes) -> None:
        for route in routes:
            self.add(route)

    def longest_match(self, ip: int, oif: str | None = None) -> Route | None:
        for _plen, mask, nets, mine in self.prefixes:
            key = ip & mask
            if mine is not None:
                bucket = mine.get(key)
                if bucket is not None:
                    best = pick(bucket, oif)
                    if best is not None:
                        return best
                    continue
            if nets is not None:
                bucket = nets.get(key)
                if bucket is not None:
                    best = pick(bucket, oif)
                    if best is not None:
                        return self._own(best)
        return None

    def same_prefix(self, dst: str) -> list[Route]:
        net, _mask, plen = prefix_of(dst)
        mine = self.mine.get(plen)
        if mine is not None and net in mine:
            return list(mine[net])
        return [self._own(r) for r in RouteIndex.same_prefix(self.base.index, dst)]

    first = RouteIndex.first


SHARE_FROM = 256            # shorter lists get an index of their own (it costs little)
MAX_DIFFERENCES = 64        # routes added or missing against a base, at most
BASES = 4                   # bases kept, the last used first
_BASES: list[Base] = []     # pure functions of their frozen lists: any World may use them


def _common(a: list, i: int, b: list, j: int) -> int:
    """How many routes from a[i] on equal those from b[j] on (a[i] == b[j])."""
    n = min(len(a) - i, len(b) - j)
    if a[i:i + n] == b[j:j + n]:
        return n
    lo, hi = 1, n               # a[i:i+lo] == b[j:j+lo], a[i:i+hi] != b[j:j+hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[i + lo:i + mid] == b[j + lo:j + mid]:
            lo = mid
        else:
            hi = mid
    return lo


def differences(routes: list[Route], base: Base
                ) -> tuple[list[tuple[int, int, int]], list[int], list[int]] | None:
    """``routes`` as runs of the base's routes (in its order), added and missing routes;
    None when there are more than MAX_DIFFERENCES of them, or the order is not the base's."""
    b, pos = base.routes, base.pos
    n, m = len(routes), len(b)
    if abs(n - m) > MAX_DIFFERENCES or not any(
            id(routes[x]) in pos for x in (n // 3, n // 2, n - 1)):
        return None
    runs: list[tuple[int, int, int]] = []
    added: list[int] = []
    missing: list[int] = []
    i = j = 0
    while i < n and j < m:
        route = routes[i]
        if route is b[j] or route == b[j]:
            k = _common(routes, i, b, j)
            runs.append((i, j, k))
            i += k
            j += k
            continue
        p = pos.get(id(route))
        if p is None or p < j:
            added.append(i)         # not the base's (or met again): the list's own
            i += 1
        elif p - j + len(missing) + len(added) > MAX_DIFFERENCES:
            return None
        else:
            missing.extend(range(j, p))
            j = p
        if len(added) + len(missing) > MAX_DIFFERENCES:
            return None
    added.extend(range(i, n))
    missing.extend(range(j, m))
    if len(added) + len(missing) > MAX_DIFFERENCES:
        return None
    return runs, added, missing


def build_index(routes: list[Route]) -> RouteIndex | SharedRouteIndex:
    """The index of ``routes``: shared with a base for a long list that is one but for a
    few routes (a base made from it when none is)."""
    if len(routes) < SHARE_FROM:
        return RouteIndex(routes)
    for k, base in enumerate(_BASES):
        found = differences(routes, base)
        if found is not None:
            if k:
                _BASES.insert(0, _BASES.pop(k))
            return SharedRouteIndex(routes, base, *found)
    base = Base(list(routes))
    if not base.usable:
        return RouteIndex(routes)
    _BASES.insert(0, base)
    del _BASES[BASES:]
    return SharedRouteIndex(routes, base, [(0, 0, len(routes))], [], [])


class Pending:
    """A SharedRouteIndex known but not made yet (a namespace's first look-up makes it):
    the list as runs of a base's routes, its own routes, and the base's missing ones."""

    __slots__ = ("routes", "length", "last", "base", "runs", "added", "missing")

    def __init__(self, routes: list[Route], base: Base, runs: list[tuple[int, int, int]],
                 added: list[int], missing: list[int]):
        self.routes = routes
        self.length = len(routes)
        self.last = routes[-1] if routes else None
        self.base, self.runs, self.added, self.missing = base, runs, added, missing

    def __deepcopy__(self, memo) -> None:
        return None

    def __reduce__(self):
        return _nothing, ()

    valid_for = RouteIndex.valid_for

    def add(self, route: Route) -> None:
        self.added.append(self.length)
        self.length += 1
        self.last = route

    def made(self) -> SharedRouteIndex:
        if self.base not in _BASES:
            _BASES.insert(0, self.base)
            del _BASES[BASES:]
        return SharedRouteIndex(self.routes, self.base, self.runs, self.added, self.missing)


NOTE = "_route_batch_note"


def note_batch(ns: Netns, base: Base, pieces: list, count: int) -> None:
    """What a batch of ``count`` routes about to be appended to ``ns.routes`` is: the
    ``pieces`` of a list of that base, runs ``(start in the base, length)`` and routes of
    its own. ``forget_route_index`` takes the note once the batch is in the list."""
    ns.__dict__[NOTE] = (base, tuple(pieces), len(ns.routes), count)


class Later:
    """A batch of routes a namespace is given later (``give_later``; world.LATER): the
    ``pieces`` of a list of ``base`` (as note_batch has them), to follow the routes the
    namespace had (``head``). Until the list is made, look-ups use an index over the list
    it stands for, read by position (``Joined``)."""

    __slots__ = ("head", "base", "pieces", "index")

    def __init__(self, base: Base, pieces: tuple):
        self.head: list[Route] | None = None
        self.base, self.pieces = base, pieces
        self.index: SharedRouteIndex | None = None

    @property
    def count(self) -> int:
        """How many routes the batch is."""
        return sum(piece[1] if type(piece) is tuple else 1 for piece in self.pieces)

    def settle(self, ns: Netns) -> list[Route]:
        """The namespace's list made (its head, then the batch), and its index, as when the
        batch is appended at once."""
        ns.routes = routes = self.head
        note_batch(ns, self.base, self.pieces, self.count)
        base = self.base.routes
        for piece in self.pieces:
            if type(piece) is tuple:
                j, n = piece
                routes += base[j:j + n]
            else:
                routes.append(piece)
        forget_route_index(ns)
        return routes

    def route_index(self) -> SharedRouteIndex | None:
        """The index of the list this stands for, made without the list (None: the batch
        is too far from its base for a shared index)."""
        if self.index is None:
            layout = _layout(self.base, self.pieces, len(self.head), self.count)
            if layout is None:
                return None
            self.index = Pending(Joined(self), self.base, *layout).made()
        return self.index


class Joined:
    """The list a Later stands for, read by position: its head, then its pieces."""

    __slots__ = ("head", "base", "pieces", "starts", "length")

    def __init__(self, later: Later):
        self.head, self.base, self.pieces = later.head, later.base.routes, later.pieces
        self.starts = []
        at = len(self.head)
        for piece in self.pieces:
            self.starts.append(at)
            at += piece[1] if type(piece) is tuple else 1
        self.length = at

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, x: int) -> Route:
        if x < 0:
            x += self.length
        if not 0 <= x < self.length:
            raise IndexError(x)
        if x < len(self.head):
            return self.head[x]
        k = bisect_right(self.starts, x) - 1
        piece = self.pieces[k]
        return self.base[piece[0] + x - self.starts[k]] if type(piece) is tuple else piece


def give_later(ns: Netns, later: Later) -> None:
    """Append ``later``'s routes to ``ns.routes`` when the list is next read."""
    later.head = ns.routes
    d = ns.__dict__
    d.pop(ATTR, None)
    d.pop(NOTE, None)
    del d["routes"]
    d[LATER] = later


def _follow(routes: list[Route], note: tuple) -> Pending | None:
    """The Pending index of ``routes``, when its end is the noted batch (checked route by
    route against the base: equal routes, in its order); None when it is not."""
    base, pieces, start, count = note
    if len(routes) != start + count:
        return None
    i = start
    for piece in pieces:
        if type(piece) is tuple:
            j, n = piece
            if routes[i:i + n] != base.routes[j:j + n]:
                return None
            i += n
        else:
            if routes[i] is not piece:
                return None
            i += 1
    layout = _layout(base, pieces, start, count)
    return None if layout is None else Pending(routes, base, *layout)


def _layout(base: Base, pieces: tuple, start: int, count: int) -> tuple | None:
    """A list of ``start`` routes of its own then a batch of ``count`` routes, the
    ``pieces`` of ``base``, as runs, added and missing (Pending); None when it is too far
    from the base."""
    runs: list[tuple[int, int, int]] = []
    added = list(range(start))
    i = start
    for piece in pieces:
        if type(piece) is tuple:
            j, n = piece
            runs.append((i, j, n))
            i += n
        else:
            added.append(i)
            i += 1
    if i != start + count:
        return None
    missing: list[int] = []
    end = 0
    for _i, j, n in runs:
        missing.extend(range(end, j))
        end = j + n
        if len(missing) > MAX_DIFFERENCES:
            return None
    missing.extend(range(end, min(len(base.routes), end + MAX_DIFFERENCES + 1)))
    if len(added) + len(missing) > MAX_DIFFERENCES:
        return None
    return runs, added, missing


def route_index(ns: Netns) -> RouteIndex | SharedRouteIndex:
    d = ns.__dict__
    later = d.get(LATER)
    if later is not None:
        if "routes" in d:               # a list set since: the batch is not its routes
            del d[LATER]
        else:                           # the list not made (a look-up does not make it)
            index = later.route_index()
            if index is not None:
                return index
    routes = ns.routes          # (first: a batch given later makes its index as it joins)
    index = d.get(ATTR)
    if index is None or not index.valid_for(routes):
        index = d[ATTR] = build_index(routes)
    elif index.__class__ is Pending:
        index = d[ATTR] = index.made()
    return index


def append_route(ns: Netns, route: Route) -> None:
    """``ns.routes.append(route)``, keeping a valid index valid."""
    routes = ns.routes
    index = ns.__dict__.get(ATTR)
    valid = index is not None and index.valid_for(routes)
    routes.append(route)
    if valid:
        index.add(route)


def forget_route_index(ns: Netns) -> None:
    """Drop the namespace's index (after a change it does not follow): the next look-up
    builds it again, from the list as it is then; or, when the change was the batch
    ``note_batch`` described, makes it from the batch's base."""
    ns.__dict__.pop(ATTR, None)
    note = ns.__dict__.pop(NOTE, None)
    if note is not None:
        pending = _follow(ns.routes, note)
        if pending is not None:
            ns.__dict__[ATTR] = pending
