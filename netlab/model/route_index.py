"""An index over a namespace's routes: by prefix length and network, for a longest-prefix
match and for the duplicate check of a route add; and the connected routes a gateway
must sit on.

``ns.routes`` stays the one truth (the World's JSON, ``ip route`` and every change work
on the list); the index is derived from it, kept on the namespace outside its fields
(so neither JSON nor equality sees it) and rebuilt whenever the list is not the one it
was built from, in length and last element — the model replaces the list, or appends to
it, or removes from it, and never puts a route in the middle of it. A route's ``dst``
and ``metric`` never change in place.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

from netlab.model.world import Netns, Route

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
                self.prefixes = sorted(((p, prefix_of(f"0.0.0.0/{p}")[1], n)
                                        for p, n in by_prefix.items()), key=lambda t: -t[0])
            held = nets.get(net)
            if held is None:
                nets[net] = route
            elif isinstance(held, list):
                held.append(route)
            else:
                nets[net] = [held, route]
            if route.type == "unicast" and route.gateway is None and route.scope != "host":
                connected.append(route)
            self.length += 1
        self.last = self.routes[-1] if self.length else None

    def longest_match(self, ip: int, oif: str | None = None) -> Route | None:
        """fib_lookup in table main: the longest prefix, then the lowest metric (the
        first such route on a tie), among routes that may leave by ``oif``."""
        for _plen, mask, nets in self.prefixes:
            bucket = nets.get(ip & mask)
            if bucket is None:
                continue
            if not isinstance(bucket, list):
                if oif is None or bucket.dev is None or bucket.dev == oif:
                    return bucket
                continue
            best: Route | None = None
            for route in bucket:
                if oif is not None and route.dev is not None and route.dev != oif:
                    continue
                if best is None or route.metric < best.metric:
                    best = route
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


def route_index(ns: Netns) -> RouteIndex:
    index = ns.__dict__.get(ATTR)
    if index is None or not index.valid_for(ns.routes):
        index = RouteIndex(ns.routes)
        ns.__dict__[ATTR] = index
    return index


def append_route(ns: Netns, route: Route) -> None:
    """``ns.routes.append(route)``, keeping a valid index valid."""
    index = ns.__dict__.get(ATTR)
    valid = index is not None and index.valid_for(ns.routes)
    ns.routes.append(route)
    if valid:
        index.add(route)


def forget_route_index(ns: Netns) -> None:
    """Drop the namespace's index (after a change it does not follow): the next look-up
    builds it again, from the list as it is then."""
    ns.__dict__.pop(ATTR, None)
