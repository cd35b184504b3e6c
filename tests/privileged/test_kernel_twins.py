"""The same scenario on the model and on the real kernel: both must give the expected outcome.

Each scenario is a script typed as a learner types it in the root namespace of a
machine ``host``, and a list of checks: probes (ping / tcp / udp from a
namespace, with the outcome ping or nc would report), the lines the kernel
refuses (and the words it uses), and state read back (routing tables, carrier).
The docstring of each scenario says what the kernel does.

Model: ``Shell(ModelBackend with node host)`` runs the lines, ``dataplane.trace``
predicts each probe. Kernel: kernel_host.RealHost runs the lines in namespaces
of its own and probes with ping and sockets.
"""

from __future__ import annotations

import ipaddress
import json
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import pytest

from netlab.trace import REFUSED, SUCCESS, TIMEOUT, UNREACHABLE
from topologies import BLUE_ROUTE_BACK, BRIDGE, ROUTER  # shared with the netfilter twins

pytestmark = pytest.mark.privileged


# --- the vocabulary of a scenario -------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    src: str                    # learner's namespace name, or "host" for the machine's root
    dst: str
    proto: str                  # icmp | tcp | udp
    expect: str                 # success | refused | unreachable | timeout
    port: int | None = None
    ttl: int | None = None

    def __str__(self) -> str:
        if self.proto == "icmp":
            ttl = f" -t {self.ttl}" if self.ttl is not None else ""
            return f"ping{ttl} {self.src} → {self.dst}"
        return f"{self.proto} {self.src} → {self.dst}:{self.port}"


def ping(src: str, dst: str, expect: str, ttl: int | None = None) -> Probe:
    return Probe(src, dst, "icmp", expect, ttl=ttl)


def tcp(src: str, dst: str, port: int, expect: str) -> Probe:
    return Probe(src, dst, "tcp", expect, port=port)


def udp(src: str, dst: str, port: int, expect: str) -> Probe:
    return Probe(src, dst, "udp", expect, port=port)


@dataclass(frozen=True)
class Routes:
    """The main table of a namespace, as a set of (destination, device)."""
    netns: str
    expect: frozenset

    def __str__(self) -> str:
        return f"routes of {self.netns}"


def routes(netns: str, *pairs: tuple[str, str]) -> Routes:
    return Routes(netns, frozenset((normal_cidr(dst), dev) for dst, dev in pairs))


@dataclass(frozen=True)
class Carrier:
    """Whether a link is up with carrier (`ip link`: UP and LOWER_UP)."""
    netns: str
    dev: str
    expect: bool

    def __str__(self) -> str:
        return f"carrier of {self.dev} in {self.netns}"


def carrier(netns: str, dev: str, expect: bool) -> Carrier:
    return Carrier(netns, dev, expect)


def normal_cidr(dst: str) -> str:
    return dst if dst == "default" else str(ipaddress.IPv4Network(dst, strict=False))


@dataclass(frozen=True)
class Scenario:
    id: str
    kernel: str                 # what the kernel does (the scenario's docstring)
    script: str
    probes: tuple[Probe, ...]
    state: tuple = ()           # Routes and Carrier: read back after the script
    # line -> words both must print when refusing it. A line typed more than once is
    # refused where it last appears (typing it again is the mistake); earlier, it succeeds.
    fails: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [line.strip() for line in self.script.splitlines()
                if line.strip() and not line.strip().startswith("#")]


SCENARIOS: list[Scenario] = []


def scenario(*probes: Probe, state: tuple = (), fails: dict | None = None):
    """Register a scenario: the docstring says what the kernel does; the body returns the script."""
    def register(build: Callable[[], str]) -> Callable[[], str]:
        SCENARIOS.append(Scenario(build.__name__.replace("_", "-"),
                                  textwrap.dedent(build.__doc__ or "").strip(),
                                  textwrap.dedent(build()), tuple(probes), tuple(state),
                                  dict(fails or {})))
        return build
    return register


# --- building blocks, as a learner types them ---------------------------------------------

VETH_PAIR = """
    ip netns add red
    ip netns add blue
    ip link add veth-red type veth peer name veth-blue
    ip link set veth-red netns red
    ip link set veth-blue netns blue
    ip -n red addr add 192.168.15.1/24 dev veth-red
    ip -n blue addr add 192.168.15.2/24 dev veth-blue
"""
BOTH_ENDS_UP = """
    ip -n red link set veth-red up
    ip -n blue link set veth-blue up
"""
LO_UP = """
    ip -n red link set lo up
    ip -n blue link set lo up
"""

