"""``bridge link`` and ``bridge fdb``: the bridge ports and their permanent entries."""

from __future__ import annotations

from netlab import ops as O

from netlab.commands import show
from netlab.commands.base import Args, Command, Ctx, Output, unsupported, unsupported_feature
from netlab.commands.ip_common import device_must_exist_for_show
from netlab.commands.lexer import first_match, matches, suggest
from netlab.errors import CommandError
from netlab.model import World

OBJECTS = ("link", "fdb", "mdb", "vlan", "vni", "monitor")
_OPTIONS = ("-Version", "-help", "-stats", "-statistics", "-details", "-oneline", "-timestamp",
            "-tshort", "-family", "-netns", "-color", "-colour", "-compressvlans", "-force",
            "-json", "-pretty", "-batch")


def parse_bridge(words: list[str], ctx: Ctx) -> Command:
    args = Args(words)
    while args and args.peek().startswith("-"):  # type: ignore[union-attr]
        raw = args.take()
        opt = raw[1:] if raw.startswith("--") else raw
        name = first_match(opt.partition("=")[0], _OPTIONS)
        if name is None:
            raise CommandError(f'Option "{raw}" is unknown, try "bridge help".', status=255)
        if name == "-netns":
            ctx = ctx.in_netns(args.next())
        elif name in ("-json", "-batch"):
            raise unsupported_feature(f"`bridge {name}`")
        elif name == "-family":
            args.next()
    if not args:
        raise CommandError("Usage: bridge [ OPTIONS ] OBJECT { COMMAND | help }", status=255)
    obj = args.take()
    found = first_match(obj, OBJECTS)
    if found is None:
        close = suggest(obj, ("link", "fdb", "vlan", "mdb"))
        raise CommandError(f'Object "{obj}" is unknown, try "bridge help".', status=255,
                           hint=f"did you mean `bridge {close}`?" if close else None)
    if found == "link":
        return _link(args, ctx)
    if found == "fdb":
        return _fdb(args, ctx)
    raise unsupported(f"bridge {found}")


def _link(args: Args, ctx: Ctx) -> Command:
    if args:
        verb = args.take()
        if matches(verb, "set") or matches(verb, "add") or matches(verb, "delete"):
            raise unsupported(f"bridge link {verb}")
        if not (matches(verb, "show") or matches(verb, "list") or matches(verb, "lst")):
            raise CommandError(f'Command "{verb}" is unknown, try "bridge link help".',
                               status=255)
    dev: str | None = None
    while args:
        word = args.take()
        if word == "dev":
            dev = args.next()
        elif word == "master":
            args.next()
            raise unsupported_feature("`bridge link show master`")
        else:
            dev = word
    key = ctx.key

    def query(world: World) -> Output:
        if dev is not None:
            device_must_exist_for_show(world, key, dev)
        return Output(show.render_bridge_links(world, world.namespaces[key], dev))
    return ctx.command(query=query, kind="show")


def _fdb(args: Args, ctx: Ctx) -> Command:
    if args:
        verb = args.take()
        if verb in ("add", "append"):
            return _fdb_add(args, ctx, verb)
        if matches(verb, "add") or matches(verb, "append") or matches(verb, "replace") \
                or matches(verb, "delete") or matches(verb, "get") or matches(verb, "flush"):
            raise unsupported(f"bridge fdb {verb}")
        if not (matches(verb, "show") or matches(verb, "list") or matches(verb, "lst")):
            raise CommandError(f'Command "{verb}" is unknown, try "bridge fdb help".',
                               status=255)
    br: str | None = None
    dev: str | None = None
    while args:
        word = args.take()
        if word in ("br", "brport"):
            value = args.next()
            if word == "br":
                br = value
            else:
                dev = value
        elif word == "dev":
            dev = args.next()
        elif word in ("vlan", "state", "dynamic", "self", "master"):
            raise unsupported_feature(f"`bridge fdb show {word}`")
        else:
            raise CommandError(f'Command "{word}" is unknown, try "bridge fdb help".',
                               status=255)
    key = ctx.key

    def query(world: World) -> Output:
        ns = world.namespaces[key]
        for name in (br, dev):
            if name is not None and name not in ns.links:
                raise CommandError(f'Cannot find bridge device "{name}"' if name == br
                                   else f'Cannot find device "{name}"', status=1)
        return Output(show.render_fdb(world, ns, br=br, dev=dev))
    return ctx.command(query=query, kind="show")


def _fdb_add(args: Args, ctx: Ctx, verb: str) -> Command:
    """``bridge fdb add|append MAC dev VXLAN dst IP [self] [permanent]`` (VXLAN devices)."""
    mac = args.next()
    dev = dst = None
    while args:
        word = args.take()
        if word == "dev":
            dev = args.next()
        elif word == "dst":
            dst = args.next()
        elif word in ("self", "permanent", "static"):
            continue
        else:
            raise unsupported_feature(f"`bridge fdb {verb} … {word}`")
    if dev is None:
        raise CommandError("Device and address are required arguments.", status=255)
    if dst is None:
        raise unsupported_feature(f"`bridge fdb {verb}` without dst (a bridge port's entries)")
    return ctx.command(ops=[O.AddFdb(ctx.key, dev, mac, dst)])
