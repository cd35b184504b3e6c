"""The Vagrantfile and scripts/provision.sh refuse bad input with one line, and the
Vagrantfile defines one VM per node. (.ci/run runs provision.sh twice for real and
`vagrant validate` for NODES=1 and 2; these are the checks it does not make.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "scripts" / "provision.sh"


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **env), check=False)


def test_provision_is_valid_bash_and_has_help():
    assert _run(["bash", "-n", str(PROVISION)]).returncode == 0
    done = _run(["bash", str(PROVISION), "--help"])
    assert done.returncode == 0
    assert "scripts/provision.sh --test" in done.stdout


@pytest.mark.parametrize("args, words", [
    (["--bogus"], "provision: unknown option '--bogus' (see --help)"),
    (["--src", "/nonexistent"], "provision: "),
], ids=["unknown-option", "bad-src"])
def test_provision_refuses_bad_input_with_one_line(args, words):
    done = _run(["bash", str(PROVISION), *args])
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(words), done.stderr


needs_vagrant = pytest.mark.skipif(shutil.which("vagrant") is None,
                                   reason="needs vagrant (apt-get install vagrant)")


@needs_vagrant
@pytest.mark.parametrize("name, value", [("NODES", "0"), ("NODES", "two"),
                                         ("NETLAB_MEMORY", "lots"), ("NETLAB_NET", "10.0"),
                                         ("NETLAB_SYNC", "ftp")])
def test_the_vagrantfile_names_a_bad_setting(name, value):
    done = _run(["vagrant", "validate", "--ignore-provider"], **{name: value})
    assert done.returncode != 0
    assert f"Vagrantfile: {name}={value}: expected" in done.stderr, done.stderr


@needs_vagrant
def test_nodes_3_defines_node1_to_node3():
    done = _run(["vagrant", "status", "--machine-readable"], NODES="3")
    names = {line.split(",")[1] for line in done.stdout.splitlines()
             if line.count(",") >= 3 and line.split(",")[2] == "metadata"}
    if done.returncode != 0 and not names:
        pytest.skip(f"vagrant status needs a provider here: {done.stderr.strip()[:80]}")
    assert names == {"node1", "node2", "node3"}, done.stdout