FORWARDING_ON = """
    ip netns exec router sysctl -w net.ipv4.ip_forward=1
"""
# blue's way back to red's network is a direct link, not the router it was reached through
ASYMMETRIC = """
    ip link add blue-direct type veth peer name red-direct
    ip link set blue-direct netns blue
    ip link set red-direct netns red
    ip -n blue addr add 10.0.3.2/24 dev blue-direct
    ip -n red addr add 10.0.3.1/24 dev red-direct
    ip -n blue link set blue-direct up
    ip -n red link set red-direct up
    ip -n blue route add 10.0.1.0/24 via 10.0.3.1
"""

# red (10.0.1.2) — host (10.0.1.1 | 10.0.2.1) — blue (10.0.2.2): the machine routes.
HOST_ROUTES = """
    ip netns add red
    ip netns add blue
    ip link add veth-red type veth peer name h-red
    ip link add veth-blue type veth peer name h-blue
    ip link set veth-red netns red
    ip link set veth-blue netns blue
    ip -n red addr add 10.0.1.2/24 dev veth-red
    ip -n blue addr add 10.0.2.2/24 dev veth-blue
    ip addr add 10.0.1.1/24 dev h-red
    ip addr add 10.0.2.1/24 dev h-blue
    ip -n red link set veth-red up
    ip -n blue link set veth-blue up
    ip link set h-red up
    ip link set h-blue up
    ip netns exec red ip link set lo up
    ip netns exec blue ip link set lo up
    ip -n red route add default via 10.0.1.1
    ip -n blue route add default via 10.0.2.1
    echo 1 > /proc/sys/net/ipv4/ip_forward
"""


# --- links, addresses, routes ----------------------------------------------------------

@scenario(ping("red", "192.168.15.1", TIMEOUT),
          ping("red", "127.0.0.1", UNREACHABLE),
          ping("red", "127.0.0.2", UNREACHABLE),
          ping("red", "192.168.15.9", TIMEOUT),
          tcp("red", "192.168.15.1", 80, TIMEOUT),
          ping("red", "192.168.15.2", SUCCESS))
def lo_down_in_a_new_namespace():
    """lo is down in a new namespace. Packets to red's own veth address loop back through
    lo and are lost: ping prints nothing and times out, TCP times out too (not refused).
    127.0.0.1 has no local route yet: ping fails at once with "connect: Network is
    unreachable" (exit 2). ARP for an absent 192.168.15.9 fails, but the host-unreachable
    error is itself sent to red's own address over lo, so ping just times out. blue's
    address, across the veth, answers."""
    return VETH_PAIR + BOTH_ENDS_UP


@scenario(ping("red", "192.168.15.1", SUCCESS),
          ping("red", "127.0.0.1", SUCCESS),
          ping("red", "127.0.0.2", SUCCESS),
          ping("red", "192.168.15.9", UNREACHABLE),
          tcp("red", "192.168.15.1", 80, REFUSED))
def lo_up_in_a_new_namespace():
    """With lo up, red reaches its own veth address and all of 127.0.0.0/8; a closed local TCP port
    answers with RST (refused); a failed ARP for 192.168.15.9 comes back as "Destination
    Host Unreachable" from 192.168.15.1."""
    return VETH_PAIR + BOTH_ENDS_UP + LO_UP


@scenario(ping("red", "192.168.15.2", SUCCESS),
          ping("blue", "192.168.15.1", SUCCESS))
def veth_pair_pings_both_ways():
    """Two namespaces joined by a veth pair, both ends up, addresses in one /24: the
    connected routes carry echo request and reply both ways."""
    return VETH_PAIR + BOTH_ENDS_UP


@scenario(ping("red", "192.168.15.2", UNREACHABLE),
          ping("blue", "192.168.15.1", UNREACHABLE),
          state=(routes("red", ("192.168.15.0/24", "veth-red")), routes("blue")))
def veth_with_one_end_down_fails_arp():
    """Only red's end is up. red keeps its connected route (flagged linkdown, still chosen),
    its ARP request is dropped by the veth (peer down) and ping reports "Destination Host
    Unreachable". blue's end is down, so blue has no connected route: "connect: Network is
    unreachable"."""
    return VETH_PAIR + LO_UP + """
        ip -n red link set veth-red up
    """


@scenario(ping("red", "192.168.15.2", UNREACHABLE),
          state=(routes("red"),),
          fails={"ip -n red route add default via 192.168.15.2": "Nexthop has invalid gateway"})
