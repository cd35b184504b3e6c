"""ping, nc, curl and traceroute print what the real tools print, from a trace.

The topology is router.txt's: h1 -- r -- h2 (10.0.1.0/24, 10.0.2.0/24).
"""

from __future__ import annotations

import re

import pytest

from netlab.backends.model import ModelBackend
from netlab.commands import Shell

ROUTER = """
ip netns add h1
ip netns add r
ip netns add h2
ip -n h1 link set lo up
ip -n r link set lo up
ip -n h2 link set lo up
ip -n h1 link add veth-h1 type veth peer name veth-r1 netns r
ip -n h2 link add veth-h2 type veth peer name veth-r2 netns r
ip -n h1 addr add 10.0.1.2/24 dev veth-h1
ip -n r addr add 10.0.1.1/24 dev veth-r1
ip -n r addr add 10.0.2.1/24 dev veth-r2
ip -n h2 addr add 10.0.2.2/24 dev veth-h2
ip -n h1 link set veth-h1 up
ip -n r link set veth-r1 up
ip -n r link set veth-r2 up
ip -n h2 link set veth-h2 up
ip -n h1 route add default via 10.0.1.1
ip -n h2 route add 10.0.1.0/24 via 10.0.2.1
"""

TIMES = re.compile(r"\d+\.\d{3}")


@pytest.fixture
def shell():
    sh = Shell(ModelBackend(), default_node="host")
    for r in sh.run_script(ROUTER):
        assert r.ok, (r.cmd, r.error)
    return sh


@pytest.fixture
def routed(shell):
    assert shell.run("ip netns exec r sysctl -w net.ipv4.ip_forward=1").ok
    return shell


def h1(shell, line):
    return shell.run(f"ip netns exec h1 {line}")


def loss(dst, errors=0, sent=1):
    err = f"+{errors} errors, " if errors else ""
    return (f"\n--- {dst} ping statistics ---\n"
            f"{sent} packets transmitted, 0 received, {err}100% packet loss, time 0ms\n\n")


# --- ping ---------------------------------------------------------------------------------

def test_ping_through_the_router(routed):
    r = h1(routed, "ping -c1 -W1 10.0.2.2")
    assert (r.ok, r.status) == (True, 0)
    assert TIMES.sub("T", r.output) == (
        "PING 10.0.2.2 (10.0.2.2) 56(84) bytes of data.\n"
        "64 bytes from 10.0.2.2: icmp_seq=1 ttl=63 time=T ms\n\n"
        "--- 10.0.2.2 ping statistics ---\n"
        "1 packets transmitted, 1 received, 0% packet loss, time 0ms\n"
        "rtt min/avg/max/mdev = T/T/T/T ms\n")
    assert len(r.traces) == 1 and r.traces[0].outcome == "success"


def test_ping_count_and_interval(routed):
    r = h1(routed, "ping -c3 -i0.2 10.0.2.2")
    assert [l.split(" time=")[0] for l in r.output.splitlines() if "bytes from" in l] == [
        f"64 bytes from 10.0.2.2: icmp_seq={n} ttl=63" for n in (1, 2, 3)]
    assert "3 packets transmitted, 3 received, 0% packet loss, time 400ms" in r.output


def test_ping_quiet(routed):
    r = h1(routed, "ping -q -c2 10.0.2.2")
    assert "bytes from" not in r.output and "2 received" in r.output


def test_ping_with_forwarding_off_is_plain_loss(shell):
    r = h1(shell, "ping -c1 -W1 10.0.2.2")
    assert (r.status, r.output) == (1, "PING 10.0.2.2 (10.0.2.2) 56(84) bytes of data.\n"
                                       + loss("10.0.2.2"))
    assert r.error == "1 packets transmitted, 0 received, 100% packet loss"


def test_ping_net_unreachable_from_the_router(routed):
    r = h1(routed, "ping -c 1 10.0.9.9")
    assert r.status == 1
    assert r.output == ("PING 10.0.9.9 (10.0.9.9) 56(84) bytes of data.\n"
                        "From 10.0.1.1 icmp_seq=1 Destination Net Unreachable\n"
                        + loss("10.0.9.9", errors=1))


def test_ping_ttl_exceeded(routed):
    r = h1(routed, "ping -c1 -t 1 10.0.2.2")
    assert "From 10.0.1.1 icmp_seq=1 Time to live exceeded\n" in r.output
    assert h1(routed, "ping -c1 -t 2 10.0.2.2").ok


