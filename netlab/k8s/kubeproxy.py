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

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from netlab.netfilter.restore import Block, prepared
from netlab.netfilter.values import save_string

KUBE_PROXY_VERSION = "v1.33"
MASQ_MARK = "0x4000"
LARGE_CLUSTER_ENDPOINTS = 1000          # above this, rule comments are left out
LOCALNET_COMMENT = '"block incoming localnet connections"'


# --- chain names: base32(sha256(servicePortName + protocol [+ endpoint]))[:16] ---------

# 16 base32 digits are 80 bits: the digest's first 10 bytes give the same 16 digits as
# the whole digest does. The names are pure functions of their text, so they are cached
# (a sync writes each endpoint's chain name twice, and every node's sync writes them all).
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]        # 10 bits -> two digits


def b32_80(data: bytes) -> str:
    """``base64.b32encode`` of 10 bytes (16 digits, no padding), without its Python loop."""
    x = int.from_bytes(data, "big")
    pairs = _B32_PAIRS
    return (f"{pairs[x >> 70]}{pairs[x >> 60 & 1023]}{pairs[x >> 50 & 1023]}"      # (one string
            f"{pairs[x >> 40 & 1023]}{pairs[x >> 30 & 1023]}{pairs[x >> 20 & 1023]}"  # made, not 7)
            f"{pairs[x >> 10 & 1023]}{pairs[x & 1023]}")


@lru_cache(maxsize=1 << 18)
def port_proto_hash(service_port_name: str, protocol: str) -> str:
    digest = hashlib.sha256((service_port_name + protocol).encode()).digest()
    return b32_80(digest[:10])


def svc_chain(service_port_name: str, protocol: str) -> str:
    return "KUBE-SVC-" + port_proto_hash(service_port_name, protocol)


def svl_chain(service_port_name: str, protocol: str) -> str:
    return "KUBE-SVL-" + port_proto_hash(service_port_name, protocol)


def ext_chain(service_port_name: str, protocol: str) -> str:
    return "KUBE-EXT-" + port_proto_hash(service_port_name, protocol)


def fw_chain(service_port_name: str, protocol: str) -> str:
    return "KUBE-FW-" + port_proto_hash(service_port_name, protocol)


@lru_cache(maxsize=1 << 18)
def sep_chain(service_port_name: str, protocol: str, endpoint: str) -> str:
    digest = hashlib.sha256((service_port_name + protocol + endpoint).encode()).digest()
    return "KUBE-SEP-" + b32_80(digest[:10])


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
    health_check_node_port: int | None = None

    @property
    def externally_accessible(self) -> bool:
        return self.node_port is not None

    @property
    def external_policy_local(self) -> bool:
        return self.externally_accessible and self.external_local

    @property
    def uses_cluster_endpoints(self) -> bool:
        # As kube-proxy's UsesClusterEndpoints: an externally accessible port needs them even
        # with externalTrafficPolicy Local (pod traffic to it short-circuits to KUBE-SVC).
        return not self.internal_local or self.externally_accessible

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
            if port.protocol == "SCTP":         # the model's netfilter has no -m sctp
                continue
            name = svc.key + (f":{port.name}" if port.name else "")
            eps = sorted({EndpointInfo(ep.ip, n, ep.node, ep.ready)
                          for ep, n in cluster.endpoints(svc, port)}, key=str)
            out.append(ServicePortInfo(
                name, port.protocol.lower(), svc.cluster_ip, port.port, tuple(eps),
                node_port=port.node_port if svc.type != "ClusterIP" else None,
                affinity_seconds=svc.affinity_timeout if svc.session_affinity == "ClientIP"
                else None,
                external_local=svc.external_traffic_policy == "Local",
                internal_local=svc.internal_traffic_policy == "Local",
                health_check_node_port=svc.health_check_node_port))
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


