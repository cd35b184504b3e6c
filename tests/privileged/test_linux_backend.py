"""LinuxBackend builds bundled labs on the kernel; `ip -json` and `iptables-save` read them
back and must agree with the model's World; `down` leaves the machine exactly as before,
also after `kill -9` part-way through `up`.

Each test uses its own lab prefix (nl-b<pid>…) and a journal directory of its own.
"""

from __future__ import annotations

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


# --- the machine, as `ip` and `iptables-save` show it ---------------------------------------

def _out(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


# Other sessions on this machine make namespaces of their own while these tests run
# (the twin harness's nlt*/nls*, CNI tests' cn-*, VM labs' nl-vm*): they are not ours to
# compare. Everything else, netlab's nl-* included, must be exactly as before.
# Another pytest run of these tests uses prefixes b<its session>/p<its session>.
FOREIGN = ("nlt", "nls", "cn-", "cnf-", "nl-vm")
_OTHER_RUN = re.compile(r"^nl-[bp][0-9a-f]{4}")


def foreign(name: str) -> bool:
    if name.startswith(FOREIGN):
        return True
    return bool(_OTHER_RUN.match(name)) and not name.startswith((f"nl-b{SESSION}",
                                                                 f"nl-p{SESSION}"))


def _netlab_namespaces() -> list[str]:
    names = [line.split()[0] for line in _out(["ip", "netns", "list"]).splitlines() if line]
    return sorted(n for n in names if not foreign(n))


def machine_snapshot() -> dict[str, object]:
    """What must be the same before `up` and after `down`. Counters and dates are left
    out of iptables-save (the host's traffic moves them); other sessions' namespaces
    (FOREIGN) come and go."""
    snap: dict[str, object] = {"netns": _netlab_namespaces(), "link": _out(["ip", "link"])}
    save = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False)
    if save.returncode == 0:
        snap["iptables"] = [re.sub(r"\[\d+:\d+\]", "", line) for line in
                            save.stdout.splitlines() if not line.startswith("#")]
    return snap


@pytest.fixture
def machine(kernel):
    before = machine_snapshot()
    yield before
    left = [n for n in _netlab_namespaces() if n not in before["netns"]  # type: ignore
            and n.startswith("nl-b")]
    for name in left:                                # never leave anything of ours behind
        subprocess.run(["ip", "netns", "del", name], check=False)


_count = iter(range(1, 1000))


@pytest.fixture
def prefix() -> str:
    return f"b{SESSION}{os.getpid() % 1000}{next(_count)}"


def _load(ref: str):
    from netlab.labs import find_lab, load_lab

    return load_lab(find_lab(ref))


def _model_world(lab):
    from netlab.labs.runner import run_lab

    result = run_lab(lab, check_expect=False)
    assert result.stopped is None, result.stop_message()
    return result.world


def _ip_json(real: str, *what: str) -> list[dict]:
    return json.loads(_out(["ip", "-json", "-n", real, *what]) or "[]")


def _norm_dst(dst: str) -> str:
    return dst if dst == "default" or "/" in dst else f"{dst}/32"


def kernel_state(real: str) -> dict[str, set]:
    links = _ip_json(real, "link", "show")
    by_index = {l["ifindex"]: l["ifname"] for l in links}
    return {
        "links": {(l["ifname"], "UP" in l.get("flags", []), l.get("master")) for l in links},
        "addresses": {(a["ifname"], i["local"], i["prefixlen"])
                      for a in _ip_json(real, "addr", "show") for i in a.get("addr_info", [])
                      if i.get("family") == "inet"},
        "routes": {(_norm_dst(r["dst"]), r.get("gateway"), r.get("dev"))
                   for r in _ip_json(real, "route", "show", "table", "main")},
        "_index": set(by_index.items()),
    }


