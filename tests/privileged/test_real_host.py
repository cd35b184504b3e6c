"""`netlab real up LAB --host --yes-modify-host`: the lab's first node is the namespace
netlab runs in. These tests never touch this machine's own namespace: netlab runs
inside a fresh namespace of ours (``nlrh-…``, entered with setns only, as ``nsenter
--net`` does), which is "the host" for it. That namespace holds state of its own
first (a bridge with an address, a veth end that is down, a route, filter and nat
rules, a chain, ip_forward 0 with one device forwarding); after `down`, also after
`kill -9` part-way through `up`, it must be exactly as before.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel_host import SESSION

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
_count = iter(range(1, 1000))


def _run(argv: list[str], netns: str | None = None, **kw) -> subprocess.CompletedProcess:
    """argv in namespace ``netns`` (setns only: the mount namespace stays ours)."""
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY) if netns else None

    def enter() -> None:
        if fd is not None and _libc.setns(fd, CLONE_NEWNET) != 0:
            os._exit(126)
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 120),
                              check=False, preexec_fn=enter, **kw)
    finally:
        if fd is not None:
            os.close(fd)


def _ok(argv: list[str], netns: str | None = None) -> str:
    done = _run(argv, netns)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


NETLAB = [sys.executable, "-c", "from netlab.cli.main import main; main()"]


def netlab(host: str, run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NETLAB_RUN_DIR=str(run_dir),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return _run([*NETLAB, *args], host, env=env)


# --- the fake host ---------------------------------------------------------------------------

SETUP = [
    "ip link set lo up",
    "ip link add nlrhbr0 type bridge",
    "ip addr add 10.99.0.1/24 dev nlrhbr0",
    "ip link set nlrhbr0 up",
    "ip link add nlrhv0 type veth peer name nlrhv1",
    "ip link set nlrhv0 up",             # once up, then down: as most links of a machine
    "ip link set nlrhv0 down",
    "ip route add 10.98.0.0/24 via 10.99.0.254",
    "iptables -A INPUT -s 10.97.0.0/16 -j ACCEPT",
    "iptables -N USERCHAIN",
    "iptables -A USERCHAIN -j RETURN",
    "iptables -t nat -A PREROUTING -d 10.95.0.1/32 -j DNAT --to-destination 10.99.0.2",
    "sysctl -qw net.ipv4.conf.nlrhbr0.forwarding=1",
    "sysctl -qw net.ipv4.conf.all.accept_redirects=0",
]


def host_state(host: str) -> dict[str, object]:
    """What must be the same before `up` and after `down` (iptables without counters)."""
    save = _ok(["iptables-save"], host)
    sysctls = _ok(["sh", "-c", "grep -r . /proc/sys/net/ipv4/conf/*/forwarding "
                   "/proc/sys/net/ipv4/conf/*/accept_redirects /proc/sys/net/ipv4/ip_forward "
                   "/proc/sys/net/ipv4/conf/*/rp_filter"], host)
    return {
        "link": json.loads(_ok(["ip", "-json", "link"], host)),
        "addr": json.loads(_ok(["ip", "-json", "addr"], host)),
        "route": json.loads(_ok(["ip", "-json", "route", "show", "table", "all"], host)),
        "iptables": [re.sub(r"\[\d+:\d+\]", "", l) for l in save.splitlines()
                     if not l.startswith("#")],
        "sysctl": sorted(sysctls.splitlines()),
    }


def same(after: dict, before: dict) -> None:
    """after == before, part by part, with a readable diff when not."""
    import difflib

    for part in before:
        a = json.dumps(after[part], indent=1, sort_keys=True).splitlines()
        b = json.dumps(before[part], indent=1, sort_keys=True).splitlines()
        assert a == b, f"{part}:\n" + "\n".join(difflib.unified_diff(b, a, "before", "after",
                                                                    lineterm="", n=6))


def ours() -> list[str]:
    names = [l.split()[0] for l in _ok(["ip", "netns", "list"]).splitlines() if l.strip()]
    return sorted(n for n in names if n.startswith(("nlrh", "nl-nlrh")))


@pytest.fixture
def fake_host(kernel, tmp_path):
    """A namespace netlab takes for the machine's own; removed afterwards, with every
    namespace a lab of ours left."""
    if _run(["iptables-save"]).returncode != 0:
        pytest.skip("iptables-save does not work here")
    before = ours()
    name = f"nlrh-h{SESSION}{os.getpid() % 1000}{next(_count)}"
    _ok(["ip", "netns", "add", name])
    try:
        for line in SETUP:
            _ok(line.split(), name)
        deadline = time.monotonic() + 10        # IPv6 DAD done: addresses stop changing
        while _ok(["ip", "-6", "addr", "show", "tentative"], name).strip() and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        yield name
    finally:
        for left in ours():
            if left not in before:
                subprocess.run(["ip", "netns", "del", left], check=False)
    assert ours() == before


def lab_file(tmp_path: Path, ref: str, name: str) -> Path:
    """A bundled lab (or YAML text) under a name of ours: its namespaces are nl-<name>-…"""
    if ref.endswith(".yaml") or "\n" in ref:
        text = ref
    else:
        from netlab.labs import find_lab

        text = Path(find_lab(ref)).read_text()
    text = re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.M)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def lab_name() -> str:
    return f"nlrh{SESSION}{next(_count)}"


# --- up, look, down -------------------------------------------------------------------------

def test_lab_05_on_the_host_then_down_restores_it_exactly(fake_host, tmp_path):
    name = lab_name()
    path = lab_file(tmp_path, "05", name)
    before, spaces = host_state(fake_host), ours()
    up = netlab(fake_host, tmp_path, "real", "up", str(path), "--host", "--yes-modify-host")
    try:
        assert up.returncode == 0, up.stderr
        assert "this namespace (--host)" in up.stdout
        assert f"nl-{name}-host" not in ours(), "the host node is no namespace of its own"
        addrs = {(a["ifname"], i["local"], i["prefixlen"]) for a in
                 json.loads(_ok(["ip", "-json", "addr"], fake_host))
                 for i in a["addr_info"] if i["family"] == "inet"}
        assert {("v-net-0", "192.168.15.5", 24), ("eth0", "192.168.1.2", 24),
                ("nlrhbr0", "10.99.0.1", 24)} <= addrs
        nat = _ok(["iptables-save", "-t", "nat"], fake_host)
        assert "-A POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 -j MASQUERADE" in nat
        assert "-A PREROUTING -d 10.95.0.1/32 -j DNAT --to-destination 10.99.0.2" in nat
        assert _ok(["sysctl", "-n", "net.ipv4.ip_forward"], fake_host).strip() == "1"
        assert "10.98.0.0/24 via 10.99.0.254" in _ok(["ip", "route"], fake_host)
        # the host reaches node2 over the lab's LAN, and red through the host's NAT
        assert _run(["ping", "-c1", "-W2", "192.168.1.3"], fake_host).returncode == 0
        red = f"nl-{name}-host-red"
        assert _run(["ping", "-c1", "-W2", "192.168.1.3"], red).returncode == 0
        shown = netlab(fake_host, tmp_path, "real", "exec", str(path), "host", "--",
                       "ip", "-br", "addr", "show", "v-net-0")
        assert shown.returncode == 0 and "192.168.15.5/24" in shown.stdout, shown
        again = netlab(fake_host, tmp_path, "real", "up", str(path), "--host",
                       "--yes-modify-host")
        assert again.returncode == 2 and "up already" in again.stderr
        elsewhere = netlab(red, tmp_path, "real", "exec", str(path), "host", "--", "true")
        assert elsewhere.returncode == 2 and "not this one" in elsewhere.stderr
    finally:
        down = netlab(fake_host, tmp_path, "real", "down", str(path))
    assert down.returncode == 0, down.stderr
    assert "changes to the host's namespace" in down.stdout
    same(host_state(fake_host), before)
    assert ours() == spaces
    assert not (tmp_path / f"{name}.json").exists()


CHANGES = """netlab: 1
name: x
title: changes to what the host has
steps:
  - title: the host's own links, routes, rules and sysctls
    run: |
      ip link set nlrhv0 up
      ip link set nlrhbr0 mtu 1400
      ip addr add 10.93.0.1/24 dev nlrhbr0
      ip route add 10.92.0.0/24 via 10.99.0.254
      ip route add 10.98.0.0/24 via 10.99.0.254 metric 50
      ip link add nlrhlab0 type bridge
      ip link set nlrhv1 master nlrhlab0
      sysctl -w net.ipv4.ip_forward=1
      sysctl -w net.ipv4.conf.nlrhbr0.rp_filter=1
      iptables -P FORWARD DROP
      iptables -N LABCHAIN
      iptables -A LABCHAIN -j RETURN
      iptables -A FORWARD -j LABCHAIN
      iptables -I INPUT -p tcp --dport 22 -j ACCEPT
      iptables -A USERCHAIN -s 10.91.0.0/16 -j DROP
      iptables -t nat -A POSTROUTING -s 10.93.0.0/24 -j MASQUERADE
      iptables -t mangle -A PREROUTING -j ACCEPT
      ip netns add red
      ip link add veth-red type veth peer name veth-red-br
      ip link set veth-red netns red
      ip link set veth-red-br master nlrhlab0
      ip link set veth-red-br up
      ip link set nlrhlab0 up
      ip addr add 10.94.0.1/24 dev nlrhlab0
      ip -n red addr add 10.94.0.7/24 dev veth-red
      ip -n red link set veth-red up
      nc -l -p 8080 &
