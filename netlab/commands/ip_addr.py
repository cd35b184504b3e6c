"""``ip address``: add, delete, flush and show IPv4 addresses."""

from __future__ import annotations

from netlab import ops as O
from netlab.commands import show
from netlab.commands.base import (
    Args, Command, Ctx, Output, duparg, duparg2, invarg, unsupported, unsupported_feature,
)
from netlab.commands.inet import Prefix, get_addr, get_prefix, int_ip, mask
from netlab.commands.ip_common import (
    ADDR_USAGE_HEAD, SCOPES, IpOptions, LinkFilter, device_must_exist_for_show, maybe_hint,
    need_device, parse_link_filter, select_links, usage,
)
from netlab.commands.lexer import matches, suggest
from netlab.errors import CommandError
from netlab.model import Netns, World

ADDR_VERBS = ("add", "change", "replace", "delete", "list", "show", "lst", "flush", "save",
              "showdump", "restore", "help")


def parse_addr(args: Args, ctx: Ctx, opts: IpOptions) -> Command:
    if not args:
        return _addr_show(Args([]), ctx, opts)
    verb = args.take()
    if matches(verb, "add"):
        return _addr_modify(args, ctx, "add", opts)
    if matches(verb, "change") or verb == "chg":
        return _addr_modify(args, ctx, "change", opts)
    if matches(verb, "replace"):
        return _addr_modify(args, ctx, "replace", opts)
    if matches(verb, "delete"):
        return _addr_modify(args, ctx, "del", opts)
    if matches(verb, "list") or matches(verb, "show") or matches(verb, "lst"):
        return _addr_show(args, ctx, opts)
    if matches(verb, "flush"):
        return _addr_flush(args, ctx)
    if matches(verb, "save") or matches(verb, "showdump") or matches(verb, "restore"):
        raise unsupported(f"ip address {verb}")
    if matches(verb, "help"):
        raise usage(ADDR_USAGE_HEAD)
    close = suggest(verb, ADDR_VERBS)
    raise CommandError(f'Command "{verb}" is unknown, try "ip address help".', status=255,
                       hint=maybe_hint(close, "ip address {}"))


WILDCARD_WARNING = (
    "Warning: Executing wildcard deletion to stay compatible with old scripts.\n"
    "         Explicitly specify the prefix length ({}/32) to avoid this warning.\n"
    "         This special behaviour is likely to disappear in further releases,\n"
    "         fix your scripts!\n")


