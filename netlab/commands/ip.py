"""``ip``: iproute2's grammar, read the way ip(8) reads it.

Keywords are matched as iproute2 matches them (an abbreviation is the first
keyword in the tool's own order that it is a prefix of: ``ip a`` is ``ip
address``, and in ``ip link add a type veth`` the ``a`` is ``address``).
Changes become Ops; show commands become queries over the World; error
sentences and exit statuses are ip's.
"""

from __future__ import annotations

from typing import Callable

from netlab import ops as O
from netlab.commands import show
from netlab.commands.base import Args, Command, Ctx, Output, unsupported, unsupported_feature
from netlab.commands.ip_common import (
    IP_USAGE_HEAD, NETNS_USAGE_HEAD, OBJECTS, SUGGESTED_OBJECTS, IpOptions, maybe_hint, usage,
)
from netlab.commands.lexer import first_match, matches, suggest
from netlab.errors import CommandError
from netlab.model import ROOT, World
from netlab.commands.ip_link import parse_link
from netlab.commands.ip_addr import parse_addr
from netlab.commands.ip_route import parse_route
from netlab.commands.ip_neigh import parse_neigh

# Options in ip.c's order: an abbreviation is the first one it is a prefix of.
_IP_OPTIONS = ("-loops", "-family", "-4", "-6", "-0", "-M", "-B", "-human", "-human-readable",
               "-iec", "-stats", "-statistics", "-details", "-resolve", "-oneline",
               "-timestamp", "-tshort", "-Version", "-force", "-batch", "-brief", "-json",
               "-pretty", "-rcvbuf", "-color", "-colour", "-help", "-netns", "-Numeric",
               "-all", "-echo")
_EXACT_OPTIONS = frozenset({"-4", "-6", "-0", "-M", "-B"})


def parse_ip(words: list[str], ctx: Ctx, dispatch: Callable[[list[str], Ctx], Command]) -> Command:
    args = Args(words)
    opts = IpOptions()
    while args and args.peek().startswith("-") and args.peek() != "-":  # type: ignore[union-attr]
        raw = args.take()
        opt = raw[1:] if raw.startswith("--") else raw
        opt, _, inline = opt.partition("=")
        name = opt if opt in _EXACT_OPTIONS else first_match(opt, [o for o in _IP_OPTIONS
                                                                   if o not in _EXACT_OPTIONS])
        if name is None:
            raise CommandError(f'Option "{raw}" is unknown, try "ip -help".', status=255)
        if name == "-netns":
            opts.netns = args.next()
        elif name == "-4":
            opts.family = 4
        elif name == "-6":
            opts.family = 6
        elif name == "-family":
            fam = inline or args.next()
            opts.family = {"inet": 4, "inet6": 6}.get(fam)
            if opts.family is None:
                raise unsupported_feature(f"the address family {fam}")
        elif name == "-brief":
            opts.brief = True
        elif name == "-oneline":
            opts.oneline = True
        elif name == "-details":
            opts.details = True
        elif name == "-json":
            raise unsupported_feature("`ip -json` output", hint="drop -j")
        elif name == "-batch":
            raise unsupported_feature("`ip -batch`", hint="put the commands in the lab's run:")
        elif name in ("-help",):
            raise usage(IP_USAGE_HEAD)
        elif name in ("-Version",):
            return ctx.command(kind="noop", output="ip utility, iproute2-6.1.0, libbpf 1.1.2\n")
        elif name in ("-loops", "-rcvbuf"):
            args.next()
        elif name == "-all":
            raise unsupported_feature("`ip -all`", hint="run the command in each namespace")
        # colours, stats, resolve, timestamps, pretty, human, numeric, force, all, echo:
        # accepted and ignored (they change nothing in the model's output).
    if not args:
        raise usage(IP_USAGE_HEAD)
    obj = args.take()
    found = first_match(obj, OBJECTS)
    if found is None:
        close = suggest(obj, SUGGESTED_OBJECTS)
        hint = f"did you mean `ip {close}`?" if close else None
        raise CommandError(f'Object "{obj}" is unknown, try "ip help".', hint=hint, status=1)
    if opts.netns is not None:
        ctx = ctx.in_netns(opts.netns)
    if found == "netns":
        return parse_netns(args, ctx, dispatch)
    if found == "link":
        return parse_link(args, ctx, opts)
    if found == "address":
        return parse_addr(args, ctx, opts)
    if found == "route":
        return parse_route(args, ctx, opts)
    if found in ("neighbor", "neighbour"):
        return parse_neigh(args, ctx, opts)
    if found == "help":
        raise usage(IP_USAGE_HEAD)
    raise unsupported(f"ip {found}")