def address_without_prefix_is_a_host_address():
    """192.168.15.1 without a prefix is a /32: no connected route appears in red's main
    check, so `ip route add default via 192.168.15.2` fails with "Error: Nexthop has
    invalid gateway." (exit 2), and red has no route to blue: "Network is unreachable"."""
    return """
        ip netns add red
        ip netns add blue
        ip link add veth-red type veth peer name veth-blue
        ip link set veth-red netns red
        ip link set veth-blue netns blue
        ip -n red addr add 192.168.15.1 dev veth-red
        ip -n blue addr add 192.168.15.2/24 dev veth-blue
        ip -n red link set veth-red up
        ip -n blue link set veth-blue up
        ip -n red link set lo up
        ip -n red route add default via 192.168.15.2
    """


@scenario(ping("red", "10.9.0.1", SUCCESS),
          state=(routes("red", ("192.168.15.0/24", "veth-red"), ("10.9.0.0/16", "veth-red")),),
          fails={"ip -n red route add 10.8.0.0/16 via 10.0.0.1": "Nexthop has invalid gateway",
                 "ip -n red route add 10.9.0.0/16 via 192.168.15.2 dev veth-red": "File exists",
                 "ip -n red route add 10.7.0.0/16 dev veth-spare": "Device for nexthop is not up"})
def route_add_refusals():
    """The kernel refuses a gateway outside every connected network ("Nexthop has invalid
    gateway"), a second route to the same prefix ("RTNETLINK answers: File exists") and a route
    through a link that is down ("Device for nexthop is not up"); the first route stays.
    A probe to 10.9.0.1 goes to blue (192.168.15.2), which owns that address."""
    return VETH_PAIR + BOTH_ENDS_UP + LO_UP + """
        ip -n blue addr add 10.9.0.1/16 dev veth-blue
        ip -n red route add 10.9.0.0/16 via 192.168.15.2
        ip -n red route add 10.8.0.0/16 via 10.0.0.1
        ip -n red route add 10.9.0.0/16 via 192.168.15.2 dev veth-red
        ip -n red link add veth-spare type veth peer name veth-spare-p
        ip -n red route add 10.7.0.0/16 dev veth-spare
    """


@scenario(ping("red", "10.9.0.1", UNREACHABLE),
          ping("red", "192.168.15.2", SUCCESS),
          state=(routes("red", ("192.168.15.0/24", "veth-red")),))
def link_down_removes_static_routes():
    """Setting veth-red down deletes every route through it, the static ones too; setting
    it up again brings back only the connected route. 10.9.0.1 is then "Network is
    unreachable"."""
    return VETH_PAIR + BOTH_ENDS_UP + LO_UP + """
        ip -n red route add 10.9.0.0/16 via 192.168.15.2
        ip -n red route add 10.8.0.0/16 dev veth-red
        ip -n red link set veth-red down
        ip -n red link set veth-red up
    """


@scenario(ping("red", "10.9.0.1", UNREACHABLE),
          state=(routes("red", ("192.168.15.0/24", "veth-red"), ("10.9.0.0/16", "veth-red"),
                         ("10.8.0.0/16", "veth-red")),))
def peer_down_keeps_routes():
    """When only the veth peer goes down, red's routes stay (marked linkdown) and are still
    chosen; the ARP for the gateway then fails: "Destination Host Unreachable"."""
    return VETH_PAIR + BOTH_ENDS_UP + LO_UP + """
        ip -n red route add 10.9.0.0/16 via 192.168.15.2
        ip -n red route add 10.8.0.0/16 dev veth-red
        ip -n blue link set veth-blue down
    """


@scenario(ping("blue", "192.168.15.1", UNREACHABLE),
          state=(routes("blue"),),
          fails={"ip -n blue link set veth-blue down": 'Cannot find device "veth-blue"'})
def deleting_one_veth_end_deletes_its_peer():
    """`ip link del` on one end of a veth pair deletes both ends: blue's veth-blue is gone
    with its connected route, so blue has no route ("Network is unreachable") and a later
    command on veth-blue fails with 'Cannot find device "veth-blue"'."""
    return VETH_PAIR + BOTH_ENDS_UP + LO_UP + """
        ip -n red link del veth-red
        ip -n blue link set veth-blue down
    """


@scenario(ping("red", "192.168.15.2", UNREACHABLE),
          ping("blue", "192.168.15.1", UNREACHABLE),
          state=(routes("red"), routes("host")))
def moving_a_link_drops_its_addresses():
    """A link moved to another namespace arrives down and without its addresses (and the
    old namespace loses the routes through it). Set up again in red it has no address, so
    red has no route to blue, and nobody answers blue's ARP for 192.168.15.1."""
    return """
        ip netns add red
        ip netns add blue
        ip link add veth-red type veth peer name veth-blue
        ip addr add 192.168.15.1/24 dev veth-red
        ip link set veth-red up
        ip link set veth-red netns red
        ip link set veth-blue netns blue
        ip -n red link set veth-red up
        ip -n blue addr add 192.168.15.2/24 dev veth-blue
        ip -n blue link set veth-blue up
        ip -n red link set lo up
        ip -n blue link set lo up
    """


