"""Read a cluster file and Kubernetes manifests (YAML, several documents per file,
files or directories) into ``ClusterSpec`` and ``Manifests``.

A mistake is a LabError naming the file, the line, the object and the field
path, the way ``kubectl`` names fields::

    shop.yaml:14: Deployment shop/frontend: spec.template.spec.containers[0].ports[0].containerPort: expected an integer, not 'http'

Kinds netlab does not model (ConfigMap, Ingress, …) are listed in
``Manifests.ignored`` and otherwise left alone.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import yaml

from netlab.errors import LabError
from netlab.k8s.objects import (
    ClusterSpec, ContainerPort, IPBlock, LabelSelector, Manifests, Namespace, NetworkPolicy,
    NodeSpec, PolicyPeer, PolicyPort, PolicyRule, Pod, Requirement, Service, ServicePort, Source,
    Workload,
)
from netlab.labs.yamlpos import PosDict, PosList, _convert

CLUSTER_KEYS = ("netlab", "kind", "name", "nodes", "podCIDR", "serviceCIDR", "clusterDomain",
                "network", "kubeProxy", "lan", "dns")
NODE_KEYS = ("name", "ip", "labels", "podCIDR")
NETWORKS = ("host-gw", "vxlan")
PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# kind -> apiVersion(s) it is read from
WORKLOAD_SPEC_KEYS = ("replicas", "selector", "template", "strategy", "minReadySeconds",
                      "revisionHistoryLimit", "progressDeadlineSeconds", "paused",
                      "updateStrategy")
SERVICE_SPEC_KEYS = ("type", "selector", "ports", "clusterIP", "clusterIPs", "sessionAffinity",
                     "sessionAffinityConfig", "externalTrafficPolicy", "internalTrafficPolicy",
                     "ipFamilies", "ipFamilyPolicy", "publishNotReadyAddresses",
                     "allocateLoadBalancerNodePorts", "loadBalancerClass", "externalIPs",
                     "loadBalancerSourceRanges", "healthCheckNodePort", "trafficDistribution")
KINDS = {
    "Namespace": ("v1",), "Pod": ("v1",), "Service": ("v1",),
    "Deployment": ("apps/v1",), "ReplicaSet": ("apps/v1",), "DaemonSet": ("apps/v1",),
    "NetworkPolicy": ("networking.k8s.io/v1",),
}


# --- YAML ---------------------------------------------------------------------------------

def load_documents(text: str, path: str) -> list[Any]:
    """Every document of a YAML stream, as PosDict/PosList values (empty ones skipped)."""
    loader = yaml.SafeLoader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                docs.append(_convert(loader, node, path))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise LabError(f"YAML syntax error: {err.problem or err.context or 'not valid YAML'}",
                       path=path, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise LabError(f"YAML syntax error: {err}", path=path) from None
    finally:
        loader.dispose()
    return [d for d in docs if d is not None]


def manifest_files(paths: list[str]) -> list[Path]:
    """Files named, and the .yaml/.yml/.json files of directories named (sorted, recursive)."""
    out: list[Path] = []
    for name in paths:
        p = Path(name)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml", ".json")
                          and f.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise LabError("no such file or directory", path=name,
                           hint="give -f a cluster file, a manifest file or a directory")
    return out


def load(paths: list[str]) -> tuple[ClusterSpec, Manifests]:
    """The cluster file and manifests among ``paths`` (the Cluster document may be the
    first document of any file; exactly one is needed)."""
    cluster: ClusterSpec | None = None
    manifests = Manifests()
    for f in manifest_files(paths):
        text = f.read_text()
        for doc in load_documents(text, str(f)):
            if isinstance(doc, PosDict) and doc.get("kind") == "Cluster" and "netlab" in doc:
                if cluster is not None:
                    raise LabError(f"a second Cluster (the first is in {cluster.path})",
                                   path=str(f), line=doc.line)
                cluster = parse_cluster(doc, str(f))
            else:
                read_object(doc, str(f), manifests)
    if cluster is None:
        raise LabError("no cluster file among the files given", path=", ".join(paths),
                       hint="one file needs 'netlab: 1' and 'kind: Cluster' (DESIGN.md §3)")
    return cluster, manifests


# --- field paths ----------------------------------------------------------------------------

class Fields:
    """Reads one object's fields, naming ``Kind ns/name`` and the field path on error."""

    def __init__(self, path: str, what: str):
        self.path = path
        self.what = what

    def fail(self, field: str, message: str, line: int, hint: str | None = None) -> LabError:
        prefix = f"{self.what}: " if self.what else ""
        where = f"{field}: " if field else ""
        return LabError(f"{prefix}{where}{message}", path=self.path, line=line, hint=hint)

    def mapping(self, value: Any, field: str, line: int, keys: tuple[str, ...] | None = None
                ) -> PosDict:
        if isinstance(value, dict) and not isinstance(value, PosDict):
            plain, value = value, PosDict(line)
            value.update(plain)
        if not isinstance(value, PosDict):
            raise self.fail(field, f"expected a mapping, not {_type(value)}", line)
        if keys is not None:
            for k in value:
                if k not in keys:
                    raise self.fail(_join(field, str(k)), "unknown field", value.line_of(k),
                                    hint="fields here: " + ", ".join(keys))
        return value

    def seq(self, value: Any, field: str, line: int) -> PosList:
        if value is None:
            return PosList(line)
        if not isinstance(value, PosList):
            raise self.fail(field, f"expected a list, not {_type(value)}", line)
        return value

    def string(self, value: Any, field: str, line: int) -> str:
        if not isinstance(value, str) or value == "":
            raise self.fail(field, f"expected a string, not {_type(value)}", line)
        return value

    def integer(self, value: Any, field: str, line: int, lo: int | None = None,
                hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"expected an integer, not {_type(value)}", line)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(field, f"{value} is out of range ({lo}-{hi})", line)
        return value

    def port(self, value: Any, field: str, line: int) -> int:
        return self.integer(value, field, line, 1, 65535)

    def int_or_name(self, value: Any, field: str, line: int) -> int | str:
        if isinstance(value, str) and not value.isdigit():
            if not PORT_NAME.match(value) or len(value) > 15:
                raise self.fail(field, f"'{value}' is not a port number or a port name "
                                       "(up to 15 lower-case letters, digits and '-')", line)
            return value
        if isinstance(value, str):
            value = int(value)
        return self.port(value, field, line)

    def protocol(self, value: Any, field: str, line: int) -> str:
        if value is None:
            return "TCP"
        if value not in PROTOCOLS:
            raise self.fail(field, f"unsupported value {_show(value)}: expected one of "
                                   + ", ".join(PROTOCOLS), line)
        return value

    def labels(self, value: Any, field: str, line: int) -> dict[str, str]:
        if value is None:
            return {}
        m = self.mapping(value, field, line)
        out = {}
        for k, v in m.items():
            if not isinstance(v, str):
                raise self.fail(_join(field, str(k)), f"expected a string, not {_type(v)}",
                                m.line_of(k), hint="quote label values: app: \"1\"")
            out[str(k)] = v
        return out

    def selector(self, value: Any, field: str, line: int) -> LabelSelector:
        if value is None:
            return LabelSelector()
        m = self.mapping(value, field, line, ("matchLabels", "matchExpressions"))
        labels = self.labels(m.get("matchLabels"), _join(field, "matchLabels"),
                             m.value_line("matchLabels"))
        exprs = []
        items = self.seq(m.get("matchExpressions"), _join(field, "matchExpressions"),
                         m.value_line("matchExpressions"))
        for i, item in enumerate(items):
            f = f"{field}.matchExpressions[{i}]"
            e = self.mapping(item, f, items.line_of(i), ("key", "operator", "values"))
            key = self.string(e.get("key"), f + ".key", e.line_of("key"))
            op = e.get("operator")
            if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
                raise self.fail(f + ".operator", f"unsupported value {_show(op)}: expected "
                                "In, NotIn, Exists or DoesNotExist", e.line_of("operator"))
            values = self.seq(e.get("values"), f + ".values", e.value_line("values"))
            if op in ("In", "NotIn") and not values:
                raise self.fail(f + ".values", f"must be non-empty when operator is {op}",
                                e.line_of("values"))
            if op in ("Exists", "DoesNotExist") and values:
                raise self.fail(f + ".values", f"must be empty when operator is {op}",
                                e.line_of("values"))
            exprs.append(Requirement(key, op, tuple(str(v) for v in values)))
        return LabelSelector(tuple(sorted(labels.items())), tuple(exprs))


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _type(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (PosDict, dict)):
        return "a mapping"
    if isinstance(value, (PosList, list)):
        return "a list"
    return _show(value)


