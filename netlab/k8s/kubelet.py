"""The emulated kubelet: a pod's network namespace, its network, its listeners and
its /etc/resolv.conf.

A pod's namespace is called ``<namespace>.<pod>`` on its node (a dot never appears
in a Kubernetes namespace's name, so the names cannot collide), e.g. ``node1/shop.frontend-…``.

Attaching a pod is one function, ``attach_pod``: the container runtime creates the
namespace, runs the loopback plugin (``lo`` up) and then the CNI network — here the
``bridge`` plugin with ``host-local`` IPAM on the node's pod range, configured as
flannel and kubeadm clusters configure it (``isGateway``, ``isDefaultGateway``,
``ipMasq`` off, hairpin mode on). THE SEAM: until ``netlab.cni.invoke`` is merged,
``bridge_ops`` emits the Ops the bridge plugin performs (see /work/shared/CNI_NOTES.md
§6-7); swap its body for ``netlab.cni.invoke(backend, "ADD", netconf, …)`` then.
"""

from __future__ import annotations

import hashlib

from netlab import ops as O
from netlab.k8s.cluster import Cluster, Node, prefixlen
from netlab.k8s.objects import Pod
from netlab.model import ns_key

BRIDGE = "cni0"
IFNAME = "eth0"
NETWORK_NAME = "cbr0"                   # flannel's network name in /etc/cni/net.d


def netns_name(pod: Pod) -> str:
    return f"{pod.namespace}.{pod.name}"


def pod_netns_key(pod: Pod) -> str:
    return ns_key(pod.node, netns_name(pod)) if not pod.host_network else ns_key(pod.node)


def container_id(pod: Pod) -> str:
    """The sandbox's id: 64 hex digits, derived from the pod so every run agrees."""
    return hashlib.sha256(f"sandbox:{pod.namespace}/{pod.name}".encode()).hexdigest()


def host_veth(pod: Pod) -> str:
    """``veth`` + 8 hex digits; the plugin draws them at random, we hash the container id."""
    return "veth" + hashlib.sha256(container_id(pod).encode()).hexdigest()[:8]


def netconf(node: Node) -> dict:
    """The CNI network configuration the runtime hands the bridge plugin on ``node``."""
    return {
        "cniVersion": "1.0.0", "name": NETWORK_NAME, "type": "bridge", "bridge": BRIDGE,
        "isGateway": True, "isDefaultGateway": True, "ipMasq": False, "hairpinMode": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": node.pod_cidr}]],
                 "routes": [{"dst": "0.0.0.0/0"}]},
    }


def bridge_ops(node: Node, pod: Pod, first_on_node: bool) -> list[O.Op]:
    """What `bridge` ADD with host-local does for one container (the seam, see above)."""
    root = ns_key(node.name)
    key = pod_netns_key(pod)
    prefix = prefixlen(node.pod_cidr)
    veth = host_veth(pod)
    ops: list[O.Op] = []
    if first_on_node:                                      # ensureBridge
        ops += [O.AddLink(root, BRIDGE, "bridge"), O.SetLinkUp(root, BRIDGE, True)]
    ops += [                                               # setupVeth
        O.AddLink(key, IFNAME, "veth", peer=veth, peer_netns=root),
        O.SetLinkUp(root, veth, True),
        O.SetLinkMaster(root, veth, BRIDGE),
        O.AddAddress(key, IFNAME, pod.ip, prefix),         # ipam.ConfigureIface
        O.SetLinkUp(key, IFNAME, True),
        O.AddRoute(key, "default", dev=IFNAME, gateway=node.gateway),
    ]
    if first_on_node:                                      # isGateway: ensureAddr, ip_forward
        ops += [O.AddAddress(root, BRIDGE, node.gateway, prefix),
                O.SetSysctl(root, "net.ipv4.ip_forward", "1")]
    return ops


def attach_pod(node: Node, pod: Pod, first_on_node: bool) -> list[O.Op]:
    """Everything the runtime and the CNI plugins do to start ``pod``'s sandbox, as Ops,
    and the listeners of its containers' ports."""
    if pod.host_network:
        return listener_ops(pod)
    key = pod_netns_key(pod)
    ops: list[O.Op] = [O.AddNetns(node.name, netns_name(pod)),
                       O.SetLinkUp(key, "lo", True)]       # the loopback plugin
    ops += bridge_ops(node, pod, first_on_node)
    return ops + listener_ops(pod)


def listener_ops(pod: Pod) -> list[O.Op]:
    """A pod listens on the ports its containers declare (SCTP is not modelled)."""
    key = pod_netns_key(pod)
    seen = set()
    ops: list[O.Op] = []
    for p in pod.ports:
        proto = p.protocol.lower()
        if proto in ("tcp", "udp") and (proto, p.port) not in seen:
            seen.add((proto, p.port))
            ops.append(O.AddListener(key, proto, p.port))
    return ops


def resolv_conf(cluster: Cluster, pod: Pod) -> str:
    """/etc/resolv.conf as kubelet writes it for dnsPolicy ClusterFirst."""
    domain = cluster.spec.cluster_domain
    return (f"search {pod.namespace}.svc.{domain} svc.{domain} {domain}\n"
            f"nameserver {cluster.dns_ip}\n"
            "options ndots:5\n")
