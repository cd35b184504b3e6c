"""NetworkPolicy (networking.k8s.io/v1) as iptables filter rules on each node.

The semantics are the API's: a pod is isolated for ingress (egress) when a policy of
its namespace selects it and lists Ingress (Egress) in ``policyTypes``; then only what
some such policy allows gets in (out). A connection needs the sender's egress and the
receiver's ingress both; replies of an allowed connection always pass.

The rules (in the style of kube-router's, with readable comments so a trace names
the policy and rule that allowed a packet, or the pod that no policy allowed):

    -I FORWARD 1 -j NETPOL          -I INPUT 1 -j NETPOL       (before kube-proxy's)
    NETPOL:           replies RETURN; then a jump per isolated pod of this node:
                      -s POD -j NETPOL-EG-<pod>, -d POD -j NETPOL-IN-<pod>
    NETPOL-EG-<pod>:  clear mark 0x10000; jump to each selecting policy's chain;
                      marked: RETURN; else DROP "ns/pod: no NetworkPolicy allows egress"
    NETPOL-P-<hash>:  one rule per (peer address, port) of each ingress/egress rule,
                      -j MARK --set-xmark 0x10000/0x10000, comment "ns/policy ingress[i]"
    NETPOL-B-<hash>:  an ipBlock with ``except``: the excepted ranges RETURN first

Peers are resolved to pod addresses when the rules are written (an implementation
would keep ipsets; the rules read the same). Named ports resolve against the
destination pod's container ports. Traffic a node sends itself is not policed
(as with most implementations); traffic from other nodes is.
"""

from __future__ import annotations

import base64
import hashlib

from netlab.k8s.cluster import Cluster
from netlab.k8s.objects import IPBlock, NetworkPolicy, Pod, PolicyPeer, PolicyPort, PolicyRule

MARK = "0x10000"
ENTRY = "NETPOL"


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def pod_chain(pod: Pod, direction: str) -> str:
    return f"NETPOL-{'IN' if direction == 'ingress' else 'EG'}-{_hash(pod.key)}"


def policy_chain(policy: NetworkPolicy, direction: str) -> str:
    return f"NETPOL-P-{_hash(policy.key + '/' + direction)}"


def block_chain(policy: NetworkPolicy, direction: str, rule: int, peer: int) -> str:
    return f"NETPOL-B-{_hash(f'{policy.key}/{direction}/{rule}/{peer}')}"


def selects(policy: NetworkPolicy, pod: Pod) -> bool:
    return policy.namespace == pod.namespace and policy.pod_selector.matches(pod.labels)


def policies_for(cluster: Cluster, pod: Pod, direction: str) -> list[NetworkPolicy]:
    kind = "Ingress" if direction == "ingress" else "Egress"
    return [p for p in cluster.policies if kind in p.policy_types and selects(p, pod)]


def peer_pods(cluster: Cluster, policy: NetworkPolicy, peer: PolicyPeer) -> list[Pod]:
    """The pods a podSelector / namespaceSelector peer stands for (hostNetwork pods have
    the node's address and are not pods to a policy)."""
    if peer.namespace_selector is not None:
        namespaces = {n for n, ns in cluster.namespaces.items()
                      if peer.namespace_selector.matches(ns.labels)}
    else:
        namespaces = {policy.namespace}
    return [p for p in cluster.pods if p.namespace in namespaces and not p.host_network
            and p.ip is not None
            and (peer.pod_selector is None or peer.pod_selector.matches(p.labels))]


def _port_args(port: PolicyPort, number: int | None) -> str:
    proto = port.protocol.lower()
    if number is None:
        return f"-p {proto}"
    span = f"{number}:{port.end_port}" if port.end_port is not None else str(number)
    return f"-p {proto} -m {proto} --dport {span}"


def _resolve(port: PolicyPort, pod: Pod | None) -> int | None | bool:
    """A policy port's number for traffic to ``pod``: an int, None (any port of the
    protocol), or False when a name has no such port on the pod."""
    if isinstance(port.port, str):
        if pod is None:
            return False
        for cp in pod.ports:
            if cp.name == port.port and cp.protocol == port.protocol:
                return cp.port
        return False
    return port.port


