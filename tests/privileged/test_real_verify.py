"""`netlab real verify LAB` exits 0 for every bundled lab: the model predicted, probe by
probe, what the kernel did. And it does see a difference when there is one.

The CLI runs as a child process with a journal directory of its own ($NETLAB_RUN_DIR);
afterwards the machine must be as before (no namespace, no journal left).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from test_linux_backend import REPO, machine_snapshot

pytestmark = pytest.mark.privileged

BUNDLED = sorted(p.name[:2] for p in (REPO / "labs").glob("[0-9][0-9]-*.yaml"))


@pytest.fixture
def machine(kernel):
    before = machine_snapshot()
    yield before


@pytest.mark.parametrize("ref", BUNDLED)
def test_verify_agrees_for_every_bundled_lab(ref, machine, tmp_path):
    env = dict(os.environ, NETLAB_RUN_DIR=str(tmp_path),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", "from netlab.cli.main import main; main()",
                           "real", "verify", ref,
                           "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    result = json.loads(done.stdout)
    diffs = [r for r in result["rows"] if not r["same"]]
    assert result["differences"] == 0 and done.returncode == 0, \
        json.dumps({"problems": result["problems"], "rows": diffs}, indent=1)
    assert result["rows"], "a lab with no probe proves nothing"
    assert any(r["origin"] == "auto" for r in result["rows"])
    assert os.listdir(tmp_path) == [], "the journal and the listeners' logs are gone"
    assert machine_snapshot() == machine


def test_verify_sees_a_kernel_that_does_not_do_what_the_model_says(machine, tmp_path,
                                                                   monkeypatch):
    """Lab 01 with a kernel that ignores `sysctl -w net.ipv4.ip_forward=1`: the router
    drops what the model forwards, and verify reports those rows."""
    from netlab.backends.linux import LinuxBackend
    from netlab.labs import find_lab, load_lab
    from netlab.labs.verify import verify_lab

    original = LinuxBackend._SetSysctl

    def forgetful(self, op):  # type: ignore[no-untyped-def]
        if op.key != "net.ipv4.ip_forward":
            original(self, op)
    monkeypatch.setattr(LinuxBackend, "_SetSysctl", forgetful)
    result = verify_lab(load_lab(find_lab("01")), run_dir=str(tmp_path), name="rtv01")
    diffs = [r for r in result.rows if not r.same]
    assert diffs and result.differences == len(diffs)
    assert all(r.kernel["outcome"] == "timeout" for r in diffs), [r.to_json() for r in diffs]
    assert {(r.source, r.to) for r in diffs} >= {("a", "192.168.2.10")}
    assert os.listdir(tmp_path) == []
    assert machine_snapshot() == machine


@pytest.mark.parametrize("ref", ["02", "06"])
def test_lab_run_on_the_real_backend_checks_the_expectations_with_real_probes(ref, machine,
                                                                               tmp_path):
    env = dict(os.environ, NETLAB_RUN_DIR=str(tmp_path),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", "from netlab.cli.main import main; main()",
                           "lab", "run", ref, "--backend", "real", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    result = json.loads(done.stdout)
    details = [e["detail"] for s in result["steps"] for e in s["expect"]]
    assert any("[kernel]" in d for d in details)
    assert os.listdir(tmp_path) == []
    assert machine_snapshot() == machine