def test_host_unreachable_needs_the_arp_timeout(routed):
    quick = h1(routed, "ping -c1 -W1 10.0.2.99")
    assert quick.output == "PING 10.0.2.99 (10.0.2.99) 56(84) bytes of data.\n" + loss("10.0.2.99")
    patient = h1(routed, "ping -c1 -W3.5 10.0.2.99")
    assert "From 10.0.1.1 icmp_seq=1 Destination Host Unreachable\n" in patient.output
    several = h1(routed, "ping -c5 10.0.2.99")
    assert several.output.endswith("+5 errors, 100% packet loss, time 4000ms\npipe 4\n")
    assert "10.0.2.99 dev veth-r2 FAILED \n" in routed.run("ip -n r neigh").output


def test_host_unreachable_on_the_senders_own_link(routed):
    r = h1(routed, "ping -c1 10.0.1.99")
    assert "From 10.0.1.2 icmp_seq=1 Destination Host Unreachable\n" in r.output


LOCAL_ERRORS = [
    ("no-route", "ip route del default", "ping -c1 10.0.2.2", "ping: connect: Network is unreachable"),
    ("blackhole", "ip route add blackhole 10.14.0.0/16", "ping -c1 10.14.1.1",
     "ping: connect: Invalid argument"),
    ("unreachable", "ip route add unreachable 10.15.0.0/16", "ping -c1 10.15.1.1",
     "ping: connect: No route to host"),
    ("prohibit", "ip route add prohibit 10.16.0.0/16", "ping -c1 10.16.1.1",
     "ping: Do you want to ping broadcast? Then -b. If not, check your local firewall rules"),
    ("broadcast", "true", "ping -c1 10.0.1.255",
     "ping: Do you want to ping broadcast? Then -b. If not, check your local firewall rules"),
]


@pytest.mark.parametrize("setup,line,error", [e[1:] for e in LOCAL_ERRORS],
                         ids=[e[0] for e in LOCAL_ERRORS])
def test_ping_local_errors(routed, setup, line, error):
    assert routed.run(f"ip netns exec h1 {setup}").ok
    r = h1(routed, line)
    assert (r.status, r.output, r.error) == (2, "", error)


def test_ping_default_is_one_packet(routed):
    assert "1 packets transmitted" in h1(routed, "ping 10.0.2.2").output


def test_ping_records_neighbours_on_both_sides(routed):
    h1(routed, "ping -c1 10.0.2.2")
    h1_neigh = routed.run("ip -n h1 neigh").output
    r_neigh = routed.run("ip -n r neigh").output
    h2_neigh = routed.run("ip -n h2 neigh").output
    assert re.fullmatch(r"10\.0\.1\.1 dev veth-h1 lladdr \S+ REACHABLE \n", h1_neigh)
    assert "10.0.1.2 dev veth-r1 lladdr" in r_neigh and "10.0.2.2 dev veth-r2 lladdr" in r_neigh
    assert re.fullmatch(r"10\.0\.2\.1 dev veth-h2 lladdr \S+ DELAY \n", h2_neigh)


# --- nc -----------------------------------------------------------------------------------

def test_nc_refused_and_then_listening(routed):
    r = h1(routed, "nc -zv -w1 10.0.2.2 80")
    assert (r.status, r.output, r.error) == (
        1, "", "nc: connect to 10.0.2.2 port 80 (tcp) failed: Connection refused")
    quiet = h1(routed, "nc -z -w1 10.0.2.2 80")
    assert (quiet.status, quiet.output) == (1, "")
    assert routed.run("ip netns exec h2 nc -l -p 80 &").ok
    assert routed.run("ip netns exec h2 nc -l -p 80 &").ok   # the same listener again
    ok = h1(routed, "nc -zv -w1 10.0.2.2 80")
    assert (ok.status, ok.output) == (0, "Connection to 10.0.2.2 80 port [tcp/http] succeeded!\n")
    assert h1(routed, "nc -z 10.0.2.2 80").ok
    assert h1(routed, "sh -c 'echo hello | nc -N -w1 10.0.2.2 80'").ok


def test_nc_errors(shell, routed):
    assert h1(routed, "nc -zv -w1 10.0.9.9 80").error == \
        "nc: connect to 10.0.9.9 port 80 (tcp) failed: Network is unreachable"
    assert h1(routed, "nc -zv -w1 10.0.2.99 80").error == \
        "nc: connect to 10.0.2.99 port 80 (tcp) timed out: Operation now in progress"
    assert h1(routed, "nc -zv -w5 10.0.2.99 80").error == \
        "nc: connect to 10.0.2.99 port 80 (tcp) failed: No route to host"
    assert routed.run("ip netns exec r sysctl -w net.ipv4.ip_forward=0").ok
    assert h1(routed, "nc -zv -w1 10.0.2.2 80").error == \
        "nc: connect to 10.0.2.2 port 80 (tcp) timed out: Operation now in progress"
    routed.run("ip -n h1 route del default")
    assert h1(routed, "nc -zv -w1 10.0.2.2 80").error == \
        "nc: connect to 10.0.2.2 port 80 (tcp) failed: Network is unreachable"


