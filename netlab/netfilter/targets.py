"""The ``-j`` target extensions netlab models, one registered class each.

``apply(data, view) -> Action`` tells the walker what happens; a target that
only changes the packet (MARK, CONNMARK) changes the view and returns
``Action("continue")``. ``tables`` / ``hooks`` are the kernel's restrictions
(a DNAT in POSTROUTING is refused with EINVAL when the rule is committed).
"""

from __future__ import annotations

from netlab.netfilter.errors import XtError
from netlab.netfilter.matches import show_mark
from netlab.netfilter.types import Action
from netlab.netfilter.values import (
    U32, int_to_ip, parse_ip_exact, parse_mark, parse_u32, save_string, service_port, strtoui,
)
from netlab.netfilter import patterns as P
from netlab.netfilter.xt import Ctx, Ext, Opt, target


# --- standard verdicts -----------------------------------------------------------------------

class _Verdict(Ext):
    verdict = "accept"

    def apply(self, data, view):
        return Action(self.verdict)


@target
class Accept(_Verdict):
    name = "ACCEPT"
    verdict = "accept"


@target
class Drop(_Verdict):
    name = "DROP"
    verdict = "drop"


@target
class Return(_Verdict):
    name = "RETURN"
    verdict = "return"


# --- REJECT ------------------------------------------------------------------------------------

REJECT_TYPES = (("icmp-net-unreachable", "net-unreach"), ("icmp-host-unreachable", "host-unreach"),
                ("icmp-proto-unreachable", "proto-unreach"),
                ("icmp-port-unreachable", "port-unreach"),
                ("icmp-net-prohibited", "net-prohib"), ("icmp-host-prohibited", "host-prohib"),
                ("tcp-reset", "tcp-rst"), ("icmp-admin-prohibited", "admin-prohib"))


def _reject_with(text: str, ctx: Ctx) -> str:
    low = text.lower()
    for name, alias in REJECT_TYPES:
        if name.startswith(low) or alias.startswith(low):
            return name
    if "echo-reply".startswith(low) or "echoreply".startswith(low):
        ctx.notes.append("--reject-with echo-reply no longer supported")
    raise XtError(f'unknown reject type "{text}"')


@target
class Reject(Ext):
    name = "REJECT"
    options = (Opt("reject-with", "with", _reject_with),)
    tables = ("filter",)
    hooks = frozenset({"INPUT", "FORWARD", "OUTPUT"})

    def _with(self, state) -> str:
        return state.get("with", ("icmp-port-unreachable", False))[0]

    def save(self, state):
        return f" --reject-with {self._with(state)}"

    def show(self, state, numeric, rule):
        return f" reject-with {self._with(state)}"

    def kernel_ok(self, data, proto, proto_neg) -> bool:
        return self._with(data) != "tcp-reset" or (proto == 6 and not proto_neg)

    def apply(self, data, view):
        return Action("reject", reject_with=self._with(data))


# --- LOG / NFLOG ----------------------------------------------------------------------------------

LOG_LEVELS = {"alert": 1, "crit": 2, "debug": 7, "emerg": 0, "error": 3, "info": 6, "notice": 5,
              "panic": 0, "warning": 4}
LOG_LEVEL_NAMES = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")
LOG_FLAGS = (("tcp-sequence", 0x01), ("tcp-options", 0x02), ("ip-options", 0x04), ("uid", 0x08),
             ("macdecode", 0x20))


def _log_level(text: str, ctx: Ctx) -> int:
    value = strtoui(text, 0, 7)
    if value is None:
        value = LOG_LEVELS.get(text)
    if value is None:
        raise XtError(f'log level "{text}" unknown')
    return value


def _prefix(limit: int):
    def parse(text: str, ctx: Ctx) -> str:
        if text == "":
            raise XtError("Argument must have a minimum length of 1 characters")
        return text[:limit]
    return parse