@scenario(ping("red", "192.168.15.2", SUCCESS),
          fails={"ip link add a type veth peer name b": '"type" is invalid lladdr',
                 "ip -n red addr add 192.168.15.1/24 dev veth-red": "Address already assigned",
                 "ip netns add red": "Cannot create namespace file",
                 "ip -n red link set veth-nope up": 'Cannot find device "veth-nope"',
                 "ip link add veth-x type veth peer name veth-y": "RTNETLINK answers: File exists",
                 "ip link set veth-x master v-net-0": 'argument "v-net-0" is wrong: Device does '
                                                      'not exist',
                 "ip -n red addr add 192.168.15.300/24 dev veth-red":
                     'any valid prefix is expected rather than "192.168.15.300/24"',
                 "ip -n red route del 10.1.0.0/16": "RTNETLINK answers: No such process"})
def commands_the_kernel_refuses():
    """`ip link add a type …`: "a" abbreviates `address`, so "type" is an invalid lladdr
    (exit 1). A second identical address: "Error: ipv4: Address already assigned." (exit 2).
    A second `ip netns add red`: 'Cannot create namespace file "/run/netns/red": File
    exists' (exit 1). A missing device: 'Cannot find device' (exit 1), or as a master:
    'Error: argument "v-net-0" is wrong: Device does not exist' (exit 255). A second
    veth-x: "RTNETLINK answers: File exists" (exit 2). 192.168.15.300: "Error: any valid
    prefix is expected rather than …" (exit 1). Deleting a route that is not there: "RTNETLINK
    answers: No such process" (exit 2). None of them changes what works: red still reaches
    blue."""
    return VETH_PAIR + BOTH_ENDS_UP + """
        ip link add a type veth peer name b
        ip -n red addr add 192.168.15.1/24 dev veth-red
        ip netns add red
        ip -n red link set veth-nope up
        ip link add veth-x type veth peer name veth-y
        ip link add veth-x type veth peer name veth-y
        ip link set veth-x master v-net-0
        ip -n red addr add 192.168.15.300/24 dev veth-red
        ip -n red route del 10.1.0.0/16
    """


@scenario(ping("red", "127.0.0.1", UNREACHABLE),
          fails={"ip -n red route del 10.1.0.0/16": "FIB table does not exist",
                 "ip -n blue route del 10.1.0.0/16": "RTNETLINK answers: No such process"})
def a_new_namespace_has_no_main_table_yet():
    """The kernel makes a routing table when its first route arrives. In a new namespace
    (lo down, no address) deleting a route fails with "Error: FIB table does not exist."
    (exit 2); once an address has brought a connected route, and even after that route is
    gone again, it is "RTNETLINK answers: No such process"."""
    return """
        ip netns add red
        ip netns add blue
        ip link add veth-blue type veth peer name veth-peer
        ip link set veth-blue netns blue
        ip -n blue addr add 192.168.15.2/24 dev veth-blue
        ip -n blue link set veth-blue up
        ip -n blue link set veth-blue down
        ip -n red route del 10.1.0.0/16
        ip -n blue route del 10.1.0.0/16
    """


@scenario(ping("red", "192.168.15.2", SUCCESS),
          fails={"ip netns exec red sysctl -w net.ipv4.neigh.default.retrans_time_ms=100":
                 "cannot stat /proc/sys/net/ipv4/neigh/default/retrans_time_ms"})
def neigh_default_exists_only_in_the_first_namespace():
    """The kernel registers net.ipv4.neigh.default.* only in the machine's first namespace
    (arp_init); a namespace made later has only per-device neigh keys, so `sysctl -w
    net.ipv4.neigh.default.retrans_time_ms=100` inside red fails: "sysctl: cannot stat
    /proc/sys/net/ipv4/neigh/default/retrans_time_ms: No such file or directory" (exit 1).
    net.ipv4.neigh.veth-red.retrans_time_ms works."""
    return VETH_PAIR + BOTH_ENDS_UP + """
        ip netns exec red sysctl -w net.ipv4.neigh.veth-red.retrans_time_ms=100
        ip netns exec red sysctl -w net.ipv4.neigh.default.retrans_time_ms=100
    """


