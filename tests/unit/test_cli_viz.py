"""`netlab trace` text/--html/--pcap/--no-color, `netlab draw`, `lab run --step/--html`:
what they write, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.unit.test_cli import invoke, one_line_error

TRACE = ("trace", "05", "--from", "red", "--to", "192.168.1.3")


def test_trace_prints_the_tree_in_plain_text_when_not_a_terminal():
    result = invoke(*TRACE)
    assert result.exit_code == 0
    out = result.stdout
    assert "\x1b[" not in out
    assert "├── host\n│   ├── netns red\n" in out
    assert "verdict: delivered to node2" in out and out.rstrip().endswith("outcome: success")
    assert invoke(*TRACE, "--no-color").stdout == out


def test_trace_json_is_unchanged_by_the_other_outputs(tmp_path):
    plain = json.loads(invoke(*TRACE, "--json").stdout)
    result = invoke(*TRACE, "--json", "--html", str(tmp_path / "t.html"),
                    "--pcap", str(tmp_path / "t.pcap"))
    assert json.loads(result.stdout) == plain
    assert (tmp_path / "t.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "t.pcap").read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"    # pcapng


def test_trace_json_keeps_its_keys_and_adds_the_viz_facts():
    data = json.loads(invoke(*TRACE, "--json").stdout)
    path = data["paths"][0]
    assert set(data) == {"packet", "from", "paths"}
    masq = next(h for h in path["hops"] if h.get("action") == "masquerade")
    assert masq["nat"] == "SNAT" and masq["packet"]["src"] == "192.168.1.2"
    arp = next(h for h in path["hops"] if h["event"] == "arp")
    assert {"ip", "mac", "src_mac"} <= set(arp)
    assert path["reply"]["hops"][0]["packet"]["icmp_type"] == 0      # the answer as sent


def test_trace_pcap_to_a_folder_that_does_not_exist():
    one_line_error(invoke(*TRACE, "--pcap", "/nonexistent/dir/t.pcap"),
                   "netlab: /nonexistent/dir/t.pcap: cannot write")


def test_draw_prints_dot_by_default_and_mermaid_on_request():
    dot = invoke("draw", "03")
    assert dot.exit_code == 0 and dot.stdout.startswith("graph bridge {")
    mermaid = invoke("draw", "03", "--format", "mermaid")
    assert mermaid.exit_code == 0 and mermaid.stdout.startswith("flowchart LR")


def test_draw_with_a_trace_and_the_format_from_the_suffix(tmp_path):
    out = tmp_path / "lab.mmd"
    result = invoke("draw", "05", "--from", "red", "--to", "192.168.1.3", "-o", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    assert "hops 3,r11" in out.read_text()
    page = tmp_path / "lab.html"
    assert invoke("draw", "05", "--from", "red", "--to", "192.168.1.3",
                  "-o", str(page)).exit_code == 0
    assert 'id="trace-data"' in page.read_text()


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_draw_svg(tmp_path):
    out = tmp_path / "lab.svg"
    assert invoke("draw", "04", "-o", str(out)).exit_code == 0
    assert "<svg" in out.read_text()


@pytest.mark.parametrize("args, message", [
    (("draw", "03", "--format", "png"), "netlab: --format: 'png' is not one of"),
    (("draw", "03", "--from", "red"), "netlab: a trace needs both --from NS and --to"),
    (("draw",), "netlab: give a LAB or --world FILE"),
    (("draw", "03", "--from", "nobody", "--to", "1.2.3.4"), "netlab: no namespace called"),
    (("draw", "03", "--from", "red", "--to", "1.2.3"), "netlab: --to: '1.2.3' is not"),
])
def test_draw_errors_are_one_line(args, message):
    one_line_error(invoke(*args), message)


def test_lab_run_step_shows_each_trace_expectation_as_a_tree(monkeypatch):
    result = invoke("lab", "run", "05", "--step", "--no-color")
    assert result.exit_code == 0
    out = result.stdout
    # step 2 expects a trace red -> node2 whose reply has no route back
    assert "│   ├── netns red" in out and "reply verdict: no-route" in out


def test_lab_run_html_writes_a_page_per_step(tmp_path):
    folder = tmp_path / "pages"
    result = invoke("lab", "run", "05", "--html", str(folder))
    assert result.exit_code == 0
    pages = sorted(p.name for p in folder.iterdir())
    assert pages == ["index.html"] + [f"step-{n:02d}.html" for n in range(1, 9)]
    step2 = (folder / "step-02.html").read_text()
    data = json.loads(step2.split('id="trace-data">')[1].split("</script>")[0]
                      .replace("<\\/", "</"))
    titles = [leg["title"] for leg in data["legs"]]
    assert any("reply" in t for t in titles) and len(data["legs"]) >= 2
    assert 'href="step-08.html"' in (folder / "index.html").read_text()


def test_draw_a_saved_trace(tmp_path):
    saved = tmp_path / "t.json"
    saved.write_text(invoke(*TRACE, "--json").stdout)
    from_file = invoke("draw", "05", "--trace", str(saved), "--format", "mermaid")
    direct = invoke("draw", "05", "--from", "red", "--to", "192.168.1.3", "--format", "mermaid")
    assert from_file.exit_code == 0 and from_file.stdout == direct.stdout


@pytest.mark.parametrize("content, message", [
    ("{not json", ":1: not JSON"),
    ('{"packet": {"proto": "icmp", "dst": "1.2.3.4"}}', ": not a trace: missing 'from'"),
])
def test_draw_a_bad_trace_file(tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    one_line_error(invoke("draw", "05", "--trace", str(bad)), f"netlab: {bad}{message}")


def test_without_graphviz_svg_is_a_one_line_error_and_the_page_has_no_diagram(tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))          # no dot on this PATH
    one_line_error(invoke("draw", "03", "--format", "svg"),
                   "netlab: --format svg: SVG needs Graphviz's dot program")
    page = tmp_path / "t.html"
    assert invoke(*TRACE, "--html", str(page)).exit_code == 0
    assert "No diagram: it needs Graphviz" in page.read_text()


# --- netlab draw -f: a cluster --------------------------------------------------------------
SHOP = __import__("pathlib").Path(__file__).parents[1] / "data" / "k8s" / "shop"


@pytest.fixture()
def vxlan_cluster(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text((SHOP / "cluster.yaml").read_text().replace("network: host-gw",
                                                               "network: vxlan"))
    return ["-f", str(path), "-f", str(SHOP / "shop.yaml")]


def test_draw_a_cluster_with_its_vxlan_tunnel_dashed(vxlan_cluster):
    result = invoke("draw", *vxlan_cluster)
    assert result.exit_code == 0, result.output
    source = result.stdout
    assert "subgraph cluster_node1 {" in source and "subgraph cluster_node2 {" in source
    assert "ns_node1_shop_frontend" in source.replace("-", "_")      # the pods' namespaces
    tunnel = [line for line in source.splitlines() if "id=vxlan_" in line]
    assert len(tunnel) == 1 and "style=dashed" in tunnel[0]
    assert "flannel.1\\n10.244.1.0/32" in tunnel[0] and "flannel.1\\n10.244.2.0/32" in tunnel[0]


def test_draw_a_cluster_host_gw_has_no_tunnel():
    result = invoke("draw", "-f", str(SHOP / "cluster.yaml"), "-f", str(SHOP / "shop.yaml"))
    assert result.exit_code == 0 and "id=vxlan_" not in result.stdout


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_dot_accepts_a_cluster_drawing_with_a_trace_through_the_tunnel(vxlan_cluster, tmp_path):
    import subprocess

    shown = json.loads(invoke("cluster", "show", *vxlan_cluster, "--json").stdout)
    frontend = next(p["name"] for p in shown["pods"] if p["name"].startswith("frontend"))
    out = tmp_path / "cluster.dot"
    result = invoke("draw", *vxlan_cluster, "--from", f"pod/shop/{frontend}",
                    "--to", "svc/shop/backend:80", "-o", str(out))
    assert result.exit_code == 0, result.output
    source = out.read_text()
    tunnel = next(line for line in source.splitlines() if "id=vxlan_" in line)
    assert "VXLAN tunnel #" in tunnel and "style=dashed" in tunnel      # the trace crossed it
    done = subprocess.run(["dot", "-Tsvg", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "<svg" in done.stdout and 'id="vxlan_node1_root_flannel_1_node2"' in done.stdout


@pytest.mark.parametrize("args, message", [
    (("draw", "03", "-f", "x.yaml"), "netlab: -f (a cluster) replaces LAB"),
    (("draw", "-f", "nope.yaml"), "netlab: nope.yaml: no such file or directory"),
])
def test_draw_cluster_errors_are_one_line(args, message):
    one_line_error(invoke(*args), message)
