"""The iptables rule language: read a command line as iptables 1.8.9 (nf_tables)
reads it, print a rule as iptables-save prints it, and the parsed form the
dataplane evaluates.

    inv = parse_args(["-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "ACCEPT"])
    inv.rules()[0].body()            # '-p tcp -m tcp --dport 80 -j ACCEPT'
    rule = parse_rule('-p tcp -m tcp --dport 80 -j ACCEPT')    # ParsedRule (cached)
    builtin_matches(rule, view); rule.matches[0].evaluate(view); rule.target.apply(view)

The argument loop follows iptables' do_parse(): getopt_long over the base
options and the options of every loaded extension (the newest first, unique
prefixes allowed), ``!`` before an option inverts it, an option nobody knows
loads the protocol's match (``-p tcp --dport 80`` loads ``-m tcp``), and the
checks after the loop come in iptables' order, with its words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from netlab.netfilter import matches as _matches  # noqa: F401  (registers the matches)
from netlab.netfilter import netdb
from netlab.netfilter import patterns as _patterns
from netlab.netfilter import targets as _targets  # noqa: F401  (registers the targets)
from netlab.netfilter.errors import KernelError, XtError, invalid_argument
from netlab.netfilter.types import Action, PacketView
from netlab.netfilter.values import (
    CHAIN_MAX, iface_matches, ip_to_int, mask_bits, parse_addresses, parse_iface,
    show_network, strtoui,
)
from netlab.netfilter.xt import (
    KNOWN_MATCHES, KNOWN_TARGETS, MATCHES, TARGETS, Ctx, Ext, Opt,
)


class NotModelled(Exception):
    """A real iptables feature netlab does not model (turned into UnsupportedCommand)."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


# --- protocols -----------------------------------------------------------------------------

CHAIN_PROTOS = {"tcp": 6, "sctp": 132, "udp": 17, "udplite": 136, "icmp": 1, "icmpv6": 58,
                "esp": 50, "ah": 51, "mh": 135, "all": 0}
_PROTO_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17}


def parse_protocol(text: str) -> int:
    """xtables_parse_protocol (the text already lower-cased, as iptables does)."""
    value = strtoui(text, 0, 255)
    if value is not None:
        return value
    if text == "all":
        return 0
    number = netdb.PROTOCOL_NUMBERS.get(text)
    if number is None:
        number = CHAIN_PROTOS.get(text)
    if number is None:
        raise XtError(f'unknown protocol "{text}" specified')
    return number


def protocol_name(number: int) -> str | None:
    """proto_to_name(number, 0): the /etc/protocols name, else xtables' own table."""
    name = netdb.PROTOCOL_NAMES.get(number) if number else None
    if name is None:
        for key, value in CHAIN_PROTOS.items():
            if value == number:
                return key
    return name


def protocol_number(name: str | None) -> int | None:
    if name is None:
        return None
    return _PROTO_NUMBERS.get(name, netdb.PROTOCOL_NUMBERS.get(name))


# --- the base options (iptables' original_opts) ---------------------------------------------

class _Base(NamedTuple):
    name: str
    letter: str
    arg: int            # 0 none, 1 required, 2 optional


BASE_OPTIONS = tuple(_Base(*o) for o in (
    ("append", "A", 1), ("delete", "D", 1), ("check", "C", 1), ("insert", "I", 1),
    ("replace", "R", 1), ("list", "L", 2), ("list-rules", "S", 2), ("flush", "F", 2),
    ("zero", "Z", 2), ("new-chain", "N", 1), ("delete-chain", "X", 2),
    ("rename-chain", "E", 1), ("policy", "P", 1), ("source", "s", 1), ("destination", "d", 1),
    ("src", "s", 1), ("dst", "d", 1), ("protocol", "p", 1), ("in-interface", "i", 1),
    ("jump", "j", 1), ("table", "t", 1), ("match", "m", 1), ("numeric", "n", 0),
    ("out-interface", "o", 1), ("verbose", "v", 0), ("wait", "w", 2), ("wait-interval", "W", 2),
    ("exact", "x", 0), ("fragments", "f", 0), ("version", "V", 0), ("help", "h", 2),
    ("line-numbers", "0", 0), ("modprobe", "M", 1), ("set-counters", "c", 1), ("goto", "g", 1),
    ("ipv4", "4", 0), ("ipv6", "6", 0)))
