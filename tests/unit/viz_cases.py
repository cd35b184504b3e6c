"""Traces the viz tests render: bundled labs traced by the engine, and a VXLAN trace
built by hand (the model has no VXLAN devices yet: the hops follow the contract in
netlab/trace.py, Hop.extra "encap")."""

from __future__ import annotations

from netlab.dataplane.engine import trace
from netlab.labs import find_lab, load_lab, run_lab
from netlab.labs.loader import parse_lab
from netlab.model import Address, Link
from netlab.trace import Hop, Packet, Path, Trace


def lab_world(ref: str):
    lab = load_lab(find_lab(ref))
    return run_lab(lab, check_expect=False, keep_going=True).world, lab.nodes[0]


def lab_trace(ref: str, source: str, to: str, proto: str = "icmp", port: int | None = None):
    world, node = lab_world(ref)
    ns = world.resolve(source, default_node=node)
    return world, trace(world, ns.key, to, proto=proto, dport=port)


VXLAN_LAB = """\
netlab: 1
name: vxlan-by-hand
title: Two nodes, a pod on each, a VXLAN tunnel between them
nodes: [node1, node2]
lan: {name: lan, nodes: {node1: 192.168.1.11/24, node2: 192.168.1.12/24}}
steps:
  - title: pod-a on node1
    node: node1
    run: |
      ip netns add pod-a
      ip link add cni0 type bridge
      ip link set cni0 up
      ip addr add 10.244.1.1/24 dev cni0
      ip link add veth-a type veth peer name eth0-a
      ip link set eth0-a netns pod-a
      ip link set veth-a master cni0
      ip link set veth-a up
      ip -n pod-a addr add 10.244.1.2/24 dev eth0-a
      ip -n pod-a link set eth0-a up
  - title: pod-b on node2
    node: node2
    run: |
      ip netns add pod-b
      ip link add cni0 type bridge
      ip link set cni0 up
      ip addr add 10.244.2.1/24 dev cni0
      ip link add veth-b type veth peer name eth0-b
      ip link set eth0-b netns pod-b
      ip link set veth-b master cni0
      ip link set veth-b up
      ip -n pod-b addr add 10.244.2.3/24 dev eth0-b
      ip -n pod-b link set eth0-b up
"""
VNI = 1
VXLAN_SPORT = 51234


def _add_vxlan(world, node: str, ip: str) -> Link:
    ns = world.namespaces[f"{node}/root"]
    link = Link(name="flannel.1", kind="vxlan", ifindex=ns.next_ifindex, mac=world.new_mac(),
                up=True, addresses=[Address(ip, 32)])
    ns.next_ifindex += 1
    ns.links[link.name] = link
    return link


