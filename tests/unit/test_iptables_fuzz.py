"""Properties: whatever rule text or dump is given, the model answers as a tool does.

Random ``iptables`` command lines (built from real options, values and junk) and
random iptables-restore payloads (real dump lines, mutated) are applied to a
namespace that already holds a kube-proxy-style table. For each: either it is
applied, or a CommandError with a one-line message and exit status 1, 2, 3 or 4
(iptables' PARAMETER_PROBLEM is 2, a refusal of the table 1, of the kernel 4, an
unknown table 3) is raised; no other exception; and on error the World is
unchanged. What was applied reads back: iptables-save of the result restores to
the same dump.
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netlab.backends.model import ModelBackend
from netlab.commands import Shell
from netlab.errors import CommandError
from netlab.model.world import Netns
from netlab.netfilter.kubeproxy import kube_proxy_dump
from netlab.netfilter.restore import apply_restore, iptables_save

BASE = kube_proxy_dump(3)
# Rules the real iptables accepted (tests/data/iptables/rule_cases.json): table, chain, words,
# and the line iptables -S printed for them.
RECORDED = [(c["table"], c["chain"], shlex.split(c["args"]), c["stdout"])
            for c in json.loads((Path(__file__).parents[1] / "data" / "iptables" /
                                 "rule_cases.json").read_text())["cases"]
            if c["status"] == 0 and c["chain"] in ("INPUT", "FORWARD", "OUTPUT",
                                                   "PREROUTING", "POSTROUTING")]

CHAINS = ["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING", "KUBE-SERVICES",
          "KUBE-MARK-MASQ", "KUBE-POSTROUTING", "NOPE", "X", "-bad", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]
TABLES = ["filter", "nat", "mangle", "raw", "bogus"]
# Options of the rule language with values that are right, wrong or odd for them.
PAIRS = {
    "-s": ["10.0.0.0/8", "10.96.0.10", "1.2.3.300", "0.0.0.0/0", "10.0.0.1,10.0.0.2", "x"],
    "-d": ["10.96.0.10/32", "127.0.0.0/8", "10.0.0.0/33", "localhost"],
    "-p": ["tcp", "udp", "icmp", "all", "6", "256", "gre", "TCP"],
    "-i": ["eth0", "eth+", "veth1234567890123", ""], "-o": ["docker0", "+"],
    "-m": ["comment", "conntrack", "state", "mark", "multiport", "statistic", "addrtype",
           "physdev", "set", "limit", "mac", "iprange", "recent", "tcp", "udp", "icmp", "owner",
           "foo"],
    "--dport": ["80", "1:1024", "90:80", "65536", "http", ":80", "0"], "--sport": ["53", "x"],
    "--syn": [], "--tcp-flags": ["SYN,ACK SYN", "ALL NONE", "BOGUS SYN"],
    "--icmp-type": ["echo-request", "3/4", "any", "echo", "256"],
    "--dports": ["80,443", "1:2,3", "20:10"], "--comment": ["x", '"a b"', "''", "'a\"b'"],
    "--ctstate": ["NEW,ESTABLISHED", "BOGUS", "DNAT"], "--ctorigdst": ["10.96.0.1", "x"],
    "--ctdir": ["ORIGINAL", "BOTH"], "--state": ["NEW", "DNAT"],
    "--mark": ["0x4000/0x4000", "1", "foo"], "--dst-type": ["LOCAL", "BOGUS"],
    "--src-type": ["LOCAL,UNICAST"], "--limit-iface-in": [], "--limit-iface-out": [],
    "--mode": ["random", "nth", "bogus"], "--probability": ["0.5", "1.5", "0.33333333349"],
    "--every": ["3", "0"], "--packet": ["0", "5"], "--physdev-in": ["veth1"],
    "--physdev-is-bridged": [], "--match-set": ["S src", "NOPE dst", "S bogus"],
    "--limit": ["5/min", "abc"], "--limit-burst": ["10", "20000"],
    "--mac-source": ["00:11:22:33:44:55", "zz"], "--src-range": ["1.2.3.4-1.2.3.9", "x"],
    "--rcheck": [], "--set": [], "--seconds": ["60"], "--name": ["X"],
    "-j": ["ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "SNAT", "MASQUERADE", "REDIRECT",
           "MARK", "CONNMARK", "LOG", "NFLOG", "NOTRACK", "CT", "TCPMSS", "KUBE-SERVICES",
           "NOPE", "INPUT", "TEE"],
    "-g": ["KUBE-MARK-MASQ", "ACCEPT"],
    "--reject-with": ["tcp-reset", "icmp-host-prohibited", "bogus"],
    "--log-prefix": ['"drop: "', "''"], "--log-level": ["4", "debug", "8"],
    "--set-mark": ["0x1", "1/0xff", "x"], "--set-xmark": ["0x4000/0x4000"], "--or-mark": ["1"],
    "--save-mark": [], "--restore-mark": [], "--mask": ["0xff"],
    "--to-destination": ["10.244.1.5:53", "10.0.0.1", ":80", "bogus", "1.2.3.4-1.2.3.9"],
    "--to-source": ["1.2.3.4"], "--to-ports": ["8080", "1000-2000", "80:90"],
    "--random": [], "--random-fully": [], "--persistent": [], "--notrack": [],
    "--zone": ["5"], "--clamp-mss-to-pmtu": [], "--set-mss": ["1400"],
    "-f": [], "-c": ["1 2", "x 2"], "--dportt": ["80"], "-w": [], "-n": [],
}
COMMANDS = [["-A", "C"], ["-I", "C"], ["-I", "C", "2"], ["-I", "C", "99"], ["-D", "C"],
            ["-D", "C", "1"], ["-R", "C", "1"], ["-C", "C"], ["-N", "C"], ["-X", "C"], ["-X"],
            ["-F", "C"], ["-F"], ["-Z"], ["-P", "C", "DROP"], ["-P", "C", "ACCEPT"],
            ["-E", "C", "Y"], ["-L", "C"], ["-S"], ["-L", "-n", "-v", "--line-numbers"], []]


BUILTIN = ["-s", "-d", "-p", "-i", "-o", "-f", "-c"]
MODULES = {
    "tcp": ["--dport", "--sport", "--syn", "--tcp-flags"], "udp": ["--dport", "--sport"],
    "icmp": ["--icmp-type"], "multiport": ["--dports"], "comment": ["--comment"],
    "conntrack": ["--ctstate", "--ctorigdst", "--ctdir"], "state": ["--state"],
    "mark": ["--mark"], "addrtype": ["--dst-type", "--src-type", "--limit-iface-in",
                                     "--limit-iface-out"],
    "statistic": ["--mode", "--probability", "--every", "--packet"],
    "physdev": ["--physdev-in", "--physdev-is-bridged"], "set": ["--match-set"],
    "limit": ["--limit", "--limit-burst"], "mac": ["--mac-source"], "iprange": ["--src-range"],
    "recent": ["--rcheck", "--set", "--seconds", "--name"], "owner": [], "foo": [],
}
TARGET_OPTS = {
    "REJECT": ["--reject-with"], "LOG": ["--log-prefix", "--log-level"],
    "MARK": ["--set-mark", "--set-xmark", "--or-mark"],
    "CONNMARK": ["--save-mark", "--restore-mark", "--mask", "--set-mark"],
    "DNAT": ["--to-destination", "--random", "--persistent"],
    "SNAT": ["--to-source", "--random-fully"], "MASQUERADE": ["--to-ports", "--random-fully"],
    "REDIRECT": ["--to-ports"], "CT": ["--notrack", "--zone"],
    "TCPMSS": ["--clamp-mss-to-pmtu", "--set-mss"],
}


@st.composite
def _option(draw, option: str) -> list[str]:
    out = ["!"] if draw(st.integers(0, 9)) == 0 else []
    out.append(option)
    values = PAIRS.get(option, [])
    if values:
        # the first value of each option is a good one: favour it
        value = values[0] if draw(st.booleans()) else draw(st.sampled_from(values))
        out += value.split(" ")
    return out


@st.composite
def rule_words(draw) -> list[str]:
    """Built-in options, matches with their options, a target with its options (and now and
    then an option out of place)."""
    out: list[str] = []
    for option in draw(st.lists(st.sampled_from(BUILTIN), max_size=3, unique=True)):
        out += draw(_option(option))
    for module in draw(st.lists(st.sampled_from(sorted(MODULES)), max_size=3, unique=True)):
        if draw(st.integers(0, 4)):
            out += ["-m", module]
        for option in draw(st.lists(st.sampled_from(MODULES[module] or ["--x"]), max_size=3,
                                    unique=True)):
            out += draw(_option(option))
    if draw(st.integers(0, 4)):
        target = draw(st.sampled_from(PAIRS["-j"] + ["KUBE-MARK-MASQ"]))
        out += [draw(st.sampled_from(["-j", "-j", "-j", "-g"])), target]
        for option in draw(st.lists(st.sampled_from(TARGET_OPTS.get(target, ["--x"])),
                                    max_size=2, unique=True)):
            out += draw(_option(option))
    if draw(st.integers(0, 9)) == 0:
        out.insert(draw(st.integers(0, len(out))), draw(st.sampled_from(sorted(PAIRS))))
    return out


@st.composite
def recorded_line(draw) -> str:
    """A rule the real iptables accepted, now and then with a word dropped, doubled or
    replaced, or a ``!`` put in."""
    table, chain, args, _shown = draw(st.sampled_from(RECORDED))
    args = list(args)
    for _ in range(draw(st.integers(0, 2))):
        if not args:
            break
        i = draw(st.integers(0, len(args) - 1))
        kind = draw(st.sampled_from(["drop", "double", "replace", "bang"]))
        if kind == "drop":
            del args[i]
        elif kind == "double":
            args.insert(i, args[i])
        elif kind == "replace":
            args[i] = draw(st.sampled_from(sorted(PAIRS) + CHAINS + ["80", "x", "tcp"]))
        else:
            args.insert(i, "!")
    command = draw(st.sampled_from([["-A", chain], ["-I", chain], ["-D", chain], ["-C", chain],
                                    ["-R", chain, "1"]]))
    return "iptables " + " ".join(shlex.quote(w) for w in ["-t", table, *command, *args])


@st.composite
def command_lines(draw) -> str:
    if draw(st.booleans()):
        return draw(recorded_line())
    words: list[str] = []
    if draw(st.booleans()):
        words += ["-t", draw(st.sampled_from(TABLES))]
    chain = draw(st.sampled_from(CHAINS))
    words += [chain if w == "C" else w for w in draw(st.sampled_from(COMMANDS))]
    words += draw(rule_words())
    return "iptables " + " ".join(words)


def world_with_tables() -> Shell:
    shell = Shell(ModelBackend())
    shell.run("ipset create S hash:ip")
    result = shell.run("iptables-restore", stdin=BASE)
    assert result.ok, result.error
    return shell


SHELL = world_with_tables()


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(command_lines())
def test_random_iptables_command_lines(line):
    shell = SHELL
    before = copy.deepcopy(shell.world.namespaces["host/root"].tables)
    result = shell.run(line)
    assert result.status != 70, result.error            # 70: netlab's internal error
    if not result.ok:
        assert result.error and "\n" not in result.error, line
        assert result.status in (1, 2, 3, 4), (line, result.status, result.error)
        assert shell.world.namespaces["host/root"].tables == before, line
    ns = shell.world.namespaces["host/root"]
    saved = iptables_save(ns)
    again = Netns(node="host", name="root")
    again.ipsets = ns.ipsets
    apply_restore(again, saved)                          # what is stored reads back
    assert iptables_save(again) == saved


LINES = BASE.splitlines()


@st.composite
def payloads(draw):
    """Sections of real dump lines and random rules, then mutated (cut, word swapped,
    duplicated, dropped, junk, lines swapped)."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 2))):
        table = draw(st.sampled_from(["filter", "filter", "nat", "nat", "mangle", "raw",
                                      "bogus"]))
        lines.append(f"*{table}")
        lines += [":MYCHAIN - [0:0]", ":OTHER - [0:0]", ":KUBE-MARK-MASQ - [0:0]"][
            :draw(st.integers(0, 3))]
        for _ in range(draw(st.integers(0, 2))):
            lines.append(f":{draw(st.sampled_from(CHAINS))} "
                         f"{draw(st.sampled_from(['-', 'ACCEPT', 'DROP', 'x']))} [0:0]")
        for _ in range(draw(st.integers(0, 8))):
            choice = draw(st.sampled_from([0, 1, 1, 1, 2]))
            if choice == 0:
                lines.append(draw(st.sampled_from([l for l in LINES if l.startswith("-A ")])))
            elif choice == 1:
                same = [shown for t, _c, _a, shown in RECORDED if t == table]
                lines.append(draw(st.sampled_from(same)) if same else "-A INPUT -j ACCEPT")
            else:
                command = draw(st.sampled_from(COMMANDS[:17]))
                chain = draw(st.sampled_from(CHAINS))
                lines.append(" ".join([chain if w == "C" else w for w in command]
                                      + draw(rule_words())))
        if draw(st.integers(0, 6)):
            lines.append("COMMIT")
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["cut", "word", "dup", "drop", "junk", "swap"]))
        text = lines[i]
        if kind == "cut" and text:
            lines[i] = text[:draw(st.integers(0, len(text)))]
        elif kind == "word":
            pieces = text.split(" ")
            pieces[draw(st.integers(0, len(pieces) - 1))] = \
                draw(st.sampled_from(sorted(PAIRS) + CHAINS))
            lines[i] = " ".join(pieces)
        elif kind == "dup":
            lines.insert(i, text)
        elif kind == "drop" and len(lines) > 1:
            del lines[i]
        elif kind == "junk":
            lines[i] = draw(st.text(max_size=20)).replace("\n", " ")
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


