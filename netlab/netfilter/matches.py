"""The ``-m`` match extensions netlab models, one registered class each.

Each reads its options as libxt_<name> does (same checks, same messages),
prints them as iptables-save and ``iptables -L`` print them, and evaluates a
packet through a PacketView: ``evaluate(data, view) -> bool | float`` (a float
p in (0, 1) means "matches with probability p").
"""

from __future__ import annotations

import re
from typing import Any

from netlab.netfilter import netdb
from netlab.netfilter.errors import XtError
from netlab.netfilter.values import (
    U32, address_name, iface_matches, int_to_ip, ip_to_int, lround, mask_bits, numeric_ip,
    parse_double, parse_ip_exact, parse_mark, parse_mask, parse_port,
    parse_port_range, port_name, prefix_mask, save_string, show_mask, show_port_range, strtoui,
)
from netlab.netfilter import patterns as P
from netlab.netfilter.xt import Ctx, Ext, Opt, match

ALL_HOOKS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})


def _neg(inverted: bool) -> str:
    return " !" if inverted else ""


# --- tcp / udp -------------------------------------------------------------------------------

TCP_FLAGS = (("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10),
             ("URG", 0x20), ("ALL", 0x3F), ("NONE", 0))
TCP_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20}


def parse_tcp_flags(text: str) -> int:
    bits = 0
    for word in text.split(","):
        if not word:
            continue
        for name, bit in TCP_FLAGS:
            if word.upper() == name:
                bits |= bit
                break
        else:
            raise XtError(f"Unknown TCP flag `{word}'")
    return bits


def show_tcp_flags(bits: int) -> str:
    names = [name for name, bit in TCP_FLAGS[:6] if bits & bit]
    return ",".join(names) if names else "NONE"


def packet_tcp_flags(flags: str | None) -> int:
    """trace.Packet.tcp_flags ("S", "SA", "R") as bits; a packet without flags is a SYN."""
    if flags is None:
        return 0x02
    return sum(TCP_FLAG_BITS.get(c, 0) for c in set(flags))


def _ports(proto: str):
    def parse(text: str, ctx: Ctx) -> tuple[int, int]:
        return parse_port_range(text, proto)
    return parse


def _show_ports(name: str, low: int, high: int, inverted: bool, proto: str,
                numeric: bool) -> str:
    if low == 0 and high == 65535 and not inverted:
        return ""
    inv = "!" if inverted else ""
    if low == high:
        return f" {name}:{inv}{port_name(low, proto, numeric)}"
    return f" {name}s:{inv}{port_name(low, proto, numeric)}:{port_name(high, proto, numeric)}"


def _in_range(value: int | None, low: int, high: int) -> bool:
    return value is not None and low <= value <= high


class _Ports(Ext):
    """tcp and udp: --sport/--dport (libxt_tcp / libxt_udp, old-style option parsing)."""

    proto = "tcp"
    requires = "TCP match requires '-p tcp'"

    def parse(self, state, opt, value, inverted, ctx):
        if opt.id in state:
            raise XtError(f"Only one `--{self._long(opt.id)}' allowed")
        parsed = opt.parse(value, ctx) if opt.parse is not None else True
        self.store(state, opt, parsed, inverted, ctx)
        state.setdefault("_seen", []).append(opt.id)

    @staticmethod
    def _long(option_id: str) -> str:
        return {"sport": "source-port", "dport": "destination-port", "flags": "tcp-flags",
                "option": "tcp-option"}.get(option_id, option_id)

    def _full_inverted(self, state, key) -> bool:
        entry = state.get(key)
        return entry is not None and entry[1] and entry[0] == (0, 65535)

    def vanishes(self, state):
        # iptables-nft turns "! --dport 0:65535" into nothing; with nothing else left the
        # match itself is gone from the rule.
        if not (self._full_inverted(state, "sport") or self._full_inverted(state, "dport")):
            return False
        return self.save(state) == ""

    def save(self, state):
        out = []
        for key, name in (("sport", "sport"), ("dport", "dport")):
            entry = state.get(key)
            if entry is None:
                continue
            (low, high), inverted = entry
            if low == 0 and high == 65535:
                continue
            out.append(f"{_neg(inverted)} --{name} {show_port_range(low, high)}")
        return "".join(out)

    def show(self, state, numeric, rule):
        out = f" {self.proto}"
        for key, name in (("sport", "spt"), ("dport", "dpt")):
            entry = state.get(key)
            if entry is not None:
                (low, high), inverted = entry
                out += _show_ports(name, low, high, inverted, self.proto, numeric)
        return out

    def evaluate(self, data, view):
        pkt = view.packet
        if pkt.proto != self.proto:
            return False
        for key, attr in (("sport", "sport"), ("dport", "dport")):
            entry = data.get(key)
            if entry is not None:
                (low, high), inverted = entry
                if _in_range(getattr(pkt, attr), low, high) == inverted:
                    return False
        return True


def _port_opts(proto: str) -> tuple[Opt, ...]:
    parse = _ports(proto)
    return (Opt("source-port", "sport", parse, invert=True, pattern=P.port),
            Opt("sport", "sport", parse, invert=True, pattern=P.port),
            Opt("destination-port", "dport", parse, invert=True, pattern=P.port),
            Opt("dport", "dport", parse, invert=True, pattern=P.port))


def _tcp_option(text: str, ctx: Ctx) -> int:
    value = strtoui(text, 1, 255)
    if value is None:
        raise XtError(f'Bad TCP option "{text}"')
    return value