class Rule:
    """One rule, rendered two ways: as kube-proxy writes it (its argument order) and as
    iptables-save prints it (addresses, ``-p`` first; defaults spelled out). Both load
    into the same tables; the second takes the restore's fast path."""

    __slots__ = ("chain", "parts")
    BASE = {"s": 0, "d": 1, "p": 2}

    def __init__(self, chain: str):
        self.chain = chain
        self.parts: list[tuple[str, str, str]] = []      # (kind, as written, as saved)

    def add(self, kind: str, written: str, saved: str) -> "Rule":
        self.parts.append((kind, written, saved))
        return self

    def comment(self, text: str, quoted: bool = True) -> "Rule":
        return self.add("m", f'-m comment --comment "{text}"' if quoted
                        else f"-m comment --comment {text}",
                        f"-m comment --comment {save_string(text)}")

    def src(self, addr: str, negate: bool = False) -> "Rule":
        neg = "! " if negate else ""
        return self.add("s", f"{neg}-s {addr}", f"{neg}-s {_cidr(addr)}")

    def dst(self, addr: str) -> "Rule":
        return self.add("d", f"-d {addr}", f"-d {_cidr(addr)}")

    def proto_port(self, proto: str, *, dst: str | None = None, dport: int | None = None
                   ) -> "Rule":
        """kube-proxy's ``-m P -p P [-d IP] [--dport N]``."""
        self.add("m", f"-m {proto} -p {proto}", "")
        self.add("p", "", f"-p {proto}")
        if dst is not None:
            self.dst(dst)
        return self.add("m", f"--dport {dport}" if dport else "",
                        f"-m {proto} --dport {dport}" if dport else f"-m {proto}")

    def match(self, written: str, saved: str | None = None) -> "Rule":
        return self.add("m", written, written if saved is None else saved)

    def jump(self, target: str, written: str = "", saved: str | None = None) -> "Rule":
        return self.add("j", f"-j {target} {written}".rstrip(),
                        f"-j {target} {written if saved is None else saved}".rstrip())

    def body(self, style: str) -> str:
        """The rule's words after ``-A CHAIN``."""
        if style == "kube-proxy":
            words = [w for _k, w, _s in self.parts if w]
        else:
            base = sorted((self.BASE[k], s) for k, _w, s in self.parts if k in self.BASE and s)
            words = [s for _i, s in base] + [s for k, _w, s in self.parts
                                             if k not in self.BASE and s]
        return " ".join(words)

    def render(self, style: str) -> str:
        body = self.body(style)
        return f"-A {self.chain} {body}" if body else f"-A {self.chain}"


def _cidr(addr: str) -> str:
    return addr if "/" in addr else f"{addr}/32"


@lru_cache(maxsize=4096)
def _saved_probability(n: int) -> str:
    from netlab.netfilter.matches import PROB_SCALE, show_probability
    from netlab.netfilter.values import lround

    return show_probability(lround(PROB_SCALE * (1.0 / n)))


class _Lines:
    """One table's part of a payload: the chains it declares and its rules, in order, as
    runs of one chain's rules (netlab.netfilter.restore.prepared)."""

    def __init__(self, style: str) -> None:
        self.style = style
        self.chains: list[str] = []
        self.runs: list[tuple[str, list[str]]] = []

    def chain(self, name: str) -> None:
        self.chains.append(name)

    def add(self, rule: Rule) -> None:
        self.extend(rule.chain, [rule.body(self.style)])

    def extend(self, chain: str, bodies: list[str]) -> None:
        runs = self.runs
        if runs and type(runs[-1]) is tuple and runs[-1][0] == chain:
            runs[-1][1].extend(bodies)
        else:
            runs.append((chain, bodies))


def sync_payload(ports: list[ServicePortInfo], node: str, cluster_cidr: str,
                 style: str = "kube-proxy") -> str:
    """One full syncProxyRules on ``node``: the filter and nat tables' kube-proxy chains,
    as kube-proxy writes them (``style="kube-proxy"``) or as iptables-save prints them
    (``style="save"``: the same rules, the restore's fast path)."""
    flt, nat = _Lines(style), _Lines(style)
    for c in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS",
              "KUBE-PROXY-FIREWALL"):
        flt.chain(c)
    for c in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"):
        nat.chain(c)
    mark = f"{MASQ_MARK}/{MASQ_MARK}"
    nat.add(Rule("KUBE-POSTROUTING").match(f"-m mark ! --mark {mark}").jump("RETURN"))
    nat.add(Rule("KUBE-POSTROUTING").jump("MARK", f"--xor-mark {MASQ_MARK}",
                                          f"--set-xmark {MASQ_MARK}/0x0"))
    nat.add(Rule("KUBE-POSTROUTING").comment("kubernetes service traffic requiring SNAT")
            .jump("MASQUERADE", "--random-fully"))
    nat.add(Rule("KUBE-MARK-MASQ").jump("MARK", f"--or-mark {MASQ_MARK}", f"--set-xmark {mark}"))
    flt.chain("KUBE-FIREWALL")
    flt.add(_localnet(Rule("KUBE-FIREWALL")))
    large = sum(len(p.endpoints) for p in ports) > LARGE_CLUSTER_ENDPOINTS
    for svc in ports:
        _service(flt, nat, svc, node, cluster_cidr, large)
    nat.add(Rule("KUBE-SERVICES").comment("kubernetes service nodeports; NOTE: this must be the "
                                          "last rule in this chain")
            .match("-m addrtype --dst-type LOCAL").jump("KUBE-NODEPORTS"))
    flt.add(Rule("KUBE-FORWARD").match("-m conntrack --ctstate INVALID").jump("DROP"))
    flt.add(Rule("KUBE-FORWARD").comment("kubernetes forwarding rules")
            .match(f"-m mark --mark {mark}").jump("ACCEPT"))
    flt.add(Rule("KUBE-FORWARD").comment("kubernetes forwarding conntrack rule")
            .match("-m conntrack --ctstate RELATED,ESTABLISHED").jump("ACCEPT"))
    return prepared([("filter", flt.chains, flt.runs), ("nat", nat.chains, nat.runs)])


