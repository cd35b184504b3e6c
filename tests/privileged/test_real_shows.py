"""Show commands in real mode print the kernel's answer: a lab's `ip link show`, `ip -n
red route`, `iptables -t nat -S`, `bridge fdb show` run as the real tools in the step's
namespace (`lab run --backend real`), and what they print is exactly what the same tool
prints there; `ip netns` is not run (the real names are not the lab's).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from kernel_host import SESSION

pytestmark = pytest.mark.privileged

LAB = """netlab: 1
name: {name}
title: shows
steps:
  - title: a bridge, a namespace, a rule
    run: |
      ip netns add red
      ip link add v-net-0 type bridge
      ip link set dev v-net-0 up
      ip addr add 192.168.15.5/24 dev v-net-0
      ip link add veth-red type veth peer name veth-red-br
      ip link set veth-red netns red
      ip link set veth-red-br master v-net-0
      ip -n red addr add 192.168.15.1/24 dev veth-red
      ip -n red link set veth-red up
      ip link set veth-red-br up
      iptables -t nat -A POSTROUTING -s 192.168.15.0/24 -j MASQUERADE
  - title: look
    run: |
      ip link show v-net-0
      ip -n red route
      ip netns exec red ip -br addr
      iptables -t nat -S
      bridge fdb show br v-net-0
      ip netns
"""


def test_show_commands_print_what_the_kernel_prints(kernel, tmp_path, monkeypatch):
    from netlab.labs.kernel import KernelRunner
    from netlab.labs.loader import load_lab

    if subprocess.run(["iptables-save"], capture_output=True).returncode != 0:
        pytest.skip("iptables-save does not work here")
    name = f"nlrhs{SESSION}{os.getpid() % 1000}"
    path = tmp_path / "shows.yaml"
    path.write_text(LAB.format(name=name))
    monkeypatch.setenv("NETLAB_RUN_DIR", str(tmp_path))
    runner = KernelRunner(load_lab(path))
    host, red = f"nl-{name}-host", f"nl-{name}-host-red"
    try:
        records = list(runner.steps(check_expect=False))
        assert records[0].stopped is None
        shown = {c.cmd: c.output for c in records[1].commands}

        def real(netns: str, *argv: str) -> str:
            return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True,
                                  text=True, check=True).stdout

        assert shown["ip link show v-net-0"] == real(host, "ip", "link", "show", "v-net-0")
        assert shown["ip -n red route"] == real(red, "ip", "route")
        assert "192.168.15.0/24 dev veth-red proto kernel scope link src 192.168.15.1" \
            in shown["ip -n red route"]
        assert shown["ip netns exec red ip -br addr"] == real(red, "ip", "-br", "addr")
        assert shown["iptables -t nat -S"] == real(host, "iptables", "-t", "nat", "-S")
        assert "-A POSTROUTING -s 192.168.15.0/24 -j MASQUERADE" in shown["iptables -t nat -S"]
        assert shown["bridge fdb show br v-net-0"] == \
            real(host, "bridge", "fdb", "show", "br", "v-net-0")
        assert name not in shown["ip netns"], "ip netns is not the machine's list"
        assert runner.kl.report.shows_run == 5
    finally:
        runner.close()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"nl-{name}-" not in left
