"""``ip neigh``: neighbour (ARP) entries."""

from __future__ import annotations

from netlab import ops as O
from netlab.commands import show
from netlab.commands.base import (
    Args, Command, Ctx, Output, duparg2, invarg, unsupported, unsupported_feature,
)
from netlab.commands.inet import Prefix, get_addr, get_prefix, parse_lladdr
from netlab.commands.ip_common import (
    NEIGH_USAGE_HEAD, NUD_STATES, IpOptions, device_must_exist_for_show, maybe_hint,
    need_device, usage,
)
from netlab.commands.lexer import matches, suggest
from netlab.errors import CommandError
from netlab.model import World

NEIGH_VERBS = ("add", "change", "replace", "delete", "get", "show", "lst", "list", "flush",
               "help")


def parse_neigh(args: Args, ctx: Ctx, opts: IpOptions) -> Command:
    if not args:
        return _neigh_show(Args([]), ctx, opts, flush=False)
    verb = args.take()
    if matches(verb, "add"):
        return _neigh_modify(args, ctx, "add")
    if matches(verb, "change") or verb == "chg":
        return _neigh_modify(args, ctx, "change")
    if matches(verb, "replace"):
        return _neigh_modify(args, ctx, "replace")
    if matches(verb, "delete"):
        return _neigh_modify(args, ctx, "del")
    if matches(verb, "get"):
        raise unsupported("ip neigh get")
    if matches(verb, "show") or matches(verb, "lst") or matches(verb, "list"):
        return _neigh_show(args, ctx, opts, flush=False)
    if matches(verb, "flush"):
        return _neigh_show(args, ctx, opts, flush=True)
    if matches(verb, "help"):
        raise usage(NEIGH_USAGE_HEAD)
    close = suggest(verb, NEIGH_VERBS)
    raise CommandError(f'Command "{verb}" is unknown, try "ip neigh help".', status=255,
                       hint=maybe_hint(close, "ip neigh {}"))


def _neigh_modify(args: Args, ctx: Ctx, verb: str) -> Command:
    ip: str | None = None
    dev: str | None = None
    mac: str | None = None
    state = "PERMANENT"
    while args:
        word = args.take()
        if matches(word, "lladdr"):
            mac = parse_lladdr(args.next())
        elif word == "nud":
            value = args.next()
            if value not in NUD_STATES:
                raise invarg("nud state is bad", value)
            state = value.upper()
        elif word == "dev":
            dev = args.next()
        elif matches(word, "proxy") or word in ("router", "extern_learn", "protocol",
                                                  "use", "managed"):
            raise unsupported_feature(f"`ip neigh … {word}`")
        else:
            if word == "to":
                word = args.next()
            if ip is not None:
                raise duparg2("to", word)
            ip = get_addr(word, "inet")
    if ip is None or dev is None:
        raise CommandError("Device and destination are required arguments.", status=255)
    key = ctx.key
    checks = [need_device(key, dev)]
    if verb == "del":
        def exists(world: World) -> None:
            ns = world.namespaces.get(key)
            if ns is not None and not any(n.ip == ip and n.dev == dev for n in ns.neighbours):
                raise CommandError("RTNETLINK answers: No such file or directory", status=2)
        checks.append(exists)
        return ctx.command(ops=[O.FlushNeighbours(key, dev=dev, ip=ip, permanent=True)],
                           checks=checks)
    if mac is None and state not in ("FAILED", "INCOMPLETE", "NONE"):
        raise CommandError("RTNETLINK answers: Invalid argument", status=2)
    if verb == "add":
        def fresh(world: World) -> None:
            ns = world.namespaces.get(key)
            if ns is not None and any(n.ip == ip and n.dev == dev for n in ns.neighbours):
                raise CommandError("RTNETLINK answers: File exists", status=2)
        checks.append(fresh)
    return ctx.command(ops=[O.AddNeighbour(key, ip, dev, mac, state)], checks=checks)


def _neigh_show(args: Args, ctx: Ctx, opts: IpOptions, *, flush: bool) -> Command:
    dev: str | None = None
    to: Prefix | None = None
    everything = False
    while args:
        word = args.take()
        if word == "dev":
            dev = args.next()
        elif word == "nud":
            value = args.next()
            if value == "all":
                everything = True
            elif value not in NUD_STATES:
                raise invarg("nud state is bad", value)
            else:
                raise unsupported_feature("filtering neighbours by state")
        elif matches(word, "proxy") or matches(word, "unused") or word == "vrf":
            raise unsupported_feature(f"`ip neigh … {word}`")
        elif word == "all":
            everything = everything or not flush
        else:
            if word == "to":
                word = args.next()
            to = get_prefix(word, "inet")
    key = ctx.key
    if flush:
        if dev is None and to is None and not args.words:
            raise CommandError("Flush requires arguments.", status=255)
        if to is not None:
            raise unsupported_feature("flushing neighbours by address")

        def check(world: World) -> None:
            if dev is not None:
                device_must_exist_for_show(world, key, dev)
        return ctx.command(ops=[O.FlushNeighbours(key, dev=dev, permanent=everything)],
                           checks=[check])
    brief = opts.brief

    def query(world: World) -> Output:
        import ipaddress
        if dev is not None:
            device_must_exist_for_show(world, key, dev)
        net = ipaddress.IPv4Network(to.network, strict=False) if to is not None else None
        return Output(show.render_neigh(world.namespaces[key], dev=dev, brief=brief, to=net))
    return ctx.command(query=query, kind="show")