def vxlan_case() -> tuple[object, Trace]:
    """pod-a (node1) pings pod-b (node2) across flannel.1, and the echo reply comes back."""
    lab = parse_lab(VXLAN_LAB, "vxlan-by-hand.yaml")
    world = run_lab(lab, check_expect=False).world
    v1, v2 = _add_vxlan(world, "node1", "10.244.1.0"), _add_vxlan(world, "node2", "10.244.2.0")
    mac = {key: {n: l.mac for n, l in ns.links.items()} for key, ns in world.namespaces.items()}
    n1, n2 = mac["node1/root"], mac["node2/root"]
    a, b = mac["node1/pod-a"]["eth0-a"], mac["node2/pod-b"]["eth0-b"]

    def hop(where: str, event: str, detail: str, dev=None, **extra) -> Hop:
        node, _, netns = where.partition("/")
        return Hop(node=node, netns=netns or "root", event=event, detail=detail, dev=dev,
                   extra=extra or None)

    def crossing(src_node, src_ip, src_mac, dst_node, dst_ip, dst_mac, vni_sport, reply):
        outer = {"src": src_ip, "dst": dst_ip, "sport": vni_sport, "dport": 4789}
        return [
            hop(src_node, "encap", f"flannel.1 wraps the frame: VXLAN vni {VNI} to {dst_ip}",
                "flannel.1", encap={"type": "vxlan", "vni": VNI, "outer": outer}),
            hop(src_node, "route", f"{dst_ip} dev eth0 src {src_ip}", "eth0", src=src_ip),
            hop(src_node, "arp", f"ARP {dst_ip} is-at {dst_mac}", "eth0", ip=dst_ip,
                mac=dst_mac, src_mac=src_mac),
            hop(src_node, "veth", f"eth0 → {src_node} (lan)", "eth0"),
            hop("lan", "bridge", f"br0 receives the frame on port {src_node}", "br0"),
            hop("lan", "bridge", f"br0 forwards the frame out of port {dst_node}", dst_node),
            hop("lan", "veth", f"{dst_node} → eth0 ({dst_node})", dst_node),
            hop(dst_node, "decap", f"flannel.1 unwraps VXLAN vni {VNI} from {src_ip}",
                "flannel.1"),
        ]

    request = [
        hop("node1/pod-a", "route", "10.244.2.3 via 10.244.1.1 dev eth0-a src 10.244.1.2",
            "eth0-a", src="10.244.1.2"),
        hop("node1/pod-a", "arp", f"ARP 10.244.1.1 is-at {n1['cni0']}", "eth0-a",
            ip="10.244.1.1", mac=n1["cni0"], src_mac=a),
        hop("node1/pod-a", "veth", "eth0-a → veth-a (node1)", "eth0-a"),
        hop("node1", "bridge", "cni0 receives the frame on port veth-a", "cni0"),
        hop("node1", "forward", "forward cni0 → flannel.1 via 10.244.2.0, TTL 63", "flannel.1"),
        hop("node1", "arp", f"ARP 10.244.2.0 is-at {v2.mac}", "flannel.1", ip="10.244.2.0",
            mac=v2.mac, src_mac=v1.mac),
        *crossing("node1", "192.168.1.11", n1["eth0"], "node2", "192.168.1.12", n2["eth0"],
                  VXLAN_SPORT, False),
        hop("node2", "forward", "forward flannel.1 → cni0, TTL 62", "cni0"),
        hop("node2", "arp", f"ARP 10.244.2.3 is-at {b}", "cni0", ip="10.244.2.3", mac=b,
            src_mac=n2["cni0"]),
        hop("node2", "bridge", "cni0 forwards the frame out of port veth-b", "veth-b"),
        hop("node2", "veth", "veth-b → eth0-b (node2/pod-b)", "veth-b"),
        hop("node2/pod-b", "deliver", "echo request delivered to node2/pod-b", "eth0-b"),
    ]
    echo = Packet("icmp", src="10.244.1.2", dst="10.244.2.3", icmp_type=8)
    answer = Packet("icmp", src="10.244.2.3", dst="10.244.1.2", icmp_type=0)
    reply = [
        hop("node2/pod-b", "route", "10.244.1.2 via 10.244.2.1 dev eth0-b src 10.244.2.3",
            "eth0-b", src="10.244.2.3", packet=answer.to_json()),
        hop("node2/pod-b", "arp", f"ARP 10.244.2.1 is-at {n2['cni0']}", "eth0-b",
            ip="10.244.2.1", mac=n2["cni0"], src_mac=b),
        hop("node2/pod-b", "veth", "eth0-b → veth-b (node2)", "eth0-b"),
        hop("node2", "bridge", "cni0 receives the frame on port veth-b", "cni0"),
        hop("node2", "forward", "forward cni0 → flannel.1 via 10.244.1.0, TTL 63", "flannel.1"),
        hop("node2", "arp", f"ARP 10.244.1.0 is-at {v1.mac}", "flannel.1", ip="10.244.1.0",
            mac=v1.mac, src_mac=v2.mac),
        *crossing("node2", "192.168.1.12", n2["eth0"], "node1", "192.168.1.11", n1["eth0"],
                  VXLAN_SPORT + 1, True),
        hop("node1", "forward", "forward flannel.1 → cni0, TTL 62", "cni0"),
        hop("node1", "arp", f"ARP 10.244.1.2 is-at {a}", "cni0", ip="10.244.1.2", mac=a,
            src_mac=n1["cni0"]),
        hop("node1", "bridge", "cni0 forwards the frame out of port veth-a", "veth-a"),
        hop("node1", "veth", "veth-a → eth0-a (node1/pod-a)", "veth-a"),
        hop("node1/pod-a", "deliver", "delivered to node1/pod-a", "eth0-a"),
    ]
    back = Path("delivered", "success", reply, answer.with_(ttl=62), delivered_to="node1/pod-a")
    path = Path("delivered", "success", request, echo.with_(ttl=62),
                delivered_to="node2/pod-b", reply=back)
    return world, Trace(packet=echo, source="node1/pod-a", paths=[path])


def service_fork() -> tuple[object, Trace]:
    """A ClusterIP with three endpoints: the trace forks into three paths at 1/3 each."""
    from tests.unit.test_netfilter_dataplane import kube_service, router_lab

    b = router_lab()
    kube_service(b)
    return b.world, trace(b.world, "host/h1", "10.96.0.10", proto="tcp", dport=80)


# name -> () -> (world, trace): the traces the golden files pin
CASES = {
    "lab05-masquerade": lambda: lab_trace("05", "red", "192.168.1.3"),
    "lab06-published-port": lambda: lab_trace("06", "node2", "192.168.1.2", "tcp", 8080),
    "lab06-dropped": lambda: lab_trace("06", "node2", "172.17.0.2", "tcp", 22),
    "lab02-no-route": lambda: lab_trace("02", "red", "10.9.9.9"),
    "service-fork": service_fork,
    "vxlan": vxlan_case,
}
