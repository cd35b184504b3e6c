"""``ip route``: add, change, delete, show, flush and get routes."""

from __future__ import annotations

from typing import Callable

from netlab import ops as O
from netlab.commands import show
from netlab.commands.base import (
    Args, Command, Ctx, Output, duparg, duparg2, invarg, unsupported, unsupported_feature,
)
from netlab.commands.inet import Prefix, get_addr, get_prefix, int_ip, mask
from netlab.commands.ip_common import (
    PROTOS, ROUTE_TYPES, ROUTE_USAGE_HEAD, SCOPES, IpOptions, device_hint,
    device_must_exist_for_show, need_device, unknown_command, usage,
)
from netlab.commands.lexer import matches
from netlab.errors import CommandError
from netlab.model import World

ROUTE_VERBS = ("add", "change", "replace", "prepend", "append", "test", "delete", "list",
               "show", "lst", "get", "flush", "save", "restore", "showdump", "help")


def parse_route(args: Args, ctx: Ctx, opts: IpOptions) -> Command:
    if opts.family == 6:
        raise unsupported_feature("IPv6 addresses and routes")
    if not args:
        return _route_show(Args([]), ctx, flush=False)
    verb = args.take()
    if matches(verb, "add"):
        return _route_modify(args, ctx, "add")
    if matches(verb, "change") or verb == "chg":
        return _route_modify(args, ctx, "change")
    if matches(verb, "replace"):
        return _route_modify(args, ctx, "replace")
    if matches(verb, "prepend") or matches(verb, "append") or matches(verb, "test"):
        raise unsupported(f"ip route {verb}")
    if matches(verb, "delete"):
        return _route_modify(args, ctx, "del")
    if matches(verb, "list") or matches(verb, "show") or matches(verb, "lst"):
        return _route_show(args, ctx, flush=False)
    if matches(verb, "get"):
        return _route_get(args, ctx)
    if matches(verb, "flush"):
        return _route_show(args, ctx, flush=True)
    if matches(verb, "save") or matches(verb, "restore") or matches(verb, "showdump"):
        raise unsupported(f"ip route {verb}")
    if matches(verb, "help"):
        raise usage(ROUTE_USAGE_HEAD)
    raise unknown_command(verb, "route", ROUTE_VERBS)


def _table(value: str) -> str:
    names = {"main": "main", "254": "main", "local": "local", "255": "local", "all": "all",
             "0": "all", "default": "default", "253": "default"}
    if value in names:
        return names[value]
    if value.isdigit():
        return value
    raise invarg('"table" value is invalid', value)


