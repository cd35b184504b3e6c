"""pcap of a trace: every frame as the device it crosses sees it. Wireshark's tshark
(when installed; CI installs it) decodes each packet; the addresses, ports and MACs at
each hop are what the lab says, and VXLAN frames carry the inner packet."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from netlab.viz.pcap import write_pcap
from tests.unit.viz_cases import lab_trace, vxlan_case, vxlan_cluster_case

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="needs Wireshark's tshark "
                                  "(apt-get install tshark); CI installs it")


def tshark_json(path, *options: str) -> list[dict]:
    done = subprocess.run([TSHARK, "-r", str(path), *options, "-T", "json", "--no-duplicate-keys"],
                          capture_output=True, text=True, check=True)
    return [p["_source"]["layers"] for p in json.loads(done.stdout)]


def as_list(value):
    return value if isinstance(value, list) else [value]


def mac_of(world, where: str, dev: str) -> str:
    node, _, netns = where.partition("/")
    return world.namespaces[f"{node}/{netns or 'root'}"].links[dev].mac


@pytest.fixture(scope="module")
def port_mapping(tmp_path_factory):
    """Lab 06: node2 connects to the host's published port 8080; DNAT to web:80."""
    world, traced = lab_trace("06", "node2", "192.168.1.2", proto="tcp", port=8080)
    path = tmp_path_factory.mktemp("pcap") / "nat.pcap"
    count = write_pcap(traced, str(path), world)
    return world, path, count


OUT, IN = "Outbound", "Inbound"
# (device, direction, src, sport, dst, dport, tcp flags) of every frame: the SYN, the
# SYN-ACK; what tcpdump -i DEVICE would show (NAT happens between ingress and egress)
NAT_FRAMES = [
    ("node2:eth0", OUT, "192.168.1.3", 40000, "192.168.1.2", 8080, "S"),
    ("lan:node2", IN, "192.168.1.3", 40000, "192.168.1.2", 8080, "S"),
    ("lan:host", OUT, "192.168.1.3", 40000, "192.168.1.2", 8080, "S"),
    ("host:eth0", IN, "192.168.1.3", 40000, "192.168.1.2", 8080, "S"),
    ("host:docker0", OUT, "192.168.1.3", 40000, "172.17.0.2", 80, "S"),     # after the DNAT
    ("host:veth0a1b2c3", OUT, "192.168.1.3", 40000, "172.17.0.2", 80, "S"),
    ("host/web:eth0", IN, "192.168.1.3", 40000, "172.17.0.2", 80, "S"),
    ("host/web:eth0", OUT, "172.17.0.2", 80, "192.168.1.3", 40000, "SA"),
    ("host:veth0a1b2c3", IN, "172.17.0.2", 80, "192.168.1.3", 40000, "SA"),
    ("host:docker0", IN, "172.17.0.2", 80, "192.168.1.3", 40000, "SA"),
    ("host:eth0", OUT, "192.168.1.2", 8080, "192.168.1.3", 40000, "SA"),        # un-DNAT
    ("lan:host", IN, "192.168.1.2", 8080, "192.168.1.3", 40000, "SA"),
    ("lan:node2", OUT, "192.168.1.2", 8080, "192.168.1.3", 40000, "SA"),
    ("node2:eth0", IN, "192.168.1.2", 8080, "192.168.1.3", 40000, "SA"),
]
FLAGS = {"S": 0x002, "SA": 0x012}


def device(layers) -> str:
    return layers["frame"]["frame.interface_id_tree"]["frame.interface_name"]


@needs_tshark
def test_tshark_decodes_every_packet_of_a_nat_trace(port_mapping):
    world, path, count = port_mapping
    layers = tshark_json(path)
    assert len(layers) == count == len(NAT_FRAMES)
    for got, (dev, way, src, sport, dst, dport, flags) in zip(layers, NAT_FRAMES):
        assert got["frame"]["frame.protocols"] == "eth:ethertype:ip:tcp", got["frame"]
        assert device(got) == dev
        assert got["frame"]["frame.packet_flags_tree"]["frame.packet_flags_direction"] == \
            ("0x00000001" if way == IN else "0x00000002"), dev
        assert (got["ip"]["ip.src"], int(got["tcp"]["tcp.srcport"])) == (src, sport), dev
        assert (got["ip"]["ip.dst"], int(got["tcp"]["tcp.dstport"])) == (dst, dport), dev
        assert int(got["tcp"]["tcp.flags"], 16) == FLAGS[flags], dev
        assert "_ws.malformed" not in got


