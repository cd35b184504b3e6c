"""``ip link``: create, change, delete and show links, parsed as iplink_parse() does."""

from __future__ import annotations

import ipaddress

from dataclasses import dataclass, field
from typing import Callable

from netlab import ops as O
from netlab.commands import show
from netlab.commands.base import (
    Args, Command, Ctx, Output, duparg, duparg2, invarg, unsupported, unsupported_feature,
)
from netlab.commands.inet import parse_lladdr, valid_ifname
from netlab.commands.ip_common import (
    KERNEL_KINDS, LINK_USAGE_HEAD, MODELLED_KINDS, IpOptions, device_hint, is_int, maybe_hint,
    need_device, parse_link_filter, select_links, unknown_command, usage,
)
from netlab.commands.lexer import first_match, matches, suggest
from netlab.errors import CommandError
from netlab.model import ROOT, World

LINK_VERBS = ("add", "set", "change", "replace", "delete", "show", "lst", "list", "xstats",
              "afstats", "property", "help")


@dataclass
class LinkSpec:
    """What iplink_parse() collected."""
    dev: str | None = None
    name: str | None = None
    up: bool | None = None
    mtu: int | None = None
    address: str | None = None
    netns: str | None = None          # as typed
    master: str | None = None         # "" means nomaster
    kind: str | None = None
    type_args: list[str] = field(default_factory=list)
    abbreviations: list[tuple[str, str]] = field(default_factory=list)  # (typed, keyword)


def _abbrev_hint(spec: LinkSpec) -> str | None:
    for typed, keyword in spec.abbreviations:
        return (f"`{typed}` is read as the keyword `{keyword}`; to name a device "
                f"`{typed}`, write `name {typed}`")
    return None


def iplink_parse(args: Args, ctx: Ctx) -> LinkSpec:
    spec = LinkSpec()

    def note(word: str, keyword: str) -> None:
        if word != keyword:
            spec.abbreviations.append((word, keyword))

    def keep_hint(exc: CommandError) -> CommandError:
        if exc.hint is None:
            exc.hint = _abbrev_hint(spec)
        return exc

    while args:
        word = args.take()
        if word == "up":
            spec.up = True
        elif word == "down":
            spec.up = False
        elif word == "name":
            value = args.next()
            if spec.name is not None:
                raise duparg("name", value)
            if not valid_ifname(value):
                raise invarg('"name" not a valid ifname', value)
            spec.name = value
            if spec.dev is None:
                spec.dev = value
        elif word == "index":
            args.next()
            raise unsupported_feature("choosing an interface index")
        elif matches(word, "link"):
            note(word, "link")
            value = args.next()
            raise unsupported_feature(f"`link {value}` (links stacked on another device)",
                                      hint=_abbrev_hint(spec))
        elif matches(word, "address"):
            note(word, "address")
            value = args.next()
            try:
                spec.address = parse_lladdr(value)
            except CommandError as exc:
                raise keep_hint(exc) from None
        elif matches(word, "broadcast") or word == "brd":
            note(word, "broadcast")
            value = args.next()
            try:
                parse_lladdr(value)
            except CommandError as exc:
                raise keep_hint(exc) from None
            raise unsupported_feature("setting a link-layer broadcast address")
        elif matches(word, "txqueuelen") or word == "qlen" or matches(word, "txqlen"):
            note(word, "txqueuelen")
            value = args.next()
            if not is_int(value):
                raise invarg('Invalid "txqueuelen" value', value, hint=_abbrev_hint(spec))
            raise unsupported_feature("queue lengths (txqueuelen)")
        elif word == "mtu":
            value = args.next()
            if spec.mtu is not None:
                raise duparg("mtu", value)
            if not is_int(value):
                raise invarg('Invalid "mtu" value', value)
            spec.mtu = int(value)
        elif word in ("xdp", "xdpgeneric", "xdpdrv", "xdpoffload"):
            raise unsupported_feature("XDP programs")
        elif word == "netns":
            value = args.next()
            if spec.netns is not None:
                raise duparg("netns", value)
            spec.netns = value
        elif word in ("multicast", "allmulticast", "promisc", "trailers", "arp", "carrier",
                      "protodown"):
            value = args.next()
            if value not in ("on", "off"):
                raise CommandError(f'Error: argument of "{word}" must be "on" or "off", '
                                   f'not "{value}"', status=1)
            raise unsupported_feature(f"the `{word}` flag")
        elif word == "vf":
            raise unsupported_feature("SR-IOV virtual functions")
        elif matches(word, "master"):
            note(word, "master")
            spec.master = args.next()
        elif word == "vrf":
            raise unsupported_feature("VRFs")
        elif matches(word, "nomaster"):
            note(word, "nomaster")
            spec.master = ""
        elif matches(word, "dynamic"):
            note(word, "dynamic")
            value = args.next()
            raise unsupported_feature("the `dynamic` flag", hint=_abbrev_hint(spec)) \
                if value in ("on", "off") else CommandError(
                    f'Error: argument of "dynamic" must be "on" or "off", not "{value}"',
                    status=1, hint=_abbrev_hint(spec))
        elif matches(word, "type"):
            spec.kind = args.next()
            spec.type_args = args.rest()
            break
        elif matches(word, "alias"):
            note(word, "alias")
            args.next()
            raise unsupported_feature("interface aliases", hint=_abbrev_hint(spec))
        elif word in ("group", "mode", "state") or matches(word, "numtxqueues") \
                or matches(word, "numrxqueues") or matches(word, "addrgenmode") \
                or matches(word, "link-netnsid") or word.startswith(("gso_", "gro_", "tso_")):
            args.next()
            raise unsupported_feature(f"`{word}` on links")
        else:
            if matches(word, "help") and word != "":
                raise usage(LINK_USAGE_HEAD)
            if word == "dev":
                word = args.next()
            if spec.dev is not None:
                raise duparg2("dev", word, hint=_misplaced_verb_hint(spec.dev, word, args, ctx))
            if not valid_ifname(word, limit=128):
                raise invarg('"dev" not a valid ifname', word)
            spec.dev = word
    return spec