"""


def test_changes_to_what_the_host_had_are_put_back(fake_host, tmp_path):
    name = lab_name()
    path = lab_file(tmp_path, CHANGES, name)
    before, spaces = host_state(fake_host), ours()
    up = netlab(fake_host, tmp_path, "real", "up", str(path), "--host", "--yes-modify-host")
    try:
        assert up.returncode == 0, up.stderr
        links = {l["ifname"]: l for l in json.loads(_ok(["ip", "-json", "link"], fake_host))}
        assert "UP" in links["nlrhv0"]["flags"] and links["nlrhbr0"]["mtu"] == 1400
        assert links["nlrhv1"].get("master") == "nlrhlab0"
        save = _ok(["iptables-save"], fake_host)
        for rule in (":FORWARD DROP", "-A FORWARD -j LABCHAIN", "-A LABCHAIN -j RETURN",
                     "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
                     "-A USERCHAIN -s 10.91.0.0/16 -j DROP",
                     "-A POSTROUTING -s 10.93.0.0/24 -j MASQUERADE", "*mangle"):
            assert rule in save
        assert _ok(["cat", "/proc/sys/net/ipv4/conf/nlrhbr0/rp_filter"], fake_host).strip() == "1"
        assert _run(["ping", "-c1", "-W2", "10.94.0.1"], f"nl-{name}-host-red").returncode == 0
        assert ":8080" in _ok(["ss", "-Hltn"], fake_host), "the listener runs on the host"
    finally:
        down = netlab(fake_host, tmp_path, "real", "down", str(path))
    assert down.returncode == 0, down.stderr
    same(host_state(fake_host), before)
    assert ":8080" not in _ok(["ss", "-Hltn"], fake_host), "the host's listener is gone"
    assert ours() == spaces


def test_down_all_includes_host_labs_also_run_from_elsewhere(fake_host, tmp_path):
    """`down --all` here, in this test's own namespace, with the run dir of the test only:
    it finds the lab's host namespace by its inode and undoes the changes there."""
    name = lab_name()
    path = lab_file(tmp_path, "03", name)
    before, spaces = host_state(fake_host), ours()
    up = netlab(fake_host, tmp_path, "real", "up", str(path), "--host", "--yes-modify-host")
    assert "v-net-0" in _ok(["ip", "link"], fake_host)
    down = netlab(None, tmp_path, "real", "down", "--all")  # type: ignore[arg-type]
    assert up.returncode == 0, up.stderr
    assert down.returncode == 0, down.stderr
    same(host_state(fake_host), before)
    assert ours() == spaces


