"""Where the bundled labs are, and which one a person means by ``01``, ``02-veth`` or ``veth``.

In a checkout the labs are the ``labs/`` folder next to the ``netlab``
package. An installed package carries them as ``netlab/bundled_labs/``
(a symbolic link to ``../labs`` in the source tree, copied into the wheel by
setuptools' package-data). The first of the two that holds lab files wins.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from netlab.errors import LabError

PACKAGE_DIR = Path(__file__).resolve().parent.parent          # .../netlab
NUMBERED = re.compile(r"^(\d+)-(.+)$")


def labs_dirs() -> list[Path]:
    """Candidate folders, in the order they are tried (NETLAB_LABS_DIR first, if set)."""
    found = []
    if os.environ.get("NETLAB_LABS_DIR"):
        found.append(Path(os.environ["NETLAB_LABS_DIR"]))
    found += [PACKAGE_DIR.parent / "labs", PACKAGE_DIR / "bundled_labs"]
    return found


def labs_dir() -> Path | None:
    for folder in labs_dirs():
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    return None


def bundled() -> list[Path]:
    folder = labs_dir()
    return sorted(folder.glob("*.yaml")) if folder else []


def find_lab(ref: str) -> Path:
    """A path to an existing file, or a bundled lab by number, full name or name."""
    given = Path(ref)
    if given.is_file():
        return given
    looks_like_path = os.sep in ref or ref.endswith((".yaml", ".yml"))
    labs = bundled()
    matches = _matches(ref.removesuffix(".yaml").removesuffix(".yml").lower(), labs)
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(p.stem for p in labs) or "none found"
    if len(matches) > 1:
        raise LabError(f"'{ref}' names several labs: {', '.join(p.stem for p in matches)}",
                       hint="give more of the name")
    if looks_like_path:
        raise LabError("no such lab file", path=ref)
    raise LabError(f"no lab called '{ref}' (bundled labs: {names})",
                   hint="give a path to a lab file, or a bundled lab's number or name")


def _matches(ref: str, labs: list[Path]) -> list[Path]:
    exact = [p for p in labs if p.stem.lower() == ref]
    if exact:
        return exact
    by_number, by_name, by_prefix = [], [], []
    for path in labs:
        stem = path.stem.lower()
        m = NUMBERED.match(stem)
        number, name = (m.group(1), m.group(2)) if m else (None, stem)
        if ref.isdigit() and number is not None and int(ref) == int(number):
            by_number.append(path)
        elif name == ref:
            by_name.append(path)
        elif stem.startswith(ref) or name.startswith(ref):
            by_prefix.append(path)
    return by_number or by_name or by_prefix
