"""kube-proxy in iptables mode: the rules it writes on one node, as it writes them.

Followed: kubernetes/kubernetes ``pkg/proxy/iptables/proxier.go`` at v1.33
(``syncProxyRules``, ``writeServiceToEndpointRules``, ``iptablesJumpChains``,
``iptablesKubeletJumpChains``; the chain-name functions ``portProtoHash`` and
``servicePortEndpointChainName``), with kube-proxy's defaults: masquerade bit 14
(``0x4000``), ``--cluster-cidr`` set (the local-traffic detector is
``! -s <podCIDR>``), ``--nodeport-addresses`` unset (NodePorts on every local
address), ``localhostNodePorts`` on, ``--random-fully`` supported, no nfacct
counters. Services are written in the order of their port names (kube-proxy
walks a Go map: any order is what a real node could show) and each one's
endpoints in the order of their ``IP:port`` strings, as kube-proxy's
EndpointSlice cache sorts them.

Three payloads make a node's tables, applied in order with ``--noflush``:
``kubelet_payload`` (kubelet's canary and KUBE-FIREWALL chains), ``startup_payload``
(the jumps kube-proxy prepends to the built-in chains unless they exist) and
``sync_payload`` (what one full ``syncProxyRules`` restores).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

KUBE_PROXY_VERSION = "v1.33"
MASQ_MARK = "0x4000"
LARGE_CLUSTER_ENDPOINTS = 1000          # above this, rule comments are left out
LOCALNET_COMMENT = '"block incoming localnet connections"'


# --- chain names: base32(sha256(servicePortName + protocol [+ endpoint]))[:16] ---------

def port_proto_hash(service_port_name: str, protocol: str) -> str:
    digest = hashlib.sha256((service_port_name + protocol).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def svc_chain(service_port_name: str, protocol: str) -> str:
    return "KUBE-SVC-" + port_proto_hash(service_port_name, protocol)


def svl_chain(service_port_name: str, protocol: str) -> str:
    return "KUBE-SVL-" + port_proto_hash(service_port_name, protocol)


def ext_chain(service_port_name: str, protocol: str) -> str:
    return "KUBE-EXT-" + port_proto_hash(service_port_name, protocol)


def fw_chain(service_port_name: str, protocol: str) -> str:
    return "KUBE-FW-" + port_proto_hash(service_port_name, protocol)


def sep_chain(service_port_name: str, protocol: str, endpoint: str) -> str:
    digest = hashlib.sha256((service_port_name + protocol + endpoint).encode()).digest()
    return "KUBE-SEP-" + base64.b32encode(digest).decode()[:16]


def probability(n: int) -> str:
    """computeProbability: ``%0.10f`` of 1/n."""
    return f"{1.0 / n:0.10f}"


# --- what the proxier knows about a Service port -----------------------------------------

@dataclass(frozen=True)
class EndpointInfo:
    ip: str
    port: int
    node: str | None
    ready: bool = True

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePortInfo:
    name: str                            # ServicePortName.String(): "ns/svc:port" or "ns/svc"
    protocol: str                        # lower case: tcp | udp | sctp
    cluster_ip: str
    port: int
    endpoints: tuple[EndpointInfo, ...]
    node_port: int | None = None
    affinity_seconds: int | None = None  # ClientIP session affinity
    external_local: bool = False         # externalTrafficPolicy: Local
    internal_local: bool = False         # internalTrafficPolicy: Local

    @property
    def externally_accessible(self) -> bool:
        return self.node_port is not None

    @property
    def external_policy_local(self) -> bool:
        return self.externally_accessible and self.external_local

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_local or (self.externally_accessible and not self.external_local)

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_local or self.external_policy_local


def service_ports(cluster) -> list[ServicePortInfo]:
    """Every proxied Service port of a cluster (headless Services are not proxied)."""
    out = []
    for svc in cluster.services:
        if svc.headless or svc.cluster_ip is None:
            continue
        for port in svc.ports:
            name = svc.key + (f":{port.name}" if port.name else "")
            eps = sorted({EndpointInfo(ep.ip, n, ep.node, ep.ready)
                          for ep, n in cluster.endpoints(svc, port)}, key=str)
            out.append(ServicePortInfo(
                name, port.protocol.lower(), svc.cluster_ip, port.port, tuple(eps),
                node_port=port.node_port if svc.type != "ClusterIP" else None,
                affinity_seconds=svc.affinity_timeout if svc.session_affinity == "ClientIP"
                else None,
                external_local=svc.external_traffic_policy == "Local",
                internal_local=svc.internal_traffic_policy == "Local"))
    return sorted(out, key=lambda s: s.name)


# --- the payloads ------------------------------------------------------------------------

def kubelet_payload() -> str:
    """kubelet's chains (pkg/kubelet/kubelet_network_linux.go): canaries in mangle, nat
    and filter, and KUBE-FIREWALL with the anti-martian rule, jumped to from INPUT and
    OUTPUT."""
    return "\n".join([
        "*mangle", ":KUBE-KUBELET-CANARY - [0:0]", "COMMIT",
        "*nat", ":KUBE-KUBELET-CANARY - [0:0]", "COMMIT",
        "*filter", ":KUBE-FIREWALL - [0:0]", ":KUBE-KUBELET-CANARY - [0:0]",
        "-A INPUT -j KUBE-FIREWALL", "-A OUTPUT -j KUBE-FIREWALL",
        f"-A KUBE-FIREWALL -m comment --comment {LOCALNET_COMMENT} -d 127.0.0.0/8 "
        "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
        "COMMIT", ""])


# (table, chain kube-proxy creates, built-in chain jumping to it, comment, extra args)
JUMPS = [
    ("filter", "KUBE-EXTERNAL-SERVICES", "INPUT", "kubernetes externally-visible service portals",
     "-m conntrack --ctstate NEW"),
    ("filter", "KUBE-EXTERNAL-SERVICES", "FORWARD", "kubernetes externally-visible service portals",
     "-m conntrack --ctstate NEW"),
    ("filter", "KUBE-NODEPORTS", "INPUT", "kubernetes health check service ports", ""),
    ("filter", "KUBE-SERVICES", "FORWARD", "kubernetes service portals", "-m conntrack --ctstate NEW"),
    ("filter", "KUBE-SERVICES", "OUTPUT", "kubernetes service portals", "-m conntrack --ctstate NEW"),
    ("filter", "KUBE-FORWARD", "FORWARD", "kubernetes forwarding rules", ""),
    ("filter", "KUBE-PROXY-FIREWALL", "INPUT", "kubernetes load balancer firewall",
     "-m conntrack --ctstate NEW"),
    ("filter", "KUBE-PROXY-FIREWALL", "OUTPUT", "kubernetes load balancer firewall",
     "-m conntrack --ctstate NEW"),
    ("filter", "KUBE-PROXY-FIREWALL", "FORWARD", "kubernetes load balancer firewall",
     "-m conntrack --ctstate NEW"),
    ("nat", "KUBE-SERVICES", "OUTPUT", "kubernetes service portals", ""),
    ("nat", "KUBE-SERVICES", "PREROUTING", "kubernetes service portals", ""),
    ("nat", "KUBE-POSTROUTING", "POSTROUTING", "kubernetes postrouting rules", ""),
]


def startup_payload() -> str:
    """The Monitor's canaries and the EnsureChain/EnsureRule(Prepend) calls of a full
    sync: each jump inserted at the top of its built-in chain, in list order (kubelet's
    KUBE-FIREWALL jumps exist already and stay where they are)."""
    out = []
    for table in ("mangle", "nat", "filter"):
        out += [f"*{table}", ":KUBE-PROXY-CANARY - [0:0]"]
        created = []
        for t, dst, src, comment, extra in JUMPS:
            if t != table:
                continue
            if dst not in created:
                created.append(dst)
                out.append(f"-N {dst}")
            args = f"{extra} " if extra else ""
            out.append(f'-I {src} 1 {args}-m comment --comment "{comment}" -j {dst}')
        out.append("COMMIT")
    return "\n".join(out) + "\n"


class _Lines:
    def __init__(self) -> None:
        self.chains: list[str] = []
        self.rules: list[str] = []

    def chain(self, name: str) -> None:
        self.chains.append(f":{name} - [0:0]")

    def rule(self, *words: str) -> None:
        self.rules.append(" ".join(w for w in words if w))


def sync_payload(ports: list[ServicePortInfo], node: str, cluster_cidr: str) -> str:
    """One full syncProxyRules on ``node``: the filter and nat tables' kube-proxy chains."""
    flt, nat = _Lines(), _Lines()
    for c in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS",
              "KUBE-PROXY-FIREWALL"):
        flt.chain(c)
    for c in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"):
        nat.chain(c)
    mark = f"{MASQ_MARK}/{MASQ_MARK}"
    nat.rule("-A KUBE-POSTROUTING -m mark !", f"--mark {mark} -j RETURN")
    nat.rule(f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}")
    nat.rule('-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring '
             'SNAT" -j MASQUERADE --random-fully')
    nat.rule(f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}")
    flt.chain("KUBE-FIREWALL")
    flt.rule(f"-A KUBE-FIREWALL -m comment --comment {LOCALNET_COMMENT} -d 127.0.0.0/8 "
             "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
    large = sum(len(p.endpoints) for p in ports) > LARGE_CLUSTER_ENDPOINTS
    for svc in ports:
        _service(flt, nat, svc, node, cluster_cidr, large)
    nat.rule('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this '
             'must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    flt.rule("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP")
    flt.rule('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark '
             f"--mark {mark} -j ACCEPT")
    flt.rule('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
             "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    return "\n".join(["*filter", *flt.chains, *flt.rules, "COMMIT",
                      "*nat", *nat.chains, *nat.rules, "COMMIT", ""])


def _service(flt: _Lines, nat: _Lines, svc: ServicePortInfo, node: str, cluster_cidr: str,
             large: bool) -> None:
    name, p = svc.name, svc.protocol
    ready = [ep for ep in svc.endpoints if ep.ready]
    cluster_eps = ready if svc.uses_cluster_endpoints else []
    local_eps = [ep for ep in ready if ep.node == node] if svc.uses_local_endpoints else []
    reachable = sorted(set(cluster_eps) | set(local_eps), key=str)
    has_endpoints = bool(ready)
    svc_c, svl_c = svc_chain(name, p), svl_chain(name, p)
    ext_c = ext_chain(name, p)
    internal_chain = svl_c if svc.internal_local else svc_c
    has_internal = has_endpoints and (not svc.internal_local or bool(local_eps))
    external_chain = svl_c if svc.external_policy_local else svc_c
    has_external = has_endpoints and (not svc.external_policy_local or bool(local_eps))
    uses_ext = has_endpoints and svc.externally_accessible
    if not has_endpoints:
        int_target = ext_target = "REJECT"
        int_comment = ext_comment = f'"{name} has no endpoints"'
    else:
        int_target = "DROP" if not has_internal else ""
        ext_target = "DROP" if not has_external else ""
        int_comment = ext_comment = f'"{name} has no local endpoints"'
    match = f"-m {p} -p {p} -d {svc.cluster_ip} --dport {svc.port}"
    if has_internal:
        nat.rule(f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP"', match,
                 f"-j {internal_chain}")
    else:
        flt.rule(f"-A KUBE-SERVICES -m comment --comment {int_comment}", match, f"-j {int_target}")
    if svc.node_port is not None:
        if has_endpoints:
            nat.rule(f"-A KUBE-NODEPORTS -m comment --comment {name} -m {p} -p {p} "
                     f"--dport {svc.node_port} -j {ext_c}")
        if not has_external:
            flt.rule(f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {ext_comment} -m addrtype "
                     f"--dst-type LOCAL -m {p} -p {p} --dport {svc.node_port} -j {ext_target}")
    if has_internal:
        nat.rule(f'-A {internal_chain} -m comment --comment "{name} cluster IP"', match,
                 f"! -s {cluster_cidr} -j KUBE-MARK-MASQ")
    if uses_ext:
        nat.chain(ext_c)
        if not svc.external_policy_local:
            nat.rule(f'-A {ext_c} -m comment --comment "masquerade traffic for {name} external '
                     'destinations" -j KUBE-MARK-MASQ')
        else:
            nat.rule(f'-A {ext_c} -m comment --comment "pod traffic for {name} external '
                     f'destinations" -s {cluster_cidr} -j {svc_c}')
            nat.rule(f'-A {ext_c} -m comment --comment "masquerade LOCAL traffic for {name} '
                     'external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ')
            nat.rule(f'-A {ext_c} -m comment --comment "route LOCAL traffic for {name} '
                     f'external destinations" -m addrtype --src-type LOCAL -j {svc_c}')
        if has_external:
            nat.rule(f"-A {ext_c} -j {external_chain}")
    if cluster_eps and svc.uses_cluster_endpoints:
        nat.chain(svc_c)
        _to_endpoints(nat, svc, svc_c, cluster_eps, large)
    if local_eps and svc.uses_local_endpoints:
        nat.chain(svl_c)
        _to_endpoints(nat, svc, svl_c, local_eps, large)
    for ep in reachable:
        sep = sep_chain(name, p, str(ep))
        nat.chain(sep)
        comment = "" if large else f"-m comment --comment {name}"
        nat.rule(f"-A {sep}", comment, f"-s {ep.ip} -j KUBE-MARK-MASQ")
        recent = f"-m recent --name {sep} --set" if svc.affinity_seconds is not None else ""
        nat.rule(f"-A {sep}", comment, recent, f"-m {p} -p {p} -j DNAT --to-destination {ep}")


def _to_endpoints(nat: _Lines, svc: ServicePortInfo, chain: str, eps: list[EndpointInfo],
                  large: bool) -> None:
    name, p = svc.name, svc.protocol
    if svc.affinity_seconds is not None:
        for ep in eps:
            sep = sep_chain(name, p, str(ep))
            comment = "" if large else f'-m comment --comment "{name} -> {ep}"'
            nat.rule(f"-A {chain}", comment, f"-m recent --name {sep} --rcheck --seconds "
                     f"{svc.affinity_seconds} --reap -j {sep}")
    n = len(eps)
    for i, ep in enumerate(eps):
        sep = sep_chain(name, p, str(ep))
        comment = "" if large else f'-m comment --comment "{name} -> {ep}"'
        stat = f"-m statistic --mode random --probability {probability(n - i)}" if i < n - 1 else ""
        nat.rule(f"-A {chain}", comment, stat, f"-j {sep}")


def node_payloads(cluster, node: str) -> list[str]:
    """The three payloads, in order, that give ``node`` its kubelet and kube-proxy rules."""
    ports = service_ports(cluster)
    return [kubelet_payload(), startup_payload(),
            sync_payload(ports, node, cluster.spec.pod_cidr)]