def _show(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


# --- the cluster file -------------------------------------------------------------------------

def parse_cluster(doc: PosDict, path: str) -> ClusterSpec:
    f = Fields(path, "Cluster")
    f.mapping(doc, "", doc.line, CLUSTER_KEYS)
    if doc.get("netlab") != 1:
        raise f.fail("netlab", f"unsupported format version {_show(doc.get('netlab'))}: "
                               "expected 1", doc.line_of("netlab"))
    name = f.string(doc.get("name", "cluster"), "name", doc.line_of("name"))
    nodes_raw = f.seq(doc.get("nodes"), "nodes", doc.value_line("nodes"))
    if not nodes_raw:
        raise f.fail("nodes", "a cluster needs at least one node", doc.line_of("nodes"),
                     hint="nodes: [{name: node1, ip: 192.168.1.11}]")
    nodes: list[NodeSpec] = []
    for i, item in enumerate(nodes_raw):
        field = f"nodes[{i}]"
        n = f.mapping(item, field, nodes_raw.line_of(i), NODE_KEYS)
        node_name = f.string(n.get("name"), field + ".name", n.line_of("name"))
        if not DNS_1123_LABEL.match(node_name) or len(node_name) > 15:
            raise f.fail(field + ".name", f"'{node_name}' is not a node name netlab can use "
                         "(lower-case letters, digits and '-', up to 15)", n.line_of("name"))
        if any(other.name == node_name for other in nodes):
            raise f.fail(field + ".name", f"two nodes are called '{node_name}'",
                         n.line_of("name"))
        ip = _ipv4(f, n.get("ip"), field + ".ip", n.line_of("ip"))
        if any(other.ip == ip for other in nodes):
            raise f.fail(field + ".ip", f"two nodes have the address {ip}", n.line_of("ip"))
        labels = f.labels(n.get("labels"), field + ".labels", n.value_line("labels"))
        labels = {"kubernetes.io/hostname": node_name, "kubernetes.io/os": "linux", **labels}
        cidr = _cidr(f, n["podCIDR"], field + ".podCIDR", n.line_of("podCIDR")) \
            if "podCIDR" in n else None
        nodes.append(NodeSpec(node_name, ip, tuple(sorted(labels.items())), cidr))
    pod_cidr = _cidr(f, doc.get("podCIDR", "10.244.0.0/16"), "podCIDR", doc.line_of("podCIDR"))
    svc_cidr = _cidr(f, doc.get("serviceCIDR", "10.96.0.0/12"), "serviceCIDR",
                     doc.line_of("serviceCIDR"))
    if ipaddress.ip_network(pod_cidr).overlaps(ipaddress.ip_network(svc_cidr)):
        raise f.fail("serviceCIDR", f"{svc_cidr} overlaps the podCIDR {pod_cidr}",
                     doc.line_of("serviceCIDR"))
    if ipaddress.ip_network(svc_cidr).num_addresses < 16:
        raise f.fail("serviceCIDR", f"{svc_cidr} is too small (kube-dns takes the 10th address)",
                     doc.line_of("serviceCIDR"))
    network = doc.get("network", "host-gw")
    if network not in NETWORKS:
        raise f.fail("network", f"unsupported value {_show(network)}: expected host-gw or vxlan",
                     doc.line_of("network"))
    proxy = doc.get("kubeProxy", {"mode": "iptables"})
    proxy = f.mapping(proxy, "kubeProxy", doc.value_line("kubeProxy"), ("mode",))
    if proxy.get("mode", "iptables") != "iptables":
        raise f.fail("kubeProxy.mode", f"unsupported value {_show(proxy.get('mode'))}: "
                     "netlab models kube-proxy's iptables mode", proxy.line_of("mode"))
    domain = f.string(doc.get("clusterDomain", "cluster.local"), "clusterDomain",
                      doc.line_of("clusterDomain"))
    if not DNS_1123_SUBDOMAIN.match(domain):
        raise f.fail("clusterDomain", f"'{domain}' is not a DNS domain", doc.line_of("clusterDomain"))
    lan = None
    if "lan" in doc:
        lan_map = f.mapping(doc["lan"], "lan", doc.value_line("lan"), ("subnet",))
        lan = _cidr(f, lan_map.get("subnet"), "lan.subnet", lan_map.line_of("subnet"))
        for i, node in enumerate(nodes):
            if ipaddress.ip_address(node.ip) not in ipaddress.ip_network(lan):
                raise f.fail(f"nodes[{i}].ip", f"{node.ip} is not in the LAN {lan}",
                             nodes_raw.line_of(i))
    dns = doc.get("dns", True)
    if not isinstance(dns, bool):
        raise f.fail("dns", f"expected true or false, not {_type(dns)}", doc.line_of("dns"))
    return ClusterSpec(name=name, nodes=nodes, pod_cidr=pod_cidr, service_cidr=svc_cidr,
                       cluster_domain=domain, network=network, lan_subnet=lan, dns=dns, path=path)


def _ipv4(f: Fields, value: Any, field: str, line: int) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise f.fail(field, f"expected an IPv4 address, not {_type(value)}", line) from None


def _cidr(f: Fields, value: Any, field: str, line: int) -> str:
    try:
        return str(ipaddress.IPv4Network(str(value)))
    except ValueError:
        raise f.fail(field, f"expected an IPv4 network (CIDR with no host bits), not "
                            f"{_type(value)}", line) from None


# --- objects ------------------------------------------------------------------------------------

def read_object(doc: Any, path: str, out: Manifests) -> None:
    f = Fields(path, "")
    line = getattr(doc, "line", 1)
    obj = f.mapping(doc, "", line)
    if obj.get("kind") == "List" and "items" in obj:
        items = f.seq(obj["items"], "items", obj.value_line("items"))
        for item in items:
            read_object(item, path, out)
        return
    kind = obj.get("kind")
    if not isinstance(kind, str):
        raise f.fail("kind", "missing or not a string: every manifest names its kind",
                     obj.line_of("kind"), hint="kind: Pod, apiVersion: v1")
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, PosDict) else None
    if kind not in KINDS:
        out.ignored.append(f"{path}:{obj.line}: {kind} {name or '?'}")
        return
    api = obj.get("apiVersion")
    if api not in KINDS[kind]:
        raise f.fail("apiVersion", f"{kind} is read as apiVersion {' or '.join(KINDS[kind])}, "
                                   f"not {_show(api)}", obj.line_of("apiVersion"))
    meta = f.mapping(meta, "metadata", obj.value_line("metadata"))
    name = f.string(meta.get("name"), "metadata.name", meta.line_of("name"))
    if kind == "Namespace":
        what = f"Namespace {name}"
        fields = Fields(path, what)
        _dns_label(fields, name, "metadata.name", meta.line_of("name"))
        labels = fields.labels(meta.get("labels"), "metadata.labels", meta.value_line("labels"))
        out.namespaces.append(Namespace(name, {**labels, "kubernetes.io/metadata.name": name}))
        return
    namespace = meta.get("namespace", "default")
    fields = Fields(path, f"{kind} {namespace}/{name}")
    namespace = fields.string(namespace, "metadata.namespace", meta.line_of("namespace"))
    _dns_label(fields, namespace, "metadata.namespace", meta.line_of("namespace"))
    _dns_subdomain(fields, name, "metadata.name", meta.line_of("name"))
    labels = fields.labels(meta.get("labels"), "metadata.labels", meta.value_line("labels"))
    src = Source(path, obj.line, fields.what)
    spec = fields.mapping(obj.get("spec", PosDict(obj.line)), "spec", obj.value_line("spec"))
    if kind == "Pod":
        pod = pod_spec(fields, spec, "spec", namespace, name, labels, src)
        pod.ready = _ready(fields, obj)
        out.pods.append(pod)
    elif kind == "Service":
        out.services.append(service(fields, spec, namespace, name, src))
    elif kind == "NetworkPolicy":
        out.policies.append(network_policy(fields, spec, namespace, name, src))
    else:
        out.workloads.append(workload(fields, kind, spec, namespace, name, src))


