"""ipset, conntrack and the here-document iptables-restore reads, through the Shell.

Formats are those of ipset v7.17 and conntrack v1.4.7 (tests/data/iptables/
command_scripts.json has the full recordings; test_iptables_commands_golden.py
replays them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from netlab.backends.model import ModelBackend
from netlab.commands.iptables import conntrack_line
from netlab.commands.shell import Shell, script_commands
from netlab.model.netfilter import ConntrackEntry

DATA = Path(__file__).parents[1] / "data" / "iptables"


@pytest.fixture
def shell() -> Shell:
    return Shell(ModelBackend())


def run(shell: Shell, line: str, stdin: str | None = None):
    return shell.run(line, stdin=stdin)


# --- ipset -----------------------------------------------------------------------------------

def test_ipset_members_are_stored_as_ipset_lists_them(shell):
    for line in ("ipset create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 "
                 "maxelem 65536", "ipset add KUBE-CLUSTER-IP 10.96.0.10,udp:53",
                 "ipset add KUBE-CLUSTER-IP 10.96.0.2,80", "ipset create S hash:net",
                 "ipset add S 10.1.2.3/8", "ipset add S 192.168.1.1"):
        assert run(shell, line).ok, line
    members = shell.world.namespaces["host/root"].ipsets
    assert members["KUBE-CLUSTER-IP"].members == ["10.96.0.10,udp:53", "10.96.0.2,tcp:80"]
    assert members["S"].members == ["10.0.0.0/8", "192.168.1.1"]
    listing = run(shell, "ipset list S").output
    assert listing.splitlines()[:3] == ["Name: S", "Type: hash:net", "Revision: 7"]
    assert "Number of entries: 2\nMembers:\n10.0.0.0/8\n192.168.1.1\n" in listing
    assert run(shell, "ipset save S").output.splitlines()[1:] == ["add S 10.0.0.0/8",
                                                                  "add S 192.168.1.1"]


def test_ipset_refusals(shell):
    run(shell, "ipset create S hash:net")
    r = run(shell, "ipset create S hash:net")
    assert (r.status, r.error) == (1, "ipset v7.17: Set cannot be created: set with the same "
                                      "name already exists")
    assert run(shell, "ipset create -exist S hash:net").ok
    run(shell, "ipset add S 10.0.0.0/8")
    assert run(shell, "ipset add S 10.0.0.0/8").error == \
        "ipset v7.17: Element cannot be added to the set: it's already added"
    assert run(shell, "ipset add NOPE 1.2.3.4").error == \
        "ipset v7.17: The set with the given name does not exist"
    assert run(shell, "ipset create T hash:bogus").error == \
        "ipset v7.17: Syntax error: typename 'hash:bogus' is unknown"
    r = run(shell, "ipset bogus")
    assert (r.status, r.error) == (2, "ipset v7.17: No command specified: unknown argument bogus")


def test_ipset_test_and_a_set_in_use(shell):
    run(shell, "ipset create S hash:net")
    run(shell, "ipset add S 10.0.0.0/8")
    assert run(shell, "ipset test S 10.1.2.3").ok
    r = run(shell, "ipset test S 11.1.2.3")
    assert (r.status, r.error) == (1, "11.1.2.3 is NOT in set S.")
    assert run(shell, "iptables -A INPUT -m set --match-set S src -j ACCEPT").ok
    assert "References: 1" in run(shell, "ipset list S").output
    r = run(shell, "ipset destroy S")
    assert (r.status, r.error) == (1, "ipset v7.17: Set cannot be destroyed: it is in use by "
                                      "a kernel component")
    assert run(shell, "iptables -F").ok and run(shell, "ipset destroy S").ok
    r = run(shell, "iptables -A INPUT -m set --match-set S src -j ACCEPT")
    assert (r.status, r.error) == (2, "iptables v1.8.9 (nf_tables): Set S doesn't exist.")


# --- conntrack ---------------------------------------------------------------------------------

RECORDED = [
    # conntrack -L on a real kernel (the timeout, third field, counts down there)
    "udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=38756 dport=53 [UNREPLIED] "
    "src=127.0.0.1 dst=127.0.0.1 sport=53 dport=38756 mark=0 use=1",
    "icmp     1 29 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=15522 src=127.0.0.1 "
    "dst=127.0.0.1 type=0 code=0 id=15522 mark=0 use=1",
    "tcp      6 118 SYN_SENT src=10.8.0.1 dst=10.8.0.99 sport=49010 dport=80 [UNREPLIED] "
    "src=10.8.0.5 dst=10.8.0.1 sport=8080 dport=49010 mark=0 use=2",
]


def _entry(line: str) -> ConntrackEntry:
    fields = dict(re.findall(r"(\w+)=(\S+)", line))
    tuples = re.findall(r"src=(\S+) dst=(\S+) (?:sport=(\d+) dport=(\d+)|type=\d+ code=\d+ "
                        r"id=(\d+))", line)
    proto = line.split()[0]
    state = line.split()[3] if proto == "tcp" else ""

    def t(parts):
        src, dst, sport, dport, icmp_id = parts
        if icmp_id:
            return (src, int(icmp_id), dst, None)
        return (src, int(sport), dst, int(dport))
    status = [] if "[UNREPLIED]" not in line else ["UNREPLIED"]
    if "[UNREPLIED]" not in line:
        status.append("SEEN_REPLY")
    return ConntrackEntry(proto=proto, orig=t(tuples[0]), reply=t(tuples[1]), state=state,
                          status=status, mark=int(fields["mark"]))


@pytest.mark.parametrize("line", RECORDED)
def test_conntrack_lines_are_printed_as_conntrack_prints_them(line):
    normal = re.sub(r"^(\S+\s+\d+) \d+", r"\1 T", line).replace("use=2", "use=1")
    assert re.sub(r"^(\S+\s+\d+) \d+", r"\1 T", conntrack_line(_entry(line))) == normal


def test_conntrack_list_filter_and_flush(shell):
    ns = shell.world.namespaces.get("host/root")
    run(shell, "true")
    ns = shell.world.namespaces["host/root"]
    ns.conntrack = [_entry(line) for line in RECORDED]
    assert len(run(shell, "conntrack -L").output.splitlines()) == 3
    assert run(shell, "conntrack -L -p tcp").output.startswith("tcp      6 120 SYN_SENT ")
    assert run(shell, "conntrack -C").output == "3\n"
    r = run(shell, "conntrack -L -p bogus")
    assert (r.status, r.error) == (2, "conntrack v1.4.7 (conntrack-tools): `bogus' unsupported "
                                      "protocol")
    assert run(shell, "conntrack -F").ok and shell.world.namespaces["host/root"].conntrack == []
    r = run(shell, "conntrack -L --bogus")
    assert (r.status, r.error) == (2, "conntrack v1.4.7 (conntrack-tools): unknown option "
                                      "`--bogus'")


# --- iptables-restore input -----------------------------------------------------------------------

def test_here_documents_in_a_script(shell):
    script = ("iptables -N KEEP\n"
              "iptables-restore --noflush <<'EOF'\n*filter\n# a comment\n:NEW - [0:0]\n\n"
              "-A NEW -j RETURN\n-A INPUT -j NEW\nCOMMIT\nEOF\n"
              "iptables -S\n")
    assert [c[1] for c in script_commands(script)] == ["iptables -N KEEP",
                                                        "iptables-restore --noflush",
                                                        "iptables -S"]
    results = shell.run_script(script)
    assert all(r.ok for r in results), [r.error for r in results]
    assert results[-1].output.splitlines()[-3:] == ["-N NEW", "-A INPUT -j NEW",
                                                    "-A NEW -j RETURN"]


def test_iptables_restore_without_input_says_how_to_give_it(shell):
    r = run(shell, "iptables-restore /etc/iptables/rules.v4")
    assert (r.status, r.error.split(" (hint:")[0]) == \
        (1, "Can't open /etc/iptables/rules.v4: No such file or directory")
    assert "here-document" in run(shell, "iptables-restore").error


def test_restore_options(shell):
    payload = "*filter\n[5:6] -A INPUT -j ACCEPT\nCOMMIT\n*nat\n-A POSTROUTING -j MASQUERADE\n" \
              "COMMIT\n"
    assert run(shell, "iptables-restore -t", payload).ok
    assert shell.world.namespaces["host/root"].tables == {}
    assert run(shell, "iptables-restore -T nat", payload).ok
    assert list(shell.world.namespaces["host/root"].tables) == ["nat"]
    assert run(shell, "iptables-restore -c", payload).ok
    assert "[5:6] -A INPUT -j ACCEPT" in run(shell, "iptables-save -c").output
    assert run(shell, "iptables-restore", payload).ok
    assert "[0:0] -A INPUT -j ACCEPT" in run(shell, "iptables-save -c").output
    r = run(shell, "iptables-restore --bogus", payload)
    assert (r.status, r.error) == (1, "iptables-restore: unrecognized option '--bogus'")


def test_every_change_is_one_iptables_restore_op():
    from netlab import ops as O
    from netlab.commands.shell import parse
    command = parse("iptables -t nat -A POSTROUTING -s 192.168.15.0/24 -j MASQUERADE",
                    node="host")
    (op,) = command.ops
    assert op == O.IptablesRestore(
        "host/root", "*nat\n-A POSTROUTING -s 192.168.15.0/24 -j MASQUERADE\nCOMMIT\n",
        noflush=True, command="iptables -t nat -A POSTROUTING -s 192.168.15.0/24 -j MASQUERADE")
    assert parse("iptables -S", node="host").ops == []


def test_kube_proxy_dump_through_the_shell(shell):
    dump = (DATA / "kube-proxy-save.txt").read_text()
    assert run(shell, "iptables-restore", dump).ok
    listing = run(shell, "iptables -t nat -L KUBE-SERVICES -n").output.splitlines()
    assert listing[0] == "Chain KUBE-SERVICES (2 references)"
    assert listing[2].startswith("KUBE-SVC-TCOU7JCQXEZGVUNU  17   --  0.0.0.0/0            "
                                 "10.96.0.10           /* kube-system/kube-dns:dns cluster IP "
                                 "*/ udp dpt:53")
    saved = run(shell, "iptables-save").output
    assert [l for l in saved.splitlines() if not l.startswith("#")] == \
        [l for l in dump.splitlines() if not l.startswith("#")]
    json.dumps(shell.world.to_json())
