"""The checks of an ``AddRoutes`` (many ``ip route add DST via GATEWAY``), made whole, and
made again cheaply for the next batch when it is the last one with one route changed.

host-gw gives every node of a cluster the routes to every other node's pod range: the
batches of two nodes differ in one place (node i lacks its own range, node i+1 lacks
its own). Checking each route of each batch would cost nodes² steps; a ``Batch`` keeps
what the checks of the last batch found — its routes, its destinations, its gateways in
order — so that the next one is checked by comparing the two tuples (a C loop) and by a
few look-ups, and its routes are the last batch's list with one route replaced.

The checks are those of an ``AddRoute`` for each route, in order, as the kernel makes
them: the gateway on a connected route (the longest, the first of equal length), not
an address of the namespace, its device up, and no route to the same destination with
metric 0 already there. A batch that the quick way cannot vouch for is checked route by
route, so a refused one gets the error of its first refused route, as one by one.
"""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_left, insort
from functools import lru_cache

from netlab.errors import CommandError
from netlab.model import Netns, Route
from netlab.model.route_index import MAX_DIFFERENCES, Base, Later, prefix_of, route_index

EEXIST = "RTNETLINK answers: File exists"
INVALID_GATEWAY = "Error: Nexthop has invalid gateway."
NOT_UP = "Error: Device for nexthop is not up."
QUICK_FROM = 64                 # smaller batches are checked route by route


@lru_cache(maxsize=65536)
def ip_int(ip: str) -> int:
    """``int(ipaddress.IPv4Address(ip))``; a dotted quad as it prints, without ipaddress."""
    try:
        packed = socket.inet_aton(ip)
    except (OSError, ValueError):
        packed = None
    if packed is not None and socket.inet_ntoa(packed) == ip:
        return int.from_bytes(packed, "big")
    return int(ipaddress.IPv4Address(ip))


class Batch:
    """What checking one batch found: each of its routes leaves by ``dev``."""
    __slots__ = ("op_dev", "pairs", "routes", "dev", "dsts", "gateways", "changed", "base",
                 "pieces")

    def __init__(self, op_dev: str | None, pairs: tuple, routes: list[Route], dev: str):
        self.op_dev = op_dev
        self.pairs = list(pairs)
        self.routes = routes
        self.dev = dev
        self.dsts = {dst for dst, _ in pairs}
        self.gateways = sorted(ip_int(gw) for _, gw in pairs)     # with repeats
        self.changed = -1           # where the last batch differed from the one before
        # ``routes`` as pieces of the routes of a base (a copy of an earlier batch), for the
        # route index of the namespaces it goes to (route_index.note_batch); made with the
        # second batch, when batches are seen to follow one another
        self.base: Base | None = None
        self.pieces: list | None = None

    def replace(self, k: int, route: Route) -> None:
        """The route at ``k`` replaced by ``route``, in ``routes`` and in its pieces."""
        if self.base is None:
            self.base = Base(list(self.routes))
            self.pieces = [(0, len(self.routes))] if self.base.usable else None
        self.routes[k] = route
        if self.pieces is not None:
            self.pieces = replaced(self.pieces, k, route, self.base.pos)


def one_difference(new: tuple, old: list, guess: int = -1) -> int | None:
    """The one position where a tuple and a list of the same length differ; -1 when they
    are equal, None when they differ in more than one (or in length). ``guess``: where
    they may differ (looked at first: one copy and one compare)."""
    n = len(new)
    if n != len(old):
        return None
    if 0 <= guess < n and new[guess] != old[guess]:
        was = old[guess]
        old[guess] = new[guess]
        same = new == tuple(old)
        old[guess] = was
        return guess if same else None
    old = tuple(old)
    if new == old:
        return -1
    lo, hi = 0, n                   # new[:lo] == old[:lo], new[lo:hi] != old[lo:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if new[lo:mid] == old[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo if new[lo + 1:] == old[lo + 1:] else None


def replaced(pieces: list, k: int, route: Route, pos: dict[int, int]) -> list | None:
    """The pieces of a list (runs ``(start in the base, length)`` and routes of its own)
    once the route at ``k`` is ``route``; None when there would be too many of them."""
    at = 0
    for n, piece in enumerate(pieces):
        size = piece[1] if type(piece) is tuple else 1
        if at + size > k:
            break
        at += size
    else:
        raise IndexError(k)
    mid: list = [route]
    if type(piece) is tuple:
        j, size = piece
        offset = k - at
        mid = ([(j, offset)] if offset else []) + mid + \
            ([(j + offset + 1, size - offset - 1)] if size - offset - 1 else [])
    out = _joined(pieces[:n] + mid + pieces[n + 1:], pos)
    return out if len(out) <= MAX_DIFFERENCES else None


def _joined(pieces: list, pos: dict[int, int]) -> list:
    """The same list in as few pieces: a route of its own that is the base's, between the
    runs around it in the base's order, becomes a run; runs that follow on are one."""
    out: list = []
    end = 0                         # where the last run so far ends in the base
    for n, piece in enumerate(pieces):
        if type(piece) is not tuple:
            p = pos.get(id(piece))
            if p is not None and p >= end:
                after = next((q[0] for q in pieces[n + 1:] if type(q) is tuple), None)
                if after is None or p < after:
                    piece = (p, 1)
        if type(piece) is tuple:
            if out and type(out[-1]) is tuple and out[-1][0] + out[-1][1] == piece[0]:
                out[-1] = (out[-1][0], out[-1][1] + piece[1])
            else:
                out.append(piece)
            end = piece[0] + piece[1]
        else:
            out.append(piece)
    return out


