"""Diagrams of a World: DOT (every bundled lab goes through Graphviz's dot -Tsvg),
Mermaid, a trace drawn on them, and the self-contained HTML stepper."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from netlab.labs import bundled
from netlab.viz.dot import to_dot, to_svg
from netlab.viz.html import build_page
from netlab.viz.journey import legs
from netlab.viz.mermaid import to_mermaid
from netlab.viz.topology import compact, overlay, topology
from tests.unit.viz_cases import lab_trace, lab_world, vxlan_case

DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(DOT is None, reason="needs Graphviz's dot (apt-get install "
                               "graphviz); CI installs it")
LABS = [p.stem for p in bundled()]


def lab_traces(ref: str):
    """The final World of a bundled lab and the traces its expectations made."""
    from netlab.labs import find_lab, load_lab, run_lab

    result = run_lab(load_lab(find_lab(ref)))
    return result.world, [e.trace for s in result.steps for e in s.expect if e.trace is not None]


def dot_svg(source: str) -> str:
    done = subprocess.run([DOT, "-Tsvg"], input=source, capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    return done.stdout


@needs_dot
@pytest.mark.parametrize("lab", LABS)
def test_dot_accepts_the_diagram_of_every_bundled_lab(lab):
    world, traces = lab_traces(lab)
    topo = topology(world)
    assert "<svg" in dot_svg(to_dot(topo))
    assert traces, f"lab {lab} has no trace or reach expectation"
    for traced in traces:          # and with each of its expectations' traces drawn on it
        assert "<svg" in dot_svg(to_dot(topo, overlay(topo, world, legs(traced))))


@needs_dot
def test_dot_accepts_a_diagram_with_a_trace_and_a_tunnel():
    world, traced = vxlan_case()
    topo = topology(world)
    over = overlay(topo, world, legs(traced))
    svg = to_svg(to_dot(topo, over))
    assert 'id="vxlan_node1_root_vxlan0_node2"' in svg
    # the engine's encap and decap hops (6 and 13, each way) land on the tunnel's edge
    assert compact(over.numbers["vxlan_node1_root_vxlan0_node2"]) == "6,13,r6,r13"


def test_clusters_namespaces_bridges_and_veth_labels():
    world, _ = lab_world("05")
    source = to_dot(topology(world))
    assert "subgraph cluster_host {" in source and "subgraph cluster_node2 {" in source
    host = source[source.index("subgraph cluster_host"):source.index("subgraph cluster_node2")]
    assert "ns_host_red " in host and "br_host_root_v_net_0 " in host
    veth = next(line for line in source.splitlines() if "id=veth_host_root_veth_red_br" in line)
    assert 'headlabel="veth-red\\n192.168.15.1/24"' in veth and 'taillabel="veth-red-br"' in veth
    assert veth.strip().startswith("br_host_root_v_net_0 -- ns_host_red")   # a bridge port
    assert 'lan_lan_br0 [label="LAN lan"' in source          # the LAN is a hub of its own


def test_vxlan_tunnels_are_dashed():
    world, _ = vxlan_case()
    source = to_dot(topology(world))
    tunnel = next(line for line in source.splitlines() if "id=vxlan_" in line)
    assert "style=dashed" in tunnel and "vxlan0\\n10.244.1.0/32" in tunnel
    assert "-.-|\"VXLAN vxlan0" in to_mermaid(topology(world))


def test_a_trace_drawn_on_the_diagram_numbers_its_hops():
    world, traced = lab_trace("05", "red", "192.168.1.3")
    topo = topology(world)
    over = overlay(topo, world, legs(traced))
    # hop 3 crosses red's veth, 4 is the bridge, 12 the delivery on node2 (r: the reply)
    assert compact(over.numbers["veth_host_root_veth_red_br"]) == "3,r11"
    assert compact(over.numbers["br_host_root_v_net_0"]) == "4,r10"
    assert "12" in over.numbers["ns_node2_root"]
    source = to_dot(topo, over)
    edge = next(line for line in source.splitlines() if "id=veth_host_root_veth_red_br" in line)
    assert 'label="#3,r11"' in edge and "penwidth=2.5" in edge
    untouched = next(line for line in source.splitlines() if "id=ns_host_blue" in line)
    assert "penwidth" not in untouched


def test_mermaid_draws_the_same_picture():
    world, traced = lab_trace("05", "red", "192.168.1.3")
    topo = topology(world)
    text = to_mermaid(topo, overlay(topo, world, legs(traced)))
    assert text.startswith("flowchart LR\n")
    assert '  subgraph cluster_host["host"]' in text
    assert 'ns_host_red["red<br/>hops 1-2,r12"]' in text
    assert re.search(r"br_host_root_v_net_0 ---\|\"veth-red-br ↔ veth-red<br/>192.168.15.1/24"
                     r"<br/>hops 3,r11\"\| ns_host_red", text)
    edges = [l for l in text.splitlines() if "---|" in l or "-.-|" in l]
    hit = edges.index(next(e for e in edges if "veth-red-br" in e))
    assert f"  linkStyle {hit} stroke:" in text
    assert "ns_host_blue" not in text.split("class ")[-1]


def test_compact_hop_numbers():
    assert compact(["1", "2", "3", "5", "r1", "r2", "r7"]) == "1-3,5,r1-2,r7"


# --- the HTML page ------------------------------------------------------------------------
def page_data(page: str) -> dict:
    blob = page.split('<script type="application/json" id="trace-data">')[1].split("</script>")[0]
    return json.loads(blob.replace("<\\/", "</"))


def test_the_page_is_self_contained():
    world, traced = lab_trace("06", "node2", "192.168.1.2", "tcp", 8080)
    page = build_page("t", world, [("t", traced)])
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "fetch(" not in page and "XMLHttpRequest" not in page
    assert "<link" not in page
    if DOT is not None:
        assert "<svg" in page and "<?xml" not in page


def test_the_page_carries_each_hop_with_its_rule_packet_and_element():
    world, traced = lab_trace("06", "node2", "192.168.1.2", "tcp", 8080)
    data = page_data(build_page("t", world, [("t", traced)], with_svg=False))
    assert [leg["title"] for leg in data["legs"]][1].startswith("the reply: tcp [SA]")
    steps = data["legs"][0]["steps"]
    assert len(steps) == len(traced.paths[0].hops)
    dnat = next(s for s in steps if s.get("action") == "dnat")
    assert dnat["table"] == "nat" and dnat["chain"] == "DOCKER" and "-j DNAT" in dnat["rule"]
    assert dnat["changed"] == {"dst": "192.168.1.2", "dport": 8080}
    assert dnat["packet"]["dst"] == "172.17.0.2" and dnat["packet"]["dport"] == 80
    assert all(s["element"] for s in steps)
    reply = data["legs"][1]["steps"]
    undnat = next(s for s in reply if s.get("changed"))
    assert undnat["changed"] == {"src": "172.17.0.2", "sport": 80}


def test_a_page_for_several_traces_keeps_their_legs_apart():
    world, t1 = lab_trace("05", "red", "192.168.1.3")
    _, t2 = lab_trace("05", "host", "192.168.1.3")
    data = page_data(build_page("two", world, [("first", t1), ("second", t2)],
                                with_svg=False))
    keys = [leg["key"] for leg in data["legs"]]
    assert keys == ["t1p1", "t1p1r", "t2p1", "t2p1r"]
    assert data["legs"][2]["title"].startswith("second — ")


def test_a_page_without_graphviz_says_so():
    world, traced = lab_trace("02", "red", "192.168.15.2")
    page = build_page("t", world, [("t", traced)], with_svg=False)
    assert "No diagram: it needs Graphviz" in page and "<svg" not in page


@pytest.mark.parametrize("fmt", ["dot", "mermaid"])
def test_lab05_with_its_trace_matches_the_golden_file(fmt):
    import os
    from pathlib import Path

    world, traced = lab_trace("05", "red", "192.168.1.3")
    topo = topology(world)
    over = overlay(topo, world, legs(traced))
    text = to_dot(topo, over) if fmt == "dot" else to_mermaid(topo, over)
    golden = Path(__file__).resolve().parent.parent / "data" / "viz" / f"lab05-masquerade.{fmt}"
    if os.environ.get("NETLAB_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"the diagram changed: diff against {golden}"


def test_a_steps_explanation_becomes_html_and_stays_escaped():
    from netlab.viz.html import inline_markdown

    text = "Give `red` a **route**; *MASQUERADE* <b>is</b> x*y.\n\n    iptables -A X <y>\n"
    assert inline_markdown(text) == (
        "<p>Give <code>red</code> a <strong>route</strong>; <em>MASQUERADE</em> "
        "&lt;b&gt;is&lt;/b&gt; x*y.</p>\n<pre>iptables -A X &lt;y&gt;</pre>")


def test_an_icmp_errors_hops_show_the_header_it_quotes():
    world, traced = lab_trace("03", "red", "192.168.15.2", "udp", 53)
    data = page_data(build_page("t", world, [("t", traced)], with_svg=False))
    reply = data["legs"][1]
    assert reply["title"].startswith("the reply: icmp port-unreachable")
    assert reply["steps"][0]["packet"]["quoted"] == "udp 192.168.15.1:40000 > 192.168.15.2:53"
