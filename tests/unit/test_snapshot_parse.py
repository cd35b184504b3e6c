"""snapshot's parsers on what the tools printed (recorded from lab 03 built on a 6.x kernel
in tests/data/snapshot/), bad input, and `netlab trace --world` on a recorded World."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlab.backends.snapshot import (
    RawNetns, build_world, parse_addresses, parse_json, parse_links, parse_listeners,
    parse_neighbours, parse_nsids, parse_routes, parse_sysctls, sysctl_paths,
)
from netlab.cli.main import app
from netlab.errors import CommandError
from netlab.model import Address, Listener, Neighbour, Route, World
from netlab.netfilter.restore import iptables_save

DATA = Path(__file__).resolve().parents[1] / "data" / "snapshot"
NODES = ("host", "red", "blue")


def raw(node: str) -> RawNetns:
    return RawNetns.from_json(json.loads((DATA / f"lab03-{node}.json").read_text()))


def lab03(*nodes: str) -> World:
    return build_world({n: raw(n) for n in nodes or NODES})


# --- links -------------------------------------------------------------------------------------
def test_links_kind_state_mtu_master():
    links, _ = parse_links(raw("host").links)
    assert {n: (l.kind, l.up, l.mtu, l.master) for n, l in links.items()} == {
        "lo": ("loopback", True, 65536, None),
        "v-net-0": ("bridge", True, 1500, None),
        "veth-red-br": ("veth", True, 1500, "v-net-0"),
        "veth-blue-br": ("veth", True, 1500, "v-net-0"),
    }
    assert links["v-net-0"].mac == "8a:08:88:9a:e3:de"
    assert links["veth-blue-br"].ifindex == 5


def test_a_down_loopback_and_an_mtu_change():
    links, _ = parse_links(raw("blue").links)
    assert links["lo"].up is False
    assert links["vx0"].mtu == 1400


def test_veth_peer_references():
    _, peers = parse_links(raw("blue").links)
    assert peers["vx0"].name == "vx1"                 # same namespace: by name
    assert (peers["veth-blue"].ifindex, peers["veth-blue"].netnsid) == (5, 0)


def test_a_kind_the_model_does_not_know_is_kept():
    text = json.dumps([{"ifindex": 7, "ifname": "vxlan0", "flags": ["UP"], "mtu": 1450,
                        "address": "aa:bb:cc:dd:ee:ff", "linkinfo": {"info_kind": "vxlan"}},
                       {"ifindex": 2, "ifname": "eth0", "flags": [], "link_type": "ether"}])
    links, _ = parse_links(text)
    assert (links["vxlan0"].kind, links["eth0"].kind, links["eth0"].up) == ("vxlan", "ether", False)


# --- addresses, routes, neighbours, ids, sysctls, listeners --------------------------------------
def test_addresses_ipv4_only_with_broadcast():
    addrs = parse_addresses(raw("blue").addresses)
    assert addrs["veth-blue"] == [Address("192.168.15.2", 24)]
    assert addrs["vx0"] == [Address("10.9.0.1", 24, "10.9.0.255")]
    assert "lo" not in addrs                          # down: no 127.0.0.1 yet


def test_routes_of_table_main():
    assert parse_routes(raw("blue").routes) == [
        Route("10.9.0.0/24", dev="vx0", src="10.9.0.1", proto="kernel", scope="link"),
        Route("10.50.0.0/16", dev="vx0", gateway="10.9.9.9", metric=5, onlink=True),
        Route("10.66.0.0/16", type="blackhole"),
        Route("192.168.15.0/24", dev="veth-blue", src="192.168.15.2", proto="kernel",
              scope="link"),
    ]
    assert parse_routes(raw("red").routes)[0] == Route("default", dev="veth-red",
                                                       gateway="192.168.15.5")


def test_a_host_route_and_multipath():
    text = json.dumps([{"dst": "10.0.0.9", "dev": "eth0", "protocol": "static", "scope": "link"},
                       {"dst": "default", "protocol": "static", "nexthops": [
                           {"gateway": "10.0.0.1", "dev": "eth0", "flags": []},
                           {"gateway": "10.0.0.2", "dev": "eth0", "flags": []}]}])
    host, multi = parse_routes(text)
    assert (host.dst, host.proto) == ("10.0.0.9/32", "static")
    assert (multi.gateway, multi.dev) == ("10.0.0.1", "eth0")


def test_neighbours():
    assert parse_neighbours(raw("blue").neighbours) == [
        Neighbour("192.168.15.7", "veth-blue", "02:00:00:00:00:07", "PERMANENT"),
        Neighbour("192.168.15.1", "veth-blue", "ea:e7:ca:91:1b:95", "DELAY"),
    ]
    assert parse_neighbours('[{"dst": "10.0.0.3", "dev": "eth0", "state": ["FAILED"]}]') == [
        Neighbour("10.0.0.3", "eth0", None, "FAILED")]


def test_netns_ids():
    assert parse_nsids(raw("red").nsids) == {0: "nls-h"}


def test_sysctls_read_from_proc_and_per_device():
    values = parse_sysctls(raw("host").sysctls)
    assert values["net.ipv4.ip_forward"] == "1"
    assert values["net.ipv4.ip_local_port_range"] == "32768\t60999"
    assert values["net.ipv4.conf.veth-red-br.forwarding"] == "1"
    assert values["net.ipv4.neigh.v-net-0.retrans_time_ms"] == "1000"


def test_sysctl_paths_cover_devices():
    paths = sysctl_paths(["eth0.100"])
    assert "/proc/sys/net/ipv4/ip_forward" in paths
    assert "/proc/sys/net/ipv4/conf/eth0.100/rp_filter" in paths
    assert "/proc/sys/net/ipv4/neigh/eth0.100/retrans_time_ms" in paths


def test_listeners():
    assert parse_listeners(raw("blue").listeners) == [Listener("udp", 53, "10.9.0.1"),
                                                      Listener("tcp", 8080, "0.0.0.0")]
    assert parse_listeners("udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:*\n"
                           "tcp LISTEN 0 4096 *:9000 *:*\n") == [
        Listener("udp", 53, "127.0.0.53"), Listener("tcp", 9000, "0.0.0.0")]


# --- the World ---------------------------------------------------------------------------------
def test_world_has_a_node_per_namespace_and_joined_veths():
    world = lab03()
    assert world.nodes == list(NODES)
    host = world.namespaces["host/root"]
    assert (host.links["veth-red-br"].peer_netns, host.links["veth-red-br"].peer_name) == \
        ("red/root", "veth-red")
    red = world.namespaces["red/root"].links["veth-red"]
    assert (red.peer_netns, red.peer_name) == ("host/root", "veth-red-br")
    vx0 = world.namespaces["blue/root"].links["vx0"]
    assert (vx0.peer_netns, vx0.peer_name) == ("blue/root", "vx1")
    assert world.namespaces["blue/root"].links["vx0"].conf["rp_filter"] == "0"
    assert world.namespaces["host/root"].next_ifindex == 6


def test_iptables_are_the_worlds_rules():
    host = lab03().namespaces["host/root"]
    assert host.tables["nat"].chains["POSTROUTING"].rules == [
        "-s 192.168.15.0/24 ! -o v-net-0 -j MASQUERADE"]
    assert "-A POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 -j MASQUERADE" in iptables_save(host)


def test_a_peer_in_a_namespace_not_read_has_no_peer():
    red = lab03("red").namespaces["red/root"].links["veth-red"]
    assert (red.kind, red.up, red.peer_netns, red.peer_name) == ("veth", True, None, None)


def test_the_world_round_trips_through_json():
    world = lab03()
    again = World.from_json(json.loads(json.dumps(world.to_json())))
    assert again.to_json() == world.to_json()


def test_a_trace_on_the_snapshot():
    from netlab.dataplane.engine import trace

    world = lab03()
    (path,) = trace(world, "red/root", "192.168.15.2", proto="tcp", dport=8080).paths
    assert (path.verdict, path.outcome, path.delivered_to) == ("delivered", "success", "blue")
    (path,) = trace(world, "red/root", "192.168.15.2", proto="tcp", dport=8081).paths
    assert path.outcome == "refused"
    (alone,) = trace(lab03("red"), "red/root", "192.168.15.2").paths
    assert (alone.verdict, alone.outcome) == ("exited", "timeout")  # nothing modelled behind


# --- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, words", [
    ('[{"ifindex": 1, "ifname": "lo"', "malformed JSON output"),
    ('{"ifindex": 1}', "expected a JSON list of objects"),
    ('[1, 2]', "expected a JSON list of objects"),
])
def test_malformed_link_json_is_one_clear_error(text, words):
    with pytest.raises(CommandError) as err:
        parse_links(text)
    assert words in str(err.value) and "ip -json -details link show" in str(err.value)
    assert "\n" not in str(err.value)


def test_an_entry_without_its_key():
    with pytest.raises(CommandError, match="has no 'ifname'"):
        parse_links('[{"ifindex": 3}]')
    with pytest.raises(CommandError, match="has no 'dst'"):
        parse_routes('[{"dev": "eth0"}]')


def test_empty_output_is_empty():
    assert parse_json("", "x") == [] and parse_routes("\n") == []


def test_bad_sysctl_line():
    with pytest.raises(CommandError, match="unexpected line"):
        parse_sysctls("grep: something\n")


def test_iptables_the_model_cannot_load_names_the_namespace():
    bad = raw("host")
    bad.iptables = "*nat\n-A NOPE -j ACCEPT\nCOMMIT\n"
    with pytest.raises(CommandError, match=r"^nls-h: iptables-save: "):
        build_world({"host": bad})


def test_a_recorded_file_that_is_not_one():
    with pytest.raises(CommandError, match="not a recorded namespace"):
        RawNetns.from_json({"nope": 1})


# --- the CLI -----------------------------------------------------------------------------------
def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_trace_on_a_recorded_world_file():
    result = invoke("trace", "--world", str(DATA / "lab03-world.json"), "--from", "red",
                    "--to", "192.168.15.2:8080", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["from"] == "red"
    assert [(p["verdict"], p["delivered_to"]) for p in data["paths"]] == [("delivered", "blue")]
    text = invoke("trace", "--world", str(DATA / "lab03-world.json"), "--from", "blue",
                  "--to", "192.168.15.5")
    assert text.exit_code == 0 and "outcome: success" in text.output


@pytest.mark.parametrize("args, words", [
    (("--from", "red", "--to", "192.168.15.2"), "give a LAB or --world FILE"),
    (("02", "--world", "w.json", "--from", "red", "--to", "192.168.15.2"),
     "give a LAB or --world FILE"),
    (("--world", "missing.json", "--from", "red", "--to", "192.168.15.2"), "cannot read"),
    (("--world", "WORLD", "--from", "red", "--to", "192.168.15.2", "--after-step", "1"),
     "--after-step needs a LAB"),
    (("--world", "WORLD", "--from", "green", "--to", "192.168.15.2"), "no namespace called"),
])
def test_trace_world_bad_input(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    args = tuple(str(DATA / "lab03-world.json") if a == "WORLD" else a for a in args)
    result = invoke("trace", *args)
    assert result.exit_code == 2
    assert words in result.output and result.output.strip().count("\n") == 0


@pytest.mark.parametrize("content, words", [("{not json", "not JSON"),
                                            ('{"a": 1}', "not a netlab World")])
def test_trace_world_file_that_is_not_a_world(tmp_path, content, words):
    path = tmp_path / "w.json"
    path.write_text(content)
    result = invoke("trace", "--world", str(path), "--from", "red", "--to", "10.0.0.1")
    assert result.exit_code == 2 and words in result.output


def test_snapshot_needs_one_source(tmp_path):
    assert "give --netns NAME" in invoke("snapshot", "-o", str(tmp_path / "w")).output
    both = invoke("snapshot", "--host", "--netns", "x", "-o", str(tmp_path / "w"))
    assert both.exit_code == 2 and "not both" in both.output


def test_snapshot_not_root_is_one_line(tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = invoke("snapshot", "--netns", "red", "-o", str(tmp_path / "w"))
    assert result.exit_code == 2
    assert "needs root" in result.output and result.output.strip().count("\n") == 0


def test_snapshot_without_ip_is_one_line(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = invoke("snapshot", "--host", "-o", str(tmp_path / "w"))
    assert result.exit_code == 2 and "apt-get install iproute2" in result.output