_BASE_BY_NAME = {b.name: b for b in BASE_OPTIONS}
SHORT = {"A": 1, "C": 1, "D": 1, "R": 1, "I": 1, "L": 2, "S": 2, "M": 1, "F": 2, "Z": 2,
         "N": 1, "X": 2, "E": 1, "P": 1, "V": 0, "h": 2, "o": 1, "p": 1, "s": 1, "d": 1,
         "j": 1, "i": 1, "f": 0, "b": 0, "v": 0, "w": 2, "W": 2, "n": 0, "t": 1, "m": 1,
         "x": 0, "c": 1, "g": 1, "4": 0, "6": 0}
COMMANDS = "ACDRILSFZNXEP"
# Options that may be inverted, and the letter iptables names in its messages.
INVERTIBLE = frozenset("sdpiof")
OPT_LETTERS = "nsdpjvxio0cf"
# commands_v_options: x = illegal (for n s d p j v x i o --line-numbers c f).
_ADD = "x     x  x  "
_NONE = "xxxxx xxxxxx"
LEGAL = {"I": _ADD, "R": _ADD, "A": _ADD, "D": "x     x  xx ", "C": "x     x  xx ",
         "D#": _NONE, "L": " xxxx  xx xx", "F": _NONE, "Z": _NONE, "Z#": _NONE, "N": _NONE,
         "X": _NONE, "P": "xxxxx xxxx x", "E": _NONE, "S": _NONE}


# --- what was read -------------------------------------------------------------------------

@dataclass
class ExtUse:
    """One loaded extension in a rule, with the state its options left."""
    ext: Ext
    state: dict[str, Any] = field(default_factory=dict)
    implicit: bool = False


@dataclass
class RuleSpec:
    """A rule as read: the built-in matches, the extensions, the target."""
    src: tuple[int, int] | None = None          # (network, mask)
    src_neg: bool = False
    dst: tuple[int, int] | None = None
    dst_neg: bool = False
    proto: int | None = None
    proto_neg: bool = False
    in_iface: str | None = None
    in_neg: bool = False
    out_iface: str | None = None
    out_neg: bool = False
    frag: bool = False
    frag_neg: bool = False
    matches: list[ExtUse] = field(default_factory=list)
    target: ExtUse | None = None                # an extension target (ACCEPT, DNAT, …)
    jump: str | None = None                     # a chain (-j CHAIN / -g CHAIN)
    goto: bool = False
    counters: tuple[int, int] | None = None
    slots: list[tuple[int, Opt]] = field(default_factory=list)   # for the restore fast path

    def copy_with(self, src: tuple[int, int] | None, dst: tuple[int, int] | None) -> "RuleSpec":
        out = RuleSpec(**{**self.__dict__})
        out.src, out.dst = src, dst
        return out

    def target_name(self) -> str | None:
        if self.target is not None:
            return self.target.ext.name
        return self.jump

    def body(self, counters: bool = False) -> str:
        """The rule as iptables-save prints it after ``-A CHAIN``."""
        parts = []
        if self.src is not None and (self.src[1] or self.src_neg):
            parts.append(("! " if self.src_neg else "") + "-s " + show_network(*self.src))
        if self.dst is not None and (self.dst[1] or self.dst_neg):
            parts.append(("! " if self.dst_neg else "") + "-d " + show_network(*self.dst))
        if self.in_iface is not None and self.in_iface != "+":
            parts.append(("! " if self.in_neg else "") + "-i " + self.in_iface)
        if self.out_iface is not None and self.out_iface != "+":
            parts.append(("! " if self.out_neg else "") + "-o " + self.out_iface)
        if self.proto:
            name = protocol_name(self.proto) or str(self.proto)
            parts.append(("! " if self.proto_neg else "") + "-p " + name)
        if self.frag:
            parts.append("! -f" if self.frag_neg else "-f")
        for use in self.matches:
            if use.ext.vanishes(use.state):
                continue
            parts.append(f"-m {use.ext.save_name(use.state)}{use.ext.save(use.state)}")
        if counters and self.counters is not None:
            parts.append(f"-c {self.counters[0]} {self.counters[1]}")
        if self.target is not None:
            parts.append(f"-j {self.target.ext.name}{self.target.ext.save(self.target.state)}")
        elif self.jump is not None:
            parts.append(f"-{'g' if self.goto else 'j'} {self.jump}")
        return " ".join(parts)