@target
class Log(Ext):
    name = "LOG"
    options = (
        Opt("log-level", "level", _log_level),
        Opt("log-prefix", "prefix", _prefix(29)),
    ) + tuple(Opt(f"log-{name}", name, None) for name, _bit in LOG_FLAGS)

    def _flags(self, state) -> int:
        return sum(bit for name, bit in LOG_FLAGS if name in state)

    def save(self, state):
        out = ""
        if "prefix" in state:
            out += f" --log-prefix {save_string(state['prefix'][0])}"
        level = state.get("level", (4, False))[0]
        if level != 4:
            out += f" --log-level {level}"
        for name, _bit in LOG_FLAGS:
            if name in state:
                out += f" --log-{name}"
        return out

    def show(self, state, numeric, rule):
        level = state.get("level", (4, False))[0]
        if numeric:
            out = f" LOG flags {self._flags(state)} level {level}"
        else:
            out = f" LOG level {LOG_LEVEL_NAMES[level]}"
            for name, _bit in LOG_FLAGS:
                if name in state:
                    out += f" {name}"
        if "prefix" in state:
            out += f' prefix "{state["prefix"][0]}"'
        return out

    def apply(self, data, view):
        prefix = data.get("prefix", ("", False))[0]
        level = data.get("level", (4, False))[0]
        return Action("continue", log=f'LOG level {LOG_LEVEL_NAMES[level]}'
                      + (f' prefix "{prefix}"' if prefix else ""))


def _u16(ext: str, option: str, high: int = 65535):
    def parse(text: str, ctx: Ctx) -> int:
        value = strtoui(text, 0, high)
        if value is None:
            raise XtError(f'{ext}: bad value for option "--{option}", or out of range '
                          f'(0-{high}).')
        return value
    return parse


@target
class Nflog(Ext):
    name = "NFLOG"
    options = (
        Opt("nflog-group", "group", _u16("NFLOG", "nflog-group")),
        Opt("nflog-prefix", "prefix", _prefix(63)),
        Opt("nflog-range", "range", _u16("NFLOG", "nflog-range", U32), excl=("size",)),
        Opt("nflog-size", "size", _u16("NFLOG", "nflog-size", U32), excl=("range",)),
        Opt("nflog-threshold", "threshold", _u16("NFLOG", "nflog-threshold")),
    )

    def parse(self, state, opt, value, inverted, ctx):
        if opt.id == "range":
            ctx.notes.append("warn: --nflog-range has never worked and is no longer supported, "
                             "please use --nflog-size instead")
        super().parse(state, opt, value, inverted, ctx)

    def _text(self, state, prefix: str) -> str:
        out = ""
        if "prefix" in state:
            out += f" {prefix}nflog-prefix {save_string(state['prefix'][0])}"
        if state.get("group", (0, False))[0]:
            out += f" {prefix}nflog-group {state['group'][0]}"
        if "size" in state:
            out += f" {prefix}nflog-size {state['size'][0]}"
        if state.get("threshold", (0, False))[0]:
            out += f" {prefix}nflog-threshold {state['threshold'][0]}"
        return out

    def save(self, state):
        return self._text(state, "--")

    def show(self, state, numeric, rule):
        return self._text(state, "")

    def apply(self, data, view):
        prefix = data.get("prefix", ("", False))[0]
        group = data.get("group", (0, False))[0]
        return Action("continue", log=f"NFLOG group {group}" + (f' prefix "{prefix}"'
                                                                 if prefix else ""))


@target
class Trace(Ext):
    name = "TRACE"
    note = "TRACE: the packet is marked for nftrace; this trace already shows every rule"

    def apply(self, data, view):
        return Action("continue", note=self.note)


# --- MARK / CONNMARK ------------------------------------------------------------------------------

def _markmask(ext: str, option: str):
    def parse(text: str, ctx: Ctx) -> tuple[int, int]:
        return parse_mark(text, ext, option)
    return parse


def _u32(ext: str, option: str):
    def parse(text: str, ctx: Ctx) -> int:
        value = parse_u32(text)
        if value is None:
            raise XtError(f'{ext}: bad integer value for option "--{option}", or out of range.')
        return value
    return parse


