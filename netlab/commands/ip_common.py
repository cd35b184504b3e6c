"""What the ip sub-commands share: keyword tables, usage heads, look-ups ip does
itself before it asks the kernel, and the link/address filters of `show`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from netlab.commands import show
from netlab.commands.base import Args, duparg2, invarg, unsupported_feature
from netlab.commands.inet import Prefix, get_prefix
from netlab.commands.lexer import matches, suggest
from netlab.errors import CommandError
from netlab.model import Netns, World

OBJECTS = ("address", "addrlabel", "maddress", "route", "rule", "neighbor", "neighbour",
           "ntable", "ntbl", "link", "l2tp", "fou", "ila", "macsec", "tunnel", "tunl",
           "tuntap", "tap", "token", "tcpmetrics", "tcp_metrics", "monitor", "xfrm", "mroute",
           "mrule", "netns", "netconf", "vrf", "sr", "nexthop", "mptcp", "ioam", "help", "stats")
SUGGESTED_OBJECTS = ("address", "route", "link", "neigh", "netns", "rule", "neighbour")
MODELLED_KINDS = ("veth", "bridge", "dummy")
KERNEL_KINDS = frozenset({
    "vlan", "vxlan", "macvlan", "macvtap", "ipvlan", "ipvtap", "bond", "team", "ifb", "gre",
    "gretap", "ip6gre", "ip6gretap", "ipip", "sit", "ip6tnl", "vti", "vti6", "erspan",
    "ip6erspan", "geneve", "bareudp", "vrf", "nlmon", "can", "vcan", "vxcan", "wireguard",
    "xfrm", "hsr", "netkit", "macsec", "tun", "tap", "gtp", "amt", "rmnet", "virt_wifi",
    "netdevsim", "batadv", "wwan", "ipoib", "dsa", "veth_slave", "bridge_slave", "bond_slave",
})
ROUTE_TYPES = ("unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit",
               "blackhole", "nat", "anycast")
SCOPES = {"global": "global", "universe": "global", "link": "link", "host": "host",
          "site": "site", "nowhere": "nowhere", "0": "global", "253": "link", "254": "host",
          "200": "site", "255": "nowhere"}
PROTOS = {"kernel": "kernel", "boot": "boot", "static": "static", "redirect": "redirect",
          "ra": "ra", "dhcp": "dhcp", "bird": "bird", "zebra": "zebra", "bgp": "bgp",
          "ospf": "ospf", "babel": "babel", "isis": "isis", "rip": "rip", "2": "kernel",
          "3": "boot", "4": "static"}
NUD_STATES = ("permanent", "noarp", "reachable", "stale", "none", "incomplete", "delay",
              "probe", "failed")

ROUTE_USAGE_HEAD = "Usage: ip route { list | flush } SELECTOR"
LINK_USAGE_HEAD = "Usage: ip link add [link DEV | parentdev NAME] [ name ] NAME"
ADDR_USAGE_HEAD = "Usage: ip address {add|change|replace} IFADDR dev IFNAME [ LIFETIME ]"
NEIGH_USAGE_HEAD = "Usage: ip neigh { add | del | change | replace }"
NETNS_USAGE_HEAD = "Usage: ip netns list"
IP_USAGE_HEAD = "Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }"


def usage(head: str) -> CommandError:
    return CommandError(head, status=255)


@dataclass
class IpOptions:
    netns: str | None = None
    family: int | None = None
    brief: bool = False
    oneline: bool = False
    details: bool = False
    json: bool = False

    def show(self) -> show.ShowOptions:
        return show.ShowOptions(family=self.family, brief=self.brief, oneline=self.oneline,
                                details=self.details)


def unknown_command(verb: str, obj: str, verbs: tuple[str, ...]) -> CommandError:
    close = suggest(verb, verbs)
    hint = f"did you mean `ip {obj} {close}`?" if close else None
    return CommandError(f'Command "{verb}" is unknown, try "ip {obj} help".', hint=hint, status=255)


def maybe_hint(word: str | None, template: str) -> str | None:
    return f"did you mean `{template.format(word)}`?" if word else None


# --- shared look-ups (done by ip itself, before it asks the kernel) ---------------------

def need_device(key: str, dev: str) -> Callable[[World], None]:
    def check(world: World) -> None:
        ns = world.namespaces.get(key)
        if ns is not None and dev not in ns.links:
            raise CommandError(f'Cannot find device "{dev}"', status=1,
                               hint=device_hint(ns, dev))
    return check


def device_hint(ns: Netns, dev: str) -> str | None:
    close = suggest(dev, ns.links)
    if close:
        return f"did you mean `{close}`?"
    return None


def device_must_exist_for_show(world: World, key: str, dev: str) -> None:
    ns = world.namespaces[key]
    if dev not in ns.links:
        raise CommandError(f'Device "{dev}" does not exist.', status=1, hint=device_hint(ns, dev))


def is_int(text: str) -> bool:
    t = text[1:] if text[:1] in "+-" else text
    if t.lower().startswith("0x"):
        return len(t) > 2 and all(c in "0123456789abcdefABCDEF" for c in t[2:])
    return t.isdigit()


@dataclass
class LinkFilter:
    dev: str | None = None
    up: bool = False
    master: str | None = None        # "" means nomaster
    kind: str | None = None
    to: Prefix | None = None
    scope: str | None = None
    label: str | None = None
    secondary: bool | None = None


def parse_link_filter(args: Args, *, addresses: bool) -> LinkFilter:
    filt = LinkFilter()
    while args:
        word = args.take()
        if word == "to" and addresses:
            filt.to = get_prefix(args.next())
        elif word == "scope" and addresses:
            value = args.next()
            if value not in SCOPES:
                raise invarg("invalid \"scope\"", value)
            filt.scope = SCOPES[value]
        elif word == "up":
            filt.up = True
        elif addresses and word in ("primary", "secondary"):
            filt.secondary = word == "secondary"
        elif addresses and word in ("permanent", "dynamic", "tentative", "-tentative",
                                    "deprecated", "-deprecated", "dadfailed", "-dadfailed",
                                    "temporary", "home", "nodad", "optimistic", "mngtmpaddr",
                                    "noprefixroute", "autojoin"):
            if word not in ("permanent", "-tentative", "-deprecated", "-dadfailed"):
                raise unsupported_feature(f"the address filter `{word}`")
        elif word == "label":
            filt.label = args.next()
        elif word == "master":
            filt.master = args.next()
        elif word == "nomaster":
            filt.master = ""
        elif word == "type":
            filt.kind = args.next()
        elif word in ("group", "vrf", "proto"):
            args.next()
            raise unsupported_feature(f"filtering links by {word}")
        else:
            if word == "dev":
                word = args.next()
            elif matches(word, "help"):
                raise usage(ADDR_USAGE_HEAD if addresses else LINK_USAGE_HEAD)
            if filt.dev is not None:
                raise duparg2("dev", word)
            filt.dev = word
    return filt


def select_links(world: World, key: str, filt: LinkFilter) -> list:
    ns = world.namespaces[key]
    if filt.master:
        if filt.master not in ns.links:
            raise invarg("Device does not exist", filt.master)
    if filt.dev is not None:
        device_must_exist_for_show(world, key, filt.dev)
    out = []
    for link in show.sorted_links(ns):
        if filt.dev is not None and link.name != filt.dev:
            continue
        if filt.up and not link.up:
            continue
        if filt.master is not None and (link.master or "") != filt.master:
            continue
        if filt.kind is not None:
            if filt.kind.endswith("_slave"):
                if link.master is None or filt.kind != "bridge_slave":
                    continue
            elif link.kind != filt.kind:
                continue
        out.append(link)
    return out
