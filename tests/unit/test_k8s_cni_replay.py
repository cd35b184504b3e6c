"""The kubelet's CNI replay (netlab.cni.replay, kubelet.NodeKubelet) against the plugin:
the World a cluster build makes with the replay equals, as JSON (host-local's files
included), the World made with the full plugin run for every pod, and the Ops the build
records give the same namespaces on a fresh model, applied one by one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from netlab import ops as O
from netlab.backends.model import ModelBackend
from netlab.errors import LabError
from netlab.k8s import build as B
from netlab.k8s import kubelet
from netlab.k8s.cluster import build_cluster, load_cluster
from netlab.k8s.objects import (
    ClusterSpec, ContainerPort, LabelSelector, Manifests, Namespace, NodeSpec, Pod, Service,
    ServicePort, Workload,
)
from netlab.model import World, ns_key

DATA = Path(__file__).parents[1] / "data" / "k8s"
LABS = Path(__file__).parents[2] / "labs"


def make(cluster, replay: bool, between=None):
    """The build's recorder after its nodes and pods; ``between(rec, i)`` runs before
    the i-th pod."""
    from netlab.cni.replay import Deferred
    rec = B.Recorder(ModelBackend(World(name=cluster.spec.name)))
    for op in B.node_ops(cluster):
        rec.apply(op)
    kubelets = kubelet.Kubelets(rec, cluster, replay)
    for i, pod in enumerate(cluster.pods):
        if between is not None:
            between(rec, i)
        kubelets.attach(pod)
    rec.replays = sum(type(x) is Deferred for x in rec.ops_log)
    rec.kubelets = kubelets
    return rec


def as_json(world: World, files: bool = True) -> str:
    data = world.to_json()
    if not files:
        data.pop("files")
    return json.dumps(data)


def check(cluster, between=None) -> tuple[int, int]:
    """The oracle: replay == full run == the Ops on a fresh model. Returns the count of
    replayed pods and of pods on a pod network."""
    fast = make(cluster, True, between)
    full = make(cluster, False, between)
    assert full.replays == 0
    assert as_json(fast.world) == as_json(full.world)
    ops = fast.ops
    assert ops == full.ops
    fresh = ModelBackend(World(name=cluster.spec.name))
    for op in ops:
        fresh.apply(op)
    assert as_json(fresh.world, files=False) == as_json(fast.world, files=False)
    return fast.replays, sum(not p.host_network for p in cluster.pods)


def synthetic(seed: int, nodes: int, network: str = "host-gw", big: str | None = None):
    """A seeded cluster: namespaces, Deployments, DaemonSets, bare Pods, hostNetwork pods,
    nodes picked by nodeName and nodeSelector, a few ports each."""
    rnd = random.Random(seed)
    specs = [NodeSpec(f"n{i + 1}", f"192.168.7.{i + 10}",
                      (("pool", "big"),) if i % 3 == 0 else (("pool", "small"),))
             for i in range(nodes)]
    spec = ClusterSpec(name=f"r{seed}", nodes=specs, network=network,
                       pod_cidr="10.60.0.0/16", service_cidr="10.96.0.0/12")
    m = Manifests()
    spaces = ["default"] + [f"team{k}" for k in range(rnd.randint(1, 3))]
    m.namespaces += [Namespace(s, {}) for s in spaces[1:]]

    def ports():
        return [ContainerPort(rnd.choice([80, 8080, 53, 9000]), rnd.choice(["TCP", "UDP"]),
                              f"p{k}") for k in range(rnd.randint(0, 2))]

    for k in range(rnd.randint(2, 5)):
        ns = rnd.choice(spaces)
        labels = {"app": f"app{k}"}
        m.workloads.append(Workload("Deployment", ns, f"app{k}", rnd.randint(1, 3 * nodes),
                                    LabelSelector((("app", f"app{k}"),)),
                                    Pod(ns, "", labels, ports())))
        m.services.append(Service(ns, f"svc{k}", "ClusterIP", labels,
                                  [ServicePort("http", "TCP", 80, 8080)]))
    m.workloads.append(Workload("DaemonSet", "default", "agent", 1,
                                LabelSelector((("app", "agent"),)),
                                Pod("default", "", {"app": "agent"}, ports())))
    m.workloads.append(Workload("DaemonSet", "default", "exporter", 1,
                                LabelSelector((("app", "exporter"),)),
                                Pod("default", "", {"app": "exporter"},
                                    [ContainerPort(9100, "TCP", "m")], host_network=True)))
    for k in range(rnd.randint(1, 4)):
        ns = rnd.choice(spaces)
        m.pods.append(Pod(ns, f"bare{k}", {"bare": str(k)}, ports(),
                          node_name=rnd.choice(specs).name if rnd.random() < 0.5 else None,
                          node_selector={"pool": "big"} if rnd.random() < 0.3 else {}))
    if big:                     # many pods on one node
        for k in range(40):
            m.pods.append(Pod("default", f"many{k}", {}, ports(), node_name=big))
    return build_cluster(spec, m)


def shop(tmp_path, network: str):
    text = (DATA / "shop" / "cluster.yaml").read_text()
    path = tmp_path / "cluster.yaml"
    path.write_text(text.replace("network: host-gw", f"network: {network}"))
    return load_cluster([str(path), str(DATA / "shop" / "shop.yaml")])


@pytest.mark.parametrize("network", ["host-gw", "vxlan"])
def test_the_shop_cluster_is_the_same_with_the_replay(tmp_path, network):
    replayed, pods = check(shop(tmp_path, network))
    assert pods > 0


@pytest.mark.parametrize("seed,nodes,network", [(1, 2, "host-gw"), (2, 3, "vxlan"),
                                                (3, 5, "host-gw"), (4, 4, "vxlan"),
                                                (5, 7, "host-gw")])
def test_random_clusters_are_the_same_with_the_replay(seed, nodes, network):
    cluster = synthetic(seed, nodes, network, big="n2" if seed % 2 else None)
    replayed, pods = check(cluster)
    assert any(p.host_network for p in cluster.pods)
    # Two runs of the plugin a node at most where a node has more pods than that.
    on = {}
    for p in cluster.pods:
        if not p.host_network:
            on[p.node] = on.get(p.node, 0) + 1
    assert replayed >= sum(max(0, n - 2) for n in on.values()) > 0


@pytest.mark.parametrize("lab", sorted(p.name for p in LABS.glob("*.yaml")
                                       if "\ncluster:" in p.read_text()))
def test_the_cluster_labs_are_the_same_with_the_replay(lab):
    """labs 10-12 (08 and 09 build their nodes by hand, without a cluster)."""
    from netlab.labs import parse_lab
    parsed = parse_lab((LABS / lab).read_text(), str(LABS / lab))
    assert parsed.cluster is not None
    check(parsed.cluster)


def small_range_cluster(extra: int = 0, skip: bool = False):
    """node2's podCIDR is a /28: 13 pods fill it (.2 to .14)."""
    specs = [NodeSpec("a", "192.168.9.2"), NodeSpec("b", "192.168.9.3", pod_cidr="10.70.9.0/28")]
    spec = ClusterSpec(name="small", nodes=specs, pod_cidr="10.70.0.0/16", dns=False)
    m = Manifests()
    for k in range(13):
        m.pods.append(Pod("default", f"p{k}", {}, [], node_name="b"))
    m.pods.append(Pod("default", "on-a", {}, [], node_name="a"))
    cluster = build_cluster(spec, m)
    if skip:                    # the control plane and host-local disagree
        cluster.pods[7].ip = "10.70.9.14"
    return cluster


