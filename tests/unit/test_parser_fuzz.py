"""Property: whatever is typed, the Shell answers like a shell and never breaks the World.

Random sequences of ip keywords, names, numbers, prefixes and junk are run on
a small world. For every line: no exception escapes; no internal error; a
failure has ok=False, a non-empty one-line error and a non-zero status; and a
failed command leaves the World as it was. (A probe that fails is a result,
not a refusal: its ARP attempts leave neighbour entries, as in the kernel, so
for probes the neighbour tables are left out of the comparison.)
"""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlab.backends.model import ModelBackend
from netlab.commands import Shell

SETUP = """
ip netns add red
ip netns add blue
ip link add v-net-0 type bridge
ip link set v-net-0 up
ip addr add 192.168.15.5/24 dev v-net-0
ip link add veth-red type veth peer name veth-red-br
ip link set veth-red netns red
ip link set veth-red-br master v-net-0
ip link set veth-red-br up
ip -n red addr add 192.168.15.1/24 dev veth-red
ip -n red link set veth-red up
ip -n red link set lo up
ip -n red route add default via 192.168.15.5
ip netns exec blue nc -l -p 80 &
"""

HEADS = ["ip link set veth-red-br", "ip -n red route add", "ip addr add", "ip link add", "ip", "ip -n red", "ip -n nosuch", "ip -br", "ip -4", "ip -o", "ip -d", "ip -c",
         "ip netns exec red", "ip netns exec red ip", "bridge", "bridge -n red", "sysctl",
         "sysctl -w", "ping", "ip netns exec red ping", "nc", "curl", "traceroute", "echo",
         "cat", "sh -c", "sudo", "ip netns", "ip link", "ip addr", "ip route", "ip neigh", ""]

WORDS = [
    # ip objects and verbs
    "link", "l", "addr", "a", "address", "route", "r", "ro", "neigh", "n", "netns", "rule",
    "add", "a", "del", "delete", "set", "s", "show", "sh", "list", "ls", "lst", "flush", "get",
    "replace", "change", "exec", "help", "fdb", "reute",
    # arguments
    "dev", "type", "veth", "bridge", "dummy", "vxlan", "peer", "name", "netns", "master",
    "nomaster", "up", "down", "mtu", "address", "via", "src", "metric", "proto", "static",
    "scope", "link", "host", "global", "table", "main", "local", "all", "default", "blackhole",
    "unreachable", "prohibit", "brd", "broadcast", "+", "from", "iif", "oif", "lladdr", "nud",
    "permanent", "to", "onlink", "br", "exact",
    # names
    "red", "blue", "nosuch", "veth-red", "veth-red-br", "v-net-0", "lo", "eth0", "br0", "x",
    "averyveryverylongname",
    # numbers, addresses, prefixes, MACs
    "0", "1", "2", "24", "1500", "65536", "70000", "-1", "300", "80", "53",
    "10.0.0.1/24", "192.168.15.1/24", "192.168.15.2", "192.168.15.5", "10.0.0.0/33",
    "300.1.1.1", "0.0.0.0/0", "10.1", "127.0.0.1", "192.168.15.255", "10.0.0.1/255.255.0.0",
    "02:00:00:00:00:09", "zz:00", "01:00:00:00:00:00",
    # options of the probes and sysctl
    "-c", "-c1", "-W1", "-t", "1", "-z", "-v", "-zv", "-u", "-w", "-l", "-p", "-n", "-q", "-s",
    "-sS", "-m", "-o", "/dev/null", "http://192.168.15.2:80/", "http://x/",
    "net.ipv4.ip_forward", "net.ipv4.ip_forward=1", "net.ipv4.nope=1", "net/ipv4/ip_forward",
    "/proc/sys/net/ipv4/ip_forward", "/proc/sys/nope", "/etc/hosts",
    # junk and shell syntax
    "'", '"', "|", ">", ">>", "&", "&&", ";", "2>&1", "\\", "%", "ümlaut", "--", "-", "=",
    "a=b", "$HOME", "#", "tee", "grep", "inet", "head", "wc", "-l", "*", "{}", "()",
]


def base_world():
    shell = Shell(ModelBackend(), default_node="host")
    for r in shell.run_script(SETUP):
        assert r.ok, (r.cmd, r.error)
    return shell.world


BASE = base_world()

lines = st.builds(lambda head, rest: " ".join([head] + rest),
                  st.sampled_from(HEADS), st.lists(st.sampled_from(WORDS), max_size=9))


def comparable(state: dict, probe: bool) -> dict:
    if not probe:
        return state
    state = copy.deepcopy(state)
    for ns in state["namespaces"].values():
        ns["neighbours"] = []
    return state


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, min_size=1, max_size=4))
def test_any_line_gets_a_shell_answer_and_a_failure_changes_nothing(script):
    shell = Shell(ModelBackend(copy.deepcopy(BASE)), default_node="host")
    for line in script:
        before = shell.world.to_json()
        result = shell.run(line)
        assert isinstance(result.output, str)
        if result.ok:
            assert result.status == 0 and result.error is None
            continue
        assert result.status != 0, line
        assert result.error and result.error.strip(), line
        assert "\n" not in result.error, (line, result.error)
        assert not result.error.startswith("netlab: internal error"), (line, result.error)
        after = shell.world.to_json()
        probe = bool(result.traces)
        assert comparable(after, probe) == comparable(before, probe), \
            f"failed command changed the World: {line!r}: {result.error}"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_never_breaks_the_shell(text):
    shell = Shell(ModelBackend(copy.deepcopy(BASE)), default_node="host")
    before = shell.world.to_json()
    result = shell.run(text)
    if not result.ok:
        assert result.error and "\n" not in result.error and result.status != 0
        assert not result.error.startswith("netlab: internal error"), (text, result.error)
        assert comparable(shell.world.to_json(), bool(result.traces)) == \
            comparable(before, bool(result.traces))
