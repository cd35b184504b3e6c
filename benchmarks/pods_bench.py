"""Pods figure: the kubelet's part of a cluster build alone (attaching every pod).

    python benchmarks/pods_bench.py [--nodes 500] [--pods-per-node 30] [--services 1000]

Builds the cluster of cluster_bench's synthetic generator, applies the node Ops, then
times the pods loop of netlab.k8s.build.build (build.attach_pods) with the
CNI replay on (default) and off (NETLAB_CNI_REPLAY=0: the full plugin for every pod), each
in a fresh model. Prints one JSON object per figure (DESIGN.md, "Benchmarks").
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def time_pods(cluster, replay: bool) -> tuple[float, float]:
    """The pods loop's wall time and the process's CPU time in it (the steadier figure on
    a shared machine)."""
    from netlab.backends.model import ModelBackend
    from netlab.k8s import build
    from netlab.model import World

    rec = build.Recorder(ModelBackend(World(name=cluster.spec.name)))
    gc.disable()
    try:
        for op in build.node_ops(cluster):
            rec.apply(op)
        start, cpu = time.perf_counter(), time.process_time()
        build.attach_pods(rec, cluster, replay=replay)
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        gc.enable()


def main() -> None:
    from cluster_bench import figure, synthetic

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pods-per-node", type=int, default=30)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--only", choices=["replay", "full"])
    args = parser.parse_args()
    pods = args.nodes * args.pods_per_node
    cluster = synthetic(args.nodes, pods, args.services)
    size = f"{args.nodes} nodes, {len(cluster.pods)} pods"
    for replay in (True, False):
        if args.only and args.only != ("replay" if replay else "full"):
            continue
        took, cpu = time_pods(cluster, replay)
        per = took / len(cluster.pods) * 1e6
        name = "replay" if replay else "full"
        print(json.dumps(figure(f"cluster_pods_{name}_n{args.nodes}_us_per_pod", per, "us",
                                40.0 if replay else None,
                                f"{size}: {took:.2f} s for the pods loop (CPU {cpu:.2f} s, "
                                f"{cpu / len(cluster.pods) * 1e6:.1f} us a pod); extrapolated to "
                                f"150,000 pods {per * 150000 / 1e6:.1f} s; peak RSS so far "
                                f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} "
                                "MiB")), flush=True)


if __name__ == "__main__":
    main()
