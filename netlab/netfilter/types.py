"""What a match or target sees of a packet, and what a target tells the walker.

Match units answer ``evaluate(view) -> bool | float``: a float p in (0, 1)
means "matches with probability p" (``-m statistic``), and the dataplane
forks the trace. Target units answer ``apply(view) -> Action``; a target that
only changes state (MARK, CONNMARK) does so on the view and returns
``Action("continue")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from netlab.trace import Packet


@dataclass
class ConnView:
    """The packet's conntrack entry as matches see it."""
    state: str                       # NEW | ESTABLISHED | RELATED | INVALID | UNTRACKED | SNAT | DNAT
    status: set[str] = field(default_factory=set)    # SEEN_REPLY, ASSURED, DNAT, SNAT, CONFIRMED
    direction: str = "ORIGINAL"      # ORIGINAL | REPLY
    orig_src: str | None = None
    orig_dst: str | None = None
    orig_sport: int | None = None
    orig_dport: int | None = None
    reply_src: str | None = None
    reply_dst: str | None = None
    reply_sport: int | None = None
    reply_dport: int | None = None
    mark: int = 0                    # connmark


@dataclass
class PacketView:
    packet: Packet
    table: str                       # raw | mangle | nat | filter
    hook: str                        # PREROUTING | INPUT | FORWARD | OUTPUT | POSTROUTING
    in_dev: str | None = None        # -i (for bridged packets: the bridge)
    out_dev: str | None = None       # -o
    physdev_in: str | None = None    # the bridge port it came in on (bridged only)
    physdev_out: str | None = None
    bridged: bool = False            # crossing a bridge with bridge-nf-call-iptables=1
    mark: int = 0                    # skb->mark; MARK changes it here
    conn: ConnView | None = None     # None: untracked
    # The namespace's address types, for -m addrtype: addrtype(ip, dev=None) ->
    # "LOCAL" | "UNICAST" | "BROADCAST" | "MULTICAST" | "BLACKHOLE" | "UNREACHABLE" | "PROHIBIT" | "UNSPEC"
    addrtype: Callable[[str, str | None], str] = lambda ip, dev=None: "UNICAST"
    # ipset membership: in_set(name, values: tuple[str, ...]) -> bool
    in_set: Callable[[str, tuple[str, ...]], bool] = lambda name, values: False


@dataclass(frozen=True)
class Action:
    """What a target decided.

    kind: accept | drop | reject | return | jump | goto | continue | dnat | snat |
          masquerade | redirect | notrack
    """
    kind: str
    chain: str | None = None             # jump / goto
    reject_with: str | None = None       # icmp-port-unreachable, tcp-reset, icmp-net-unreachable, ...
    to_addr: tuple[str, str] | None = None   # NAT address range (first, last)
    to_port: tuple[int, int] | None = None   # NAT port range (first, last)
    random_fully: bool = False
    log: str | None = None               # LOG / NFLOG: the text to record as a hop
    note: str | None = None              # said in the hop (e.g. "-m limit always matches here")