_MARK_OPS = ("set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark")


def _mark_ops(ext: str, exclusive: tuple[str, ...]) -> tuple[Opt, ...]:
    """The mark-changing options of MARK and CONNMARK: each excludes the others."""
    parsers = {"set-xmark": _markmask, "set-mark": _markmask, "and-mark": _u32,
               "or-mark": _u32, "xor-mark": _u32}
    return tuple(Opt(o, o, parsers[o](ext, o) if o in parsers else None,
                     excl=tuple(x for x in exclusive if x != o)) for o in exclusive)


def _xmark(text: str) -> str | None:
    try:
        value, mask = parse_mark(text, "MARK", "set-xmark")
    except XtError:
        return None
    return f"0x{value:x}/0x{mask:x}"


@target
class Mark(Ext):
    name = "MARK"
    options = _mark_ops("MARK", _MARK_OPS)

    def store(self, state, opt, parsed, inverted, ctx):
        if opt.id == "set-xmark":
            state["xmark"] = parsed
        elif opt.id == "set-mark":
            state["xmark"] = (parsed[0], parsed[0] | parsed[1])
        elif opt.id == "and-mark":
            state["xmark"] = (0, ~parsed & U32)
        elif opt.id == "or-mark":
            state["xmark"] = (parsed, parsed)
        else:
            state["xmark"] = (parsed, 0)
        state[opt.id] = (parsed, inverted)

    def final(self, state, ctx):
        if "xmark" not in state:
            raise XtError("MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is "
                          "required")

    def save(self, state):
        value, mask = state["xmark"]
        return f" --set-xmark 0x{value:x}/0x{mask:x}"

    def show(self, state, numeric, rule):
        value, mask = state["xmark"]
        return " MARK " + _describe_xmark(value, mask)

    def apply(self, data, view):
        value, mask = data["xmark"]
        view.mark = (view.mark & ~mask & U32) ^ value
        return Action("continue", note=f"mark is now 0x{view.mark:x}")


def _describe_xmark(value: int, mask: int) -> str:
    if value == 0:
        return f"and 0x{~mask & U32:x}"
    if value == mask:
        return f"or 0x{value:x}"
    if mask == 0:
        return f"xor 0x{value:x}"
    if mask == U32:
        return f"set 0x{value:x}"
    return f"xset 0x{value:x}/0x{mask:x}"


_CONNMARK_OPS = ("set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark", "save-mark",
                 "restore-mark")