def _route_modify(args: Args, ctx: Ctx, verb: str) -> Command:
    family: str | None = None
    dst: Prefix | None = None
    rtype = "unicast"
    gateway: str | None = None
    dev: str | None = None
    src: str | None = None
    metric: int | None = None
    proto: str | None = None
    scope: str | None = None
    onlink = False
    table = "main"
    while args:
        word = args.take()
        if word == "src":
            src = get_addr(args.next(), family)
        elif word == "via":
            value = args.next()
            if value in ("inet", "inet6", "mpls", "bridge", "link"):
                if value != "inet":
                    raise unsupported_feature(f"`via {value}` gateways")
                value = args.next()
            gateway = get_addr(value, family)
        elif word in ("as", "from", "tos", "expires", "mtu", "advmss", "rtt", "rttvar",
                      "reordering", "window", "cwnd", "initcwnd", "initrwnd", "ssthresh",
                      "realms", "rto_min", "hoplimit", "features", "quickack", "congctl",
                      "pref", "encap", "nhid", "ttl-propagate", "fastopen_no_cookie") \
                or matches(word, "dsfield"):
            args.next()
            raise unsupported_feature(f"the route attribute `{word}`")
        elif matches(word, "metric") or matches(word, "priority") or word == "preference":
            value = args.next()
            if metric is not None:
                raise duparg("metric", value)
            if not value.isdigit() or int(value) > 0xFFFFFFFF:
                raise invarg('"metric" value is invalid', value)
            metric = int(value)
        elif word == "scope":
            value = args.next()
            if value not in SCOPES:
                raise invarg('invalid "scope" value', value)
            scope = SCOPES[value]
        elif matches(word, "onlink"):
            onlink = True
        elif matches(word, "nexthop"):
            raise unsupported_feature("multipath routes (`nexthop`)")
        elif matches(word, "protocol"):
            value = args.next()
            if value not in PROTOS:
                if not value.isdigit():
                    raise invarg('"protocol" value is invalid', value)
            proto = PROTOS.get(value, value)
        elif matches(word, "table"):
            table = _table(args.next())
            if table != "main":
                raise unsupported_feature(f"routing table {table} (netlab models the main table)")
        elif matches(word, "vrf"):
            raise unsupported_feature("VRFs")
        elif word in ("dev", "oif"):
            dev = args.next()
        else:
            if word == "to":
                word = args.next()
            if (not word[:1].isdigit()) and word in ROUTE_TYPES:
                rtype = word
                word = args.next()
            if matches(word, "help"):
                raise usage(ROUTE_USAGE_HEAD)
            if dst is not None:
                raise duparg2("to", word)
            dst = get_prefix(word, family, allow_default=True)
            if not dst.is_default:
                family = "inet"
    if dst is None:
        raise CommandError(ROUTE_USAGE_HEAD, status=255,
                           hint="give a destination: a prefix like 10.0.0.0/24, or default")
    if rtype not in ("unicast", "blackhole", "unreachable", "prohibit"):
        raise unsupported_feature(f"routes of type {rtype}")
    if dst.host_bits_set and dst.typed_len:
        raise CommandError("Error: Invalid prefix for given prefix length.", status=2)
    key = ctx.key
    checks = [need_device(key, dev)] if dev is not None else []
    dst_text = dst.network if dst.is_default else f"{int_ip(dst.value)}/{dst.prefixlen}"
    if verb == "del":
        return ctx.command(ops=[O.DelRoute(key, dst_text, dev=dev, gateway=gateway,
                                           metric=metric)], checks=checks)
    op = O.AddRoute(key, dst_text, dev=dev, gateway=gateway, src=src, metric=metric or 0,
                    proto=proto or "boot", scope=scope, type=rtype, replace=verb != "add",
                    onlink=onlink)
    explain = _route_hint(key, op, verb)
    if verb == "change":
        def exists(world: World) -> None:
            ns = world.namespaces.get(key)
            if ns is not None and not any(r.dst == dst_text and r.metric == (metric or 0)
                                          for r in ns.routes):
                raise CommandError("RTNETLINK answers: No such file or directory", status=2)
        checks.append(exists)
    return ctx.command(ops=[op], checks=checks, explain=explain)


def _route_hint(key: str, op: O.AddRoute, verb: str) -> Callable[[World, CommandError], str | None]:
    """Known mistakes behind a refused `ip route add` (KERNEL_NOTES.md)."""
    def explain(world: World, exc: CommandError) -> str | None:
        ns = world.namespaces.get(key)
        if ns is None:
            return None
        if exc.message == "Error: Nexthop has invalid gateway." and op.gateway:
            gw = get_prefix(op.gateway).value
            for link in show.sorted_links(ns):
                for addr in link.addresses:
                    if addr.prefixlen == 32 and (get_prefix(addr.ip).value ^ gw) < 256:
                        return (f"{addr.ip} on {link.name} is a /32 (typed without a prefix), so "
                                f"no connected route reaches {op.gateway}: add it as "
                                f"{addr.ip}/24 (ip addr del {addr.ip}/32 dev {link.name} first)")
                    m = mask(addr.prefixlen)
                    if (get_prefix(addr.ip).value & m) == (gw & m) and not link.up:
                        return (f"{link.name} is down, so its connected route is gone: "
                                f"ip link set {link.name} up")
            return (f"no connected route reaches {op.gateway}: the gateway must be on a network "
                    "this namespace has an address in (see `ip route`)")
        if exc.message == "Error: Device for nexthop is not up." and op.dev:
            return f"ip link set {op.dev} up"
        if exc.message == "RTNETLINK answers: File exists" and verb == "add":
            return (f"a route to {op.dst} with metric {op.metric} exists: `ip route replace` "
                    "changes it, another `metric` adds a second one")
        return None
    return explain


