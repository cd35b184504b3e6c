"""Real listeners and real probes: `nc -l` in a lab is a socket in the lab's namespace that
logs the peers it sees; probes send ICMP echo, TCP connects and UDP datagrams between the
lab's namespaces and read the outcome as ping / nc would. `down` kills the listeners, also
after `kill -9` of `up`. Ipset and FlushConntrack reach the kernel's own tools.

The kernel is read back with other tools than the ones that built it (`ss`, `ipset list`,
`conntrack -L`, /proc).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel_host import SESSION
from test_linux_backend import REPO, machine_snapshot

pytestmark = pytest.mark.privileged

LAB = """\
netlab: 1
name: probes
title: red and blue on a veth pair, blue listens
steps:
  - title: build
    run: |
      ip netns add red
      ip netns add blue
      ip link add veth-red type veth peer name veth-blue
      ip link set veth-red netns red
      ip link set veth-blue netns blue
      ip -n red addr add 10.9.0.1/24 dev veth-red
      ip -n blue addr add 10.9.0.2/24 dev veth-blue
      ip -n red link set veth-red up
      ip -n blue link set veth-blue up
      ip -n red link set lo up
      ip -n blue link set lo up
      ip netns exec blue nc -l -p 80 &
      ip netns exec blue nc -l -u -p 53 &
      ip netns exec blue iptables -t nat -A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 10.9.0.2:80
"""

_count = iter(range(1, 1000))


@pytest.fixture
def prefix() -> str:
    return f"p{SESSION}{os.getpid() % 1000}{next(_count)}"


@pytest.fixture
def machine(kernel):
    before = machine_snapshot()
    yield before
    for name in machine_snapshot()["netns"]:             # type: ignore[union-attr]
        if name not in before["netns"] and name.startswith("nl-p"):  # type: ignore[operator]
            subprocess.run(["ip", "netns", "del", name], check=False)


def _lab(tmp_path: Path):
    from netlab.labs.loader import load_lab

    path = tmp_path / "probes.yaml"
    path.write_text(LAB)
    return load_lab(path)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_listeners_are_real_sockets_and_probes_classify_what_comes_back(machine, prefix,
                                                                        tmp_path):
    from netlab.backends.probe import KernelProbe
    from netlab.labs.kernel import KernelLab, down_lab

    lab = _lab(tmp_path)
    kl = KernelLab(lab, str(tmp_path), prefix)
    try:
        kl.build_topology()
        record = kl.run_step(lab.steps[0])
        assert record.stopped is None, kl.report.error
        red, blue = kl.real_of("red", "host"), kl.real_of("blue", "host")
        assert red == f"nl-{prefix}-host-red" and blue == f"nl-{prefix}-host-blue"
        listening = subprocess.run(["ip", "netns", "exec", blue, "ss", "-H", "-ltnu"],
                                   capture_output=True, text=True, check=True).stdout
        assert "0.0.0.0:80" in listening and "0.0.0.0:53" in listening, listening
        pids = [l.pid for l in kl.linux.listeners]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        kl.settle()
        probes = [KernelProbe(red, "10.9.0.2", "icmp"),
                  KernelProbe(red, "10.9.0.2", "tcp", 80, sport=43001),
                  KernelProbe(red, "10.9.0.2", "tcp", 8080, sport=43002),   # DNAT to :80
                  KernelProbe(red, "10.9.0.2", "tcp", 81, sport=43003),
                  KernelProbe(red, "10.9.0.2", "udp", 53, sport=43004),
                  KernelProbe(red, "10.9.0.2", "udp", 54, sport=43005),
                  KernelProbe(red, "10.7.0.1", "icmp"),                     # no route
                  KernelProbe(red, "10.9.0.7", "tcp", 80, sport=43006)]     # nobody: ARP fails
        seen = kl.probe_all(probes)
        got = [(s.outcome, kl.label_of(s.delivered_to), s.src, s.dst) for s in seen]
        assert got == [
            ("success", None, None, None),
            ("success", "host/blue", "10.9.0.1", "10.9.0.2:80"),
            ("success", "host/blue", "10.9.0.1", "10.9.0.2:80"),
            ("refused", None, None, None),
            ("success", "host/blue", "10.9.0.1", "10.9.0.2:53"),
            ("refused", None, None, None),
            ("unreachable", None, None, None),
            ("unreachable", None, None, None),
        ], [s.detail for s in seen]
        logged = [json.loads(line) for l in kl.linux.listeners
                  for line in Path(l.record).read_text().splitlines()]
        assert sorted(e["peer"][1] for e in logged) == [43001, 43002, 43004]
    finally:
        kl.close()
        down_lab(prefix, str(tmp_path))
    assert not any(_alive(p) for p in pids), "down kills the listeners"
    assert not (tmp_path / f"{prefix}.d").exists()
    assert machine_snapshot() == machine


def test_the_labs_own_curl_runs_against_the_real_listener(machine, prefix, tmp_path):
    from netlab.labs.kernel import KernelLab, down_lab
    from netlab.labs.loader import load_lab

    path = tmp_path / "curl.yaml"
    path.write_text(LAB + "      ip netns exec red curl -s http://10.9.0.2:8080/\n"
                          "      ip netns exec red ping -c 1 -W 1 10.9.0.1\n")
    lab = load_lab(path)
    kl = KernelLab(lab, str(tmp_path), prefix)
    try:
        kl.build_topology()
        record = kl.run_step(lab.steps[0])
        curl, ping = record.commands[-2], record.commands[-1]
        assert curl.ok and curl.output == "netlab: connected to 10.9.0.2:8080\n", curl
        assert ping.ok and "1 received" in ping.output, ping
    finally:
        kl.close()
        down_lab(prefix, str(tmp_path))
    assert machine_snapshot() == machine


def test_ipset_and_conntrack_flush_reach_the_kernel(machine, prefix, tmp_path):
    from netlab import ops as O
    from netlab.backends.journal import Journal
    from netlab.backends.linux import LinuxBackend
    from netlab.labs.kernel import down_lab

    for tool in ("ipset", "conntrack"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            pytest.skip(f"needs {tool} (apt-get install {tool})")
    backend = LinuxBackend(prefix, Journal.open_new(prefix, str(tmp_path)))
    try:
        backend.apply(O.AddNode("host"))
        real = backend.real_name("host/root")
        backend.apply(O.Ipset("host/root", ("create", "allowed", "hash:ip")))
        backend.apply(O.Ipset("host/root", ("add", "allowed", "10.1.2.3")))
        shown = subprocess.run(["ip", "netns", "exec", real, "ipset", "list", "allowed"],
                               capture_output=True, text=True, check=True).stdout
        assert "10.1.2.3" in shown
        from netlab.errors import CommandError

        with pytest.raises(CommandError, match="ipset"):
            backend.apply(O.Ipset("host/root", ("add", "nosuchset", "10.1.2.3")))
        # a conntrack entry of our own: a ping to ourselves over lo
        subprocess.run(["ip", "netns", "exec", real, "iptables", "-A", "OUTPUT", "-m",
                        "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"], check=True)
        subprocess.run(["ip", "netns", "exec", real, "ping", "-c1", "-W1", "127.0.0.1"],
                       capture_output=True, check=False)
        listed = subprocess.run(["ip", "netns", "exec", real, "conntrack", "-L"],
                                capture_output=True, text=True).stdout
        assert "127.0.0.1" in listed
        backend.apply(O.FlushConntrack("host/root"))
        listed = subprocess.run(["ip", "netns", "exec", real, "conntrack", "-L"],
                                capture_output=True, text=True).stdout
        assert "127.0.0.1" not in listed, listed
    finally:
        backend.close()
        down_lab(prefix, str(tmp_path))
    assert machine_snapshot() == machine


def test_a_missing_tool_is_named_with_its_debian_package(machine, prefix, tmp_path,
                                                        monkeypatch):
    from netlab import ops as O
    from netlab.backends.journal import Journal
    from netlab.backends.linux import LinuxBackend
    from netlab.errors import CommandError
    from netlab.labs.kernel import down_lab

    backend = LinuxBackend(prefix, Journal.open_new(prefix, str(tmp_path)))
    try:
        backend.apply(O.AddNode("host"))
        monkeypatch.setenv("PATH", str(tmp_path))
        with pytest.raises(CommandError) as ipset:
            backend.apply(O.Ipset("host/root", ("create", "s", "hash:ip")))
        with pytest.raises(CommandError) as conntrack:
            backend.apply(O.FlushConntrack("host/root"))
    finally:
        monkeypatch.undo()
        backend.close()
        down_lab(prefix, str(tmp_path))
    assert ipset.value.message.endswith("(apt-get install ipset)")
    assert conntrack.value.message.endswith("(apt-get install conntrack)")
    assert "\n" not in ipset.value.message
    assert machine_snapshot() == machine


SLOW_UP = """
import sys, time
from netlab.backends import linux
from netlab.labs.kernel import up_lab
from netlab.labs.loader import load_lab
add = linux.LinuxBackend._AddListener
def slow(self, op):
    add(self, op)
    print("listening", flush=True)
    time.sleep(30)           # a listener runs; kill -9 comes now