def _dns_label(f: Fields, value: str, field: str, line: int) -> None:
    if not DNS_1123_LABEL.match(value) or len(value) > 63:
        raise f.fail(field, f"'{value}' is not a valid name: lower-case letters, digits and "
                            "'-', starting and ending with a letter or digit", line)


def _dns_subdomain(f: Fields, value: str, field: str, line: int) -> None:
    if not DNS_1123_SUBDOMAIN.match(value) or len(value) > 253:
        raise f.fail(field, f"'{value}' is not a valid name: lower-case letters, digits, '-' "
                            "and '.'", line)


def _ready(f: Fields, obj: PosDict) -> bool:
    """A pod is Ready unless its status says otherwise (a lab may write status.conditions
    or the annotation netlab.io/ready: "false" to model a failing readiness probe)."""
    meta = obj.get("metadata") or {}
    notes = meta.get("annotations") or {}
    if isinstance(notes, dict) and str(notes.get("netlab.io/ready", "true")).lower() == "false":
        return False
    status = obj.get("status")
    if isinstance(status, PosDict):
        for cond in status.get("conditions") or []:
            if isinstance(cond, dict) and cond.get("type") == "Ready":
                return str(cond.get("status")) == "True"
    return True


def pod_spec(f: Fields, spec: PosDict, field: str, namespace: str, name: str,
             labels: dict[str, str], src: Source) -> Pod:
    containers = f.seq(spec.get("containers"), f"{field}.containers",
                       spec.value_line("containers"))
    if not containers:
        raise f.fail(f"{field}.containers", "a pod needs at least one container",
                     spec.line_of("containers"))
    ports: list[ContainerPort] = []
    for ci, c in enumerate(containers):
        cf = f"{field}.containers[{ci}]"
        c = f.mapping(c, cf, containers.line_of(ci))
        f.string(c.get("name"), cf + ".name", c.line_of("name"))
        items = f.seq(c.get("ports"), cf + ".ports", c.value_line("ports"))
        for pi, p in enumerate(items):
            pf = f"{cf}.ports[{pi}]"
            p = f.mapping(p, pf, items.line_of(pi),
                          ("containerPort", "protocol", "name", "hostPort", "hostIP"))
            if "containerPort" not in p:
                raise f.fail(pf + ".containerPort", "required", p.line)
            number = f.port(p["containerPort"], pf + ".containerPort", p.line_of("containerPort"))
            proto = f.protocol(p.get("protocol"), pf + ".protocol", p.line_of("protocol"))
            pname = p.get("name")
            if pname is not None:
                pname = f.string(pname, pf + ".name", p.line_of("name"))
                if not PORT_NAME.match(pname) or len(pname) > 15 or pname.isdigit():
                    raise f.fail(pf + ".name", f"'{pname}' is not a port name (up to 15 "
                                 "lower-case letters, digits and '-', not all digits)",
                                 p.line_of("name"))
                if any(q.name == pname for q in ports):
                    raise f.fail(pf + ".name", f"duplicate port name '{pname}'", p.line_of("name"))
            ports.append(ContainerPort(number, proto, pname))
    node_name = spec.get("nodeName")
    if node_name is not None:
        node_name = f.string(node_name, f"{field}.nodeName", spec.line_of("nodeName"))
    selector = f.labels(spec.get("nodeSelector"), f"{field}.nodeSelector",
                        spec.value_line("nodeSelector"))
    host_network = spec.get("hostNetwork", False)
    if not isinstance(host_network, bool):
        raise f.fail(f"{field}.hostNetwork", f"expected true or false, not {_type(host_network)}",
                     spec.line_of("hostNetwork"))
    return Pod(namespace, name, labels, ports, node_name=node_name, node_selector=selector,
               host_network=host_network, source=src)


