"""The kubelet's CNI seam: every pod sandbox is wired by netlab's bridge plugin with
host-local, called in-process (netlab.cni.invoke) with the configuration flannel
hands it and the CNI_ARGS kubelet sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlab.backends.model import ModelBackend
from netlab.cni import CniError, invoke
from netlab.errors import LabError
from netlab.k8s import kubelet
from netlab.k8s.build import build, build_model, cluster_ops
from netlab.k8s.cluster import load_cluster
from netlab.model import World, ns_key

SHOP = Path(__file__).parents[1] / "data" / "k8s" / "shop"


def shop(tmp_path=None, network: str = "host-gw"):
    files = [str(SHOP / "cluster.yaml"), str(SHOP / "shop.yaml")]
    if network != "host-gw":
        (tmp_path / "cluster.yaml").write_text(
            (SHOP / "cluster.yaml").read_text().replace("network: host-gw", f"network: {network}"))
        files[0] = str(tmp_path / "cluster.yaml")
    return load_cluster(files)


@pytest.fixture(scope="module")
def cluster():
    return shop()


@pytest.fixture(scope="module")
def world(cluster):
    return build_model(cluster).world


def pods(cluster):
    return [p for p in cluster.pods if not p.host_network]


def test_each_pod_gets_its_control_plane_ip_on_eth0_with_flannels_routes(cluster, world):
    assert pods(cluster)
    for pod in pods(cluster):
        ns = world.namespaces[kubelet.pod_netns_key(pod)]
        gw = cluster.node(pod.node).gateway
        eth0 = ns.links["eth0"]
        assert [(a.ip, a.prefixlen) for a in eth0.addresses] == [(pod.ip, 24)]
        assert eth0.up and ns.links["lo"].up
        routes = {(r.dst, r.gateway) for r in ns.routes}
        assert ("default", gw) in routes                      # isDefaultGateway
        assert (cluster.spec.pod_cidr, gw) in routes          # ipam.routes: the flannel network


def test_host_ends_are_ports_of_cni0_which_holds_the_gateway(cluster, world):
    for node in cluster.nodes:
        root = world.namespaces[ns_key(node.name)]
        cni0 = root.links["cni0"]
        assert cni0.kind == "bridge" and cni0.up
        assert [(a.ip, a.prefixlen) for a in cni0.addresses] == [(node.gateway, 24)]
        assert root.sysctls["net.ipv4.ip_forward"] == "1"
        on_node = [p for p in pods(cluster) if p.node == node.name]
        ports = [link for link in root.links.values() if link.master == "cni0"]
        assert len(ports) == len(on_node)
        for link in ports:
            assert link.kind == "veth" and link.up
            assert link.name.startswith("veth") and len(link.name) == 12
            assert link.peer_name == "eth0"


def test_no_masquerade_chain_from_the_plugin(cluster, world):
    """ipMasq is false (flanneld masquerades itself): the plugin adds no CNI- chain."""
    for node in cluster.nodes:
        nat = world.namespaces[ns_key(node.name)].tables.get("nat")
        assert nat is None or not any(c.startswith("CNI-") for c in nat.chains)


def test_host_local_keeps_its_files_on_each_node(cluster, world):
    for node in cluster.nodes:
        files = world.files[node.name]
        on_node = [p for p in pods(cluster) if p.node == node.name]
        prefix = f"{kubelet.DATA_DIR}/{kubelet.NETWORK_NAME}/"
        names = {path[len(prefix):] for path in files if path.startswith(prefix)}
        ips = {name: files[prefix + name] for name in names
               if not name.startswith("last_") and name != "lock"}
        assert ips == {p.ip: f"{kubelet.container_id(p)}\r\neth0" for p in on_node}
        assert files[prefix + "last_reserved_ip.0"] == on_node[-1].ip
        assert files[prefix + "lock"] == ""            # the reference's flock file, empty


def test_building_twice_gives_the_same_world(cluster, world):
    assert build_model(shop()).world.to_json() == world.to_json()


def test_the_ops_give_the_same_kernel_state_on_a_fresh_model(cluster, world):
    """cluster_ops is what the real backend gets: replayed, it makes the same namespaces."""
    fresh = ModelBackend(World(name=cluster.spec.name))
    for op in cluster_ops(cluster):
        fresh.apply(op)
    assert fresh.world.to_json()["namespaces"] == world.to_json()["namespaces"]


def test_vxlan_cluster_pods_get_flannels_mtu(tmp_path):
    c = shop(tmp_path, "vxlan")
    w = build_model(c).world
    pod = pods(c)[0]
    assert w.namespaces[kubelet.pod_netns_key(pod)].links["eth0"].mtu == 1450
    assert w.namespaces[ns_key(pod.node)].links["cni0"].mtu == 1450


def test_the_plugin_reads_kubelets_cni_args(cluster):
    """The K8S_* keys are unknown to bridge: without IgnoreUnknown=1 it refuses them, as
    the reference does — so the arguments do reach the plugin."""
    rec = build(cluster)
    node = cluster.nodes[0]
    pod = next(p for p in pods(cluster) if p.node == node.name)
    from netlab import ops as O
    rec.apply(O.AddNetns(node.name, "extra"))
    args = kubelet.cni_args(pod).replace("IgnoreUnknown=1;", "")
    with pytest.raises(CniError) as exc:
        invoke(rec, "ADD", kubelet.netconf(cluster, node), container_id="extra",
               netns="/var/run/netns/extra", ifname="eth0", node=node.name, cni_args=args)
    assert exc.value.msg.startswith("ARGS: unknown args") and "K8S_POD_NAMESPACE" in exc.value.msg


def test_a_failed_add_leaves_the_node_as_it_was(cluster):
    """A pod range with no address left: the ADD fails and changes nothing, also the
    node's host-local files."""
    rec = build(cluster)
    node = cluster.nodes[0]
    from netlab import ops as O
    rec.apply(O.AddNetns(node.name, "extra"))
    before = rec.world.to_json()
    conf = kubelet.netconf(cluster, node)
    taken = sorted(p.ip for p in pods(cluster) if p.node == node.name)
    conf["ipam"]["ranges"] = [[{"subnet": node.pod_cidr, "rangeStart": taken[0],
                                "rangeEnd": taken[-1]}]]
    with pytest.raises(CniError) as exc:
        invoke(rec, "ADD", conf, container_id="extra", netns="/var/run/netns/extra",
               ifname="eth0", node=node.name, cni_args="IgnoreUnknown=1")
    assert "no IP addresses available" in exc.value.msg
    assert rec.world.to_json() == before


