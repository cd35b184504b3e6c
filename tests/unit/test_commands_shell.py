"""The Shell: command lines, scripts, where a command runs, and how fast."""

from __future__ import annotations


import pytest

from netlab.backends.model import ModelBackend
from netlab.commands import CommandResult, Shell, parse
from netlab.commands.lexer import is_operator, join_continuations, matches, split, suggest
from netlab.errors import CommandError, UnsupportedCommand
from netlab.model import World


def new_shell(node="host"):
    return Shell(ModelBackend(World()), default_node=node)


# --- words ------------------------------------------------------------------------------

SPLITS = [
    ("plain", "ip link add veth-red type veth", ["ip", "link", "add", "veth-red", "type", "veth"]),
    ("redirect-attached", "echo 1 >/proc/sys/x", ["echo", "1", ">", "/proc/sys/x"]),
    ("quoted-operator", "sh -c 'echo 1 > /proc/x'", ["sh", "-c", "echo 1 > /proc/x"]),
    ("double-quotes", 'curl -w "%{http_code}\\n" http://1.2.3.4/',
     ["curl", "-w", "%{http_code}\\n", "http://1.2.3.4/"]),
    ("comment", "ip a # show addresses", ["ip", "a"]),
    ("background", "nc -l 80 &", ["nc", "-l", "80", "&"]),
    ("escaped-space", r"echo a\ b", ["echo", "a b"]),
    ("hash-inside-word", "echo a#b", ["echo", "a#b"]),
]


@pytest.mark.parametrize("line,words", [s[1:] for s in SPLITS], ids=[s[0] for s in SPLITS])
def test_split(line, words):
    assert split(line) == words


def test_operators_are_marked():
    words = split("echo '|' | tee x")
    assert [is_operator(w) for w in words] == [False, False, True, False, False]


def test_unterminated_quote_is_an_error():
    with pytest.raises(CommandError):
        split("echo 'oops")


def test_join_continuations_and_comments():
    text = "# setup\nip link add veth-red \\\n    type veth \\\n    peer name veth-blue\n\n  # x\nip a\n"
    assert join_continuations(text) == [
        (2, "ip link add veth-red type veth peer name veth-blue"), (7, "ip a")]


def test_matches_is_iproute2s_prefix_rule():
    assert matches("a", "address") and matches("add", "add") and not matches("adds", "add")


def test_suggest():
    assert suggest("reute", ["address", "route", "link"]) == "route"
    assert suggest("xyzzy", ["address", "route", "link"]) is None


# --- results -----------------------------------------------------------------------------

def test_result_fields():
    sh = new_shell()
    r = sh.run("  ip netns add red  ")
    assert r == CommandResult(cmd="ip netns add red", ok=True, error=None, output="", status=0,
                              traces=[])


def test_the_node_is_created_on_first_use():
    sh = new_shell("node1")
    assert sh.run("ip link").ok
    assert sh.world.nodes == ["node1"]
    assert sh.run("ip netns add red", node="node2").ok
    assert "node2/red" in sh.world.namespaces and "node1/red" not in sh.world.namespaces


def test_namespace_names_are_per_node():
    sh = new_shell()
    sh.run("ip netns add red", node="a")
    r = sh.run("ip -n red link", node="b")
    assert (r.ok, r.status) == (False, 255)


def test_root_is_reserved():
    r = new_shell().run("ip netns add root")
    assert not r.ok and "root" in r.error


def test_run_script_stops_at_the_first_error():
    sh = new_shell()
    results = sh.run_script("ip netns add red\nip reute\nip netns add blue\n")
    assert [r.ok for r in results] == [True, False]
    results = sh.run_script("ip reute\nip netns add blue\n", stop_on_error=False)
    assert [r.ok for r in results] == [False, True]


def test_background_sudo_and_shells():
    sh = new_shell()
    assert sh.run("sudo ip netns add red").ok
    assert sh.run("sudo -E ip -n red link set lo up").ok
    assert sh.run("ip netns exec red bash -c 'ip link set lo down'").ok
    assert not sh.world.namespaces["host/red"].links["lo"].up
    cmd = parse("ip netns exec red nc -l -p 80 &", node="host")
    assert cmd.background and cmd.kind == "listen"


def test_echo_true_sleep():
    sh = new_shell()
    assert sh.run("echo hello world").output == "hello world\n"
    assert sh.run("true").ok and sh.run("sleep 1").ok
    assert sh.run("false").status == 1


def test_output_to_dev_null():
    sh = new_shell()
    r = sh.run("ip link > /dev/null 2>&1")
    assert (r.ok, r.output) == (True, "")


def test_command_lists_are_refused_with_a_hint():
    with pytest.raises(UnsupportedCommand) as err:
        parse("ip netns add a && ip netns add b", node="host")
    assert err.value.hint == "put one command on each line"


def test_version():
    assert new_shell().run("ip -V").output.startswith("ip utility, iproute2")


# --- the tutorial, end to end --------------------------------------------------------------

TUTORIAL = """
ip netns add red
ip netns add blue
ip link add v-net-0 type bridge
ip link set dev v-net-0 up
ip link add veth-red type veth peer name veth-red-br
ip link add veth-blue type veth peer name veth-blue-br
ip link set veth-red netns red
ip link set veth-red-br master v-net-0
ip link set veth-blue netns blue
ip link set veth-blue-br master v-net-0
ip -n red addr add 192.168.15.1/24 dev veth-red
ip -n blue addr add 192.168.15.2/24 dev veth-blue
ip -n red link set veth-red up
ip -n blue link set veth-blue up
ip link set veth-red-br up
ip link set veth-blue-br up
ip addr add 192.168.15.5/24 dev v-net-0
ip netns exec blue ip route add 192.168.1.0/24 via 192.168.15.5
ip netns exec red ping -c1 192.168.15.2
"""


def test_the_bridge_tutorial_runs():
    sh = new_shell()
    results = sh.run_script(TUTORIAL)
    assert all(r.ok for r in results), [(r.cmd, r.error) for r in results if not r.ok]
    assert "1 received" in results[-1].output


# --- performance ---------------------------------------------------------------------------

def many_namespaces(n: int) -> list[str]:
    lines = ["ip link add v-net-0 type bridge", "ip link set dev v-net-0 up",
             "ip addr add 10.0.0.1/16 dev v-net-0"]
    for i in range(n):
        lines += [f"ip netns add ns{i}",
                  f"ip link add veth-{i} type veth peer name br-{i}",
                  f"ip link set veth-{i} netns ns{i}",
                  f"ip link set br-{i} master v-net-0",
                  f"ip link set br-{i} up",
                  f"ip -n ns{i} addr add 10.0.{i // 250}.{i % 250 + 2}/16 dev veth-{i}",
                  f"ip -n ns{i} link set veth-{i} up",
                  f"ip -n ns{i} link set lo up",
                  f"ip netns exec ns{i} ip route add default via 10.0.0.1",
                  f"ip -n ns{i} link set dev veth-{i} mtu 1450"]
    return lines


def test_two_hundred_namespaces_build_from_commands():
    # How long this takes is a figure of benchmarks/trace_bench.py, not an assertion here.
    lines = many_namespaces(200)
    assert len(lines) > 2000
    sh = new_shell()
    results = [sh.run(line) for line in lines]
    assert all(r.ok for r in results)
    assert len(sh.world.namespaces) == 201