@target
class Connmark(Ext):
    name = "CONNMARK"
    options = (
        *_mark_ops("CONNMARK", _CONNMARK_OPS),
        Opt("ctmask", "ctmask", _u32("CONNMARK", "ctmask"), excl=("mask",)),
        Opt("nfmask", "nfmask", _u32("CONNMARK", "nfmask"), excl=("mask",)),
        Opt("mask", "mask", _u32("CONNMARK", "mask"), excl=("ctmask", "nfmask")),
    )

    def store(self, state, opt, parsed, inverted, ctx):
        if opt.id == "set-xmark":
            state["op"] = ("set", parsed[0], parsed[1])
        elif opt.id == "set-mark":
            state["op"] = ("set", parsed[0], parsed[0] | parsed[1])
        elif opt.id == "and-mark":
            state["op"] = ("set", 0, ~parsed & U32)
        elif opt.id == "or-mark":
            state["op"] = ("set", parsed, parsed)
        elif opt.id == "xor-mark":
            state["op"] = ("set", parsed, 0)
        elif opt.id in ("save-mark", "restore-mark"):
            state["op"] = (opt.id[:-5], 0, U32)
        state[opt.id] = (parsed, inverted)

    def final(self, state, ctx):
        if "op" not in state:
            raise XtError("CONNMARK target: No operation specified")

    def _masks(self, state) -> tuple[str, int, int, int, int]:
        mode, ctmark, ctmask = state["op"]
        nfmask = U32
        if mode == "set":
            if "mask" in state:
                ctmask = state["mask"][0]
            return mode, ctmark, ctmask, nfmask, ctmask
        if "mask" in state:
            ctmask = nfmask = state["mask"][0]
        ctmask = state.get("ctmask", (ctmask, False))[0]
        nfmask = state.get("nfmask", (nfmask, False))[0]
        return mode, ctmark, ctmask, nfmask, ctmask

    def save(self, state):
        mode, ctmark, ctmask, nfmask, _ = self._masks(state)
        if mode == "set":
            return f" --set-xmark 0x{ctmark:x}/0x{ctmask:x}"
        return f" --{mode}-mark --nfmask 0x{nfmask:x} --ctmask 0x{ctmask:x}"

    def show(self, state, numeric, rule):
        mode, ctmark, ctmask, nfmask, _ = self._masks(state)
        if mode == "set":
            return " CONNMARK " + _describe_xmark(ctmark, ctmask)
        if nfmask == U32 and ctmask == U32:
            return f" CONNMARK {mode}"
        if nfmask == ctmask:
            return f" CONNMARK {mode} mask 0x{nfmask:x}"
        if mode == "save":
            return f" CONNMARK save nfmask 0x{nfmask:x} ctmask ~0x{ctmask:x}"
        return f" CONNMARK restore ctmask 0x{ctmask:x} nfmask ~0x{nfmask:x}"

    def freeze(self, state):
        return self._masks(state)

    def apply(self, data, view):
        mode, ctmark, ctmask, nfmask, _ = data
        conn = view.conn
        if conn is None:
            return Action("continue", note="CONNMARK: the packet has no connection")
        if mode == "set":
            conn.mark = (conn.mark & ~ctmask & U32) ^ ctmark
            return Action("continue", note=f"connmark is now 0x{conn.mark:x}")
        if mode == "save":
            conn.mark = (conn.mark & ~ctmask & U32) ^ (view.mark & nfmask)
            return Action("continue", note=f"connmark is now 0x{conn.mark:x}")
        view.mark = (view.mark & ~nfmask & U32) ^ (conn.mark & ctmask)
        return Action("continue", note=f"mark is now 0x{view.mark:x}")


def _hex(parse, text: str) -> str | None:
    try:
        return f"0x{parse(text, Ctx()):x}"
    except XtError:
        return None


# --- TCPMSS --------------------------------------------------------------------------------------

@target
class Tcpmss(Ext):
    name = "TCPMSS"
    options = (
        Opt("set-mss", "mss", _u16("TCPMSS", "set-mss", 65515)),
        Opt("clamp-mss-to-pmtu", "clamp", None),
    )
    note = "TCPMSS: the segment size is not modelled; the packet goes on unchanged"

    def final(self, state, ctx):
        if "mss" not in state and "clamp" not in state:
            raise XtError("TCPMSS target: At least one parameter is required")

    def save(self, state):
        return " --clamp-mss-to-pmtu" if "clamp" in state else f" --set-mss {state['mss'][0]}"

    def show(self, state, numeric, rule):
        if "clamp" in state:
            return " TCPMSS clamp to PMTU"
        return f" TCPMSS set {state['mss'][0]}"

    def entry_hooks(self, data):
        if "clamp" in data:
            return frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})
        return None

    def kernel_ok(self, data, proto, proto_neg) -> bool:
        return proto == 6 and not proto_neg

    def apply(self, data, view):
        return Action("continue", note=self.note)


# --- NAT -----------------------------------------------------------------------------------------

PORT_PROTOS = (6, 17, 132, 33, 1)       # libxt_NAT's portok: tcp udp sctp dccp icmp


def _nat_port(text: str) -> int:
    value = strtoui(text, 0, 65535)
    if value is None:
        value = service_port(text, None)
    if value is None:
        raise XtError(f"Port `{text}' not valid")
    return value


