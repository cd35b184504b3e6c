"""Errors: the sentence the real tool prints, its exit status, and a hint for a known mistake."""

from __future__ import annotations

import pytest

from netlab.backends.model import ModelBackend
from netlab.commands import Shell

SETUP = """
ip netns add red
ip netns add green
ip link add veth-red type veth peer name veth-red-br
ip link set veth-red netns red
ip link add v-net-0 type bridge
ip -n red addr add 192.168.15.1/24 dev veth-red
ip link set v-net-0 up
ip addr add 10.1.1.1 dev v-net-0
ip addr add 192.168.15.5/24 dev v-net-0
"""


@pytest.fixture
def shell():
    sh = Shell(ModelBackend(), default_node="host")
    results = sh.run_script(SETUP)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return sh


# (id, command, exact error text without the hint, exit status, hint or None)
ERRORS = [
    ("unknown-object", "ip reute", 'Object "reute" is unknown, try "ip help".', 1,
     "did you mean `ip route`?"),
    ("unknown-object-far", "ip frobnicate", 'Object "frobnicate" is unknown, try "ip help".', 1,
     None),
    ("unknown-route-command", "ip route frobnicate",
     'Command "frobnicate" is unknown, try "ip route help".', 255, None),
    ("unknown-route-command-close", "ip route shwo",
     'Command "shwo" is unknown, try "ip route help".', 255, "did you mean `ip route show`?"),
    ("unknown-addr-command", "ip addr frobnicate",
     'Command "frobnicate" is unknown, try "ip address help".', 255, None),
    ("unknown-link-command", "ip link frobnicate",
     'Command "frobnicate" is unknown, try "ip link help".', 255, None),
    ("link-add-set", "ip link add set veth-red netns red",
     'Error: either "dev" is duplicate, or "veth-red" is a garbage.', 255,
     "did you mean `ip link set veth-red netns red`?"),
    ("a-is-address", "ip link add a type veth peer name b", '"type" is invalid lladdr.', 1,
     "`a` is read as the keyword `address`; to name a device `a`, write `name a`"),
    ("bad-prefix", "ip addr add 300.1.1.1/24 dev v-net-0",
     'Error: any valid prefix is expected rather than "300.1.1.1/24".', 1, None),
    ("bad-prefix-len", "ip route add 10.5.0.0/33 dev v-net-0",
     'Error: any valid prefix is expected rather than "10.5.0.0/33".', 1, None),
    ("bad-via", "ip route add 10.5.0.0/16 via 300.1.1.1",
     'Error: inet address is expected rather than "300.1.1.1".', 1, None),
    ("host-bits", "ip route add 10.5.0.1/16 dev v-net-0",
     "Error: Invalid prefix for given prefix length.", 2, None),
    ("no-device", "ip link set veth-red-bt up", 'Cannot find device "veth-red-bt"', 1,
     "did you mean `veth-red-br`?"),
    ("show-no-device", "ip link show nosuch", 'Device "nosuch" does not exist.', 1, None),
    ("addr-show-no-device", "ip addr show dev nosuch", 'Device "nosuch" does not exist.', 1, None),
    ("addr-add-no-device", "ip addr add 10.4.4.4/24 dev nosuch", 'Cannot find device "nosuch"', 1,
     None),
    ("route-dev-missing", "ip route add 10.5.0.0/16 dev nosuch", 'Cannot find device "nosuch"', 1,
     None),
    ("netns-missing", "ip -n blue link", 'Cannot open network namespace "blue": No such file or '
     "directory", 255, "create it first: `ip netns add blue`"),
    ("netns-missing-close", "ip -n rde link", 'Cannot open network namespace "rde": No such file '
     "or directory", 255, "did you mean `red`?"),
    ("netns-exec-missing", "ip netns exec blue ip link",
     'Cannot open network namespace "blue": No such file or directory', 255,
     "create it first: `ip netns add blue`"),
    ("netns-exec-no-command", "ip netns exec red", "No command specified", 1, None),
    ("netns-exists", "ip netns add red",
     'Cannot create namespace file "/run/netns/red": File exists', 1, None),
    ("netns-del-missing", "ip netns del nosuch",
     'Cannot remove namespace file "/run/netns/nosuch": No such file or directory', 1, None),
    ("move-to-missing-netns", "ip link set veth-red-br netns blu",
     'Error: argument "blu" is wrong: Invalid "netns" value', 255, "create it first: "
     "`ip netns add blu`"),
    ("move-to-close-netns", "ip link set veth-red-br netns rde",
     'Error: argument "rde" is wrong: Invalid "netns" value', 255, "did you mean `red`?"),
    ("master-missing", "ip link set veth-red-br master nosuch",
     'Error: argument "nosuch" is wrong: Device does not exist', 255, None),
    ("master-not-bridge", "ip link set veth-red-br master lo",
     "RTNETLINK answers: Operation not supported", 2, None),
    ("bridge-into-bridge", "ip link set v-net-0 master v-net-0",
     "Error: Can not enslave a bridge to a bridge.", 2, None),
    ("duplicate-link", "ip link add v-net-0 type bridge", "RTNETLINK answers: File exists", 2,
     "a device called v-net-0 exists already"),
    ("duplicate-peer", "ip link add veth-x type veth peer name veth-red netns red",
     "RTNETLINK answers: File exists", 2, "a device called veth-red exists in red already"),
    ("unknown-type", "ip link add x type nosuchtype", "Error: Unknown device type.", 2, None),
    ("type-typo", "ip link add x type vet", "Error: Unknown device type.", 2,
     "did you mean `type veth`?"),
    ("no-type", "ip link add x", 'Not enough information: "type" argument is required', 1, None),
    ("set-without-dev", "ip link set up", 'Not enough information: "dev" argument is required.',
     255, None),
    ("long-name", "ip link add averyveryverylongname type bridge",
     "Error: Attribute failed policy validation.", 2,
     "an interface name has at most 15 characters"),
    ("long-name-keyword", "ip link add name averyveryverylongname type bridge",
     'Error: argument "averyveryverylongname" is wrong: "name" not a valid ifname', 255, None),
    ("bad-mtu", "ip link set veth-red-br mtu abc",
     'Error: argument "abc" is wrong: Invalid "mtu" value', 255, None),
    ("bad-lladdr", "ip link set veth-red-br address zz:00:00:00:00:01", '"zz" is invalid lladdr.',
     1, None),
    ("short-lladdr", "ip link set veth-red-br address 02:00:00:00:01",
     "Invalid address length 5 - must be 6 bytes", 1, None),
    ("multicast-mac", "ip link set veth-red-br address 01:00:00:00:00:01",
     "RTNETLINK answers: Cannot assign requested address", 2, None),
    ("gateway-unreachable", "ip -n red route add default via 10.9.9.9",
     "Error: Nexthop has invalid gateway.", 2, "no connected route reaches 10.9.9.9: the gateway "
     "must be on a network this namespace has an address in (see `ip route`)"),
    ("gateway-on-down-link", "ip -n red route add default via 192.168.15.5",
     "Error: Nexthop has invalid gateway.", 2,
     "veth-red is down, so its connected route is gone: ip link set veth-red up"),
    ("gateway-behind-a-32", "ip route add default via 10.1.1.254",
     "Error: Nexthop has invalid gateway.", 2,
     "10.1.1.1 on v-net-0 is a /32 (typed without a prefix), so no connected route reaches "
     "10.1.1.254: add it as 10.1.1.1/24 (ip addr del 10.1.1.1/32 dev v-net-0 first)"),
    ("route-exists", "ip route add 192.168.15.0/24 dev v-net-0",
     "RTNETLINK answers: File exists", 2, "a route to 192.168.15.0/24 with metric 0 exists: "
     "`ip route replace` changes it, another `metric` adds a second one"),
    ("route-del-missing", "ip route del 10.99.0.0/16", "RTNETLINK answers: No such process", 2,
     None),
    ("route-add-bare", "ip route add", "Usage: ip route { list | flush } SELECTOR", 255,
     "give a destination: a prefix like 10.0.0.0/24, or default"),
    ("route-get-unreachable", "ip route get 10.0.0.1", "RTNETLINK answers: Network is unreachable",
     2, None),
    ("fib-table-missing", "ip -n green route show table local",
     "Error: ipv4: FIB table does not exist.", 2, None),
    ("unknown-option", "ip -z link", 'Option "-z" is unknown, try "ip -help".', 255, None),
    ("sysctl-missing", "sysctl net.ipv4.nonexistent",
     "sysctl: cannot stat /proc/sys/net/ipv4/nonexistent: No such file or directory", 1, None),
    ("sysctl-typo", "sysctl net.ipv4.ip_forwad",
     "sysctl: cannot stat /proc/sys/net/ipv4/ip_forwad: No such file or directory", 1,
     "did you mean `net.ipv4.ip_forward`?"),
    ("sysctl-bad-value", "sysctl -w net.ipv4.ip_forward=abc",
     'sysctl: setting key "net.ipv4.ip_forward": Invalid argument', 1, None),
    ("sysctl-w-without-value", "sysctl -w net.ipv4.ip_forward",
     "sysctl: command line(0): invalid syntax, continuing...", 1, None),
    ("echo-bad-value", "echo abc > /proc/sys/net/ipv4/ip_forward",
     "bash: echo: write error: Invalid argument", 1, None),
    ("sh-echo-bad-value", 'sh -c "echo abc > /proc/sys/net/ipv4/ip_forward"',
     "sh: 1: echo: echo: I/O error", 1, None),
    ("cat-missing", "cat /proc/sys/net/ipv4/nonexistent",
     "cat: /proc/sys/net/ipv4/nonexistent: No such file or directory", 1, None),
    ("ping-no-route", "ip netns exec red ping -c1 10.0.0.1", "ping: connect: Network is unreachable",
     2, None),
    ("ping-hostname", "ping google.com", "ping: google.com: Name or service not known", 2,
     "netlab has no DNS: use an IP address"),
    ("curl-hostname", "curl http://example.com/", "curl: (6) Could not resolve host: example.com",
     6, "netlab has no DNS: use an IP address"),
    # found by the parser fuzz test: the last stage of a pipeline is only a redirection
    ("pipe-into-redirection", "ip link set veth-red-br | > link",
     "netlab does not model a pipeline stage that is only a redirection", 2,
     "write the output to a file with `CMD > FILE`"),
]


