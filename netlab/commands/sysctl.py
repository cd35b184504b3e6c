"""``sysctl``, and reading or writing /proc/sys with ``cat``, ``echo >`` and ``tee``.

Only the keys netlab models exist (netlab.model.sysctl); another key fails
as it does on a machine where the /proc file is missing. Unlike procps
sysctl, a command naming several keys changes nothing if one of them fails
(a failed command leaves the World as it was).
"""

from __future__ import annotations

from dataclasses import dataclass
from netlab import ops as O
from netlab.backends.model import sysctl_value
from netlab.commands.base import Command, Ctx, Output, unsupported_feature
from netlab.commands.lexer import suggest
from netlab.errors import CommandError
from netlab.model import Netns, World
from netlab.model.sysctl import (
    DEVICE_KEYS, NETNS_DEFAULTS, device_key, key_from_proc, normalise, proc_path,
)

MULTI_VALUE = frozenset({"net.ipv4.ip_local_port_range"})


def all_keys(ns: Netns) -> list[str]:
    keys = set(NETNS_DEFAULTS)
    for link in ns.links.values():
        keys.update(f"net.ipv4.conf.{link.name}.{leaf}" for leaf in DEVICE_KEYS)
    for leaf in DEVICE_KEYS:
        keys.update((f"net.ipv4.conf.all.{leaf}", f"net.ipv4.conf.default.{leaf}"))
    return sorted(k for k in keys if sysctl_value(ns, k) is not None)


def _missing(key: str, ns: Netns | None = None) -> CommandError:
    hint = None
    if ns is not None:
        close = suggest(key, all_keys(ns), limit=3)
        if close:
            hint = f"did you mean `{close}`?"
    return CommandError(f"sysctl: cannot stat {proc_path(key)}: No such file or directory",
                        status=1, hint=hint)


def clean_value(key: str, value: str) -> str | None:
    """The value the kernel would store, or None when it would refuse it (EINVAL)."""
    parts = value.split()
    if key in MULTI_VALUE:
        if len(parts) != 2 or not all(_is_int(p) for p in parts):
            return None
        return "\t".join(str(int(p)) for p in parts)
    if len(parts) != 1 or not _is_int(parts[0]):
        return None
    return str(int(parts[0]))


def _is_int(text: str) -> bool:
    return (text[1:] if text[:1] in "+-" else text).isdigit()


@dataclass
class SysctlFlags:
    write: bool = False
    values_only: bool = False
    names_only: bool = False
    quiet: bool = False
    ignore_unknown: bool = False
    show_all: bool = False


_FLAG_LETTERS = {"w": "write", "n": "values_only", "N": "names_only", "q": "quiet",
                 "e": "ignore_unknown", "a": "show_all", "A": "show_all", "X": "show_all"}


def parse_sysctl(words: list[str], ctx: Ctx) -> Command:
    flags = SysctlFlags()
    items: list[str] = []
    for word in words:
        if word.startswith("--"):
            long = {"--write": "write", "--values": "values_only", "--names": "names_only",
                    "--quiet": "quiet", "--ignore": "ignore_unknown", "--all": "show_all"}
            if word not in long:
                raise unsupported_feature(f"`sysctl {word}`")
            setattr(flags, long[word], True)
        elif word.startswith("-") and len(word) > 1:
            for letter in word[1:]:
                if letter in ("p", "f", "r", "b", "o", "x", "d"):
                    raise unsupported_feature(f"`sysctl -{letter}`")
                if letter not in _FLAG_LETTERS:
                    raise CommandError(f"sysctl: invalid option -- '{letter}'", status=1)
                setattr(flags, _FLAG_LETTERS[letter], True)
        else:
            items.append(word)
    key = ctx.key
    if flags.show_all:
        def query_all(world: World) -> Output:
            ns = world.namespaces[key]
            return Output("".join(_format(k, sysctl_value(ns, k) or "", flags) for k in all_keys(ns)))
        return ctx.command(query=query_all, kind="show")
    if not items:
        raise CommandError("sysctl: no variables specified\nTry `sysctl --help' for more "
                           "information.", status=1)
    writes: list[tuple[str, str]] = []
    reads: list[str] = []
    for item in items:
        if "=" in item:
            name, _, value = item.partition("=")
            writes.append((normalise(name), value.strip()))
        elif flags.write:
            raise CommandError("sysctl: command line(0): invalid syntax, continuing...", status=1)
        else:
            reads.append(normalise(item))
    if writes and not reads:
        return _write_command(ctx, writes, flags)
    if reads and not writes:
        def query(world: World) -> Output:
            ns = world.namespaces[key]
            out = []
            for name in reads:
                value = sysctl_value(ns, name)
                if value is not None:
                    out.append(_format(name, value, flags))
                    continue
                under = [k for k in all_keys(ns) if k.startswith(name + ".")]
                if under:
                    out += [_format(k, sysctl_value(ns, k) or "", flags) for k in under]
                elif not flags.ignore_unknown:
                    raise _missing(name, ns)
            return Output("".join(out))
        return ctx.command(query=query, kind="show")
    raise unsupported_feature("reading and writing sysctls in one command",
                              hint="use two commands")