def test_an_address_other_than_the_control_planes_is_reported(cluster):
    """kube-proxy's rules are written with the control plane's pod IPs: if host-local
    hands out another, the build stops and says so."""
    c = shop()
    pod = pods(c)[0]
    pod.ip = str(pod.ip).rsplit(".", 1)[0] + ".200"
    with pytest.raises(LabError) as exc:
        build(c)
    assert f"pod {pod.key}" in exc.value.message and "host-local gave" in exc.value.message


def test_a_recorder_that_keeps_no_ops_builds_the_same_pods():
    """Recorder(keep=False), as build_model has it: the replayed pods' Ops are not kept (only
    those of the plugin runs), and the pods are the same as with every Op kept."""
    import sys
    from pathlib import Path

    from netlab.cni.replay import Deferred
    from netlab.k8s.build import Recorder, attach_pods, node_ops

    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from cluster_bench import synthetic

    c = synthetic(4, 80, 8)
    recs = []
    for keep in (True, False):
        rec = Recorder(ModelBackend(World(name=c.spec.name)), keep=keep)
        for op in node_ops(c):
            rec.apply(op)
        attach_pods(rec, c)
        recs.append(rec)
    kept, lean = recs
    assert sum(type(x) is Deferred for x in kept.ops_log) > 60
    assert not any(type(x) is Deferred for x in lean.ops_log)
    assert len(lean.ops_log) < len(kept.ops_log) // 2
    assert lean.world.to_json() == kept.world.to_json()
    fresh = ModelBackend(World(name=c.spec.name))
    for op in kept.ops:
        fresh.apply(op)
    # (host-local's files are not kernel state: not in the Ops)
    assert fresh.world.to_json()["namespaces"] == lean.world.to_json()["namespaces"]
