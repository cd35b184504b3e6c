"""The CNI plugins on netlab's virtual namespaces: ``netlab.cni.invoke`` on a
ModelBackend, and the same executables with NETLAB_WORLD (file-locked, so
parallel calls are safe). Packets are traced through the World the plugins built.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from netlab import ops as O
from netlab.backends.model import ModelBackend
from netlab.cni import CniError, invoke
from netlab.dataplane.engine import trace

REPO = Path(__file__).resolve().parents[2]
CONF = {"cniVersion": "1.0.0", "name": "mynet", "type": "bridge", "bridge": "cni0",
        "isGateway": True, "ipMasq": True,
        "ipam": {"type": "host-local", "subnet": "10.22.0.0/16", "routes": [{"dst": "0.0.0.0/0"}]}}


@pytest.fixture
def backend():
    b = ModelBackend()
    b.apply(O.AddNode("host"))
    for name in ("red", "blue"):
        b.apply(O.AddNetns("host", name))
    return b


def add(backend, ns, conf=CONF, ipam=None, ifname="eth0"):
    return invoke(backend, "ADD", conf, container_id=ns, netns=f"/var/run/netns/{ns}",
                  ifname=ifname, node="host", data_dir_state=ipam)


def test_add_builds_what_the_kernel_would(backend):
    ipam: dict = {}
    r = add(backend, "red", ipam=ipam)
    assert [i["name"] for i in r["interfaces"]][::2] == ["cni0", "eth0"]
    assert r["interfaces"][1]["name"].startswith("veth") and len(r["interfaces"][1]["name"]) == 12
    assert r["ips"] == [{"interface": 2, "address": "10.22.0.2/16", "gateway": "10.22.0.1"}]
    w = backend.world
    red = w.namespaces["host/red"]
    assert [a.cidr for a in red.links["eth0"].addresses] == ["10.22.0.2/16"]
    assert ("default", "10.22.0.1") in [(rt.dst, rt.gateway) for rt in red.routes]
    host = w.namespaces["host/root"]
    assert [a.cidr for a in host.links["cni0"].addresses] == ["10.22.0.1/16"]
    assert host.sysctls.get("net.ipv4.ip_forward") == "1"
    post = host.tables["nat"].chains["POSTROUTING"].rules
    assert post == ['-s 10.22.0.2/32 -m comment --comment "name: \\"mynet\\" id: \\"red\\"" '
                    '-j CNI-578b157c2511838d1a6bfbd3']
    assert ipam["mynet"]["10.22.0.2"] == "red\r\neth0"


def test_ipam_files_live_in_the_world_by_default(backend):
    add(backend, "red")
    assert backend.world.files["host"]["/var/lib/cni/networks/mynet/10.22.0.2"] == "red\r\neth0"


def test_two_containers_reach_each_other_and_the_bridge(backend):
    add(backend, "red")
    add(backend, "blue")
    t = trace(backend.world, "host/red", "10.22.0.3")
    assert t.paths[0].verdict == "delivered"
    assert trace(backend.world, "host/blue", "10.22.0.1").paths[0].verdict == "delivered"


def test_del_leaves_nothing_and_is_idempotent(backend):
    ipam: dict = {}
    before = copy.deepcopy(backend.world.namespaces["host/red"].links)
    add(backend, "red", ipam=ipam)
    for _ in range(2):
        assert invoke(backend, "DEL", CONF, container_id="red", netns="/var/run/netns/red",
                      ifname="eth0", node="host", data_dir_state=ipam) == {}
    assert backend.world.namespaces["host/red"].links.keys() == before.keys()
    host = backend.world.namespaces["host/root"]
    assert [n for n in host.links if n.startswith("veth")] == []
    assert all(not c.startswith("CNI-") for c in host.tables["nat"].chains)
    assert host.tables["nat"].chains["POSTROUTING"].rules == []
    assert sorted(ipam["mynet"]) == ["last_reserved_ip.0"]


def test_del_after_the_netns_is_gone_removes_the_chain(backend):
    add(backend, "red")
    backend.apply(O.DelNetns("host", "red"))
    invoke(backend, "DEL", CONF, container_id="red", netns="/var/run/netns/red", ifname="eth0", node="host")
    assert all(not c.startswith("CNI-") for c in backend.world.namespaces["host/root"].tables["nat"].chains)


def test_failed_add_leaves_the_world_as_it_was(backend):
    ipam: dict = {}
    small = json.loads(json.dumps(CONF))
    small["ipam"]["subnet"] = "10.50.0.0/30"
    add(backend, "red", small, ipam)
    world = copy.deepcopy(backend.world.to_json())
    files = copy.deepcopy(ipam)
    with pytest.raises(CniError) as exc:
        add(backend, "blue", small, ipam)
    assert exc.value.code == 999 and "no IP addresses available" in exc.value.msg
    assert backend.world.to_json() == world and ipam == files


def test_check_after_add(backend):
    conf = json.loads(json.dumps(CONF))
    conf["ipam"]["routes"] = [{"dst": "10.99.0.0/16"}]
    r = add(backend, "red", conf)
    assert invoke(backend, "CHECK", dict(conf, prevResult=r), container_id="red",
                  netns="/var/run/netns/red", ifname="eth0", node="host") == {}
    backend.apply(O.FlushAddresses("host/red", "eth0"))
    with pytest.raises(CniError, match="Failed to match addr 10.22.0.2/16"):
        invoke(backend, "CHECK", dict(conf, prevResult=r), container_id="red",
               netns="/var/run/netns/red", ifname="eth0", node="host")


def test_results_in_old_versions(backend):
    r = add(backend, "red", dict(CONF, cniVersion="0.2.0"))
    assert r == {"cniVersion": "0.2.0", "ip4": {"ip": "10.22.0.2/16", "gateway": "10.22.0.1",
                                                "routes": [{"dst": "0.0.0.0/0"}]}, "dns": {}}


def test_bad_netns_and_bad_input_are_cni_errors(backend):
    with pytest.raises(CniError) as exc:
        add(backend, "nosuch")
    assert "failed to open netns" in exc.value.msg
    with pytest.raises(CniError) as exc:
        invoke(backend, "ADD", dict(CONF, name="../x"), container_id="red",
               netns="/var/run/netns/red", ifname="eth0", node="host")
    assert exc.value.code == 7
    assert [n for n in backend.world.namespaces["host/root"].links if n != "lo"] == []


# --- the executables with NETLAB_WORLD -------------------------------------------------------

def plugin(world: Path, command: str, cid: str, netns: str, conf=CONF, name="bridge"):
    env = {"NETLAB_WORLD": str(world), "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": f"/var/run/netns/{netns}", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
           "PATH": os.environ.get("PATH", "")}
    p = subprocess.run([sys.executable, "-SE", str(REPO / "cni_plugins" / name)],
                       input=json.dumps(conf), env=env, capture_output=True, text=True)
    return p.returncode, p.stdout


@pytest.fixture
def world_file(tmp_path):
    b = ModelBackend()
    b.apply(O.AddNode("host"))
    for i in range(12):
        b.apply(O.AddNetns("host", f"p{i}"))
    path = tmp_path / "world.json"
    path.write_text(json.dumps(b.world.to_json()))
    return path


def test_executable_on_a_world_file_in_parallel(world_file):
    with ThreadPoolExecutor(max_workers=6) as pool:
        outs = list(pool.map(lambda i: plugin(world_file, "ADD", f"p{i}", f"p{i}"), range(12)))
    assert all(rc == 0 for rc, _ in outs), outs
    ips = {json.loads(o)["ips"][0]["address"] for _, o in outs}
    assert len(ips) == 12
    from netlab.model import World
    w = World.from_json(json.loads(world_file.read_text()))
    assert len([n for n in w.namespaces["host/root"].links if n.startswith("veth")]) == 12
    for i in range(12):
        assert plugin(world_file, "DEL", f"p{i}", f"p{i}") == (0, "")
    files = json.loads(world_file.read_text())["files"]["host"]
    assert sorted(files) == ["/var/lib/cni/networks/mynet/last_reserved_ip.0",
                            "/var/lib/cni/networks/mynet/lock"]


def test_host_local_executable_shares_the_world_store(world_file):
    hl = {"cniVersion": "1.0.0", "name": "mynet", "ipam": CONF["ipam"]}
    rc, out = plugin(world_file, "ADD", "x", "p0", hl, name="host-local")
    assert rc == 0 and json.loads(out)["ips"][0]["address"] == "10.22.0.2/16"
    rc, out = plugin(world_file, "ADD", "p1", "p1")
    assert json.loads(out)["ips"][0]["address"] == "10.22.0.3/16"
