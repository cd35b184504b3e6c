"""Finding the bundled labs: by number, by name, by path; from a checkout and when installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netlab.errors import LabError
from netlab.labs import catalog

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def fake_labs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("01-switch-and-router", "02-veth", "03-bridge", "10-bridge-nat"):
        (tmp_path / f"{name}.yaml").write_text("netlab: 1\nname: x\ntitle: X\n")
    monkeypatch.setenv("NETLAB_LABS_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("ref,stem", [
    ("01", "01-switch-and-router"), ("1", "01-switch-and-router"), ("02-veth", "02-veth"),
    ("veth", "02-veth"), ("VETH", "02-veth"), ("02-veth.yaml", "02-veth"), ("bridge", "03-bridge"),
    ("bridge-n", "10-bridge-nat"), ("10", "10-bridge-nat"), ("switch", "01-switch-and-router"),
])
def test_find_by_number_or_name(fake_labs: Path, ref: str, stem: str):
    assert catalog.find_lab(ref) == fake_labs / f"{stem}.yaml"


def test_a_path_wins(fake_labs: Path, tmp_path: Path):
    mine = tmp_path / "sub"
    mine.mkdir()
    (mine / "02").write_text("")
    assert catalog.find_lab(str(mine / "02")) == mine / "02"


def test_unknown_lab_lists_the_bundled_ones(fake_labs: Path):
    with pytest.raises(LabError) as info:
        catalog.find_lab("vxlan")
    assert str(info.value).startswith(
        "no lab called 'vxlan' (bundled labs: 01-switch-and-router, 02-veth, 03-bridge, "
        "10-bridge-nat)")


def test_ambiguous_prefix(fake_labs: Path):
    (fake_labs / "04-bridge-more.yaml").write_text("")
    with pytest.raises(LabError) as info:
        catalog.find_lab("bridge-")
    assert "names several labs: 04-bridge-more, 10-bridge-nat" in str(info.value)


def test_missing_path(fake_labs: Path):
    with pytest.raises(LabError) as info:
        catalog.find_lab("labs/nope.yaml")
    assert str(info.value) == "labs/nope.yaml: no such lab file"


def test_checkout_finds_labs_next_to_the_package(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("NETLAB_LABS_DIR", raising=False)
    assert catalog.labs_dir() == REPO / "labs"
    assert [p.name for p in catalog.bundled()][:4] == [
        "01-switch-and-router.yaml", "02-veth.yaml", "03-bridge.yaml",
        "04-lan-through-host.yaml"]


def test_the_copy_shipped_in_the_package_is_the_same_set():
    """netlab/bundled_labs (what a wheel carries) holds exactly the labs/ files."""
    shipped = REPO / "netlab" / "bundled_labs"
    assert shipped.is_dir()
    assert sorted(p.name for p in shipped.glob("*.yaml")) == sorted(
        p.name for p in (REPO / "labs").glob("*.yaml"))


def test_installed_package_falls_back_to_its_own_copy(tmp_path: Path):
    """Without labs/ beside the package, the package's bundled_labs/ is used."""
    pkg = tmp_path / "site" / "netlab"
    (pkg / "labs").mkdir(parents=True)
    (pkg / "bundled_labs").mkdir()
    (pkg / "bundled_labs" / "02-veth.yaml").write_text("")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import netlab.labs.catalog as c; "
            "c.PACKAGE_DIR = c.Path(sys.argv[2]); print(c.labs_dir()); print(c.find_lab('veth'))")
    env = {k: v for k, v in os.environ.items() if k != "NETLAB_LABS_DIR"}
    out = subprocess.run([sys.executable, "-c", code, str(REPO), str(pkg)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(pkg / "bundled_labs"), str(pkg / "bundled_labs" / "02-veth.yaml")]