def _localnet(rule: Rule) -> Rule:
    rule.comment("block incoming localnet connections").dst("127.0.0.0/8")
    rule.src("127.0.0.0/8", negate=True)
    rule.match("-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT").jump("DROP")
    return rule


def _reject(target: str) -> tuple[str, str]:
    return ("", "--reject-with icmp-port-unreachable") if target == "REJECT" else ("", "")


def _service(flt: _Lines, nat: _Lines, svc: ServicePortInfo, node: str, cluster_cidr: str,
             large: bool) -> None:
    name, p = svc.name, svc.protocol
    ready = [ep for ep in svc.endpoints if ep.ready]
    cluster_eps = ready if svc.uses_cluster_endpoints else []
    local_eps = [ep for ep in ready if ep.node == node] if svc.uses_local_endpoints else []
    # (the endpoints are in order and each once: one of the two lists is most often empty)
    reachable = cluster_eps if not local_eps else local_eps if not cluster_eps else \
        sorted(set(cluster_eps) | set(local_eps), key=str)
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
        filter_comment = f"{name} has no endpoints"
    else:
        int_target = "DROP" if not has_internal else ""
        ext_target = "DROP" if not has_external else ""
        filter_comment = f"{name} has no local endpoints"

    def cluster_ip(chain: str) -> Rule:
        return Rule(chain).comment(f"{name} cluster IP").proto_port(p, dst=svc.cluster_ip,
                                                                    dport=svc.port)

    if has_internal:
        nat.add(cluster_ip("KUBE-SERVICES").jump(internal_chain))
    else:
        flt.add(_jumped(Rule("KUBE-SERVICES").comment(filter_comment)
                        .proto_port(p, dst=svc.cluster_ip, dport=svc.port), int_target,
                        *_reject(int_target)))
    if svc.node_port is not None:
        if has_endpoints:
            nat.add(_jumped(Rule("KUBE-NODEPORTS").comment(name, quoted=False)
                            .proto_port(p, dport=svc.node_port), ext_c))
        if not has_external:
            flt.add(_jumped(Rule("KUBE-EXTERNAL-SERVICES").comment(filter_comment)
                            .match("-m addrtype --dst-type LOCAL")
                            .proto_port(p, dport=svc.node_port), ext_target,
                            *_reject(ext_target)))
    if svc.health_check_node_port is not None:
        # Whether or not this node has local endpoints, its health check port is open.
        flt.add(_jumped(Rule("KUBE-NODEPORTS").comment(f"{name} health check node port")
                        .proto_port("tcp", dport=svc.health_check_node_port), "ACCEPT"))
    if has_internal:
        nat.add(_jumped(cluster_ip(internal_chain).src(cluster_cidr, negate=True),
                        "KUBE-MARK-MASQ"))
    if uses_ext:
        nat.chain(ext_c)
        if not svc.external_policy_local:
            nat.add(_jumped(Rule(ext_c).comment(f"masquerade traffic for {name} external "
                                                "destinations"), "KUBE-MARK-MASQ"))
        else:
            nat.add(_jumped(Rule(ext_c).comment(f"pod traffic for {name} external destinations")
                            .src(cluster_cidr), svc_c))
            nat.add(_jumped(Rule(ext_c).comment(f"masquerade LOCAL traffic for {name} external "
                                                "destinations")
                            .match("-m addrtype --src-type LOCAL"), "KUBE-MARK-MASQ"))
            nat.add(_jumped(Rule(ext_c).comment(f"route LOCAL traffic for {name} external "
                                                "destinations")
                            .match("-m addrtype --src-type LOCAL"), svc_c))
        if has_external:
            nat.add(_jumped(Rule(ext_c), external_chain))
    plain = large and svc.affinity_seconds is None
    # The endpoint chains' names, made once (each endpoint's is written twice).
    seps = [sep_chain(name, p, str(ep)) for ep in reachable] if plain else None
    if cluster_eps and svc.uses_cluster_endpoints:
        nat.chain(svc_c)
        _to_endpoints(nat, svc, svc_c, cluster_eps, large,
                      seps if cluster_eps is reachable else None)
    if local_eps and svc.uses_local_endpoints:
        nat.chain(svl_c)
        _to_endpoints(nat, svc, svl_c, local_eps, large, seps if local_eps is reachable else None)
    if plain:                       # the bulk of a large cluster's rules
        nat.chains += seps
        nat.runs.append(Block(seps, _sep_columns(nat.style, reachable, p)))
        return
    for ep in reachable:
        sep = sep_chain(name, p, str(ep))
        nat.chain(sep)
        masq = Rule(sep)
        if not large:
            masq.comment(name, quoted=False)
        nat.add(_jumped(masq.src(ep.ip), "KUBE-MARK-MASQ"))
        dnat = Rule(sep)
        if not large:
            dnat.comment(name, quoted=False)
        if svc.affinity_seconds is not None:
            dnat.match(f"-m recent --name {sep} --set",
                       f"-m recent --set --name {sep} --mask 255.255.255.255 --rsource")
        dnat.proto_port(p)
        nat.add(_jumped(dnat, "DNAT", f"--to-destination {ep}"))


