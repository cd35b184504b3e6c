"""A lab as data: nodes, LANs, steps, commands and expectations.

Every part keeps the line of the lab file it came from, so a message about
it can say ``labs/02-veth.yaml:14: …``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CommandLine:
    text: str
    line: int


@dataclass(frozen=True)
class LanMember:
    node: str
    dev: str                         # eth<i>: the node's i-th LAN
    address: str | None              # CIDR "192.168.1.2/24", or None for no address


@dataclass(frozen=True)
class LanSpec:
    name: str
    subnet: str | None
    members: tuple[LanMember, ...]
    line: int


@dataclass(frozen=True)
class Reach:
    """``reach``: does a ping (or a TCP/UDP probe) get its answer?"""
    source: str
    to: str
    proto: str
    port: int | None
    want: bool
    line: int
    kind: str = "reach"


@dataclass(frozen=True)
class TraceExpect:
    """``trace``: where does the packet end, and what comes back?"""
    source: str
    to: str
    proto: str
    port: int | None
    sport: int | None
    verdict: str | None
    outcome: str | None
    delivered_to: str | None
    reply_verdict: str | None
    line: int
    kind: str = "trace"
    src_out: str | None = None      # the packet as it finally is, after every NAT:
    dst_out: str | None = None      # "IP" or "IP:PORT"


@dataclass(frozen=True)
class OutputExpect:
    """``output``: what a command prints (run on a copy of the state)."""
    run: str
    node: str | None
    contains: str | None
    equals: str | None
    not_contains: str | None
    line: int
    kind: str = "output"


Expectation = Reach | TraceExpect | OutputExpect


@dataclass(frozen=True)
class Step:
    number: int                      # 1-based
    title: str
    explain: str
    node: str
    commands: tuple[CommandLine, ...]
    expect: tuple[Expectation, ...]
    on_error: str                    # stop | continue
    line: int


@dataclass
class Lab:
    path: str                        # as shown in messages
    name: str
    title: str
    description: str
    nodes: list[str]
    lans: list[LanSpec]
    steps: list[Step] = field(default_factory=list)
    cluster: object | None = None    # a netlab.k8s Cluster when the lab has `cluster:`
    files: dict[str, str] = field(default_factory=dict)   # path -> content, on every node

    def where(self, line: int | None) -> str:
        return f"{self.path}:{line}" if line else self.path
