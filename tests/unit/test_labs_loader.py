"""The lab loader: what it reads, and the one-line message for every kind of mistake."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from netlab.errors import LabError
from netlab.labs import loader as L
from netlab.labs.loader import load_lab, parse_lab
from netlab.labs.model import OutputExpect, Reach, TraceExpect

HEAD = "netlab: 1\nname: t\ntitle: T\n"


def lab(body: str, head: str = HEAD):
    return parse_lab(head + textwrap.dedent(body), "x.yaml")


def error(text: str) -> str:
    with pytest.raises(LabError) as info:
        parse_lab(textwrap.dedent(text), "x.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


# --- what it reads ----------------------------------------------------------------------
def test_minimal_lab_has_one_host_and_no_steps():
    got = lab("")
    assert (got.name, got.title, got.nodes, got.lans, got.steps) == ("t", "T", ["host"], [], [])


def test_block_scalar_commands_keep_their_file_lines():
    got = lab("""\
        steps:
          - title: one
            run: |
              ip netns add red
              # a comment

              ip link add veth-red type veth \\
                  peer name veth-blue
              ip link
        """)
    cmds = [(c.line, c.text) for c in got.steps[0].commands]
    assert cmds == [(7, "ip netns add red"),
                    (10, "ip link add veth-red type veth peer name veth-blue"),
                    (12, "ip link")]
    assert got.steps[0].line == 5


def test_list_commands_keep_their_lines():
    got = lab("""\
        steps:
          - title: one
            run:
              - ip netns add red
              - "ip netns add blue"
        """)
    assert [(c.line, c.text) for c in got.steps[0].commands] == [
        (7, "ip netns add red"), (8, "ip netns add blue")]


def test_single_line_run():
    got = lab("steps:\n  - {title: one, run: ip link}\n")
    assert [(c.line, c.text) for c in got.steps[0].commands] == [(5, "ip link")]


def test_expectations_and_their_defaults():
    got = lab("""\
        steps:
          - title: one
            expect:
              - reach: {from: red, to: 192.168.15.2}
              - reach: {from: red, to: 192.168.1.3, proto: tcp, port: 80, want: false}
              - trace: {from: red, to: 10.96.0.10, proto: udp, port: 53, verdict: delivered}
              - output: {run: "ip -n red route", contains: "default via 192.168.15.5"}
        """)
    reach, tcp, trace, output = got.steps[0].expect
    assert reach == Reach("red", "192.168.15.2", "icmp", None, True, 7)
    assert tcp == Reach("red", "192.168.1.3", "tcp", 80, False, 8)
    assert isinstance(trace, TraceExpect) and (trace.proto, trace.port, trace.verdict,
                                               trace.line) == ("udp", 53, "delivered", 9)
    assert isinstance(output, OutputExpect) and output.contains == "default via 192.168.15.5"
    assert output.line == 10


def test_lan_with_subnet_numbers_members_in_order():
    got = lab("lan: {nodes: [node1, node2], subnet: 192.168.1.0/24}\n")
    assert got.nodes == ["node1", "node2"]          # inferred from the LAN
    (lan,) = got.lans
    assert lan.name == "lan0" and lan.subnet == "192.168.1.0/24"
    assert [(m.node, m.dev, m.address) for m in lan.members] == [
        ("node1", "eth0", "192.168.1.1/24"), ("node2", "eth0", "192.168.1.2/24")]


def test_lan_mapping_gives_explicit_addresses():
    got = lab("""\
        nodes: [host, node2]
        lan:
          subnet: 192.168.1.0/24
          nodes: {host: 192.168.1.2/24, node2: 192.168.1.3, node3x: null}
        """.replace(", node3x: null", ""))
    assert [(m.node, m.address) for m in got.lans[0].members] == [
        ("host", "192.168.1.2/24"), ("node2", "192.168.1.3/24")]


def test_lan_without_subnet_gives_no_address():
    got = lab("lan: {nodes: [a, b]}\n")
    assert [m.address for m in got.lans[0].members] == [None, None]


def test_interfaces_are_numbered_per_node_in_lan_order():
    got = lab("""\
        lans:
          - {name: left, nodes: [a, r], subnet: 10.0.1.0/24}
          - {name: right, nodes: {r: 10.0.2.1/24, b: 10.0.2.10/24}}
        """)
    devs = [(lan.name, m.node, m.dev) for lan in got.lans for m in lan.members]
    assert devs == [("left", "a", "eth0"), ("left", "r", "eth0"),
                    ("right", "r", "eth1"), ("right", "b", "eth0")]
    assert got.nodes == ["a", "r", "b"]


def test_step_node_defaults_to_the_first_node():
    got = lab("nodes: [n1, n2]\nsteps:\n  - {title: a}\n  - {title: b, node: n2}\n")
    assert [s.node for s in got.steps] == ["n1", "n2"]
    assert [s.on_error for s in got.steps] == ["stop", "stop"]


def test_load_lab_reads_a_file(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text(HEAD + "steps:\n  - {title: a, run: ip link}\n")
    got = load_lab(path, shown_as="mine.yaml")
    assert got.path == "mine.yaml" and got.steps[0].commands[0].line == 5


# --- every kind of mistake: one line, file:line, what was expected ----------------------
ERRORS = [
    ("yaml-syntax", HEAD + "steps:\n  - title: [one\n",
     "x.yaml:6: YAML syntax error: expected ',' or ']', but got '<stream end>'"),
    ("yaml-indent", HEAD + "steps:\n  - title: one\n   run: ip link\n",
     "x.yaml:6: YAML syntax error:"),
    ("two-documents", HEAD + "---\nnetlab: 1\n",
     "x.yaml:4: YAML syntax error: one YAML document expected"),
    ("duplicate-key", HEAD + "title: again\n",
     "x.yaml:4: duplicate key 'title' (first at line 3)"),
    ("empty", "", "x.yaml:1: the lab file is empty"),
    ("not-a-mapping", "- a\n- b\n", "x.yaml:1: a lab file must be a mapping"),
    ("unknown-top-key", HEAD + "stpes: []\n",
     "x.yaml:4: unknown key 'stpes' in the lab (hint: did you mean 'steps'?)"),
    ("unknown-step-key", HEAD + "steps:\n  - title: a\n    rnu: ip link\n",
     "x.yaml:6: unknown key 'rnu' in step 1 (hint: did you mean 'run'?)"),
    ("unknown-lan-key", HEAD + "lan: {nodes: [a], subnett: 10.0.0.0/24}\n",
     "x.yaml:4: unknown key 'subnett' in a LAN (hint: did you mean 'subnet'?)"),
    ("missing-version", "name: t\ntitle: T\n",
     "x.yaml:1: the lab needs 'netlab: 1'"),
    ("version", "netlab: 2\nname: t\ntitle: T\n",
     "x.yaml:1: lab format version 2 is not supported (this netlab reads netlab: 1)"),
    ("version-type", "netlab: one\nname: t\ntitle: T\n",
     "x.yaml:1: 'netlab' must be the format version 1, not a string ('one')"),
    ("missing-title", "netlab: 1\nname: t\n", "x.yaml:1: the lab needs 'title'"),
    ("nodes-type", HEAD + "nodes: host\n",
     "x.yaml:4: 'nodes' must be a list of node names, not a string ('host') (hint: nodes: [host])"),
    ("node-name-type", HEAD + "nodes: [host, no]\n",
     "x.yaml:4: a node must be a name, not a boolean (false) (hint: quote it)"),
    ("node-name-invalid", HEAD + "nodes: [host, 'node/1']\n",
     "x.yaml:4: a node 'node/1' is not a valid name"),
    ("node-twice", HEAD + "nodes:\n  - a\n  - a\n", "x.yaml:6: node 'a' is listed twice"),
    ("bad-cidr", HEAD + "lan: {nodes: [a], subnet: 192.168.1.0/33}\n",
     "x.yaml:4: 'subnet' is not an IPv4 network: '192.168.1.0/33'"),
    ("host-bits", HEAD + "lan: {nodes: [a], subnet: 192.168.1.5/24}\n",
     "x.yaml:4: 'subnet' 192.168.1.5/24 has host bits set (hint: did you mean 192.168.1.0/24?)"),
    ("subnet-without-prefix", HEAD + "lan: {nodes: [a], subnet: 192.168.1.0}\n",
     "x.yaml:4: 'subnet' must be an IPv4 network like 192.168.1.0/24"),
    ("address-outside-subnet",
     HEAD + "lan:\n  subnet: 10.0.0.0/24\n  nodes: {a: 10.0.1.1/24}\n",
     "x.yaml:6: the address of 'a' (10.0.1.1/24) is not in the LAN's subnet 10.0.0.0/24"),
    ("bad-address", HEAD + "lan:\n  nodes:\n    a: 10.0.0.300/24\n",
     "x.yaml:6: the address of 'a' is not an IPv4 address/prefix: '10.0.0.300/24'"),
    ("address-without-prefix", HEAD + "lan:\n  nodes:\n    a: 10.0.0.3\n",
     "x.yaml:6: the address of 'a' needs a prefix length: '10.0.0.3'"),
    ("network-address", HEAD + "lan:\n  nodes:\n    a: 10.0.0.0/24\n",
     "x.yaml:6: 10.0.0.0 is the network address of 10.0.0.0/24, not a host address"),
    ("same-address", HEAD + "lan:\n  nodes:\n    a: 10.0.0.1/24\n    b: 10.0.0.1/24\n",
     "x.yaml:7: 10.0.0.1 is given to both 'a' and 'b'"),
    ("lan-and-lans", HEAD + "lan: {nodes: [a]}\nlans: []\n",
     "x.yaml:5: give either 'lan' (one switch) or 'lans' (a list), not both"),
    ("unknown-lan-node", HEAD + "nodes: [host, node1]\nlan: {nodes: [host, nod1]}\n",
     "x.yaml:5: unknown node 'nod1' (nodes: host, node1) (hint: did you mean 'node1'?)"),
    ("lan-named-like-node", HEAD + "nodes: [a]\nlan: {name: a, nodes: [a]}\n",
     "x.yaml:5: LAN 'a' has the name of a node"),
    ("unknown-step-node", HEAD + "nodes: [host, node2]\nsteps:\n  - {title: a, node: node3}\n",
     "x.yaml:6: unknown node 'node3' (nodes: host, node2) (hint: did you mean 'node2'?)"),
    ("steps-type", HEAD + "steps: {title: a}\n",
     "x.yaml:4: 'steps' must be a list of steps, not a mapping"),
    ("step-needs-title", HEAD + "steps:\n  - run: ip link\n", "x.yaml:5: step 1 needs 'title'"),
    ("title-type", HEAD + "steps:\n  - title: 42\n",
     "x.yaml:5: 'title' in step 1 must be a string, not a number (42)"),
    ("run-type", HEAD + "steps:\n  - title: a\n    run: {ip: link}\n",
     "x.yaml:6: 'run' in step 1 must be commands"),
    ("run-folded", HEAD + "steps:\n  - title: a\n    run: >\n      ip link\n",
     "x.yaml:6: 'run' is a folded block ('>')"),
    ("on-error", HEAD + "steps:\n  - {title: a, on_error: contine}\n",
     "x.yaml:5: 'on_error' in step 1 must be one of stop, continue, not a string ('contine') "
     "(hint: did you mean 'continue'?)"),
    ("expect-type", HEAD + "steps:\n  - title: a\n    expect: {reach: {}}\n",
     "x.yaml:6: 'expect' in step 1 must be a list"),
    ("unknown-expectation", HEAD + "steps:\n  - title: a\n    expect:\n      - reachh: {}\n",
     "x.yaml:7: unknown expectation 'reachh' (hint: did you mean 'reach'?)"),
    ("two-kinds-in-one", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - {reach: {from: a, to: 1.1.1.1}, output: {run: x, contains: y}}\n",
     "x.yaml:7: an expectation is one of reach, trace, output; found reach, output"),
    ("reach-unknown-key", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - reach: {form: red, to: 10.0.0.1}\n",
     "x.yaml:7: unknown key 'form' in 'reach' (hint: did you mean 'from'?)"),
    ("reach-missing-to", HEAD + "steps:\n  - title: a\n    expect:\n      - reach: {from: red}\n",
     "x.yaml:7: 'reach' needs 'to'"),
    ("reach-bad-ip", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - reach: {from: red, to: 10.0.0.1:80}\n",
     "x.yaml:7: 'to' in 'reach' must be an IPv4 address, not '10.0.0.1:80' "
     "(hint: give the port as 'port: N')"),
    ("reach-tcp-no-port", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - reach: {from: red, to: 10.0.0.1, proto: tcp}\n",
     "x.yaml:7: 'reach' with proto tcp needs a 'port'"),
    ("reach-icmp-port", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - reach: {from: red, to: 10.0.0.1, port: 80}\n",
     "x.yaml:7: 'reach' has a port but proto icmp (hint: add 'proto: tcp' or 'proto: udp')"),
    ("reach-port-range", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - reach: {from: red, to: 10.0.0.1, proto: udp, port: 70000}\n",
     "x.yaml:7: 'port' in 'reach' must be between 1 and 65535, not 70000"),
    ("reach-proto", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - reach: {from: red, to: 10.0.0.1, proto: tpc, port: 80}\n",
     "x.yaml:7: 'proto' in 'reach' must be one of icmp, tcp, udp, not a string ('tpc') "
     "(hint: did you mean 'tcp'?)"),
    ("reach-want", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - reach: {from: red, to: 10.0.0.1, want: maybe}\n",
     "x.yaml:7: 'want' in 'reach' must be true or false, not a string ('maybe')"),
    ("reach-unknown-node", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - reach: {from: hots/red, to: 10.0.0.1}\n",
     "x.yaml:7: unknown node 'hots' (nodes: host) (hint: did you mean 'host'?)"),
    ("trace-verdict", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - trace: {from: red, to: 10.0.0.1, verdict: delivred}\n",
     "x.yaml:7: 'verdict' in 'trace' must be one of delivered,"),
    ("trace-nothing-to-check", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - trace: {from: red, to: 10.0.0.1}\n",
     "x.yaml:7: 'trace' needs something to check"),
    ("output-nothing-to-check", HEAD + "steps:\n  - title: a\n    expect:\n"
     "      - output: {run: ip link}\n",
     "x.yaml:7: 'output' needs contains, equals or not_contains"),
    ("cluster-file", "netlab: 1\nkind: Cluster\nname: demo\n",
     "x.yaml:2: unknown key 'kind' in the lab (hint: this looks like a cluster file"),
]


@pytest.mark.parametrize("text,expected", [(t, e) for _, t, e in ERRORS],
                         ids=[name for name, _, _ in ERRORS])
def test_errors_name_file_and_line(text: str, expected: str):
    assert error(text).startswith(expected)


def test_error_carries_path_and_line_attributes():
    with pytest.raises(LabError) as info:
        parse_lab(HEAD + "stpes: []\n", "labs/x.yaml")
    assert (info.value.path, info.value.line) == ("labs/x.yaml", 4)
    assert info.value.hint == "did you mean 'steps'?"


def test_missing_file_is_a_lab_error(tmp_path: Path):
    with pytest.raises(LabError) as info:
        load_lab(tmp_path / "nope.yaml", shown_as="nope.yaml")
    assert str(info.value) == "nope.yaml: no such lab file"


def test_too_many_nodes_for_the_subnet():
    message = error(HEAD + "lan: {nodes: [a, b, c], subnet: 10.0.0.0/31}\n".replace(
        "/31", "/30"))
    assert message == "x.yaml:4: 3 nodes do not fit in 10.0.0.0/30"


# --- the JSON Schema says the same as the loader ---------------------------------------------
SCHEMA = json.loads((Path(L.__file__).parent / "schema.json").read_text())


def test_schema_lists_the_keys_the_loader_reads():
    defs = SCHEMA["$defs"]
    exp = defs["expectation"]["properties"]
    assert tuple(SCHEMA["properties"]) == L.TOP_KEYS
    assert set(defs["lan"]["properties"]) == set(L.LAN_KEYS)
    assert set(defs["step"]["properties"]) == set(L.STEP_KEYS)
    assert tuple(exp) == L.EXPECT_KINDS
    assert set(exp["reach"]["properties"]) == set(L.REACH_KEYS)
    assert set(exp["trace"]["properties"]) == set(L.TRACE_KEYS)
    assert set(exp["output"]["properties"]) == set(L.OUTPUT_KEYS)


def test_bundled_labs_match_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    yaml = pytest.importorskip("yaml")
    from netlab.labs import bundled

    validator = jsonschema.Draft202012Validator(SCHEMA)
    labs = bundled()
    assert labs, "no bundled labs found"
    for path in labs:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], f"{path.name}: {errors}"


def test_schema_rejects_what_the_loader_rejects():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    good = {"netlab": 1, "name": "t", "title": "T", "steps": [{"title": "a"}]}
    assert validator.is_valid(good)
    for bad in ({**good, "stpes": []}, {**good, "netlab": 2},
                {**good, "lan": {"nodes": ["a"]}, "lans": []},
                {**good, "steps": [{"title": "a", "expect": [{"reach": {"from": "r"}}]}]}):
        assert not validator.is_valid(bad), bad


def test_a_backslash_on_the_last_line_ends_the_command_as_in_sh():
    got = lab("steps:\n  - title: a\n    run: |\n      ip link \\\n")
    assert [(c.line, c.text) for c in got.steps[0].commands] == [(7, "ip link")]