@match
class Tcp(_Ports):
    name = "tcp"
    proto = "tcp"
    requires = "TCP match requires '-p tcp'"
    options = _port_opts("tcp") + (
        Opt("syn", "syn", None, invert=True),
        Opt("tcp-flags", "flags", lambda text, ctx: text, invert=True),  # two words: see store
        Opt("tcp-option", "option", _tcp_option, invert=True),
    )
    two_arg_options = ("tcp-flags",)

    def store(self, state, opt, parsed, inverted, ctx):
        if opt.id in ("syn", "flags"):
            if "flags" in state:
                raise XtError("Only one of `--syn' or `--tcp-flags'  allowed")
            if opt.id == "syn":
                state["flags"] = ((0x17, 0x02), inverted)
            else:
                mask_text, cmp_text = parsed
                state["flags"] = ((parse_tcp_flags(mask_text), parse_tcp_flags(cmp_text)),
                                  inverted)
            return
        state[opt.id] = (parsed, inverted)

    def parse(self, state, opt, value, inverted, ctx):
        if opt.id == "flags" or opt.id == "syn":
            if "flags" in state:
                raise XtError("Only one of `--syn' or `--tcp-flags'  allowed")
            self.store(state, opt, value, inverted, ctx)
            state.setdefault("_seen", []).append(opt.id)
            return
        super().parse(state, opt, value, inverted, ctx)

    def save(self, state):
        out = super().save(state)
        entry = state.get("option")
        if entry is not None:
            out += f"{_neg(entry[1])} --tcp-option {entry[0]}"
        entry = state.get("flags")
        if entry is not None:
            (mask, cmp), inverted = entry
            if mask or inverted:
                out += f"{_neg(inverted)} --tcp-flags {show_tcp_flags(mask)} {show_tcp_flags(cmp)}"
        return out

    def show(self, state, numeric, rule):
        out = super().show(state, numeric, rule)
        entry = state.get("option")
        if entry is not None:
            out += f" option={'!' if entry[1] else ''}{entry[0]}"
        entry = state.get("flags")
        if entry is not None:
            (mask, cmp), inverted = entry
            if mask or inverted:
                inv = "!" if inverted else ""
                if numeric:
                    out += f" flags:{inv}0x{mask:02X}/0x{cmp:02X}"
                else:
                    out += f" flags:{inv}{show_tcp_flags(mask)}/{show_tcp_flags(cmp)}"
        return out

    def evaluate(self, data, view):
        if not super().evaluate(data, view):
            return False
        entry = data.get("flags")
        if entry is not None:
            (mask, cmp), inverted = entry
            bits = packet_tcp_flags(view.packet.tcp_flags)
            if ((bits & mask) == cmp) == inverted:
                return False
        entry = data.get("option")
        if entry is not None and not entry[1]:
            return False        # TCP options are not modelled: a packet carries none
        return True


@match
class Udp(_Ports):
    name = "udp"
    proto = "udp"
    requires = "UDP match requires '-p udp'"
    options = _port_opts("udp")


# --- icmp ------------------------------------------------------------------------------------

ICMP_TYPES = (
    ("any", 0xFF, 0, 0xFF), ("echo-reply", 0, 0, 0xFF), ("pong", 0, 0, 0xFF),
    ("destination-unreachable", 3, 0, 0xFF), ("network-unreachable", 3, 0, 0),
    ("host-unreachable", 3, 1, 1), ("protocol-unreachable", 3, 2, 2),
    ("port-unreachable", 3, 3, 3), ("fragmentation-needed", 3, 4, 4),
    ("source-route-failed", 3, 5, 5), ("network-unknown", 3, 6, 6), ("host-unknown", 3, 7, 7),
    ("network-prohibited", 3, 9, 9), ("host-prohibited", 3, 10, 10),
    ("TOS-network-unreachable", 3, 11, 11), ("TOS-host-unreachable", 3, 12, 12),
    ("communication-prohibited", 3, 13, 13), ("host-precedence-violation", 3, 14, 14),
    ("precedence-cutoff", 3, 15, 15), ("source-quench", 4, 0, 0xFF), ("redirect", 5, 0, 0xFF),
    ("network-redirect", 5, 0, 0), ("host-redirect", 5, 1, 1), ("TOS-network-redirect", 5, 2, 2),
    ("TOS-host-redirect", 5, 3, 3), ("echo-request", 8, 0, 0xFF), ("ping", 8, 0, 0xFF),
    ("router-advertisement", 9, 0, 0xFF), ("router-solicitation", 10, 0, 0xFF),
    ("time-exceeded", 11, 0, 0xFF), ("ttl-exceeded", 11, 0, 0xFF),
    ("ttl-zero-during-transit", 11, 0, 0), ("ttl-zero-during-reassembly", 11, 1, 1),
    ("parameter-problem", 12, 0, 0xFF), ("ip-header-bad", 12, 0, 0),
    ("required-option-missing", 12, 1, 1), ("timestamp-request", 13, 0, 0xFF),
    ("timestamp-reply", 14, 0, 0xFF), ("address-mask-request", 17, 0, 0xFF),
    ("address-mask-reply", 18, 0, 0xFF),
)


def parse_icmp_type(text: str, ctx: Ctx | None = None) -> tuple[int, int, int]:
    found = None
    for entry in ICMP_TYPES:
        if entry[0].lower().startswith(text.lower()) and text:
            if found is not None:
                raise XtError(f"Ambiguous ICMP type `{text}': `{found[0]}' or `{entry[0]}'?")
            found = entry
    if found is not None:
        return found[1], found[2], found[3]
    if text.count("/") > 1:
        raise XtError("unknown character /")
    type_text, slash, code_text = text.partition("/")
    icmp_type = strtoui(type_text, 0, 255)
    if icmp_type is None:
        raise XtError(f"Unknown ICMP type `{text}'")
    if not slash:
        return icmp_type, 0, 0xFF
    code = strtoui(code_text, 0, 255)
    if code is None:
        raise XtError(f"Unknown ICMP code `{text}'")
    return icmp_type, code, code


def show_icmp_type(value: tuple[int, int, int]) -> str:
    icmp_type, low, high = value
    if icmp_type == 0xFF:
        return "any"
    if low != 0 or high != 0xFF:
        return f"{icmp_type}/{low}"
    return str(icmp_type)


