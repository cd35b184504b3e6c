"""`netlab cluster up|show|reach` and `netlab trace -f`: JSON shapes of DESIGN.md,
exit codes, one-line errors with file, line, object and field path."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from netlab.cli.main import app

DATA = Path(__file__).parents[1] / "data" / "k8s"
SHOP = str(DATA / "shop")
E2E = str(DATA / "e2e")


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_up_summarises_the_cluster():
    r = invoke("cluster", "up", "-f", SHOP)
    assert r.exit_code == 0, r.output
    assert "cluster shop: 2 nodes, 5 pods, 4 Services" in r.stdout
    assert "ignored (not modelled)" in r.stdout and "ConfigMap settings" in r.stdout


def test_show_json_has_the_design_keys():
    r = invoke("cluster", "show", "-f", SHOP, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert {"name", "ip", "podCIDR"} <= set(data["nodes"][0])
    assert {"namespace", "name", "node", "ip"} <= set(data["pods"][0])
    assert {"namespace", "name", "clusterIP"} <= set(data["services"][0])
    backend = next(s for s in data["endpointSlices"] if s["service"] == "shop/backend")
    assert backend["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]


def test_show_prints_a_nodes_iptables_save_and_a_pods_resolv_conf():
    r = invoke("cluster", "show", "-f", SHOP, "--iptables-save", "node2")
    assert r.exit_code == 0 and r.stdout.count("COMMIT") == 3
    assert '-A KUBE-SERVICES -d 10.96.0.11/32 -p tcp -m comment --comment "shop/backend:http ' \
           'cluster IP"' in r.stdout
    r = invoke("cluster", "show", "-f", SHOP, "--resolv-conf", "deploy/shop/frontend")
    assert r.stdout == ("search shop.svc.cluster.local svc.cluster.local cluster.local\n"
                        "nameserver 10.96.0.10\noptions ndots:5\n")


def test_reach_json_is_the_design_matrix():
    r = invoke("cluster", "reach", "-f", E2E, "--proto", "tcp", "--port", "80", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["proto"] == "tcp" and data["port"] == 80
    assert sorted(data["matrix"]) == [f"{n}/{p}" for n in "xyz" for p in "abc"]
    assert all(all(row.values()) for row in data["matrix"].values())


def test_reach_explain(tmp_path):
    deny = tmp_path / "deny.yaml"
    deny.write_text("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: "
                    "{name: deny, namespace: y}\nspec: {podSelector: {}}\n")
    r = invoke("cluster", "reach", "-f", E2E, "-f", str(deny), "--explain", "x/a", "y/b")
    assert r.exit_code == 0, r.output
    assert "x/a → y/b (tcp/80): timeout (dropped)" in r.stdout
    assert "y/b: no NetworkPolicy allows this ingress" in r.stdout


def test_trace_takes_cluster_endpoints():
    r = invoke("trace", "-f", SHOP, "--from", "deploy/shop/frontend", "--to",
               "svc/shop/backend:http", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["packet"]["dst"] == "10.96.0.11" and data["packet"]["dport"] == 80
    assert len(data["paths"]) == 2
    assert {p["delivered_to"].split("/")[0] for p in data["paths"]} == {"node2"}
    assert all(p["packet_out"]["dport"] == 8080 for p in data["paths"])


def test_trace_to_a_dns_name_shows_the_query_to_kube_dns_then_the_connection():
    r = invoke("trace", "-f", SHOP, "--from", "deploy/shop/frontend", "--to",
               "backend.shop:80", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["dns"]["queries"] == [
        {"name": "backend.shop.shop.svc.cluster.local.", "answer": None},
        {"name": "backend.shop.svc.cluster.local.", "answer": ["10.96.0.11"]}]
    dns = data["dns"]["trace"]
    assert dns["packet"]["dst"] == "10.96.0.10" and dns["packet"]["dport"] == 53
    assert all(p["delivered_to"].split("/")[1].startswith("kube-system.coredns-")
               for p in dns["paths"])
    assert data["packet"]["dst"] == "10.96.0.11"


def test_trace_from_a_node_to_a_node_port():
    r = invoke("trace", "-f", SHOP, "--from", "node/node2", "--to", "node/node1:30080",
               "--proto", "tcp", "--json")
    assert r.exit_code == 0, r.output
    paths = json.loads(r.stdout)["paths"]
    assert [p["delivered_to"].split("/")[1].split("-")[0] for p in paths] == ["shop.frontend"]


def test_bad_manifest_exits_2_with_file_line_object_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n"
                   "  containers:\n    - name: c\n      ports:\n        - containerPort: http\n")
    r = invoke("cluster", "up", "-f", SHOP, "-f", str(bad))
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert lines == [f"netlab: {bad}:8: Pod shop/p: spec.containers[0].ports[0].containerPort: "
                     "expected an integer, not 'http'"]


def test_unknown_pod_and_missing_files_exit_2():
    r = invoke("trace", "-f", SHOP, "--from", "pod/shop/nope", "--to", "10.96.0.11:80")
    assert r.exit_code == 2 and r.stderr.startswith("netlab: no pod shop/nope")
    r = invoke("cluster", "up", "-f", "/nonexistent/x.yaml")
    assert r.exit_code == 2 and "no such file or directory" in r.stderr
    r = invoke("cluster", "up")
    assert r.exit_code == 2
    r = invoke("cluster", "up", "-f", SHOP, "--backend", "kernel")
    assert r.exit_code == 2 and "'kernel' is not model or real" in r.stderr
    # (--backend real, down and verify: tests/privileged/test_real_cluster_labs.py)
