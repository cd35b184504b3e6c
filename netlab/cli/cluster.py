"""`netlab cluster up | show | reach`: a Kubernetes cluster from a cluster file and
manifests, built in the model (DESIGN.md §3 "Cluster file")."""

from __future__ import annotations

from typing import Any, Optional

import typer

from netlab.cli.common import examples, fail, handles_errors, print_json

app = typer.Typer(
    name="cluster",
    rich_markup_mode="markdown",
    help="Build a Kubernetes cluster from a cluster file and manifests: nodes, pods "
         "attached through the CNI bridge plugin, kube-proxy's rules, NetworkPolicies.",
    no_args_is_help=True,
    epilog=examples("netlab cluster up -f cluster.yaml -f manifests/",
                    "netlab cluster show -f cluster.yaml -f manifests/ --iptables-save node1",
                    "netlab cluster reach -f cluster.yaml -f manifests/ --port 80 --json",
                    "netlab trace -f cluster.yaml -f manifests/ --from pod/shop/web --to "
                    "svc/shop/backend:80"),
)

FILES_HELP = "The cluster file, manifest files and directories of manifests (repeat -f)."


def _files(files: list[str] | None) -> list[str]:
    if not files:
        fail("give the cluster file and the manifests with -f (e.g. -f cluster.yaml -f manifests/)")
    return files


def _backend(backend: str) -> None:
    if backend not in ("model", "real"):
        fail(f"--backend: '{backend}' is not model or real")
    if backend == "real":
        fail("--backend real: the cluster runs in the model only so far "
             "(real mode for clusters is not built yet)")


def build(files: list[str]):
    from netlab.k8s.build import build_model
    from netlab.k8s.cluster import load_cluster

    cluster = load_cluster(files)
    return cluster, build_model(cluster).world


def show_json(cluster) -> dict[str, Any]:
    return {
        "name": cluster.spec.name, "network": cluster.spec.network,
        "podCIDR": cluster.spec.pod_cidr, "serviceCIDR": cluster.spec.service_cidr,
        "clusterDomain": cluster.spec.cluster_domain, "dnsIP": cluster.dns_ip,
        "nodes": [{"name": n.name, "ip": n.ip, "podCIDR": n.pod_cidr} for n in cluster.nodes],
        "pods": [{"namespace": p.namespace, "name": p.name, "node": p.node, "ip": p.ip,
                  "ready": p.ready, **({"owner": p.owner} if p.owner else {})}
                 for p in cluster.pods],
        "services": [{"namespace": s.namespace, "name": s.name, "type": s.type,
                      "clusterIP": s.cluster_ip,
                      "ports": [{"name": p.name, "protocol": p.protocol, "port": p.port,
                                 "targetPort": p.target_port,
                                 **({"nodePort": p.node_port} if p.node_port else {})}
                                for p in s.ports]} for s in cluster.services],
        "endpointSlices": [{"namespace": sl.namespace, "name": sl.name, "service": sl.service,
                            "ports": [{"name": n, "protocol": pr, "port": po}
                                      for n, pr, po in sl.ports],
                            "endpoints": [{"address": e.ip, "ready": e.ready, "nodeName": e.node,
                                           **({"pod": e.pod} if e.pod else {})}
                                          for e in sl.endpoints]}
                           for slices in cluster.slices.values() for sl in slices],
        "networkPolicies": [{"namespace": p.namespace, "name": p.name,
                             "policyTypes": list(p.policy_types)} for p in cluster.policies],
        "ignored": cluster.ignored,
    }


def summary_lines(cluster) -> list[str]:
    lines = [f"cluster {cluster.spec.name}: {len(cluster.nodes)} nodes, {len(cluster.pods)} pods, "
             f"{len(cluster.services)} Services, {len(cluster.policies)} NetworkPolicies "
             f"({cluster.spec.network}, kube-proxy iptables)"]
    for n in cluster.nodes:
        lines.append(f"  node {n.name:<12} {n.ip:<15} pods {n.pod_cidr}")
    for p in cluster.pods:
        ready = "" if p.ready else "  (not ready)"
        lines.append(f"  pod  {p.key:<40} {p.node:<10} {p.ip}{ready}")
    for s in cluster.services:
        ports = ", ".join(f"{p.port}/{p.protocol}" + (f":{p.node_port}" if p.node_port else "")
                          for p in s.ports)
        lines.append(f"  svc  {s.key:<40} {s.type:<10} {s.cluster_ip}  {ports}")
    for text in cluster.ignored:
        lines.append(f"  ignored (not modelled): {text}")
    return lines