# --- kill -9 part-way through up --------------------------------------------------------------

SLOW_UP = """
import sys, time
from netlab.backends import journal
from netlab.cli.real import up_lab
from netlab.labs.loader import load_lab
record = journal.Journal.record
def slow(self, *a, **k):
    record(self, *a, **k)
    time.sleep(0.25)         # on disk, not yet made: the worst moment to die
journal.Journal.record = slow
up_lab(load_lab(sys.argv[1]), host=True)
print("UP", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("lab,entries", [("05", 2), ("05", 5), ("05", 11), ("05", 18), ("05", 25),
                                         ("changes", 4), ("changes", 14), ("changes", 24),
                                         ("changes", 1000)])
def test_kill_9_during_host_up_then_down_restores_the_host(lab, entries, fake_host, tmp_path):
    from netlab.backends.journal import Journal

    name = lab_name()
    path = lab_file(tmp_path, CHANGES if lab == "changes" else lab, name)
    before, spaces = host_state(fake_host), ours()
    env = dict(os.environ, NETLAB_RUN_DIR=str(tmp_path),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    fd = os.open(f"/run/netns/{fake_host}", os.O_RDONLY)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_UP, str(path)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: _libc.setns(fd, CLONE_NEWNET))
    os.close(fd)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            journal = Journal.load(name, str(tmp_path))
            if journal is not None and (len(journal.entries) >= entries
                                        or journal.state == "up"):
                break
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.02)
        else:
            pytest.fail("the journal never reached the entries wanted")
        time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert Journal.load(name, str(tmp_path)).entries  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        down = netlab(fake_host, tmp_path, "real", "down", name)
    assert down.returncode == 0, down.stderr
    same(host_state(fake_host), before)
    assert ours() == spaces
    assert not (tmp_path / f"{name}.json").exists()
    assert ":8080" not in _ok(["ss", "-Hltn"], fake_host), "a listener on the host is gone"


SLOW_DOWN = """
import sys, time
from netlab.backends import hostmode
from netlab.cli.real import down_lab
undo = hostmode._undo_one
def slow(*a, **k):
    done = undo(*a, **k)
    print("UNDONE", flush=True)
    time.sleep(0.3)
    return done