def _addr_modify(args: Args, ctx: Ctx, verb: str, opts: IpOptions) -> Command:
    family = "inet" if opts.family == 4 else None
    local: Prefix | None = None
    dev: str | None = None
    brd: str | None = None       # "+", "-" or an address
    while args:
        word = args.take()
        if word in ("peer", "remote"):
            raise unsupported_feature("point-to-point peer addresses")
        elif matches(word, "broadcast") or word == "brd":
            value = args.next()
            if brd is not None:
                raise duparg("broadcast", value)
            brd = value if value in ("+", "-") else get_addr(value, family)
        elif word == "anycast":
            raise unsupported_feature("anycast addresses")
        elif word == "scope":
            value = args.next()
            if value not in SCOPES:
                raise invarg("invalid scope value.", value)
            raise unsupported_feature("choosing an address scope")
        elif word == "dev":
            dev = args.next()
        elif word == "label":
            label = args.next()
            if label != dev:
                raise unsupported_feature("address labels")
        elif matches(word, "metric") or matches(word, "priority") or matches(word, "preference"):
            args.next()
            raise unsupported_feature("address metrics")
        elif matches(word, "valid_lft") or matches(word, "preferred_lft"):
            value = args.next()
            if value != "forever":
                raise unsupported_feature("address lifetimes")
        elif word in ("home", "nodad", "optimistic", "mngtmpaddr", "noprefixroute", "autojoin"):
            raise unsupported_feature(f"the address flag `{word}`")
        else:
            if word == "local":
                word = args.next()
            if matches(word, "help"):
                raise usage(ADDR_USAGE_HEAD)
            if local is not None:
                raise duparg2("local", word)
            local = get_prefix(word, family)
            family = "inet"
    if dev is None:
        raise CommandError('Not enough information: "dev" argument is required.', status=1)
    if local is None:
        if verb == "del":
            raise unsupported_feature("deleting every address with `ip addr del dev X`",
                                      hint=f"use `ip addr flush dev {dev}`")
        raise CommandError("RTNETLINK answers: Invalid argument", status=2)
    key = ctx.key
    checks = [need_device(key, dev)]
    if verb == "del":
        warning = "" if local.typed_len else WILDCARD_WARNING.format(local.ip)
        op = O.DelAddress(key, dev, local.ip, local.prefixlen if local.typed_len else None)
        return ctx.command(ops=[op], checks=checks, output=warning)
    broadcast = None
    if brd == "+" and local.prefixlen < 31:
        broadcast = int_ip(local.value | (~mask(local.prefixlen) & 0xFFFFFFFF))
    elif brd == "-":
        broadcast = int_ip(local.value & mask(local.prefixlen))
    elif brd not in (None, "+"):
        broadcast = brd
    op = O.AddAddress(key, dev, local.ip, local.prefixlen, broadcast)
    if verb == "add":
        return ctx.command(ops=[op], checks=checks)

    def plan(world: World) -> list[O.Op]:
        link = world.namespaces[key].links[dev]
        exists = [a for a in link.addresses if a.ip == local.ip and a.prefixlen == local.prefixlen]
        if exists:
            if exists[0].broadcast == broadcast:
                return []
            return [O.DelAddress(key, dev, local.ip, local.prefixlen), op]
        if verb == "change":
            raise CommandError("RTNETLINK answers: No such file or directory", status=2)
        return [op]
    return ctx.command(plan=plan, checks=checks)


def _addr_flush(args: Args, ctx: Ctx) -> Command:
    if not args:
        raise CommandError("Flush requires arguments.", status=255)
    filt = parse_link_filter(args, addresses=True)
    if filt.dev is None or filt.to or filt.scope or filt.label or filt.secondary is not None \
            or filt.master is not None or filt.kind or filt.up:
        raise unsupported_feature("`ip address flush` other than `ip address flush dev DEV`")
    key = ctx.key
    dev = filt.dev

    def check(world: World) -> None:
        device_must_exist_for_show(world, key, dev)
    return ctx.command(ops=[O.FlushAddresses(key, dev)], checks=[check])


def _addr_show(args: Args, ctx: Ctx, opts: IpOptions) -> Command:
    filt = parse_link_filter(args, addresses=True)
    key = ctx.key
    sopts = opts.show()
    if filt.to is not None:
        # `to PREFIX` sets the family: IPv4 only, without the link/ether line.
        sopts = show.ShowOptions(family=4, brief=sopts.brief, oneline=sopts.oneline)

    def query(world: World) -> Output:
        links = select_links(world, key, filt)
        ns = world.namespaces[key]
        if filt.to is None and filt.scope is None and filt.label is None \
                and filt.secondary is None:
            return Output(show.render_addrs(world, ns, links, sopts))
        return Output(_filtered_addrs(world, ns, links, filt, sopts))
    return ctx.command(query=query, kind="show")


def _filtered_addrs(world: World, ns: Netns, links: list, filt: LinkFilter,
                    sopts: show.ShowOptions) -> str:
    from fnmatch import fnmatchcase

    def keep(addr, secondary: bool) -> bool:
        if filt.to is not None:
            m = mask(filt.to.prefixlen)
            if (get_prefix(addr.ip).value & m) != (filt.to.value & m):
                return False
        if filt.scope is not None and show.addr_scope(addr) != filt.scope:
            return False
        return filt.secondary is None or secondary == filt.secondary

    # An address's label is its device's name in the model; `label` takes a glob.
    return "".join(show.render_addr_link(world, ns, link, sopts, keep) for link in links
                   if filt.label is None or fnmatchcase(link.name, filt.label))
