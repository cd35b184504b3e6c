"""Helpers the multi-VM tests share: each "VM" is a namespace joined to the other by a
veth LAN, and the netlab CLI runs in it through `nsenter --net=...` (see
test_multinode.py for why not `ip netns exec`)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel_host import PROBE_CODE, link_settled, run


def netlab_argv() -> list[str]:
    """The netlab CLI of the interpreter running the tests."""
    script = Path(sys.executable).parent / "netlab"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from netlab.cli.main import main; main()"]


def ip_json(netns: str, *what: str) -> list[dict]:
    done = run(["ip", "-json", "-d", "-n", netns, *what])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout or "[]")


def wait_settled(namespaces: list[str], timeout: float = 5.0) -> None:
    """Until every link's operstate caught up with its carrier (KERNEL_NOTES)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(link_settled(l) for ns in namespaces for l in ip_json(ns, "link", "show")):
            return
        time.sleep(0.05)


def connect(netns: str, dst: str, port: int) -> str:
    """A TCP connect from ``netns``: the probe's one-word outcome."""
    done = run(["ip", "netns", "exec", netns, sys.executable, "-c", PROBE_CODE, "tcp", dst,
                str(port), "2.0", "-"])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Machines:
    """Two "VMs" (``vms``: node name -> namespace) joined by a veth LAN ``lan_iface``, and
    the netlab CLI run in each with its own journal directory under ``run_dir``."""

    def __init__(self, run_dir: Path, lab_file: Path, vms: dict[str, str],
                 lan_iface: str = "lan0", timeout: float = 120):
        self.run_dir, self.lab_file, self.vms = run_dir, lab_file, vms
        self.lan_iface, self.timeout = lan_iface, timeout
        self.listeners: list = []       # test listeners to stop when the machines go

    def netlab(self, node: str, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, NETLAB_RUN_DIR=str(self.run_dir / node))
        argv = ["nsenter", f"--net=/run/netns/{self.vms[node]}", *netlab_argv(), "real", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout,
                              env=env, check=False)

    def up(self, node: str) -> dict:
        done = self.netlab(node, "up", str(self.lab_file), "--node", node,
                           "--lan-iface", self.lan_iface, "--json")
        assert done.returncode == 0, f"real up --node {node}: {done.stdout}{done.stderr}"
        return json.loads(done.stdout)

    def down(self, node: str) -> subprocess.CompletedProcess:
        return self.netlab(node, "down", str(self.lab_file), "--node", node)

    def check_down_of_node1_leaves_node2(self, left) -> tuple[dict, dict]:
        """Both nodes up, then `down --node node1`: node1's namespaces are gone, node2's
        are not touched (``left()``: the namespaces there are now). Returns the two ups."""
        up1, up2 = self.up("node1"), self.up("node2")
        done = self.down("node1")
        assert done.returncode == 0, done.stderr
        now = left()
        assert not set(up1["namespaces"].values()) & now, "node1's namespaces are gone"
        assert set(up2["namespaces"].values()) <= now, "node2's are not touched"
        return up1, up2

    def peers_seen(self, node: str, port: int) -> list[str]:
        """The source addresses the lab's real listeners on ``port`` logged (JSON lines)."""
        return [json.loads(line)["peer"][0]
                for path in sorted((self.run_dir / node).glob(f"*.d/*-tcp-{port}.jsonl"))
                for line in path.read_text().splitlines() if line.strip()]

    @contextlib.contextmanager
    def running(self):
        """Make the two machines and their LAN; on leaving, take every node's part down
        and remove the machines."""
        try:
            for node, netns in self.vms.items():
                made = run(["ip", "netns", "add", netns])
                if made.returncode != 0:
                    pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
                (self.run_dir / node).mkdir()
            first, second = self.vms.values()
            made = run(["ip", "-n", first, "link", "add", self.lan_iface, "type", "veth",
                        "peer", "name", self.lan_iface, "netns", second])
            assert made.returncode == 0, made.stderr
            for netns in self.vms.values():
                assert run(["ip", "-n", netns, "link", "set", self.lan_iface, "up"]).returncode == 0
            yield self
        finally:
            for listener in self.listeners:
                listener.stop()
            for node in self.vms:
                if (self.run_dir / node).exists():
                    self.down(node)
            for netns in self.vms.values():
                run(["ip", "netns", "del", netns])
