"""NetworkPolicy on the kernel: `netlab cluster reach --backend real` builds the e2e
cluster (namespaces x, y, z with pods a, b, c on three nodes) with a case's policies on
this kernel, connects every pod to every pod for real, and the table is the model's, cell
by cell (the cases of tests/integration/test_k8s_netpol.py, each with its extra probes).

Namespaces: ``nl-e2e-reach-*``; the journal goes to a temporary $NETLAB_RUN_DIR, and each
test checks that its namespaces are gone afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_k8s_netpol import CASES, E2E

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
ON_THE_KERNEL = ["default-deny-ingress", "default-deny-egress",
                 "ingress-from-pod-and-namespace-selector-in-one-peer",
                 "ingress-from-pod-or-namespace-selector-two-peers", "ingress-named-port"]


def ours_left() -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [n.split()[0] for n in names.splitlines() if n.startswith("nl-e2e-reach-")]


def reach(files: list[str], proto: str, port: int | None, backend: str,
          run_dir: Path) -> dict[str, dict[str, bool]]:
    env = dict(os.environ, NETLAB_RUN_DIR=str(run_dir),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = [a for f in files for a in ("-f", f)] + ["--proto", proto, "--json",
                                                    "--backend", backend]
    if port is not None:
        args += ["--port", str(port)]
    done = subprocess.run([sys.executable, "-c", "from netlab.cli.main import main; main()",
                           "cluster", "reach", *args], capture_output=True, text=True,
                          env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["matrix"]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in ON_THE_KERNEL],
                         ids=lambda c: c.id)
def test_the_kernels_truth_table_is_the_models(case, kernel, tmp_path):
    assert ours_left() == [], "a namespace of the e2e cluster is there already"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "policies.yaml").write_text(case.policies)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    files = [str(E2E), str(tmp_path / "m")]
    for proto, port, truth in [(case.proto, case.port, case.expect), *case.extra]:
        model = reach(files, proto, port, "model", run_dir)
        assert model == truth.cells, f"{proto}/{port}: the model is not the expected table"
        kernel_cells = reach(files, proto, port, "real", run_dir)
        wrong = [f"{s} → {d}: kernel {kernel_cells[s][d]}, model {model[s][d]}"
                 for s in model for d in model[s] if kernel_cells[s][d] != model[s][d]]
        assert not wrong, f"{proto}/{port}:\n" + "\n".join(wrong)
    assert ours_left() == []
    assert os.listdir(run_dir) == [], "the journal and the listeners' logs are gone"
