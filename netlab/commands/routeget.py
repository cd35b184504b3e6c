"""``ip route get``: the route lookup the kernel would do, printed as ip prints it.

Output routes (no ``iif``) come from routing.route_get; an input route
(``iif DEV``) is a forwarding decision, refused with EHOSTUNREACH when the
device does not forward and EINVAL without a ``from`` address, as
ip_route_input_slow() does.
"""

from __future__ import annotations

from netlab.backends.model import sysctl_value
from netlab.commands import show
from netlab.errors import CommandError
from netlab.model import Netns, World

UNREACHABLE = "RTNETLINK answers: Network is unreachable"


def _refuse(message: str) -> CommandError:
    return CommandError(message, status=2)


def _local_route(world: World, ns: Netns, dst: str):
    """The local-table entry a destination hits (exact local, lo's /8, broadcast)."""
    import ipaddress
    ip = ipaddress.IPv4Address(dst)
    best = None
    for route in show.local_table(world, ns):
        link = ns.links.get(route.dev or "")
        if link is None or not link.up:
            # A local address on a down device still answers (its local route
            # stays); broadcast entries are gone with the link.
            if route.type != "local" or route.network.prefixlen != 32:
                continue
        if ip in route.network and (best is None or route.network.prefixlen >
                                    best.network.prefixlen):
            best = route
    return best


def _has_address(ns: Netns, ip: str) -> bool:
    return any(a.ip == ip for link in ns.links.values() for a in link.addresses)


def render_route_get(world: World, ns: Netns, dst: str, *, src: str | None = None,
                     iif: str | None = None, oif: str | None = None) -> str:
    from netlab.dataplane.routing import route_get

    frm = f" from {src}" if src else ""
    local = _local_route(world, ns, dst)
    if iif is not None:
        if src is None or src == "0.0.0.0":
            raise _refuse("RTNETLINK answers: Invalid argument")
        if local is not None and local.type == "local":
            return f"local {dst}{frm} dev lo \n    cache <local> iif {iif} \n"
        forwarding = sysctl_value(ns, f"net.ipv4.conf.{iif}.forwarding")
        if forwarding is None:
            forwarding = sysctl_value(ns, "net.ipv4.conf.all.forwarding")
        if forwarding != "1":
            raise _refuse("RTNETLINK answers: No route to host")
        decision = route_get(ns, dst, src=src, iif=iif)
        if decision.kind == "none" or (decision.kind == "unicast" and decision.dev is None):
            raise _refuse(UNREACHABLE)
        if decision.kind != "unicast":
            raise _refuse(decision.error or UNREACHABLE)
        via = f" via {decision.gateway}" if decision.gateway else ""
        return f"{dst}{frm}{via} dev {decision.dev} \n    cache iif {iif} \n"

    if src is not None and not _has_address(ns, src):
        raise _refuse(UNREACHABLE)
    if local is not None and local.type == "local" and oif is None:
        prefsrc = "" if src else f" src {local.src}"
        return f"local {dst}{frm} dev lo{prefsrc} uid 0 \n    cache <local> \n"
    if local is not None and local.type == "broadcast":
        prefsrc = "" if src else f" src {local.src}"
        return f"broadcast {dst}{frm} dev {local.dev}{prefsrc} uid 0 \n    cache <local,brd> \n"
    decision = route_get(ns, dst, src=src, oif=oif)
    if decision.kind == "local":
        prefsrc = "" if src else f" src {decision.src or dst}"
        return f"local {dst}{frm} dev lo{prefsrc} uid 0 \n    cache <local> \n"
    if decision.kind != "unicast" or decision.dev is None:
        raise _refuse(decision.error or UNREACHABLE)
    via = f" via {decision.gateway}" if decision.gateway else ""
    prefsrc = f" src {decision.src}" if (decision.src and not src) else ""
    return f"{dst}{frm}{via} dev {decision.dev}{prefsrc} uid 0 \n    cache \n"