@scenario(ping("red", "10.9.0.1", SUCCESS))
def arp_answers_for_any_local_address():
    """With arp_ignore=0 (the default) blue answers ARP on veth-blue for 10.9.0.1, an
    address of another of its links: red's on-link route 10.9.0.0/16 dev veth-red works."""
    return VETH_PAIR + BOTH_ENDS_UP + LO_UP + """
        ip link add blue-side type veth peer name host-side
        ip link set blue-side netns blue
        ip -n blue addr add 10.9.0.1/16 dev blue-side
        ip -n blue link set blue-side up
        ip link set host-side up
        ip -n red route add 10.9.0.0/16 dev veth-red
    """


@scenario(ping("red", "10.7.0.1", SUCCESS),
          ping("blue", "10.7.0.1", SUCCESS),
          state=(routes("red", ("192.168.15.0/24", "veth-red")),))
def an_address_on_a_down_link_is_still_local():
    """Setting veth-z down removes its connected route but not its address's entry in the
    local table: 10.7.0.1 stays an address of red, reached over lo from red and over
    veth-red from blue (weak host model, no forwarding involved)."""
    return VETH_PAIR + BOTH_ENDS_UP + LO_UP + """
        ip -n red link add veth-z type veth peer name veth-zp
        ip -n red addr add 10.7.0.1/24 dev veth-z
        ip -n red link set veth-z up
        ip -n red link set veth-z down
        ip -n blue route add 10.7.0.0/24 via 192.168.15.1
    """


# --- bridges -------------------------------------------------------------------------

@scenario(ping("red", "192.168.15.2", SUCCESS),
          ping("blue", "192.168.15.3", SUCCESS),
          ping("green", "192.168.15.1", SUCCESS),
          ping("host", "192.168.15.2", SUCCESS),
          ping("red", "192.168.15.5", SUCCESS))
def bridge_joins_three_namespaces():
    """Three namespaces, each with a veth whose other end is a port of v-net-0 in the host:
    they reach each other through the bridge, and the host reaches them (and they the host)
    through the bridge's own address 192.168.15.5."""
    return BRIDGE


@scenario(ping("red", "192.168.15.2", UNREACHABLE),
          ping("host", "192.168.15.2", UNREACHABLE),
          ping("red", "192.168.15.3", SUCCESS))
def bridge_port_down_cuts_off_its_namespace():
    """With blue's bridge port set down the bridge no longer forwards to it: ARP for
    192.168.15.2 goes unanswered, red and the host see "Destination Host Unreachable";
    green, on an up port, still answers."""
    return BRIDGE + """
        ip link set veth-blue-br down
    """


@scenario(ping("host", "192.168.15.5", SUCCESS),
          state=(carrier("host", "v-net-0", True), carrier("host", "v-net-1", False),
                  carrier("host", "v-net-2", False), carrier("host", "port-2", False),
                  routes("host", ("192.168.15.0/24", "v-net-0"), ("10.5.0.0/16", "v-net-2"))))
def bridge_carrier_follows_its_ports():
    """An up bridge with no ports has carrier (v-net-0, state UNKNOWN). Enslaving a port
    that is down takes the carrier away (v-net-1: NO-CARRIER), and so does a port that is
    up but whose veth peer is down (v-net-2; the port itself is LOWERLAYERDOWN). A route
    through a bridge without carrier is still accepted: only admin down refuses it."""
    return """
        ip link add v-net-0 type bridge
        ip link set dev v-net-0 up
        ip addr add 192.168.15.5/24 dev v-net-0
        ip link add v-net-1 type bridge
        ip link set dev v-net-1 up
        ip link add port-1 type veth peer name peer-1
        ip link set port-1 master v-net-1
        ip link add v-net-2 type bridge
        ip link set dev v-net-2 up
        ip link add port-2 type veth peer name peer-2
        ip link set port-2 master v-net-2
        ip link set port-2 up
        ip route add 10.5.0.0/16 dev v-net-2
    """


# --- forwarding and ICMP errors ---------------------------------------------------------

@scenario(ping("red", "10.0.2.2", TIMEOUT),
          ping("red", "10.0.2.1", SUCCESS),
          tcp("red", "10.0.2.2", 80, TIMEOUT),
          tcp("red", "10.0.2.1", 22, REFUSED))
def router_without_ip_forward_drops_silently():
    """ip_forward is 0 in a new namespace: the router drops packets not addressed to it
    without any ICMP error, so ping and TCP time out. Its own far-side address 10.0.2.1
    is local to it and answers (a closed port there with RST)."""
    return ROUTER + BLUE_ROUTE_BACK


@scenario(ping("red", "10.0.2.2", SUCCESS),
          ping("blue", "10.0.1.2", SUCCESS),
          tcp("red", "10.0.2.2", 80, REFUSED))