@match
class Icmp(Ext):
    name = "icmp"
    options = (Opt("icmp-type", "type", parse_icmp_type, invert=True, mand=True),)

    def save(self, state):
        value, inverted = state["type"]
        return f"{_neg(inverted)} --icmp-type {show_icmp_type(value)}"

    def show(self, state, numeric, rule):
        (icmp_type, low, high), inverted = state["type"]
        if not numeric:
            for name, t, lo, hi in ICMP_TYPES:
                if (t, lo, hi) == (icmp_type, low, high):
                    return f" icmp {'!' if inverted else ''}{name}"
        out = " icmp" + (" !" if inverted else "") + f"type {icmp_type}"
        if low == high:
            out += f" code {low}"
        elif low != 0 or high != 0xFF:
            out += f" codes {low}-{high}"
        return out

    def evaluate(self, data, view):
        pkt = view.packet
        if pkt.proto != "icmp":
            return False
        (icmp_type, low, high), inverted = data["type"]
        if icmp_type == 0xFF:
            hit = True
        else:
            code = pkt.icmp_code or 0
            hit = pkt.icmp_type == icmp_type and low <= code <= high
        return hit != inverted


# --- multiport ------------------------------------------------------------------------------

MULTIPORT_PROTOS = {6: "tcp", 17: "udp", 136: "udplite", 132: "sctp", 33: "dccp"}


def _multiport_proto(ctx: Ctx) -> str:
    if ctx.proto_neg:
        raise XtError("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP")
    if not ctx.proto:
        raise XtError("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'")
    name = MULTIPORT_PROTOS.get(ctx.proto)
    if name is None:
        raise XtError("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP")
    return name


def parse_port_list(text: str, proto: str | None) -> tuple[tuple[int, int], ...]:
    items: list[tuple[int, int]] = []
    count = 0
    for piece in text.split(","):
        low_text, colon, high_text = piece.partition(":")
        low = parse_port(low_text, proto)
        if colon:
            high = parse_port(high_text, proto)
            if low >= high:
                raise XtError("invalid portrange specified")
            count += 2
        else:
            high = low
            count += 1
        if count > 15:
            raise XtError("too many ports specified")
        items.append((low, high))
    return tuple(items)


def show_port_list(items, proto: str | None = None, numeric: bool = True) -> str:
    return ",".join(port_name(lo, proto, numeric) if lo == hi else
                    f"{port_name(lo, proto, numeric)}:{port_name(hi, proto, numeric)}"
                    for lo, hi in items)


def _port_list(text: str, ctx: Ctx):
    return parse_port_list(text, _multiport_proto(ctx)), _multiport_proto(ctx)


@match
class Multiport(Ext):
    name = "multiport"
    _ids = ("sports", "dports", "ports")
    options = (
        Opt("source-ports", "sports", _port_list, invert=True, excl=("dports", "ports")),
        Opt("sports", "sports", _port_list, invert=True, excl=("dports", "ports")),
        Opt("destination-ports", "dports", _port_list, invert=True, excl=("sports", "ports")),
        Opt("dports", "dports", _port_list, invert=True, excl=("sports", "ports")),
        Opt("ports", "ports", _port_list, invert=True, excl=("sports", "dports")),
    )

    def final(self, state, ctx):
        if not any(k in state for k in self._ids):
            raise XtError("multiport expection an option")

    def _entry(self, state):
        for key in self._ids:
            if key in state:
                return key, state[key]
        raise KeyError("multiport")

    def save(self, state):
        key, ((items, _proto), inverted) = self._entry(state)
        return f"{_neg(inverted)} --{key} {show_port_list(items)}"

    def show(self, state, numeric, rule):
        key, ((items, proto), inverted) = self._entry(state)
        return f" multiport {key} {' !' if inverted else ''}{show_port_list(items, proto, numeric)}"

    def evaluate(self, data, view):
        key, ((items, proto), inverted) = self._entry(data)
        pkt = view.packet
        if pkt.proto != proto:
            return False
        values = {"sports": (pkt.sport,), "dports": (pkt.dport,),
                  "ports": (pkt.sport, pkt.dport)}[key]
        hit = any(_in_range(v, lo, hi) for v in values for lo, hi in items)
        return hit != inverted


# --- comment ----------------------------------------------------------------------------------

def _comment(text: str, ctx: Ctx) -> str:
    return text[:255]


@match
class Comment(Ext):
    name = "comment"
    options = (Opt("comment", "comment", _comment, mand=True, pattern=P.string),)

    def save(self, state):
        return f" --comment {save_string(state['comment'][0])}"

    def show(self, state, numeric, rule):
        return f" /* {state['comment'][0]} */"

    def evaluate(self, data, view):
        return True


# --- conntrack / state ------------------------------------------------------------------------

CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")
PLAIN_STATES = CT_STATES[:5]
CT_STATUS = ("EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED")


def _state_list(names: tuple[str, ...], what: str):
    def parse(text: str, ctx: Ctx) -> frozenset[str]:
        out = set()
        for word in text.split(","):
            upper = word.upper()
            if upper not in names:
                raise XtError(f'Bad {what} "{word}"')
            out.add(upper)
        return frozenset(out)
    return parse


def _show_states(states: frozenset[str], order: tuple[str, ...]) -> str:
    return ",".join(s for s in order if s in states)


def _status_list(text: str, ctx: Ctx) -> frozenset[str]:
    out = set()
    for word in text.split(","):
        upper = word.upper()
        if upper == "NONE":
            continue
        if upper not in CT_STATUS:
            raise XtError(f'Bad ctstatus "{word}"')
        out.add(upper)
    return frozenset(out)


def _show_status(status: frozenset[str]) -> str:
    return _show_states(status, CT_STATUS) or "NONE"


