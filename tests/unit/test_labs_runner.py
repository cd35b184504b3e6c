"""The step runner: commands through the Shell, refused commands, expectations, JSON."""

from __future__ import annotations

import textwrap

import pytest

from netlab.labs import parse_lab, run_lab
from netlab.labs.build import build_model
from tests.unit.lab_text import HEAD, VETH_STEP

VETH = VETH_STEP


def lab(body: str, head: str = HEAD):
    return parse_lab(head + textwrap.dedent(body), "x.yaml")


def run(body: str, **kwargs):
    return run_lab(lab(body), **kwargs)


# --- the machines ---------------------------------------------------------------------------
def test_lan_builds_a_switch_namespace_and_addressed_eth0():
    backend = build_model(lab("lan: {nodes: [n1, n2], subnet: 192.168.1.0/24}\n"))
    world = backend.world
    assert world.nodes == ["n1", "n2"]
    switch = world.namespaces["lan0/root"]
    assert switch.kind == "switch"
    assert switch.sysctls["net.bridge.bridge-nf-call-iptables"] == "0"
    assert switch.links["br0"].up and switch.links["n1"].master == "br0"
    eth0 = world.namespaces["n2/root"].links["eth0"]
    assert eth0.up and [a.cidr for a in eth0.addresses] == ["192.168.1.2/24"]
    assert world.resolve("lan0") is None          # a switch is not a namespace one names


def test_nodes_on_a_lan_reach_each_other():
    result = run("""\
        lan: {nodes: [n1, n2], subnet: 192.168.1.0/24}
        steps:
          - title: look
            expect:
              - reach: {from: n1, to: 192.168.1.2}
              - reach: {from: n2, to: 192.168.1.1}
              - reach: {from: n1, to: 192.168.2.1, want: false}
        """)
    assert [e.ok for e in result.steps[0].expect] == [True, True, True], result.to_json()
    assert result.ok


# --- commands -------------------------------------------------------------------------------
def test_commands_are_recorded_with_their_output():
    result = run("steps:\n" + VETH + "  - title: look\n    run: ip -n red route\n")
    assert result.ok and result.stopped is None
    look = result.steps[1].commands[0]
    assert look.ok and look.error is None and look.line == 17
    assert "192.168.15.0/24 dev veth-red" in look.output


def test_a_refused_command_stops_the_run_at_its_line():
    result = run("""\
        steps:
          - title: one
            run: |
              ip netns add red
              ip netns add red
              ip netns add blue
          - title: two
            run: ip netns add green
        """)
    assert not result.ok
    step, cmd = result.stopped
    assert (step.step.number, cmd.line, cmd.cmd, cmd.ok) == (1, 8, "ip netns add red", False)
    assert "File exists" in cmd.error
    assert len(result.steps) == 1 and len(result.steps[0].commands) == 2
    assert result.stop_message().startswith("x.yaml:8: ip netns add red: ")
    assert "host/blue" not in result.world.namespaces


def test_a_failed_probe_is_an_observation_not_a_stop():
    result = run("""\
        steps:
          - title: ping nobody, then go on
            run: |
              ping -c 1 10.9.9.9
              ip link add v-net-0 type bridge
        """)
    assert result.stopped is None
    (step,) = result.steps
    ping, add = step.commands
    assert not ping.ok and ping.status == 2 and "Network is unreachable" in ping.output + ping.error
    assert add.ok


def test_on_error_continue_goes_on():
    result = run("""\
        steps:
          - title: one
            on_error: continue
            run: |
              ip netns add red
              ip netns add red
              ip netns add blue
            expect:
              - output: {run: ip netns, contains: blue}
        """)
    assert result.ok and result.stopped is None
    assert [c.ok for c in result.steps[0].commands] == [True, False, True]


def test_keep_going_runs_the_whole_script():
    result = run("steps:\n  - title: one\n    run: |\n      ip netns add red\n"
                 "      ip link add x type nonsense\n      ip netns add blue\n",
                 keep_going=True, check_expect=False)
    assert "host/blue" in result.world.namespaces
    assert result.stopped is None


def test_until_stops_after_step_n():
    result = run("steps:\n" + VETH + "  - title: two\n    run: ip netns add green\n", until=1)
    assert len(result.steps) == 1
    assert "host/green" not in result.world.namespaces


