"""Multi-VM mode's pure parts: which LAN an interface carries, the per-node journal name,
the CLI's one-line refusals; and the two-node lab of the privileged test, in the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlab.cli.main import app
from netlab.cli.real_node import lan_mapping, node_journal_name
from netlab.errors import LabError
from netlab.labs import load_lab

DATA = Path(__file__).resolve().parents[1] / "data"
TWO_NODE = DATA / "vm-two-node.yaml"


@pytest.fixture
def two_lans(tmp_path):
    path = tmp_path / "two-lans.yaml"
    path.write_text(
        "netlab: 1\nname: two-lans\ntitle: a router\n"
        "lans:\n"
        "  - {name: left, nodes: [a, router], subnet: 10.0.1.0/24}\n"
        "  - {name: right, nodes: [router, b], subnet: 10.0.2.0/24}\n"
        "steps: []\n")
    return load_lab(path)


def test_one_lan_takes_a_bare_interface():
    assert lan_mapping(load_lab(TWO_NODE), "node1", ["eth1"]) == {"lan": "eth1"}


def test_a_node_on_two_lans_names_each(two_lans):
    assert lan_mapping(two_lans, "router", ["left=eth1", "right=eth2"]) == \
        {"left": "eth1", "right": "eth2"}
    assert lan_mapping(two_lans, "a", ["eth1"]) == {"left": "eth1"}


@pytest.mark.parametrize("node, specs, words", [
    ("router", ["eth1"], "router is on 2 LANs (left, right); say which"),
    ("router", ["left=eth1"], "router is on the LAN right: give --lan-iface IFACE"),
    ("a", ["right=eth1"], "a is not on a LAN called 'right' (its LANs: left)"),
    ("a", ["left=eth1", "left=eth2"], "expected IFACE or LAN=IFACE, one per LAN"),
    ("a", ["left="], "expected IFACE or LAN=IFACE"),
    ("c", ["eth1"], "has no node 'c' (its nodes: a, router, b)"),
], ids=["bare-on-two", "one-missing", "wrong-lan", "twice", "empty", "no-such-node"])
def test_a_wrong_lan_iface_is_named(two_lans, node, specs, words):
    with pytest.raises(LabError, match=words.replace("(", r"\(").replace(")", r"\)")):
        lan_mapping(two_lans, node, specs)


def test_a_node_journal_is_a_safe_journal_name(tmp_path):
    from netlab.backends.journal import Journal

    name = node_journal_name("vm-two-node", "node1")
    assert name == "vm-two-node@node1"
    assert Journal.path_for(name, str(tmp_path)) == str(tmp_path / "vm-two-node@node1.json")
    with pytest.raises(LabError):
        Journal.path_for("@node1", str(tmp_path))


def _as_root(monkeypatch, real) -> None:
    for name in ("_need_root", "need_root"):        # the check for root and `ip`, skipped
        if hasattr(real, name):
            monkeypatch.setattr(real, name, lambda: None)


def test_lan_iface_without_node_is_one_line_exit_2(monkeypatch):
    import netlab.cli.real as real

    _as_root(monkeypatch, real)
    result = CliRunner().invoke(app, ["real", "up", str(TWO_NODE), "--lan-iface", "eth1"])
    assert result.exit_code == 2
    assert "--lan-iface maps a LAN for one node: give --node NAME too" in result.output
    assert "Traceback" not in result.output


def test_an_unknown_node_is_one_line_exit_2(monkeypatch):
    import netlab.cli.real as real

    _as_root(monkeypatch, real)
    result = CliRunner().invoke(app, ["real", "up", str(TWO_NODE), "--node", "node9",
                                      "--lan-iface", "eth1"])
    assert result.exit_code == 2
    assert "lab vm-two-node has no node 'node9' (its nodes: node1, node2)" in result.output


def test_the_two_node_lab_holds_in_the_model():
    """What the privileged test checks on the kernel, predicted: pod-a reaches the
    ClusterIP, DNATed on node1 to pod-b on node2."""
    from netlab.labs.runner import run_lab

    result = run_lab(load_lab(TWO_NODE))
    assert result.stopped is None, result.stop_message()
    failed = [e for s in result.steps for e in s.expect if not e.ok]
    assert not failed, failed
    assert sum(len(s.expect) for s in result.steps) == 4


# --- a cluster lab, one node at a time ------------------------------------------------------

CLUSTER = DATA / "vm-two-node-cluster.yaml"


def test_a_cluster_node_is_on_the_cluster_lan():
    assert lan_mapping(load_lab(CLUSTER), "node2", ["eth1"]) == {"lan": "eth1"}
    assert lan_mapping(load_lab(CLUSTER), "node1", ["lan=eth1"]) == {"lan": "eth1"}
    with pytest.raises(LabError, match="not on a LAN called 'lan2'"):
        lan_mapping(load_lab(CLUSTER), "node1", ["lan2=eth1"])


@pytest.mark.parametrize("network", ["host-gw", "vxlan"])
def test_every_cluster_op_but_the_switch_belongs_to_one_node(tmp_path, network):
    from netlab import ops as O
    from netlab.cli.real_node import op_node
    from netlab.labs.build import topology_ops

    path = tmp_path / "c.yaml"
    path.write_text(CLUSTER.read_text().replace("network: host-gw", f"network: {network}"))
    ops = topology_ops(load_lab(path))
    owners = {id(op): op_node(op) for op in ops}
    assert {type(op) for op in ops if owners[id(op)] is None} == {O.AddSwitch}
    by_node = {n: [op for op in ops if owners[id(op)] == n] for n in ("node1", "node2")}
    assert len(by_node["node1"]) + len(by_node["node2"]) == len(ops) - 1
    mine = {(type(op).__name__, getattr(op, "netns", "")) for op in by_node["node2"]}
    assert ("AddNetns", "") in mine and ("IptablesRestore", "node2/root") in mine
    if network == "vxlan":
        fdb = [op for op in by_node["node1"] if isinstance(op, O.AddFdb)]
        assert [op.dst for op in fdb] == ["192.168.1.12"], "node1's FDB points at node2"
    else:
        routes = [op for op in by_node["node1"] if isinstance(op, O.AddRoutes)]
        assert [op.routes for op in routes] == [(("10.244.2.0/24", "192.168.1.12"),)]


def test_an_op_joining_two_nodes_is_refused():
    from netlab import ops as O
    from netlab.cli.real_node import op_node

    with pytest.raises(LabError, match="joins two nodes"):
        op_node(O.AddLink("node1/root", "v", "veth", peer="p", peer_netns="node2/root"))