# Found by this test (a comment whose quote is never closed): kept so it always runs.
UNTERMINATED_COMMENT = (
    '*filter\n:MYCHAIN - [0:0]\n:MYCHAIN - [0:0]\n:OTHER - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n'
    ':INPUT ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n-A INPUT -m conntrack --ctstate NEW -m comment '
    '--comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL\n'
    '-A INPUT -m comment --comment "\n-A INPUT -m conntrack --ctstate NEW -m comment '
    '--comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL\nCOMMIT\n')


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(payloads(), st.booleans())
@example(UNTERMINATED_COMMENT, True)
def test_random_dumps(payload, noflush):
    ns = Netns(node="host", name="root")
    apply_restore(ns, BASE)
    before = copy.deepcopy(ns.tables)
    try:
        apply_restore(ns, payload, noflush)
    except CommandError as exc:
        message = str(exc)
        assert message.splitlines() and message.splitlines()[0].strip(), message
        assert exc.status in (1, 2, 4), (exc.status, message)
        assert ns.tables == before
        return
    saved = iptables_save(ns)
    again = Netns(node="host", name="root")
    stray = [n for n, line in enumerate(saved.split("\n"), 1) if line.startswith('"')]
    if stray:
        # An unterminated quote keeps the line's newline in the argument (a comment); the
        # real iptables-save prints it as it is and the real iptables-restore cannot read
        # that dump back either: it stops at the stray `"` line (test_iptables_restore,
        # "unterminated quote"). The model must refuse it the same way.
        try:
            apply_restore(again, saved)
        except CommandError as exc:
            assert str(exc).startswith("Bad argument `"), str(exc)
            assert str(exc).endswith(f"Error occurred at line: {stray[0]}"), str(exc)
            return
        raise AssertionError(f"a dump with a newline in a string read back: {saved!r}")
    apply_restore(again, saved)
    assert iptables_save(again) == saved