def router_with_ip_forward_connects_two_networks():
    """With net.ipv4.ip_forward=1 on the router and a default route on each side, red and
    blue reach each other; a closed TCP port on blue answers RST across the router."""
    return ROUTER + BLUE_ROUTE_BACK + FORWARDING_ON


@scenario(ping("red", "10.0.2.2", SUCCESS))
def ip_forward_applies_to_links_added_later():
    """Writing net.ipv4.ip_forward=1 also sets conf.default.forwarding, so links moved into
    the router afterwards forward too."""
    return """
        ip netns add red
        ip netns add router
        ip netns add blue
        ip netns exec router sysctl -w net.ipv4.ip_forward=1
    """ + ROUTER.replace("    ip netns add red\n    ip netns add router\n    ip netns add blue\n",
                         "") + BLUE_ROUTE_BACK


@scenario(ping("red", "10.0.9.9", UNREACHABLE),
          tcp("red", "10.0.9.9", 80, UNREACHABLE))
def router_without_a_route_answers_net_unreachable():
    """The router forwards but has no route to 10.0.9.9: it answers "Destination Net
    Unreachable" (from 10.0.1.1); a TCP client gets ENETUNREACH during the handshake."""
    return ROUTER + BLUE_ROUTE_BACK + FORWARDING_ON


@scenario(ping("red", "10.0.2.2", UNREACHABLE, ttl=1),
          ping("red", "10.0.2.2", SUCCESS, ttl=2),
          ping("red", "10.0.1.1", SUCCESS, ttl=1),
          ping("red", "10.0.2.1", SUCCESS, ttl=1))
def ttl_runs_out_at_the_router():
    """`ping -t 1` through the router: the router would decrement the TTL to 0 and answers
    "Time to live exceeded" from 10.0.1.1. With -t 2 the echo gets through. TTL 1 is enough
    for the router's own addresses, on either side: nothing is forwarded."""
    return ROUTER + BLUE_ROUTE_BACK + FORWARDING_ON


@scenario(ping("red", "10.0.2.9", UNREACHABLE),
          tcp("red", "10.0.2.9", 80, UNREACHABLE))
def router_arp_failure_answers_host_unreachable():
    """The router forwards towards 10.0.2.9 on its connected network, but nobody answers its
    ARP: it sends "Destination Host Unreachable" (from 10.0.1.1) back to red; a TCP client
    gets EHOSTUNREACH."""
    return ROUTER + BLUE_ROUTE_BACK + FORWARDING_ON


@scenario(ping("red", "10.0.9.9", UNREACHABLE))
def routing_loop_ends_in_ttl_exceeded():
    """The router sends 10.0.9.0/24 to blue, and blue (forwarding, default via the router)
    sends it back: the packet bounces until its TTL runs out and one of them answers
    "Time to live exceeded"."""
    return ROUTER + BLUE_ROUTE_BACK + FORWARDING_ON + """
        ip -n router route add 10.0.9.0/24 via 10.0.2.2
        ip netns exec blue sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
    """


@scenario(ping("router", "10.0.9.9", TIMEOUT),
          tcp("router", "10.0.9.9", 80, TIMEOUT),
          ping("red", "10.0.9.9", UNREACHABLE))
def a_loop_through_the_sender_is_a_martian_source():
    """The same loop, but the router itself sends: blue hands the packet back, and the
    router drops it on input because its source is the router's own 10.0.2.1 (a martian
    source, fib_validate_source): no "Time to live exceeded", a silent timeout. red's
    packets still bounce until the TTL runs out. (Found by the random twin test.)"""
    return ROUTER + BLUE_ROUTE_BACK + FORWARDING_ON + """
        ip -n router route add 10.0.9.0/24 via 10.0.2.2
        ip netns exec blue sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
    """


@scenario(ping("red", "10.0.2.2", TIMEOUT),
          udp("red", "10.0.2.2", 53, SUCCESS),
          tcp("red", "10.0.2.2", 81, TIMEOUT),
          ping("blue", "10.0.1.2", TIMEOUT))
def forwarding_is_decided_by_the_ingress_device():
    """Only net.ipv4.conf.r-red.forwarding=1 on the router: packets that come in on r-red
    are forwarded, those that come in on r-blue are dropped silently. red's datagram
    reaches blue's listener, but every answer from blue is dropped, so ping and TCP time
    out; blue's own ping never gets through."""
    return ROUTER + BLUE_ROUTE_BACK + """
        ip netns exec router sysctl -w net.ipv4.conf.r-red.forwarding=1
        ip netns exec blue nc -l -u -p 53 &
    """


