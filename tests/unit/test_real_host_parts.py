"""The parts of `real up --host` and of real show commands that need no root: which show
lines run as the real tool, how a journal keeps what undoes a host change, how
iptables-save is read, and the CLI's refusals."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from netlab.cli.main import app


@pytest.mark.parametrize("line,argv", [
    ("ip route", ["ip", "route"]),
    ("ip -n red addr", ["ip", "addr"]),
    ("ip netns exec red ip -br link show", ["ip", "-br", "link", "show"]),
    ("ip -4 route show table main", ["ip", "-4", "route", "show", "table", "main"]),
    ("ip link show master v-net-0", ["ip", "link", "show", "master", "v-net-0"]),
    ("iptables -t nat -S", ["iptables", "-t", "nat", "-S"]),
    ("iptables -L -n -v", ["iptables", "-L", "-n", "-v"]),
    ("iptables-save", ["iptables-save"]),
    ("conntrack -L", ["conntrack", "-L"]),
    ("bridge fdb show br v-net-0", ["bridge", "fdb", "show", "br", "v-net-0"]),
    ("sysctl net.ipv4.ip_forward", ["sysctl", "net.ipv4.ip_forward"]),
    ("ip netns", None),                       # the machine's names, not the lab's
    ("ip route add 10.0.0.0/24 dev x", None),
    ("ip neigh flush all", None),
    ("iptables -L -Z", None),                 # zeroes counters: a change
    ("conntrack -F", None),
    ("bridge fdb add 00:11:22:33:44:55 dev vx", None),
    ("sysctl -w net.ipv4.ip_forward=1", None),
    ("ip route | grep default", None),
    ("cat /etc/cni/net.d/10-bridge.conf", None),
    ("ss -K dst 10.0.0.1", None),
    ("bridge monitor", None),
    ("conntrack -E", None),
    ("sysctl -p", None),
])
def test_which_show_lines_run_as_the_real_tool(line, argv):
    from netlab.labs.kernel import show_argv

    assert show_argv(line) == argv


def test_a_journal_entry_keeps_what_undoes_a_host_change(tmp_path):
    from netlab.backends.journal import Journal

    journal = Journal.open_new("nlrhj", str(tmp_path))
    journal.record("host", "route", None, {"dst": "10.0.0.0/24", "metric": 0, "n": 1})
    journal.record("host", "route", None, {"dst": "10.0.0.0/24", "metric": 0, "n": 2})
    first = journal.entries[0]
    journal.amend(first, type(first)("host", "route", None, dict(first.data, dev="x")))
    again = Journal.load("nlrhj", str(tmp_path))
    assert again is not None and [e.data for e in again.entries] == [
        {"dst": "10.0.0.0/24", "metric": 0, "n": 1, "dev": "x"},
        {"dst": "10.0.0.0/24", "metric": 0, "n": 2}]
    journal.record("netns", "nl-x-host", "host/root")
    assert "data" not in Journal.load("nlrhj", str(tmp_path)).to_json()["entries"][2]  # type: ignore[union-attr]


def test_iptables_save_is_read_per_table_and_chain():
    from netlab.backends.hostmode import parse_save

    text = ("# Generated\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:MINE - [0:0]\n"
            "-A INPUT -s 10.0.0.0/8 -j ACCEPT\n-A MINE -j RETURN\nCOMMIT\n*nat\n"
            ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n")
    assert parse_save(text) == {"filter": {"INPUT": ["-s 10.0.0.0/8 -j ACCEPT"], "FORWARD": [],
                                           "MINE": ["-j RETURN"]},
                                "nat": {"POSTROUTING": []}}


def test_host_mode_refusals_that_need_no_root():
    runner = CliRunner()
    both = runner.invoke(app, ["real", "up", "03", "--host", "--yes-modify-host", "--node", "x"])
    assert both.exit_code == 2 and "--node" in both.stderr and both.stderr.count("\n") == 1
    verify = runner.invoke(app, ["real", "verify", "03", "--host"])
    assert verify.exit_code == 2 and "--host is for `netlab real up`" in verify.stderr
