"""Seeded clusters with every kind of Service kube-proxy writes rules for: ClusterIP,
NodePort and LoadBalancer; Local internal and external traffic policies; ClientIP
affinity; headless; without endpoints or with unready ones; several ports, named and
numbered targets, TCP and UDP (and SCTP, which is not proxied); a few large enough that
kube-proxy leaves its comments out."""

from __future__ import annotations

import random

from netlab.k8s.cluster import build_cluster
from netlab.k8s.objects import (
    ClusterSpec, ContainerPort, LabelSelector, Manifests, NodeSpec, Pod, Service, ServicePort,
    Source, Workload,
)


def random_cluster(seed: int, large: bool = False):
    rnd = random.Random(seed)
    nodes = 6 if large else rnd.randint(1, 6)
    spec = ClusterSpec(name=f"s{seed}", path="<random>",
                       nodes=[NodeSpec(f"n{i + 1}", f"192.168.9.{i + 10}") for i in range(nodes)],
                       pod_cidr="10.70.0.0/16", service_cidr="10.96.0.0/12")
    m = Manifests()
    apps = rnd.randint(1, 6)
    for k in range(apps):
        ports = [ContainerPort(8080, "TCP", "http"), ContainerPort(53, "UDP", "dns")]
        replicas = rnd.randint(0, 4 * nodes)
        if large and k == 0:
            replicas = 1001 + rnd.randint(0, 30)
        m.workloads.append(Workload("Deployment", "default", f"app{k}", replicas,
                                    LabelSelector((("app", f"app{k}"),)),
                                    Pod("default", "", {"app": f"app{k}"}, ports,
                                        ready=rnd.random() < 0.85)))
    node_port = 30100
    for k in range(rnd.randint(1, 8)):
        kind = rnd.choice(["ClusterIP", "ClusterIP", "NodePort", "LoadBalancer"])
        selector = {"app": f"app{rnd.randrange(apps + 1)}"}      # app<apps>: no pods
        ports = []
        for j in range(rnd.randint(1, 3)):
            proto = rnd.choice(["TCP", "TCP", "UDP", "SCTP"])
            target = rnd.choice([8080, 53, "http", "dns", 9999])
            np = None
            if kind != "ClusterIP" and rnd.random() < 0.8:
                node_port += 1
                np = node_port
            ports.append(ServicePort(f"p{j}" if rnd.random() < 0.8 or j else "", proto,
                                     80 + j, target, np))
        if len(ports) > 1 and not all(p.name for p in ports):
            ports = [ServicePort(p.name or f"q{i}", p.protocol, p.port, p.target_port,
                                 p.node_port) for i, p in enumerate(ports)]
        svc = Service("default", f"svc{k}", kind, selector, ports,
                      cluster_ip="None" if rnd.random() < 0.1 else None,
                      session_affinity=rnd.choice(["None", "None", "ClientIP"]),
                      affinity_timeout=rnd.choice([10800, 60]),
                      external_traffic_policy=rnd.choice(["Cluster", "Local"])
                      if kind != "ClusterIP" else "Cluster",
                      internal_traffic_policy=rnd.choice(["Cluster", "Cluster", "Local"]),
                      source=Source("<random>", k + 1, f"Service default/svc{k}"))
        m.services.append(svc)
    return build_cluster(spec, m)