def _ct_addr(text: str, ctx: Ctx) -> tuple[int, int]:
    addr_text, slash, mask_text = text.partition("/")
    addr = numeric_ip(addr_text)
    if addr is None:
        if addr_text == "localhost":
            addr = 0x7F000001
        else:
            raise XtError(f"host/network `{addr_text}' not found")
    mask = parse_mask(mask_text) if slash else U32
    if mask_bits(mask) is None:
        mask = U32      # iptables-nft keeps only prefix masks here
    return addr, mask


def _show_ct_addr(value: tuple[int, int]) -> str:
    addr, mask = value
    return int_to_ip(addr) if mask == U32 else int_to_ip(addr) + show_mask(mask)


def _ct_ports(text: str, ctx: Ctx) -> tuple[int, int]:
    low_text, colon, high_text = text.partition(":")
    out = []
    for part in (low_text, high_text) if colon else (low_text,):
        value = strtoui(part, 0, 65535)
        if value is None:
            from netlab.netfilter.values import service_port
            value = service_port(part, None)
        if value is None:
            raise XtError(f'Port "{part}" does not resolve to anything.')
        out.append(value)
    return (out[0], out[-1])


def _ct_expire(text: str, ctx: Ctx) -> tuple[int, int]:
    low_text, colon, high_text = text.partition(":")
    low = strtoui(low_text, 0, U32)
    high = strtoui(high_text, 0, U32) if colon else low
    if low is None or high is None:
        bad = low_text if low is None else high_text
        raise XtError(f'conntrack: bad value for option "--ctexpire" near "{bad}", or out of '
                      f'range (0-4294967295).')
    return low, high


def _ct_proto(text: str, ctx: Ctx) -> int:
    from netlab.netfilter.rules import parse_protocol
    return parse_protocol(text.lower())


def _ct_dir(text: str, ctx: Ctx) -> str:
    upper = text.upper()
    if upper not in ("ORIGINAL", "REPLY"):
        raise XtError(f'conntrack: Bad value for "--ctdir" option: "{text}"')
    return upper


_CT_ADDRS = ("ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst")
_CT_PORTS = ("ctorigsrcport", "ctorigdstport", "ctreplsrcport", "ctrepldstport")


@match
class Conntrack(Ext):
    name = "conntrack"
    options = (
        (Opt("ctstate", "ctstate", _state_list(CT_STATES, "ctstate"), invert=True),
         Opt("ctproto", "ctproto", _ct_proto, invert=True))
        + tuple(Opt(n, n, _ct_addr, invert=True, pattern=P.ip) for n in _CT_ADDRS)
        + tuple(Opt(n, n, _ct_ports, invert=True, pattern=P.port) for n in _CT_PORTS)
        + (Opt("ctstatus", "ctstatus", _status_list, invert=True),
           Opt("ctexpire", "ctexpire", _ct_expire, invert=True),
           Opt("ctdir", "ctdir", _ct_dir))
    )
    note_expire = "-m conntrack --ctexpire: timeouts are not modelled; assumed to match"

    def final(self, state, ctx):
        if not state.get("_seen"):
            raise XtError("conntrack: At least one option is required")

    def _items(self, state, prefix: str, numeric: bool) -> str:
        out = []
        entry = state.get("ctstate")
        if entry is not None:
            out.append(f"{_neg(entry[1])} {prefix}ctstate {_show_states(entry[0], CT_STATES)}")
        entry = state.get("ctproto")
        if entry is not None:
            out.append(f"{_neg(entry[1])} {prefix}ctproto {entry[0]}")
        for key in _CT_ADDRS:
            entry = state.get(key)
            if entry is not None:
                addr, mask = entry[0]
                text = _show_ct_addr(entry[0]) if numeric or addr else "anywhere"
                if not numeric and addr:
                    text = address_name(addr, False) + ("" if mask == U32 else show_mask(mask))
                out.append(f"{_neg(entry[1])} {prefix}{key} {text}")
        for key in _CT_PORTS:
            entry = state.get(key)
            if entry is not None:
                out.append(f"{_neg(entry[1])} {prefix}{key} {show_port_range(*entry[0])}")
        entry = state.get("ctstatus")
        if entry is not None:
            out.append(f"{_neg(entry[1])} {prefix}ctstatus {_show_status(entry[0])}")
        entry = state.get("ctexpire")
        if entry is not None:
            out.append(f"{_neg(entry[1])} {prefix}ctexpire {show_port_range(*entry[0])}")
        entry = state.get("ctdir")
        if entry is not None:
            out.append(f" {prefix}ctdir {entry[0]}")
        return "".join(out)

    def save(self, state):
        return self._items(state, "--", True)

    def show(self, state, numeric, rule):
        return self._items(state, "", numeric)

    def explain(self, data):
        return self.note_expire if "ctexpire" in data else None

    def evaluate(self, data, view):
        conn = view.conn
        tracked = conn is not None and conn.state != "UNTRACKED"
        entry = data.get("ctstate")
        if entry is not None:
            states, inverted = entry
            current = {conn.state if conn is not None else "INVALID"}
            if tracked:
                current |= {s for s in ("SNAT", "DNAT") if s in conn.status}
            if bool(states & current) == inverted:
                return False
        if not tracked:
            return "ctstate" in data
        entry = data.get("ctdir")
        if entry is not None and (conn.direction == "ORIGINAL") != (entry[0] == "ORIGINAL"):
            return False
        for key, ip in zip(_CT_ADDRS, (conn.orig_src, conn.orig_dst, conn.reply_src,
                                       conn.reply_dst)):
            entry = data.get(key)
            if entry is not None:
                (addr, mask), inverted = entry
                hit = ip is not None and (ip_to_int(ip) & mask) == (addr & mask)
                if hit == inverted:
                    return False
        entry = data.get("ctproto")
        if entry is not None:
            from netlab.netfilter.rules import protocol_number
            hit = protocol_number(view.packet.proto) == entry[0]
            if hit == entry[1]:
                return False
        for key, port in zip(_CT_PORTS, (conn.orig_sport, conn.orig_dport, conn.reply_sport,
                                         conn.reply_dport)):
            entry = data.get(key)
            if entry is not None:
                (low, high), inverted = entry
                if _in_range(port, low, high) == inverted:
                    return False
        entry = data.get("ctstatus")
        if entry is not None:
            status, inverted = entry
            if bool(status & set(conn.status)) == inverted:
                return False
        return True


