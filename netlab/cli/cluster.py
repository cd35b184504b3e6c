"""`netlab cluster up | show | reach | down | verify`: a Kubernetes cluster from a cluster
file and manifests (DESIGN.md §3 "Cluster file"), built in the model, or with `--backend
real` on this machine's kernel in namespaces netlab creates (as `netlab real up` builds a
lab whose `cluster:` key holds the same files: the journal is named after the cluster)."""

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
                    "sudo netlab cluster up -f cluster.yaml -f manifests/ --backend real",
                    "sudo netlab cluster down -f cluster.yaml -f manifests/",
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


def as_lab(cluster, files: list[str]):
    """The cluster as a lab with no steps (a lab's ``cluster:`` key): what real mode
    builds, verifies and removes; its namespaces are nl-NAME-NODE and nl-NAME-NODE-POD."""
    from netlab.labs.model import Lab

    name = cluster.spec.name
    return Lab(path=files[0], name=name, title=f"the cluster {name}", description="",
               nodes=[n.name for n in cluster.nodes], lans=[], cluster=cluster)


def _again(files: list[str]) -> str:
    """The -f options as the user gave them (for a hint to run another command)."""
    return " ".join(f"-f {f}" for f in files)


def _real_ready() -> None:
    import shutil

    from netlab.cli.real import need_root

    need_root()
    if shutil.which("iptables-restore") is None:
        fail("a cluster needs `iptables-restore` (kube-proxy's rules), which is not on PATH "
             "(apt-get install iptables)")


