"""netlab.cni.preload: the plugins' one-file import path gives the same modules as
plain imports, and notices edited sources and damaged bundles."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import netlab.cni
netlab.cni.preload(netlab.cni.PLUGIN_MODULES)
from netlab.cni import skel, ip
print(skel.__file__, getattr(ip, "PROBE", None), sys.modules["netlab.cni.kernel"].__name__)
"""


def copy_package(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "netlab", tmp_path / "netlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def probe(root: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-SE", "-c", PROBE, str(root)],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def bundle_of(root: Path) -> Path:
    return next((root / "netlab/cni/__pycache__").glob("plugins.*.bundle"))


def test_preload_writes_a_bundle_and_loads_the_modules(tmp_path):
    root = copy_package(tmp_path)
    first = probe(root)
    assert first == [str(root / "netlab/cni/skel.py"), "None", "netlab.cni.kernel"]
    assert bundle_of(root).stat().st_size > 0
    assert probe(root) == first          # second run: from the bundle


def test_an_edited_source_is_picked_up(tmp_path):
    root = copy_package(tmp_path)
    probe(root)
    with open(root / "netlab/cni/ip.py", "a") as f:
        f.write("\nPROBE = 'edited'\n")
    assert probe(root)[1] == "edited"
    assert probe(root)[1] == "edited"    # and the rebuilt bundle holds the edit


def test_a_damaged_bundle_is_rebuilt(tmp_path):
    root = copy_package(tmp_path)
    probe(root)
    bundle = bundle_of(root)
    bundle.write_bytes(bundle.read_bytes()[:100])
    assert probe(root)[0] == str(root / "netlab/cni/skel.py")
    assert bundle.stat().st_size > 100


def test_no_bundle_is_written_under_dont_write_bytecode(tmp_path):
    root = copy_package(tmp_path)
    out = subprocess.run([sys.executable, "-SEB", "-c", PROBE, str(root)],
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == str(root / "netlab/cni/skel.py")
    assert not list((root / "netlab/cni").glob("__pycache__/plugins.*.bundle"))


def run_script(root: Path, plugin: str = "host-local") -> tuple[str, str]:
    proc = subprocess.run([sys.executable, "-SE", "-X", "importtime", str(root / "cni_plugins" / plugin)],
                          input="{}", capture_output=True, text=True, check=True,
                          env={"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"})
    return proc.stdout, proc.stderr


def imported(stderr: str) -> list[str]:
    """Modules the import system loaded (python -X importtime)."""
    return [line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")]


@pytest.mark.parametrize("plugin", ["bridge", "host-local"])
def test_the_plugin_scripts_load_netlab_from_the_bundle(tmp_path, plugin):
    root = copy_package(tmp_path)
    shutil.copytree(REPO / "cni_plugins", root / "cni_plugins")
    run_script(root, plugin)                                 # no bundle yet: this one writes it
    assert bundle_of(root).stat().st_size > 0
    out, err = run_script(root, plugin)
    assert json.loads(out)["supportedVersions"][0] == "0.1.0"
    assert not [m for m in imported(err) if m.strip().startswith("netlab")]
    with open(root / "netlab/cni/types.py", "a") as f:       # an edit is seen through the script too
        f.write('\nSUPPORTED_VERSIONS = SUPPORTED_VERSIONS + ("9.9.9",)\n')
    assert json.loads(run_script(root, plugin)[0])["supportedVersions"][-1] == "9.9.9"
    out, err = run_script(root, plugin)
    assert json.loads(out)["supportedVersions"][-1] == "9.9.9"
    assert not [m for m in imported(err) if m.strip().startswith("netlab")]
    with open(root / "netlab/cni/__init__.py", "a") as f:    # a package's source: rebuilt too
        f.write("\n")
    run_script(root, plugin)
    assert not [m for m in imported(run_script(root, plugin)[1]) if m.strip().startswith("netlab")]


def test_a_copied_checkout_checks_its_own_sources(tmp_path):
    first = copy_package(tmp_path / "a")
    shutil.copytree(REPO / "cni_plugins", first / "cni_plugins")
    run_script(first)
    second = tmp_path / "b"
    shutil.copytree(first, second)                           # with the bundle in __pycache__
    with open(second / "netlab/cni/types.py", "a") as f:
        f.write('\nSUPPORTED_VERSIONS = SUPPORTED_VERSIONS + ("9.9.9",)\n')
    assert json.loads(run_script(second)[0])["supportedVersions"][-1] == "9.9.9"
    assert json.loads(run_script(first)[0])["supportedVersions"][-1] == "1.1.0"