@dataclass
class Invocation:
    """One iptables command line, read."""
    command: str | None = None          # A C D D# R I L S F Z Z# N X E P, or V / h
    chain: str | None = None
    rulenum: int | None = None
    newname: str | None = None          # -E
    policy: str | None = None           # -P
    table: str | None = None
    numeric: bool = False
    verbose: bool = False
    exact: bool = False
    line_numbers: bool = False
    also_zero: bool = False             # -L -Z
    spec: RuleSpec = field(default_factory=RuleSpec)
    srcs: list[tuple[int, int]] = field(default_factory=list)
    dsts: list[tuple[int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)       # what the tool printed on stderr

    @property
    def table_name(self) -> str:
        return self.table or "filter"

    def rules(self) -> list[RuleSpec]:
        """The rules this command stands for: one per source x destination address."""
        srcs = self.srcs or [None]
        dsts = self.dsts or [None]
        return [self.spec.copy_with(s, d) for s in srcs for d in dsts]


# --- reading the arguments --------------------------------------------------------------------

def xt_parse_target(name: str) -> str:
    if len(name) < 1:
        raise XtError("Invalid target name (too short)")
    if len(name) > CHAIN_MAX:
        raise XtError(f"Invalid target name `{name}' ({CHAIN_MAX} chars max)")
    if any(c.isspace() for c in name):
        raise XtError(f"Invalid target name `{name}'")
    return name


def parse_rulenumber(text: str) -> int:
    value = strtoui(text, 1, 2**31 - 1)
    if value is None:
        raise XtError(f"Invalid rule number `{text}'")
    return value


class _Reader:
    """State of one argument loop (iptables' do_parse)."""

    def __init__(self, argv: list[str], restore: bool):
        self.argv = argv
        self.i = 0
        self.restore = restore
        self.inv = Invocation()
        self.spec = self.inv.spec
        self.options: set[str] = set()          # letters of set_option()
        self.invert = False
        self.loaded: list[ExtUse] = []          # matches and target, in load order
        self.proto_used = False
        self.src_text: str | None = None
        self.dst_text: str | None = None
        self.ctx = Ctx()

    # --- helpers -------------------------------------------------------------------------
    def has_next_value(self) -> bool:
        return self.i < len(self.argv) and not self.argv[self.i].startswith("-") \
            and not self.argv[self.i].startswith("!")

    def set_option(self, letter: str) -> None:
        if letter in self.options:
            raise XtError(f"multiple -{letter} flags not allowed")
        if self.invert and letter not in INVERTIBLE:
            raise XtError(f"cannot have ! before -{letter}")
        self.options.add(letter)

    def add_command(self, letter: str) -> None:
        if self.invert:
            raise XtError("unexpected '!' flag")
        current = self.inv.command
        if current is not None:
            if {current.rstrip("#"), letter} == {"L", "Z"}:
                self.inv.also_zero = True
                return
            raise XtError(f"Cannot use -{letter} with -{current.rstrip('#')}")
        self.inv.command = letter

    # --- the loop --------------------------------------------------------------------------
    def run(self) -> Invocation:
        argv = self.argv
        while self.i < len(argv):
            word = argv[self.i]
            self.i += 1
            if word == "!":
                if self.invert:
                    raise XtError("multiple consecutive ! not allowed")
                self.invert = True
                continue
            if word.startswith("--") and len(word) > 2:
                self.long_option(word)
            elif word.startswith("-") and len(word) > 1:
                self.short_cluster(word)
            else:
                raise XtError(f"Bad argument `{word}'", bare=True)
        return self.inv

    def short_cluster(self, word: str) -> None:
        j = 1
        while j < len(word):
            letter = word[j]
            j += 1
            kind = SHORT.get(letter)
            if kind is None:
                self.unknown(word)
                return
            value = None
            if kind == 1:
                if j < len(word):
                    value = word[j:]
                elif self.i < len(self.argv):
                    value = self.argv[self.i]
                    self.i += 1
                else:
                    raise XtError(f'option "-{letter}" requires an argument')
                j = len(word)
            elif kind == 2 and j < len(word):
                value = word[j:]
                j = len(word)
            self.base(letter, value)

    def long_option(self, word: str) -> None:
        name, eq, attached = word[2:].partition("=")
        found = self.resolve_long(name)
        if found is None:
            self.unknown(word)
            return
        if isinstance(found, _Base):
            value = attached if eq else None
            if found.arg == 1 and not eq:
                if self.i >= len(self.argv):
                    raise XtError(f'option "{word}" requires an argument')
                value = self.argv[self.i]
                self.i += 1
            self.base(found.letter, value)
            return
        use, opt = found
        value = attached if eq else None
        if opt.takes_arg and not eq:
            if self.i >= len(self.argv):
                raise XtError(f'option "{word}" requires an argument')
            value = self.argv[self.i]
            self.i += 1
        if opt.name in getattr(use.ext, "two_arg_options", ()):
            if self.i >= len(self.argv) or self.argv[self.i][:1] in ("-", "!"):
                raise XtError(f"--{opt.name} requires two args.")
            value = (value, self.argv[self.i])
            self.i += 1
        self.ext_option(use, opt, value)

    def resolve_long(self, name: str):
        """getopt_long: an exact name, else a unique prefix (base options first, then the
        extensions, newest first)."""
        base = _BASE_BY_NAME.get(name)
        if base is not None:
            return base
        for use in reversed(self.loaded):
            opt = use.ext.lookup(name)
            if opt is not None:
                return use, opt
        candidates: list[tuple[str, Any, Any]] = []
        for base in BASE_OPTIONS:
            candidates.append((base.name, ("base", base.letter), base))
        for use in reversed(self.loaded):
            for opt in use.ext.options:
                candidates.append((opt.name, (id(use), opt.id), (use, opt)))
        for cand_name, _key, item in candidates:
            if cand_name == name:
                return item
        found = None
        found_key = None
        for cand_name, key, item in candidates:
            if name and cand_name.startswith(name):
                if found is None:
                    found, found_key = item, key
                elif key != found_key:
                    return None             # ambiguous: getopt says '?'
        return found

    def unknown(self, word: str) -> None:
        """An option nobody claims: load the protocol's match and read it again."""
        if self.spec.proto is not None and not self.proto_used:
            name = protocol_name(self.spec.proto) if self.spec.proto else None
            ext = MATCHES.get(name) if name else None
            if name in KNOWN_MATCHES and ext is None and name != "all":
                raise NotModelled(f"-m {name}")
            if ext is not None:
                self.proto_used = True
                use = ExtUse(ext, ext.new_state(), implicit=True)
                self.spec.matches.append(use)
                self.loaded.append(use)
                self.i -= 1
                return
        raise XtError(f'unknown option "{word}"')

    def ext_option(self, use: ExtUse, opt: Opt, value: Any) -> None:
        self.ctx.proto, self.ctx.proto_neg = self.spec.proto, self.spec.proto_neg
        index = self.i - 1
        use.ext.parse(use.state, opt, value, self.invert, self.ctx)
        if opt.takes_arg and not isinstance(value, tuple):
            self.spec.slots.append((index, opt))
        elif isinstance(value, tuple) and opt.pattern is not None:
            self.spec.slots.append((index - 1, _TwoWords(opt)))  # type: ignore[arg-type]
        self.invert = False

    def base(self, letter: str, value: str | None) -> None:
        inv, spec = self.inv, self.spec
        index = self.i - 1
        if letter in COMMANDS:
            self.command(letter, value)
        elif letter in "sd":
            self.set_option(letter)
            if letter == "s":
                self.src_text, spec.src_neg = value, self.invert
            else:
                self.dst_text, spec.dst_neg = value, self.invert
            self.spec.slots.append((index, _ADDR))
        elif letter == "p":
            self.set_option("p")
            spec.proto = parse_protocol((value or "").lower())
            spec.proto_neg = self.invert
            if spec.proto == 0 and self.invert:
                raise XtError("rule would never match protocol")
        elif letter in "io":
            self.set_option(letter)
            iface = parse_iface(value or "")
            if letter == "i":
                spec.in_iface, spec.in_neg = iface, self.invert
            else:
                spec.out_iface, spec.out_neg = iface, self.invert
            self.spec.slots.append((index, _IFACE))
        elif letter == "f":
            self.set_option("f")
            spec.frag, spec.frag_neg = True, self.invert
        elif letter == "j":
            self.set_option("j")
            name = xt_parse_target(value or "")
            ext = TARGETS.get(name)
            if ext is not None:
                use = ExtUse(ext, ext.new_state())
                spec.target = use
                self.loaded.append(use)
            elif name in KNOWN_TARGETS:
                raise NotModelled(f"-j {name}")
            else:
                spec.jump = name
                self.spec.slots.append((index, _CHAIN))
        elif letter == "g":
            self.set_option("j")
            spec.jump, spec.goto = xt_parse_target(value or ""), True
            self.spec.slots.append((index, _CHAIN))
        elif letter == "m":
            if self.invert:
                raise XtError("unexpected ! flag before --match")
            name = value or ""
            ext = MATCHES.get(name)
            if ext is None:
                if name in KNOWN_MATCHES:
                    raise NotModelled(f"-m {name}")
                raise XtError(f"Couldn't load match `{name}':No such file or directory")
            use = ExtUse(ext, ext.new_state())
            spec.matches.append(use)
            self.loaded.append(use)
        elif letter == "t":
            if self.invert:
                raise XtError("unexpected ! flag before --table")
            if self.restore:
                raise XtError("The -t option cannot be used in iptables-restore.")
            inv.table = value
        elif letter == "c":
            self.set_option("c")
            self.counters(value or "")
        elif letter in "nvx0":
            if letter == "v" and "v" in self.options:
                pass
            else:
                self.set_option(letter)
            if letter == "n":
                inv.numeric = True
            elif letter == "v":
                inv.verbose = True
            elif letter == "x":
                inv.exact = True
            else:
                inv.line_numbers = True
        elif letter in "wW":
            if value is None and self.i < len(self.argv) and self.argv[self.i].isdigit():
                self.i += 1
        elif letter == "V":
            inv.command = inv.command or "V"
        elif letter == "h":
            inv.command = "h"
        elif letter in "M4b":
            pass
        elif letter == "6":
            raise XtError("This is the IPv4 version of iptables.")
        self.invert = False

    def command(self, letter: str, value: str | None) -> None:
        inv = self.inv
        self.add_command(letter)
        if inv.also_zero and letter in "LZ":
            if letter == "Z" and value is None and self.has_next_value():
                self.i += 1
            return
        if letter in "ACDRINE P":
            inv.chain = value
        if letter == "D" and self.has_next_value():
            inv.rulenum = parse_rulenumber(self.argv[self.i])
            self.i += 1
            inv.command = "D#"
        elif letter == "R":
            if not self.has_next_value():
                raise XtError("-R requires a rule number")
            inv.rulenum = parse_rulenumber(self.argv[self.i])
            self.i += 1
        elif letter == "I":
            inv.rulenum = 1
            if self.has_next_value():
                inv.rulenum = parse_rulenumber(self.argv[self.i])
                self.i += 1
        elif letter in "LSZFX":
            if value is not None:
                inv.chain = value
            elif self.has_next_value():
                inv.chain = self.argv[self.i]
                self.i += 1
            if letter in "LSZ" and self.has_next_value():
                inv.rulenum = parse_rulenumber(self.argv[self.i])
                self.i += 1
                if letter == "Z":
                    inv.command = "Z#"
        elif letter == "E":
            if not self.has_next_value():
                raise XtError("-E requires old-chain-name and new-chain-name")
            inv.newname = self.argv[self.i]
            self.i += 1
        elif letter == "P":
            if not self.has_next_value():
                raise XtError("-P requires a chain and a policy")
            inv.policy = self.argv[self.i]
            self.i += 1

    def counters(self, first: str) -> None:
        packets_text, comma, bytes_text = first.partition(",")
        if not comma:
            if self.i < len(self.argv) and self.argv[self.i][:1] not in ("-", "!"):
                bytes_text = self.argv[self.i]
                self.i += 1
            else:
                raise XtError("-c requires packet and byte counter")
        if not packets_text.isdigit():
            raise XtError("-c packet counter not numeric")
        if not bytes_text.isdigit():
            raise XtError("-c byte counter not numeric")
        self.spec.counters = (int(packets_text), int(bytes_text))

    # --- after the loop ------------------------------------------------------------------
    def finish(self) -> Invocation:
        inv, spec = self.inv, self.spec
        if inv.command in ("V", "h"):
            return inv
        self.ctx.proto, self.ctx.proto_neg = spec.proto, spec.proto_neg
        self.ctx.table = inv.table_name
        if inv.table_name == "nat" and (inv.policy == "DROP" or
                                        (spec.target is not None and
                                         spec.target.ext.name == "DROP")):
            raise XtError('The "nat" table is not intended for filtering, the use of DROP is '
                          'therefore inhibited.')
        for use in self.loaded:
            use.ext.final(use.state, self.ctx)
            use.ext.check_options(use.state)
        if inv.command is None:
            raise XtError("no command specified")
        if self.invert:
            raise XtError("nothing appropriate following !")
        if inv.command in ("A", "C", "D", "R", "I"):
            inv.srcs = parse_addresses(self.src_text if self.src_text is not None else "0.0.0.0/0")
            inv.dsts = parse_addresses(self.dst_text if self.dst_text is not None else "0.0.0.0/0")
            if (len(inv.srcs) > 1 or len(inv.dsts) > 1) and (spec.src_neg or spec.dst_neg):
                raise XtError("! not allowed with multiple source or destination IP addresses")
            if inv.command == "R" and (len(inv.srcs) != 1 or len(inv.dsts) != 1):
                raise XtError("Replacement rule does not specify a unique address")
        self.check_options(inv.command)
        if inv.chain is not None and len(inv.chain) > CHAIN_MAX:
            raise XtError(f"chain name `{inv.chain}' too long (must be under {CHAIN_MAX + 1} "
                          f"chars)")
        if inv.command in ("A", "I", "R", "D", "C"):
            if inv.chain in ("PREROUTING", "INPUT") and "o" in self.options:
                raise XtError(f"Can't use -o with {inv.chain}")
            if inv.chain in ("POSTROUTING", "OUTPUT") and "i" in self.options:
                raise XtError(f"Can't use -i with {inv.chain}")
        inv.notes = self.ctx.notes
        return inv

    def check_options(self, command: str) -> None:
        legal = LEGAL.get(command)
        if legal is None:
            return
        for index, letter in enumerate(OPT_LETTERS):
            if letter in self.options and index < len(legal) and legal[index] == "x":
                shown = "--line-numbers" if letter == "0" else f"-{letter}"
                raise XtError(f"Illegal option `{shown}' with this command")


class _TwoWords:
    """A fast-path slot for a two-word option value (``--match-set NAME FLAGS``)."""

    def __init__(self, opt: Opt):
        self.opt = opt
        self.id = opt.id
        self.name = opt.name
        self.pattern = opt.pattern
        self.post = opt.post


def chain_name_ok(name: str) -> bool:
    return (0 < len(name) <= CHAIN_MAX and not name.startswith("-") and name != "!"
            and not any(c.isspace() or c in '"\\\'' for c in name))


_ADDR = Opt("source", "addr", lambda text, ctx: text, pattern=_patterns.cidr)
_IFACE = Opt("in-interface", "iface", lambda text, ctx: text)
_CHAIN = Opt("jump", "chain", lambda text, ctx: text, pattern=_patterns.chain,
             post=_patterns.chain_ok)


def parse_args(argv: list[str], *, restore: bool = False, table: str | None = None
               ) -> Invocation:
    """Read one iptables command line (the words after ``iptables``; for a line of an
    iptables-restore file, ``table`` is its section). Raises XtError / NotModelled; makes
    no use of any World."""
    reader = _Reader(list(argv), restore)
    reader.inv.table = table
    try:
        reader.run()
        return reader.finish()
    except XtError as exc:
        if reader.ctx.notes:        # warnings the tool printed before the error
            exc.message = " ".join(reader.ctx.notes + [exc.for_iptables()])
            exc.bare = True
        raise


# --- the rule as the dataplane sees it --------------------------------------------------------

class Option(NamedTuple):
    """One option of a match or target as iptables-save prints it: ``--dport 80`` is
    Option("dport", "80", False); an option without value has value ""."""
    name: str
    value: str
    negated: bool = False


def _options_of(text: str) -> tuple[Option, ...]:
    """Options from the printed form (`` ! --dport 80 --tcp-flags SYN,RST SYN``)."""
    words = tokenize_restore(text.strip())
    out: list[Option] = []
    negated = False
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "!":
            negated = True
            continue
        if word.startswith("--"):
            values = []
            while i < len(words) and not words[i].startswith("--") and words[i] != "!":
                values.append(words[i])
                i += 1
            out.append(Option(word[2:], " ".join(values), negated))
            negated = False
    return tuple(out)


@dataclass(frozen=True)
class MatchCall:
    module: str
    options: tuple[Option, ...]
    ext: Ext = field(compare=False, repr=False, default=None)  # type: ignore[assignment]
    data: Any = field(compare=False, repr=False, default=None)

    def evaluate(self, view: PacketView) -> bool | float:
        return self.ext.evaluate(self.data, view)

    @property
    def note(self) -> str | None:
        """A sentence for the trace when the model only approximates this match."""
        return self.ext.explain(self.data)

    def option(self, name: str) -> Option | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None


@dataclass(frozen=True)
class TargetCall:
    name: str                       # ACCEPT, DNAT, … or the chain jumped to
    options: tuple[Option, ...] = ()
    goto: bool = False
    ext: Ext | None = field(compare=False, repr=False, default=None)
    data: Any = field(compare=False, repr=False, default=None)

    def apply(self, view: PacketView) -> Action:
        if self.ext is None:
            return Action("goto" if self.goto else "jump", chain=self.name)
        return self.ext.apply(self.data, view)

    @property
    def is_chain(self) -> bool:
        return self.ext is None


@dataclass(frozen=True)
class ParsedRule:
    text: str                                   # canonical body (after "-A CHAIN ")
    src: tuple[int, int] | None = None          # (network, prefix length)
    src_neg: bool = False
    dst: tuple[int, int] | None = None
    dst_neg: bool = False
    proto: str | None = None                    # tcp | udp | icmp | … | number as text
    proto_neg: bool = False
    in_iface: str | None = None
    in_neg: bool = False
    out_iface: str | None = None
    out_neg: bool = False
    matches: tuple[MatchCall, ...] = ()
    target: TargetCall | None = None
    goto: bool = False
    src_mask: int = 0                           # the masks themselves (a mask need not
    dst_mask: int = 0                           #  be a prefix: 255.0.255.0)
    frag: bool = False                          # -f (never matches a traced packet)
    frag_neg: bool = False

    def match_options(self, module: str) -> dict[str, tuple[str, bool]] | None:
        for m in self.matches:
            if m.module == module:
                return {o.name: (o.value, o.negated) for o in m.options}
        return None


def _net(value: tuple[int, int] | None) -> tuple[int, int] | None:
    if value is None or value[1] == 0:
        return None
    network, mask = value
    bits = mask_bits(mask)
    return network, bits if bits is not None else bin(mask).count("1")


def to_parsed(spec: RuleSpec, body: str) -> ParsedRule:
    matches = []
    for use in spec.matches:
        if use.ext.vanishes(use.state):
            continue
        matches.append(MatchCall(use.ext.save_name(use.state),
                                 _options_of(use.ext.save(use.state)), use.ext,
                                 use.ext.freeze(use.state)))
    target = None
    if spec.target is not None:
        ext = spec.target.ext
        target = TargetCall(ext.name, _options_of(ext.save(spec.target.state)), False, ext,
                            ext.freeze(spec.target.state))
    elif spec.jump is not None:
        target = TargetCall(spec.jump, (), spec.goto)
    src = spec.src if spec.src is not None and (spec.src[1] or spec.src_neg) else None
    dst = spec.dst if spec.dst is not None and (spec.dst[1] or spec.dst_neg) else None
    return ParsedRule(
        text=body, src=_net(src), src_neg=spec.src_neg and src is not None,
        dst=_net(dst), dst_neg=spec.dst_neg and dst is not None,
        proto=(protocol_name(spec.proto) or str(spec.proto)) if spec.proto else None,
        proto_neg=spec.proto_neg and bool(spec.proto),
        in_iface=spec.in_iface if spec.in_iface not in (None, "+") else None,
        in_neg=spec.in_neg and spec.in_iface not in (None, "+"),
        out_iface=spec.out_iface if spec.out_iface not in (None, "+") else None,
        out_neg=spec.out_neg and spec.out_iface not in (None, "+"),
        matches=tuple(matches), target=target, goto=spec.goto,
        src_mask=src[1] if src else 0, dst_mask=dst[1] if dst else 0,
        frag=spec.frag, frag_neg=spec.frag_neg)


def spec_of(body: str) -> RuleSpec:
    """A stored (canonical) rule body read back into a RuleSpec."""
    inv = parse_args(["-A", "X", *tokenize_restore(body)], restore=True)
    return inv.rules()[0]


@lru_cache(maxsize=262144)
def parse_rule(body: str) -> ParsedRule:
    """The stored text of a rule (what iptables-save prints after ``-A CHAIN``), parsed.
    Raises CommandError for text that is not a rule."""
    from netlab.errors import CommandError, UnsupportedCommand
    try:
        spec = spec_of(body)
    except XtError as exc:
        raise CommandError(exc.for_iptables(), status=exc.status) from None
    except NotModelled as exc:
        raise UnsupportedCommand(f"netlab does not model {exc.what}", status=2) from None
    return to_parsed(spec, body)


def builtin_matches(rule: ParsedRule, view: PacketView) -> bool:
    """-s, -d, -p, -i, -o and -f of a rule against a packet (with ``!`` and ``+``)."""
    pkt = view.packet
    if rule.src is not None:
        hit = pkt.src is not None and (ip_to_int(pkt.src) & rule.src_mask) == rule.src[0]
        if hit == rule.src_neg:
            return False
    if rule.dst is not None:
        hit = (ip_to_int(pkt.dst) & rule.dst_mask) == rule.dst[0]
        if hit == rule.dst_neg:
            return False
    if rule.proto is not None:
        hit = rule.proto == pkt.proto or (rule.proto.isdigit() and
                                          protocol_number(pkt.proto) == int(rule.proto))
        if hit == rule.proto_neg:
            return False
    if rule.in_iface is not None and iface_matches(rule.in_iface, view.in_dev) == rule.in_neg:
        return False
    if rule.out_iface is not None and \
            iface_matches(rule.out_iface, view.out_dev) == rule.out_neg:
        return False
    if rule.frag and not rule.frag_neg:
        return False        # traced packets are never non-first fragments
    return True


# --- kernel checks (nf_tables refuses these when the batch is committed) ------------------------

def kernel_check(spec: RuleSpec, table: str, chain: str, operation: str = "RULE_APPEND") -> None:
    """What the kernel refuses regardless of where the chain is hooked (exit 4)."""
    if (spec.src_neg and spec.src is not None and spec.src[1] == 0) or \
            (spec.dst_neg and spec.dst is not None and spec.dst[1] == 0):
        raise invalid_argument(chain, operation)
    if spec.jump is not None and spec.jump in ("PREROUTING", "INPUT", "FORWARD", "OUTPUT",
                                               "POSTROUTING"):
        from netlab.model.netfilter import BUILTIN_CHAINS
        if spec.jump in BUILTIN_CHAINS.get(table, ()):
            raise KernelError(operation, "Operation not supported", f"rule in chain {chain}")
    for use in spec.matches:
        if not _matches.kernel_proto_ok(use.ext, use.state, spec.proto, spec.proto_neg):
            raise invalid_argument(chain, operation)
    from netlab.model.netfilter import BUILTIN_CHAINS as _BUILTIN
    if chain in _BUILTIN.get(table, ()):
        for use in list(spec.matches) + ([spec.target] if spec.target is not None else []):
            data = use.ext.freeze(use.state)
            for hooks in (use.ext.entry_hooks(data), use.ext.allowed_hooks(data)):
                if hooks is not None and chain not in hooks:
                    raise invalid_argument(chain, operation)
    if spec.target is not None:
        ext = spec.target.ext
        if ext.tables is not None and table not in ext.tables:
            raise invalid_argument(chain, operation)
        check = getattr(ext, "kernel_ok", None)
        if check is not None and not check(spec.target.state, spec.proto, spec.proto_neg):
            errno_text = getattr(ext, "kernel_errno", "Invalid argument")
            raise KernelError(operation, errno_text, f"rule in chain {chain}")


def userspace_proto_check(spec: RuleSpec) -> None:
    """iptables-nft's "TCP match requires '-p tcp'" when it builds the rule."""
    for use in spec.matches:
        message = _matches.matches_need_proto(use.ext, use.state, spec.proto)
        if message:
            raise XtError(message)


def allowed_hooks(spec: RuleSpec) -> frozenset[str] | None:
    """The hooks this rule's extensions may run in (None: any)."""
    allowed: frozenset[str] | None = None
    uses = list(spec.matches) + ([spec.target] if spec.target is not None else [])
    for use in uses:
        hooks = use.ext.allowed_hooks(use.ext.freeze(use.state))
        if hooks is not None:
            allowed = hooks if allowed is None else allowed & hooks
    return allowed


# --- iptables-restore's tokenizer --------------------------------------------------------------

_SIMPLE_TOKEN = re.compile(r'"[^"\\\n]*"|[^\s"]+')


def tokenize_restore(line: str) -> list[str]:
    """add_param_to_argv: words split on blanks; ``"`` quotes (with ``\\`` escapes inside);
    a closing quote ends the word; ``'`` is an ordinary character."""
    out: list[str] = []
    if '"' not in line:
        return line.split()
    if "\\" not in line:
        words = _SIMPLE_TOKEN.findall(line)
        if " ".join(words) == line:         # single-spaced, quotes around whole words only
            return [w[1:-1] if w[0] == '"' else w for w in words]
    buf: list[str] = []
    quote = escaped = False
    have = False
    for ch in line + "\n" if not line.endswith("\n") else line:
        if quote:
            if escaped:
                buf.append(ch)
                escaped = False
                continue
            if ch == "\\":
                escaped = True
                continue
            if ch == '"':
                quote = False
                out.append("".join(buf))
                buf, have = [], False
                continue
            buf.append(ch)
            continue
        if ch == '"':
            quote = True
            have = True
            continue
        if ch in " \t\n":
            if buf or have:
                out.append("".join(buf))
                buf, have = [], False
            continue
        buf.append(ch)
        have = True
    if buf or (quote and have):
        out.append("".join(buf))
    return out
