"""Real mode without a kernel: the refusal when not root, how verify compares a row, the
automatic probe set, what a probe reads from an ICMP answer, which lab lines run as tools."""

from __future__ import annotations

import socket
import struct

import pytest
from typer.testing import CliRunner

from netlab.cli.main import app


@pytest.mark.parametrize("args", [["real", "verify", "02"], ["real", "up", "02"],
                                  ["real", "down", "--all"]])
def test_not_root_is_one_line_and_exit_2(args, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr == "netlab: real mode needs root (run with sudo)\n"


def test_a_row_compares_outcome_and_for_tcp_udp_what_the_listener_saw():
    from netlab.labs.verify import same

    ok = {"outcome": "success", "delivered_to": "web", "src": "10.0.0.1", "dst": "10.0.0.2:80"}
    assert same("tcp", ok, dict(ok))
    assert not same("tcp", ok, {**ok, "src": "10.0.0.9"})          # SNAT differs
    assert not same("tcp", ok, {**ok, "dst": "10.0.0.2:8080"})     # DNAT differs
    assert not same("udp", ok, {**ok, "delivered_to": "red"})
    assert not same("tcp", ok, {"outcome": "refused"})
    # ping shows no listener: only the outcome counts
    assert same("icmp", {"outcome": "success", "delivered_to": "web"},
                {"outcome": "success", "delivered_to": None})
    assert same("tcp", {"outcome": "timeout"}, {"outcome": "timeout", "detail": "x"})
    mixed = {"outcome": "mixed", "outcomes": ["success", "timeout"]}
    assert same("tcp", mixed, {"outcome": "timeout"}) and not same("tcp", mixed,
                                                                   {"outcome": "refused"})


def test_the_automatic_probe_set_of_lab_06():
    from netlab.labs import find_lab, load_lab
    from netlab.labs.runner import run_lab
    from netlab.labs.verify import auto_probe_set

    world = run_lab(load_lab(find_lab("06")), check_expect=False).world
    probes = auto_probe_set(world)
    sources = sorted({p[0] for p in probes})
    assert sources == ["host/root", "host/web", "node2/root"]        # no switch namespace
    addrs = sorted({p[1] for p in probes})
    assert addrs == ["172.17.0.1", "172.17.0.2", "192.168.1.2", "192.168.1.3"]
    assert {(p[2], p[3]) for p in probes} == {("icmp", None), ("tcp", 80)}
    assert len(probes) == 3 * 4 * 2


def _ip(src: str, dst: str, payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, 1, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + payload


def test_an_icmp_answer_is_matched_to_its_echo_request():
    from netlab.backends.probe import _icmp_answer

    echo = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + b"x" * 8
    reply = _ip("10.0.0.2", "10.0.0.1", struct.pack("!BBHHH", 0, 0, 0, 7, 1) + b"x" * 8)
    assert _icmp_answer(reply, 7, 1) == ("success", "echo reply from 10.0.0.2")
    assert _icmp_answer(reply, 8, 1) is None                  # another probe's
    quoted = _ip("10.0.0.1", "10.0.0.9", echo)
    port = _ip("10.0.0.5", "10.0.0.1", struct.pack("!BBHI", 3, 3, 0, 0) + quoted)
    net = _ip("10.0.0.5", "10.0.0.1", struct.pack("!BBHI", 3, 0, 0, 0) + quoted)
    ttl = _ip("10.0.0.5", "10.0.0.1", struct.pack("!BBHI", 11, 0, 0, 0) + quoted)
    assert _icmp_answer(port, 7, 1)[0] == "refused"
    assert _icmp_answer(net, 7, 1)[0] == "unreachable"
    assert _icmp_answer(ttl, 7, 1)[0] == "unreachable"
    assert _icmp_answer(net, 9, 1) is None


@pytest.mark.parametrize("line, argv", [
    ("ip netns exec red ping -c 1 192.168.15.2", ["ping", "-c", "1", "192.168.15.2"]),
    ("curl -s -o /dev/null http://192.168.1.2:8080/",
     ["curl", "-s", "-o", "/dev/null", "http://192.168.1.2:8080/"]),
    ("sudo ip netns exec a nc -zv 10.0.0.1 80", ["nc", "-zv", "10.0.0.1", "80"]),
    ("ip netns exec red ping -c1 10.0.0.1 | grep ttl", None),
    ("ip netns exec red ip route", None),
])
def test_which_lab_lines_run_as_the_real_tool(line, argv):
    from netlab.labs.kernel import tool_argv

    assert tool_argv(line) == argv


def test_host_mode_is_refused_without_its_confirmation_flag():
    result = CliRunner().invoke(app, ["real", "up", "02", "--host"])
    assert result.exit_code == 2
    assert result.stderr.startswith("netlab: --host changes this machine's own network "
                                    "namespace")
    assert "--yes-modify-host" in result.stderr and result.stderr.count("\n") == 1
    result = CliRunner().invoke(app, ["real", "up", "02", "--yes-modify-host"])
    assert result.exit_code == 2 and "which was not given" in result.stderr