def _misplaced_verb_hint(first: str, second: str, args: Args, ctx: Ctx) -> str | None:
    """``ip link add set veth-red netns red``: the verb was typed twice."""
    verb = first_match(first, ("set", "delete", "show", "add"))
    if verb is None or len(first) < 2:
        return None
    rest = " ".join([second] + args.words[args.i:])
    return f"did you mean `ip link {verb} {rest}`?"



def parse_link(args: Args, ctx: Ctx, opts: IpOptions) -> Command:
    if not args:
        return _link_show(Args([]), ctx, opts)
    verb = args.take()
    if matches(verb, "add"):
        return _link_add(args, ctx)
    if matches(verb, "set") or matches(verb, "change"):
        return _link_set(args, ctx)
    if matches(verb, "replace"):
        raise unsupported("ip link replace")
    if matches(verb, "delete"):
        return _link_del(args, ctx)
    if matches(verb, "show") or matches(verb, "lst") or matches(verb, "list"):
        return _link_show(args, ctx, opts)
    if matches(verb, "xstats") or matches(verb, "afstats") or matches(verb, "property"):
        raise unsupported(f"ip link {verb}")
    if matches(verb, "help"):
        raise usage(LINK_USAGE_HEAD)
    raise unknown_command(verb, "link", LINK_VERBS)


def _target_netns(ctx: Ctx, typed: str) -> tuple[str, Callable[[World], None]]:
    """The namespace key ``netns NAME`` (or a PID: 1 is the node's own) means."""
    if typed.isdigit():
        if typed == "1":
            return ctx.ns_key(ROOT), lambda world: None

        def no_pid(world: World) -> None:
            raise CommandError("RTNETLINK answers: No such process", status=2)
        return ctx.ns_key(ROOT), no_pid
    key = ctx.ns_key(typed)

    def check(world: World) -> None:
        ns = world.namespaces.get(key)
        if ns is None or typed == ROOT or ns.kind != "netns":
            close = suggest(typed, [n.name for n in world.namespaces.values()
                                    if n.node == ctx.node and n.kind == "netns"])
            hint = f"did you mean `{close}`?" if close else \
                f"create it first: `ip netns add {typed}`"
            raise invarg('Invalid "netns" value', typed, hint=hint)
    return key, check


def _master_check(key: str, master: str) -> Callable[[World], None]:
    def check(world: World) -> None:
        ns = world.namespaces.get(key)
        if ns is not None and master not in ns.links:
            raise invarg("Device does not exist", master, hint=device_hint(ns, master))
    return check


