"""kube-proxy's iptables rules, chain by chain, against the expected dumps
tests/data/k8s/services/node{1,2}.iptables-save: what iptables-save prints on each
node after kube-proxy (pkg/proxy/iptables/proxier.go, v1.33: syncProxyRules and
writeServiceToEndpointRules) has written the rules for the Services of
services.yaml — a ClusterIP with three endpoints and a named targetPort, a NodePort
with externalTrafficPolicy Local (node2 has two local endpoints, node1 one), a
NodePort with ClientIP affinity, and a Service without endpoints. The dumps were
checked line by line against the proxier's code; the chain names are also checked
against names seen on real clusters and against an independent hash here."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from netlab.k8s import kubeproxy
from netlab.k8s.build import build_model
from netlab.k8s.cluster import load_cluster
from netlab.netfilter.restore import iptables_save

DATA = Path(__file__).parents[1] / "data" / "k8s" / "services"


def b32(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


@pytest.fixture(scope="module")
def world():
    return build_model(load_cluster([str(DATA)])).world


def chains(dump: str) -> dict[tuple[str, str], list[str]]:
    """{(table, chain): [its -A lines]} with every declared chain present."""
    out: dict[tuple[str, str], list[str]] = {}
    table = ""
    for line in dump.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            out[(table, line[1:].split()[0])] = []
        elif line.startswith("-A "):
            out[(table, line.split()[1])].append(line)
    return out


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_every_chain_matches_the_expected_dump(world, node):
    expected = chains((DATA / f"{node}.iptables-save").read_text())
    got = chains(iptables_save(world.namespaces[f"{node}/root"]))
    assert sorted(got) == sorted(expected)
    for key in expected:
        assert got[key] == expected[key], f"chain {key[1]} of table {key[0]} on {node}"


@pytest.mark.parametrize("name, proto, chain", [
    # Chain names seen on real clusters (kubeadm's kube-dns and kubernetes Services).
    ("kube-system/kube-dns:dns", "udp", "KUBE-SVC-TCOU7JCQXEZGVUNU"),
    ("kube-system/kube-dns:dns-tcp", "tcp", "KUBE-SVC-ERIFXISQEP7F7OF4"),
    ("kube-system/kube-dns:metrics", "tcp", "KUBE-SVC-JD5MR3NA4I4DYORP"),
    ("default/kubernetes:https", "tcp", "KUBE-SVC-NPX46M4PTMTKRN6Y"),
])
def test_service_chain_names_are_the_ones_real_nodes_show(name, proto, chain):
    assert kubeproxy.svc_chain(name, proto) == chain


def test_chain_names_hash_port_name_protocol_and_endpoint():
    assert kubeproxy.svc_chain("default/web:http", "tcp") == "KUBE-SVC-" + b32("default/web:httptcp")
    assert kubeproxy.ext_chain("default/web:http", "tcp") == "KUBE-EXT-" + b32("default/web:httptcp")
    assert kubeproxy.svl_chain("default/web:http", "tcp") == "KUBE-SVL-" + b32("default/web:httptcp")
    assert kubeproxy.sep_chain("default/web:http", "tcp", "10.244.1.2:8080") == \
        "KUBE-SEP-" + b32("default/web:httptcp10.244.1.2:8080")
    assert all(len(kubeproxy.sep_chain("a" * 300, "tcp", "x")) <= 28 for _ in range(1))


def test_an_unnamed_port_is_named_after_the_service_alone(world):
    dump = iptables_save(world.namespaces["node1/root"])
    svc = kubeproxy.svc_chain("default/web-local", "tcp")
    assert f'--comment "default/web-local cluster IP" -m tcp --dport 80 -j {svc}' in dump


@pytest.mark.parametrize("n, text", [(2, "0.5000000000"), (3, "0.3333333333"), (7, "0.1428571429")])
def test_probabilities_are_written_as_kube_proxy_prints_them(n, text):
    assert kubeproxy.probability(n) == text


def test_the_payload_is_what_kube_proxy_writes_before_iptables_normalises_it():
    c = load_cluster([str(DATA)])
    payload = kubeproxy.sync_payload(kubeproxy.service_ports(c), "node1", "10.244.0.0/16")
    svc = kubeproxy.svc_chain("default/web:http", "tcp")
    assert (f'-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp '
            f"-d 10.96.0.20 --dport 80 -j {svc}") in payload
    assert "--probability 0.3333333333 " in payload
    assert "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000" in payload
    assert "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000" in payload
    # The filter table comes first, then nat; both in one restore.
    assert payload.index("*filter") < payload.index("*nat")


def test_endpoints_are_ordered_by_their_ip_port_strings():
    c = load_cluster([str(DATA)])
    web = next(p for p in kubeproxy.service_ports(c) if p.name == "default/web:http")
    assert [str(ep) for ep in web.endpoints] == ["10.244.1.2:8080", "10.244.2.2:8080",
                                                 "10.244.2.3:8080"]


def test_large_clusters_leave_the_endpoint_comments_out():
    eps = tuple(kubeproxy.EndpointInfo(f"10.244.{i // 200}.{i % 200 + 2}", 80, "n")
                for i in range(1001))
    svc = kubeproxy.ServicePortInfo("default/big:http", "tcp", "10.96.0.50", 80, eps)
    payload = kubeproxy.sync_payload([svc], "n", "10.244.0.0/16")
    sep = kubeproxy.sep_chain("default/big:http", "tcp", str(eps[0]))
    assert f"-A {sep} -s {eps[0].ip} -j KUBE-MARK-MASQ" in payload
    assert '"default/big:http -> ' not in payload
    assert '"default/big:http cluster IP"' in payload


def test_the_legacy_generator_shares_the_chain_names():
    from netlab.netfilter import kubeproxy as legacy

    assert legacy.svc_chain("kube-system/kube-dns:dns", "udp") == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    assert legacy.sep_chain("a/b:c", "tcp", "1.2.3.4:5") == kubeproxy.sep_chain("a/b:c", "tcp",
                                                                               "1.2.3.4:5")


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_both_spellings_load_into_the_same_tables(node):
    """The save spelling (used to build Worlds: the restore's fast path) is exactly what
    iptables-save prints after restoring what kube-proxy writes."""
    from netlab.model.world import Netns

    c = load_cluster([str(DATA)])
    ports = kubeproxy.service_ports(c)
    dumps = []
    for style in ("kube-proxy", "save"):
        ns = Netns(node=node, name="root")
        from netlab.netfilter.restore import apply_restore
        apply_restore(ns, kubeproxy.sync_payload(ports, node, "10.244.0.0/16", style=style),
                      noflush=True)
        dumps.append(iptables_save(ns))
    assert dumps[0] == dumps[1]
    saved = kubeproxy.sync_payload(ports, node, "10.244.0.0/16", style="save")
    rules = [line for line in saved.splitlines() if line.startswith("-A ")]
    assert rules and all(line in dumps[1].splitlines() for line in rules)


def test_a_local_load_balancer_gets_a_health_check_node_port_open_on_every_node(tmp_path):
    (tmp_path / "cluster.yaml").write_text((DATA / "cluster.yaml").read_text())
    (tmp_path / "m.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec:\n  type: LoadBalancer\n"
        "  externalTrafficPolicy: Local\n  selector: {app: x}\n"
        "  ports: [{name: http, port: 80, nodePort: 30080}]\n")
    c = load_cluster([str(tmp_path)])
    lb = c.service("default/lb")
    assert lb.health_check_node_port == 30000
    world = build_model(c).world
    for node in ("node1", "node2"):
        ns = world.namespaces[f"{node}/root"]
        assert ('-A KUBE-NODEPORTS -p tcp -m comment --comment "default/lb:http health check node '
                'port" -m tcp --dport 30000 -j ACCEPT') in iptables_save(ns, "filter")
        assert any(l.port == 30000 and l.proto == "tcp" for l in ns.listeners)


def test_a_port_local_both_ways_still_has_its_cluster_chain_for_pod_traffic():
    """internalTrafficPolicy and externalTrafficPolicy Local on a NodePort: kube-proxy's
    UsesClusterEndpoints holds (the port is externally accessible), so the KUBE-SVC chain
    that "pod traffic for … external destinations" jumps to is written, with every ready
    endpoint, and the payload restores."""
    from netlab.model.world import Netns
    from netlab.netfilter.restore import apply_restore

    eps = (kubeproxy.EndpointInfo("10.244.1.2", 8080, "n1"),
           kubeproxy.EndpointInfo("10.244.2.2", 8080, "n2"))
    svc = kubeproxy.ServicePortInfo("default/web:http", "tcp", "10.96.0.50", 80, eps,
                                    node_port=30080, external_local=True, internal_local=True)
    assert svc.uses_cluster_endpoints and svc.uses_local_endpoints
    for node in ("n1", "n3"):
        payload = kubeproxy.sync_payload([svc], node, "10.244.0.0/16", style="save")
        svc_c = kubeproxy.svc_chain("default/web:http", "tcp")
        assert f":{svc_c} - [0:0]" in payload
        assert f"-s 10.244.0.0/16 -m comment --comment \"pod traffic for default/web:http " \
               f"external destinations\" -j {svc_c}" in payload
        for ep in eps:
            assert f"-j {kubeproxy.sep_chain('default/web:http', 'tcp', str(ep))}" in payload
        ns = Netns(node=node, name="root")
        for p in (kubeproxy.kubelet_payload(), kubeproxy.startup_payload(), payload):
            apply_restore(ns, p, noflush=True)
