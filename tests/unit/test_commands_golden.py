"""Golden tests: replay each real-kernel transcript through the Shell and compare.

Every command of tests/data/kernel/<scenario>.txt runs in a fresh model, in
order; its output (after tests.unit.kernel_transcripts.normalise) and exit
status must be the kernel's. The steps listed in KNOWN differ on purpose or
because of a limitation that is written next to them; each must still
differ (strict), so a fix shows up here as "remove it from KNOWN".
"""

from __future__ import annotations

import pytest

from netlab.backends.model import ModelBackend
from netlab.commands import Shell
from tests.unit.kernel_transcripts import Step, normalise, read_transcript, result_matches

# Reasons, named once.
TIMING = "timing: the kernel's state seconds later (neighbour aging, DAD, timers)"
RATELIMIT = "ICMP rate limiting (icmp_ratelimit) is not modelled: every probe gets its error"
QDISC = ("the model has no memory that a link was up once: after `down` it shows qdisc noop "
         "(the kernel keeps noqueue)")
IPV6_MEMORY = ("IPv6 link-local addresses are derived from the current state (up with carrier); "
               "the kernel keeps one after carrier loss and drops it on `addr flush`")
NOT_MODELLED = "the tool or feature is not modelled (netlab says so instead)"
BACKEND = "ModelBackend differs from the kernel here (reported to the lead)"
CASCADE = "follows from an earlier difference in this scenario"
NEIGH_CARRIER = ("an ARP sent while the link had no carrier: the kernel resolved it when carrier "
                 "came (after ping had given up); the model records FAILED")

# (command, occurrence) -> reason. occurrence counts earlier identical commands.
KNOWN: dict[str, dict[tuple[str, int], str]] = {
    "new_netns": {},
    "veth_pair": {
        ("ip -n kref-red neigh", 0): NEIGH_CARRIER,
        ("ip -n kref-red neigh", 1): NEIGH_CARRIER,
        ("ip -n kref-red link", 3): QDISC,
        ("ip -n kref-blue -br a", 0): IPV6_MEMORY,
    },
    "addr_errors_routes": {
        ("ip -n kref-x link add d0 type ifb", 1): NOT_MODELLED + " (ifb; the dummy stands in)",
        ("ip -n kref-x addr show dev d0", 3): IPV6_MEMORY,
        ("ip -n kref-x addr show dev d0", 4): QDISC,
        ("ip -n kref-x route add 10.17.0.0/16 via 10.2.2.254 table 100", 0):
            NOT_MODELLED + " (tables other than main)",
        ("ip -n kref-x route show table 100", 0): CASCADE,
        ("ip -n kref-x route show table all", 0): NOT_MODELLED + " (IPv6 routes, table 100)",
        ("ip -n kref-x route show table all", 1): NOT_MODELLED + " (IPv6 routes)",
        ("ip -n kref-x link set d0 address 02:00:00:00:00:01", 0):
            "ifb refuses a MAC change; the dummy standing in for it accepts one",
    },
    "bridge": {
        ("ip netns exec kref-host brctl show", 0): NOT_MODELLED,
        ("ip netns exec kref-host brctl showmacs v-net-0", 0): NOT_MODELLED,
        ("ip netns exec kref-host ls /proc/sys/net/bridge/", 0): NOT_MODELLED,
        ("ip -n kref-host link show veth-blue-br", 0): QDISC,
        ("ip -n kref-host link show v-net-0", 6): QDISC,
    },
    "router": {
        ("ip -n kref-r neigh", 0): TIMING + " (DELAY turned REACHABLE after 5 s)",
        ("ip -n kref-r neigh", 1): TIMING + " (DELAY turned REACHABLE after 5 s)",
        ("ip netns exec kref-h1 traceroute -n -q1 -w1 10.0.2.2", 2): RATELIMIT,
        ("ip netns exec kref-h1 ping -c3 -i0.2 -W1 10.0.9.9", 0): RATELIMIT,
        ("ip netns exec kref-h1 curl -m 2 http://10.0.2.2:8080/", 0):
            "curl's progress meter (shown when stdout is not a terminal) is not printed",
        ("ip netns exec kref-h2 ss -ltn", 0): NOT_MODELLED,
    },
    "sysctl_outputs": {
        ("ip netns exec kref-s sysctl net.ipv6.conf.all.forwarding", 0): NOT_MODELLED + " (IPv6)",
        ("ip netns exec kref-s sysctl -a --pattern \"^net.ipv4.conf.all\\.\"", 0):
            NOT_MODELLED + " (sysctl --pattern; only some conf keys are modelled)",
    },
}

SCENARIOS = list(KNOWN)


def adapt(scenario: str, step: Step) -> Step | None:
    """Per-scenario adjustments, each a deliberate difference.

    addr_errors_routes ran on a kernel without the dummy module: its first
    `type dummy` failed and `type ifb` stood in. netlab models dummy and not
    ifb, so the ifb device is replayed as a dummy, and ifb's words (qlen 32,
    pfifo_fast, `ifb` in -d) are read as the dummy's (qlen 1000, noqueue).
    """
    if scenario == "addr_errors_routes":
        if step.cmd.endswith("link add d0 type dummy"):
            return None
        if step.cmd.endswith("link add d0 type ifb") and step.occurrence == 0:
            step.cmd = step.cmd.replace("type ifb", "type dummy")
        step.output = (step.output.replace("qlen 32", "qlen 1000")
                       .replace("qdisc pfifo_fast", "qdisc noqueue")
                       .replace("    ifb addrgenmode", "    dummy addrgenmode"))
    return step


def replay(scenario: str):
    shell = Shell(ModelBackend(), default_node="host")
    results = []
    for step in read_transcript(scenario):
        if step.cmd.startswith("sleep "):
            continue
        key = (step.cmd, step.occurrence)
        step = adapt(scenario, step)
        if step is None:
            continue
        line = step.cmd + (" &" if step.background and not step.cmd.endswith("&") else "")
        r = shell.run(line)
        results.append((key, step, r, result_matches(step, r.output, r.error, r.status)))
    return results


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_transcript_replays_like_the_kernel(scenario):
    known = KNOWN[scenario]
    unexpected, fixed = [], []
    for key, step, r, ok in replay(scenario):
        if key in known:
            if ok:
                fixed.append(f"{step.cmd!r} (#{step.occurrence}) now matches: remove it from KNOWN")
            continue
        if not ok:
            unexpected.append(
                f"line {step.line}: $ {step.cmd}\n--- kernel [exit {step.status}]\n"
                f"{normalise(step.output, step.cmd)}--- netlab [exit {r.status}]\n"
                f"{normalise(r.output, step.cmd)}error: {r.error}\n")
    assert not unexpected, f"{len(unexpected)} step(s) differ from the kernel:\n\n" + \
        "\n".join(unexpected)
    assert not fixed, "\n".join(fixed)


def test_known_differences_name_real_steps():
    for scenario, known in KNOWN.items():
        steps = {(s.cmd, s.occurrence) for s in read_transcript(scenario)}
        missing = [k for k in known if k not in steps]
        assert not missing, f"{scenario}: KNOWN names steps that are not in the transcript: {missing}"


def test_most_of_each_transcript_matches():
    """The KNOWN list stays small next to what matches."""
    for scenario in SCENARIOS:
        results = replay(scenario)
        matched = sum(1 for *_, ok in results if ok)
        assert matched >= 0.85 * len(results), (scenario, matched, len(results))