def test_a_full_small_range_is_the_same_with_the_replay():
    cluster = small_range_cluster()
    replayed, _ = check(cluster)
    assert replayed == 11                       # all on b but its first two
    rec = make(cluster, True)
    files = rec.world.files["b"]
    assert files["/var/lib/cni/networks/cbr0/last_reserved_ip.0"] == "10.70.9.14"


def test_a_pod_past_the_end_of_the_range_fails_as_the_plugin_does():
    """The next address would wrap (no address left): the replay does not apply, the
    plugin runs and fails, with the same error either way."""
    messages = []
    for replay in (True, False):
        cluster = small_range_cluster()
        extra = Pod("default", "late", {}, [], node_name="b")
        extra.node, extra.ip = "b", "10.70.9.15"
        cluster.pods.append(extra)
        with pytest.raises(LabError) as exc:
            make(cluster, replay)
        messages.append(exc.value.message)
    assert messages[0] == messages[1]
    assert "the bridge plugin failed: failed to allocate for range 0: no IP addresses " \
           "available" in messages[0]


def test_an_address_host_local_would_not_give_is_reported_the_same_way():
    messages = []
    for replay in (True, False):
        with pytest.raises(LabError) as exc:
            make(small_range_cluster(skip=True), replay)
        messages.append(exc.value.message)
    assert messages[0] == messages[1] and "host-local gave ['10.70.9.9']" in messages[0]


def test_a_change_to_the_node_in_between_makes_the_plugin_run_again():
    """An Op on the node's namespace between two pods: the next pod gets the full plugin
    run (which sees the change), the ones after it are replayed again."""
    cluster = small_range_cluster()

    def between(rec, i):
        if i == 6:
            rec.apply(O.SetSysctl(ns_key("b"), "net.ipv4.conf.all.rp_filter", "2"))
        if i == 9:
            rec.apply(O.WriteFile("b", "/etc/hostname", "b\n"))
    replayed, _ = check(cluster, between)
    assert replayed == 11 - 2


