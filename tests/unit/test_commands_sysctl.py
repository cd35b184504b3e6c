"""sysctl, echo > /proc/sys/…, tee and cat (sysctl_outputs.txt has the kernel's side)."""

from __future__ import annotations

import pytest

from netlab import ops as O
from netlab.backends.model import ModelBackend
from netlab.commands import Shell, parse
from netlab.errors import UnsupportedCommand


@pytest.fixture
def shell():
    sh = Shell(ModelBackend(), default_node="host")
    assert sh.run("ip netns add r").ok
    assert sh.run("ip -n r link add veth0 type veth peer name veth1").ok
    return sh


def run(shell, line):
    r = shell.run(f"ip netns exec r {line}")
    assert r.ok, (line, r.error)
    return r.output


WRITES = [
    ("sysctl-w", "sysctl -w net.ipv4.ip_forward=1", [("net.ipv4.ip_forward", "1")]),
    ("no-w", "sysctl net.ipv4.ip_forward=1", [("net.ipv4.ip_forward", "1")]),
    ("slashes", "sysctl -w net/ipv4/ip_forward=1", [("net.ipv4.ip_forward", "1")]),
    ("several", "sysctl -w net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=2",
     [("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "2")]),
    ("negative", "sysctl -w net.ipv4.ip_forward=-1", [("net.ipv4.ip_forward", "-1")]),
    ("port-range", "sysctl -w net.ipv4.ip_local_port_range='1024 65000'",
     [("net.ipv4.ip_local_port_range", "1024\t65000")]),
    ("echo", "echo 1 > /proc/sys/net/ipv4/ip_forward", [("net.ipv4.ip_forward", "1")]),
    ("echo-append", "echo 1 >> /proc/sys/net/ipv4/ip_forward", [("net.ipv4.ip_forward", "1")]),
    ("tee", "echo 1 | tee /proc/sys/net/ipv4/ip_forward", [("net.ipv4.ip_forward", "1")]),
    ("sudo-tee", "echo 1 | sudo tee /proc/sys/net/ipv4/ip_forward",
     [("net.ipv4.ip_forward", "1")]),
    ("sh-c", 'sh -c "echo 1 > /proc/sys/net/ipv4/ip_forward"', [("net.ipv4.ip_forward", "1")]),
    ("per-device", "sysctl -w net.ipv4.conf.veth0.rp_filter=1",
     [("net.ipv4.conf.veth0.rp_filter", "1")]),
]


@pytest.mark.parametrize("line,expected", [w[1:] for w in WRITES], ids=[w[0] for w in WRITES])
def test_writes_are_set_sysctl_ops(line, expected):
    cmd = parse(line, node="host", netns="r")
    ops = cmd.ops
    assert ops == [O.SetSysctl("host/r", k, v) for k, v in expected]


def test_read_and_write_outputs(shell):
    assert run(shell, "sysctl net.ipv4.ip_forward") == "net.ipv4.ip_forward = 0\n"
    assert run(shell, "sysctl -w net.ipv4.ip_forward=1") == "net.ipv4.ip_forward = 1\n"
    assert run(shell, "sysctl -n net.ipv4.ip_forward") == "1\n"
    assert run(shell, "sysctl -q -w net.ipv4.ip_forward=0") == ""
    assert run(shell, "sysctl net/ipv4/ip_forward") == "net.ipv4.ip_forward = 0\n"
    assert run(shell, "cat /proc/sys/net/ipv4/ip_forward") == "0\n"
    assert run(shell, "sh -c 'echo 1 | tee /proc/sys/net/ipv4/ip_forward'") == "1\n"
    assert run(shell, "sh -c 'echo 0 | tee /proc/sys/net/ipv4/ip_forward > /dev/null'") == ""
    assert run(shell, "sysctl net.ipv4.ip_local_port_range") == \
        "net.ipv4.ip_local_port_range = 32768\t60999\n"


def test_forwarding_follows_the_kernel(shell):
    run(shell, "sysctl -w net.ipv4.ip_forward=1")
    assert run(shell, "sysctl net.ipv4.conf.all.forwarding net.ipv4.conf.default.forwarding "
                      "net.ipv4.conf.veth0.forwarding net.ipv4.conf.lo.forwarding") == (
        "net.ipv4.conf.all.forwarding = 1\nnet.ipv4.conf.default.forwarding = 1\n"
        "net.ipv4.conf.veth0.forwarding = 1\nnet.ipv4.conf.lo.forwarding = 1\n")


def test_a_directory_lists_its_keys(shell):
    text = run(shell, "sysctl net.ipv4.conf.veth0")
    assert text.splitlines()[0] == "net.ipv4.conf.veth0.accept_redirects = 1"
    assert all(l.startswith("net.ipv4.conf.veth0.") for l in text.splitlines())
    r = shell.run("ip netns exec r cat /proc/sys/net/ipv4/conf")
    assert (r.status, r.error) == (1, "cat: /proc/sys/net/ipv4/conf: Is a directory")


def test_sysctl_all_lists_every_modelled_key(shell):
    lines = run(shell, "sysctl -a").splitlines()
    assert "net.ipv4.ip_forward = 0" in lines and lines == sorted(lines)
    assert "net.ipv4.conf.veth1.rp_filter = 0" in lines


def test_a_failing_key_changes_nothing(shell):
    before = shell.world.to_json()
    r = shell.run("ip netns exec r sysctl -w net.ipv4.ip_forward=1 net.ipv4.nope=1")
    assert (r.ok, r.status) == (False, 1)
    assert shell.world.to_json() == before


def test_the_shell_opens_the_redirection_in_its_own_namespace(shell):
    # `ip netns exec r echo 1 > FILE`: the outer shell opens FILE, in the node's namespace.
    assert shell.run("ip netns exec r echo 1 > /proc/sys/net/ipv4/ip_forward").ok
    assert shell.run("sysctl -n net.ipv4.ip_forward").output == "1\n"
    assert shell.run("ip netns exec r sysctl -n net.ipv4.ip_forward").output == "0\n"
    assert shell.run("echo 1 | ip netns exec r tee /proc/sys/net/ipv4/ip_forward").ok
    assert shell.run("ip netns exec r sysctl -n net.ipv4.ip_forward").output == "1\n"


def test_missing_files(shell):
    r = shell.run("echo 1 > /proc/sys/net/ipv4/nope")
    assert (r.status, r.error) == (1, "bash: /proc/sys/net/ipv4/nope: No such file or directory")
    r = shell.run('ip netns exec r sh -c "echo 1 > /proc/sys/net/ipv4/nope"')
    assert (r.status, r.error) == (2, "sh: 1: cannot create /proc/sys/net/ipv4/nope: "
                                      "Directory nonexistent")
    r = shell.run("echo 1 | ip netns exec r tee /proc/sys/net/ipv4/nope")
    assert (r.status, r.error) == (1, "tee: /proc/sys/net/ipv4/nope: No such file or directory")
    r = shell.run("echo abc | tee /proc/sys/net/ipv4/ip_forward")
    assert (r.status, r.error) == (1, "tee: /proc/sys/net/ipv4/ip_forward: Invalid argument")


def test_other_files_are_not_modelled():
    with pytest.raises(UnsupportedCommand):
        parse("echo nameserver 1.1.1.1 > /etc/resolv.conf", node="host")
    with pytest.raises(UnsupportedCommand):
        parse("cat /etc/hosts", node="host")
