"""``iptables``, ``iptables-save``, ``iptables-restore``, ``ipset`` and ``conntrack``.

Every change is an IptablesRestore Op (``iptables -t nat -A X …`` becomes
``*nat / -A X … / COMMIT`` with noflush and ``command`` set, so refusals are
worded as iptables words them) or an Ipset / FlushConntrack Op; listings
(``-L``, ``-S``, ``-C``, ``iptables-save``, ``ipset list``, ``conntrack -L``)
are queries. Output and messages are those of iptables v1.8.9 (nf_tables),
ipset v7.17 and conntrack v1.4.7 on Debian 12 (tests/data/iptables/).

``iptables-restore`` reads its input from a here-document (``iptables-restore
--noflush <<'EOF'`` … ``EOF`` in a script run by Shell.run_script); there is no
file system, so ``iptables-restore FILE`` / ``< FILE`` cannot be read.
"""

from __future__ import annotations

import copy

from netlab import ops as O
from netlab.commands.base import Command, Ctx, Output, unsupported_feature
from netlab.errors import CommandError, UnsupportedCommand
from netlab.model import World
from netlab.model.netfilter import BUILTIN_CHAINS, new_table
from netlab.netfilter import ipset as ipsets
from netlab.netfilter.errors import VERSION, NfError, XtError
from netlab.netfilter.helptext import IPTABLES_HELP, IPTABLES_RESTORE_HELP
from netlab.netfilter.listing import list_rules, list_table
from netlab.netfilter.restore import apply_restore, check_chain_name, iptables_save
from netlab.netfilter.rules import Invocation, NotModelled, parse_args

CONNTRACK = "conntrack v1.4.7 (conntrack-tools)"


def _not_modelled(exc: NotModelled) -> UnsupportedCommand:
    return UnsupportedCommand(f"netlab does not model {exc.what}", status=2)


def _table_check(name: str, tool: str = "iptables") -> None:
    if name == "security":
        raise UnsupportedCommand("netlab does not model the security table", status=2)
    if name not in BUILTIN_CHAINS:
        raise CommandError(f"{tool} {VERSION}: table '{name}' does not exist", status=3)


def _ns(world: World, ctx: Ctx):
    return world.namespaces[ctx.key]


# --- iptables -------------------------------------------------------------------------------

def parse_iptables(words: list[str], ctx: Ctx) -> Command:
    try:
        inv = parse_args(words)
    except XtError as exc:
        raise CommandError(exc.for_iptables(), status=exc.status) from None
    except NotModelled as exc:
        raise _not_modelled(exc) from None
    if inv.command == "V":
        return ctx.command(output=f"iptables {VERSION}\n", kind="show")
    if inv.command == "h":
        return ctx.command(output=IPTABLES_HELP, kind="show")
    table = inv.table_name
    _table_check(table)
    if inv.command in ("L", "S", "C"):
        query = _check(inv, ctx) if inv.command == "C" else _listing(inv, ctx)
        ops = [_zero_op(inv, ctx)] if inv.also_zero else []
        return ctx.command(ops=ops, query=query, kind="show")
    if inv.command == "N" or inv.command == "E":
        try:
            check_chain_name(inv.chain if inv.command == "N" else inv.newname or "")
        except XtError as exc:
            raise CommandError(exc.for_iptables(), status=exc.status) from None
    payload = f"*{table}\n" + "".join(line + "\n" for line in _restore_lines(inv)) + "COMMIT\n"
    return ctx.command(ops=[O.IptablesRestore(ctx.key, payload, noflush=True,
                                              command=ctx.text)])


def _restore_lines(inv: Invocation) -> list[str]:
    """The iptables-restore lines an iptables command stands for."""
    cmd, chain = inv.command, inv.chain
    if cmd in ("A", "I", "R", "D"):
        out = []
        for i, spec in enumerate(inv.rules()):
            body = spec.body()
            head = {"A": f"-A {chain}", "D": f"-D {chain}",
                    "I": f"-I {chain} {(inv.rulenum or 1) + i}",
                    "R": f"-R {chain} {inv.rulenum}"}[cmd]
            prefix = f"[{spec.counters[0]}:{spec.counters[1]}] " if spec.counters else ""
            out.append(prefix + (f"{head} {body}" if body else head))
        return out
    if cmd == "D#":
        return [f"-D {chain} {inv.rulenum}"]
    if cmd == "Z#":
        return [f"-Z {chain} {inv.rulenum}"]
    if cmd == "P":
        return [f"-P {chain} {inv.policy}"]
    if cmd == "E":
        return [f"-E {chain} {inv.newname}"]
    return [f"-{cmd} {chain}" if chain else f"-{cmd}"]


