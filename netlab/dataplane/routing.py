"""Route lookup as fib_lookup does it: the local table first, then main by
longest prefix and lowest metric; and source-address selection."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from netlab.backends.model import enabled
from netlab.model import Link, Netns, Route
# Addresses and prefixes as integers, parsed once per distinct text: a route lookup on a
# namespace with many addresses and routes costs integer compares, not ipaddress objects.
from netlab.model.route_index import ip_int, prefix_of, route_index  # noqa: F401 (re-exported)

LOOPBACK_NET = ipaddress.IPv4Network("127.0.0.0/8")


@lru_cache(maxsize=65536)
def _addr_net(ip: str, prefixlen: int) -> tuple[int, int]:
    mask = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF if prefixlen else 0
    return ip_int(ip) & mask, mask


def in_address_net(ip: int, addr) -> bool:
    net, mask = _addr_net(addr.ip, addr.prefixlen)
    return ip & mask == net


@dataclass
class RouteDecision:
    kind: str                 # local | unicast | blackhole | unreachable | prohibit | none
    dst: str
    dev: str | None = None
    gateway: str | None = None
    src: str | None = None    # the preferred source address
    route: Route | None = None
    error: str | None = None  # what `ip route get` prints when the lookup fails

    @property
    def ok(self) -> bool:
        return self.kind in ("local", "unicast")

    @property
    def nexthop(self) -> str:
        return self.gateway or self.dst


def local_addresses(ns: Netns) -> dict[str, str]:
    """The local table: every address of the namespace -> its link's name.

    The kernel keeps an address's local route while its link is down, so a
    namespace still owns (and answers for) the addresses of a down link."""
    out: dict[str, str] = {}
    for link in ns.links.values():
        for addr in link.addresses:
            out.setdefault(addr.ip, link.name)
    return out


def is_local(ns: Netns, ip: str) -> bool:
    """In the local table: any address of the namespace, or inside lo's 127.0.0.1/8."""
    for link in ns.links.values():
        for addr in link.addresses:
            if addr.ip == ip or (link.kind == "loopback" and in_address_net(ip_int(ip), addr)):
                return True
    return False


SHORT = 8       # a list of routes this short is searched; a longer one is indexed


def lookup_main(ns: Netns, dst: str, oif: str | None = None) -> Route | None:
    """fib_lookup in table main (route_index's longest_match): the longest prefix, then
    the lowest metric (the first on a tie), among the routes that may leave by ``oif``."""
    routes = ns.__dict__.get("routes")      # (absent: a batch given later, indexed)
    if routes is None or len(routes) > SHORT:
        return route_index(ns).longest_match(ip_int(dst), oif)
    ip = ip_int(dst)
    best, best_len = None, -1
    for route in routes:        # a pod's two or three: no index to make for each pod
        net, mask, length = prefix_of(route.dst)
        if ip & mask != net or length < best_len or \
                oif is not None and route.dev is not None and route.dev != oif:
            continue
        if length > best_len or route.metric < best.metric:
            best, best_len = route, length
    return best


def select_source(ns: Netns, dev: str | None, target: str) -> str | None:
    """inet_select_addr: a primary address of the device on the target's subnet,
    else the device's first address, else a global address of another device."""
    ip = ip_int(target)
    link = ns.links.get(dev) if dev else None
    if link is not None and link.addresses:
        for addr in link.addresses:
            if in_address_net(ip, addr):
                return addr.ip
        return link.addresses[0].ip
    for other in ns.links.values():
        if other.kind == "loopback" or not other.up:
            continue
        for addr in other.addresses:
            return addr.ip
    return None


def route_get(ns: Netns, dst: str, src: str | None = None, iif: str | None = None,
              oif: str | None = None, local: Callable[[Netns, str], bool] = is_local
              ) -> RouteDecision:
    """What `ip route get DST [from SRC] [iif DEV] [oif DEV]` decides. ``local`` answers
    is_local (a caller that keeps the namespace's addresses passes its own)."""
    if local(ns, dst):
        lo = ns.links.get("lo")
        return RouteDecision("local", dst, dev="lo" if (lo and lo.up) else None,
                             src=src or dst if iif is None else src)
    if iif is None and src is not None and not local(ns, src):
        return RouteDecision("none", dst, error="RTNETLINK answers: Invalid argument")
    if iif is not None:
        in_link = ns.links.get(iif)
        if in_link is None or not enabled(in_link.conf.get("forwarding")):
            # ip_route_input_slow: not for us and forwarding is off on iif.
            return RouteDecision("none", dst, error="RTNETLINK answers: No route to host")
    route = lookup_main(ns, dst, oif)
    if route is None:
        if oif is not None and oif in ns.links:
            # A socket bound to a device with no matching route: the destination
            # is assumed to be on link.
            return RouteDecision("unicast", dst, dev=oif, src=src or select_source(ns, oif, dst))
        return RouteDecision("none", dst, error="RTNETLINK answers: Network is unreachable")
    if route.type != "unicast":
        errors = {"blackhole": "RTNETLINK answers: Invalid argument",
                  "unreachable": "RTNETLINK answers: No route to host",
                  "prohibit": "RTNETLINK answers: Permission denied"}
        return RouteDecision(route.type, dst, route=route, error=errors.get(route.type))
    chosen_src = src or route.src or select_source(ns, route.dev, route.gateway or dst)
    return RouteDecision("unicast", dst, dev=route.dev, gateway=route.gateway, src=chosen_src,
                         route=route)


def link_of(ns: Netns, name: str | None) -> Link | None:
    return ns.links.get(name) if name else None