# --- ip netns -------------------------------------------------------------------------

NETNS_VERBS = ("list", "show", "lst", "list-id", "help", "add", "set", "delete", "identify",
               "pids", "exec", "monitor", "attach")


def parse_netns(args: Args, ctx: Ctx, dispatch: Callable[[list[str], Ctx], Command]) -> Command:
    if not args:
        return _netns_list(ctx)
    verb = args.take()
    if args and (args.peek() in (".", "..") or "/" in args.peek()):  # type: ignore[operator]
        raise CommandError(f'Invalid netns name "{args.peek()}"', status=255)
    if matches(verb, "list") or matches(verb, "show") or matches(verb, "lst"):
        return _netns_list(ctx)
    if matches(verb, "list-id"):
        raise unsupported("ip netns list-id")
    if matches(verb, "help"):
        raise usage(NETNS_USAGE_HEAD)
    if matches(verb, "add"):
        name = _netns_name(args)
        return _netns_add(ctx, name)
    if matches(verb, "set"):
        raise unsupported("ip netns set")
    if matches(verb, "delete"):
        name = _netns_name(args)
        if name == "-all" or name == "-a":
            raise unsupported_feature("`ip -all netns delete`")
        return _netns_del(ctx, name)
    if matches(verb, "identify") or matches(verb, "pids") or matches(verb, "monitor") \
            or matches(verb, "attach"):
        raise unsupported(f"ip netns {verb}")
    if matches(verb, "exec"):
        name = _netns_name(args)
        inner = args.rest()
        if not inner:
            raise CommandError("No command specified", status=1)
        if name == ROOT:
            raise _reserved()
        return dispatch(inner, ctx.in_netns(name))
    raise CommandError(f'Command "{verb}" is unknown, try "ip netns help".', status=255,
                       hint=maybe_hint(suggest(verb, NETNS_VERBS), "ip netns {}"))



def _netns_name(args: Args) -> str:
    if not args:
        raise CommandError("No netns name specified", status=1)
    return args.take()


def _reserved() -> CommandError:
    return CommandError('netlab keeps the name "root" for a node\'s own namespace',
                        hint="choose another name", status=1)


def _netns_list(ctx: Ctx) -> Command:
    node, here = ctx.node, ctx.key

    def query(world: World) -> Output:
        return Output(show.render_netns_list(world, node, viewer=here))
    return ctx.command(query=query, kind="show")


def _netns_add(ctx: Ctx, name: str) -> Command:
    if name == ROOT:
        raise _reserved()
    key = ctx.ns_key(name)

    def check(world: World) -> None:
        if key in world.namespaces:
            raise CommandError(f'Cannot create namespace file "/run/netns/{name}": File exists',
                               status=1)
    return ctx.command(ops=[O.AddNetns(ctx.node, name)], checks=[check])


def _netns_del(ctx: Ctx, name: str) -> Command:
    key = ctx.ns_key(name)

    def check(world: World) -> None:
        ns = world.namespaces.get(key)
        if ns is None or name == ROOT or ns.kind != "netns":
            raise CommandError(
                f'Cannot remove namespace file "/run/netns/{name}": No such file or directory',
                status=1)
    return ctx.command(ops=[O.DelNetns(ctx.node, name)], checks=[check])
