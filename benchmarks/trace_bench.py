"""Trace and build figures for a bridge with N namespaces attached.

Prints one JSON object per figure (DESIGN.md, "Benchmarks"). The baseline of
each figure is measured in the same process: the trace against a trace across
a single veth pair, the build against applying the same Ops without parsing.

    python benchmarks/trace_bench.py [--namespaces 200] [--runs 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netlab import ops as O  # noqa: E402
from netlab.backends.model import ModelBackend  # noqa: E402
from netlab.commands.shell import Shell  # noqa: E402
from netlab.dataplane import trace  # noqa: E402


def script(n: int) -> str:
    lines = ["ip link add v-net-0 type bridge", "ip link set dev v-net-0 up",
             "ip addr add 10.0.0.1/16 dev v-net-0"]
    for i in range(n):
        ip = f"10.0.{(i + 2) // 256}.{(i + 2) % 256}"
        lines += [
            f"ip netns add ns{i}",
            f"ip link add veth{i} type veth peer name veth{i}-br",
            f"ip link set veth{i} netns ns{i}",
            f"ip link set veth{i}-br master v-net-0",
            f"ip link set veth{i}-br up",
            f"ip -n ns{i} addr add {ip}/16 dev veth{i}",
            f"ip -n ns{i} link set veth{i} up",
            f"ip -n ns{i} link set lo up",
        ]
    lines.append(f"ip netns exec ns{n - 1} nc -l -p 80")
    return "\n".join(lines)


def build(n: int) -> tuple[ModelBackend, float]:
    backend = ModelBackend()
    backend.apply(O.AddNode("host"))
    shell = Shell(backend, "host")
    start = time.perf_counter()
    results = shell.run_script(script(n))
    elapsed = time.perf_counter() - start
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"build failed: {failed[0].cmd}: {failed[0].error}")
    return backend, elapsed


def median_us(fn, runs: int) -> float:
    fn()  # builds the index once
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def figure(name: str, value: float, unit: str, target: float, baseline: str, base: float) -> None:
    print(json.dumps({"figure": name, "value": round(value, 2), "unit": unit, "target": target,
                      "baseline": baseline, "baseline_value": round(base, 2),
                      "ratio": round(value / base, 2) if base else None}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    n = args.namespaces

    small, _ = build(2)
    big, build_s = build(n)
    last = f"10.0.{(n + 1) // 256}.{(n + 1) % 256}"
    small_us = median_us(lambda: trace(small.world, "host/ns0", "10.0.0.3", proto="tcp",
                                       dport=80), args.runs)
    big_us = median_us(lambda: trace(big.world, "host/ns0", last, proto="tcp", dport=80),
                       args.runs)
    check = trace(big.world, "host/ns0", last, proto="tcp", dport=80).paths[0]
    assert check.outcome == "success", check.to_json()
    figure(f"trace_with_reply_bridge_{n}ns_p50_us", big_us, "us", 1000,
           "trace across a bridge with 2 namespaces", small_us)

    # Baseline for the build: the same Ops applied directly (no parsing).
    ops_backend = ModelBackend()
    ops_backend.apply(O.AddNode("host"))
    from netlab.commands.shell import parse  # noqa: E402
    parsed = []
    for line in script(n).splitlines():
        parsed.append(parse(line, node="host"))
    t0 = time.perf_counter()
    for cmd in parsed:
        for op in getattr(cmd, "ops", ()) or ():
            ops_backend.apply(op)
    ops_s = time.perf_counter() - t0
    figure(f"build_{n}ns_from_commands_s", build_s, "s", 1.0,
           "the same Ops applied without parsing", ops_s)


if __name__ == "__main__":
    main()