@match
class State(Ext):
    name = "state"
    options = (Opt("state", "state", _state_list(PLAIN_STATES, "state"), invert=True, mand=True),)

    def save(self, state):
        states, inverted = state["state"]
        return f"{_neg(inverted)} --state {_show_states(states, PLAIN_STATES)}"

    def show(self, state, numeric, rule):
        states, inverted = state["state"]
        return f"{_neg(inverted)} state {_show_states(states, PLAIN_STATES)}"

    def evaluate(self, data, view):
        states, inverted = data["state"]
        current = view.conn.state if view.conn is not None else "INVALID"
        return (current in states) != inverted


# --- mark / connmark -----------------------------------------------------------------------

def show_mark(value: int, mask: int) -> str:
    return f"0x{value:x}" if mask == U32 else f"0x{value:x}/0x{mask:x}"


def _mark_opt(ext: str) -> Opt:
    def parse(text: str, ctx: Ctx) -> tuple[int, int]:
        return parse_mark(text, ext, "mark")
    return Opt("mark", "mark", parse, invert=True, mand=True)


@match
class Mark(Ext):
    name = "mark"
    options = (_mark_opt("mark"),)

    def save(self, state):
        (value, mask), inverted = state["mark"]
        return f"{_neg(inverted)} --mark {show_mark(value, mask)}"

    def show(self, state, numeric, rule):
        (value, mask), inverted = state["mark"]
        return f" mark match{_neg(inverted)} {show_mark(value, mask)}"

    def evaluate(self, data, view):
        (value, mask), inverted = data["mark"]
        return ((self.mark_of(view) & mask) == value) != inverted

    @staticmethod
    def mark_of(view) -> int:
        return view.mark


@match
class Connmark(Mark):
    """Like -m mark, on the connection's mark."""
    name = "connmark"
    options = (_mark_opt("connmark"),)

    def show(self, state, numeric, rule):
        (value, mask), inverted = state["mark"]
        return f" connmark match {'!' if inverted else ''} {show_mark(value, mask)}"

    @staticmethod
    def mark_of(view) -> int:
        return view.conn.mark if view.conn is not None else 0


# --- addrtype ----------------------------------------------------------------------------------

ADDR_TYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
              "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")


def _addr_types(text: str, ctx: Ctx) -> frozenset[str]:
    out = set()
    for word in text.split(","):
        if word.upper() not in ADDR_TYPES:
            raise XtError(f'addrtype: bad type "{word}"')
        out.add(word.upper())
    return frozenset(out)


def _show_types(types: frozenset[str]) -> str:
    return ",".join(t for t in ADDR_TYPES if t in types)


@match
class Addrtype(Ext):
    name = "addrtype"
    options = (
        Opt("src-type", "src", _addr_types, invert=True),
        Opt("dst-type", "dst", _addr_types, invert=True),
        Opt("limit-iface-in", "in", None, excl=("out",)),
        Opt("limit-iface-out", "out", None, excl=("in",)),
    )

    def final(self, state, ctx):
        if "src" not in state and "dst" not in state:
            raise XtError("addrtype: you must specify --src-type or --dst-type")

    def entry_hooks(self, data):
        if "in" in data:
            return frozenset({"PREROUTING", "INPUT", "FORWARD"})
        if "out" in data:
            return frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})
        return None

    def save(self, state):
        out = ""
        for key, name in (("src", "src-type"), ("dst", "dst-type")):
            entry = state.get(key)
            if entry is not None:
                out += f"{_neg(entry[1])} --{name} {_show_types(entry[0])}"
        if "in" in state:
            out += " --limit-iface-in"
        if "out" in state:
            out += " --limit-iface-out"
        return out

    def show(self, state, numeric, rule):
        out = " ADDRTYPE match"
        for key, name in (("src", "src-type"), ("dst", "dst-type")):
            entry = state.get(key)
            if entry is not None:
                out += f" {name} {'!' if entry[1] else ''}{_show_types(entry[0])}"
        if "in" in state:
            out += " limit-in"
        if "out" in state:
            out += " limit-out"
        return out

    def evaluate(self, data, view):
        dev = view.in_dev if "in" in data else view.out_dev if "out" in data else None
        pkt = view.packet
        for key, ip in (("src", pkt.src), ("dst", pkt.dst)):
            entry = data.get(key)
            if entry is None:
                continue
            types, inverted = entry
            kind = view.addrtype(ip, dev) if ip is not None else "UNSPEC"
            if (kind in types) == inverted:
                return False
        return True


# --- statistic ---------------------------------------------------------------------------------

PROB_SCALE = 0x80000000


def _mode(text: str, ctx: Ctx) -> str:
    if text not in ("random", "nth"):
        raise XtError(f'Bad mode "{text}"')
    return text


def _probability(text: str, ctx: Ctx) -> int:
    value = parse_double(text)
    if value is None or not (value != value or 0.0 <= value <= 1.0):
        raise XtError('statistic: bad value for option "--probability", or out of range (0-1).')
    return lround(PROB_SCALE * value) if value == value else 0


def show_probability(scaled: int) -> str:
    return "%.11f" % (scaled / PROB_SCALE)


def _every(text: str, ctx: Ctx) -> int:
    value = strtoui(text, 1, U32)
    if value is None:
        raise XtError('statistic: bad value for option "--every", or out of range '
                      '(1-4294967295).')
    return value