def test_a_namespace_already_there_fails_as_the_plugin_does():
    """(The runtime's `ip netns add` refuses it, before any plugin.)"""
    from netlab.errors import CommandError
    messages = []
    for replay in (True, False):
        cluster = small_range_cluster()

        def between(rec, i, pod=cluster.pods[5]):
            if i == 5:
                rec.backend.apply(O.AddNetns("b", kubelet.netns_name(pod)))
        with pytest.raises(CommandError) as exc:
            make(cluster, replay, between)
        messages.append(exc.value.message)
    assert messages[0] == messages[1] and "File exists" in messages[0]


def test_nothing_is_replayed_with_the_replay_off(monkeypatch):
    monkeypatch.setenv("NETLAB_CNI_REPLAY", "0")
    cluster = small_range_cluster()
    rec = B.build(cluster)
    from netlab.cni.replay import Deferred
    assert not any(type(x) is Deferred for x in rec.ops_log)
    monkeypatch.setenv("NETLAB_CNI_REPLAY", "1")
    rec2 = B.build(cluster)
    assert any(type(x) is Deferred for x in rec2.ops_log)
    assert as_json(rec.world) == as_json(rec2.world)
    assert rec.ops == rec2.ops


def test_a_replayed_pod_gives_the_plugins_result():
    """attach returns a Deferred for a replayed pod: its result is the plugin's."""
    cluster = small_range_cluster()
    full = make(cluster, False)
    rec = B.Recorder(ModelBackend(World(name="small")))
    for op in B.node_ops(cluster):
        rec.apply(op)
    kubelets = kubelet.Kubelets(rec, cluster, True)
    results = [kubelets.attach(p) for p in cluster.pods]
    from netlab.cni.replay import Deferred
    assert type(results[5]) is Deferred
    # The same pod, ADDed again by the plugin on a copy of the full build's World just
    # before it: the same result.
    pod = cluster.pods[5]
    assert results[5].result()["ips"] == [{"address": f"{pod.ip}/28", "gateway": "10.70.9.1",
                                           "interface": 2}]
    assert results[5].result()["interfaces"][2] == {
        "name": "eth0", "sandbox": kubelet.netns_path(pod),
        "mac": full.world.namespaces[kubelet.pod_netns_key(pod)].links["eth0"].mac}


def test_a_template_from_one_node_serves_the_others():
    """Nodes whose netconf differs only in the pod range share one template, trusted once
    two nodes' runs gave the same; each node's own steady run is checked against it."""
    cluster = synthetic(9, 8)
    rec = B.Recorder(ModelBackend(World(name="x")))
    for op in B.node_ops(cluster):
        rec.apply(op)
    kubelets = kubelet.Kubelets(rec, cluster, True)
    for pod in cluster.pods:
        kubelets.attach(pod)
    steady = [v for k, v in kubelets.shared.items() if type(k) is str]
    first = [v for k, v in kubelets.shared.items() if type(k) is tuple]
    assert len(steady) == 1 and steady[0].trusted is not None and steady[0].pair is not None
    assert len(first) == 1 and first[0].pair is not None
    users = [k for k in kubelets.kubelets.values()
             if k.template is not None and k.template.template is steady[0].pair[0]]
    assert len(users) >= 4
    # Their first pods too: replayed where the node was as the first template's were.
    assert sum(k.first_replayed for k in kubelets.kubelets.values()) >= 3


def test_a_node_unlike_the_others_is_not_taken_for_them():
    """The second pod of a node is replayed without a run of its own only when the node's
    state matches the others' but for its own values: a node with another sysctl, or
    another link, runs the plugin for its second pod again (and the World is the same)."""
    cluster = synthetic(11, 12)

    def between(rec, i):
        if i == 0:
            rec.apply(O.SetSysctl(ns_key("n6"), "net.ipv4.conf.all.rp_filter", "1"))
            rec.apply(O.AddLink(ns_key("n7"), "dummy0", "dummy"))
    check(cluster, between)
    rec = make(cluster, True, between)
    runs = {name: k.runs for name, k in rec.kubelets.kubelets.items()}
    adopted = [name for name, r in runs.items() if r == 1 and rec.kubelets.kubelets[name].template]
    assert runs["n6"] >= 2 and runs["n7"] >= 2
    assert "n6" not in adopted and "n7" not in adopted and len(adopted) >= 3, runs
    firsts = {name for name, k in rec.kubelets.kubelets.items() if k.first_replayed}
    assert not firsts & {"n6", "n7"} and firsts


def test_the_benchmarks_cluster_is_the_same_with_the_replay():
    """benchmarks/cluster_bench.py's generator, 12 nodes of 20 pods: all but the first
    nodes' first pods replayed."""
    import sys
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    try:
        from cluster_bench import synthetic as bench_cluster
    finally:
        sys.path.pop(0)
    cluster = bench_cluster(12, 240, 24)
    replayed, pods = check(cluster)
    assert replayed >= pods - 12