def _format(key: str, value: str, flags: SysctlFlags) -> str:
    if flags.names_only:
        return f"{key}\n"
    if flags.values_only:
        return f"{value}\n"
    return f"{key} = {value}\n"


def _write_command(ctx: Ctx, writes: list[tuple[str, str]], flags: SysctlFlags) -> Command:
    key = ctx.key
    ops: list[O.Op] = []
    out = []
    for name, value in writes:
        stored = clean_value(name, value)
        if stored is None and (name in NETNS_DEFAULTS or device_key(name)):
            raise CommandError(f'sysctl: setting key "{name}": Invalid argument', status=1)
        ops.append(O.SetSysctl(key, name, stored if stored is not None else value))
        if not flags.quiet:
            out.append(_format(name, value, flags))

    def check(world: World) -> None:
        ns = world.namespaces.get(key)
        if ns is None:
            return
        for name, _ in writes:
            if sysctl_value(ns, name) is None:
                raise _missing(name, ns)
    return ctx.command(ops=ops, checks=[check], output="".join(out))


# --- /proc/sys as files -----------------------------------------------------------------

def proc_key(path: str) -> str | None:
    return key_from_proc(path) if path.startswith("/proc/sys/") else None


def write_proc(ctx: Ctx, path: str, value: str, *, tool: str, echo_output: str = "") -> Command:
    """``echo VALUE > /proc/sys/KEY`` (tool "bash" or "sh": whose messages) or
    ``… | tee /proc/sys/KEY`` (tool "tee")."""
    name = proc_key(path)
    if name is None:
        raise unsupported_feature(f"writing files other than /proc/sys/… ({path})")
    key = ctx.key
    stored = clean_value(name, value)
    if stored is None:
        message = {"bash": "bash: echo: write error: Invalid argument",
                   "sh": "sh: 1: echo: echo: I/O error"}.get(tool, f"tee: {path}: Invalid argument")
        raise CommandError(message, status=1)

    def check(world: World) -> None:
        ns = world.namespaces.get(key)
        if ns is not None and sysctl_value(ns, name) is None:
            where, status = {
                "bash": (f"bash: {path}: No such file or directory", 1),
                "sh": (f"sh: 1: cannot create {path}: Directory nonexistent", 2),
            }.get(tool, (f"tee: {path}: No such file or directory", 1))
            raise CommandError(where, status=status, hint=_missing(name, ns).hint)
    return ctx.command(ops=[O.SetSysctl(key, name, stored)], checks=[check], output=echo_output)


def parse_cat(words: list[str], ctx: Ctx) -> Command:
    paths = [w for w in words if not w.startswith("-")]
    if not paths:
        raise unsupported_feature("`cat` reading standard input")
    names: list[tuple[str, str]] = []
    for path in paths:
        name = proc_key(path)
        if name is None:
            raise unsupported_feature(f"reading files other than /proc/sys/… ({path})")
        names.append((path, name))
    key = ctx.key

    def query(world: World) -> Output:
        ns = world.namespaces[key]
        out = []
        for path, name in names:
            value = sysctl_value(ns, name.rstrip("."))
            if value is None:
                if any(k.startswith(name.rstrip(".") + ".") for k in all_keys(ns)):
                    raise CommandError(f"cat: {path}: Is a directory", status=1)
                raise CommandError(f"cat: {path}: No such file or directory", status=1,
                                   hint=_missing(name, ns).hint)
            out.append(value + "\n")
        return Output("".join(out))
    return ctx.command(query=query, kind="show")

