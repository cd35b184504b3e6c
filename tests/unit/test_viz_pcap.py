"""pcap of a trace: every frame as the device it crosses sees it. Wireshark's tshark
(when installed; CI installs it) decodes each packet; the addresses, ports and MACs at
each hop are what the lab says, and VXLAN frames carry the inner packet."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from netlab.viz.pcap import write_pcap
from tests.unit.viz_cases import lab_trace, vxlan_case

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="needs Wireshark's tshark "
                                  "(apt-get install tshark); CI installs it")


def tshark_json(path) -> list[dict]:
    done = subprocess.run([TSHARK, "-r", str(path), "-T", "json", "--no-duplicate-keys"],
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


@pytest.fixture(scope="module")
def vxlan_capture(tmp_path_factory):
    world, traced = vxlan_case()
    path = tmp_path_factory.mktemp("pcap") / "vxlan.pcap"
    write_pcap(traced, str(path), world)
    return world, path


@needs_tshark
def test_tshark_decodes_vxlan_frames_with_their_inner_packet(vxlan_capture):
    world, path = vxlan_capture
    layers = tshark_json(path)
    tunnelled = [(device(l), l) for l in layers if "vxlan" in l]
    # request: out of node1's eth0, through the LAN switch, into node2's eth0; the reply back
    assert [dev for dev, _ in tunnelled] == ["node1:eth0", "lan:node1", "lan:node2", "node2:eth0",
                                             "node2:eth0", "lan:node2", "lan:node1", "node1:eth0"]
    for n, (dev, l) in enumerate(tunnelled):
        request = n < 4
        outer, inner = as_list(l["ip"])
        outer_eth, inner_eth = as_list(l["eth"])
        assert l["frame"]["frame.protocols"] == "eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:icmp"
        assert (outer["ip.src"], outer["ip.dst"]) == (("192.168.1.11", "192.168.1.12") if request
                                                      else ("192.168.1.12", "192.168.1.11"))
        assert int(l["udp"]["udp.dstport"]) == 4789 and l["vxlan"]["vxlan.vni"] == "1"
        assert (inner["ip.src"], inner["ip.dst"]) == (("10.244.1.2", "10.244.2.3") if request
                                                      else ("10.244.2.3", "10.244.1.2"))
        assert l["icmp"]["icmp.type"] == ("8" if request else "0")
        # outer Ethernet: the nodes' eth0; inner: the flannel.1 devices
        sender, receiver = ("node1", "node2") if request else ("node2", "node1")
        assert outer_eth["eth.src"] == mac_of(world, sender, "eth0")
        assert outer_eth["eth.dst"] == mac_of(world, receiver, "eth0")
        assert inner_eth["eth.src"] == mac_of(world, sender, "flannel.1")
        assert inner_eth["eth.dst"] == mac_of(world, receiver, "flannel.1")
    # on the flannel.1 devices themselves the inner frame is seen, not encapsulated
    on_vxlan_dev = [l for l in layers if device(l).endswith(":flannel.1")]
    assert len(on_vxlan_dev) == 4
    assert all("vxlan" not in l and l["ip"]["ip.dst"].startswith("10.244.") for l in on_vxlan_dev)
    # inside the pods: the plain packet with the pods' own MACs
    first = layers[0]
    assert device(first) == "node1/pod-a:eth0-a"
    assert first["eth"]["eth.src"] == mac_of(world, "node1/pod-a", "eth0-a")
    assert first["eth"]["eth.dst"] == mac_of(world, "node1", "cni0")


def test_capture_reads_back_with_scapy(vxlan_capture):
    from scapy.layers.inet import IP
    from scapy.layers.vxlan import VXLAN
    from scapy.utils import rdpcap

    _, path = vxlan_capture
    pkts = rdpcap(str(path))
    # each way: the pods' veth pairs (2 + 2), cni0 (1 + 1), flannel.1 (1 + 1), and the
    # underlay: eth0, the LAN switch's two ports, eth0 (4)
    assert len(pkts) == 2 * 12
    tunnelled = [p for p in pkts if p.haslayer(VXLAN)]
    assert len(tunnelled) == 8
    assert tunnelled[0][VXLAN].vni == 1 and tunnelled[0][VXLAN].payload[IP].dst == "10.244.2.3"
    assert [p.sniffed_on for p in pkts][:4] == ["node1/pod-a:eth0-a", "node1:veth-a",
                                                 "node1:cni0", "node1:flannel.1"]


@needs_tshark
def test_checksums_are_valid(port_mapping, vxlan_capture):
    for path in (port_mapping[1], vxlan_capture[1]):
        done = subprocess.run(
            [TSHARK, "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o",
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