def test_without_the_world_a_frame_is_seen_where_it_leaves(tmp_path):
    from netlab.viz.pcap import packets

    world, traced = lab_trace("06", "node2", "192.168.1.2", proto="tcp", port=8080)
    alone = [(p.sniffed_on, p.direction) for p in packets(traced)]
    assert alone == [(d, 2) for d, way, *_ in NAT_FRAMES
                     if way == OUT and not d.endswith("docker0")]


@needs_tshark
def test_nat_frames_carry_the_labs_macs(port_mapping):
    world, path, _ = port_mapping
    layers = tshark_json(path)
    # node2 sends to the host's eth0; the host routes out of docker0 to web's eth0
    for n in (0, 1, 2, 3):
        assert layers[n]["eth"]["eth.src"] == mac_of(world, "node2", "eth0")
        assert layers[n]["eth"]["eth.dst"] == mac_of(world, "host", "eth0")
    for n in (4, 5, 6):
        assert layers[n]["eth"]["eth.src"] == mac_of(world, "host", "docker0")
        assert layers[n]["eth"]["eth.dst"] == mac_of(world, "host/web", "eth0")
    assert int(layers[4]["ip"]["ip.ttl"]) == 63 and int(layers[0]["ip"]["ip.ttl"]) == 64
    assert "hop" in layers[0]["pkt_comment"]["frame.comment"]


class Tunnel:
    """A real engine trace through a VXLAN overlay and what its capture must show."""

    def __init__(self, name, world, traced, vtep, vni, port, nodes, pods):
        self.name, self.world, self.traced = name, world, traced
        self.vtep, self.vni, self.port = vtep, vni, port
        self.nodes = nodes                      # (node, its LAN address) x 2: sender first
        self.pods = pods                        # (netns key, pod IP) x 2


def lab09() -> Tunnel:
    world, traced = vxlan_case()
    return Tunnel("lab09", world, traced, "vxlan0", 42, 4789,
                  [("node1", "192.168.1.11"), ("node2", "192.168.1.12")],
                  [("node1/red", "10.244.1.2"), ("node2/blue", "10.244.2.2")])


def vxlan_cluster() -> Tunnel:
    from netlab.k8s.build import VXLAN_PORT, VXLAN_VNI

    world, traced, cluster = vxlan_cluster_case()
    nodes = [(n.name, n.ip) for n in cluster.nodes]
    pods = [(traced.source, traced.packet.src),
            (traced.paths[0].delivered_to, traced.packet.dst)]
    return Tunnel("cluster", world, traced, "flannel.1", VXLAN_VNI, VXLAN_PORT, nodes, pods)


@pytest.fixture(scope="module", params=[lab09, vxlan_cluster], ids=["lab09", "vxlan-cluster"])
def tunnel(request, tmp_path_factory):
    t = request.param()
    t.path = tmp_path_factory.mktemp("pcap") / f"{t.name}.pcap"
    t.count = write_pcap(t.traced, str(t.path), t.world)
    return t


def tunnel_layers(t: Tunnel) -> list[dict]:
    # 4789 is VXLAN's IANA port, which tshark decodes; flannel's 8472 needs "decode as"
    return tshark_json(t.path, "-d", f"udp.port=={t.port},vxlan")