# The bulk of a large cluster's rules (no comments, no affinity), written directly: what
# ``Rule`` renders for them (tests/unit/test_k8s_kubeproxy_lines.py holds them equal).

def _sep_columns(style: str, eps: list[EndpointInfo], proto: str) -> list[list[str]]:
    """The endpoint chains' two rules each, as two columns: the marks for masquerade from
    the endpoint itself, the DNATs to it."""
    if style == "kube-proxy":
        return [[f"-s {ep.ip} -j KUBE-MARK-MASQ" for ep in eps],
                [f"-m {proto} -p {proto} -j DNAT --to-destination {ep.ip}:{ep.port}"
                 for ep in eps]]
    return [[f"-s {_cidr(ep.ip)} -j KUBE-MARK-MASQ" for ep in eps],
            [f"-p {proto} -m {proto} -j DNAT --to-destination {ep.ip}:{ep.port}" for ep in eps]]


def _svc_body(sep: str, probability_text: str | None) -> str:
    """A Service chain's jump to one endpoint (the last one without a probability)."""
    if probability_text is None:
        return f"-j {sep}"
    return f"-m statistic --mode random --probability {probability_text} -j {sep}"


def _jumped(rule: Rule, target: str, written: str = "", saved: str | None = None) -> Rule:
    return rule.jump(target, written, saved)


def _to_endpoints(nat: _Lines, svc: ServicePortInfo, chain: str, eps: list[EndpointInfo],
                  large: bool, seps: list[str] | None = None) -> None:
    """The Service chain's jumps to its endpoints' chains (``seps``: their names, when known)."""
    name, p = svc.name, svc.protocol
    if svc.affinity_seconds is not None:
        for ep in eps:
            sep = sep_chain(name, p, str(ep))
            rule = Rule(chain)
            if not large:
                rule.comment(f"{name} -> {ep}")
            rule.match(f"-m recent --name {sep} --rcheck --seconds {svc.affinity_seconds} --reap",
                       f"-m recent --rcheck --seconds {svc.affinity_seconds} --reap --name {sep} "
                       "--mask 255.255.255.255 --rsource")
            nat.add(_jumped(rule, sep))
    n = len(eps)
    if large and svc.affinity_seconds is None:
        saved = nat.style != "kube-proxy"
        if seps is None:
            seps = [sep_chain(name, p, str(ep)) for ep in eps]
        weight = _saved_probability if saved else probability
        # (the jumps with a probability, all of one shape, then the last one's)
        if n > 1:
            nat.runs.append(Block([chain] * (n - 1), [[
                _svc_body(sep, weight(n - i)) for i, sep in enumerate(seps[:-1])]]))
        nat.runs.append((chain, [_svc_body(seps[-1], None)]))
        return
    for i, ep in enumerate(eps):
        rule = Rule(chain)
        if not large:
            rule.comment(f"{name} -> {ep}")
        if i < n - 1:
            rule.match(f"-m statistic --mode random --probability {probability(n - i)}",
                       f"-m statistic --mode random --probability {_saved_probability(n - i)}")
        nat.add(_jumped(rule, sep_chain(name, p, str(ep))))


def node_payloads(cluster, node: str) -> list[str]:
    """The three payloads, in order, that give ``node`` its kubelet and kube-proxy rules."""
    ports = service_ports(cluster)
    return [kubelet_payload(), startup_payload(),
            sync_payload(ports, node, cluster.spec.pod_cidr)]
