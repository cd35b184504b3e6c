"""Fixtures of the privileged suite: can we make namespaces, the Shell, a fresh real host.

The kernel machinery itself (renaming namespaces, running lines, probes) is in
kernel_host.py.
"""

from __future__ import annotations

import os
import shutil
from typing import Callable

import pytest

from kernel_host import PREFIX, SESSION, RealHost, namespaces_now, run

# --- fixtures ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def kernel() -> None:
    """Skip unless we can make network namespaces here (tried once, not guessed from the user)."""
    missing = [tool for tool in ("ip", "ping", "sysctl") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH "
                    f"(apt-get install iproute2 iputils-ping procps)")
    probe = f"{PREFIX}-probe-{os.getpid()}"
    made = run(["ip", "netns", "add", probe])
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    run(["ip", "netns", "del", probe])


@pytest.fixture(scope="session")
def shell_class():
    try:
        from netlab.commands.shell import Shell
    except ImportError as exc:
        pytest.skip(f"netlab.commands.shell cannot be imported yet: {exc}")
    return Shell


_counter = iter(range(1, 10_000))


@pytest.fixture
def real_host(kernel):
    """A fresh machine on the real kernel; everything it created is removed afterwards."""
    host = RealHost(f"{SESSION}{next(_counter):02d}")
    try:
        host.start()
        yield host
    finally:
        host.close()


@pytest.fixture(scope="session")
def namespaces_left_by_this_run(kernel) -> Callable[[], list[str]]:
    """Lists the namespaces this pytest run made that still exist (names carry SESSION)."""
    marks = (f"{PREFIX}{SESSION}", f"{PREFIX}-{SESSION}")
    return lambda: [n for n in namespaces_now() if n.startswith(marks)]