def _zero_op(inv: Invocation, ctx: Ctx) -> O.Op:
    chain = f" {inv.chain}" if inv.chain else ""
    return O.IptablesRestore(ctx.key, f"*{inv.table_name}\n-Z{chain}\nCOMMIT\n", noflush=True,
                             command=ctx.text)


def _incompatible(chain: str, table: str) -> Output:
    return Output(status=1, error=f"iptables {VERSION}: chain `{chain}' in table `{table}' is "
                                  f"incompatible, use 'nft' tool.")


def _listing(inv: Invocation, ctx: Ctx):
    def query(world: World) -> Output:
        ns = _ns(world, ctx)
        name = inv.table_name
        table = ns.tables.get(name) or new_table(name)
        if inv.chain is not None and inv.chain not in table.chains:
            return _incompatible(inv.chain, name)
        if inv.command == "S":
            return Output(list_rules(table, name, inv.chain, inv.rulenum, verbose=inv.verbose))
        return Output(list_table(table, name, inv.chain, inv.rulenum, numeric=inv.numeric,
                                 verbose=inv.verbose, exact=inv.exact,
                                 line_numbers=inv.line_numbers))
    return query


def _check(inv: Invocation, ctx: Ctx):
    """``iptables -C``: exit 0 when the rule is there."""
    def query(world: World) -> Output:
        ns = _ns(world, ctx)
        table = ns.tables.get(inv.table_name) or new_table(inv.table_name)
        chain = table.chains.get(inv.chain or "")
        for spec in inv.rules():
            if spec.jump is not None and spec.jump not in table.chains:
                return Output(status=2, error=f"iptables {VERSION}: Chain '{spec.jump}' does "
                                              f"not exist")
            if chain is None or spec.body() not in chain.rules:
                return Output(status=1, error="iptables: Bad rule (does a matching rule exist "
                                              "in that chain?).")
        return Output()
    return query


# --- iptables-save / iptables-restore ----------------------------------------------------------

def _long_opts(words: list[str], tool: str, flags: dict[str, str], with_value: dict[str, str]
               ) -> tuple[dict[str, str | bool], list[str]]:
    """getopt_long for the small option sets of iptables-save / -restore."""
    opts: dict[str, str | bool] = {}
    rest: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word[2:].partition("=")
            matches = [k for k in list(flags) + list(with_value) if k.startswith(name)]
            exact = [k for k in matches if k == name]
            key = exact[0] if exact else matches[0] if len(matches) == 1 else None
            if key is None:
                raise CommandError(f"{tool}: unrecognized option '{word}'", status=1)
            if key in with_value:
                if not eq:
                    if i >= len(words):
                        raise CommandError(f"{tool}: option '--{key}' requires an argument",
                                           status=1)
                    value = words[i]
                    i += 1
                opts[with_value[key]] = value
            else:
                opts[flags[key]] = True
        elif word.startswith("-") and len(word) > 1:
            j = 1
            while j < len(word):
                letter = word[j]
                j += 1
                if letter in with_value.values():
                    value = word[j:] if j < len(word) else None
                    if value is None:
                        if i >= len(words):
                            raise CommandError(f"{tool}: option requires an argument -- "
                                               f"'{letter}'", status=1)
                        value = words[i]
                        i += 1
                    opts[letter] = value
                    break
                if letter not in flags.values():
                    raise CommandError(f"{tool}: invalid option -- '{letter}'", status=1)
                opts[letter] = True
        else:
            rest.append(word)
    return opts, rest


def parse_iptables_save(words: list[str], ctx: Ctx) -> Command:
    opts, rest = _long_opts(words, "iptables-save",
                            {"counters": "c", "version": "V", "ipv4": "4", "ipv6": "6"},
                            {"table": "t", "modprobe": "M", "file": "f"})
    if "V" in opts:
        return ctx.command(output=f"iptables-save {VERSION}\n", kind="show")
    if "f" in opts:
        raise unsupported_feature("iptables-save -f FILE (netlab has no file system)")
    table = opts.get("t")

    def query(world: World) -> Output:
        ns = _ns(world, ctx)
        if table is not None and table not in BUILTIN_CHAINS:
            return Output(status=1, error=f"Table `{table}' does not exist")
        return Output(iptables_save(ns, table, counters=bool(opts.get("c"))))
    return ctx.command(query=query, kind="show")


