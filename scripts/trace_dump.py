"""Every trace of a wide corpus, as JSON lines: run it on two checkouts and compare the
files to see whether a change to the trace engine changed any result.

    python scripts/trace_dump.py OUT.jsonl [--repo DIR]
    cmp before.jsonl after.jsonl

The corpus: every bundled lab (its namespaces to its addresses by icmp, tcp 80 and udp
53), 150 random labs (tests/privileged/random_labs.py: their probes), 10 random clusters
(tests/unit/k8s_services_random.py) and the test clusters services and e2e (pods to
Services, NodePorts and pods), and an 80-node cluster_bench cluster. Each case is traced
with every branch and with ``seed=3``; every few cases, on a copy of the World, with
``record=True``, followed by the conntrack tables it wrote. The same checkout gives the
same file byte for byte (about 10,000 lines, 10 s). ``--repo`` is the checkout whose
netlab and test helpers are used (default: this one), e.g. a worktree of main before a
change; it must be one that has this script.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import random
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the JSON-lines file to write")
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]),
                        help="the checkout whose netlab is traced (default: this one)")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    if not (repo / "netlab").is_dir():
        parser.error(f"--repo {repo}: expected a netlab checkout (no netlab/ there)")
    for sub in ("", "tests/privileged", "tests/unit", "benchmarks"):
        sys.path.insert(0, str(repo / sub))
    with open(args.out, "w") as out:
        for tag, world, cases, every in corpus(repo):
            dump(out, tag, world, cases, every)


def corpus(repo: Path):
    """(tag, World, cases, how often a recorded trace is made) for every World dumped."""
    from cluster_bench import synthetic
    from k8s_services_random import random_cluster
    from test_trace_caches import _cluster_probes, random_lab_worlds

    from netlab.k8s.build import build_model
    from netlab.k8s.cluster import load_cluster
    from netlab.k8s.kubelet import pod_netns_key
    from netlab.labs.loader import load_lab
    from netlab.labs.runner import run_lab

    for path in sorted((repo / "labs").glob("*.yaml")):
        world = run_lab(load_lab(path), check_expect=False).world
        ips = sorted({a.ip for ns in world.namespaces.values() for link in ns.links.values()
                      if link.kind != "loopback" for a in link.addresses})[:14]
        yield (f"lab {path.name}", world,
               [(src, dst, proto, port) for src in sorted(world.namespaces)[:14] for dst in ips
                for proto, port in (("icmp", None), ("tcp", 80), ("udp", 53))], 10)
    labs = random_lab_worlds(150, Path(tempfile.mkdtemp()), "oracle")
    for i, (_, world, cases) in enumerate(labs):
        yield f"rlab {i}", world, cases, 3
    clusters = [(f"rcluster {seed}", random_cluster(seed), 150) for seed in range(10)]
    clusters += [(f"cluster {name}", load_cluster([str(repo / "tests/data/k8s" / name)]), 300)
                 for name in ("services", "e2e")]
    for tag, cluster, most in clusters:
        world = build_model(cluster).world
        cases = _cluster_probes(cluster, world)
        yield tag, world, cases[:: max(1, len(cases) // most)], 10
    cluster = synthetic(80, 1200, 80)       # (80 nodes: host-gw batches given later)
    rng = random.Random(1)
    pods = [p for p in cluster.pods if p.namespace == "default"]
    cases = []
    for _ in range(120):
        pod = rng.choice(pods)
        cases.append((pod_netns_key(pod), rng.choice(cluster.services).cluster_ip, "tcp", 80))
        cases.append((pod_netns_key(pod), rng.choice(pods).ip, "tcp", 8080))
    yield "bench", build_model(cluster).world, cases, 10


def dump(out, tag: str, world, cases: list, every: int) -> None:
    from netlab.dataplane import trace

    def line(what: str, data) -> None:
        out.write(f"{tag} {what} {json.dumps(data, sort_keys=True, default=str)}\n")

    def traced(w, src, dst, proto, port, **kw):
        try:
            return trace(w, src, dst, proto=proto, dport=port, **kw).to_json()
        except Exception as exc:        # noqa: BLE001 — an error is a result too
            return {"error": f"{type(exc).__name__}: {exc}"}

    for src, dst, proto, port in cases:
        for kw in ({}, {"seed": 3}):
            line(f"{src} {dst} {proto} {port} {kw}",
                 traced(world, src, dst, proto, port, record=False, **kw))
    recorded = copy.deepcopy(world)
    for src, dst, proto, port in cases[::every]:
        line(f"rec {src} {dst}", traced(recorded, src, dst, proto, port, record=True))
        line("ct", {key: [dataclasses.asdict(e) for e in ns.conntrack]
                    for key, ns in sorted(recorded.namespaces.items()) if ns.conntrack})


if __name__ == "__main__":
    main()