def _packet(text: str, ctx: Ctx) -> int:
    value = strtoui(text, 0, U32)
    if value is None:
        raise XtError('statistic: bad value for option "--packet", or out of range '
                      '(0-4294967295).')
    return value


@match
class Statistic(Ext):
    name = "statistic"
    options = (
        Opt("mode", "mode", _mode, mand=True),
        Opt("probability", "probability", _probability, invert=True, pattern=P.probability,
            post=P.probability_ok),
        Opt("every", "every", _every, invert=True, also=("packet",)),
        Opt("packet", "packet", _packet),
    )

    def store(self, state, opt, parsed, inverted, ctx):
        state[opt.id] = (parsed, inverted)
        if inverted:
            state["invert"] = True

    def final(self, state, ctx):
        mode = state.get("mode", ("random", False))[0]
        if mode == "random" and "probability" not in state:
            raise XtError("--probability must be specified when using random mode")
        if mode == "nth" and "every" not in state and "packet" not in state:
            raise XtError("--every and --packet must be specified when using nth mode")
        every = state.get("every", (1, False))[0] - 1
        if state.get("packet", (0, False))[0] > every:
            raise XtError("the --packet p must be 0 <= p <= n-1")

    def _text(self, state, prefix: str) -> str:
        inv = " !" if state.get("invert") else ""
        mode = state.get("mode", ("random", False))[0]
        if mode == "random":
            return (f" {prefix}mode random{inv} {prefix}probability "
                    f"{show_probability(state['probability'][0])}")
        out = f" {prefix}mode nth{inv} {prefix}every {state.get('every', (1, False))[0]}"
        packet = state.get("packet", (0, False))[0]
        if packet or prefix:
            out += f" {prefix}packet {packet}"
        return out

    def save(self, state):
        return self._text(state, "--")

    def show(self, state, numeric, rule):
        return " statistic" + self._text(state, "")

    def explain(self, data):
        if data.get("mode", ("random", False))[0] == "nth":
            n = data.get("every", (1, False))[0]
            return (f"-m statistic --mode nth --every {n}: one packet in {n} matches; "
                    f"traced as probability 1/{n}")
        return None

    def evaluate(self, data, view):
        if data.get("mode", ("random", False))[0] == "nth":
            p = 1.0 / data.get("every", (1, False))[0]
        else:
            p = data["probability"][0] / PROB_SCALE
        if data.get("invert"):
            p = 1.0 - p
        if p >= 1.0:
            return True
        if p <= 0.0:
            return False
        return p


# --- physdev ---------------------------------------------------------------------------------

def _physdev_iface(text: str, ctx: Ctx) -> str:
    if len(text) >= 16:
        raise XtError(f"interface name `{text}' must be shorter than IFNAMSIZ (15)")
    return text


@match
class Physdev(Ext):
    name = "physdev"
    options = (
        Opt("physdev-in", "in", _physdev_iface, invert=True),
        Opt("physdev-out", "out", _physdev_iface, invert=True),
        Opt("physdev-is-in", "is-in", None, invert=True),
        Opt("physdev-is-out", "is-out", None, invert=True),
        Opt("physdev-is-bridged", "is-bridged", None, invert=True),
    )

    def final(self, state, ctx):
        if not state.get("_seen"):
            raise XtError("PHYSDEV: no physdev option specified")

    def save(self, state):
        out = ""
        for key, name in (("is-in", "physdev-is-in"), ("in", "physdev-in"),
                          ("is-out", "physdev-is-out"), ("out", "physdev-out"),
                          ("is-bridged", "physdev-is-bridged")):
            entry = state.get(key)
            if entry is None:
                continue
            out += f"{_neg(entry[1])} --{name}"
            if key in ("in", "out"):
                out += f" {entry[0]}"
        return out

    def show(self, state, numeric, rule):
        return " PHYSDEV match" + self.save(state)

    def evaluate(self, data, view):
        if not view.bridged:
            # No bridge information: only the inverted options can match.
            return all(entry[1] for entry in data.values())
        outdev, indev = view.physdev_out, view.physdev_in
        entry = data.get("is-bridged")
        if entry is not None and (outdev is not None) == entry[1]:
            return False
        entry = data.get("is-in")
        if entry is not None and (indev is not None) == entry[1]:
            return False
        entry = data.get("is-out")
        if entry is not None and (outdev is not None) == entry[1]:
            return False
        entry = data.get("in")
        if entry is not None and indev is not None:
            if iface_matches(entry[0], indev) == entry[1]:
                return False
        entry = data.get("out")
        if entry is not None:
            if outdev is None:
                return True
            return iface_matches(entry[0], outdev) != entry[1]
        return True


# --- set ---------------------------------------------------------------------------------------

def _set_flags(text: str) -> tuple[str, ...]:
    flags = text.split(",")
    if len(flags) > 6:
        raise XtError("Can't be more src/dst options than 6.")
    for flag in flags:
        if flag not in ("src", "dst"):
            raise XtError("You must spefify (the comma separated list of) 'src' or 'dst'.")
    return tuple(flags)


