"""The commands a learner types, read the way the real tools read them.

    Shell(backend).run("ip link add veth-red type veth peer name veth-blue")

``parse`` turns text into a Command (Ops to apply, or a query over the World);
``Shell`` applies it through a ModelBackend and prints what ip, bridge,
sysctl, ping, nc, curl or traceroute would print.
"""

from netlab.commands.base import Command
from netlab.commands.shell import CommandResult, Shell, parse, register

__all__ = ["Command", "CommandResult", "Shell", "parse", "register"]