def workload(f: Fields, kind: str, spec: PosDict, namespace: str, name: str,
             src: Source) -> Workload:
    f.mapping(spec, "spec", src.line, WORKLOAD_SPEC_KEYS)
    replicas = 1
    if kind != "DaemonSet":
        replicas = f.integer(spec.get("replicas", 1), "spec.replicas", spec.line_of("replicas"),
                             0, 100000)
    if "selector" not in spec:
        raise f.fail("spec.selector", "required", spec.line,
                     hint="selector: {matchLabels: {app: NAME}} matching the template's labels")
    selector = f.selector(spec["selector"], "spec.selector", spec.value_line("selector"))
    template = f.mapping(spec.get("template"), "spec.template", spec.value_line("template"))
    tmeta = f.mapping(template.get("metadata", PosDict(template.line)), "spec.template.metadata",
                      template.value_line("metadata"))
    tlabels = f.labels(tmeta.get("labels"), "spec.template.metadata.labels",
                       tmeta.value_line("labels"))
    if selector.empty or not selector.matches(tlabels):
        raise f.fail("spec.template.metadata.labels", "`selector` does not match template "
                     "`labels`", tmeta.line_of("labels"))
    tspec = f.mapping(template.get("spec"), "spec.template.spec", template.value_line("spec"))
    pod = pod_spec(f, tspec, "spec.template.spec", namespace, "", tlabels, src)
    return Workload(kind, namespace, name, replicas, selector, pod, src)