@scenario(ping("red", "10.0.2.2", TIMEOUT),
          tcp("red", "10.0.2.2", 80, TIMEOUT),
          udp("red", "10.0.2.2", 53, SUCCESS),
          ping("router", "10.0.2.2", SUCCESS))
def missing_return_route_times_out():
    """blue has no route back to 10.0.1.0/24: the request arrives, the answer has "Network
    is unreachable" inside blue and is never sent, so red's ping and TCP time out. A UDP
    datagram still reaches blue's listener (delivered, though no echo comes back). The
    router, on blue's network, gets its answers."""
    return ROUTER + FORWARDING_ON + """
        ip netns exec blue nc -l -u -p 53
        ip netns exec blue nc -l -p 80
    """


@scenario(ping("blue", "10.0.2.2", SUCCESS),
          ping("blue", "10.0.1.2", SUCCESS),
          ping("red", "10.0.2.2", TIMEOUT),
          state=(routes("blue", ("10.0.2.0/24", "veth-blue"), ("10.0.3.0/24", "blue-direct"),
                         ("10.0.1.0/24", "blue-direct")),))
def rp_filter_drops_asymmetric_traffic():
    """red reaches blue (10.0.2.2) through the router, but blue's route back to 10.0.1.0/24
    goes over a direct link to red. With rp_filter=1 on blue, a packet from 10.0.1.2
    arriving on veth-blue fails the reverse-path check and is dropped: red times out.
    blue's own traffic is not subject to the check."""
    return ROUTER + FORWARDING_ON + ASYMMETRIC + """
        ip netns exec blue sysctl -w net.ipv4.conf.all.rp_filter=1
    """


@scenario(ping("red", "10.0.2.2", SUCCESS))
def asymmetric_traffic_passes_without_rp_filter():
    """The same asymmetric routes with rp_filter=0 (the default): the request comes in on
    veth-blue, the reply leaves over the direct link, and red accepts it."""
    return ROUTER + FORWARDING_ON + ASYMMETRIC


@scenario(ping("red", "10.0.2.2", TIMEOUT))
def rp_filter_on_the_device_alone_is_enough():
    """The kernel uses the larger of conf.all.rp_filter and conf.<dev>.rp_filter: strict mode
    on veth-blue alone drops the asymmetric request."""
    return ROUTER + FORWARDING_ON + ASYMMETRIC + """
        ip netns exec blue sysctl -w net.ipv4.conf.veth-blue.rp_filter=1
    """


@scenario(ping("red", "10.0.2.2", SUCCESS))
def loose_rp_filter_accepts_asymmetric_traffic():
    """rp_filter=2 (loose) only asks for some route back to the source, whatever the
    device: the asymmetric request passes and the echo comes back over the direct link."""
    return ROUTER + FORWARDING_ON + ASYMMETRIC + """
        ip netns exec blue sysctl -w net.ipv4.conf.all.rp_filter=2
    """


# --- transport: listeners decide ----------------------------------------------------------

@scenario(tcp("red", "10.0.2.2", 80, REFUSED),
          ping("red", "10.0.2.2", SUCCESS),
          ping("host", "10.0.2.2", SUCCESS),
          ping("red", "10.0.2.1", SUCCESS),
          tcp("host", "10.0.1.2", 22, REFUSED))
def tcp_to_a_port_without_listener_is_refused():
    """The host routes (echo 1 > /proc/sys/net/ipv4/ip_forward); nothing listens on blue's
    port 80, so blue answers the SYN with RST: connection refused. The host reaches both
    namespaces directly, and red reaches the host's address on blue's side."""
    return HOST_ROUTES


@scenario(tcp("red", "10.0.2.2", 80, SUCCESS),
          tcp("red", "10.0.2.2", 81, REFUSED))
def tcp_to_a_listener_connects():
    """`nc -l -p 80` in blue: the handshake completes for port 80; port 81 is still
    refused."""
    return HOST_ROUTES + """
        ip netns exec blue nc -l -p 80
    """


@scenario(udp("red", "10.0.2.2", 53, REFUSED))
def udp_to_a_closed_port_is_refused():
    """No UDP socket on blue's port 53: blue answers with ICMP port unreachable, which the
    connected UDP socket reports as ECONNREFUSED."""
    return HOST_ROUTES


@scenario(udp("red", "10.0.2.2", 53, SUCCESS),
          udp("red", "10.0.2.2", 54, REFUSED))
def udp_to_a_listener_is_delivered():
    """`nc -l -u -p 53` in blue receives the datagram (the test's listener echoes it back);
    port 54 is still refused."""
    return HOST_ROUTES + """
        ip netns exec blue nc -l -u -p 53
    """


