"""Cluster figures: build a cluster, then trace pod → Service → pod across nodes.

Sizes (issue 6): ``small`` 100 nodes / 3,000 pods / 1,000 Services; ``large`` 5,000
nodes / 150,000 pods / 10,000 Services (targets: builds in ≤ 10 s and ≤ 4 GiB, a
cross-node Service trace ≤ 1 ms median). Each size runs in a process of its own, so
its peak memory is its own; a size that does not finish within ``--budget`` seconds
is reported with ``"value": null`` and why.

The cluster: one Deployment and one ClusterIP Service per Service, the pods spread
round robin over the nodes, host-gw routes, kube-proxy's rules on every node,
kube-dns and CoreDNS as kubeadm has them. The baseline of the trace is a trace from
the same pod to a pod on its own node's bridge (no Service, no LAN), in the same
process. The Service trace follows every branch of kube-proxy's random endpoint choice
(one path per endpoint, each traced whole); ``cluster_service_packet_p50`` follows one
branch (``seed=1``), as one packet does; ``cluster_service_trace_again_p50`` is the first
figure's traces done again, once the engine keeps all it derived for them (its floor: what
every hop costs when nothing is new). Each timed trace is of another pair (client pod,
Service; or client, same-node peer), drawn with a fixed seed, after one first trace that
builds the engine's indices (its time is in the baseline text).

    python benchmarks/cluster_bench.py [--size small|large|both] [--budget 600] [--runs 200]
    python benchmarks/cluster_bench.py --nodes 1000 [--pods 30000] [--services 2000]

``--nodes`` runs one size of its own (pods and Services default to 30 and 2 per node, at
most 10,000 Services), named ``n<nodes>``; it has no targets. Peak memory is the peak
resident set of the size's process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``),
interpreter and imports included. The build's text gives its CPU time, user and system:
the system time is mostly the kernel giving the process fresh memory, and on a virtual
machine it swings with what ran before (seen on this project's VMs: about 0.5 ms a MB
first touched when a process had just freed that much, about 4 ms a MB after a pause),
so compare builds by their user time too.

Prints one JSON object per figure (DESIGN.md, "Benchmarks").
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {"small": (100, 3000, 1000), "large": (5000, 150000, 10000)}
TARGETS = {"build_s": {"large": 10.0}, "peak_mib": {"large": 4096.0}, "trace_us": {"large": 1000.0}}


def synthetic(nodes: int, pods: int, services: int):
    from netlab.k8s.cluster import build_cluster
    from netlab.k8s.objects import (
        ClusterSpec, ContainerPort, LabelSelector, Manifests, NodeSpec, Pod, Service, ServicePort,
        Workload,
    )

    spec = ClusterSpec(
        name="bench", path="<bench>",
        nodes=[NodeSpec(f"node{i + 1}", f"10.{(i + 1) // 65536}.{(i + 1) // 256 % 256}.{(i + 1) % 256}")
               for i in range(nodes)],
        pod_cidr="10.128.0.0/9", service_cidr="172.16.0.0/12", lan_subnet="10.0.0.0/16")
    m = Manifests()
    per = max(1, pods // services)
    for s in range(services):
        labels = {"app": f"app{s}"}
        template = Pod("default", "", labels, [ContainerPort(8080, "TCP", "http")])
        m.workloads.append(Workload("Deployment", "default", f"app{s}", per,
                                    LabelSelector((("app", f"app{s}"),)), template))
        m.services.append(Service("default", f"svc{s}", "ClusterIP", labels,
                                  [ServicePort("http", "TCP", 80, "http")]))
    return build_cluster(spec, m)


def size_of(name: str) -> tuple[int, int, int]:
    """``small``, ``large`` or ``n<nodes>x<pods>x<services>``."""
    if name in SIZES:
        return SIZES[name]
    nodes, pods, services = (int(x) for x in name[1:].split("x"))
    return nodes, pods, services


def one_size(name: str, runs: int) -> list[dict]:
    from netlab.dataplane import trace
    from netlab.k8s.build import build_model
    from netlab.k8s.kubelet import pod_netns_key

    nodes, pods, services = size_of(name)
    if name not in SIZES:
        name = f"n{nodes}"
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    cluster = synthetic(nodes, pods, services)
    control = time.perf_counter() - start
    world = build_model(cluster).world
    build = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    peak_mib = after.ru_maxrss / 1024

    # Pairs to trace, each timed once: a client pod and a Service whose endpoints are all
    # on other nodes; a client pod and a peer on its own node's bridge (the baseline).
    # Distinct pairs, so what the engine keeps for one World state is used as it would be
    # for a person's successive traces, never a repeat of the same trace.
    rng = random.Random(6)
    clients = [p for p in cluster.pods if p.namespace == "default"]
    services = [s for s in cluster.services if s.name.startswith("svc")]
    by_node: dict[str, list] = {}
    for p in clients:
        by_node.setdefault(p.node, []).append(p)

    def remote_pair():
        while True:
            client, svc = rng.choice(clients), rng.choice(services)
            if all(ep.node != client.node for sl in cluster.slices[svc.key] for ep in sl.endpoints):
                return client, svc.cluster_ip, 80

    def local_pair():
        while True:
            client = rng.choice(clients)
            peers = [p for p in by_node[client.node] if p is not client]
            if peers:
                return client, rng.choice(peers).ip, 8080

    def median_us(pairs, seed: int | None = None) -> float:
        times = []
        for client, dst, port in pairs:
            t0 = time.perf_counter()
            got = trace(world, pod_netns_key(client), dst, proto="tcp", dport=port, record=False,
                        seed=seed)
            times.append(time.perf_counter() - t0)
            assert got.paths and all(p.outcome == "success" for p in got.paths), \
                f"{client.key} -> {dst}:{port}: {[p.outcome for p in got.paths]}"
        return statistics.median(times) * 1e6

    # The first trace on a new World builds the engine's indices.
    client, dst, port = remote_pair()
    t0 = time.perf_counter()
    traced = trace(world, pod_netns_key(client), dst, proto="tcp", dport=port, record=False)
    first_ms = (time.perf_counter() - t0) * 1e3
    assert all(p.outcome == "success" and p.delivered_to.split("/")[0] != client.node
               for p in traced.paths), "the Service trace did not reach another node"
    service_pairs = [remote_pair() for _ in range(runs)]
    service_us = median_us(service_pairs)
    # The same traces again: every answer the engine keeps is there (what a trace costs
    # once nothing about it is new: the engine's floor, hop by hop).
    again_us = median_us(service_pairs)
    local_us = median_us([local_pair() for _ in range(runs)])
    # One packet, as the kernel sends it: one branch of kube-proxy's random choice.
    packet_us = median_us([remote_pair() for _ in range(runs)], seed=1)
    size = f"{nodes} nodes, {len(cluster.pods)} pods, {len(cluster.services)} Services"
    out = [
        figure(f"cluster_build_{name}_s", build, "s", TARGETS["build_s"].get(name),
               f"{size}; of which control plane (objects, placement, IPs, slices) "
               f"{control:.2f} s; CPU: user {user:.2f} s, system {system:.2f} s"),
        figure(f"cluster_peak_rss_{name}_mib", peak_mib, "MiB", TARGETS["peak_mib"].get(name),
               f"{size}; peak RSS of the process (getrusage ru_maxrss)"),
        figure(f"cluster_service_trace_p50_{name}_us", service_us, "us",
               TARGETS["trace_us"].get(name),
               f"pod → svc → pod on another node, every endpoint branch ({len(traced.paths)} "
               f"paths), {runs} distinct client/Service pairs; baseline pod → pod on the same "
               f"bridge {local_us:.0f} us; the first trace (indices built) {first_ms:.0f} ms",
               baseline_value=local_us),
        figure(f"cluster_service_trace_again_p50_{name}_us", again_us, "us", None,
               f"the same {runs} Service traces again, every answer the engine keeps for this "
               f"World already kept; baseline the first time {service_us:.0f} us",
               baseline_value=service_us),
        figure(f"cluster_service_packet_p50_{name}_us", packet_us, "us", None,
               f"the same trace following one branch of the endpoint choice (seed=1), as one "
               f"packet does; baseline pod → pod on the same bridge {local_us:.0f} us",
               baseline_value=local_us),
    ]
    return out


def figure(name: str, value: float | None, unit: str, target: float | None, baseline: str,
           baseline_value: float | None = None, note: str | None = None) -> dict:
    out = {"figure": name, "value": round(value, 3) if value is not None else None,
           "unit": unit, "target": target, "baseline": baseline,
           "ratio": round(value / target, 3) if value is not None and target else
           (round(value / baseline_value, 2) if value is not None and baseline_value else None)}
    if note:
        out["note"] = note
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["small", "large", "both", "all"], default="both",
                        help="both (= all): small, then large")
    parser.add_argument("--nodes", type=int, help="run one size of this many nodes instead")
    parser.add_argument("--pods", type=int, help="with --nodes (default: 30 a node)")
    parser.add_argument("--services", type=int,
                        help="with --nodes (default: 2 a node, at most 10,000)")
    parser.add_argument("--budget", type=float, default=600.0,
                        help="seconds a size may take before it is reported as not finished")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        for f in one_size(args.child, args.runs):
            print(json.dumps(f), flush=True)
        return
    if args.nodes:
        if args.nodes < 2:
            parser.error("--nodes: expected at least 2 (the trace crosses nodes)")
        pods = args.pods or 30 * args.nodes
        services = args.services or min(10000, 2 * args.nodes)
        names = [f"n{args.nodes}x{pods}x{services}"]
    else:
        names = list(SIZES) if args.size in ("both", "all") else [args.size]
    for name in names:
        cmd = [sys.executable, __file__, "--child", name, "--runs", str(args.runs)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.budget)
        except subprocess.TimeoutExpired:
            label = name if name in SIZES else f"n{size_of(name)[0]}"
            print(json.dumps(figure(f"cluster_build_{label}_s", None, "s",
                                    TARGETS["build_s"].get(name), f"{size_of(name)}",
                                    note=f"did not finish within {args.budget:.0f} s")))
            continue
        if done.returncode != 0:
            raise SystemExit(f"{name}: {done.stderr.strip().splitlines()[-1:]}")
        sys.stdout.write(done.stdout)


if __name__ == "__main__":
    main()