def _route_show(args: Args, ctx: Ctx, *, flush: bool) -> Command:
    table = "main"
    f: dict[str, str | None] = {}
    while args:
        word = args.take()
        if matches(word, "table"):
            table = _table(args.next())
        elif word == "vrf":
            raise unsupported_feature("VRFs")
        elif matches(word, "cached") or matches(word, "cloned"):
            table = "cache"
        elif word == "tos" or matches(word, "dsfield"):
            args.next()
            raise unsupported_feature("filtering routes by tos")
        elif matches(word, "protocol"):
            value = args.next()
            if value not in PROTOS and not value.isdigit():
                raise invarg('invalid "protocol"', value)
            f["proto"] = PROTOS.get(value, value)
        elif matches(word, "scope"):
            value = args.next()
            if value not in SCOPES:
                raise invarg('invalid "scope" value', value)
            f["scope"] = SCOPES[value]
        elif matches(word, "type"):
            value = args.next()
            if value not in ROUTE_TYPES:
                raise invarg("node type value is invalid", value)
            f["type"] = value
        elif word in ("dev", "oif"):
            f["dev"] = args.next()
        elif word == "iif":
            args.next()
            raise unsupported_feature("filtering routes by iif")
        elif word == "mark" or word == "metric" or matches(word, "priority"):
            args.next()
            raise unsupported_feature(f"filtering routes by {word}")
        elif word == "via":
            f["via"] = get_addr(args.next())
        elif word == "src" or word == "from":
            args.next()
            raise unsupported_feature(f"filtering routes by {word}")
        elif matches(word, "root") or matches(word, "match"):
            args.next()
            raise unsupported_feature(f"route selectors `{word}`")
        else:
            if matches(word, "exact"):
                word = args.next()
            if word == "to":
                word = args.next()
            if word == "cache" and flush:
                return ctx.command(kind="noop")
            if matches(word, "help"):
                raise usage(ROUTE_USAGE_HEAD)
            p = get_prefix(word, allow_default=True)
            f["exact"] = "0.0.0.0/0" if p.is_default else p.network
    filt = show.RouteFilter(**f)  # type: ignore[arg-type]
    key = ctx.key
    if flush:
        if not f and table not in ("main", "all"):
            raise unsupported_feature(f"flushing table {table}")
        if not f and not args.words:
            raise CommandError('"ip route flush" requires arguments.', status=255)
        dev = f.get("dev")

        def plan(world: World) -> list[O.Op]:
            ns = world.namespaces[key]
            if dev is not None:
                device_must_exist_for_show(world, key, dev)
            return [O.DelRoute(key, r.dst, dev=r.dev, gateway=r.gateway, metric=r.metric)
                    for r in show.main_routes(ns) if filt.accepts(r)]
        return ctx.command(plan=plan)

    def query(world: World) -> Output:
        ns = world.namespaces[key]
        if filt.dev is not None:
            device_must_exist_for_show(world, key, filt.dev)
        if table == "cache":
            return Output("")
        if table == "local" and not show.local_table(world, ns):
            raise CommandError("Error: ipv4: FIB table does not exist.", status=2)
        if table not in ("main", "local", "all"):
            return Output("")
        return Output(show.render_routes(world, ns, filt, table))
    return ctx.command(query=query, kind="show")


def _route_get(args: Args, ctx: Ctx) -> Command:
    dst: Prefix | None = None
    src: str | None = None
    iif: str | None = None
    oif: str | None = None
    while args:
        word = args.take()
        if word == "tos" or matches(word, "dsfield") or matches(word, "mark") \
                or matches(word, "vrf") or matches(word, "uid") or matches(word, "sport") \
                or matches(word, "dport") or matches(word, "ipproto"):
            args.next()
        elif matches(word, "from"):
            src = get_prefix(args.next(), "inet").ip
        elif matches(word, "iif"):
            iif = args.next()
        elif matches(word, "oif") or word == "dev":
            oif = args.next()
        elif matches(word, "notify") or matches(word, "connected") or matches(word, "fibmatch"):
            raise unsupported_feature(f"`ip route get … {word}`")
        else:
            if word == "to":
                word = args.next()
            if matches(word, "help"):
                raise usage(ROUTE_USAGE_HEAD)
            dst = get_prefix(word, "inet")
    if dst is None:
        raise CommandError("need at least a destination address", status=1)
    key = ctx.key
    target = dst.ip

    def query(world: World) -> Output:
        from netlab.commands.routeget import render_route_get
        ns = world.namespaces[key]
        for dev in (iif, oif):
            if dev is not None and dev not in ns.links:
                raise CommandError(f'Cannot find device "{dev}"', status=1,
                                   hint=device_hint(ns, dev))
        return Output(render_route_get(world, ns, target, src=src, iif=iif, oif=oif))
    return ctx.command(query=query, kind="show")