# --- running both halves ---------------------------------------------------------------------

@dataclass
class Observation:
    outcome: str
    detail: str


def model_key(learner: str) -> str:
    return "host/root" if learner == "host" else f"host/{learner}"


def run_on_model(sc: Scenario, shell_class) -> tuple[list, dict]:
    from netlab.backends.model import ModelBackend, oper_up
    from netlab.dataplane import trace
    from netlab.ops import AddNode

    backend = ModelBackend()
    backend.apply(AddNode("host"))
    shell = shell_class(backend, "host")
    results = [shell.run(line) for line in sc.lines()]
    seen: dict = {}
    for probe in sc.probes:
        try:
            t = trace(backend.world, model_key(probe.src), probe.dst, proto=probe.proto,
                      dport=probe.port, ttl=probe.ttl if probe.ttl is not None else 64)
        except Exception as exc:    # a missing namespace, say: the comparison shows it
            seen[probe] = Observation("error", f"{type(exc).__name__}: {exc}")
            continue
        seen[probe] = Observation(t.outcome, json.dumps(t.to_json(), indent=1))
    for check in sc.state:
        ns = backend.world.namespaces.get(model_key(check.netns))
        if isinstance(check, Carrier):
            link = ns.links.get(check.dev) if ns else None
            seen[check] = oper_up(backend.world, ns, link) if link else None
        else:
            seen[check] = frozenset((normal_cidr(r.dst), r.dev) for r in ns.routes) if ns else None
    return results, seen


def run_on_kernel(sc: Scenario, host) -> tuple[list, dict]:
    results = [host.run(line) for line in sc.lines()]
    host.prepare_for_probes()
    seen: dict = {}
    for probe in sc.probes:
        if probe.proto == "icmp":
            r = host.ping(probe.src, probe.dst, ttl=probe.ttl)
        else:
            r = host.connect(probe.src, probe.dst, probe.proto, probe.port)
        seen[probe] = Observation(r.outcome, r.raw)
    for check in sc.state:
        if isinstance(check, Carrier):
            seen[check] = host.carrier(check.netns, check.dev)
        else:
            seen[check] = frozenset(host.routes(check.netns))
    return results, seen


def line_verdict(ok: bool, error: str, wanted: str | None) -> str:
    """"ok", or how the line failed, naming only the wanted words when they are there."""
    if ok:
        return "ok"
    if wanted is not None and wanted in error:
        return f"fails: {wanted}"
    return f"fails: {error.strip() or '(no message)'}"


def model_status(result) -> int | None:
    return getattr(result, "status", None)


def disagreements(sc: Scenario, model, kernel) -> list[str]:
    (m_lines, m_seen), (k_lines, k_seen) = model, kernel
    problems = []
    lines = sc.lines()
    last = {line: i for i, line in enumerate(lines)}
    for i, (line, m, k) in enumerate(zip(lines, m_lines, k_lines)):
        wanted = sc.fails.get(line) if last[line] == i else None
        want = "ok" if wanted is None else f"fails: {wanted}"
        got_m = line_verdict(m.ok, m.error or "", wanted)
        got_k = line_verdict(k.ok, k.error, wanted)
        if not (got_m == got_k == want):
            problems.append(f"line `{line}`: expected {want}; model {got_m}; kernel {got_k}")
        elif not k.ok and model_status(m) != k.status:
            problems.append(f"line `{line}`: kernel exits {k.status}, model says status "
                            f"{model_status(m)}")
    for probe in sc.probes:
        m, k = m_seen[probe], k_seen[probe]
        if not (m.outcome == k.outcome == probe.expect):
            problems.append(f"{probe}: expected {probe.expect}; model {m.outcome}; kernel "
                            f"{k.outcome}\n  kernel: {k.detail}\n  model trace: {m.detail}")
    for check in sc.state:
        m, k = m_seen[check], k_seen[check]
        if not (m == k == check.expect):
            shown = (lambda x: sorted(x) if isinstance(x, frozenset) else x)
            problems.append(f"{check}: expected {shown(check.expect)}; model {shown(m)}; "
                            f"kernel {shown(k)}")
    return problems


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_model_and_kernel_agree(sc: Scenario, shell_class, real_host):
    model = run_on_model(sc, shell_class)
    kernel = run_on_kernel(sc, real_host)
    problems = disagreements(sc, model, kernel)
    assert not problems, (f"{sc.id}: {sc.kernel}\n\n" + "\n\n".join(problems)
                          + "\n\nkernel commands:\n" + "\n".join(real_host.log))


def test_no_namespace_left_behind(namespaces_left_by_this_run):
    assert namespaces_left_by_this_run() == []