def parse_nat_range(text: str, ctx: Ctx) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """``[ip[-ip]][:port[-port]]`` as libxt_NAT reads it."""
    addr_text, colon, port_text = text.partition(":")
    ports = None
    if colon:
        if ctx.proto not in PORT_PROTOS or ctx.proto_neg:
            raise XtError("Need TCP, UDP, SCTP or DCCP with port specification")
        low_text, dash, high_text = port_text.partition("-")
        low = _nat_port(low_text)
        high = low
        if dash:
            high = _nat_port(high_text)
            if high < low:
                raise XtError(f"Port range `{high_text}' funky")
        ports = (low, high)
    addrs = None
    if addr_text or not colon:
        first, dash, last = addr_text.partition("-")
        low_ip = parse_ip_exact(first)
        if low_ip is None:
            raise XtError(f'Bad IP address "{first if dash else addr_text}"')
        high_ip = low_ip
        if dash:
            high_ip = parse_ip_exact(last)
            if high_ip is None:
                raise XtError(f'Bad IP address "{last}"')
        addrs = (low_ip, high_ip)
    return addrs, ports


def show_nat_range(value) -> str:
    addrs, ports = value
    out = ""
    if addrs is not None:
        out = int_to_ip(addrs[0])
        if addrs[1] != addrs[0]:
            out += "-" + int_to_ip(addrs[1])
    if ports is not None:
        out += f":{ports[0]}" if ports[0] == ports[1] else f":{ports[0]}-{ports[1]}"
    return out


class _Nat(Ext):
    tables = ("nat",)
    range_id = "to"
    flags: tuple[str, ...] = ()

    def save(self, state):
        out = f" --{self.options[0].name} {show_nat_range(state['to'][0])}"
        for flag in self.flags:
            if flag in state:
                out += f" --{flag}"
        return out

    def show(self, state, numeric, rule):
        out = f" to:{show_nat_range(state['to'][0])}"
        for flag in self.flags:
            if flag in state:
                out += f" {flag}"
        return out

    def _action(self, kind: str, data) -> Action:
        addrs, ports = data["to"][0]
        notes = [f for f in ("random", "persistent") if f in data]
        return Action(kind, to_addr=(int_to_ip(addrs[0]), int_to_ip(addrs[1])) if addrs else None,
                      to_port=ports, random_fully="random-fully" in data,
                      note=("--" + " --".join(notes) + " does not change the traced path")
                      if notes else None)


@target
class Dnat(_Nat):
    name = "DNAT"
    options = (Opt("to-destination", "to", parse_nat_range, mand=True, pattern=P.nat_range),
               Opt("random", "random", None), Opt("persistent", "persistent", None))
    flags = ("random", "persistent")
    hooks = frozenset({"PREROUTING", "OUTPUT"})

    def apply(self, data, view):
        return self._action("dnat", data)


@target
class Snat(_Nat):
    name = "SNAT"
    options = (Opt("to-source", "to", parse_nat_range, mand=True, pattern=P.nat_range),
               Opt("random", "random", None), Opt("random-fully", "random-fully", None),
               Opt("persistent", "persistent", None))
    flags = ("random", "random-fully", "persistent")
    hooks = frozenset({"POSTROUTING", "INPUT"})

    def apply(self, data, view):
        return self._action("snat", data)


def _to_ports(ext: str):
    def parse(text: str, ctx: Ctx) -> tuple[int, int]:
        if ctx.proto not in PORT_PROTOS or ctx.proto_neg:
            raise XtError("Need TCP, UDP, SCTP or DCCP with port specification")
        if ":" in text:
            raise XtError("Invalid port:port syntax - use dash")
        low_text, dash, rest = text.partition("-")
        low = _ports_value(ext, low_text)
        if not dash:
            return low, low
        high_text, dash2, garbage = rest.partition("-")
        high = _ports_value(ext, high_text)
        if dash2:
            raise XtError(f"Garbage after port range: `-{garbage}'")
        if high < low:
            raise XtError(f"Port range `{high_text}' funky")
        return low, high
    return parse