def parse_iptables_restore(words: list[str], ctx: Ctx) -> Command:
    opts, rest = _long_opts(
        words, "iptables-restore",
        {"counters": "c", "verbose": "v", "version": "V", "test": "t", "help": "h",
         "noflush": "n", "ipv4": "4", "ipv6": "6", "wait": "w"},
        {"table": "T", "modprobe": "M", "wait-interval": "W"})
    if "V" in opts:
        return ctx.command(output=f"iptables-restore {VERSION}\n", kind="show")
    if "h" in opts:
        return ctx.command(output=IPTABLES_RESTORE_HELP, kind="show")
    if rest:
        raise CommandError(f"Can't open {rest[0]}: No such file or directory", status=1,
                           hint="netlab has no files: give the rules as a here-document, "
                                "iptables-restore <<'EOF' … EOF")
    payload = getattr(ctx, "stdin", None)
    if payload is None:
        raise unsupported_feature("iptables-restore reading from the terminal",
                                  hint="give the rules as a here-document: "
                                       "iptables-restore <<'EOF' … EOF")
    table = opts.get("T")
    if table is not None:
        _table_check(str(table), "iptables-restore")
        payload = only_table(payload, str(table))
    if not opts.get("c"):
        payload = without_counters(payload)
    noflush = bool(opts.get("n"))
    if opts.get("t"):
        def test(world: World) -> Output:
            ns = copy.deepcopy(_ns(world, ctx))
            try:
                apply_restore(ns, payload, noflush, test=True)
            except CommandError as exc:
                return Output(status=exc.status, error=str(exc))
            return Output()
        return ctx.command(query=test, kind="show")
    return ctx.command(ops=[O.IptablesRestore(ctx.key, payload, noflush=noflush)])


def only_table(payload: str, table: str) -> str:
    """iptables-restore -T: the other tables' sections become blank lines (numbers kept)."""
    out, keep = [], True
    for line in payload.split("\n"):
        if line.startswith("*"):
            keep = line[1:].split()[:1] == [table]
        out.append(line if keep else "")
    return "\n".join(out)


def without_counters(payload: str) -> str:
    """Counters are read only with -c: drop ``[p:b]`` before rules, zero them on chains."""
    out = []
    for line in payload.split("\n"):
        if line.startswith("["):
            close = line.find("]")
            if close > 0 and line[1:close].replace(":", "", 1).isdigit():
                line = line[close + 1:].lstrip(" \t")
        elif line.startswith(":"):
            words = line.split()
            if len(words) >= 3 and words[2].startswith("["):
                line = f"{words[0]} {words[1]} [0:0]"
        out.append(line)
    return "\n".join(out)


# --- ipset ---------------------------------------------------------------------------------------

def parse_ipset(words: list[str], ctx: Ctx) -> Command:
    cmd = ipsets.parse_ipset(words)
    if cmd.kind == "version":
        return ctx.command(output="ipset v7.17, protocol version: 7\n", kind="show")
    if cmd.kind == "help":
        return ctx.command(output="ipset v7.17\n\nUsage: ipset [options] COMMAND\n", kind="show")
    if cmd.kind in ("list", "save"):
        def listing(world: World) -> Output:
            ns = _ns(world, ctx)
            try:
                if cmd.kind == "save":
                    return Output(ipsets.save_sets(ns, cmd.name))
                return Output(ipsets.list_sets(ns, cmd.name, names_only=cmd.names_only,
                                               terse=cmd.terse, save_format=cmd.save_format))
            except CommandError as exc:
                return Output(status=exc.status, error=str(exc))
        return ctx.command(query=listing, kind="show")
    if cmd.kind == "test":
        def test(world: World) -> Output:
            ns = _ns(world, ctx)
            try:
                found = ipsets.test_member(ns, cmd.name or "", cmd.entry or "")
            except CommandError as exc:
                return Output(status=exc.status, error=str(exc))
            if found:
                return Output()     # ipset says "Warning: … is in set …" on stderr
            return Output(status=1, error=f"{cmd.entry} is NOT in set {cmd.name}.")
        return ctx.command(query=test, kind="show")
    return ctx.command(ops=[O.Ipset(ctx.key, tuple(words))])


# --- conntrack -------------------------------------------------------------------------------------

TIMEOUTS = {"SYN_SENT": 120, "SYN_RECV": 60, "ESTABLISHED": 432000, "FIN_WAIT": 120,
            "CLOSE_WAIT": 60, "LAST_ACK": 30, "TIME_WAIT": 120, "CLOSE": 10}
PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}


def conntrack_line(entry) -> str:
    """One entry as ``conntrack -L`` prints it."""
    proto = entry.proto
    number = PROTO_NUMBERS.get(proto, 0)
    status = set(entry.status)
    if proto == "tcp":
        timeout = TIMEOUTS.get(entry.state, 120)
    elif proto == "udp":
        timeout = 120 if "ASSURED" in status else 30
    else:
        timeout = 30
    out = f"{proto:<8s} {number} {timeout} "
    if proto == "tcp" and entry.state:
        out += f"{entry.state} "
    out += _tuple(proto, entry.orig, request=True)
    if "SEEN_REPLY" not in status:
        out += "[UNREPLIED] "
    out += _tuple(proto, entry.reply, request=False)
    if "ASSURED" in status:
        out += "[ASSURED] "
    out += f"mark={entry.mark} "
    if entry.zone:
        out += f"zone={entry.zone} "
    return out + "use=1"


