"""Real mode for the CNI and cluster layers: VXLAN devices and their FDB, a lab's files,
the CNI plugins run as the real executables (lab 07), and `real verify` for labs 07-12
and for a vxlan cluster.

Namespaces: the labs' own names (``nl-cni-bridge-*``, ``nl-services-*``, ...) and
``nl-rk-*``; every journal goes to a temporary $NETLAB_RUN_DIR, and each test checks
that its namespaces are gone afterwards (only its own: other sessions come and go).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
CNI_AND_CLUSTER_LABS = ["07", "08", "09", "10", "11", "12"]


def ours_left(prefix: str) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [n.split()[0] for n in names.splitlines() if n.startswith(prefix)]


def sh(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"
    return done.stdout


def lab_name(ref: str) -> str:
    from netlab.labs import find_lab, load_lab
    from netlab.labs.kernel import real_lab_name

    return real_lab_name(load_lab(find_lab(ref)))


@pytest.mark.parametrize("ref", CNI_AND_CLUSTER_LABS)
def test_real_verify_agrees_for_the_cni_and_cluster_labs(ref, kernel, tmp_path):
    prefix = f"nl-{lab_name(ref)}-"
    assert ours_left(prefix) == [], "a namespace of this lab is there already"
    env = dict(os.environ, NETLAB_RUN_DIR=str(tmp_path),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", "from netlab.cli.main import main; main()",
                           "real", "verify", ref, "--json", "--cap", "120"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    result = json.loads(done.stdout)
    diffs = [r for r in result["rows"] if not r["same"]]
    assert result["differences"] == 0 and done.returncode == 0, \
        json.dumps({"problems": result["problems"], "rows": diffs}, indent=1)
    assert any(r["origin"] != "auto" for r in result["rows"]), "the lab's own expectations"
    assert any(r["origin"] == "auto" for r in result["rows"])
    assert os.listdir(tmp_path) == [], "the journal, the lab's files and logs are gone"
    assert ours_left(prefix) == []


VXLAN_CLUSTER = """\
netlab: 1
name: rk-vxlan
title: A vxlan cluster on the kernel
description: flannel's vxlan backend, a Service and a pod on each node.
cluster:
  name: rk-vxlan
  network: vxlan
  dns: false
  nodes:
    - {name: node1, ip: 192.168.1.11}
    - {name: node2, ip: 192.168.1.12}
  manifests: |
    apiVersion: v1
    kind: Pod
    metadata: {name: a, labels: {app: web}}
    spec:
      nodeName: node1
      containers: [{name: c, image: nginx, ports: [{containerPort: 8080}]}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: b, labels: {app: web}}
    spec:
      nodeName: node2
      containers: [{name: c, image: nginx, ports: [{containerPort: 8080}]}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      selector: {app: web}
      ports: [{port: 80, targetPort: 8080}]
steps:
  - title: across the overlay
    node: node1
    run: |
      ip route
    expect:
      - reach: {from: node1/default.a, to: 10.244.2.2, proto: tcp, port: 8080}
      - trace: {from: node1/default.a, to: 10.244.2.2, proto: tcp, port: 8080, outcome: success, delivered_to: node2/default.b, src_out: 10.244.1.2}
"""


def test_a_vxlan_cluster_verifies_and_its_fdb_is_what_the_model_holds(kernel, tmp_path):
    """flannel.1 on each node (AddVxlan, AddFdb on the kernel): pods reach each other
    through the tunnel as the model says, and the FDB the kernel shows is the model's."""
    from netlab.labs import load_lab
    from netlab.labs.kernel import KernelLab, down_lab
    from netlab.labs.verify import verify_lab

    path = tmp_path / "rk-vxlan.yaml"
    path.write_text(VXLAN_CLUSTER)
    lab = load_lab(str(path))
    run = tmp_path / "run"
    result = verify_lab(lab, run_dir=str(run), cap=60)
    assert result.differences == 0, [r.to_json() for r in result.rows if not r.same] + \
        result.problems
    assert any(r.origin != "auto" and r.kernel["outcome"] == "success" for r in result.rows)
    assert ours_left("nl-rk-vxlan-") == []

    kl = KernelLab(lab, str(run))
    try:
        kl.build_topology()
        for node in ("node1", "node2"):
            real = kl.linux.real_name(f"{node}/root")
            link = json.loads(sh("ip", "-n", real, "-d", "-j", "link", "show", "flannel.1"))[0]
            data = link["linkinfo"]["info_data"]
            model = kl.world.namespaces[f"{node}/root"].links["flannel.1"]
            assert (data["id"], data["port"], data["local"], data["learning"], link["mtu"],
                    link["address"]) == (model.vxlan["vni"], model.vxlan["dstport"],
                                         model.vxlan["local"], model.vxlan["learning"],
                                         model.mtu, model.mac)
            shown = json.loads(sh("bridge", "-n", real, "-j", "fdb", "show", "dev", "flannel.1"))
            kernel_fdb = sorted((e["mac"], e["dst"]) for e in shown if "dst" in e)
            assert kernel_fdb == sorted((e["mac"], e["dst"]) for e in model.fdb)
            assert all("permanent" in e.get("state", "") for e in shown if "dst" in e)
    finally:
        kl.close()
        down_lab(kl.name, str(run))
    assert ours_left("nl-rk-vxlan-") == []


def test_vxlan_remote_makes_the_all_zeros_entry_as_the_model_says(kernel, tmp_path):
    from netlab import ops as O
    from netlab.backends.journal import Journal
    from netlab.backends.linux import LinuxBackend
    from netlab.backends.model import ModelBackend
    from netlab.labs.kernel import remove

    journal = Journal.open_new("rk-vx", str(tmp_path))
    model = ModelBackend()
    ops = [O.AddNode("n"), O.AddLink("n/root", "d0", "bridge"),
           O.AddVxlan("n/root", "vx0", 7, 4789, dev="d0", local="10.0.0.1",
                      remote="10.0.0.2"),
           O.AddFdb("n/root", "vx0", "0A:00:00:00:00:09", "10.0.0.3")]
    try:
        with LinuxBackend("rk-vx", journal) as linux:
            for op in ops:
                linux.apply(op)
                model.apply(op)
            shown = json.loads(sh("bridge", "-n", linux.real_name("n/root"), "-j", "fdb",
                                  "show", "dev", "vx0"))
        kernel_fdb = sorted((e["mac"], e["dst"]) for e in shown if "dst" in e)
        assert kernel_fdb == sorted((e["mac"], e["dst"])
                                    for e in model.world.namespaces["n/root"].links["vx0"].fdb)
        assert ("00:00:00:00:00:00", "10.0.0.2") in kernel_fdb
    finally:
        remove(journal)
    assert ours_left("nl-rk-vx-") == []


def test_write_file_goes_under_the_run_dir_and_goes_with_down(kernel, tmp_path):
    from netlab import ops as O
    from netlab.backends.journal import Journal
    from netlab.backends.linux import LinuxBackend
    from netlab.errors import CommandError
    from netlab.labs.kernel import remove

    journal = Journal.open_new("rk-wf", str(tmp_path))
    try:
        with LinuxBackend("rk-wf", journal) as linux:
            linux.apply(O.AddNode("n"))
            linux.apply(O.WriteFile("n", "/etc/cni/net.d/rk-test.conf", "{}\n"))
            real = Path(linux.file_path("n", "/etc/cni/net.d/rk-test.conf"))
            assert real.read_text() == "{}\n"
            assert str(real).startswith(str(tmp_path))
            assert not Path("/etc/cni/net.d/rk-test.conf").exists()
            with pytest.raises(CommandError):
                linux.apply(O.WriteFile("n", "/etc/../../x", "no"))
            linux.apply(O.WriteFile("n", "/etc/cni/net.d/rk-test.conf", None))
            assert not real.exists()
            linux.apply(O.WriteFile("n", "/etc/cni/net.d/rk-test.conf", "again"))
    finally:
        remove(journal)
    assert os.listdir(tmp_path) == []
    assert ours_left("nl-rk-wf-") == []


def test_lab_07_runs_the_real_plugins_in_the_node_namespace(kernel, tmp_path):
    """Steps 1-3 of lab 07 on the kernel: the executables in cni_plugins/ made the
    kernel's state (eth0 in the pods, cni0, the CNI- chain in the host's namespace),
    host-local kept its files under the run dir, and the machine's /etc and /var/lib
    were not touched."""
    from netlab.labs import find_lab, load_lab
    from netlab.labs.kernel import KernelLab, down_lab

    before = {p: os.path.exists(p) for p in ("/etc/cni/net.d/10-bridge.conf",
                                             "/var/lib/cni/networks/mynet")}
    lab = load_lab(find_lab("07"))
    kl = KernelLab(lab, str(tmp_path))
    try:
        kl.build_topology()
        for step in lab.steps[:3]:
            record = kl.run_step(step)
            assert record.stopped is None, record.stopped
        host = kl.linux.real_name("host/root")
        for pod, ip in (("red", "10.22.0.2"), ("blue", "10.22.0.3")):
            addrs = json.loads(sh("ip", "-n", kl.linux.real_name(f"host/{pod}"), "-j",
                                  "addr", "show", "eth0"))[0]["addr_info"]
            assert [(a["local"], a["prefixlen"]) for a in addrs if a["family"] == "inet"] \
                == [(ip, 16)]
        cni0 = json.loads(sh("ip", "-n", host, "-j", "addr", "show", "cni0"))[0]
        assert ("10.22.0.1", 16) in [(a["local"], a["prefixlen"]) for a in cni0["addr_info"]]
        nat = sh("ip", "netns", "exec", host, "iptables-save", "-t", "nat")
        assert '-m comment --comment "name: \\"mynet\\" id: \\"red\\""' in nat
        data = Path(kl.linux.file_path("host", "/var/lib/cni/networks/mynet"))
        assert sorted(os.listdir(data)) == ["10.22.0.2", "10.22.0.3", "last_reserved_ip.0",
                                            "lock"]
        # the twin: the model's data dir holds the same names (lock too)
        prefix = "/var/lib/cni/networks/mynet/"
        assert sorted(p[len(prefix):] for p in kl.world.files["host"]
                      if p.startswith(prefix)) == sorted(os.listdir(data))
        assert (data / "10.22.0.2").read_text().split()[0] == "red"
        assert Path(kl.linux.file_path("host", "/etc/cni/net.d/10-bridge.conf")).exists()
        # the model followed: the same addresses, from its own plugin run
        world = kl.world
        assert world.namespaces["host/red"].links["eth0"].addresses[0].ip == "10.22.0.2"
    finally:
        kl.close()
        down_lab(kl.name, str(tmp_path))
    assert {p: os.path.exists(p) for p in before} == before
    assert os.listdir(tmp_path) == []
    assert ours_left("nl-cni-bridge-") == []


# --- VXLAN variants of lab 09, model and kernel side by side ---------------------------------

def lab09_variant(changes: list[tuple[str, str]], name: str) -> str:
    """Lab 09's first four steps, its expectations left out (they hold for lab 09 only),
    with ``changes`` made to the commands; verify's automatic probes compare the rest."""
    text = (REPO / "labs/09-overlay-vxlan.yaml").read_text()
    text = text.split("  - title: The tunnel is ordinary UDP")[0]
    out, skipping = [], False
    for line in text.splitlines(True):
        if line.startswith("    expect:"):
            skipping = True
            continue
        if skipping and line.startswith(("      -", "                ")):
            continue
        skipping = False
        out.append(line)
    text = "".join(out).replace("name: overlay-vxlan", f"name: {name}")
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    return text


FDB1 = "      bridge fdb append 0a:00:00:00:02:01 dev vxlan0 dst 192.168.1.12\n"
VXLAN_VARIANTS = {
    # node2's VTEP has another VNI: its socket takes the datagram and drops it
    "vni": [("type vxlan id 42 local 192.168.1.12", "type vxlan id 43 local 192.168.1.12")],
    # another port: node2's port unreachable is about the tunnel's datagram, not the ping
    "port": [("local 192.168.1.12 dstport 4789", "local 192.168.1.12 dstport 4790")],
    # `remote` instead of an FDB entry: the all-zeros entry
    "remote": [("local 192.168.1.11 dstport 4789 dev eth0 nolearning",
                "local 192.168.1.11 remote 192.168.1.12 dstport 4789 dev eth0 nolearning"),
               (FDB1, "")],
    # no FDB entry and no remote: node1's frames are dropped
    "nofdb": [(FDB1, "")],
    # an all-zeros entry by hand
    "zero": [("fdb append 0a:00:00:00:02:01 dev vxlan0 dst 192.168.1.12",
              "fdb append 00:00:00:00:00:00 dev vxlan0 dst 192.168.1.12")],
}


@pytest.mark.parametrize("variant", sorted(VXLAN_VARIANTS))
def test_vxlan_variants_model_and_kernel_agree(variant, kernel, tmp_path):
    from netlab.labs import load_lab
    from netlab.labs.verify import verify_lab

    name = f"rk-vx-{variant}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(lab09_variant(VXLAN_VARIANTS[variant], name))
    result = verify_lab(load_lab(str(path)), run_dir=str(tmp_path / "run"), cap=80)
    assert result.differences == 0, [r.to_json() for r in result.rows if not r.same] + \
        result.problems
    assert len(result.rows) >= 40
    assert ours_left(f"nl-{name}-") == []


FDB2 = "      bridge fdb append 0a:00:00:00:01:01 dev vxlan0 dst 192.168.1.11\n"
NEIGH1 = "      ip neigh add 10.244.2.0 lladdr 0a:00:00:00:02:01 dev vxlan0 nud permanent\n"
NEIGH2 = "      ip neigh add 10.244.1.0 lladdr 0a:00:00:00:01:01 dev vxlan0 nud permanent\n"
ARP_THROUGH = [("local 192.168.1.11 dstport 4789 dev eth0 nolearning",
                "local 192.168.1.11 remote 192.168.1.12 dstport 4789 dev eth0{}"),
               ("local 192.168.1.12 dstport 4789 dev eth0 nolearning",
                "local 192.168.1.12 remote 192.168.1.11 dstport 4789 dev eth0{}"),
               (NEIGH1, ""), (NEIGH2, ""), (FDB1, ""), (FDB2, "")]


@pytest.mark.parametrize("learning", ["", " nolearning"], ids=["learning", "nolearning"])
def test_vxlan_arp_through_the_tunnel(learning, kernel, tmp_path):
    """No neighbour entries, no FDB entries, `remote` on both VTEPs: the kernel resolves
    the VTEP addresses by ARP through the tunnel, and so does the model (the answer
    comes back by the learned entry, or by the remote)."""
    from netlab.labs import load_lab
    from netlab.labs.verify import verify_lab

    name = "rk-vx-arp" + learning.replace(" ", "-")
    changes = [(a, b.format(learning)) for a, b in ARP_THROUGH]
    path = tmp_path / f"{name}.yaml"
    path.write_text(lab09_variant(changes, name))
    result = verify_lab(load_lab(str(path)), run_dir=str(tmp_path / "run"), cap=80)
    assert result.differences == 0, [r.to_json() for r in result.rows if not r.same] + \
        result.problems
    assert any(r.source == "node1/red" and r.to == "10.244.2.2" and
               r.kernel["outcome"] == "success" for r in result.rows)
    assert ours_left(f"nl-{name}-") == []


@pytest.mark.xfail(strict=True, reason="open: with node2 dropping UDP 4789, ARP through the "
                   "tunnel fails; one `ping` on the kernel then says Destination Host "
                   "Unreachable (0.3 s), as the model does, but verify's concurrent probes "
                   "see timeouts: not understood yet")
def test_vxlan_arp_through_a_tunnel_the_underlay_drops(kernel, tmp_path):
    from netlab.labs import load_lab
    from netlab.labs.verify import verify_lab

    changes = [(a, b.format("")) for a, b in ARP_THROUGH[:-1]] + \
        [(FDB2, "      iptables -I INPUT -p udp --dport 4789 -j DROP\n")]
    path = tmp_path / "rk-vx-arpdrop.yaml"
    path.write_text(lab09_variant(changes, "rk-vx-arpdrop"))
    try:
        result = verify_lab(load_lab(str(path)), run_dir=str(tmp_path / "run"), cap=80)
        assert result.differences == 0
    finally:
        assert ours_left("nl-rk-vx-arpdrop-") == []


SHOP = REPO / "tests" / "data" / "k8s" / "shop"


def netlab_cli(*args: str, run_dir: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, NETLAB_RUN_DIR=str(run_dir),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", "from netlab.cli.main import main; main()",
                           *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_cluster_up_real_builds_the_cluster_on_the_kernel_and_down_removes_it(kernel, tmp_path):
    """`netlab cluster up --backend real`: the cluster files as real mode builds a cluster
    lab (nodes, the LAN and the pods as namespaces, kube-proxy's rules, the listeners); a
    pod reaches a Service on another node through the kernel's own DNAT; a second `up` is
    refused; `cluster down` leaves nothing."""
    assert ours_left("nl-shop-") == [], "a namespace of the shop cluster is there already"
    up = netlab_cli("cluster", "up", "-f", str(SHOP), "--backend", "real", "--json",
                    run_dir=tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        report = json.loads(up.stdout)
        assert report["real"]["ok"] and report["real"]["listeners"] > 0
        made = report["real"]["namespaces"]
        shop = [p for p in report["pods"] if p["namespace"] == "shop"]
        frontend = next(p for p in shop if p["name"].startswith("frontend"))
        backends = [p for p in shop if p["name"].startswith("backend")]
        backend_svc = next(s for s in report["services"]
                           if (s["namespace"], s["name"]) == ("shop", "backend"))
        assert backends and all(p["node"] != frontend["node"] for p in backends), \
            "the Service's pods are on the other node"
        assert {"node1/root", "node2/root", "lan/root"} <= set(made)
        assert len(made) == 3 + len(report["pods"])
        assert sorted(made.values()) == sorted(ours_left("nl-shop-"))
        pod_ns = f"{frontend['node']}/shop.{frontend['name']}"
        probe = netlab_cli("real", "exec", "shop", pod_ns, "--", "nc", "-z", "-w", "2",
                           backend_svc["clusterIP"], "80", run_dir=tmp_path)
        assert probe.returncode == 0, probe.stderr
        # the kernel's rules of a node, as its iptables-save prints them, are the model's
        real_save = netlab_cli("cluster", "show", "-f", str(SHOP), "--backend", "real",
                               "--iptables-save", "node2", run_dir=tmp_path)
        model_save = netlab_cli("cluster", "show", "-f", str(SHOP), "--iptables-save", "node2",
                                run_dir=tmp_path)
        assert real_save.returncode == 0 and model_save.returncode == 0, real_save.stderr
        rules = [sorted(line for line in out.stdout.splitlines() if line.startswith("-A"))
                 for out in (real_save, model_save)]
        assert rules[0] == rules[1] and any("KUBE-SVC-" in r for r in rules[0])
        shown = json.loads(netlab_cli("cluster", "show", "-f", str(SHOP), "--backend", "real",
                                      "--json", run_dir=tmp_path).stdout)
        assert shown["real"]["namespaces"] == made
        again = netlab_cli("cluster", "up", "-f", str(SHOP), "--backend", "real",
                           run_dir=tmp_path)
        assert again.returncode == 2 and "up already" in again.stderr
    finally:
        down = netlab_cli("cluster", "down", "-f", str(SHOP), run_dir=tmp_path)
    assert down.returncode == 0 and "removed" in down.stdout, down.stderr
    assert ours_left("nl-shop-") == []
    assert os.listdir(tmp_path) == [], "the journal and the listeners' logs are gone"
    gone = netlab_cli("cluster", "show", "-f", str(SHOP), "--backend", "real", run_dir=tmp_path)
    assert gone.returncode == 2 and "not up on this kernel" in gone.stderr


def test_cluster_verify_agrees_and_leaves_nothing(kernel, tmp_path):
    assert ours_left("nl-shop-") == []
    done = netlab_cli("cluster", "verify", "-f", str(SHOP), "--json", "--cap", "80",
                      run_dir=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    result = json.loads(done.stdout)
    assert result["differences"] == 0 and done.returncode == 0, \
        json.dumps([r for r in result["rows"] if not r["same"]], indent=1)
    assert len(result["rows"]) >= 40
    assert ours_left("nl-shop-") == [] and os.listdir(tmp_path) == []
