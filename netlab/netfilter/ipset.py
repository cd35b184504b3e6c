"""ipset (v7.17): sets of addresses and ports for ``-m set``, as data in ``Netns.ipsets``.

    command = parse_ipset(["add", "S", "10.0.0.0/8"])      # IpsetCommand, or CommandError
    apply_ipset(ns, ["add", "S", "10.0.0.0/8"])            # changes ns.ipsets (the Ipset Op)
    list_sets(ns, None), save_sets(ns, None), test_member(ns, "S", "10.1.2.3")

Members are stored as ipset lists them (``10.96.0.2,80`` becomes
``10.96.0.2,tcp:80``; ``10.1.2.3/8`` in a hash:net becomes ``10.0.0.0/8``).
Listing differs from the real tool in what is random or kernel-internal there:
``initval`` is 0x00000000, "Size in memory" is an estimate, and members are
listed in the order they were added (the kernel lists them in hash order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netlab.errors import CommandError, UnsupportedCommand
from netlab.model.netfilter import IpSet
from netlab.netfilter.values import int_to_ip, mask_bits, numeric_ip, prefix_mask

VERSION = "v7.17"
TYPES = {"hash:ip": 6, "hash:net": 7, "hash:ip,port": 7, "hash:net,port": 8,
         "hash:ip,port,ip": 6, "hash:ip,port,net": 8, "hash:ip,mark": 3, "bitmap:port": 3,
         "bitmap:ip": 4, "list:set": 3, "hash:net,iface": 7, "hash:mac": 1}
MODELLED = ("hash:ip", "hash:net", "hash:ip,port", "hash:net,port", "hash:ip,port,ip",
            "hash:ip,port,net", "bitmap:port", "list:set")
COMMANDS = {"create": "create", "n": "create", "-N": "create", "-C": "create",
            "add": "add", "-A": "add", "del": "del", "-D": "del", "test": "test", "-T": "test",
            "list": "list", "-L": "list", "save": "save", "-S": "save", "flush": "flush",
            "-F": "flush", "destroy": "destroy", "-X": "destroy", "x": "destroy",
            "rename": "rename", "-E": "rename", "swap": "swap", "-W": "swap",
            "version": "version", "-V": "version", "help": "help", "-h": "help"}
PORT_PROTOS = ("tcp", "udp", "sctp", "udplite")


def _error(text: str, status: int = 1) -> CommandError:
    return CommandError(f"ipset {VERSION}: {text}", status=status)


@dataclass
class IpsetCommand:
    kind: str                        # create add del test list save flush destroy rename swap …
    name: str | None = None
    type: str | None = None
    options: tuple[str, ...] = ()
    entry: str | None = None
    other: str | None = None         # rename / swap: the second name
    exist: bool = False
    names_only: bool = False         # list -n
    terse: bool = False              # list -t
    save_format: bool = False        # list -o save


def parse_ipset(words: list[str]) -> IpsetCommand:
    flags = {"-exist", "-!", "-n", "-name", "-t", "-terse", "-o", "-output", "-q", "-quiet",
             "-r", "-resolve", "-s", "-sorted", "-f", "-file"}
    args: list[str] = []
    exist = names_only = terse = save_format = False
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word in ("-exist", "-!"):
            exist = True
        elif word in ("-n", "-name") and args[:1] and COMMANDS.get(args[0]) == "list":
            names_only = True
        elif word in ("-t", "-terse"):
            terse = True
        elif word in ("-o", "-output"):
            save_format = i < len(words) and words[i] == "save"
            i += 1
        elif word in ("-q", "-quiet", "-r", "-resolve", "-s", "-sorted"):
            pass
        elif word in ("-f", "-file"):
            raise UnsupportedCommand("netlab does not model ipset -file", status=2)
        elif word in flags and not args:
            pass
        else:
            args.append(word)
    if not args:
        raise _error("No command specified.", 2)
    kind = COMMANDS.get(args[0])
    if kind is None:
        raise _error(f"No command specified: unknown argument {args[0]}", 2)
    rest = args[1:]
    cmd = IpsetCommand(kind, exist=exist, names_only=names_only, terse=terse,
                       save_format=save_format)
    if kind == "create":
        if len(rest) < 2:
            raise _error("Syntax error: Missing mandatory typename" if len(rest) == 1 else
                         "Syntax error: Missing setname", 2)
        cmd.name, cmd.type, cmd.options = rest[0], rest[1], tuple(rest[2:])
        if cmd.type not in TYPES:
            raise _error(f"Syntax error: typename '{cmd.type}' is unknown")
        if cmd.type not in MODELLED:
            raise UnsupportedCommand(f"netlab does not model ipset type {cmd.type}", status=2)
    elif kind in ("add", "del", "test"):
        if len(rest) < 2:
            raise _error("Syntax error: Missing mandatory argument" if rest else
                         "Syntax error: Missing setname", 2)
        cmd.name, cmd.entry = rest[0], rest[1]
    elif kind in ("rename", "swap"):
        if len(rest) < 2:
            raise _error("Syntax error: Missing second setname", 2)
        cmd.name, cmd.other = rest[0], rest[1]
    elif kind in ("list", "save", "flush", "destroy"):
        cmd.name = rest[0] if rest else None
    return cmd


# --- members ---------------------------------------------------------------------------------

def _ip(text: str) -> int:
    value = numeric_ip(text) if text.count(".") == 3 else None
    if value is None:
        raise _error(f"Syntax error: cannot parse {text}: resolving to IPv4 address failed")
    return value


def _net(text: str, host_ok: bool = True) -> list[str]:
    addr, slash, bits_text = text.partition("/")
    value = _ip(addr)
    if not slash:
        return [int_to_ip(value)]
    if not bits_text.isdigit() or not 1 <= int(bits_text) <= 32:
        raise _error(f"Syntax error: '{bits_text}' is out of range 1-32")
    bits = int(bits_text)
    network = value & prefix_mask(bits)
    return [int_to_ip(network) if bits == 32 else f"{int_to_ip(network)}/{bits}"]


def _ips(text: str) -> list[str]:
    """hash:ip members: an address, a range a-b or a CIDR (each address one member)."""
    if "-" in text:
        first, _, last = text.partition("-")
        low, high = _ip(first), _ip(last)
    elif "/" in text:
        addr, _, bits_text = text.partition("/")
        if not bits_text.isdigit() or not 1 <= int(bits_text) <= 32:
            raise _error(f"Syntax error: '{bits_text}' is out of range 1-32")
        low = _ip(addr) & prefix_mask(int(bits_text))
        high = low | (~prefix_mask(int(bits_text)) & 0xFFFFFFFF)
    else:
        return [int_to_ip(_ip(text))]
    if high - low > 65535:
        raise _error("Syntax error: Too many elements in the range")
    return [int_to_ip(v) for v in range(low, high + 1)]


def _port(text: str, proto_default: str = "tcp") -> str:
    proto, colon, port = text.rpartition(":")
    proto = proto if colon else proto_default
    if proto not in PORT_PROTOS:
        raise _error(f"Syntax error: cannot parse '{text}' as a port")
    if not port.isdigit() or int(port) > 65535:
        raise _error(f"Syntax error: cannot parse '{port}' as a port")
    return f"{proto}:{int(port)}"


def normalise(ipset: IpSet, entry: str) -> list[str]:
    """The members ``ipset add`` would store for ``entry``."""
    kind = ipset.type
    parts = entry.split(",")
    dims = kind.partition(":")[2].split(",")
    if kind == "list:set":
        return [entry]
    if kind == "bitmap:port":
        low_text, dash, high_text = entry.partition("-")
        if not low_text.isdigit() or (dash and not high_text.isdigit()):
            raise _error(f"Syntax error: cannot parse '{entry}' as a port")
        low = int(low_text)
        high = int(high_text) if dash else low
        return [str(p) for p in range(low, high + 1)]
    if len(parts) != len(dims):
        raise _error("Syntax error: Missing second mandatory argument to command add")
    choices: list[list[str]] = []
    for dim, part in zip(dims, parts):
        if dim == "ip":
            choices.append(_ips(part) if kind == "hash:ip" or dim == "ip" else [part])
        elif dim == "net":
            choices.append(_net(part))
        elif dim == "port":
            choices.append([_port(part)])
        else:
            choices.append([part])
    out = [""]
    for options in choices:
        out = [f"{prefix},{o}" if prefix else o for prefix in out for o in options]
    return out


def contains(ipset: IpSet, values: tuple[str, ...]) -> bool:
    """Membership of one value per dimension (an address, or ``proto:port``)."""
    dims = ipset.type.partition(":")[2].split(",")
    if len(values) < len(dims):
        return False
    for member in ipset.members:
        parts = member.split(",")
        if all(_part_matches(dim, part, value) for dim, part, value in zip(dims, parts, values)):
            return True
    return False


def _part_matches(dim: str, part: str, value: str) -> bool:
    if dim in ("ip", "net"):
        ip = numeric_ip(value) if value.count(".") == 3 else None
        if ip is None:
            return False
        addr, _, bits = part.partition("/")
        mask = prefix_mask(int(bits)) if bits else 0xFFFFFFFF
        return (ip & mask) == (numeric_ip(addr) or 0) & mask
    if dim == "port":
        return part == value or part == value.rpartition(":")[2]
    return part == value


# --- changes (the Ipset Op) ----------------------------------------------------------------------

def references(ns: Any, name: str) -> int:
    """Rules that use the set (-m set --match-set NAME), as "References:" counts them."""
    needle = f"--match-set {name} "
    return sum(body.count(needle) for table in ns.tables.values()
               for chain in table.chains.values() for body in chain.rules)


def _need(ns: Any, name: str | None) -> IpSet:
    ipset = ns.ipsets.get(name) if name is not None else None
    if ipset is None:
        raise _error("The set with the given name does not exist")
    return ipset


def apply_ipset(ns: Any, args: tuple[str, ...] | list[str]) -> None:
    """Apply one ipset change to ``ns.ipsets``; raises CommandError and changes nothing on
    refusal."""
    cmd = parse_ipset(list(args))
    sets = ns.ipsets
    if cmd.kind == "create":
        if cmd.name in sets:
            if cmd.exist and sets[cmd.name].type == cmd.type:
                return
            raise _error("Set cannot be created: set with the same name already exists")
        if len(cmd.name or "") > 31:
            raise _error("Syntax error: setname '%s' is longer than 31 characters" % cmd.name)
        sets[cmd.name] = IpSet(type=cmd.type, options=" ".join(cmd.options))
    elif cmd.kind == "add":
        ipset = _need(ns, cmd.name)
        members = normalise(ipset, cmd.entry or "")
        if ipset.type == "list:set":
            for member in members:
                if member not in sets:
                    raise _error("Set to be added/deleted/tested as element does not exist.")
        fresh = [m for m in members if m not in ipset.members]
        if len(fresh) < len(members) and not cmd.exist:
            raise _error("Element cannot be added to the set: it's already added")
        ipset.members.extend(dict.fromkeys(fresh))
    elif cmd.kind == "del":
        ipset = _need(ns, cmd.name)
        members = normalise(ipset, cmd.entry or "")
        missing = [m for m in members if m not in ipset.members]
        if missing and not cmd.exist:
            raise _error("Element cannot be deleted from the set: it's not added")
        ipset.members[:] = [m for m in ipset.members if m not in members]
    elif cmd.kind == "flush":
        for ipset in ([_need(ns, cmd.name)] if cmd.name else list(sets.values())):
            ipset.members.clear()
    elif cmd.kind == "destroy":
        names = [cmd.name] if cmd.name else list(sets)
        if cmd.name:
            _need(ns, cmd.name)
        for name in names:
            if references(ns, name) or any(name in s.members for s in sets.values()
                                           if s.type == "list:set"):
                raise _error("Set cannot be destroyed: it is in use by a kernel component")
        for name in names:
            del sets[name]
    elif cmd.kind == "rename":
        _need(ns, cmd.name)
        if cmd.other in sets:
            raise _error("Set cannot be renamed: a set with the new name already exists")
        if references(ns, cmd.name or ""):
            raise _error("Set cannot be renamed: it is in use by a kernel component")
        ns.ipsets = {(cmd.other if k == cmd.name else k): v for k, v in sets.items()}
    elif cmd.kind == "swap":
        a, b = _need(ns, cmd.name), _need(ns, cmd.other)
        if a.type != b.type:
            raise _error("Sets cannot be swapped: their type does not match")
        sets[cmd.name], sets[cmd.other] = b, a
    else:
        raise CommandError(f"ipset {cmd.kind} is not a change", status=2)


# --- printing -----------------------------------------------------------------------------------

def _header(ipset: IpSet) -> str:
    if ipset.type.startswith("bitmap:"):
        words = ipset.options.split()
        if "range" in words and words.index("range") + 1 < len(words):
            return f"range {words[words.index('range') + 1]}"
        return ""
    if ipset.type == "list:set":
        return "size 8"
    opts = dict(zip(ipset.options.split()[::2], ipset.options.split()[1::2]))
    return (f"family {opts.get('family', 'inet')} hashsize {opts.get('hashsize', '1024')} "
            f"maxelem {opts.get('maxelem', '65536')} bucketsize 12 initval 0x00000000")


def _memory(ipset: IpSet) -> int:
    if ipset.type.startswith("bitmap:"):
        return 208
    per = {"hash:net": 48, "hash:net,port": 48}.get(ipset.type, 40)
    return 456 + per * len(ipset.members) if ipset.type == "hash:net" else \
        240 + per * len(ipset.members)


def list_sets(ns: Any, name: str | None, *, names_only: bool = False, terse: bool = False,
              save_format: bool = False) -> str:
    """``ipset list [NAME] [-n] [-t] [-o save]``."""
    if save_format:
        return save_sets(ns, name)
    names = [name] if name is not None else list(ns.ipsets)
    if name is not None:
        _need(ns, name)
    if names_only:
        return "".join(n + "\n" for n in names)
    blocks = []
    for n in names:
        ipset = ns.ipsets[n]
        lines = [f"Name: {n}", f"Type: {ipset.type}", f"Revision: {TYPES.get(ipset.type, 1)}",
                 f"Header: {_header(ipset)}", f"Size in memory: {_memory(ipset)}",
                 f"References: {references(ns, n)}", f"Number of entries: {len(ipset.members)}"]
        if not terse:
            lines.append("Members:")
            lines += ipset.members
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def save_sets(ns: Any, name: str | None) -> str:
    """``ipset save [NAME]``."""
    if name is not None:
        _need(ns, name)
    out = []
    for n in [name] if name is not None else list(ns.ipsets):
        ipset = ns.ipsets[n]
        header = _header(ipset)
        out.append(f"create {n} {ipset.type}" + (f" {header}" if header else "") + "\n")
        out += [f"add {n} {m}\n" for m in ipset.members]
    return "".join(out)


def test_member(ns: Any, name: str, entry: str) -> bool:
    ipset = _need(ns, name)
    members = normalise(ipset, entry)
    return all(m in ipset.members or _covered(ipset, m) for m in members)


def _covered(ipset: IpSet, member: str) -> bool:
    if ipset.type in ("hash:net", "hash:net,port"):
        values = tuple(p.partition("/")[0] if i == 0 else p
                       for i, p in enumerate(member.split(",")))
        return contains(ipset, values)
    return False


def describe_mask(bits: int) -> str:
    return f"/{mask_bits(prefix_mask(bits))}"