def service(f: Fields, spec: PosDict, namespace: str, name: str, src: Source) -> Service:
    _dns_label(f, name, "metadata.name", src.line)
    f.mapping(spec, "spec", src.line, SERVICE_SPEC_KEYS)
    stype = spec.get("type", "ClusterIP")
    if stype not in SERVICE_TYPES:
        raise f.fail("spec.type", f"unsupported value {_show(stype)}: expected "
                     + ", ".join(SERVICE_TYPES), spec.line_of("type"),
                     hint="ExternalName Services have no proxying: netlab does not model them"
                     if stype == "ExternalName" else None)
    cluster_ip = spec.get("clusterIP")
    if cluster_ip is not None and cluster_ip != "None":
        cluster_ip = _ipv4(f, cluster_ip, "spec.clusterIP", spec.line_of("clusterIP"))
    if cluster_ip == "None" and stype != "ClusterIP":
        raise f.fail("spec.clusterIP", f"may not be None for a {stype} Service",
                     spec.line_of("clusterIP"))
    selector = spec.get("selector")
    if selector is not None:
        selector = f.labels(selector, "spec.selector", spec.value_line("selector"))
    items = f.seq(spec.get("ports"), "spec.ports", spec.value_line("ports"))
    if not items and cluster_ip != "None":
        raise f.fail("spec.ports", "required", spec.line_of("ports"))
    ports: list[ServicePort] = []
    for i, p in enumerate(items):
        pf = f"spec.ports[{i}]"
        p = f.mapping(p, pf, items.line_of(i),
                      ("name", "protocol", "port", "targetPort", "nodePort", "appProtocol"))
        pname = p.get("name", "")
        if pname != "":
            pname = f.string(pname, pf + ".name", p.line_of("name"))
            _dns_label(f, pname, pf + ".name", p.line_of("name"))
        if len(items) > 1 and not pname:
            raise f.fail(pf + ".name", "required when a Service has more than one port",
                         p.line)
        if any(q.name == pname for q in ports):
            raise f.fail(pf + ".name", f"duplicate value '{pname}'", p.line_of("name"))
        if "port" not in p:
            raise f.fail(pf + ".port", "required", p.line)
        number = f.port(p["port"], pf + ".port", p.line_of("port"))
        proto = f.protocol(p.get("protocol"), pf + ".protocol", p.line_of("protocol"))
        target = f.int_or_name(p.get("targetPort", number), pf + ".targetPort",
                               p.line_of("targetPort"))
        node_port = p.get("nodePort")
        if node_port is not None:
            if stype == "ClusterIP":
                raise f.fail(pf + ".nodePort", "may not be used when `type` is 'ClusterIP'",
                             p.line_of("nodePort"))
            node_port = f.integer(node_port, pf + ".nodePort", p.line_of("nodePort"), 30000, 32767)
        if any((q.port, q.protocol) == (number, proto) for q in ports):
            raise f.fail(pf, f"duplicate port {number}/{proto}", p.line)
        ports.append(ServicePort(pname, proto, number, target, node_port))
    affinity = spec.get("sessionAffinity", "None")
    if affinity not in ("None", "ClientIP"):
        raise f.fail("spec.sessionAffinity", f"unsupported value {_show(affinity)}: expected "
                     "None or ClientIP", spec.line_of("sessionAffinity"))
    timeout = 10800
    cfg = spec.get("sessionAffinityConfig")
    if cfg is not None:
        cfg = f.mapping(cfg, "spec.sessionAffinityConfig", spec.value_line("sessionAffinityConfig"),
                        ("clientIP",))
        cip = f.mapping(cfg.get("clientIP", PosDict(cfg.line)), "spec.sessionAffinityConfig.clientIP",
                        cfg.value_line("clientIP"), ("timeoutSeconds",))
        if "timeoutSeconds" in cip:
            timeout = f.integer(cip["timeoutSeconds"],
                                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                                cip.line_of("timeoutSeconds"), 1, 86400)
    etp = spec.get("externalTrafficPolicy", "Cluster")
    if etp not in ("Cluster", "Local"):
        raise f.fail("spec.externalTrafficPolicy", f"unsupported value {_show(etp)}: expected "
                     "Cluster or Local", spec.line_of("externalTrafficPolicy"))
    if "externalTrafficPolicy" in spec and stype == "ClusterIP":
        raise f.fail("spec.externalTrafficPolicy", "may only be set on NodePort and "
                     "LoadBalancer Services", spec.line_of("externalTrafficPolicy"))
    itp = spec.get("internalTrafficPolicy", "Cluster")
    if itp not in ("Cluster", "Local"):
        raise f.fail("spec.internalTrafficPolicy", f"unsupported value {_show(itp)}: expected "
                     "Cluster or Local", spec.line_of("internalTrafficPolicy"))
    health = spec.get("healthCheckNodePort")
    if health is not None:
        if stype != "LoadBalancer" or etp != "Local":
            raise f.fail("spec.healthCheckNodePort", "may only be set when `type` is "
                         "'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
                         spec.line_of("healthCheckNodePort"))
        health = f.integer(health, "spec.healthCheckNodePort", spec.line_of("healthCheckNodePort"),
                           30000, 32767)
    return Service(namespace, name, stype, selector, ports, cluster_ip, affinity, timeout,
                   etp, itp, src, health)


