"""netlab.cni.preload: the plugins' one-file import path gives the same modules as
plain imports, and notices edited sources and damaged bundles."""

import shutil
import subprocess
import sys
from pathlib import Path

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
