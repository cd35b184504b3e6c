"""network: vxlan — flannel's VXLAN backend: pods' packets cross the LAN inside UDP
datagrams between the nodes' flannel.1 devices, through the nodes' own routes and
netfilter hooks, and come out on the other node's flannel.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlab import ops as O
from netlab.backends.model import ModelBackend
from netlab.dataplane.engine import trace
from netlab.errors import CommandError
from netlab.k8s.build import VXLAN_PORT, build_model, vtep_mac
from netlab.k8s.cluster import load_cluster
from netlab.k8s.endpoints import source_netns, target
from netlab.model import World

SHOP = Path(__file__).parents[1] / "data" / "k8s" / "shop"


@pytest.fixture()
def overlay(tmp_path):
    (tmp_path / "cluster.yaml").write_text(
        (SHOP / "cluster.yaml").read_text().replace("network: host-gw", "network: vxlan"))
    cluster = load_cluster([str(tmp_path / "cluster.yaml"), str(SHOP / "shop.yaml")])
    return cluster, build_model(cluster)


def pod_of(cluster, prefix: str):
    return next(p for p in cluster.pods if p.name.startswith(prefix))


def run(cluster, world, src: str, dst: str):
    t = target(cluster, dst)
    return trace(world, source_netns(cluster, src), t.ip, proto=t.proto or "tcp", dport=t.port)


def test_each_node_has_a_vtep_and_routes_other_pod_ranges_through_it(overlay):
    cluster, backend = overlay
    root = backend.world.namespaces["node1/root"]
    vtep = root.links["flannel.1"]
    assert vtep.kind == "vxlan" and vtep.mtu == 1450 and vtep.mac == vtep_mac("node1")
    assert vtep.vxlan == {"vni": 1, "dstport": 8472, "dev": "eth0", "local": "192.168.1.11",
                          "remote": None, "learning": False}
    assert [a.cidr for a in vtep.addresses] == ["10.244.1.0/32"]
    assert vtep.fdb == [{"mac": vtep_mac("node2"), "dst": "192.168.1.12"}]
    route = next(r for r in root.routes if r.dst == "10.244.2.0/24")
    assert (route.dev, route.gateway, route.onlink) == ("flannel.1", "10.244.2.0", True)
    assert any(n.ip == "10.244.2.0" and n.mac == vtep_mac("node2") and n.state == "PERMANENT"
               for n in root.neighbours)


def test_a_pod_to_pod_packet_is_encapsulated_and_decapsulated(overlay):
    cluster, backend = overlay
    fe, be = pod_of(cluster, "frontend-"), pod_of(cluster, "backend-")
    tr = run(cluster, backend.world, f"pod/shop/{fe.name}", f"pod/shop/{be.name}:8080")
    [path] = tr.paths
    assert (path.verdict, path.outcome) == ("delivered", "success")
    assert path.packet_out.src == fe.ip and path.packet_out.dst == be.ip      # inner untouched
    vx = [h for h in path.hops if h.event == "vxlan"]
    assert [(h.node, h.dev) for h in vx] == [("node1", "flannel.1"), ("node2", "flannel.1")]
    outer = vx[0].extra["outer"]
    assert (outer["proto"], outer["src"], outer["dst"], outer["dport"]) == \
        ("udp", "192.168.1.11", "192.168.1.12", VXLAN_PORT)
    assert vx[0].extra["inner"]["dst"] == be.ip and vx[0].extra["vni"] == 1
    # The datagram crossed the LAN switch, and node2's INPUT hook saw it.
    i = path.hops.index(vx[0])
    j = path.hops.index(vx[1])
    between = path.hops[i:j]
    assert any(h.node == "lan" for h in between)
    assert any(h.node == "node2" and h.chain == "INPUT" for h in between)
    # The reply goes back the same way.
    back = [h for h in path.reply.hops if h.event == "vxlan"]
    assert [h.node for h in back] == ["node2", "node1"]


def test_a_service_works_through_the_overlay(overlay):
    cluster, backend = overlay
    tr = run(cluster, backend.world, "deploy/shop/frontend", "svc/shop/backend:http")
    assert len(tr.paths) == 2
    assert all(p.outcome == "success" and p.delivered_to.startswith("node2/shop.backend-")
               for p in tr.paths)
    assert all(any(h.event == "vxlan" for h in p.hops) for p in tr.paths)


def test_a_firewall_on_the_vxlan_port_breaks_the_overlay(overlay):
    cluster, backend = overlay
    backend.apply(O.IptablesRestore("node2/root", "*filter\n-I INPUT 1 -p udp -m udp --dport "
                                    f"{VXLAN_PORT} -j DROP\nCOMMIT\n", noflush=True))
    fe, be = pod_of(cluster, "frontend-"), pod_of(cluster, "backend-")
    tr = run(cluster, backend.world, f"pod/shop/{fe.name}", f"pod/shop/{be.name}:8080")
    [path] = tr.paths
    assert (path.verdict, path.outcome) == ("dropped", "timeout")
    assert path.packet_out.dport == VXLAN_PORT          # what was dropped: the outer datagram
    # Pods on one node do not need the overlay.
    dns = next(p for p in cluster.pods if p.node == fe.node and p.namespace == "kube-system")
    tr = trace(backend.world, source_netns(cluster, f"pod/shop/{fe.name}"), dns.ip,
               proto="udp", dport=53)
    assert tr.paths[0].outcome == "success"


def test_vxlan_devices_refuse_what_the_kernel_refuses():
    b = ModelBackend(World())
    b.apply(O.AddNode("n"))
    b.apply(O.AddVxlan("n/root", "vx0", 42, 4789))
    with pytest.raises(CommandError, match="File exists"):
        b.apply(O.AddVxlan("n/root", "vx1", 42, 4789))
    with pytest.raises(CommandError, match="Cannot find device"):
        b.apply(O.AddVxlan("n/root", "vx2", 43, 4789, dev="eth9"))
    b.apply(O.AddLink("n/root", "br0", "bridge"))
    with pytest.raises(CommandError, match="not supported"):
        b.apply(O.AddFdb("n/root", "br0", "00:00:00:00:00:00", "10.0.0.2"))
    b.apply(O.AddFdb("n/root", "vx0", "00:00:00:00:00:00", "10.0.0.2"))
    b.apply(O.AddFdb("n/root", "vx0", "00:00:00:00:00:00", "10.0.0.2"))
    assert b.world.namespaces["n/root"].links["vx0"].fdb == [
        {"mac": "00:00:00:00:00:00", "dst": "10.0.0.2"}]
    again = World.from_json(b.world.to_json())
    assert again.namespaces["n/root"].links["vx0"].vxlan["vni"] == 42


def test_ip_link_add_type_vxlan_and_bridge_fdb_append():
    from netlab.commands.shell import Shell

    b = ModelBackend(World())
    b.apply(O.AddNode("h"))
    sh = Shell(b, "h")
    for cmd in ("ip link add eth0 type dummy",
                "ip link add vxlan0 type vxlan id 42 remote 192.168.1.12 dstport 4789 dev eth0",
                "bridge fdb append 0a:00:00:00:00:09 dev vxlan0 dst 192.168.1.13"):
        [r] = sh.run_script(cmd)
        assert r.ok, (cmd, r.error)
    vx = b.world.namespaces["h/root"].links["vxlan0"]
    assert vx.vxlan["vni"] == 42 and vx.vxlan["dstport"] == 4789 and vx.mtu == 1450
    # `remote` is the kernel's default destination: an all-zeros FDB entry.
    [r] = sh.run_script("bridge fdb show dev vxlan0")
    assert r.output == ("00:00:00:00:00:00 dst 192.168.1.12 self permanent\n"
                        "0a:00:00:00:00:09 dst 192.168.1.13 self permanent\n")
    for cmd, error in [("ip link add vx1 type vxlan dstport 4789", "missing virtual network"),
                       ("ip link add vx2 type vxlan id 7 dev eth9", 'Cannot find device "eth9"'),
                       ("ip link add vx3 type vxlan id 99999999", "invalid id")]:
        [r] = sh.run_script(cmd)
        assert not r.ok and error in r.error, (cmd, r.error)
