"""What a parsed command is, and the error messages the tools print.

A :class:`Command` is pure data made from text: the Ops it would apply, and
optionally a query that reads the World (show commands, probes). The Shell
runs it; parsing never looks at a World.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from netlab.errors import CommandError, UnsupportedCommand
from netlab.model import World, ns_key
from netlab.ops import Op

SUPPORTED = ("ip, bridge, sysctl, echo > /proc/sys/…, ping, nc, curl, traceroute, iptables, "
             "iptables-save, iptables-restore, ipset, conntrack")


@dataclass
class Output:
    """What a query or probe printed, and what it did on the side."""
    text: str = ""
    status: int = 0
    error: str | None = None           # one line, when status != 0
    traces: list[Any] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)   # side effects, e.g. neighbour entries from ARP


Check = Callable[[World], None]
Plan = Callable[[World], "list[Op]"]
Query = Callable[[World], Output]
Explain = Callable[[World, CommandError], "str | None"]


@dataclass
class Command:
    """One parsed command line.

    ``ops`` are applied atomically; ``plan`` computes more Ops from the World
    when the command needs to look first (``ip route flush``, a free name);
    ``checks`` are the tool's own look-ups before it asks the kernel (``master
    BR`` must exist); ``query`` reads the World after the Ops and prints.
    """
    text: str
    node: str
    netns: str                                   # key of the namespace it runs in
    ops: list[Op] = field(default_factory=list)
    plan: Plan | None = None
    checks: list[Check] = field(default_factory=list)
    query: Query | None = None
    output: str = ""                             # printed once the Ops succeed
    background: bool = False
    kind: str = "change"                         # change | show | probe | listen | noop
    status: int = 0                              # exit status on success (warnings keep 0)
    explain: Explain | None = None               # a hint for a refusal, from the World before


@dataclass(frozen=True)
class Ctx:
    """Where a command runs: the text typed, the node, the namespace name."""
    text: str
    node: str
    netns: str = "root"
    shell: str = "bash"            # whose error messages `echo > FILE` prints (bash or sh)
    stdin: str | None = None       # a here-document given to the command (iptables-restore)

    @property
    def key(self) -> str:
        return ns_key(self.node, self.netns)

    def ns_key(self, name: str) -> str:
        return ns_key(self.node, name)

    def command(self, **kwargs: Any) -> Command:
        return Command(text=self.text, node=self.node, netns=self.key, **kwargs)

    def in_netns(self, name: str) -> "Ctx":
        return Ctx(self.text, self.node, name, self.shell, self.stdin)

    def in_shell(self, shell: str) -> "Ctx":
        return Ctx(self.text, self.node, self.netns, shell, self.stdin)


def netns_missing(name: str) -> CommandError:
    return CommandError(f'Cannot open network namespace "{name}": No such file or directory',
                        status=255)


# --- iproute2's lib/utils.c messages (all exit -1, i.e. status 255) -------------------

def invarg(msg: str, arg: str, hint: str | None = None) -> CommandError:
    return CommandError(f'Error: argument "{arg}" is wrong: {msg}', hint=hint, status=255)


def duparg(key: str, arg: str, hint: str | None = None) -> CommandError:
    return CommandError(f'Error: duplicate "{key}": "{arg}" is the second value.', hint=hint,
                        status=255)


def duparg2(key: str, arg: str, hint: str | None = None) -> CommandError:
    return CommandError(f'Error: either "{key}" is duplicate, or "{arg}" is a garbage.',
                        hint=hint, status=255)


def incomplete() -> CommandError:
    return CommandError('Command line is not complete. Try option "help"', status=255)


def missarg(key: str) -> CommandError:
    return CommandError(f'Error: argument "{key}" is required', status=255)


def unsupported(what: str) -> UnsupportedCommand:
    return UnsupportedCommand(f"netlab does not model `{what}` (supported: {SUPPORTED})",
                              status=127)


def unsupported_feature(what: str, hint: str | None = None) -> UnsupportedCommand:
    return UnsupportedCommand(f"netlab does not model {what}", hint=hint, status=2)


class Args:
    """A cursor over a command's words, as iproute2's NEXT_ARG() walks argv."""

    __slots__ = ("words", "i")

    def __init__(self, words: list[str]):
        self.words = words
        self.i = 0

    def __bool__(self) -> bool:
        return self.i < len(self.words)

    def peek(self) -> str | None:
        return self.words[self.i] if self.i < len(self.words) else None

    def take(self) -> str:
        word = self.words[self.i]
        self.i += 1
        return word

    def next(self) -> str:
        """The value after a keyword; iproute2's NEXT_ARG()."""
        if self.i >= len(self.words):
            raise incomplete()
        return self.take()

    def rest(self) -> list[str]:
        out = self.words[self.i:]
        self.i = len(self.words)
        return out
