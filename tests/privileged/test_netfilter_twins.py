"""Netfilter on the model and on the real kernel: the same iptables lines, the same outcomes.

Each scenario is a script typed as a learner types it in the root namespace of a
machine ``host`` (iptables inside ``ip netns exec NS`` acts on that namespace),
with probes between the blocks of the script. A probe checks what the sender
observes (success, refused, unreachable, timeout) and what the listener saw: the
namespace and port it was reached on (the destination after DNAT) and the peer
address (the source after SNAT / MASQUERADE). The docstring says what the
kernel does.

Model: ``Shell`` runs the lines, ``dataplane.trace`` predicts each probe (its
conntrack table stays in the World from one probe to the next, as the kernel's
does). Kernel: kernel_host.RealHost runs the lines in namespaces of its own.

Where the model and the kernel disagree the scenario is marked
``xfail(strict=True)`` with what each does, so a fix in netlab shows up as an
XPASS; netlab code is not bent to the test.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import dataclass
from typing import Callable

import pytest

from kernel_host import connect_from, listener_count, new_peers, read_back
from topologies import BLUE_ROUTE_BACK
from topologies import BRIDGE as BRIDGE_TOPOLOGY
from topologies import ROUTER as ROUTER_TOPOLOGY
from netlab.trace import DELIVERED, REFUSED, SUCCESS, TIMEOUT, UNREACHABLE

pytestmark = pytest.mark.privileged

NOBODY = ()          # a probe that no listener may see


# --- the vocabulary of a scenario ----------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """A ping, a TCP connect or a UDP datagram from ``src`` (a learner's namespace, or host).

    ``seen`` is what the listener logs: (namespace, port, peer address), or NOBODY;
    None leaves it unchecked (ping has no listener). TCP and UDP probes use a fixed
    source port ``sport``, so a later probe can reuse a flow and NAT never has to pick
    another port."""
    src: str
    dst: str
    proto: str
    expect: str
    port: int | None = None
    sport: int | None = None
    seen: tuple | None = None

    def __str__(self) -> str:
        if self.proto == "icmp":
            return f"ping {self.src} → {self.dst}"
        return f"{self.proto} {self.src}:{self.sport} → {self.dst}:{self.port}"


_sports = iter(range(41001, 42000))


def ping(src: str, dst: str, expect: str) -> Probe:
    return Probe(src, dst, "icmp", expect)


def tcp(src: str, dst: str, port: int, expect: str, seen: tuple | None = None,
        sport: int | None = None) -> Probe:
    return Probe(src, dst, "tcp", expect, port, sport or next(_sports), seen)


def udp(src: str, dst: str, port: int, expect: str, seen: tuple | None = None,
        sport: int | None = None) -> Probe:
    return Probe(src, dst, "udp", expect, port, sport or next(_sports), seen)


def at(netns: str, port: int, peer: str) -> tuple:
    """The listener in ``netns`` on ``port`` saw a connection from ``peer``."""
    return ((netns, port, peer),)


@dataclass(frozen=True)
class Scenario:
    id: str
    kernel: str                         # what the kernel does
    steps: tuple                        # script blocks (str) and Probes, in order
    disagree: str | None = None         # the model/kernel difference, when known (xfail)

    def blocks(self):
        for step in self.steps:
            if isinstance(step, str):
                yield [line.strip() for line in textwrap.dedent(step).splitlines()
                       if line.strip() and not line.strip().startswith("#")]
            else:
                yield step


SCENARIOS: list[Scenario] = []


def scenario(*steps, disagree: str | None = None):
    """Register a scenario: the docstring says what the kernel does; the body returns the
    setup script; ``steps`` (probes and more script) follow it."""
    def register(build: Callable[[], str]) -> Callable[[], str]:
        SCENARIOS.append(Scenario(build.__name__.replace("_", "-"),
                                  textwrap.dedent(build.__doc__ or "").strip(),
                                  (build(),) + steps, disagree))
        return build
    return register


# --- topologies, as a learner types them ---------------------------------------------------

# red (10.0.1.2) — router (10.0.1.1 | 10.0.2.1) — blue (10.0.2.2)
ROUTER = ROUTER_TOPOLOGY + """
    ip netns exec router sysctl -w net.ipv4.ip_forward=1
"""
BLUE_LISTENS = """
    ip netns exec blue nc -l -p 80 &
    ip netns exec blue nc -l -p 81 &
    ip netns exec blue nc -l -u -p 53 &
"""

# red, blue, green on the host's bridge v-net-0 (192.168.15.0/24, the host is .5)
BRIDGE = BRIDGE_TOPOLOGY + """
    ip netns exec blue nc -l -p 80 &
"""


# --- DNAT and the routing decision ----------------------------------------------------------

@scenario(tcp("red", "10.0.1.1", 8080, SUCCESS, seen=at("blue", 80, "10.0.1.2")),
          tcp("red", "10.0.1.1", 8081, REFUSED, seen=NOBODY),
          ping("red", "10.0.1.1", SUCCESS))
def dnat_in_prerouting_then_routing():
    """A DNAT in the router's PREROUTING turns 10.0.1.1:8080 (the router's own address)
    into 10.0.2.2:80 before the routing decision: the packet is forwarded to blue, not
    delivered locally. blue's listener sees red's own address; red gets the answer from
    10.0.1.1:8080 (the reply is un-DNATed). Port 8081 is not translated: the router
    itself answers with RST."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec router iptables -t nat -A PREROUTING -d 10.0.1.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.2.2:80
    """


@scenario(tcp("router", "10.9.9.9", 80, SUCCESS, seen=at("blue", 80, "10.0.1.1")),
          tcp("router", "10.9.9.9", 81, TIMEOUT, seen=NOBODY))
def dnat_in_output_reroutes():
    """The router's own connection to 10.9.9.9:80 first routes by its default route (via
    red, source 10.0.1.1). A DNAT in nat OUTPUT to 10.0.2.2:80 makes the kernel route the
    packet again: it leaves through r-blue, but keeps the source address chosen by the
    first lookup, so blue's listener sees 10.0.1.1. Port 81 is not translated: it goes to
    red, which does not forward, and times out."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip -n router route add default via 10.0.1.2
        ip netns exec router iptables -t nat -A OUTPUT -d 10.9.9.9/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.2.2:80
    """


# --- MASQUERADE and the reply ----------------------------------------------------------------

@scenario(tcp("red", "10.0.2.2", 80, TIMEOUT, seen=NOBODY),
          udp("red", "10.0.2.2", 54, SUCCESS, seen=at("blue", 54, "10.0.1.2")),
          ping("red", "10.0.2.2", TIMEOUT),
          """
          ip netns exec router iptables -t nat -A POSTROUTING -s 10.0.1.0/24 -j MASQUERADE
          """,
          tcp("red", "10.0.2.2", 80, SUCCESS, seen=at("blue", 80, "10.0.2.1")),
          udp("red", "10.0.2.2", 53, SUCCESS, seen=at("blue", 53, "10.0.2.1")),
          ping("red", "10.0.2.2", SUCCESS))
def masquerade_picks_the_egress_address():
    """blue has no route back to 10.0.1.0/24: red's requests arrive (the UDP listener sees
    10.0.1.2) but no answer gets back. With MASQUERADE on the router the source becomes the
    address of the egress device r-blue, 10.0.2.1: blue answers it, and the router undoes
    the translation on the reply (red's socket accepts the answer from 10.0.2.2).
    (The first datagram goes to port 54: the harness's UDP listener exits when its echo
    cannot be sent.)"""
    return ROUTER + BLUE_LISTENS + """
        ip netns exec blue nc -l -u -p 54 &
    """


@scenario(tcp("red", "10.0.2.2", 80, SUCCESS, seen=at("blue", 80, "10.0.2.1")),
          ping("red", "10.0.2.2", SUCCESS))
def masquerade_uses_the_address_on_the_nexthops_network():
    """r-blue holds 10.0.3.1/24 first and 10.0.2.1/24 second. MASQUERADE asks the device
    for an address on the next hop's network (inet_select_addr), so blue sees 10.0.2.1,
    not the first address of the device."""
    second = "    ip -n router addr add 10.0.2.1/24 dev r-blue\n"
    assert second in ROUTER
    return ROUTER.replace(second, "    ip -n router addr add 10.0.3.1/24 dev r-blue\n" + second) + """
        ip netns exec router iptables -t nat -A POSTROUTING -o r-blue -j MASQUERADE
    """ + BLUE_LISTENS


@scenario(tcp("red", "10.0.2.2", 80, SUCCESS, seen=at("blue", 80, "10.0.2.1")),
          tcp("blue", "10.0.1.2", 80, SUCCESS, seen=at("red", 80, "10.0.1.1")))
def masquerade_follows_the_egress_device_both_ways():
    """One MASQUERADE rule for everything the router forwards: red → blue leaves through
    r-blue and is seen as 10.0.2.1; blue → red leaves through r-red and is seen as
    10.0.1.1."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec red nc -l -p 80 &
        ip netns exec router iptables -t nat -A POSTROUTING -j MASQUERADE
    """


# --- FORWARD policy and conntrack state -------------------------------------------------------

@scenario(tcp("red", "10.0.2.2", 80, SUCCESS, seen=at("blue", 80, "10.0.1.2")),
          ping("red", "10.0.2.2", SUCCESS),
          udp("red", "10.0.2.2", 53, SUCCESS, seen=at("blue", 53, "10.0.1.2")),
          ping("blue", "10.0.1.2", TIMEOUT))
def forward_drop_with_established_accept():
    """FORWARD policy DROP; new traffic is accepted only from r-red to r-blue, and
    `--ctstate ESTABLISHED,RELATED -j ACCEPT` lets the replies through. red reaches blue;
    blue's own ping to red is a new connection in the other direction and is dropped."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec router iptables -P FORWARD DROP
        ip netns exec router iptables -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        ip netns exec router iptables -A FORWARD -i r-red -o r-blue -j ACCEPT
    """


@scenario(tcp("red", "10.0.2.2", 80, TIMEOUT, seen=NOBODY),
          ping("red", "10.0.2.2", TIMEOUT),
          udp("red", "10.0.2.2", 53, SUCCESS, seen=at("blue", 53, "10.0.1.2")))
def forward_drop_without_established_accept_drops_replies():
    """The same FORWARD DROP policy without the ESTABLISHED,RELATED rule: the SYN and the
    echo request pass, the SYN-ACK and the echo reply are dropped (red times out, blue's
    listener never completes a handshake); a UDP datagram still arrives."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec router iptables -P FORWARD DROP
        ip netns exec router iptables -A FORWARD -i r-red -o r-blue -j ACCEPT
    """


@scenario(udp("red", "10.0.2.2", 53, SUCCESS, seen=at("blue", 53, "10.0.1.2"), sport=43053),
          """
          ip netns exec router iptables -t nat -A PREROUTING -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.2.2:54
          """,
          udp("red", "10.0.2.2", 53, SUCCESS, seen=at("blue", 53, "10.0.1.2"), sport=43053),
          udp("red", "10.0.2.2", 53, SUCCESS, seen=at("blue", 54, "10.0.1.2"), sport=43054))
def nat_is_not_consulted_for_established_flows():
    """The router already has a nat table (a rule for another port), so conntrack is
    running there. A UDP flow red:43053 → blue:53 is answered, and conntrack knows it. A
    DNAT rule added afterwards does not touch that flow: the nat table sees only a
    connection's first packet, and the next datagram from port 43053 still reaches port
    53. A new flow (from port 43054) is translated to port 54."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec blue nc -l -u -p 54 &
        ip netns exec router iptables -t nat -A PREROUTING -p udp -m udp --dport 5353 -j DNAT --to-destination 10.0.2.2:53
    """


@scenario(udp("red", "10.0.2.2", 53, SUCCESS, seen=at("blue", 53, "10.0.1.2"), sport=43153),
          """
          ip netns exec router iptables -t nat -A PREROUTING -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.2.2:54
          """,
          udp("red", "10.0.2.2", 53, SUCCESS, seen=at("blue", 54, "10.0.1.2"), sport=43153))
def conntrack_starts_with_the_first_rule_that_needs_it():
    """A namespace without any iptables rules does not run conntrack: the router forwards
    red:43153 → blue:53 untracked. The first nat rule starts conntrack in the namespace,
    so the next datagram of that flow is a NEW connection for it and is translated to port
    54."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec blue nc -l -u -p 54 &
    """


# --- REJECT ----------------------------------------------------------------------------------

@scenario(tcp("red", "10.0.2.2", 80, REFUSED, seen=NOBODY),
          tcp("red", "10.0.2.2", 81, REFUSED, seen=NOBODY),
          tcp("red", "10.0.2.2", 82, UNREACHABLE, seen=NOBODY),
          udp("red", "10.0.2.2", 53, REFUSED, seen=NOBODY),
          ping("red", "10.0.2.2", REFUSED),
          tcp("red", "10.0.2.1", 22, REFUSED))
def reject_answers():
    """In the router's FORWARD chain: `--reject-with tcp-reset` answers the SYN with a RST;
    the default REJECT (icmp-port-unreachable) refuses TCP and UDP alike (ECONNREFUSED) and
    makes ping print "Destination Port Unreachable"; `icmp-host-unreachable` gives
    EHOSTUNREACH. Traffic to the router itself (INPUT) is not touched: port 22 is closed
    and answered with RST."""
    return ROUTER + BLUE_ROUTE_BACK + """
        ip netns exec blue nc -l -p 80 &
        ip netns exec blue nc -l -p 81 &
        ip netns exec blue nc -l -p 82 &
        ip netns exec blue nc -l -u -p 53 &
        ip netns exec router iptables -A FORWARD -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset
        ip netns exec router iptables -A FORWARD -p tcp -m tcp --dport 81 -j REJECT
        ip netns exec router iptables -A FORWARD -p tcp -m tcp --dport 82 -j REJECT --reject-with icmp-host-unreachable
        ip netns exec router iptables -A FORWARD -p udp -m udp --dport 53 -j REJECT
        ip netns exec router iptables -A FORWARD -p icmp -j REJECT --reject-with icmp-port-unreachable
    """


@scenario(ping("red", "10.0.2.2", TIMEOUT),
          tcp("red", "10.0.2.2", 80, TIMEOUT, seen=NOBODY),
          ping("red", "10.0.1.1", SUCCESS))
def output_drop():
    """`iptables -A OUTPUT -d 10.0.2.2 -j DROP` inside red: ping gets no reply (and prints
    no error), TCP times out; other destinations are not affected."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec red iptables -A OUTPUT -d 10.0.2.2/32 -j DROP
    """


@scenario(udp("red", "10.0.2.2", 53, "error", seen=NOBODY),
          disagree=None)
def output_drop_fails_udp_send():
    """OUTPUT DROP in red: a UDP send() fails at once with EPERM ("Operation not
    permitted"), which is none of success / refused / unreachable / timeout: the probe
    reports "error"."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec red iptables -A OUTPUT -d 10.0.2.2/32 -j DROP
    """


@scenario(ping("red", "10.0.2.2", REFUSED),
          tcp("red", "10.0.2.2", 80, REFUSED, seen=NOBODY),
          udp("red", "10.0.2.2", 53, "error", seen=NOBODY),
          ping("red", "10.0.1.1", SUCCESS))
def output_reject():
    """`iptables -A OUTPUT -d 10.0.2.2 -j REJECT` inside red: red's own stack answers
    itself with ICMP port unreachable: ping prints "Destination Port Unreachable" (from
    red's own address), TCP is refused at once, a UDP send() fails with EPERM."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec red iptables -A OUTPUT -d 10.0.2.2/32 -j REJECT
    """


@scenario(udp("red", "10.0.2.2", 54, TIMEOUT, seen=NOBODY),
          tcp("red", "10.0.2.2", 84, UNREACHABLE, seen=NOBODY),
          udp("red", "10.0.2.2", 55, UNREACHABLE, seen=NOBODY),
          udp("red", "10.0.9.9", 53, TIMEOUT, seen=NOBODY),
          ping("red", "10.0.9.9", UNREACHABLE),
          udp("red", "10.0.1.77", 53, TIMEOUT, seen=NOBODY))
def udp_hears_only_the_fatal_icmp_errors():
    """A connected UDP socket without IP_RECVERR reports only the "fatal" ICMP errors
    (icmp_err_convert): `--reject-with icmp-host-unreachable` and the router's own "net
    unreachable" (no route to 10.0.9.9) leave it waiting, while a TCP connect gets
    EHOSTUNREACH and ping prints the error; `icmp-host-prohibited` reaches the UDP
    socket (EHOSTUNREACH). red's own failed ARP for 10.0.1.77 is silent for UDP too.
    (Found by the random twin test.)"""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec router iptables -A FORWARD -p udp --dport 54 -j REJECT --reject-with icmp-host-unreachable
        ip netns exec router iptables -A FORWARD -p tcp --dport 84 -j REJECT --reject-with icmp-host-unreachable
        ip netns exec router iptables -A FORWARD -p udp --dport 55 -j REJECT --reject-with icmp-host-prohibited
    """


@scenario(tcp("blue", "10.0.2.2", 80, SUCCESS, seen=at("blue", 80, "10.0.2.2")),
          udp("blue", "10.0.2.2", 53, SUCCESS, seen=at("blue", 53, "10.0.2.2")))
def masquerade_on_lo_keeps_a_global_source():
    """`-t nat -A POSTROUTING -s 10.0.2.0/24 -j MASQUERADE` in blue also matches blue's
    traffic to itself, which leaves through lo. MASQUERADE wants an address of universe
    scope and lo's 127.0.0.1 is host scope, so it takes blue's own 10.0.2.2: the listener
    sees 10.0.2.2, not 127.0.0.1. (Found by the random twin test.)"""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec blue iptables -t nat -A POSTROUTING -s 10.0.2.0/24 -j MASQUERADE
    """


@scenario(tcp("red", "10.0.1.2", 8080, TIMEOUT, seen=NOBODY),
          udp("red", "10.0.1.2", 8080, UNREACHABLE, seen=NOBODY),
          ping("red", "10.0.1.1", SUCCESS))
def output_dnat_to_an_unroutable_address():
    """In red, OUTPUT DNAT of red's own 10.0.1.2:8080 to 10.9.9.9, which red has no route
    for (its default route is gone): the re-route after DNAT fails and the packet is
    dropped with ENETUNREACH. A UDP send() returns that error; TCP's connect() ignores it,
    retries the SYN and times out. (Found by the random twin test.)"""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip -n red route del default
        ip netns exec red iptables -t nat -A OUTPUT -p tcp --dport 8080 -j DNAT --to-destination 10.9.9.9:80
        ip netns exec red iptables -t nat -A OUTPUT -p udp --dport 8080 -j DNAT --to-destination 10.9.9.9:53
    """


@scenario(tcp("red", "10.0.2.2", 80, REFUSED, seen=NOBODY),
          disagree="the model ends a TCP probe at the SYN-ACK; the kernel's client sends the "
                   "handshake's last ACK, which blue's INPUT rejects as ESTABLISHED, and a "
                   "connect() with a timeout (nc -w, curl) then reports ECONNREFUSED "
                   "(a blocking connect() still succeeds)")
def input_reject_of_established_refuses_after_the_handshake():
    """`-I INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j REJECT` in blue: the SYN is
    NEW and gets its SYN-ACK, but red's final ACK is ESTABLISHED and rejected with ICMP
    port unreachable; nc -z and curl (non-blocking connect) see "Connection refused".
    (Found by the random twin test, seed 9009, scenario 22.)"""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec blue iptables -I INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j REJECT
    """


@scenario(ping("red", "10.0.1.77", TIMEOUT),
          tcp("red", "10.0.1.77", 80, TIMEOUT, seen=NOBODY),
          udp("red", "10.0.1.77", 53, TIMEOUT, seen=NOBODY),
          ping("blue", "10.0.2.77", UNREACHABLE))
def input_drop_hides_the_senders_own_host_unreachable():
    """Nobody has 10.0.1.77: red's ARP fails and red's own stack sends itself ICMP host
    unreachable, which loops back through lo and crosses red's INPUT chain. With
    `-P INPUT DROP` in red it never reaches the socket: ping, TCP and UDP time out
    instead of "No route to host". blue, without the rule, sees the unreachable.
    (Found by the random twin test.)"""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec red iptables -P INPUT DROP
    """


# --- bridges: br_netfilter ------------------------------------------------------------------

@scenario(ping("red", "192.168.15.2", TIMEOUT),
          tcp("red", "192.168.15.2", 80, TIMEOUT, seen=NOBODY),
          ping("host", "192.168.15.2", SUCCESS),
          """
          sysctl -w net.bridge.bridge-nf-call-iptables=0
          """,
          ping("red", "192.168.15.2", SUCCESS),
          tcp("red", "192.168.15.2", 80, SUCCESS, seen=at("blue", 80, "192.168.15.1")))
def bridged_traffic_hits_forward_only_with_br_netfilter():
    """With bridge-nf-call-iptables=1 (the default here) frames between two ports of
    v-net-0 go through the host's FORWARD chain: `-P FORWARD DROP` cuts red off from blue
    (the host's own traffic is OUTPUT/INPUT, not FORWARD). With the sysctl at 0 the bridge
    switches them without asking iptables."""
    return BRIDGE + """
        iptables -P FORWARD DROP
    """


@scenario(ping("red", "192.168.15.2", SUCCESS),
          tcp("red", "192.168.15.2", 80, SUCCESS, seen=at("blue", 80, "192.168.15.1")))
def bridged_traffic_matches_the_bridge_name():
    """In FORWARD, `-i` and `-o` of a bridged packet name the bridge, not its ports: `-i
    v-net-0 -o v-net-0 -j ACCEPT` lets red reach blue under a DROP policy."""
    return BRIDGE + """
        iptables -P FORWARD DROP
        iptables -A FORWARD -i v-net-0 -o v-net-0 -j ACCEPT
    """


@scenario(tcp("red", "192.168.15.2", 80, SUCCESS, seen=at("blue", 80, "192.168.15.5")),
          ping("red", "192.168.15.2", SUCCESS))
def masquerade_on_the_same_bridge_rewrites_the_source():
    """With br_netfilter, a `-s 192.168.15.0/24 -j MASQUERADE` on the host rewrites traffic
    between two ports of the same bridge: blue's listener sees the bridge's address
    192.168.15.5, and the answer is un-NATed back to red."""
    return BRIDGE + """
        echo 1 > /proc/sys/net/ipv4/ip_forward
        iptables -t nat -A POSTROUTING -s 192.168.15.0/24 -j MASQUERADE
    """


@scenario(tcp("red", "192.168.15.2", 80, TIMEOUT, seen=NOBODY),
          ping("red", "192.168.15.2", TIMEOUT))
def masquerade_on_the_same_bridge_needs_ip_forward():
    """The same MASQUERADE with ip_forward=0: blue answers the bridge's address
    192.168.15.5, so the answer is addressed to the host itself and goes up its IP
    stack; conntrack un-NATs it in PREROUTING to 192.168.15.1, which the host must now
    forward — and forwarding is off. The SYN-ACK and the echo reply are dropped."""
    return BRIDGE + """
        iptables -t nat -A POSTROUTING -s 192.168.15.0/24 -j MASQUERADE
    """


@scenario(tcp("red", "192.168.15.2", 80, SUCCESS, seen=at("blue", 80, "192.168.15.1")))
def masquerade_that_excludes_the_bridge_keeps_the_source():
    """`-s 192.168.15.0/24 ! -o v-net-0 -j MASQUERADE` (Docker's form): for a bridged packet
    `-o` names the bridge, so traffic between two of its ports is not rewritten."""
    return BRIDGE + """
        echo 1 > /proc/sys/net/ipv4/ip_forward
        iptables -t nat -A POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 -j MASQUERADE
    """


# --- Docker's port mapping (lab 06) ------------------------------------------------------------

DOCKER_HOST = """
    ip netns add node2
    ip netns add web
    ip link add eth0 type veth peer name eth0 netns node2
    ip addr add 192.168.1.2/24 dev eth0
    ip link set eth0 up
    ip -n node2 addr add 192.168.1.3/24 dev eth0
    ip -n node2 link set eth0 up
    ip -n node2 link set lo up
    ip link add docker0 type bridge
    ip addr add 172.17.0.1/16 dev docker0
    ip link set docker0 up
    ip link add veth0a1b2c3 type veth peer name eth0 netns web
    ip link set veth0a1b2c3 master docker0
    ip link set veth0a1b2c3 up
    ip -n web addr add 172.17.0.2/16 dev eth0
    ip -n web link set eth0 up
    ip -n web link set lo up
    ip -n web route add default via 172.17.0.1
    ip netns exec web nc -l -p 80 &
    ip netns exec web nc -l -p 22 &
    ip netns exec node2 nc -l -p 80 &
    sysctl -w net.ipv4.ip_forward=1
    iptables -t nat -N DOCKER
    iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
    iptables -t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
    iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
    iptables -t nat -A DOCKER -i docker0 -j RETURN
    iptables -P FORWARD DROP
    iptables -N DOCKER
    iptables -N DOCKER-ISOLATION-STAGE-1
    iptables -N DOCKER-ISOLATION-STAGE-2
    iptables -N DOCKER-USER
    iptables -A FORWARD -j DOCKER-USER
    iptables -A FORWARD -j DOCKER-ISOLATION-STAGE-1
    iptables -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    iptables -A FORWARD -o docker0 -j DOCKER
    iptables -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
    iptables -A FORWARD -i docker0 -o docker0 -j ACCEPT
    iptables -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
    iptables -A DOCKER-ISOLATION-STAGE-1 -j RETURN
    iptables -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
    iptables -A DOCKER-ISOLATION-STAGE-2 -j RETURN
    iptables -A DOCKER-USER -j RETURN
    iptables -t nat -A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
    iptables -t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
    iptables -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
"""


@scenario(tcp("node2", "192.168.1.2", 8080, SUCCESS, seen=at("web", 80, "192.168.1.3")),
          tcp("host", "192.168.1.2", 8080, SUCCESS, seen=at("web", 80, "192.168.1.2")),
          tcp("host", "172.17.0.1", 8080, SUCCESS, seen=at("web", 80, "172.17.0.1")),
          tcp("host", "127.0.0.1", 8080, REFUSED, seen=NOBODY),
          tcp("web", "192.168.1.3", 80, SUCCESS, seen=at("node2", 80, "192.168.1.2")),
          tcp("web", "192.168.1.2", 8080, REFUSED, seen=NOBODY),
          tcp("node2", "172.17.0.2", 80, UNREACHABLE, seen=NOBODY),
          """
          ip -n node2 route add 172.17.0.0/16 via 192.168.1.2
          """,
          tcp("node2", "172.17.0.2", 80, SUCCESS, seen=at("web", 80, "192.168.1.3")),
          tcp("node2", "172.17.0.2", 22, TIMEOUT, seen=NOBODY))
def docker_port_mapping():
    """Docker's rules for docker0 and `-p 8080:80` (Engine 20.10–26.x layout, lab 06).
    node2 reaches 192.168.1.2:8080 (DNAT in PREROUTING; the container sees node2's
    address). The host's own connections to 192.168.1.2:8080 and 172.17.0.1:8080 are
    DNATed in OUTPUT and keep the source the first route lookup chose; 127.0.0.1:8080 is
    left to docker-proxy (not running: refused). The container goes out MASQUERADEd to
    192.168.1.2. The container's own connection to the published port is not DNATed
    (`-A DOCKER -i docker0 -j RETURN`): the host answers RST. node2 has no route to
    172.17.0.0/16 (ENETUNREACH); given one, the filter DOCKER chain accepts port 80 of
    the container from outside docker0, and any other port meets the FORWARD DROP
    policy."""
    return DOCKER_HOST


# --- statistic ---------------------------------------------------------------------------------

@scenario(tcp("red", "10.0.1.1", 8080, SUCCESS, seen=at("blue", 80, "10.0.1.2")))
def statistic_probability_one_always_matches():
    """`-m statistic --mode random --probability 1.0`: the first DNAT always applies."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec router iptables -t nat -A PREROUTING -d 10.0.1.1/32 -p tcp -m tcp --dport 8080 -m statistic --mode random --probability 1.0 -j DNAT --to-destination 10.0.2.2:80
        ip netns exec router iptables -t nat -A PREROUTING -d 10.0.1.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.2.2:81
    """


@scenario(tcp("red", "10.0.1.1", 8080, SUCCESS, seen=at("blue", 81, "10.0.1.2")))
def statistic_probability_zero_never_matches():
    """`--probability 0.0`: the rule never matches and the next one (to port 81) applies."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec router iptables -t nat -A PREROUTING -d 10.0.1.1/32 -p tcp -m tcp --dport 8080 -m statistic --mode random --probability 0.0 -j DNAT --to-destination 10.0.2.2:80
        ip netns exec router iptables -t nat -A PREROUTING -d 10.0.1.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.2.2:81
    """


@scenario(tcp("red", "10.0.1.1", 8080, SUCCESS, seen=at("blue", 81, "10.0.1.2")),
          tcp("red", "10.0.1.1", 8080, SUCCESS, seen=at("blue", 80, "10.0.1.2")),
          tcp("red", "10.0.1.1", 8080, SUCCESS, seen=at("blue", 81, "10.0.1.2")),
          disagree="the model traces `--mode nth --every 2` as a fork with probability 1/2 "
                   "(two paths, ports 80 and 81, for every connection); the kernel keeps a "
                   "counter starting at --packet, so connections alternate 81, 80, 81")
def statistic_nth_every_second_connection():
    """`-m statistic --mode nth --every 2 --packet 1` counts the new connections that reach
    it (only their first packet goes through nat): the first does not match and takes
    the next rule (port 81), the second matches (port 80), the third does not."""
    return ROUTER + BLUE_ROUTE_BACK + BLUE_LISTENS + """
        ip netns exec router iptables -t nat -A PREROUTING -d 10.0.1.1/32 -p tcp -m tcp --dport 8080 -m statistic --mode nth --every 2 --packet 1 -j DNAT --to-destination 10.0.2.2:80
        ip netns exec router iptables -t nat -A PREROUTING -d 10.0.1.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.2.2:81
    """


# --- running both halves ---------------------------------------------------------------------

@dataclass
class Observation:
    outcome: str
    seen: tuple
    detail: str


def model_key(learner: str) -> str:
    return "host/root" if learner == "host" else f"host/{learner}"


def model_seen(world, probe: Probe, t) -> tuple:
    """What the model's listeners would log: (namespace, port, peer) of each live path."""
    if probe.proto == "icmp":
        return ()
    seen = set()
    for path in t.paths:
        if path.probability <= 0 or path.verdict != DELIVERED or path.delivered_to is None:
            continue
        if probe.proto == "tcp" and path.outcome != SUCCESS:
            continue                      # no handshake, nothing accepted
        ns = world.resolve(path.delivered_to, default_node="host")
        name = "host" if ns is None or ns.name == "root" else ns.name
        pkt = path.packet_out
        seen.add((name, pkt.dport, pkt.src))
    return tuple(sorted(seen))


def run_on_model(sc: Scenario, shell_class):
    from netlab.backends.model import ModelBackend
    from netlab.dataplane import trace
    from netlab.ops import AddNode

    backend = ModelBackend()
    backend.apply(AddNode("host"))
    shell = shell_class(backend, "host")
    lines, seen = [], []
    for block in sc.blocks():
        if isinstance(block, list):
            lines += [shell.run(line) for line in block]
            continue
        probe = block
        try:
            t = trace(backend.world, model_key(probe.src), probe.dst, proto=probe.proto,
                      dport=probe.port, sport=probe.sport)
        except Exception as exc:    # the comparison shows it
            seen.append(Observation("error", (), f"{type(exc).__name__}: {exc}"))
            continue
        live = [p for p in t.paths if p.probability > 0]
        outcomes = {p.outcome for p in live} or {"no path"}
        outcome = outcomes.pop() if len(outcomes) == 1 else f"mixed {sorted(outcomes)}"
        seen.append(Observation(outcome, model_seen(backend.world, probe, t),
                                json.dumps(t.to_json(), indent=1)))
    return lines, seen


def run_on_kernel(sc: Scenario, host):
    lines, seen = [], []
    prepared = False
    for block in sc.blocks():
        if isinstance(block, list):
            lines += [host.run(line) for line in block]
            prepared = False
            continue
        if not prepared:
            host.prepare_for_probes()
            prepared = True
        probe = block
        before = listener_count(host)
        if probe.proto == "icmp":
            r = host.ping(probe.src, probe.dst)
        else:
            r = connect_from(host, probe.src, probe.dst, probe.proto, probe.port, probe.sport)
        peers = new_peers(host, before) if probe.proto != "icmp" else []
        seen.append(Observation(r.outcome, tuple(sorted((n, port, addr)
                                                        for n, _p, port, addr, _sp in peers)),
                                r.raw))
    return lines, seen


def disagreements(sc: Scenario, model, kernel) -> list[str]:
    (m_lines, m_seen), (k_lines, k_seen) = model, kernel
    problems = []
    for m, k in zip(m_lines, k_lines):
        if not (m.ok and k.ok):
            problems.append(f"line `{m.cmd}`: model {'ok' if m.ok else 'fails: ' + str(m.error)};"
                            f" kernel {'ok' if k.ok else 'fails: ' + k.error}")
    probes = [b for b in sc.blocks() if isinstance(b, Probe)]
    for probe, m, k in zip(probes, m_seen, k_seen):
        if not (m.outcome == k.outcome == probe.expect):
            problems.append(f"{probe}: expected {probe.expect}; model {m.outcome}; kernel "
                            f"{k.outcome}\n  kernel: {k.detail}\n  model trace: {m.detail}")
        if probe.seen is not None and not (m.seen == k.seen == tuple(sorted(probe.seen))):
            problems.append(f"{probe}: the listener should see {list(probe.seen) or 'nothing'};"
                            f" model {list(m.seen) or 'nothing'}; kernel "
                            f"{list(k.seen) or 'nothing'}\n  model trace: {m.detail}")
    return problems


@pytest.fixture(scope="session")
def iptables_tools(kernel):
    missing = [tool for tool in ("iptables", "iptables-save") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install iptables conntrack)")


def _params():
    for sc in SCENARIOS:
        marks = [pytest.mark.xfail(strict=True, reason=sc.disagree)] if sc.disagree else []
        yield pytest.param(sc, id=sc.id, marks=marks)


@pytest.mark.parametrize("sc", list(_params()))
def test_model_and_kernel_agree(sc: Scenario, shell_class, iptables_tools, real_host):
    model = run_on_model(sc, shell_class)
    kernel = run_on_kernel(sc, real_host)
    problems = disagreements(sc, model, kernel)
    assert not problems, (f"{sc.id}: {sc.kernel}\n\n" + "\n\n".join(problems)
                          + "\n\nkernel commands:\n" + "\n".join(real_host.log)
                          + "\n\nrouter's iptables-save:\n"
                          + read_back(real_host, "router", ["iptables-save"]))
