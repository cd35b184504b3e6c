"""Real mode set-up and teardown: N namespaces on a bridge, built with the
LinuxBackend (netlink in-process) and, as the baseline in the same run, with
one `ip` process per step. Root only; everything lives in namespaces this
script creates (nl-rbench-*, nlb-rbench-*) and removes.

    sudo python benchmarks/real_bench.py [--namespaces 100 200]

Prints one JSON object per figure (DESIGN.md, "Benchmarks").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netlab import ops as O  # noqa: E402
from netlab.backends.linux import LinuxBackend, remove_netns  # noqa: E402

LAB = "rbench"
IP_PREFIX = "nlb-rbench"


def ops_for(i: int) -> list[O.Op]:
    ns = f"host/p{i}"
    return [O.AddNetns("host", f"p{i}"),
            O.AddLink("host/root", f"v{i}", "veth", peer="eth0", peer_netns=ns),
            O.SetLinkMaster("host/root", f"v{i}", "br0"),
            O.SetLinkUp("host/root", f"v{i}", True),
            O.SetLinkUp(ns, "eth0", True),
            O.AddAddress(ns, "eth0", f"10.{i // 250}.{i % 250}.2", 8),
            O.SetLinkUp(ns, "lo", True),
            O.AddRoute(ns, "default", gateway="10.255.255.1")]


def with_backend(n: int) -> tuple[float, float]:
    backend = LinuxBackend(LAB)
    names: list[str] = []
    try:
        backend.apply(O.AddNode("host"))
        for op in (O.AddLink("host/root", "br0", "bridge"),
                   O.AddAddress("host/root", "br0", "10.255.255.1", 8),
                   O.SetLinkUp("host/root", "br0", True)):
            backend.apply(op)
        start = time.perf_counter()
        for i in range(n):
            backend.apply_all(ops_for(i))
        setup = time.perf_counter() - start
    finally:
        names = list(backend.names.values())
        backend.close()
    host = f"nl-{LAB}-host"
    start = time.perf_counter()
    for name in names:
        if name != host:
            remove_netns(name)
    teardown = time.perf_counter() - start
    remove_netns(host)
    return setup, teardown


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def with_ip(n: int) -> tuple[float, float]:
    host = f"{IP_PREFIX}-host"
    made = [host]
    try:
        ip("netns", "add", host)
        ip("-n", host, "link", "add", "br0", "type", "bridge")
        ip("-n", host, "addr", "add", "10.255.255.1/8", "dev", "br0")
        ip("-n", host, "link", "set", "br0", "up")
        start = time.perf_counter()
        for i in range(n):
            ns = f"{IP_PREFIX}-p{i}"
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", host, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            ip("-n", host, "link", "set", f"v{i}", "master", "br0")
            ip("-n", host, "link", "set", f"v{i}", "up")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "addr", "add", f"10.{i // 250}.{i % 250}.2/8", "dev", "eth0")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "route", "add", "default", "via", "10.255.255.1")
        setup = time.perf_counter() - start
        start = time.perf_counter()
        for ns in made[1:]:
            ip("netns", "del", ns)
        teardown = time.perf_counter() - start
        made = [host]
        return setup, teardown
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def figure(name: str, value: float, target: float | None, base: float) -> None:
    print(json.dumps({"figure": name, "value": round(value, 3), "unit": "ms", "target": target,
                      "baseline": "one `ip` process per step, same run",
                      "baseline_value": round(base, 3), "ratio": round(value / base, 3)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, nargs="+", default=[100, 200])
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("real_bench.py: real mode needs root")
    for n in args.namespaces:
        setup, teardown = with_backend(n)
        ip_setup, ip_teardown = with_ip(n)
        figure(f"real_setup_{n}ns_per_ns_ms", setup / n * 1000, 4, ip_setup / n * 1000)
        figure(f"real_teardown_{n}ns_per_ns_ms", teardown / n * 1000, 1, ip_teardown / n * 1000)


if __name__ == "__main__":
    main()