def _vxlan_add(spec, ctx: Ctx, where: str, name: str | None,
               checks: list[Callable[[World], None]]) -> Command:
    """``type vxlan id VNI [remote IP] [local IP] [dstport PORT] [dev DEV] [nolearning]``."""
    if name is None:
        raise unsupported_feature("a vxlan device without a name")
    opts: dict = {"learning": True}
    words = list(spec.type_args)
    while words:
        word = words.pop(0)
        if word == "nolearning":
            opts["learning"] = False
            continue
        if word == "learning":
            continue
        if not words:
            raise CommandError(f'Command line is not complete. Try option "help"', status=1)
        value = words.pop(0)
        if word in ("id", "vni"):
            if not value.isdigit() or int(value) >= 1 << 24:
                raise CommandError(f'Error: argument "{value}" is wrong: invalid id', status=1)
            opts["vni"] = int(value)
        elif word in ("remote", "local"):
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                raise CommandError(f'Error: inet address is expected rather than "{value}".',
                                   status=1) from None
            opts[word] = value
        elif word == "dstport":
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise CommandError(f'Error: argument "{value}" is wrong: dstport', status=1)
            opts["dstport"] = int(value)
        elif word == "dev":
            opts["dev"] = value
        elif word in ("ttl", "tos", "ageing"):
            continue
        else:
            raise unsupported_feature(f"vxlan option {word}")
    if "vni" not in opts:
        raise CommandError("vxlan: missing virtual network identifier", status=1)
    op = O.AddVxlan(where, name, opts["vni"], opts.get("dstport", 8472), dev=opts.get("dev"),
                    local=opts.get("local"), remote=opts.get("remote"),
                    learning=opts["learning"], mtu=spec.mtu or 1450, address=spec.address)
    ops: list[O.Op] = [op]
    if spec.up:
        ops.append(O.SetLinkUp(where, name, True))
    return ctx.command(ops=ops, checks=checks)


def _link_add(args: Args, ctx: Ctx) -> Command:
    spec = iplink_parse(args, ctx)
    checks: list[Callable[[World], None]] = []
    here = ctx.key
    where = here
    if spec.netns is not None:
        where, check = _target_netns(ctx, spec.netns)
        checks.append(check)
    if spec.master:
        checks.append(_master_check(here, spec.master))
    name = spec.name or spec.dev
    if spec.kind is None:
        raise CommandError('Not enough information: "type" argument is required', status=1,
                           hint=_abbrev_hint(spec))
    kind = spec.kind
    if kind == "vxlan":
        return _vxlan_add(spec, ctx, where, name, checks)
    if kind not in MODELLED_KINDS:
        if kind in KERNEL_KINDS:
            raise unsupported_feature(f"links of type {kind} (netlab models veth, bridge, "
                                      "dummy)")
        raise CommandError("Error: Unknown device type.", status=2,
                           hint=maybe_hint(suggest(kind, MODELLED_KINDS), "type {}"))
    if name is not None and len(name) > 15:
        raise CommandError("Error: Attribute failed policy validation.", status=2,
                           hint="an interface name has at most 15 characters")
    peer: LinkSpec | None = None
    if kind == "veth":
        peer = _veth_peer(spec.type_args, ctx)
    elif kind == "bridge":
        _bridge_options(spec.type_args)
    elif spec.type_args:
        raise CommandError(f'Garbage instead of arguments "{spec.type_args[0]} ...". '
                           'Try "ip link help".', status=1)
    peer_where = here
    peer_name = None
    if peer is not None:
        peer_name = peer.name or peer.dev
        if peer.netns is not None:
            peer_where, check = _target_netns(ctx, peer.netns)
            checks.append(check)
        if peer_name is not None and not valid_ifname(peer_name):
            raise CommandError("Error: Attribute failed policy validation.", status=2,
                               hint="an interface name has at most 15 characters")
        if peer.up or peer.master or peer.address:
            raise unsupported_feature("options on the veth peer other than name, netns, mtu")
    mtu = spec.mtu
    if peer is not None and peer.mtu is not None and peer.mtu != spec.mtu:
        raise unsupported_feature("a veth peer with an MTU of its own")

    def after(final: str) -> list[O.Op]:
        extra: list[O.Op] = []
        if spec.master:
            extra.append(O.SetLinkMaster(where, final, spec.master))
        if spec.up:
            extra.append(O.SetLinkUp(where, final, True))
        return extra

    if name is not None and (kind != "veth" or peer_name is not None):
        ops: list[O.Op] = [O.AddLink(netns=where, name=name, kind=kind, peer=peer_name,
                                     peer_netns=peer_where if kind == "veth" else None,
                                     mtu=mtu, address=spec.address)]
        return ctx.command(ops=ops + after(name), checks=checks,
                           explain=_exists_hint(where, peer_where, name, peer_name))

    def plan(world: World) -> list[O.Op]:
        # The kernel names what was left unnamed "<kind>%d"; a veth's peer is
        # registered first, so it takes the lower number.
        taken_here = set(world.namespaces[where].links)
        p_name = peer_name
        if kind == "veth" and p_name is None:
            taken_peer = set(world.namespaces[peer_where].links)
            p_name = _free_name(taken_peer, "veth")
            if peer_where == where:
                taken_here.add(p_name)
        final = name or _free_name(taken_here, kind)
        return [O.AddLink(netns=where, name=final, kind=kind, peer=p_name,
                          peer_netns=peer_where if kind == "veth" else None, mtu=mtu,
                          address=spec.address)] + after(final)
    return ctx.command(plan=plan, checks=checks)


