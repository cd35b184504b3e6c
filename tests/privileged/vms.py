"""Helpers the multi-VM tests share: each "VM" is a namespace joined to the other by a
veth LAN, and the netlab CLI runs in it through `nsenter --net=...` (see
test_multinode.py for why not `ip netns exec`)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from kernel_host import PROBE_CODE, link_settled, run


def netlab_argv() -> list[str]:
    """The netlab CLI of the interpreter running the tests."""
    script = Path(sys.executable).parent / "netlab"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from netlab.cli.main import main; main()"]


def ip_json(netns: str, *what: str) -> list[dict]:
    done = run(["ip", "-json", "-d", "-n", netns, *what])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout or "[]")


def wait_settled(namespaces: list[str], timeout: float = 5.0) -> None:
    """Until every link's operstate caught up with its carrier (KERNEL_NOTES)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(link_settled(l) for ns in namespaces for l in ip_json(ns, "link", "show")):
            return
        time.sleep(0.05)


def connect(netns: str, dst: str, port: int) -> str:
    """A TCP connect from ``netns``: the probe's one-word outcome."""
    done = run(["ip", "netns", "exec", netns, sys.executable, "-c", PROBE_CODE, "tcp", dst,
                str(port), "2.0", "-"])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