def _mutations(state, rnd):
    """Copies of a node's state, each changed in one place (a value, a key, an order, a
    type), some of them changes ``==`` does not see."""
    import copy
    root, files = state

    def changed(edit):
        new = copy.deepcopy(state)
        edit(*new)
        return new

    link = rnd.choice(sorted(root["links"]))
    sysctl = rnd.choice(sorted(root["sysctls"]))
    yield changed(lambda r, f: r["sysctls"].__setitem__(sysctl, "7"))
    yield changed(lambda r, f: r["sysctls"].pop(sysctl))
    yield changed(lambda r, f: r["sysctls"].__setitem__("net.x", "1"))
    yield changed(lambda r, f: r["links"][link].__setitem__("mac", "02:00:00:00:00:ff"))
    yield changed(lambda r, f: r["links"][link].__setitem__("up", not r["links"][link]["up"]))
    yield changed(lambda r, f: r["links"][link].__setitem__("mtu", float(r["links"][link]["mtu"])))
    yield changed(lambda r, f: r["links"][link]["addresses"].append(
        type(r["links"]["lo"]["addresses"][0])("10.9.9.9", 24)))
    yield changed(lambda r, f: r.__setitem__("routes", list(reversed(r["routes"]))))
    yield changed(lambda r, f: r.__setitem__("routes", tuple(r["routes"])))
    yield changed(lambda r, f: r.__setitem__("links", dict(reversed(r["links"].items()))))
    yield changed(lambda r, f: f.__setitem__("/var/lib/x", ""))
    yield changed(lambda r, f: r["listeners"].pop() if r["listeners"] else None)
    yield changed(lambda r, f: r.__setitem__("next_ifindex", r["next_ifindex"] + 1))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_shape_matches_as_its_state_compared_would(seed):
    """Shape.matches (straight-line comparisons) against the state its pickle makes for the
    params, compared with ``==``: the same answer for each node's state before and after
    its first pod, with each node's values and another's, and for states changed in one
    place."""
    from netlab.cni.replay import Shape
    rnd = random.Random(seed)
    cluster = synthetic(seed, 5)
    rec = make(cluster, True)
    nodes = list(rec.kubelets.kubelets.values())
    cases = 0
    for k in nodes:
        node_params = k._node_params()
        if node_params is None or k.first is None:
            continue
        params = k._shape_params(node_params)
        state = k._state()
        shape = Shape(state, params)
        others = [(o._state(), o._shape_params(o._node_params())) for o in nodes
                  if o is not k and o.first is not None and o._node_params() is not None]
        for other, their in [(state, params), *others, *((m, params) for m in
                                                        _mutations(state, rnd))]:
            for values in (params, their, list(reversed(params))):
                assert shape.matches(other, values) == shape.loaded_matches(other, values)
                cases += 1
        assert shape.matches(state, params)
    assert cases > 20


def test_sysctls_the_replayed_pods_share_are_written_to_one_pod_alone():
    """Replayed pods hold one dict of sysctls, and of each link's (netlab.model.sysctl
    Shared); a sysctl written in one namespace, on a device or through ip_forward (which
    every device follows), changes that namespace alone: the World is the one the full
    plugin runs give, where every pod has dicts of its own."""
    from netlab.model.sysctl import Shared
    cluster = synthetic(4, 3)
    fast, full = make(cluster, True), make(cluster, False)
    pods = [ns for ns in fast.world.namespaces.values() if ns.kind == "netns"]
    shared = [ns for ns in pods if type(ns.sysctls) is Shared]
    assert len(shared) >= 10 and len({id(ns.sysctls) for ns in shared}) < len(shared)
    assert any(type(link.conf) is Shared for ns in shared for link in ns.links.values())
    one, node = shared[3].key, shared[3].node
    writes = [O.SetSysctl(one, "net.ipv4.conf.all.rp_filter", "1"),
              O.SetSysctl(one, "net.ipv4.conf.eth0.rp_filter", "2"),
              O.SetSysctl(one, "net.ipv4.ip_forward", "1"),
              O.SetSysctl(ns_key(node), "net.ipv4.conf.all.send_redirects", "0")]
    for rec in (fast, full):
        for op in writes:
            rec.apply(op)
    assert as_json(fast.world) == as_json(full.world)
    ns = fast.world.namespaces[one]
    assert ns.sysctls["net.ipv4.conf.all.rp_filter"] == "1"
    assert all(link.conf["forwarding"] == "1" for link in ns.links.values())
    assert all(other.sysctls["net.ipv4.conf.all.rp_filter"] == "0" for other in shared
               if other is not ns)