def _tuple(proto: str, t, request: bool) -> str:
    src, sport, dst, dport = t
    out = f"src={src} dst={dst} "
    if proto == "icmp":
        out += f"type={8 if request else 0} code=0 id={sport or dport or 0} "
    elif sport is not None or dport is not None:
        out += f"sport={sport} dport={dport} "
    return out


def parse_conntrack(words: list[str], ctx: Ctx) -> Command:
    action = None
    proto = None
    filters: dict[str, str] = {}
    i = 0
    aliases = {"-L": "list", "--dump": "list", "-F": "flush", "--flush": "flush",
               "-C": "count", "--count": "count"}
    with_value = {"-p": "proto", "--proto": "proto", "--protonum": "proto", "-s": "src",
                  "--src": "src", "--orig-src": "src", "-d": "dst", "--dst": "dst",
                  "--orig-dst": "dst", "-r": "rsrc", "--reply-src": "rsrc", "-q": "rdst",
                  "--reply-dst": "rdst", "--sport": "sport", "--orig-port-src": "sport",
                  "--dport": "dport", "--orig-port-dst": "dport", "-m": "mark",
                  "--mark": "mark", "-z": "zone", "--zone": "zone", "-o": "output",
                  "--output": "output"}
    while i < len(words):
        word = words[i]
        i += 1
        if word in aliases:
            if action is not None:
                raise CommandError(f"{CONNTRACK}: Invalid parameters", status=2)
            action = aliases[word]
            if i < len(words) and words[i] in ("conntrack", "expect"):
                if words[i] == "expect":
                    raise unsupported_feature("the conntrack expectation table")
                i += 1
        elif word in with_value:
            if i >= len(words):
                raise CommandError(f"{CONNTRACK}: option `{word}' requires an argument",
                                   status=2)
            filters[with_value[word]] = words[i]
            i += 1
        elif word in ("-n", "--src-nat", "-g", "--dst-nat", "-e", "-b", "-u", "--status"):
            raise unsupported_feature(f"conntrack {word}")
        elif word in ("-E", "--event", "-D", "--delete", "-U", "--update", "-I", "--create",
                      "-S", "--stats", "-G", "--get"):
            raise unsupported_feature(f"conntrack {word}")
        else:
            raise CommandError(f"{CONNTRACK}: unknown option `{word}'", status=2)
    if action is None:
        raise CommandError(f"{CONNTRACK}: no command specified", status=2)
    if "proto" in filters:
        proto = filters["proto"]
        names = {"6": "tcp", "17": "udp", "1": "icmp"}
        proto = names.get(proto, proto)
        if proto not in ("tcp", "udp", "icmp"):
            raise CommandError(f"{CONNTRACK}: `{filters['proto']}' unsupported protocol",
                               status=2)
    if action == "flush":
        return ctx.command(ops=[O.FlushConntrack(ctx.key)])

    def query(world: World) -> Output:
        ns = _ns(world, ctx)
        entries = [e for e in ns.conntrack if _selected(e, proto, filters)]
        if action == "count":
            return Output(f"{len(entries)}\n")
        return Output("".join(conntrack_line(e) + "\n" for e in entries))
    return ctx.command(query=query, kind="show")


def _selected(entry, proto: str | None, filters: dict[str, str]) -> bool:
    if proto is not None and entry.proto != proto:
        return False
    checks = (("src", entry.orig[0]), ("dst", entry.orig[2]), ("rsrc", entry.reply[0]),
              ("rdst", entry.reply[2]), ("sport", str(entry.orig[1])),
              ("dport", str(entry.orig[3])), ("mark", str(entry.mark)),
              ("zone", str(entry.zone)))
    return all(filters[key] == value for key, value in checks if key in filters)


def register_all(register) -> None:
    for name, parser in (("iptables", parse_iptables), ("iptables-nft", parse_iptables),
                         ("iptables-save", parse_iptables_save),
                         ("iptables-nft-save", parse_iptables_save),
                         ("iptables-restore", parse_iptables_restore),
                         ("iptables-nft-restore", parse_iptables_restore),
                         ("ipset", parse_ipset), ("conntrack", parse_conntrack)):
        register(name, parser)


__all__ = ["parse_iptables", "parse_iptables_save", "parse_iptables_restore", "parse_ipset",
           "parse_conntrack", "register_all", "conntrack_line", "NfError"]
