"""The emulated kubelet: a pod's network namespace, its network, its listeners and
its /etc/resolv.conf.

A pod's namespace is called ``<namespace>.<pod>`` on its node (a dot never appears
in a Kubernetes namespace's name, so the names cannot collide), e.g. ``node1/shop.frontend-…``.

Attaching a pod is one function, ``attach_pod``: the container runtime creates the
namespace, runs the loopback plugin (``lo`` up) and then the CNI network: the
``bridge`` plugin with ``host-local`` IPAM, run in-process by ``netlab.cni.invoke``
with the network configuration flannel's plugin hands it (``netconf``) and the
CNI_ARGS kubelet sets (``cni_args``). What the plugin does (veth, addresses,
routes, the bridge's gateway address, ip_forward) is whatever netlab's bridge
plugin does, so a cluster's pods are wired exactly as the CNI lab's are.
"""

from __future__ import annotations

import hashlib

from netlab import ops as O
from netlab.errors import LabError
from netlab.k8s.cluster import Cluster, Node
from netlab.k8s.objects import Pod
from netlab.model import ns_key

BRIDGE = "cni0"
IFNAME = "eth0"
NETWORK_NAME = "cbr0"                   # flannel's network name in /etc/cni/net.d
# host-local's default data dir. Each node keeps its own files (World.files[node]), as
# each machine has its own /var/lib: the dataDir is per node by being on the node.
DATA_DIR = "/var/lib/cni/networks"


def netns_name(pod: Pod) -> str:
    return f"{pod.namespace}.{pod.name}"


def netns_path(pod: Pod) -> str:
    """CNI_NETNS as the runtime passes it (a bind mount named after the namespace)."""
    return f"/var/run/netns/{netns_name(pod)}"


def pod_netns_key(pod: Pod) -> str:
    return ns_key(pod.node, netns_name(pod)) if not pod.host_network else ns_key(pod.node)


def container_id(pod: Pod) -> str:
    """The sandbox's id: 64 hex digits, derived from the pod so every run agrees."""
    return hashlib.sha256(f"sandbox:{pod.namespace}/{pod.name}".encode()).hexdigest()


def netconf(cluster: Cluster, node: Node) -> dict:
    """The bridge plugin's configuration on ``node``, as flannel's CNI plugin builds it
    from kube-flannel's cni-conf.json (``delegate: {hairpinMode, isDefaultGateway}``)
    and flanneld's subnet.env, and passes it on (flannel-io/cni-plugin, flannel_linux.go):

    - ``isGateway`` true (flannel's default for a bridge delegate; isDefaultGateway
      implies it): cni0 gets the range's .1 and the node forwards;
    - ``ipMasq`` false: flannel sets it to the opposite of flanneld's ``--ip-masq``, and
      kube-flannel.yml runs flanneld with ``--ip-masq`` (flanneld masquerades traffic
      leaving the pod network itself), so the plugin adds no CNI- chain. kubenet's
      bridge config has ``"ipMasq": false`` too (kubelet's ``--non-masquerade-cidr``
      rule does the job there);
    - ``mtu``: flanneld's FLANNEL_MTU, the VTEP's for vxlan (1450), eth0's otherwise;
    - ``ipam``: host-local on the node's podCIDR, with a route to the whole pod
      network (the flannel network); the default route comes from isDefaultGateway.
    """
    from netlab.k8s.build import VXLAN_MTU
    conf = {
        "cniVersion": "1.0.0", "name": NETWORK_NAME, "type": "bridge", "bridge": BRIDGE,
        "isGateway": True, "isDefaultGateway": True, "ipMasq": False, "hairpinMode": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": node.pod_cidr}]],
                 "routes": [{"dst": cluster.spec.pod_cidr}], "dataDir": DATA_DIR},
    }
    if cluster.spec.network == "vxlan":
        conf["mtu"] = VXLAN_MTU
    return conf


def cni_args(pod: Pod) -> str:
    """CNI_ARGS as kubelet sets them (pkg/kubelet/dockershim/network/cni, in its order)."""
    return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
            f"K8S_POD_INFRA_CONTAINER_ID={container_id(pod)}")


def attach_pod(backend, cluster: Cluster, pod: Pod, node: Node | None = None) -> dict | None:
    """Start ``pod``'s sandbox on ``backend`` (a ModelBackend, or anything with its
    ``world`` and ``apply``) as the runtime and the CNI plugins do, and open the
    listeners of its containers' ports. Returns the bridge plugin's result (None for a
    hostNetwork pod). The plugin's address must be the one the control plane gave the
    pod (both follow host-local's order): a difference is a bug, reported as such."""
    if not pod.host_network:
        from netlab.cni import CniError, invoke
        node = node or cluster.node(pod.node)
        backend.apply(O.AddNetns(node.name, netns_name(pod)))
        backend.apply(O.SetLinkUp(pod_netns_key(pod), "lo", True))    # the loopback plugin
        try:
            result = invoke(backend, "ADD", netconf(cluster, node), container_id=container_id(pod),
                            netns=netns_path(pod), ifname=IFNAME, node=node.name,
                            cni_args=cni_args(pod))
        except CniError as exc:
            raise LabError(f"pod {pod.key} on {node.name}: the bridge plugin failed: {exc.msg}",
                           path=cluster.spec.path) from None
        got = [ip["address"].split("/")[0] for ip in result.get("ips", [])]
        if got != [pod.ip]:
            raise LabError(f"pod {pod.key} on {node.name}: host-local gave {got}, the control "
                           f"plane expected {pod.ip}", path=cluster.spec.path)
    else:
        result = None
    for op in listener_ops(pod):
        backend.apply(op)
    return result


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