# --- expectations ---------------------------------------------------------------------------
def test_reach_passes_and_fails_on_the_trace_outcome():
    result = run("steps:\n" + VETH + """\
    expect:
      - reach: {from: red, to: 192.168.15.2}
      - reach: {from: red, to: 192.168.15.2, want: false}
      - reach: {from: red, to: 192.168.15.1, want: false}
      - reach: {from: red, to: 10.1.1.1}
""")
    ok = [e.ok for e in result.steps[0].expect]
    assert ok == [True, False, True, False]
    assert not result.ok and len(result.failed) == 2
    detail = result.steps[0].expect[3].detail
    assert detail.startswith("red → 10.1.1.1 (icmp): not reached (unreachable) — expected reached")


def test_reach_from_an_unknown_namespace_fails_with_the_known_ones():
    result = run("steps:\n" + VETH + "    expect:\n      - reach: {from: green, to: 192.168.15.2}\n")
    exp = result.steps[0].expect[0]
    assert not exp.ok and "no namespace called 'green'" in exp.detail and "red" in exp.detail


def test_trace_expectation_compares_verdict_outcome_and_reply():
    result = run("steps:\n" + VETH + """\
    expect:
      - trace: {from: red, to: 192.168.15.2, verdict: delivered, delivered_to: blue, outcome: success}
      - trace: {from: red, to: 192.168.15.2, verdict: no-route}
      - trace: {from: red, to: 192.168.15.2, reply_verdict: delivered}
      - trace: {from: red, to: 192.168.16.2, verdict: no-route, outcome: unreachable}
""")
    exps = result.steps[0].expect
    assert [e.ok for e in exps] == [True, False, True, True], [e.detail for e in exps]
    assert "verdict delivered, expected no-route" in exps[1].detail


def test_trace_expectation_checks_the_packet_as_it_leaves():
    result = run("steps:\n" + VETH + """\
    expect:
      - trace: {from: red, to: 192.168.15.2, src_out: 192.168.15.1}
      - trace: {from: red, to: 192.168.15.2, proto: tcp, port: 80, dst_out: 192.168.15.2:80}
      - trace: {from: red, to: 192.168.15.2, src_out: 192.168.15.9}
""")
    exps = result.steps[0].expect
    assert [e.ok for e in exps] == [True, True, False], [e.detail for e in exps]
    assert "src_out 192.168.15.1, expected 192.168.15.9" in exps[2].detail


def test_output_expectations():
    result = run("steps:\n" + VETH + """\
    expect:
      - output: {run: "ip -n red route", contains: "192.168.15.0/24 dev veth-red"}
      - output: {run: "ip -n red route", not_contains: "default"}
      - output: {run: "ip netns", equals: "blue\\nred"}
      - output: {run: "ip netns", contains: "green"}
""")
    exps = result.steps[0].expect
    ok = [e.ok for e in exps]
    assert ok[:2] == [True, True] and ok[3] is False
    assert "does not contain 'green'" in exps[3].detail and "it printed:" in exps[3].detail


def test_output_runs_on_a_copy_of_the_state():
    result = run("""\
        steps:
          - title: one
            expect:
              - output: {run: "ip netns add red", equals: ""}
              - output: {run: "ip netns", not_contains: "red"}
        """)
    assert "host/red" not in result.world.namespaces
    assert result.steps[0].expect[1].ok


def test_output_of_a_failing_command_includes_its_error():
    result = run("steps:\n  - title: one\n    expect:\n"
                 "      - output: {run: 'ip -n nope link', contains: 'nope'}\n")
    assert result.steps[0].expect[0].ok, result.steps[0].expect[0].detail


# --- JSON -----------------------------------------------------------------------------------
def test_to_json_has_the_documented_shape():
    result = run("steps:\n" + VETH + "    expect:\n      - reach: {from: red, to: 192.168.15.2}\n")
    data = result.to_json()
    assert data["ok"] is True and data["stopped"] is None
    (step,) = data["steps"]
    assert {"title", "commands", "expect"} <= set(step)
    assert set(step["commands"][0]) >= {"cmd", "ok", "error", "output"}
    assert step["commands"][0] == {"cmd": "ip netns add red", "ok": True, "error": None,
                                   "output": "", "status": 0, "line": 7}
    assert step["expect"] == [{"kind": "reach", "ok": True, "line": 17,
                               "detail": "red → 192.168.15.2 (icmp): reached"}]


def test_to_json_of_a_stopped_run():
    result = run("steps:\n  - title: one\n    run: |\n      ip netns add red\n      ip netns add red\n")
    stopped = result.to_json()["stopped"]
    assert (stopped["step"], stopped["line"], stopped["cmd"]) == (1, 8, "ip netns add red")
    assert stopped["message"].startswith("x.yaml:8: ip netns add red: ")


def test_until_out_of_range_is_bad_input():
    from netlab.errors import LabError

    with pytest.raises(LabError):
        run("steps:\n  - title: one\n", until=5)