def _ports_value(ext: str, text: str) -> int:
    value = strtoui(text, 0, 65535)
    if value is None:
        value = service_port(text, None)
    if value is None:
        raise XtError(f'{ext}: Bad value for "--to-ports" option: "{text}"')
    return value


def _show_ports(value: tuple[int, int]) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}-{value[1]}"


@target
class Masquerade(Ext):
    name = "MASQUERADE"
    options = (Opt("to-ports", "ports", _to_ports("MASQUERADE")),
               Opt("random", "random", None), Opt("random-fully", "random-fully", None))
    tables = ("nat",)
    hooks = frozenset({"POSTROUTING"})

    def save(self, state):
        out = ""
        if "ports" in state:
            out += f" --to-ports {_show_ports(state['ports'][0])}"
        for flag in ("random", "random-fully"):
            if flag in state:
                out += f" --{flag}"
        return out

    def show(self, state, numeric, rule):
        out = ""
        if "ports" in state:
            out += f" masq ports: {_show_ports(state['ports'][0])}"
        for flag in ("random", "random-fully"):
            if flag in state:
                out += f" {flag}"
        return out

    def apply(self, data, view):
        return Action("masquerade", to_port=data.get("ports", (None, False))[0],
                      random_fully="random-fully" in data)


@target
class Redirect(Ext):
    name = "REDIRECT"
    options = (Opt("to-ports", "ports", _to_ports("REDIRECT")),
               Opt("random", "random", None))
    tables = ("nat",)
    hooks = frozenset({"PREROUTING", "OUTPUT"})

    def save(self, state):
        out = ""
        if "ports" in state:
            out += f" --to-ports {_show_ports(state['ports'][0])}"
        if "random" in state:
            out += " --random"
        return out

    def show(self, state, numeric, rule):
        out = ""
        if "ports" in state:
            out += f" redir ports {_show_ports(state['ports'][0])}"
        if "random" in state:
            out += " random"
        return out

    def apply(self, data, view):
        return Action("redirect", to_port=data.get("ports", (None, False))[0])


# --- raw: NOTRACK / CT ---------------------------------------------------------------------------

@target
class Notrack(Ext):
    name = "NOTRACK"
    tables = ("raw",)
    list_name = "CT"        # iptables -L shows it as the CT target it is an alias of

    def show(self, state, numeric, rule):
        return " NOTRACK"

    def apply(self, data, view):
        return Action("notrack")


def _zone(text: str, ctx: Ctx) -> int:
    value = strtoui(text, 0, 65535)
    if value is None:
        raise XtError('CT: bad value for option "--zone", or out of range (0-65535).')
    return value


@target
class Ct(Ext):
    name = "CT"
    options = (
        Opt("notrack", "notrack", None),
        Opt("helper", "helper", lambda text, ctx: text),
        Opt("zone", "zone", _zone),
        Opt("zone-orig", "zone-orig", _zone),
        Opt("zone-reply", "zone-reply", _zone),
    )
    tables = ("raw",)

    def save(self, state):
        out = " --notrack" if "notrack" in state else ""
        if "helper" in state:
            out += f" --helper {state['helper'][0]}"
        for key in ("zone", "zone-orig", "zone-reply"):
            if key in state:
                out += f" --{key} {state[key][0]}"
        return out

    def show(self, state, numeric, rule):
        out = " CT"
        if "notrack" in state:
            out += " notrack"
        if "helper" in state:
            out += f" helper {state['helper'][0]}"
        for key in ("zone", "zone-orig", "zone-reply"):
            if key in state:
                out += f" {key} {state[key][0]}"
        return out

    def kernel_ok(self, data, proto, proto_neg) -> bool:
        return "helper" not in data     # no conntrack helper module is loaded

    kernel_errno = "No such file or directory"

    def apply(self, data, view):
        if "notrack" in data:
            return Action("notrack")
        return Action("continue", note="CT: conntrack zones and helpers are not modelled")


__all__ = ["REJECT_TYPES", "LOG_LEVEL_NAMES", "show_mark", "show_nat_range"]
