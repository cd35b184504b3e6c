"""kube-proxy (iptables mode) rule sets, generated: for tests, benchmarks and labs.

    text = kube_proxy_dump(services=1000, endpoints=3)                # as iptables-save prints it
    text = kube_proxy_dump(services=10, style="kube-proxy")           # as kube-proxy writes it

Chain names are kube-proxy's (``KUBE-SVC-`` + the first 16 characters of the
base32 SHA-256 of "namespace/name:port" + protocol, so kube-dns's is
``KUBE-SVC-TCOU7JCQXEZGVUNU``); the rules are the ones kube-proxy 1.28 writes
for ClusterIP Services, NodePorts and ClientIP session affinity (synthetic Services for the
netfilter tests and benchmarks; a cluster's own rules come from netlab.k8s.kubeproxy). With
``style="save"`` the text is what ``iptables-save`` prints after kube-proxy's
``iptables-restore`` (tests/data/iptables/kube-proxy-*.txt pin that against the
real tool).
"""

from __future__ import annotations

from dataclasses import dataclass

# One implementation of kube-proxy's chain names: netlab.k8s.kubeproxy.
from netlab.k8s.kubeproxy import ext_chain, sep_chain, svc_chain  # noqa: F401

CLUSTER_CIDR = "10.244.0.0/16"


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    port_name: str
    proto: str
    cluster_ip: str
    port: int
    target_port: int
    endpoints: tuple[str, ...]
    node_port: int | None = None
    affinity: bool = False

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name}"


def services(count: int, endpoints: int = 3) -> list[Service]:
    """A cluster: kube-dns (udp and tcp 53), the API server, then ``count`` more Services
    (every tenth with a NodePort, every seventh with ClientIP affinity)."""
    out = [Service("kube-system", "kube-dns", "dns", "udp", "10.96.0.10", 53, 53,
                   ("10.244.0.2", "10.244.0.3")),
           Service("kube-system", "kube-dns", "dns-tcp", "tcp", "10.96.0.10", 53, 53,
                   ("10.244.0.2", "10.244.0.3")),
           Service("default", "kubernetes", "https", "tcp", "10.96.0.1", 443, 6443,
                   ("192.168.1.11",))]
    for i in range(count):
        ip = f"10.96.{(i + 1) // 250 + 1}.{(i + 1) % 250 + 1}"
        eps = tuple(f"10.244.{(i * endpoints + k) // 250 % 250 + 1}.{(i * endpoints + k) % 250 + 2}"
                    for k in range(endpoints))
        out.append(Service(f"ns{i % 50}", f"svc{i}", "http", "tcp", ip, 80, 8080, eps,
                           node_port=30000 + i % 2768 if i % 10 == 3 else None,
                           affinity=i % 7 == 5))
    return out


def _probability(n: int, style: str) -> str:
    text = f"{1.0 / n:.10f}"
    if style == "kube-proxy":
        return text
    from netlab.netfilter.matches import PROB_SCALE, show_probability
    from netlab.netfilter.values import lround
    return show_probability(lround(PROB_SCALE * (1.0 / n)))