def _up_real(cluster, files: list[str], as_json: bool) -> None:
    from netlab.backends.journal import Journal
    from netlab.cli.common import EXIT_BAD_INPUT
    from netlab.labs.kernel import journal_dir, real_lab_name, up_lab

    _real_ready()
    lab = as_lab(cluster, files)
    name = real_lab_name(lab)
    again = _again(files)
    if Journal.load(name, journal_dir()) is not None:
        fail(f"the cluster {name} is up already on this kernel: `netlab cluster down {again}` "
             f"removes it")
    report = up_lab(lab)
    if as_json:
        print_json({**show_json(cluster), "real": report.to_json()})
    if report.error is not None:
        if not as_json:
            typer.echo(f"netlab: {report.error}", err=True)
            typer.echo(f"(the cluster is partly up: `netlab cluster down {again}` removes it)",
                       err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if as_json:
        return
    for line in summary_lines(cluster):
        typer.echo(line)
    typer.echo(f"on this kernel: {len(report.names)} namespaces, {report.listeners} "
               f"listeners running")
    for key, real in report.names.items():
        typer.echo(f"  {key:<28} {real}")
    typer.echo(f"run a command in one: netlab real exec {name} NODE/NAMESPACE -- CMD; "
               f"remove them: netlab cluster down {again}")


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
       backend: str = typer.Option("model", "--backend", metavar="model|real",
                                   help="model, or real: this kernel, in namespaces netlab "
                                        "creates (root)."),
       as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Build the cluster: check every file, place the pods, attach them, write the rules.
    With `--backend real` (root): the same on this kernel, left up until `cluster down`."""
    _backend(backend)
    files = _files(files)
    if backend == "real":
        from netlab.k8s.cluster import load_cluster

        _up_real(load_cluster(files), files, as_json)
        return
    cluster, world = build(files)
    if as_json:
        print_json({**show_json(cluster), "namespaces": len(world.namespaces)})
        return
    for line in summary_lines(cluster):
        typer.echo(line)


@app.command("show", epilog=examples("netlab cluster show -f c.yaml -f m/ --json",
                                     "netlab cluster show -f c.yaml -f m/ --iptables-save node1",
                                     "netlab cluster show -f c.yaml -f m/ --resolv-conf pod/shop/web",
                                     "sudo netlab cluster show -f c.yaml -f m/ --backend real "
                                     "--iptables-save node1"))
@handles_errors
def show(files: list[str] = typer.Option(None, "-f", "--file", help=FILES_HELP, metavar="PATH"),
         iptables_save: str = typer.Option(None, "--iptables-save", metavar="NODE",
                                           help="Print the node's iptables-save."),
         resolv_conf: str = typer.Option(None, "--resolv-conf", metavar="pod/NS/NAME",
                                         help="Print the pod's /etc/resolv.conf."),
         backend: str = typer.Option("model", "--backend", metavar="model|real",
                                     help="model, or real: the cluster `up --backend real` "
                                          "made on this kernel (its namespaces; "
                                          "--iptables-save from the kernel)."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the nodes, pods (node, IP), Services (ClusterIP, ports), EndpointSlices."""
    _backend(backend)
    files = _files(files)
    if backend == "real":
        from netlab.k8s.cluster import load_cluster

        _show_real(load_cluster(files), files, iptables_save, resolv_conf, as_json)
        return
    cluster, world = build(files)
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


def _show_real(cluster, files: list[str], iptables_save: str | None, resolv_conf: str | None,
               as_json: bool) -> None:
    """show, of the cluster that is up on this kernel: its namespaces' real names, and a
    node's rules as the kernel's iptables-save prints them."""
    import subprocess

    from netlab.backends.journal import Journal
    from netlab.cli.real import need_root
    from netlab.k8s.endpoints import source_netns
    from netlab.labs.kernel import journal_dir, real_lab_name

    need_root()
    name = real_lab_name(as_lab(cluster, files))
    journal = Journal.load(name, journal_dir())
    if journal is None:
        fail(f"the cluster {name} is not up on this kernel (netlab cluster up "
             f"{_again(files)} --backend real)")
    names = {e.key: e.name for e in journal.entries if e.kind == "netns" and e.key}
    if iptables_save is not None:
        key = source_netns(cluster, iptables_save if "/" in iptables_save
                           else f"node/{iptables_save}")
        if key not in names:
            fail(f"{iptables_save}: no namespace of the cluster {name} on this kernel")
        done = subprocess.run(["ip", "netns", "exec", names[key], "iptables-save"],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            fail(f"iptables-save in {names[key]}: {done.stderr.strip()}")
        typer.echo(done.stdout, nl=False)
        return
    if resolv_conf is not None:
        fail("--resolv-conf prints the file kubelet writes, which is not kernel state: "
             "it goes with --backend model")
    if as_json:
        print_json({**show_json(cluster), "real": {"cluster": name, "namespaces": names}})
        return
    for line in summary_lines(cluster):
        typer.echo(line)
    typer.echo(f"on this kernel ({name}): {len(names)} namespaces")
    for key, real in names.items():
        typer.echo(f"  {key:<28} {real}")


@app.command("reach", epilog=examples(
    "netlab cluster reach -f c.yaml -f m/ --port 80",
    "sudo netlab cluster reach -f c.yaml -f m/ --port 80 --backend real",
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
          backend: str = typer.Option("model", "--backend", metavar="model|real",
                                      help="model (a trace per pair), or real: the cluster "
                                           "built on this kernel (root), a real connection "
                                           "per pair, the namespaces removed after."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The pod × pod truth table: can each pod connect to each pod on --proto/--port?"""
    from netlab.k8s import reach as r
    from netlab.k8s.endpoints import pod_of

    proto = proto.lower()
    if proto not in ("tcp", "udp", "icmp"):
        fail(f"--proto: '{proto}' is not tcp, udp or icmp")
    _backend(backend)
    files = _files(files)
    used_port = None if proto == "icmp" else port
    if backend == "real":
        if explain_pair:
            fail("--explain shows the rules the model's trace met: it goes with --backend model")
        from netlab.k8s.cluster import load_cluster

        cells = _real_matrix(load_cluster(files), files, proto, used_port, namespace or None)
        _print_matrix(cells, proto, used_port, as_json)
        return
    cluster, world = build(files)
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
    _print_matrix(r.matrix(cluster, world, proto, used_port, namespace or None), proto,
                  used_port, as_json)


def _real_matrix(cluster, files: list[str], proto: str, port: int | None,
                 namespaces: list[str] | None) -> dict[str, dict[str, bool]]:
    """reach.matrix, each cell a probe on the kernel (sent all at once) to a cluster built
    for it under a name of its own (CLUSTER-reach: the cluster may be up beside it)."""
    from netlab.k8s import reach as r
    from netlab.k8s.kubelet import pod_netns_key
    from netlab.labs.kernel import real_lab_name
    from netlab.labs.verify import kernel_matrix

    _real_ready()
    lab = as_lab(cluster, files)
    pods = r.pods_of(cluster, namespaces)
    pairs = [(pod_netns_key(src), dst.ip) for src in pods for dst in pods]
    seen = iter(kernel_matrix(lab, pairs, proto, port, name=f"{real_lab_name(lab)}-reach"))
    return {src.key: {dst.key: next(seen).outcome == "success" for dst in pods}
            for src in pods}


def _print_matrix(cells: dict[str, dict[str, bool]], proto: str, used_port: int | None,
                  as_json: bool) -> None:
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


@app.command("down", epilog=examples("sudo netlab cluster down -f cluster.yaml -f manifests/"))
@handles_errors
def down(files: list[str] = typer.Option(None, "-f", "--file", help=FILES_HELP, metavar="PATH")
         ) -> None:
    """Remove what `cluster up --backend real` made: exactly the namespaces its journal lists
    (also after a crash), and the pods' listeners."""
    from netlab.cli.real import need_root
    from netlab.k8s.cluster import load_cluster
    from netlab.labs.kernel import down_lab, real_lab_name

    files = _files(files)
    need_root()
    name = real_lab_name(as_lab(load_cluster(files), files))
    removed = down_lab(name)
    if not removed:
        typer.echo(f"the cluster {name} is not up on this kernel: nothing to remove")
        return
    typer.echo(f"removed {len(removed)} namespaces of the cluster {name}")


@app.command("verify", epilog=examples(
    "sudo netlab cluster verify -f cluster.yaml -f manifests/",
    "sudo netlab cluster verify -f cluster.yaml -f manifests/ --json --cap 50"))
@handles_errors
def verify(files: list[str] = typer.Option(None, "-f", "--file", help=FILES_HELP, metavar="PATH"),
           as_json: bool = typer.Option(False, "--json", help="Print JSON."),
           cap: int = typer.Option(200, "--cap", min=0,
                                   help="At most this many automatic probes.")) -> None:
    """Build the cluster in the model and on this kernel (root) and compare them probe by
    probe, as `netlab real verify` does for a lab: every pod and node to every address,
    ICMP and the listener ports. Exit 1 on any difference; the namespaces are removed."""
    from netlab.cli.common import EXIT_FAILED
    from netlab.cli.real import _print_verify
    from netlab.k8s.cluster import load_cluster
    from netlab.labs.verify import verify_lab

    files = _files(files)
    cluster = load_cluster(files)
    _real_ready()
    result = verify_lab(as_lab(cluster, files), cap=cap)
    if as_json:
        print_json(result.to_json())
    else:
        _print_verify(result)
    raise typer.Exit(EXIT_FAILED if result.differences else 0)