def network_policy(f: Fields, spec: PosDict, namespace: str, name: str,
                   src: Source) -> NetworkPolicy:
    f.mapping(spec, "spec", src.line, ("podSelector", "policyTypes", "ingress", "egress"))
    if "podSelector" not in spec:
        raise f.fail("spec.podSelector", "required (podSelector: {} selects every pod of the "
                     "namespace)", spec.line)
    selector = f.selector(spec["podSelector"], "spec.podSelector", spec.value_line("podSelector"))
    ingress = _rules(f, spec, "ingress", "from")
    egress = _rules(f, spec, "egress", "to")
    if "policyTypes" in spec:
        types = f.seq(spec["policyTypes"], "spec.policyTypes", spec.value_line("policyTypes"))
        for i, t in enumerate(types):
            if t not in ("Ingress", "Egress"):
                raise f.fail(f"spec.policyTypes[{i}]", f"unsupported value {_show(t)}: expected "
                             "Ingress or Egress", types.line_of(i))
        policy_types = tuple(dict.fromkeys(types))
    else:
        # The API server's default: Ingress always, Egress when there are egress rules.
        policy_types = ("Ingress", "Egress") if "egress" in spec and spec["egress"] else ("Ingress",)
    return NetworkPolicy(namespace, name, selector, policy_types, ingress, egress, src)