def connected_routes(ns: Netns, dev: str | None) -> list[tuple[int, int, int, str]]:
    """(prefix length, network, mask, device) of the connected routes a gateway may sit
    on, longest first (a stable sort: the first of equal length wins)."""
    out = []
    for r in route_index(ns).connected:
        if dev is None or r.dev == dev:
            net, mask, plen = prefix_of(r.dst)
            out.append((plen, net, mask, r.dev))
    out.sort(key=lambda c: -c[0])
    return out


class RouteBatches:
    """The Route objects of batches, shared by (device, dst, gateway) between namespaces
    (routes never change in place), and the last batch checked."""

    def __init__(self):
        self.shared: dict[str, dict[tuple[str, str], Route]] = {}
        self.last: Batch | None = None

    def route(self, dev: str, pair: tuple[str, str]) -> Route:
        by_pair = self.shared.get(dev)
        if by_pair is None:
            by_pair = self.shared[dev] = {}
        route = by_pair.get(pair)
        if route is None:
            if len(by_pair) >= 1 << 20:
                by_pair.clear()
            route = by_pair[pair] = Route(pair[0], dev, pair[1], None, 0, "boot", "global",
                                          "unicast", False)
        return route

    def check(self, ns: Netns, pairs: tuple, op_dev: str | None, up: set[str],
              local: set[str]) -> list[Route] | Later:
        """The routes ``pairs`` make in ``ns``, in order: a list to copy, not to keep, or
        (the last batch but for a few routes) a Later to give the namespace; CommandError
        as for the first route the kernel would refuse."""
        quick = self._like_last(ns, pairs, op_dev, up, local)
        if quick is not None:
            last = self.last
            if last.pieces is not None:
                return Later(last.base, tuple(last.pieces))
            return quick
        routes = self._one_by_one(ns, pairs, op_dev, up, local)
        devs = {r.dev for r in routes}
        self.last = Batch(op_dev, pairs, routes, devs.pop()) \
            if len(routes) >= QUICK_FROM and len(devs) == 1 else None
        return routes

    def _one_by_one(self, ns: Netns, pairs: tuple, op_dev: str | None, up: set[str],
                    local: set[str]) -> list[Route]:
        connected = connected_routes(ns, op_dev)
        taken = {r.dst for r in ns.routes if r.metric == 0}
        new: list[Route] = []
        for pair in pairs:
            dst, gateway = pair
            ip = ip_int(gateway)
            dev = None
            for _plen, net, mask, via in connected:
                if ip & mask == net:
                    dev = via
                    break
            if dev is None or gateway in local:
                raise CommandError(INVALID_GATEWAY)
            if dev not in up:
                raise CommandError(NOT_UP)
            if dst in taken:
                raise CommandError(EEXIST)
            taken.add(dst)
            new.append(self.route(dev, pair))
        return new

    def _like_last(self, ns: Netns, pairs: tuple, op_dev: str | None, up: set[str],
                   local: set[str]) -> list[Route] | None:
        """The routes, when ``pairs`` is the last batch with at most one pair changed and
        every check holds; None when the batch must be checked route by route."""
        last = self.last
        if last is None or last.op_dev != op_dev:
            return None
        # host-gw: node i+1's batch differs from node i's one place further on
        k = one_difference(pairs, last.pairs, last.changed + 1)
        if k is None:
            return None
        gateways, dsts = last.gateways, last.dsts
        if k >= 0:
            old_dst, old_gw = last.pairs[k]
            new_dst, new_gw = pairs[k]
            old_ip, new_ip = ip_int(old_gw), ip_int(new_gw)
            if new_dst != old_dst and new_dst in dsts:
                return None                 # two routes to one destination

        def count(lo: int, hi: int) -> int:
            """How many of the batch's gateways are in [lo, hi)."""
            n = bisect_left(gateways, hi) - bisect_left(gateways, lo)
            if k >= 0:
                n += (lo <= new_ip < hi) - (lo <= old_ip < hi)
            return n

        # Every gateway on the same connected route: the first (longest) one on which any is.
        dev = None
        for plen, net, _mask, via in connected_routes(ns, op_dev):
            held = count(net, net + (1 << (32 - plen)))
            if held == 0:
                continue
            if held != len(pairs):
                return None
            dev = via
            break
        if dev is None or dev != last.dev or dev not in up:
            return None
        if any(count(ip_int(a), ip_int(a) + 1) for a in local):
            return None                     # a gateway is an address of the namespace

        def in_batch(dst: str) -> bool:
            if k >= 0 and dst in (new_dst, old_dst):
                return dst == new_dst
            return dst in dsts

        if any(r.metric == 0 and in_batch(r.dst) for r in ns.routes):
            return None                     # a route to one of the destinations is there
        if k < 0:
            return last.routes
        del gateways[bisect_left(gateways, old_ip)]
        insort(gateways, new_ip)
        dsts.discard(old_dst)
        dsts.add(new_dst)
        last.replace(k, self.route(dev, pairs[k]))
        last.pairs[k] = pairs[k]
        last.changed = k
        return last.routes