@match
class Set(Ext):
    name = "set"
    options = (
        Opt("match-set", "match-set", lambda text, ctx: text, invert=True,
            pattern=P.set_match),
        Opt("set", "match-set", lambda text, ctx: text, invert=True),
        Opt("return-nomatch", "return-nomatch", None),
        Opt("update-counters", "update-counters", None, invert=True),
        Opt("update-subcounters", "update-subcounters", None, invert=True),
    )
    two_arg_options = ("match-set", "set")

    def store(self, state, opt, parsed, inverted, ctx):
        if opt.id == "match-set":
            name, flags = parsed
            if len(name) > 31:
                raise XtError(f"setname `{name}' too long, max 31 characters.")
            state["match-set"] = ((name, _set_flags(flags)), inverted)
        else:
            state[opt.id] = (True, inverted)

    def final(self, state, ctx):
        if "match-set" not in state:
            raise XtError("You must specify `--match-set' with proper arguments")

    def set_name(self, state) -> str:
        return state["match-set"][0][0]

    def save(self, state):
        (name, flags), inverted = state["match-set"]
        out = f"{_neg(inverted)} --match-set {name} {','.join(flags)}"
        if "return-nomatch" in state:
            out += " --return-nomatch"
        for key in ("update-counters", "update-subcounters"):
            entry = state.get(key)
            if entry is not None and entry[1]:
                out += f" ! --{key}"
        return out

    def show(self, state, numeric, rule):
        (name, flags), inverted = state["match-set"]
        out = f"{_neg(inverted)} match-set {name} {','.join(flags)}"
        if "return-nomatch" in state:
            out += " return-nomatch"
        for key in ("update-counters", "update-subcounters"):
            entry = state.get(key)
            if entry is not None and entry[1]:
                out += f" ! {key}"
        return out

    def evaluate(self, data, view):
        (name, flags), inverted = data["match-set"]
        pkt = view.packet
        # in_set takes one value per dimension of the set, in ipset's member syntax: an
        # address for ip/net dimensions, "proto:port" for port dimensions. The match does
        # not know the set's type, so it offers each flag in both forms.
        choices = []
        for flag in flags:
            ip = pkt.src if flag == "src" else pkt.dst
            port = pkt.sport if flag == "src" else pkt.dport
            forms = [ip] if ip is not None else []
            if port is not None:
                forms.append(f"{pkt.proto}:{port}")
            choices.append(forms)
        hit = any(view.in_set(name, values) for values in _product(choices))
        return hit != inverted


def _product(choices: list[list[str]]):
    if not choices:
        yield ()
        return
    for first in choices[0]:
        for rest in _product(choices[1:]):
            yield (first, *rest)


# --- limit -------------------------------------------------------------------------------------

LIMIT_SCALE = 10000
RATE_UNITS = (("day", LIMIT_SCALE * 24 * 60 * 60), ("hour", LIMIT_SCALE * 60 * 60),
              ("min", LIMIT_SCALE * 60), ("sec", LIMIT_SCALE))


def _rate(text: str, ctx: Ctx) -> int:
    """libxt_limit parse_rate: ``N[/second|minute|hour|day]`` (any prefix of the unit)."""
    number, slash, unit = text.partition("/")
    mult = 1
    if slash:
        for name, seconds in (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400)):
            if unit and name.startswith(unit.lower()):
                mult = seconds
                break
        else:
            raise XtError(f"bad rate \"{text}\"'")
    m = re.match(r"\s*([+-]?\d+)", number)
    value = int(m.group(1)) if m else 0
    if value <= 0:
        raise XtError(f"bad rate \"{text}\"'")
    avg = LIMIT_SCALE * mult // value
    if avg == 0:
        raise XtError(f'Rate too fast "{text}"')
    return avg


def show_rate(avg: int) -> str:
    i = 1
    while i < len(RATE_UNITS):
        mult = RATE_UNITS[i][1]
        if avg > mult or mult // avg < mult % avg:
            break
        i += 1
    name, mult = RATE_UNITS[i - 1]
    return f"{mult // avg}/{name}"


def _burst(text: str, ctx: Ctx) -> int:
    value = strtoui(text, 0, 10000)
    if value is None:
        raise XtError('limit: bad value for option "--limit-burst", or out of range (0-10000).')
    return value or 5