def _rules(f: Fields, spec: PosDict, direction: str, peer_key: str) -> list[PolicyRule]:
    items = f.seq(spec.get(direction), f"spec.{direction}", spec.value_line(direction))
    rules = []
    for i, item in enumerate(items):
        rf = f"spec.{direction}[{i}]"
        r = f.mapping(item, rf, items.line_of(i), (peer_key, "ports"))
        peers = []
        plist = f.seq(r.get(peer_key), f"{rf}.{peer_key}", r.value_line(peer_key))
        for j, p in enumerate(plist):
            pf = f"{rf}.{peer_key}[{j}]"
            p = f.mapping(p, pf, plist.line_of(j), ("podSelector", "namespaceSelector", "ipBlock"))
            if not p:
                raise f.fail(pf, "must specify a peer (podSelector, namespaceSelector or "
                             "ipBlock)", plist.line_of(j))
            block = None
            if "ipBlock" in p:
                if "podSelector" in p or "namespaceSelector" in p:
                    raise f.fail(pf + ".ipBlock", "may not be combined with podSelector or "
                                 "namespaceSelector", p.line_of("ipBlock"))
                b = f.mapping(p["ipBlock"], pf + ".ipBlock", p.value_line("ipBlock"),
                              ("cidr", "except"))
                cidr = _policy_cidr(f, b.get("cidr"), pf + ".ipBlock.cidr", b.line_of("cidr"))
                excepts = []
                elist = f.seq(b.get("except"), pf + ".ipBlock.except", b.value_line("except"))
                for k, e in enumerate(elist):
                    ef = f"{pf}.ipBlock.except[{k}]"
                    e = _policy_cidr(f, e, ef, elist.line_of(k))
                    if not ipaddress.ip_network(e).subnet_of(ipaddress.ip_network(cidr)) or e == cidr:
                        raise f.fail(ef, f"{e} must be a strict subset of {cidr}", elist.line_of(k))
                    excepts.append(e)
                block = IPBlock(cidr, tuple(excepts))
            pods = f.selector(p["podSelector"], pf + ".podSelector", p.value_line("podSelector")) \
                if "podSelector" in p else None
            nss = f.selector(p["namespaceSelector"], pf + ".namespaceSelector",
                             p.value_line("namespaceSelector")) if "namespaceSelector" in p else None
            peers.append(PolicyPeer(pods, nss, block))
        ports = []
        portlist = f.seq(r.get("ports"), f"{rf}.ports", r.value_line("ports"))
        for j, p in enumerate(portlist):
            pf = f"{rf}.ports[{j}]"
            p = f.mapping(p, pf, portlist.line_of(j), ("protocol", "port", "endPort"))
            proto = f.protocol(p.get("protocol"), pf + ".protocol", p.line_of("protocol"))
            port = f.int_or_name(p["port"], pf + ".port", p.line_of("port")) if "port" in p else None
            end = None
            if "endPort" in p:
                if not isinstance(port, int):
                    raise f.fail(pf + ".endPort", "may only be used with a numeric port",
                                 p.line_of("endPort"))
                end = f.port(p["endPort"], pf + ".endPort", p.line_of("endPort"))
                if end < port:
                    raise f.fail(pf + ".endPort", f"must be at least port ({port})",
                                 p.line_of("endPort"))
            ports.append(PolicyPort(proto, port, end))
        rules.append(PolicyRule(tuple(peers), tuple(ports)))
    return rules


def _policy_cidr(f: Fields, value: Any, field: str, line: int) -> str:
    try:
        return str(ipaddress.IPv4Network(str(value), strict=False))
    except ValueError:
        raise f.fail(field, f"expected an IPv4 CIDR, not {_type(value)}", line) from None