@needs_tshark
def test_tshark_decodes_outer_and_inner_packet_at_each_hop(tunnel):
    t = tunnel
    layers = tunnel_layers(t)
    assert len(layers) == t.count
    (n1, ip1), (n2, ip2) = t.nodes
    tunnelled = [(device(l), l) for l in layers if "vxlan" in l]
    # request: out of node1's eth0, through the LAN switch, into node2's eth0; the reply back
    assert [dev for dev, _ in tunnelled] == [f"{n1}:eth0", f"lan:{n1}", f"lan:{n2}", f"{n2}:eth0",
                                             f"{n2}:eth0", f"lan:{n2}", f"lan:{n1}", f"{n1}:eth0"]
    (_, pod1), (_, pod2) = t.pods
    for n, (dev, l) in enumerate(tunnelled):
        request = n < 4
        outer, inner = as_list(l["ip"])
        outer_eth, inner_eth = as_list(l["eth"])
        assert l["frame"]["frame.protocols"] == "eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:icmp"
        assert "_ws.malformed" not in l
        assert (outer["ip.src"], outer["ip.dst"]) == ((ip1, ip2) if request else (ip2, ip1))
        assert int(outer["ip.ttl"]) == 64
        assert int(l["udp"]["udp.dstport"]) == t.port and l["vxlan"]["vxlan.vni"] == str(t.vni)
        assert 32768 <= int(l["udp"]["udp.srcport"]) <= 60999       # udp_flow_src_port
        assert (inner["ip.src"], inner["ip.dst"]) == ((pod1, pod2) if request else (pod2, pod1))
        assert int(inner["ip.ttl"]) == 63                 # the sending node forwarded it
        assert l["icmp"]["icmp.type"] == ("8" if request else "0")
        # outer Ethernet: the nodes' eth0; inner: the VTEPs
        sender, receiver = (n1, n2) if request else (n2, n1)
        assert outer_eth["eth.src"] == mac_of(t.world, sender, "eth0")
        assert outer_eth["eth.dst"] == mac_of(t.world, receiver, "eth0")
        assert inner_eth["eth.src"] == mac_of(t.world, sender, t.vtep)
        assert inner_eth["eth.dst"] == mac_of(t.world, receiver, t.vtep)
    # on the VXLAN devices themselves the inner frame is seen, not encapsulated: out of
    # the sender's, into the receiver's, each way
    on_vtep = [(device(l), l) for l in layers if device(l).endswith(f":{t.vtep}")]
    assert [d for d, _ in on_vtep] == [f"{n1}:{t.vtep}", f"{n2}:{t.vtep}",
                                       f"{n2}:{t.vtep}", f"{n1}:{t.vtep}"]
    assert all("vxlan" not in l and l["ip"]["ip.dst"] in (pod1, pod2) for _, l in on_vtep)
    # inside the pods: the plain packet, from the pod's own eth0
    first = layers[0]
    assert device(first).startswith(t.pods[0][0] + ":")
    assert first["frame"]["frame.protocols"] == "eth:ethertype:ip:icmp"
    assert first["ip"]["ip.src"] == pod1 and int(first["ip"]["ip.ttl"]) == 64


def test_the_capture_follows_the_engines_tunnel_hops(tunnel):
    """Each vxlan encap hop starts the tunnelled frames and its decap hop ends them."""
    from scapy.layers.vxlan import VXLAN
    from scapy.utils import rdpcap

    t = tunnel
    hops = t.traced.paths[0].hops
    encap = next(h for h in hops if h.event == "vxlan" and h.action == "encap")
    decap = next(h for h in hops if h.event == "vxlan" and h.action == "decap")
    assert (encap.dev, decap.dev) == (t.vtep, t.vtep)
    assert encap.extra["outer"]["src"] == t.nodes[0][1] == decap.extra["outer"]["src"]
    assert encap.extra["inner"]["dst"] == decap.extra["inner"]["dst"] == t.pods[1][1]
    pkts = rdpcap(str(t.path))
    tunnelled = [p for p in pkts if p.haslayer(VXLAN)]
    assert tunnelled[0][VXLAN].vni == t.vni
    assert tunnelled[0].sport == encap.extra["outer"]["sport"]
    names = [p.sniffed_on for p in pkts]
    assert names.index(f"{encap.node}:{encap.dev}") < names.index(f"{encap.node}:eth0")


@needs_tshark
def test_checksums_are_valid(port_mapping, tunnel):
    for path in (port_mapping[1], tunnel.path):
        done = subprocess.run(
            [TSHARK, "-r", str(path), "-d", f"udp.port=={tunnel.port},vxlan",
             "-o", "ip.check_checksum:TRUE", "-o",
             "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-T", "fields",
             "-e", "ip.checksum.status", "-e", "tcp.checksum.status",
             "-e", "udp.checksum.status", "-e", "icmp.checksum.status"],
            capture_output=True, text=True, check=True)
        statuses = {s for line in done.stdout.split() for s in line.split(",") if s}
        assert statuses == {"1"}, f"{path}: checksum statuses {statuses} (1 = good)"


@needs_tshark
def test_an_icmp_error_quotes_the_packet_it_is_about(tmp_path):
    world, traced = lab_trace("03", "red", "192.168.15.2", proto="udp", port=53)
    path = tmp_path / "closed.pcap"
    write_pcap(traced, str(path), world)
    layers = tshark_json(path)
    request, error = layers[0], layers[-1]
    assert request["frame"]["frame.protocols"] == "eth:ethertype:ip:udp:dns"
    assert error["icmp"]["icmp.type"] == "3" and error["icmp"]["icmp.code"] == "3"
    outer = error["ip"]
    assert (outer["ip.src"], outer["ip.dst"]) == ("192.168.15.2", "192.168.15.1")
    quoted, quoted_udp = error["icmp"]["ip"], error["icmp"]["udp"]    # tshark nests them
    assert (quoted["ip.src"], quoted["ip.dst"]) == ("192.168.15.1", "192.168.15.2")
    assert (int(quoted_udp["udp.srcport"]), int(quoted_udp["udp.dstport"])) == (40000, 53)
