"""Netfilter state of a namespace, as plain data: tables, chains, rules (as the
canonical text iptables-save prints), ipsets and the conntrack table.

Rules are kept as text so the World stays plain JSON and `iptables-save` is a
print; netlab.netfilter parses them (cached) when a packet needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}


@dataclass
class Chain:
    policy: str | None = None       # ACCEPT | DROP for built-in chains; None ("-") for user chains
    counters: str = "[0:0]"         # as iptables-save prints them: [packets:bytes]
    rules: list[str] = field(default_factory=list)   # bodies: "-s 10.0.0.0/8 -j ACCEPT"
    rule_counters: list[str | None] = field(default_factory=list)  # "[p:b]" per rule (-c), or None


@dataclass
class Table:
    chains: dict[str, Chain] = field(default_factory=dict)   # in iptables-save order


@dataclass
class IpSet:
    type: str                       # hash:ip | hash:net | hash:ip,port | bitmap:port | ...
    options: str = ""               # the rest of `ipset create` (family inet hashsize …)
    members: list[str] = field(default_factory=list)


@dataclass
class ConntrackEntry:
    """One connection, as `conntrack -L` shows it."""
    proto: str
    orig: tuple[str, int | None, str, int | None]     # src, sport, dst, dport as sent
    reply: tuple[str, int | None, str, int | None]    # as the answer will come back
    state: str = ""                 # TCP state (SYN_SENT, ESTABLISHED, ...) or ""
    status: list[str] = field(default_factory=list)   # SEEN_REPLY, ASSURED, DNAT, SNAT, UNREPLIED
    mark: int = 0
    zone: int = 0


def new_table(name: str) -> Table:
    return Table(chains={c: Chain(policy="ACCEPT") for c in BUILTIN_CHAINS[name]})