linux.LinuxBackend._AddListener = slow
up_lab(load_lab(sys.argv[1]), run_dir=sys.argv[2], name=sys.argv[3])
"""


def test_kill_9_of_up_with_a_listener_running_then_down_kills_it(machine, prefix, tmp_path):
    from netlab.backends.journal import Journal
    from netlab.labs.kernel import down_lab

    lab_file = tmp_path / "probes.yaml"
    lab_file.write_text(LAB)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", SLOW_UP, str(lab_file), str(tmp_path), prefix],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "listening", proc.stderr.read()  # type: ignore[union-attr]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        journal = Journal.load(prefix, str(tmp_path))
        pids = [int(e.name) for e in journal.entries if e.kind == "listener"]  # type: ignore
        assert len(pids) == 1 and _alive(pids[0]), "the listener outlives up"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        down_lab(prefix, str(tmp_path))
    deadline = time.monotonic() + 3
    while _alive(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pids[0])
    assert not (tmp_path / f"{prefix}.json").exists()
    assert machine_snapshot() == machine


def test_down_kills_a_listener_whose_namespace_someone_else_removed(machine, prefix, tmp_path):
    from netlab.labs.kernel import KernelLab, down_lab

    lab = _lab(tmp_path)
    kl = KernelLab(lab, str(tmp_path), prefix)
    try:
        kl.build_topology()
        assert kl.run_step(lab.steps[0]).stopped is None, kl.report.error
        pids = [l.pid for l in kl.linux.listeners]
        subprocess.run(["ip", "netns", "del", kl.real_of("blue", "host")], check=True)
        assert all(_alive(p) for p in pids), "the listeners keep the namespace alive"
    finally:
        kl.close()
        down_lab(prefix, str(tmp_path))
    deadline = time.monotonic() + 3
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)
    assert machine_snapshot() == machine