hostmode._undo_one = slow
down_lab(sys.argv[1])
"""


def test_kill_9_during_down_then_down_again_restores_the_host(fake_host, tmp_path):
    name = lab_name()
    path = lab_file(tmp_path, CHANGES, name)
    before, spaces = host_state(fake_host), ours()
    up = netlab(fake_host, tmp_path, "real", "up", str(path), "--host", "--yes-modify-host")
    assert up.returncode == 0, up.stderr
    env = dict(os.environ, NETLAB_RUN_DIR=str(tmp_path),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    fd = os.open(f"/run/netns/{fake_host}", os.O_RDONLY)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_DOWN, name], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: _libc.setns(fd, CLONE_NEWNET))
    os.close(fd)
    try:
        for _ in range(6):                          # part-way: six changes undone
            assert proc.stdout.readline().strip() == "UNDONE", proc.stderr.read()  # type: ignore
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert host_state(fake_host) != before, "killed part-way through"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        down = netlab(fake_host, tmp_path, "real", "down", name)
    assert down.returncode == 0, down.stderr
    same(host_state(fake_host), before)
    assert ours() == spaces and not (tmp_path / f"{name}.json").exists()


# --- what --host refuses -----------------------------------------------------------------------

REFUSED = [
    ("ip link del nlrhbr0", "will not delete nlrhbr0"),
    ("ip link set nlrhbr0 down", "will not set nlrhbr0 down"),
    ("ip link set nlrhbr0 name other0", "will not rename nlrhbr0"),
    ("ip link set nlrhv1 up", "it has never been up"),
    ("ip link set nlrhlab1 master nlrhbr0", "will not add ports to nlrhbr0"),
    ("ip addr del 10.99.0.1/24 dev nlrhbr0", "will not delete 10.99.0.1/24"),
    ("ip addr flush dev nlrhbr0", "will not"),
    ("ip route del 10.98.0.0/24", "will not delete the route to 10.98.0.0/24"),
    ("ip route replace 10.98.0.0/24 via 10.99.0.253", "will not replace the route"),
    ("iptables -F", "will not flush every chain of table filter"),
    ("iptables -t nat -F PREROUTING", "will not flush the chain PREROUTING"),
    ("iptables -X USERCHAIN", "will not delete the chain USERCHAIN"),
    ("iptables -D INPUT -s 10.97.0.0/16 -j ACCEPT", "the lab did not add it"),
    ("iptables -D INPUT 1", "will not delete rule 1 of INPUT"),
    ("iptables -R INPUT 1 -j DROP", "will not replace rule 1 of INPUT"),
    ("iptables -A INPUT -s 10.97.0.0/16 -j ACCEPT", "has this rule already"),
    ("conntrack -F", "conntrack -F"),
    # not --host's refusal but the kernel's: its words, and a state `down` cleans
    ("ip route add 10.90.0.0/24 via 10.0.0.1", "Error: Nexthop has invalid gateway."),
]


@pytest.mark.parametrize("line,words", REFUSED, ids=[r[0] for r in REFUSED])
def test_what_down_could_not_undo_is_refused(line, words, fake_host, tmp_path):
    name = lab_name()
    text = ("netlab: 1\nname: x\ntitle: refused\nsteps:\n  - title: first\n    run: |\n"
            "      ip link add nlrhlab1 type bridge\n      sysctl -w net.ipv4.ip_forward=1\n"
            "      iptables -A FORWARD -j ACCEPT\n  - title: refused\n    run: |\n"
            f"      {line}\n      ip link add nlrhlab2 type bridge\n")
    path = lab_file(tmp_path, text, name)
    before, spaces = host_state(fake_host), ours()
    up = netlab(fake_host, tmp_path, "real", "up", str(path), "--host", "--yes-modify-host")
    try:
        assert up.returncode == 2, (up.stdout, up.stderr)
        first = up.stderr.splitlines()[0]
        assert first.startswith("netlab: ") and f":{12}: {line}: " in first, first
        assert words in first, first
        links = [l["ifname"] for l in json.loads(_ok(["ip", "-json", "link"], fake_host))]
        assert "nlrhbr0" in links and "nlrhlab2" not in links, "stopped at the refusal"
        assert "10.98.0.0/24 via 10.99.0.254" in _ok(["ip", "route"], fake_host)
    finally:
        down = netlab(fake_host, tmp_path, "real", "down", str(path))
    assert down.returncode == 0, down.stderr
    same(host_state(fake_host), before)
    assert ours() == spaces


def test_ip_netns_exec_is_refused_when_the_lab_makes_namespaces(fake_host, tmp_path):
    """`ip netns exec` gives netlab a mount namespace of its own: the lab's namespaces
    would be bind mounts there only, gone when netlab exits. `nsenter --net` is fine."""
    path = lab_file(tmp_path, "03", lab_name())
    before, spaces = host_state(fake_host), ours()
    env = dict(os.environ, NETLAB_RUN_DIR=str(tmp_path),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = _run(["ip", "netns", "exec", fake_host, *NETLAB, "real", "up", str(path), "--host",
                 "--yes-modify-host"], env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "mount namespace of its own" in done.stderr and "nsenter" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    same(host_state(fake_host), before)
    assert ours() == spaces and not list(tmp_path.glob("*.json"))


def test_cluster_labs_and_node_are_refused_with_host(fake_host, tmp_path):
    before = host_state(fake_host)
    cluster = netlab(fake_host, tmp_path, "real", "up", "10", "--host", "--yes-modify-host")
    assert cluster.returncode == 2 and "cluster lab" in cluster.stderr, cluster.stderr
    assert len(cluster.stderr.splitlines()) == 1
    node = netlab(fake_host, tmp_path, "real", "up", "03", "--host", "--yes-modify-host",
                  "--node", "host")
    assert node.returncode == 2 and "--node" in node.stderr
    unconfirmed = netlab(fake_host, tmp_path, "real", "up", "03", "--host")
    assert unconfirmed.returncode == 2 and "--yes-modify-host" in unconfirmed.stderr
    verify = netlab(fake_host, tmp_path, "real", "verify", "03", "--host")
    assert verify.returncode == 2 and "verify" in verify.stderr
    same(host_state(fake_host), before)
    assert not list(tmp_path.glob("*.json"))