def test_nc_udp(routed):
    closed = h1(routed, "nc -zuv -w1 10.0.2.2 53")
    assert (closed.status, closed.output) == (1, "")
    assert h1(routed, "nc -zu -w1 10.0.2.2 53").status == 0   # without -v nc cannot tell
    assert routed.run("ip netns exec h2 nc -lu 53 &").ok
    r = h1(routed, "nc -zuv -w1 10.0.2.2 53")
    assert (r.status, r.output) == (0, "Connection to 10.0.2.2 53 port [udp/domain] succeeded!\n")


# --- curl ----------------------------------------------------------------------------------

def test_curl(routed):
    refused = h1(routed, "curl -sS -m 2 http://10.0.2.2:8080/")
    assert (refused.status, refused.error) == (7, "curl: (7) Failed to connect to 10.0.2.2 port "
                                                  "8080 after 0 ms: Couldn't connect to server")
    silent = h1(routed, "curl -s -m 2 http://10.0.2.2:8080/")
    assert (silent.status, silent.output) == (7, "")
    assert routed.run("ip netns exec h2 python3 -m http.server 8080 --bind 10.0.2.2 &").ok
    ok = h1(routed, "curl -s http://10.0.2.2:8080/index.html")
    assert (ok.status, ok.output) == (0, "netlab: connected to 10.0.2.2:8080\n")
    code = h1(routed, "curl -sS -m 2 -o /dev/null -w '%{http_code}\\n' http://10.0.2.2:8080/")
    assert code.output == "200\n"


def test_curl_timeouts(routed):
    assert h1(routed, "curl -sS -m 2 http://10.0.2.99:8080/").error == \
        "curl: (28) Connection timed out after 2000 milliseconds"
    slow = h1(routed, "curl -sS -m 5 http://10.0.2.99:8080/")
    assert (slow.status, slow.error) == (7, "curl: (7) Failed to connect to 10.0.2.99 port 8080 "
                                            "after 3000 ms: Couldn't connect to server")
    assert h1(routed, "curl -sS -m 2 http://10.0.9.9/").error == \
        "curl: (7) Failed to connect to 10.0.9.9 port 80 after 0 ms: Couldn't connect to server"


# --- traceroute -------------------------------------------------------------------------

def test_traceroute(routed):
    r = h1(routed, "traceroute -n 10.0.2.2")
    assert r.ok
    assert TIMES.sub("T", r.output) == (
        "traceroute to 10.0.2.2 (10.0.2.2), 30 hops max, 60 byte packets\n"
        " 1  10.0.1.1  T ms  T ms  T ms\n"
        " 2  10.0.2.2  T ms  T ms  T ms\n")
    assert len(r.traces) == 2


def test_traceroute_without_n_and_with_q1(routed):
    r = h1(routed, "traceroute -q1 10.0.2.2")
    assert TIMES.sub("T", r.output).splitlines()[1:] == [" 1  10.0.1.1 (10.0.1.1)  T ms",
                                                        " 2  10.0.2.2 (10.0.2.2)  T ms"]


def test_traceroute_stars_and_marks(routed):
    routed.run("ip -n h2 route del 10.0.1.0/24 via 10.0.2.1")
    r = h1(routed, "traceroute -n -q1 -m 4 10.0.2.2")
    assert TIMES.sub("T", r.output).splitlines()[1:] == [" 1  10.0.1.1  T ms", " 2  *", " 3  *",
                                                        " 4  *"]
    net = h1(routed, "traceroute -n -q1 10.0.9.9")
    assert TIMES.sub("T", net.output).splitlines()[1:] == [" 1  10.0.1.1  T ms !N"]


def test_traceroute_without_a_route(shell):
    shell.run("ip -n h1 route del default")
    r = h1(shell, "traceroute -n 10.0.2.2")
    assert (r.status, r.output, r.error) == (
        1, "traceroute to 10.0.2.2 (10.0.2.2), 30 hops max, 60 byte packets\n",
        "connect: Network is unreachable")


# --- listeners ----------------------------------------------------------------------------

def test_listeners_are_ops(shell):
    assert shell.run("ip netns exec h2 nc -l 8080 &").ok
    assert shell.run("ip netns exec h2 nc -lk -p 9090").ok
    assert shell.run("ip netns exec h2 nc -l -u -p 53").ok
    listeners = {(l.proto, l.port) for l in shell.world.namespaces["host/h2"].listeners}
    assert listeners == {("tcp", 8080), ("tcp", 9090), ("udp", 53)}
