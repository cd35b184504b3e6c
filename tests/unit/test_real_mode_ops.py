"""Real mode, without root: every Op has a handler on both backends, and a CNI line's
environment and configuration are mapped to what netlab made (never the machine's
/etc, /var/lib or /var/run/netns)."""

from __future__ import annotations

import json
import os

import pytest

from netlab import ops as O


def all_ops() -> list[type]:
    return sorted((c for c in vars(O).values()
                   if isinstance(c, type) and issubclass(c, O.Op) and c is not O.Op),
                  key=lambda c: c.__name__)


@pytest.mark.parametrize("op", all_ops(), ids=lambda c: c.__name__)
def test_every_op_has_a_handler_on_both_backends(op):
    from netlab.backends.linux import LinuxBackend
    from netlab.backends.model import ModelBackend

    assert callable(getattr(ModelBackend, "_" + op.__name__, None)), "the model"
    assert callable(getattr(LinuxBackend, "_" + op.__name__, None)), "the kernel"


class _Linux:
    """What realcni reads of a LinuxBackend: the names it made and where files go."""

    def __init__(self, run: str):
        self.names = {"host/root": "nl-t-host", "host/red": "nl-t-host-red"}
        self.run = run

    def file_path(self, node: str, path: str) -> str:
        return os.path.join(self.run, "files", node, path.lstrip("/"))


class _Lab:
    def __init__(self, run: str):
        self.linux = _Linux(run)


def test_cni_env_maps_the_netns_and_the_plugin_path(tmp_path):
    from netlab.errors import CommandError
    from netlab.labs.realcni import plugins_dir, real_env

    kl = _Lab(str(tmp_path))
    env = real_env(kl, "host", {"CNI_COMMAND": "ADD", "CNI_NETNS": "/var/run/netns/red",
                                "CNI_PATH": "/opt/cni/bin", "CNI_IFNAME": "eth0",
                                "NETLAB_WORLD": "/x.json"})
    assert env["CNI_NETNS"] == "/run/netns/nl-t-host-red"
    assert env["CNI_PATH"] == str(plugins_dir())
    assert (plugins_dir() / "bridge").exists() and (plugins_dir() / "host-local").exists()
    assert "NETLAB_WORLD" not in env and env["CNI_COMMAND"] == "ADD"
    with pytest.raises(CommandError, match="no namespace 'blue'"):
        real_env(kl, "host", {"CNI_NETNS": "/run/netns/blue"})


def test_cni_conf_is_read_from_the_run_dir_and_its_data_dir_moved_there(tmp_path):
    from netlab.labs.realcni import real_conf

    kl = _Lab(str(tmp_path))
    conf_path = tmp_path / "files/host/etc/cni/net.d/10-bridge.conf"
    conf_path.parent.mkdir(parents=True)
    conf_path.write_text(json.dumps({"name": "mynet", "type": "bridge",
                                     "ipam": {"type": "host-local", "subnet": "10.9.0.0/16"}}))
    conf = json.loads(real_conf(kl, "host", "{}", "/etc/cni/net.d/10-bridge.conf"))
    assert conf["ipam"]["subnet"] == "10.9.0.0/16"          # the file, not the given text
    assert conf["ipam"]["dataDir"] == str(tmp_path / "files/host/var/lib/cni/networks")
    mine = json.loads(real_conf(kl, "host", json.dumps(
        {"name": "n", "ipam": {"type": "host-local", "dataDir": "/srv/ipam"}}), None))
    assert mine["ipam"]["dataDir"] == str(tmp_path / "files/host/srv/ipam")
    assert real_conf(kl, "host", "not json", None) == "not json"
