"""A/B in one process: cross-node Service traces with netfilter walks shared across the
namespaces that hold the same Table (dataplane.netfilter.SHARE_WALKS), reads_of kept per
Table and rules parsed and compiled by their shape (parse_stored, compile_stored), and
without any of them.

    python benchmarks/walks_ab.py [nodes] [pairs]

Distinct remote client/Service pairs, the two modes interleaved pair by pair (each mode
keeps its own memo of walks); CPU time per trace, medians; then a warm pair (the same
trace again) in each mode. Prints one JSON object per figure (DESIGN.md, "Benchmarks"):
the shared mode's median, with the unshared one as its baseline.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from benchmarks.cluster_bench import synthetic
    from netlab.dataplane import netfilter, trace
    from netlab.k8s.build import build_model
    from netlab.k8s.kubelet import pod_netns_key
    from netlab.netfilter.rules import parse_rule

    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    cluster = synthetic(nodes, nodes * 30, nodes * 2)
    world = build_model(cluster).world
    rng = random.Random(6)
    clients = [p for p in cluster.pods if p.namespace == "default"]
    services = [s for s in cluster.services if s.name.startswith("svc")]

    def remote_pair():
        while True:
            client, svc = rng.choice(clients), rng.choice(services)
            if all(ep.node != client.node for sl in cluster.slices[svc.key]
                   for ep in sl.endpoints):
                return pod_netns_key(client), svc.cluster_ip

    def timed(source, dst) -> float:
        t0 = time.process_time()
        got = trace(world, source, dst, proto="tcp", dport=80, record=False)
        spent = time.process_time() - t0
        assert got.paths and all(p.outcome == "success" for p in got.paths)
        return spent

    trace(world, *remote_pair(), proto="tcp", dport=80, record=False)   # indices built
    new = (netfilter.parse_stored, netfilter.Shared.reads_of, netfilter.compile_stored)
    old = (parse_rule, lambda self, table, hook: netfilter.reads_of(table, hook),
           lambda chain, i: netfilter.CompiledRule(chain.rule(i), chain.text(i),
                                                   i in chain._certain))

    def mode(share: bool) -> None:
        netfilter.SHARE_WALKS = share
        netfilter.parse_stored, netfilter.Shared.reads_of, netfilter.compile_stored = \
            new if share else old

    cold = {True: [], False: []}
    for i in range(2 * runs):
        share = i % 2 == 0
        mode(share)
        cold[share].append(timed(*remote_pair()))
    warm = {True: [], False: []}
    pair = remote_pair()
    for share in (False, True):
        mode(share)
        timed(*pair)
        warm[share] = [timed(*pair) for _ in range(20)]
    mode(True)
    for name, got in (("cold", cold), ("warm", warm)):
        off, on = statistics.median(got[False]) * 1e3, statistics.median(got[True]) * 1e3
        print(json.dumps({
            "figure": f"walks_shared_{name}_trace_p50_n{nodes}_ms", "value": round(on, 3),
            "unit": "ms", "target": None,
            "baseline": f"{nodes} nodes, {runs if name == 'cold' else 20} {name} traces; the "
                        f"same with walks kept per namespace: {off:.2f} ms",
            "ratio": round(on / off, 3)}))


if __name__ == "__main__":
    main()