def model_state(ns) -> dict[str, set]:
    return {
        "links": {(l.name, l.up, l.master) for l in ns.links.values()},
        "addresses": {(l.name, a.ip, a.prefixlen) for l in ns.links.values()
                      for a in l.addresses},
        "routes": {(_norm_dst(r.dst), r.gateway, r.dev) for r in ns.routes},
    }


def _iptables(real: str, table: str) -> list[str]:
    text = _out(["ip", "netns", "exec", real, "iptables-save", "-t", table])
    return [re.sub(r"\s*\[\d+:\d+\]", "", l) for l in text.splitlines() if not l.startswith("#")]


def _model_iptables(ns, table: str) -> list[str]:
    from netlab.netfilter.restore import iptables_save

    text = iptables_save(ns, table)
    return [re.sub(r"\s*\[\d+:\d+\]", "", l) for l in text.splitlines() if not l.startswith("#")]


# --- up, compare, down ------------------------------------------------------------------------

LABS = ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("ref", LABS)
def test_lab_on_the_kernel_matches_the_model_and_down_restores_the_machine(
        ref, machine, prefix, tmp_path):
    from netlab.cli.real import down_lab, up_lab

    lab = _load(ref)
    uses_iptables = any("iptables" in c.text for s in lab.steps for c in s.commands)
    if uses_iptables and "iptables" not in machine:
        pytest.skip("iptables-save does not work here")
    world = _model_world(lab)
    report = up_lab(lab, run_dir=str(tmp_path), name=prefix)
    try:
        assert report.error is None, report.error
        assert set(report.names) == set(world.namespaces), "one real namespace per model one"
        for key, real in report.names.items():
            ns = world.namespaces[key]
            real_state, want = kernel_state(real), model_state(ns)
            for part in ("links", "addresses", "routes"):
                assert real_state[part] == want[part], f"{key} ({real}) {part}"
            for table in ns.tables:
                assert _iptables(real, table) == _model_iptables(ns, table), f"{key} {table}"
    finally:
        removed = down_lab(prefix, run_dir=str(tmp_path))
    assert sorted(removed) == sorted(report.names.values())
    assert not (tmp_path / f"{prefix}.json").exists()
    assert machine_snapshot() == machine


def test_up_twice_is_refused_and_a_refused_step_leaves_what_down_cleans(machine, prefix,
                                                                        tmp_path):
    from netlab.cli.real import down_lab, up_lab
    from netlab.errors import LabError
    from netlab.labs.loader import load_lab

    path = tmp_path / "bad.yaml"
    path.write_text(
        "netlab: 1\nname: bad\ntitle: refused\nsteps:\n"
        "  - title: red\n    run: |\n      ip netns add red\n"
        "      ip -n red route add default via 10.0.0.1\n      ip netns add blue\n")
    report = up_lab(load_lab(path), run_dir=str(tmp_path), name=prefix)
    try:
        assert report.error is not None
        assert report.error.endswith("Error: Nexthop has invalid gateway."), report.error
        assert ":8:" in report.error, "names the step's line"
        assert f"nl-{prefix}-host-blue" not in _netlab_namespaces(), "stopped at the refusal"
        with pytest.raises(LabError, match="up already"):
            up_lab(load_lab(path), run_dir=str(tmp_path), name=prefix)
    finally:
        down_lab(prefix, run_dir=str(tmp_path))
    assert machine_snapshot() == machine


def test_the_kernel_refuses_a_dummy_link_here_or_makes_it(machine, prefix, tmp_path):
    from netlab import ops as O
    from netlab.backends.journal import Journal
    from netlab.backends.linux import LinuxBackend, remove_netns
    from netlab.errors import CommandError

    backend = LinuxBackend(prefix, Journal.open_new(prefix, str(tmp_path)))
    try:
        backend.apply(O.AddNode("host"))
        try:
            backend.apply(O.AddLink("host/root", "d0", "dummy"))
        except CommandError as exc:
            assert exc.message == "Error: Unknown device type.", exc.message
        else:
            assert "d0" in _out(["ip", "-n", backend.real_name("host/root"), "link"])
        with pytest.raises(CommandError, match='Cannot find device "nope"'):
            backend.apply(O.SetLinkUp("host/root", "nope", True))
        backend.apply(O.AddLink("host/root", "br9", "bridge"))
        with pytest.raises(CommandError, match="^RTNETLINK answers: File exists$"):
            backend.apply(O.AddLink("host/root", "br9", "bridge"))
    finally:
        backend.close()
        remove_netns(f"nl-{prefix}-host")
        Journal.load(prefix, str(tmp_path)).remove()  # type: ignore[union-attr]
    assert machine_snapshot() == machine