@pytest.mark.parametrize("line,message,status,hint", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_error(shell, line, message, status, hint):
    before = shell.world.to_json()
    r = shell.run(line)
    assert not r.ok
    assert r.status == status
    expected = message if hint is None else f"{message} (hint: {hint})"
    assert r.error == expected
    assert "\n" not in r.error
    assert shell.world.to_json() == before, "a failed command changed the World"


UNSUPPORTED = [
    ("foo", "foo"), ("nft list ruleset", "nft"), ("docker ps", "docker"),
    ("/usr/sbin/ifconfig", "ifconfig"),
]


@pytest.mark.parametrize("line,tool", UNSUPPORTED, ids=[u[1] for u in UNSUPPORTED])
def test_unsupported_commands_name_what_is_supported(shell, line, tool):
    r = shell.run(line)
    assert not r.ok and r.status == 127
    assert r.error.startswith(f"netlab does not model `{tool}` (supported: ip, bridge, sysctl, "
                              "echo > /proc/sys/…, ping, nc, curl, traceroute, iptables, ")


def test_typo_of_a_supported_command_gets_a_hint(shell):
    r = shell.run("pnig 10.0.0.1")
    assert r.error.endswith("(hint: did you mean `ping`?)")


def test_ifconfig_points_to_ip(shell):
    assert shell.run("ifconfig").error.endswith("(hint: use `ip addr` / `ip link`)")


def test_kernel_refusal_in_a_multi_op_command_changes_nothing(shell):
    before = shell.world.to_json()
    # The move succeeds, the MTU is refused: nothing of the command stays.
    r = shell.run("ip link set veth-red-br netns red mtu 10")
    assert not r.ok and r.error == "Error: mtu less than device minimum."
    assert shell.world.to_json() == before


def test_internal_errors_are_reported_not_raised(shell, monkeypatch):
    import netlab.commands.shell as shell_mod

    def boom(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(shell_mod, "parse", boom)
    r = shell.run("ip link")
    assert not r.ok and r.error == "netlab: internal error: RuntimeError: boom"