def kube_proxy_dump(services_count: int = 0, endpoints: int = 3, *, style: str = "save",
                    node_ip: str = "192.168.1.11", services_list: list[Service] | None = None) -> str:
    """The filter and nat tables kube-proxy keeps, as one iptables-restore payload."""
    svcs = services_list if services_list is not None else services(services_count, endpoints)
    save = style == "save"
    filter_chains = ["KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL", "KUBE-FORWARD",
                     "KUBE-KUBELET-CANARY", "KUBE-NODEPORTS", "KUBE-PROXY-CANARY",
                     "KUBE-PROXY-FIREWALL", "KUBE-SERVICES"]
    out = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    out += [f":{c} - [0:0]" for c in filter_chains]
    # The chains' jumps read the same either way; only the localnet rule's
    # argument order differs between what kube-proxy writes and what iptables-save prints.
    out += [
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer '
        'firewall" -j KUBE-PROXY-FIREWALL',
        '-A INPUT -m comment --comment "kubernetes health check service ports" '
        '-j KUBE-NODEPORTS',
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes '
        'externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        "-A INPUT -j KUBE-FIREWALL",
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer '
        'firewall" -j KUBE-PROXY-FIREWALL',
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service '
        'portals" -j KUBE-SERVICES',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes '
        'externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer '
        'firewall" -j KUBE-PROXY-FIREWALL',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service '
        'portals" -j KUBE-SERVICES',
        "-A OUTPUT -j KUBE-FIREWALL",
    ]
    if save:
        out.append('-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment '
                   '"block incoming localnet connections" -m conntrack ! --ctstate '
                   'RELATED,ESTABLISHED,DNAT -j DROP')
    else:
        out.append('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" '
                   '-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate '
                   'RELATED,ESTABLISHED,DNAT -j DROP')
    out += [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark '
        '0x4000/0x4000 -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m '
        'conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]
    out.append("COMMIT")
    out += _nat(svcs, style, node_ip)
    return "\n".join(out) + "\n"


def _nat(svcs: list[Service], style: str, node_ip: str) -> list[str]:
    save = style == "save"
    chains: dict[str, list[str]] = {c: [] for c in (
        "PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "KUBE-KUBELET-CANARY", "KUBE-MARK-MASQ",
        "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-PROXY-CANARY", "KUBE-SERVICES")}
    chains["PREROUTING"].append('-m comment --comment "kubernetes service portals" '
                                '-j KUBE-SERVICES')
    chains["OUTPUT"].append('-m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    chains["POSTROUTING"].append('-m comment --comment "kubernetes postrouting rules" '
                                 '-j KUBE-POSTROUTING')
    chains["KUBE-MARK-MASQ"].append("-j MARK --set-xmark 0x4000/0x4000" if save else
                                    "-j MARK --or-mark 0x4000")
    chains["KUBE-POSTROUTING"] += [
        "-m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-j MARK --set-xmark 0x4000/0x0" if save else "-j MARK --xor-mark 0x4000",
        '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE '
        '--random-fully']
    for svc in svcs:
        name = svc.id
        svc_c = svc_chain(name, svc.proto)
        chains[svc_c] = []
        p = svc.proto
        if save:
            chains["KUBE-SERVICES"].append(
                f'-d {svc.cluster_ip}/32 -p {p} -m comment --comment "{name} cluster IP" '
                f'-m {p} --dport {svc.port} -j {svc_c}')
            chains[svc_c].append(
                f'! -s {CLUSTER_CIDR} -d {svc.cluster_ip}/32 -p {p} -m comment --comment '
                f'"{name} cluster IP" -m {p} --dport {svc.port} -j KUBE-MARK-MASQ')
        else:
            chains["KUBE-SERVICES"].append(
                f'-m comment --comment "{name} cluster IP" -m {p} -p {p} -d {svc.cluster_ip} '
                f'--dport {svc.port} -j {svc_c}')
            chains[svc_c].append(
                f'-m comment --comment "{name} cluster IP" -m {p} -p {p} -d {svc.cluster_ip} '
                f'--dport {svc.port} ! -s {CLUSTER_CIDR} -j KUBE-MARK-MASQ')
        if svc.node_port is not None:
            ext_c = ext_chain(name, svc.proto)
            chains[ext_c] = []
            if save:
                chains["KUBE-NODEPORTS"].append(
                    f'-p {p} -m comment --comment "{name}" -m {p} --dport {svc.node_port} '
                    f'-j {ext_c}')
            else:
                chains["KUBE-NODEPORTS"].append(
                    f'-m comment --comment "{name}" -m {p} -p {p} --dport {svc.node_port} '
                    f'-j {ext_c}')
            chains[ext_c] += [
                f'-m comment --comment "masquerade traffic for {name} external destinations" '
                f'-j KUBE-MARK-MASQ', f"-j {svc_c}"]
        seps = [sep_chain(name, svc.proto, f"{ep}:{svc.target_port}") for ep in svc.endpoints]
        if svc.affinity:
            for ep, sep in zip(svc.endpoints, seps):
                target = f"{ep}:{svc.target_port}"
                mask = "--mask 255.255.255.255 --rsource" if save else \
                    "--mask 255.255.255.255 --rsource"
                if save:
                    chains[svc_c].append(
                        f'-m comment --comment "{name} -> {target}" -m recent --rcheck '
                        f'--seconds 10800 --reap --name {sep} {mask} -j {sep}')
                else:
                    chains[svc_c].append(
                        f'-m comment --comment "{name} -> {target}" -m recent --name {sep} '
                        f'{mask} --rcheck --seconds 10800 --reap -j {sep}')
        n = len(seps)
        for i, (ep, sep) in enumerate(zip(svc.endpoints, seps)):
            target = f"{ep}:{svc.target_port}"
            stat = "" if i == n - 1 else \
                f" -m statistic --mode random --probability {_probability(n - i, style)}"
            chains[svc_c].append(f'-m comment --comment "{name} -> {target}"{stat} -j {sep}')
            rules = chains[sep] = []
            if save:
                rules.append(f'-s {ep}/32 -m comment --comment "{name}" -j KUBE-MARK-MASQ')
                recent = (f" -m recent --set --name {sep} --mask 255.255.255.255 --rsource"
                          if svc.affinity else "")
                rules.append(f'-p {p} -m comment --comment "{name}"{recent} -m {p} -j DNAT '
                             f'--to-destination {target}')
            else:
                rules.append(f'-m comment --comment "{name}" -s {ep} -j KUBE-MARK-MASQ')
                recent = f" -m recent --name {sep} --set" if svc.affinity else ""
                rules.append(f'-m comment --comment "{name}"{recent} -m {p} -p {p} -j DNAT '
                             f'--to-destination {target}')
    if save:
        chains["KUBE-SERVICES"].append(
            '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
            'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    else:
        chains["KUBE-SERVICES"].append(
            '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
            'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    builtin = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")
    names = list(builtin) + sorted(c for c in chains if c not in builtin)
    out = ["*nat"] + [f":{c} {'ACCEPT' if c in builtin else '-'} [0:0]" for c in names]
    for c in names:
        for rule in chains[c]:
            out.append(f"-A {c} {rule}")
    out.append("COMMIT")
    return out