class _Writer:
    def __init__(self, cluster: Cluster, node: str):
        self.cluster = cluster
        self.node = node
        self.chains: list[str] = []
        self.rules: list[str] = []
        self.done: set[str] = set()

    def chain(self, name: str) -> bool:
        if name in self.done:
            return False
        self.done.add(name)
        self.chains.append(f":{name} - [0:0]")
        return True

    def rule(self, chain: str, *words: str) -> None:
        self.rules.append(" ".join(["-A", chain, *[w for w in words if w]]))

    def pod(self, pod: Pod, direction: str) -> None:
        policies = policies_for(self.cluster, pod, direction)
        if not policies:
            return
        chain = pod_chain(pod, direction)
        self.chain(chain)
        flag = "-s" if direction == "egress" else "-d"
        self.rule(ENTRY, f"{flag} {pod.ip}/32", f'-m comment --comment "{direction} of {pod.key}"',
                  f"-j {chain}")
        self.rule(chain, f"-j MARK --set-xmark 0x0/{MARK}")
        for policy in policies:
            pchain = policy_chain(policy, direction)
            self.rule(chain, f'-m comment --comment "NetworkPolicy {policy.key}"', f"-j {pchain}")
            if self.chain(pchain):
                self.policy(policy, direction, pchain)
        self.rule(chain, f"-m mark --mark {MARK}/{MARK} -j RETURN")
        self.rule(chain, f'-m comment --comment "{pod.key}: no NetworkPolicy allows this '
                         f'{direction}"', "-j DROP")

    def policy(self, policy: NetworkPolicy, direction: str, chain: str) -> None:
        rules = policy.ingress if direction == "ingress" else policy.egress
        for i, rule in enumerate(rules):
            self.policy_rule(policy, direction, chain, i, rule)

    def policy_rule(self, policy: NetworkPolicy, direction: str, chain: str, i: int,
                    rule: PolicyRule) -> None:
        ingress = direction == "ingress"
        peer_flag = "-s" if ingress else "-d"
        comment = f'-m comment --comment "{policy.key} {direction}[{i}]"'
        allow = f"-j MARK --set-xmark {MARK}/{MARK}"
        # The pods the policy protects on this node (for ingress: the destinations).
        selected = [p for p in self.cluster.pods if p.node == self.node and not p.host_network
                    and selects(policy, p)]
        ports = list(rule.ports) or [None]
        # SCTP is not modelled (no -m sctp): an SCTP port allows nothing the model can send.
        ports = [p for p in ports if p is None or p.protocol != "SCTP"]
        if not ports:
            return
        for j, peer in enumerate(rule.peers or (None,)):
            if peer is not None and peer.ip_block is not None:
                self.ip_block(policy, direction, chain, i, j, peer.ip_block, ports, selected,
                              comment, allow)
                continue
            targets = None if peer is None else peer_pods(self.cluster, policy, peer)
            for port in ports:
                self.port_rules(chain, port, ingress, peer_flag, targets, selected, comment,
                                allow)

    def port_rules(self, chain: str, port: PolicyPort | None, ingress: bool, peer_flag: str,
                   targets: list[Pod] | None, selected: list[Pod], comment: str,
                   allow: str) -> None:
        if port is not None and isinstance(port.port, str):
            # A named port resolves on the destination: the selected pod (ingress) or
            # the peer (egress; any pod when the rule names no peers).
            dests = selected if ingress else (targets if targets is not None
                                              else [p for p in self.cluster.pods if p.ip])
            for dest in dests:
                number = _resolve(port, dest)
                if number is False:
                    continue
                match = _port_args(port, number)
                dst = f"-d {dest.ip}/32"
                if ingress:
                    for src in (targets if targets is not None else [None]):
                        self.rule(chain, f"-s {src.ip}/32" if src else "", dst, match, comment,
                                  allow)
                else:
                    self.rule(chain, dst, match, comment, allow)
            return
        match = _port_args(port, port.port) if port is not None else ""
        if targets is None:
            self.rule(chain, match, comment, allow)
            return
        for t in targets:
            self.rule(chain, f"{peer_flag} {t.ip}/32", match, comment, allow)

    def ip_block(self, policy: NetworkPolicy, direction: str, chain: str, i: int, j: int,
                 block: IPBlock, ports: list, selected: list[Pod], comment: str,
                 allow: str) -> None:
        ingress = direction == "ingress"
        flag = "-s" if ingress else "-d"
        target = chain
        if block.excepts:
            target = block_chain(policy, direction, i, j)
            if self.chain(target):
                for e in block.excepts:
                    self.rule(target, f"{flag} {e}", f'-m comment --comment "{policy.key} '
                              f'{direction}[{i}] except {e}"', "-j RETURN")
                self.rule(target, comment, allow)
        jump = (comment, allow) if target == chain else (f"-j {target}",)
        for port in ports:
            if port is not None and isinstance(port.port, str):
                # A named port: the destination pod's (egress to a CIDR has no pod to ask).
                for dest in (selected if ingress else []):
                    number = _resolve(port, dest)
                    if number is not False:
                        self.rule(chain, f"{flag} {block.cidr}", f"-d {dest.ip}/32",
                                  _port_args(port, number), *jump)
                continue
            match = _port_args(port, port.port) if port is not None else ""
            self.rule(chain, f"{flag} {block.cidr}", match, *jump)


def node_payload(cluster: Cluster, node: str) -> str:
    """The filter rules for the pods on ``node``; empty when no policy exists."""
    if not cluster.policies:
        return ""
    w = _Writer(cluster, node)
    w.chain(ENTRY)
    w.rule(ENTRY, "-m conntrack --ctstate RELATED,ESTABLISHED",
           '-m comment --comment "replies of allowed connections"', "-j RETURN")
    local = [p for p in cluster.pods if p.node == node and not p.host_network and p.ip]
    for pod in local:
        w.pod(pod, "egress")
    for pod in local:
        w.pod(pod, "ingress")
    jumps = [f'-I {hook} 1 -m comment --comment "network policies" -j {ENTRY}'
             for hook in ("INPUT", "FORWARD")]
    return "\n".join(["*filter", *w.chains, *jumps, *w.rules, "COMMIT", ""])