def _exists_hint(where: str, peer_where: str, name: str, peer: str | None):
    def explain(world: World, exc: CommandError) -> str | None:
        if exc.message != "RTNETLINK answers: File exists":
            return None
        for key, dev in ((where, name), (peer_where, peer)):
            ns = world.namespaces.get(key)
            if dev and ns is not None and dev in ns.links:
                where_text = "" if ns.name == ROOT else f" in {ns.name}"
                return f"a device called {dev} exists{where_text} already"
        return None
    return explain


def _free_name(taken: set[str], prefix: str) -> str:
    n = 0
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"


def _veth_peer(words: list[str], ctx: Ctx) -> LinkSpec | None:
    if not words:
        return None
    if words[0] != "peer":
        raise CommandError("Usage: ip link <options> type veth [peer <options>]", status=1)
    peer = iplink_parse(Args(words[1:]), ctx)
    if peer.kind is not None:
        raise duparg("type", peer.kind)
    return peer


_BRIDGE_DEFAULTS = {"stp_state": "0", "vlan_filtering": "0", "mcast_snooping": "1",
                    "forward_delay": "1500", "hello_time": "200", "max_age": "2000",
                    "ageing_time": "30000", "priority": "32768"}


def _bridge_options(words: list[str]) -> None:
    args = Args(words)
    while args:
        key = args.take()
        value = args.next()
        if _BRIDGE_DEFAULTS.get(key) != value:
            raise unsupported_feature(f"the bridge option `{key} {value}`")


def _link_set(args: Args, ctx: Ctx) -> Command:
    spec = iplink_parse(args, ctx)
    if spec.kind is not None:
        raise unsupported_feature("changing link-type options with `ip link set … type`")
    checks: list[Callable[[World], None]] = []
    here = ctx.key
    where = here
    if spec.netns is not None:
        where, check = _target_netns(ctx, spec.netns)
        checks.append(check)
    if spec.master:
        checks.append(_master_check(here, spec.master))
    if spec.dev is None:
        raise CommandError('Not enough information: "dev" argument is required.', status=255)
    dev = spec.dev
    checks.append(need_device(here, dev))
    ops: list[O.Op] = []
    # do_setlink's order: namespace, address, mtu, name, flags, master.
    if spec.netns is not None:
        ops.append(O.MoveLink(here, dev, where))
    if spec.address is not None:
        ops.append(O.SetLinkAddress(where, dev, spec.address))
    if spec.mtu is not None:
        ops.append(O.SetLinkMtu(where, dev, spec.mtu))
    if spec.name is not None and spec.name != dev:
        ops.append(O.RenameLink(where, dev, spec.name))
        dev = spec.name
    if spec.up is not None:
        ops.append(O.SetLinkUp(where, dev, spec.up))
    if spec.master is not None:
        ops.append(O.SetLinkMaster(where, dev, spec.master or None))
    return ctx.command(ops=ops, checks=checks)


def _link_del(args: Args, ctx: Ctx) -> Command:
    spec = iplink_parse(args, ctx)
    if spec.dev is None:
        raise CommandError('Not enough information: "dev" argument is required.', status=255)
    if spec.kind is not None and spec.kind not in MODELLED_KINDS and spec.kind not in KERNEL_KINDS:
        raise CommandError("Error: Unknown device type.", status=2)
    return ctx.command(ops=[O.DelLink(ctx.key, spec.dev)], checks=[need_device(ctx.key, spec.dev)])


def _link_show(args: Args, ctx: Ctx, opts: IpOptions) -> Command:
    filt = parse_link_filter(args, addresses=False)
    key = ctx.key
    sopts = opts.show()

    def query(world: World) -> Output:
        links = select_links(world, key, filt)
        return Output(show.render_links(world, world.namespaces[key], links, sopts))
    return ctx.command(query=query, kind="show")