def test_neighbours_added_replaced_and_flushed(machine, prefix, tmp_path):
    from netlab import ops as O
    from netlab.backends.journal import Journal
    from netlab.backends.linux import LinuxBackend, remove_netns

    backend = LinuxBackend(prefix, Journal.open_new(prefix, str(tmp_path)))
    try:
        backend.apply(O.AddNode("host"))
        backend.apply(O.AddLink("host/root", "br9", "bridge"))
        real = backend.real_name("host/root")
        mac = "02:00:00:00:00:0a"
        backend.apply(O.AddNeighbour("host/root", "10.0.0.9", "br9", mac, "PERMANENT"))
        backend.apply(O.AddNeighbour("host/root", "10.0.0.8", "br9", mac, "STALE"))
        shown = {(n["dst"], n.get("lladdr"), tuple(n.get("state", [])))
                 for n in _ip_json(real, "neigh", "show")}
        assert shown == {("10.0.0.9", mac, ("PERMANENT",)), ("10.0.0.8", mac, ("STALE",))}
        backend.apply(O.FlushNeighbours("host/root", dev="br9"))         # PERMANENT stays
        assert [n["dst"] for n in _ip_json(real, "neigh", "show")] == ["10.0.0.9"]
        backend.apply(O.FlushNeighbours("host/root", dev="br9", ip="10.0.0.9", permanent=True))
        assert _ip_json(real, "neigh", "show") == []
    finally:
        backend.close()
        remove_netns(f"nl-{prefix}-host")
        Journal.load(prefix, str(tmp_path)).remove()  # type: ignore[union-attr]
    assert machine_snapshot() == machine


# --- kill -9 part-way through up ----------------------------------------------------------------

SLOW_UP = """
import sys, time
from netlab.backends import journal
from netlab.cli.real import up_lab
from netlab.labs import find_lab, load_lab
record = journal.Journal.record
def slow(self, *a, **k):
    record(self, *a, **k)
    time.sleep(0.3)          # on disk, not yet made: the worst moment to die
journal.Journal.record = slow
up_lab(load_lab(find_lab(sys.argv[1])), run_dir=sys.argv[2], name=sys.argv[3])
time.sleep(30)
"""


@pytest.mark.parametrize("entries", [1, 3])
def test_kill_9_during_up_then_down_restores_the_machine(entries, machine, prefix, tmp_path):
    from netlab.backends.journal import Journal
    from netlab.cli.real import down_lab

    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", SLOW_UP, "03", str(tmp_path), prefix],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            journal = Journal.load(prefix, str(tmp_path))
            if journal is not None and len(journal.entries) >= entries:
                break
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.02)
        else:
            pytest.fail("the journal never reached the entries wanted")
        time.sleep(0.1)                       # entry written, namespace not yet made
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        listed = [e.name for e in Journal.load(prefix, str(tmp_path)).entries]  # type: ignore
        assert listed and all(n.startswith(f"nl-{prefix}-") for n in listed)
        made = [n for n in listed if n in _netlab_namespaces()]
        # The last entry is on disk but its namespace not made yet; the ones before it are.
        assert made == listed[:-1], (made, listed)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        down_lab(prefix, run_dir=str(tmp_path))
    assert not (tmp_path / f"{prefix}.json").exists()
    assert machine_snapshot() == machine
