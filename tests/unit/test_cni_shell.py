"""CNI typed in the lab shell: the plugin with CNI_* variables and `< FILE`, the seed's
`bridge add ID NETNS`, cnitool, `ls`/`cat` of a node's files, and the lab `files:` key."""

from __future__ import annotations

import json

import pytest

from netlab import ops as O
from netlab.backends.model import ModelBackend
from netlab.commands import Shell
from netlab.errors import LabError
from netlab.labs.loader import load_lab

CONF = {"cniVersion": "1.0.0", "name": "mynet", "type": "bridge", "bridge": "cni0",
        "isGateway": True, "ipMasq": True,
        "ipam": {"type": "host-local", "subnet": "10.22.0.0/16", "routes": [{"dst": "0.0.0.0/0"}]}}
PLUGIN = ("CNI_COMMAND={cmd} CNI_CONTAINERID={cid} CNI_NETNS=/var/run/netns/{cid} CNI_IFNAME=eth0 "
          "CNI_PATH=/opt/cni/bin cni_plugins/bridge < /etc/cni/net.d/10-bridge.conf")


@pytest.fixture
def shell():
    b = ModelBackend()
    b.apply(O.AddNode("host"))
    b.apply(O.WriteFile("host", "/etc/cni/net.d/10-bridge.conf", json.dumps(CONF)))
    s = Shell(b)
    for ns in ("red", "blue"):
        assert s.run(f"ip netns add {ns}").ok
    return s


def test_plugin_line_prints_the_result_and_changes_the_world(shell):
    r = shell.run(PLUGIN.format(cmd="ADD", cid="red"))
    assert r.ok, r.error
    assert json.loads(r.output)["ips"][0]["address"] == "10.22.0.2/16"
    assert "inet 10.22.0.2/16" in shell.run("ip -n red addr show eth0").output
    assert shell.run("ls /var/lib/cni/networks/mynet").output == "10.22.0.2\nlast_reserved_ip.0\nlock\n"
    assert shell.run("cat /var/lib/cni/networks/mynet/10.22.0.2").output == "red\r\neth0"


def test_a_failed_plugin_call_prints_the_error_object_and_changes_nothing(shell):
    before = json.dumps(shell.world.to_json(), sort_keys=True)
    r = shell.run(PLUGIN.format(cmd="ADD", cid="nosuch"))
    assert not r.ok and r.status == 1
    assert json.loads(r.output)["code"] == 999
    assert r.error.startswith('failed to open netns "/var/run/netns/nosuch"')
    assert json.dumps(shell.world.to_json(), sort_keys=True) == before


def test_seed_shorthand_and_del(shell):
    assert shell.run("bridge add red /var/run/netns/red").ok
    assert shell.run("bridge add blue /var/run/netns/blue").ok
    assert "10.22.0.3" in shell.run("ip -n blue addr").output
    for _ in range(2):
        assert shell.run("bridge del blue /var/run/netns/blue").ok
    assert shell.run("ls /var/lib/cni/networks/mynet").output == "10.22.0.2\nlast_reserved_ip.0\nlock\n"
    assert shell.run("bridge link").ok        # iproute2's bridge command is still there


def test_cnitool_finds_the_network_by_name(shell):
    r = shell.run("cnitool add mynet /var/run/netns/red")
    assert r.ok, r.error
    cid = shell.world.files["host"]["/var/lib/cni/networks/mynet/10.22.0.2"].split("\r\n")[0]
    assert cid.startswith("cnitool-") and len(cid) == len("cnitool-") + 20
    assert shell.run("cnitool del mynet /var/run/netns/red").ok
    assert not shell.run("cnitool add nonet /var/run/netns/red").ok


def test_missing_config_file(shell):
    r = shell.run("CNI_COMMAND=ADD CNI_CONTAINERID=red CNI_NETNS=/var/run/netns/red CNI_IFNAME=eth0 "
                  "CNI_PATH=/x cni_plugins/bridge < /etc/cni/net.d/nope.conf")
    assert not r.ok and "No such file or directory" in r.error


def test_lab_files_key(tmp_path):
    good = tmp_path / "x.yaml"
    good.write_text("netlab: 1\nname: x\ntitle: X\nfiles:\n  /etc/a.conf: |\n    hello\n")
    assert load_lab(good, shown_as="x.yaml").files == {"/etc/a.conf": "hello\n"}
    good.write_text("netlab: 1\nname: x\ntitle: X\nfiles:\n  etc/a.conf: hi\n")
    with pytest.raises(LabError, match="x.yaml:5: a file in 'files' needs an absolute path"):
        load_lab(good, shown_as="x.yaml")
