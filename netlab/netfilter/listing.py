"""``iptables -L`` and ``iptables -S``: a table printed as iptables 1.8.9 (nf_tables) prints it.

    list_rules(table, "filter", chain=None, verbose=False)            # -S
    list_table(table, chain=None, numeric=True, verbose=True)        # -L -n -v

Column layout, number formats ("100K"), "anywhere"/"any" without ``-n`` and the
protocol column (numbers with ``-n``: iptables 1.8.9 prints ``6``, not ``tcp``)
follow iptables' print_header / print_rule_details; each extension prints its
own part (Ext.show).
"""

from __future__ import annotations

from functools import lru_cache

from netlab.model.netfilter import BUILTIN_CHAINS, Table
from netlab.netfilter.rules import RuleSpec, protocol_name, spec_of
from netlab.netfilter.restore import stored_meta
from netlab.netfilter.values import address_name, show_mask


@lru_cache(maxsize=65536)
def _spec(body: str) -> RuleSpec:
    return spec_of(body)


def _counters(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 0
    packets, _, nbytes = text.strip("[]").partition(":")
    return int(packets or 0), int(nbytes or 0)


def _rule_counters(chain, index: int) -> tuple[int, int]:
    counters = chain.rule_counters[index] if index < len(chain.rule_counters) else None
    return _counters(counters)


# --- -S --------------------------------------------------------------------------------------

def rule_line(chain_name: str, body: str, counters: tuple[int, int] | None = None) -> str:
    if counters is not None:
        spec = spec_of(body)
        spec.counters = counters
        body = spec.body(counters=True)
    return f"-A {chain_name} {body}" if body else f"-A {chain_name}"


def list_rules(table: Table, table_name: str, chain: str | None = None,
               rulenum: int | None = None, verbose: bool = False) -> str:
    """``iptables -S [chain [rulenum]] [-v]``."""
    builtin = BUILTIN_CHAINS[table_name]
    names = [chain] if chain is not None else list(table.chains)
    out: list[str] = []
    if rulenum is not None:
        c = table.chains[chain]
        if rulenum <= len(c.rules):
            counters = _rule_counters(c, rulenum - 1) if verbose else None
            out.append(rule_line(chain, c.rules[rulenum - 1], counters))
        return "".join(line + "\n" for line in out)
    for name in names:
        c = table.chains[name]
        if name in builtin:
            line = f"-P {name} {c.policy}"
            if verbose:
                p, b = _counters(c.counters)
                line += f" -c {p} {b}"
            out.append(line)
        else:
            out.append(f"-N {name}")
    for name in names:
        c = table.chains[name]
        for i, body in enumerate(c.rules):
            out.append(rule_line(name, body, _rule_counters(c, i) if verbose else None))
    return "".join(line + "\n" for line in out)


# --- -L --------------------------------------------------------------------------------------

def _num(value: int, exact: bool, table: bool = True) -> str:
    """xtables_print_num."""
    if exact:
        return f"{value:8d} " if table else f"{value} "
    if value <= 99999:
        return f"{value:5d} " if table else f"{value} "
    for unit in ("K", "M", "G"):
        value = (value + 500) // 1000
        if value <= 9999:
            return f"{value:4d}{unit} " if table else f"{value}{unit} "
    value = (value + 500) // 1000
    return f"{value:4d}T " if table else f"{value}T "


def _header(verbose: bool, exact: bool, line_numbers: bool) -> str:
    out = "num  " if line_numbers else ""
    if verbose:
        out += (f"{'pkts':>8s} {'bytes':>10s} " if exact else f"{'pkts':>5s} {'bytes':>5s} ")
    out += f"{'target':<9s} " + " prot " + "opt"
    if verbose:
        out += f" {'in':<6s} {'out':<6s} "
    out += f" {'source':<19s} " + f" {'destination':<19s} "
    return out


def _address(value: tuple[int, int] | None, neg: bool, numeric: bool) -> str:
    mark = "!" if neg else " "
    if value is None or value[1] == 0:
        text = "0.0.0.0/0" if numeric else "anywhere"
    else:
        addr, mask = value
        text = address_name(addr, numeric) + ("" if mask == 0xFFFFFFFF else show_mask(mask))
    return f"{mark}{text:<19s} "


def _iface(name: str | None, neg: bool, numeric: bool) -> str:
    text = ("!" if neg else "") + (name if name not in (None, "+") else
                                    ("*" if numeric else "any"))
    return text


def rule_row(spec: RuleSpec, numeric: bool, verbose: bool, exact: bool,
             counters: tuple[int, int] = (0, 0), number: int | None = None) -> str:
    out = f"{number:<4d} " if number is not None else ""
    if verbose:
        out += _num(counters[0], exact) + _num(counters[1], exact)
    if spec.target is not None:
        target = getattr(spec.target.ext, "list_name", spec.target.ext.name)
    else:
        target = spec.jump or ""
    out += f"{target:<9s} "
    out += "!" if spec.proto_neg and spec.proto else " "
    proto = spec.proto or 0
    name = str(proto) if numeric else (protocol_name(proto) if proto else "all") or str(proto)
    out += f"{name:<4s} "
    out += ("!" if spec.frag and spec.frag_neg else "-") + ("f" if spec.frag else "-") + " "
    if verbose:
        out += f" {_iface(spec.in_iface, spec.in_neg, numeric):<6s} "
        out += f"{_iface(spec.out_iface, spec.out_neg, numeric):<6s} "
    out += _address(spec.src, spec.src_neg and bool(spec.src and spec.src[1]), numeric)
    out += _address(spec.dst, spec.dst_neg and bool(spec.dst and spec.dst[1]), numeric)
    if spec.goto:
        out += "[goto] "
    for use in spec.matches:
        if not use.ext.vanishes(use.state):
            out += use.ext.show(use.state, numeric, spec)
    if spec.target is not None:
        out += spec.target.ext.show(spec.target.state, numeric, spec)
    return out


def references(table: Table, chain: str) -> int:
    return sum(1 for c in table.chains.values() for body in c.rules
               if stored_meta(body).jump == chain)


def list_table(table: Table, table_name: str, chain: str | None = None,
               rulenum: int | None = None, *, numeric: bool = False, verbose: bool = False,
               exact: bool = False, line_numbers: bool = False) -> str:
    """``iptables -L [chain [rulenum]] [-n] [-v] [-x] [--line-numbers]``."""
    builtin = BUILTIN_CHAINS[table_name]
    if rulenum is not None and chain is not None:
        c = table.chains[chain]
        if rulenum > len(c.rules):
            return ""
        row = rule_row(_spec(c.rules[rulenum - 1]), numeric, verbose, exact,
                       _rule_counters(c, rulenum - 1), rulenum if line_numbers else None)
        return row + "\n"
    blocks = []
    for name in ([chain] if chain is not None else list(table.chains)):
        c = table.chains[name]
        if name in builtin:
            head = f"Chain {name} (policy {c.policy}"
            if verbose:
                p, b = _counters(c.counters)
                head += f" {_num(p, exact, False)}packets, {_num(b, exact, False)}bytes"
            head += ")"
        else:
            head = f"Chain {name} ({references(table, name)} references)"
        lines = [head, _header(verbose, exact, line_numbers)]
        for i, body in enumerate(c.rules):
            lines.append(rule_row(_spec(body), numeric, verbose, exact, _rule_counters(c, i),
                                  i + 1 if line_numbers else None))
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