@match
class Limit(Ext):
    name = "limit"
    options = (
        Opt("limit", "limit", _rate),
        Opt("limit-burst", "burst", _burst),
    )
    note = "-m limit: rates are not modelled; the packet is taken to be within the limit"

    def _values(self, state) -> tuple[int, int]:
        avg = state.get("limit", (LIMIT_SCALE * 3600 // 3, False))[0]
        burst = state.get("burst", (5, False))[0]
        return avg, burst

    def save(self, state):
        avg, burst = self._values(state)
        out = f" --limit {show_rate(avg)}"
        if burst != 5:
            out += f" --limit-burst {burst}"
        return out

    def show(self, state, numeric, rule):
        avg, burst = self._values(state)
        return f" limit: avg {show_rate(avg)} burst {burst}"

    def evaluate(self, data, view):
        return True


# --- mac ----------------------------------------------------------------------------------------

def _mac(text: str, ctx: Ctx) -> str:
    parts = text.split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 and all(c in "0123456789abcdefABCDEF"
                                                           for c in p) for p in parts):
        raise XtError("Invalid MAC address specified.")
    return ":".join(p.lower().rjust(2, "0") for p in parts)


@match
class Mac(Ext):
    name = "mac"
    options = (Opt("mac-source", "mac", _mac, invert=True, mand=True),)
    hooks = frozenset({"PREROUTING", "INPUT", "FORWARD"})
    note = "-m mac: the model does not track source MAC addresses; --mac-source does not match"

    def save(self, state):
        mac, inverted = state["mac"]
        return f"{_neg(inverted)} --mac-source {mac}"

    def show(self, state, numeric, rule):
        mac, inverted = state["mac"]
        return f" MAC{_neg(inverted)} {mac}"

    def evaluate(self, data, view):
        return data["mac"][1]


# --- iprange -------------------------------------------------------------------------------------

def _range(option: str):
    def parse(text: str, ctx: Ctx) -> tuple[int, int]:
        first, dash, rest = text.partition("-")
        low = parse_ip_exact(first)
        if low is None:
            raise XtError(f'iprange: Bad value for "--{option}" option: "{first}"')
        if not dash:
            return low, low
        high = parse_ip_exact(rest)
        if high is None:
            raise XtError(f'iprange: Bad value for "--{option}" option: "{rest}"')
        return low, high
    return parse


def _show_range(value: tuple[int, int]) -> str:
    return f"{int_to_ip(value[0])}-{int_to_ip(value[1])}"


@match
class Iprange(Ext):
    name = "iprange"
    options = (
        Opt("src-range", "src", _range("src-range"), invert=True),
        Opt("dst-range", "dst", _range("dst-range"), invert=True),
    )

    def final(self, state, ctx):
        if "src" not in state and "dst" not in state:
            raise XtError("iprange match: You must specify `--src-range' or `--dst-range'")

    def save(self, state):
        out = ""
        for key, name in (("src", "src-range"), ("dst", "dst-range")):
            entry = state.get(key)
            if entry is not None:
                out += f"{_neg(entry[1])} --{name} {_show_range(entry[0])}"
        return out

    def show(self, state, numeric, rule):
        out = ""
        for key, name in (("src", "source IP range"), ("dst", "destination IP range")):
            entry = state.get(key)
            if entry is not None:
                out += f" {name}{_neg(entry[1])} {_show_range(entry[0])}"
        return out

    def evaluate(self, data, view):
        pkt = view.packet
        for key, ip in (("src", pkt.src), ("dst", pkt.dst)):
            entry = data.get(key)
            if entry is None:
                continue
            (low, high), inverted = entry
            hit = ip is not None and low <= ip_to_int(ip) <= high
            if hit == inverted:
                return False
        return True


# --- recent --------------------------------------------------------------------------------------

_RECENT_OPS = ("set", "rcheck", "update", "remove")


def _recent_name(text: str, ctx: Ctx) -> str:
    if len(text) > 199 or not text:
        raise XtError('recent: bad value for option "--name"')
    return text


def _u32(option: str):
    def parse(text: str, ctx: Ctx) -> int:
        value = strtoui(text, 0, U32)
        if value is None:
            raise XtError(f'recent: bad value for option "--{option}", or out of range '
                          f'(0-4294967295).')
        return value
    return parse


def _recent_mask(text: str, ctx: Ctx) -> int:
    value = numeric_ip(text)
    if value is None:
        raise XtError('recent: bad value for option "--mask"')
    return value


@match
class Recent(Ext):
    name = "recent"
    options = (
        tuple(Opt(op, op, None, invert=True, excl=tuple(o for o in _RECENT_OPS if o != op))
              for op in _RECENT_OPS)
        + (Opt("seconds", "seconds", _u32("seconds")),
           Opt("reap", "reap", None, also=("seconds",)),
           Opt("hitcount", "hitcount", _u32("hitcount")),
           Opt("rttl", "rttl", None),
           Opt("name", "name", _recent_name, pattern=P.name),
           Opt("rsource", "rsource", None, excl=("rdest",)),
           Opt("rdest", "rdest", None, excl=("rsource",)),
           Opt("mask", "mask", _recent_mask))
    )

    def store(self, state, opt, parsed, inverted, ctx):
        state[opt.id] = (parsed, inverted)
        if opt.id in _RECENT_OPS:
            state["op"] = (opt.id, inverted)

    def final(self, state, ctx):
        if "op" not in state:
            raise XtError("recent: you must specify one of `--set', `--rcheck' `--update' or "
                          "`--remove'")

    def save(self, state):
        op, inverted = state["op"]
        out = f"{_neg(inverted)} --{op}"
        if "seconds" in state:
            out += f" --seconds {state['seconds'][0]}"
        if "reap" in state:
            out += " --reap"
        if "hitcount" in state:
            out += f" --hitcount {state['hitcount'][0]}"
        if "rttl" in state:
            out += " --rttl"
        out += f" --name {state.get('name', ('DEFAULT', False))[0]}"
        out += f" --mask {int_to_ip(state.get('mask', (U32, False))[0])}"
        out += " --rdest" if "rdest" in state else " --rsource"
        return out

    def show(self, state, numeric, rule):
        op, inverted = state["op"]
        out = f"{_neg(inverted)} recent: " + {"set": "SET", "rcheck": "CHECK", "update": "UPDATE",
                                               "remove": "REMOVE"}[op]
        if state.get("seconds", (0, False))[0]:
            out += f" seconds: {state['seconds'][0]}"
        if "reap" in state:
            out += " reap"
        if state.get("hitcount", (0, False))[0]:
            out += f" hit_count: {state['hitcount'][0]}"
        if "rttl" in state:
            out += " TTL-Match"
        out += f" name: {state.get('name', ('DEFAULT', False))[0]}"
        out += " side: dest" if "rdest" in state else " side: source"
        out += f" mask: {int_to_ip(state.get('mask', (U32, False))[0])}"
        return out

    def explain(self, data):
        op = data["op"][0]
        name = data.get("name", ("DEFAULT", False))[0]
        if op == "set":
            return f"-m recent --set: the address is added to list {name}; the match succeeds"
        return (f"-m recent --{op}: the model keeps no recent lists, so list {name} is empty "
                f"and --{op} does not match")

    def evaluate(self, data, view):
        op, inverted = data["op"]
        return (op == "set") != inverted


def matches_need_proto(ext: Ext, state: dict[str, Any], proto: int | None) -> str | None:
    """iptables-nft's own check when tcp/udp options are given without that protocol."""
    if isinstance(ext, _Ports):
        want = 6 if ext.name == "tcp" else 17
        printed = ext.save(state)
        if (printed or ext.vanishes(state)) and proto != want:
            return ext.requires
    return None


def kernel_proto_ok(ext: Ext, state: dict[str, Any], proto: int | None, neg: bool) -> bool:
    """x_tables' protocol check for matches that reach the kernel as xt matches."""
    want = {"tcp": 6, "udp": 17, "icmp": 1}.get(ext.name)
    if want is None:
        return True
    if ext.name in ("tcp", "udp") and (ext.save(state) or ext.vanishes(state)):
        return True         # translated to native nft expressions, no xt check
    return proto == want and not neg


__all__ = ["ALL_HOOKS", "ADDR_TYPES", "CT_STATES", "ICMP_TYPES", "netdb", "show_mark",
           "show_probability", "show_rate", "parse_port_list", "prefix_mask"]