@app.command("up", epilog=examples("netlab cluster up -f cluster.yaml -f manifests/"))
@handles_errors
def up(files: list[str] = typer.Option(None, "-f", "--file", help=FILES_HELP, metavar="PATH"),
       backend: str = typer.Option("model", "--backend", help="model (real: not built yet).",
                                   metavar="model|real"),
       as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Build the cluster: check every file, place the pods, attach them, write the rules."""
    _backend(backend)
    cluster, world = build(_files(files))
    if as_json:
        print_json({**show_json(cluster), "namespaces": len(world.namespaces)})
        return
    for line in summary_lines(cluster):
        typer.echo(line)


@app.command("show", epilog=examples("netlab cluster show -f c.yaml -f m/ --json",
                                     "netlab cluster show -f c.yaml -f m/ --iptables-save node1",
                                     "netlab cluster show -f c.yaml -f m/ --resolv-conf pod/shop/web"))
@handles_errors
def show(files: list[str] = typer.Option(None, "-f", "--file", help=FILES_HELP, metavar="PATH"),
         iptables_save: str = typer.Option(None, "--iptables-save", metavar="NODE",
                                           help="Print the node's iptables-save."),
         resolv_conf: str = typer.Option(None, "--resolv-conf", metavar="pod/NS/NAME",
                                         help="Print the pod's /etc/resolv.conf."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the nodes, pods (node, IP), Services (ClusterIP, ports), EndpointSlices."""
    cluster, world = build(_files(files))
    if iptables_save is not None:
        from netlab.k8s.endpoints import source_netns
        from netlab.netfilter.restore import iptables_save as save

        key = source_netns(cluster, iptables_save if "/" in iptables_save
                           else f"node/{iptables_save}")
        typer.echo(save(world.namespaces[key]), nl=False)
        return
    if resolv_conf is not None:
        from netlab.k8s.endpoints import pod_of
        from netlab.k8s.kubelet import resolv_conf as conf

        typer.echo(conf(cluster, pod_of(cluster, resolv_conf)), nl=False)
        return
    if as_json:
        print_json(show_json(cluster))
        return
    for line in summary_lines(cluster):
        typer.echo(line)


@app.command("reach", epilog=examples(
    "netlab cluster reach -f c.yaml -f m/ --port 80",
    "netlab cluster reach -f c.yaml -f m/ --proto udp --port 53 --json",
    "netlab cluster reach -f c.yaml -f m/ --explain x/a y/b"))
@handles_errors
def reach(files: list[str] = typer.Option(None, "-f", "--file", help=FILES_HELP, metavar="PATH"),
          proto: str = typer.Option("tcp", "--proto", metavar="tcp|udp|icmp"),
          port: int = typer.Option(80, "--port", min=1, max=65535, metavar="N"),
          namespace: list[str] = typer.Option(None, "-n", "--namespace", metavar="NS",
                                              help="Only these namespaces (default: all but "
                                                   "kube-system)."),
          explain_pair: Optional[tuple[str, str]] = typer.Option(None, "--explain",
                                                       metavar="FROM TO",
                                                       help="Why FROM can or cannot reach TO "
                                                            "(pods as NS/NAME)."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The pod × pod truth table: can each pod connect to each pod on --proto/--port?"""
    from netlab.k8s import reach as r
    from netlab.k8s.endpoints import pod_of

    proto = proto.lower()
    if proto not in ("tcp", "udp", "icmp"):
        fail(f"--proto: '{proto}' is not tcp, udp or icmp")
    cluster, world = build(_files(files))
    used_port = None if proto == "icmp" else port
    if explain_pair:
        src, dst = (pod_of(cluster, ref) for ref in explain_pair)
        lines = r.explain(cluster, world, src, dst, proto, used_port)
        if as_json:
            print_json({"from": src.key, "to": dst.key, "proto": proto, "port": used_port,
                        "explain": lines})
        else:
            for line in lines:
                typer.echo(line)
        return
    cells = r.matrix(cluster, world, proto, used_port, namespace or None)
    if as_json:
        print_json({"proto": proto, "port": used_port, "matrix": cells})
        return
    names = list(cells)
    width = max((len(n) for n in names), default=4)
    typer.echo(" " * (width + 1) + " ".join(f"{i + 1:>3}" for i in range(len(names))))
    for i, src in enumerate(names):
        row = " ".join(f"{'.' if cells[src][d] else 'X':>3}" for d in names)
        typer.echo(f"{src:<{width}} {row}   {i + 1}")
    typer.echo(f"({proto}{'/' + str(used_port) if used_port else ''}; row: from, column: to; "
               ". reaches, X does not)")
