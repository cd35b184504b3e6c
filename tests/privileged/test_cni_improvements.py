"""Where our plugins are better than the reference (README: "CNI plugins: better than
the reference"), concurrency, a plugin killed mid-ADD, and input that tries to leave
its place. Each improvement test also runs the reference where it shows the defect,
so the test documents it (and would notice a fixed reference).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cni_harness import OURS, REFERENCE, Lab, reference_available

pytestmark = pytest.mark.privileged

CONF = {"cniVersion": "1.0.0", "name": "mynet", "type": "bridge", "bridge": "cni0",
        "isGateway": True, "ipMasq": True,
        "ipam": {"type": "host-local", "subnet": "10.22.0.0/16", "routes": [{"dst": "0.0.0.0/0"}]}}


@pytest.fixture
def lab(kernel, tmp_path):
    lab = Lab(tmp_path)
    yield lab
    lab.close()


def needs_reference():
    if not reference_available():
        pytest.skip("needs the reference plugins: apt-get install -y containernetworking-plugins")


def cni_chains(lab) -> list[str]:
    return [l for l in lab.nat() if "CNI-" in l]


def test_del_after_netns_is_gone_removes_the_masquerade_chain(lab):
    assert lab.call(OURS / "bridge", "ADD", CONF)[0] == 0
    assert cni_chains(lab)
    path = lab.netns_path(0)
    subprocess.run(["ip", "netns", "del", lab.containers.pop(0)], check=True)
    rc, out = lab.call(OURS / "bridge", "DEL", CONF, ctr=path)
    assert (rc, out) == (0, "")
    assert cni_chains(lab) == []
    assert lab.data_dir() == {"mynet/last_reserved_ip.0": ("10.22.0.2", "0o644"),
                              "mynet/lock": ("", "0o750")}


def test_reference_leaks_the_chain_when_the_netns_is_gone(lab):
    needs_reference()
    assert lab.call(REFERENCE / "bridge", "ADD", CONF)[0] == 0
    path = lab.netns_path(0)
    subprocess.run(["ip", "netns", "del", lab.containers.pop(0)], check=True)
    assert lab.call(REFERENCE / "bridge", "DEL", CONF, ctr=path)[0] == 0
    assert cni_chains(lab)        # the defect ours fixes


def test_second_interface_keeps_first_ones_masquerading(lab):
    second = json.loads(json.dumps(CONF))
    second["bridge"] = "cni1"
    second["ipam"]["subnet"] = "10.23.0.0/16"
    del second["ipam"]["routes"]          # one default route per container
    assert lab.call(OURS / "bridge", "ADD", CONF)[0] == 0
    assert lab.call(OURS / "bridge", "ADD", second, ifname="eth1")[0] == 0
    rc, out = lab.call(OURS / "bridge", "DEL", second, ifname="eth1")
    assert (rc, out) == (0, "")
    rules = cni_chains(lab)
    assert any("-s 10.22.0.2/32" in r for r in rules)
    assert any("MASQUERADE" in r for r in rules)
    assert not any("10.23." in r for r in rules)
    assert lab.call(OURS / "bridge", "DEL", CONF)[0] == 0
    assert cni_chains(lab) == []


def test_reference_second_interface_del_breaks_the_first(lab):
    needs_reference()
    second = json.loads(json.dumps(CONF))
    second["bridge"] = "cni1"
    second["ipam"]["subnet"] = "10.23.0.0/16"
    del second["ipam"]["routes"]          # one default route per container
    lab.call(REFERENCE / "bridge", "ADD", CONF)
    lab.call(REFERENCE / "bridge", "ADD", second, ifname="eth1")
    rc, out = lab.call(REFERENCE / "bridge", "DEL", second, ifname="eth1")
    assert rc == 1 and ("CHAIN_DEL" in out or "busy" in out.lower())
    assert not any("MASQUERADE" in r for r in cni_chains(lab))


def state_snapshot(lab):
    s = lab.state()
    return {"links": s["links"], "nat": s["nat"], "data": s["data"],
            "ctr": s["containers"]["c0"]["links"]}


@pytest.mark.parametrize("how", ["exhausted", "bridge-address", "bad-ipam", "route-exists"])
def test_failed_add_leaves_nothing_behind(lab, how):
    conf = json.loads(json.dumps(CONF))
    first = json.loads(json.dumps(CONF))
    if how == "exhausted":
        conf["ipam"]["subnet"] = first["ipam"]["subnet"] = "10.50.0.0/30"
    elif how == "bridge-address":
        conf["ipam"]["subnet"] = "10.40.0.0/16"
    elif how == "bad-ipam":
        conf["ipam"]["rangeStart"] = "10.99.0.1"
    elif how == "route-exists":
        conf["isDefaultGateway"] = True       # plus an IPAM default route without gw: EEXIST
    assert lab.call(OURS / "bridge", "ADD", first, cid="keep", ctr=1)[0] == 0
    lab.container(0)
    before = state_snapshot(lab)
    rc, out = lab.call(OURS / "bridge", "ADD", conf)
    assert rc == 1, out
    assert state_snapshot(lab) == before      # no veth, no reservation, last_reserved_ip as it was


def test_failed_add_removes_a_bridge_it_created(lab):
    conf = json.loads(json.dumps(CONF))
    conf["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}]
    conf["isDefaultGateway"] = True
    rc, _ = lab.call(OURS / "bridge", "ADD", conf)
    assert rc == 1
    assert lab.state()["links"] == []
    assert "mynet/10.22.0.2" not in lab.data_dir()
    assert "mynet/last_reserved_ip.0" not in lab.data_dir()


def test_check_right_after_add_with_a_route_without_gw(lab):
    conf = json.loads(json.dumps(CONF))
    conf["cniVersion"] = "1.0.0"
    conf["ipam"]["routes"] = [{"dst": "10.99.0.0/16"}]
    rc, out = lab.call(OURS / "bridge", "ADD", conf)
    assert rc == 0
    rc, out2 = lab.call(OURS / "bridge", "CHECK", dict(conf, prevResult=json.loads(out)))
    assert (rc, out2) == (0, "")
    if reference_available():
        lab2 = Lab(lab.data.parent)
        try:
            rc, out = lab2.call(REFERENCE / "bridge", "ADD", conf)
            rc, out2 = lab2.call(REFERENCE / "bridge", "CHECK", dict(conf, prevResult=json.loads(out)))
            assert rc == 1 and "Expected Route" in out2     # the reference's defect
        finally:
            lab2.close()


def test_check_fails_when_the_address_is_gone(lab):
    rc, out = lab.call(OURS / "bridge", "ADD", CONF)
    subprocess.run(["ip", "-n", lab.container(0), "addr", "flush", "dev", "eth0"], check=True)
    rc, out2 = lab.call(OURS / "bridge", "CHECK", dict(CONF, prevResult=json.loads(out)))
    assert rc == 1 and "Failed to match addr 10.22.0.2/16" in out2


# --- concurrency -----------------------------------------------------------------------

def parallel_hostlocal(lab, subnet: str, n: int):
    conf = {"cniVersion": "1.0.0", "name": "par",
            "ipam": {"type": "host-local", "subnet": subnet}}
    with ThreadPoolExecutor(max_workers=32) as pool:
        return list(pool.map(lambda i: lab.call(OURS / "host-local", "ADD", conf, cid=f"p{i}",
                                                ctr="/x"), range(n))), conf


def test_200_parallel_adds_get_200_distinct_ips(lab):
    outs, conf = parallel_hostlocal(lab, "10.80.0.0/24", 200)
    assert all(rc == 0 for rc, _ in outs), [o for rc, o in outs if rc]
    ips = {json.loads(o)["ips"][0]["address"] for _, o in outs}
    assert len(ips) == 200
    with ThreadPoolExecutor(max_workers=32) as pool:
        dels = list(pool.map(lambda i: lab.call(OURS / "host-local", "DEL", conf, cid=f"p{i}",
                                                ctr="/x"), range(200)))
    assert all(d == (0, "") for d in dels)
    assert sorted(lab.data_dir()) == ["par/last_reserved_ip.0", "par/lock"]


def test_20_parallel_adds_into_a_28(lab):
    outs, conf = parallel_hostlocal(lab, "10.81.0.0/28", 20)
    ok = [json.loads(o)["ips"][0]["address"] for rc, o in outs if rc == 0]
    bad = [json.loads(o) for rc, o in outs if rc != 0]
    assert len(ok) == len(set(ok)) == 13            # .2 - .14: 16 minus network, gateway, broadcast
    assert len(bad) == 7
    assert all(e == {"code": 999, "msg": "failed to allocate for range 0: no IP addresses "
                     "available in range set: 10.81.0.1-10.81.0.14"} for e in bad)
    for i in range(20):
        assert lab.call(OURS / "host-local", "DEL", conf, cid=f"p{i}", ctr="/x")[0] == 0
    assert sorted(lab.data_dir()) == ["par/last_reserved_ip.0", "par/lock"]


def test_kill_9_mid_add_then_del_leaves_nothing(lab):
    """Kill the plugin at many points of its ADD; the DEL that follows must clean up."""
    for delay_ms in (3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 40, 60):
        lab.container(0)
        env = ["CNI_COMMAND=ADD", "CNI_CONTAINERID=k", f"CNI_NETNS={lab.netns_path(0)}",
               "CNI_IFNAME=eth0", f"CNI_PATH={OURS}"]
        argv = ["ip", "netns", "exec", lab.host, "env", *env, str(OURS / "bridge")]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        proc.stdin.write(json.dumps(lab.fix(CONF)).encode())
        proc.stdin.close()
        time.sleep(delay_ms / 1000)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        assert lab.call(OURS / "bridge", "DEL", CONF, cid="k") == (0, "")
        s = lab.state()
        assert [l for l in s["links"] if l["kind"] == "veth"] == [], delay_ms
        assert s["containers"]["c0"]["links"] == [], delay_ms
        assert cni_chains(lab) == [], delay_ms
        assert [k for k in lab.data_dir() if "10.22." in k or ".reserving" in k] == [], delay_ms


# --- bad input stays in its place --------------------------------------------------------

@pytest.mark.parametrize("name", ["../escape", "/etc", "a/../../b", ".."])
def test_network_name_that_leaves_the_data_dir_is_refused(lab, name):
    conf = {"cniVersion": "1.0.0", "name": name, "ipam": {"type": "host-local", "subnet": "10.9.0.0/24"}}
    rc, out = lab.call(OURS / "host-local", "ADD", conf, ctr="/x")
    assert rc == 1
    assert json.loads(out)["code"] == 7
    assert lab.data_dir() == {}
    assert not (lab.data.parent / "escape").exists()


@pytest.mark.parametrize("cid", ["../x", "/etc/passwd", "a/b"])
def test_container_id_that_leaves_its_place_is_refused(lab, cid):
    conf = {"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local", "subnet": "10.9.0.0/24"}}
    rc, out = lab.call(OURS / "host-local", "ADD", conf, cid=cid, ctr="/x")
    assert (rc, json.loads(out)["code"]) == (1, 4)


def test_files_are_not_created_through_symlinks(lab, tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep")
    conf = {"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local", "subnet": "10.9.0.0/24"}}
    d = lab.data / "n"
    d.mkdir()
    (d / "10.9.0.2").symlink_to(target)
    (d / "last_reserved_ip.0").symlink_to(target)
    rc, out = lab.call(OURS / "host-local", "ADD", conf, ctr="/x")
    assert target.read_text() == "keep"
    assert rc == 1 or json.loads(out)["ips"][0]["address"] != "10.9.0.2/24"
    os.unlink(d / "last_reserved_ip.0")
    (d / "lock").unlink(missing_ok=True)
    (d / "lock").symlink_to(target)
    rc, out = lab.call(OURS / "host-local", "ADD", conf, cid="b", ctr="/x")
    assert rc == 1 and target.read_text() == "keep"


def test_del_after_the_interface_is_gone_removes_its_rules(lab):
    """The reference skips the masquerade teardown when the link is already gone."""
    second = json.loads(json.dumps(CONF))
    second["bridge"] = "cni1"
    second["ipam"]["subnet"] = "10.23.0.0/16"
    del second["ipam"]["routes"]
    assert lab.call(OURS / "bridge", "ADD", CONF)[0] == 0
    assert lab.call(OURS / "bridge", "ADD", second, ifname="eth1")[0] == 0
    subprocess.run(["ip", "-n", lab.container(0), "link", "del", "eth1"], check=True)
    assert lab.call(OURS / "bridge", "DEL", second, ifname="eth1") == (0, "")
    rules = cni_chains(lab)
    assert not any("10.23." in r for r in rules)
    assert any("-s 10.22.0.2/32" in r for r in rules)      # eth0's masquerading stays


def test_check_of_an_l2_only_attachment(lab):
    l2 = {"cniVersion": "1.0.0", "name": "l2", "type": "bridge", "bridge": "br-l2", "ipam": {}}
    rc, out = lab.call(OURS / "bridge", "ADD", l2)
    assert rc == 0
    assert lab.call(OURS / "bridge", "CHECK", dict(l2, prevResult=json.loads(out))) == (0, "")


def test_gc_and_status_from_spec_1_1_0(lab):
    conf = json.loads(json.dumps(CONF))
    conf["cniVersion"] = "1.1.0"
    conf["ipam"]["subnet"] = "10.70.0.0/30"          # one usable address
    assert lab.call(OURS / "bridge", "ADD", conf, cid="keep")[0] == 0
    rc, out = lab.call(OURS / "bridge", "STATUS", conf, drop=("CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"))
    assert (rc, json.loads(out)["code"]) == (1, 50)      # the pool is exhausted
    gc = dict(conf, **{"cni.dev/valid-attachments": []})
    assert lab.call(OURS / "bridge", "GC", gc, drop=("CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS")) == (0, "")
    assert "mynet/10.70.0.2" not in lab.data_dir()
    assert cni_chains(lab) == []
    assert lab.call(OURS / "bridge", "STATUS", conf, drop=("CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS")) == (0, "")


def test_del_after_netns_is_gone_removes_the_macspoofchk_chains(lab):
    conf = dict(CONF, macspoofchk=True)
    assert lab.call(OURS / "bridge", "ADD", conf)[0] == 0
    listing = lambda: subprocess.run(["ip", "netns", "exec", lab.host, "nft", "list", "table",  # noqa: E731
                                      "bridge", "nat"], capture_output=True, text=True).stdout
    assert "cni-br-iface-ctr1-eth0" in listing()
    path = lab.netns_path(0)
    subprocess.run(["ip", "netns", "del", lab.containers.pop(0)], check=True)
    assert lab.call(OURS / "bridge", "DEL", conf, ctr=path) == (0, "")
    assert "cni-br-iface" not in listing() and "macspoofchk" not in listing()


def test_parallel_bridge_adds_share_one_bridge(lab):
    """30 containers ADDed at once through the bridge plugin (with ipMasq): one bridge,
    30 distinct addresses, 30 chains; the DELs leave no veth, rule or reservation."""
    n = 30
    for i in range(n):
        lab.container(i)
    with ThreadPoolExecutor(max_workers=10) as pool:
        outs = list(pool.map(lambda i: lab.call(OURS / "bridge", "ADD", CONF, cid=f"par{i}", ctr=i),
                             range(n)))
    assert all(rc == 0 for rc, _ in outs), [o for rc, o in outs if rc]
    assert len({json.loads(o)["ips"][0]["address"] for _, o in outs}) == n
    s = lab.state()
    assert [l["name"] for l in s["links"] if l["kind"] == "bridge"] == ["cni0"]
    assert len([l for l in s["links"] if l["kind"] == "veth" and l["master"] == "cni0"]) == n
    assert len([r for r in s["nat"] if r.startswith("-A POSTROUTING")]) == n
    with ThreadPoolExecutor(max_workers=10) as pool:
        dels = list(pool.map(lambda i: lab.call(OURS / "bridge", "DEL", CONF, cid=f"par{i}", ctr=i),
                             range(n)))
    assert all(d == (0, "") for d in dels), dels
    s = lab.state()
    assert [l for l in s["links"] if l["kind"] == "veth"] == []
    assert cni_chains(lab) == []
    assert sorted(lab.data_dir()) == ["mynet/last_reserved_ip.0", "mynet/lock"]
