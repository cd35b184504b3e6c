"""`netlab iptables trace`: a real node's iptables-save, one packet, every rule and path.

The dumps in tests/data/hostmode were printed by iptables-save (v1.8.9, nf_tables)
after iptables-restore of the rules kube-proxy and Docker write (see the README
there). The node is built from the flags: with only --local-ip, one eth0 holding
those addresses and a default route out of it, so a DNATed packet to a pod on
another node leaves through eth0 and ends `exited`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlab.cli.main import app

DATA = Path(__file__).resolve().parents[1] / "data" / "hostmode"
KUBE_SAVE = DATA / "kube-proxy-node1.save"
KUBE_WRITTEN = DATA / "kube-proxy-written.restore"
DOCKER_SAVE = DATA / "docker-host.save"
NODE_IP = "192.168.1.11"
WEB_ENDPOINTS = {("10.244.1.5", 8080), ("10.244.1.6", 8080), ("10.244.2.7", 8080)}
DNS_ENDPOINTS = {("10.244.1.2", 53), ("10.244.2.3", 53)}


def invoke(*args: str):
    result = CliRunner().invoke(app, ["iptables", "trace", *args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def trace_json(*args: str, save: Path = KUBE_SAVE) -> dict:
    result = invoke("--save", str(save), *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def kube(*args: str) -> dict:
    return trace_json("--local-ip", NODE_IP, *args)


def ends(data: dict) -> set[tuple[str, int | None]]:
    return {(p["packet_out"]["dst"], p["packet_out"].get("dport")) for p in data["paths"]}


def netfilter_hops(path: dict) -> list[dict]:
    return [h for h in path["hops"] if h["event"] == "netfilter"]


def one_line_error(result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# --- kube-proxy: Services, endpoints, probabilities -----------------------------------------

def test_clusterip_with_three_endpoints_gives_three_paths_at_one_third():
    data = kube("--from", "10.244.1.9", "--to", "10.96.0.50:80", "--proto", "tcp")
    assert len(data["paths"]) == 3
    assert ends(data) == WEB_ENDPOINTS
    for path in data["paths"]:
        assert path["probability"] == pytest.approx(1 / 3, abs=1e-6)
        assert path["verdict"] == "exited"          # the pods are behind eth0, not modelled
        assert path["packet_out"]["src"] == "10.244.1.9"   # from the pod network: no MASQ
    assert sum(p["probability"] for p in data["paths"]) == pytest.approx(1.0)


def test_each_path_names_the_rules_it_took():
    data = kube("--from", "10.244.1.9", "--to", "10.96.0.50:80", "--proto", "tcp")
    for path in data["paths"]:
        chains = [(h["table"], h["chain"]) for h in netfilter_hops(path)]
        assert ("nat", "KUBE-SERVICES") in chains
        assert ("nat", "KUBE-SVC-LOLE4ISW44XBNF3G") in chains
        dnat = [h for h in netfilter_hops(path) if h["chain"].startswith("KUBE-SEP-")
                and "DNAT" in (h.get("rule") or "")]
        assert dnat, path["hops"]
        assert path["packet_out"]["dst"] in (h["rule"].split("--to-destination ")[1].split(":")[0]
                                              for h in dnat)


def test_udp_service_with_two_endpoints_from_the_node_itself():
    data = kube("--from", NODE_IP, "--to", "10.96.0.10:53", "--proto", "udp")
    assert ends(data) == DNS_ENDPOINTS
    assert sorted(p["probability"] for p in data["paths"]) == pytest.approx([0.5, 0.5])
    for path in data["paths"]:
        assert path["verdict"] == "exited"
        assert any(h["table"] == "nat" and h["chain"] == "OUTPUT" for h in netfilter_hops(path))


def test_nodeport_is_dnated_and_masqueraded_to_the_egress_address():
    data = kube("--from", "192.168.1.50", "--to", f"{NODE_IP}:30080", "--proto", "tcp")
    assert ends(data) == WEB_ENDPOINTS
    for path in data["paths"]:
        assert path["probability"] == pytest.approx(1 / 3, abs=1e-6)
        assert path["verdict"] == "exited"
        assert path["packet_out"]["src"] == NODE_IP      # KUBE-MARK-MASQ, then MASQUERADE
        chains = [h["chain"] for h in netfilter_hops(path)]
        assert "KUBE-NODEPORTS" in chains and "KUBE-EXT-LOLE4ISW44XBNF3G" in chains


def test_service_without_endpoints_is_rejected():
    data = kube("--from", "192.168.1.50", "--to", "10.96.0.99:80", "--proto", "tcp")
    assert len(data["paths"]) == 1
    path = data["paths"][0]
    assert path["verdict"] == "rejected"
    assert path["outcome"] == "refused"
    deciding = [h for h in netfilter_hops(path) if "has no endpoints" in (h.get("rule") or "")]
    assert deciding and deciding[-1]["table"] == "filter"


def test_nodeport_without_endpoints_is_rejected_in_input():
    data = kube("--from", "192.168.1.50", "--to", f"{NODE_IP}:30099", "--proto", "tcp")
    path = data["paths"][0]
    assert path["verdict"] == "rejected"
    assert any(h["chain"] == "KUBE-EXTERNAL-SERVICES" for h in netfilter_hops(path))


def test_an_address_that_is_no_service_just_leaves():
    data = kube("--from", "10.244.1.9", "--to", "10.20.30.40:443", "--proto", "tcp")
    assert [(p["verdict"], p["probability"]) for p in data["paths"]] == [("exited", 1.0)]
    assert data["paths"][0]["packet_out"]["dst"] == "10.20.30.40"


def test_rules_as_kube_proxy_writes_them_trace_like_the_saved_dump():
    args = ("--local-ip", NODE_IP, "--from", "192.168.1.50", "--to", f"{NODE_IP}:30080",
            "--proto", "tcp")
    written = trace_json(*args, save=KUBE_WRITTEN)
    saved = trace_json(*args, save=KUBE_SAVE)
    assert ends(written) == ends(saved) == WEB_ENDPOINTS
    assert [p["verdict"] for p in written["paths"]] == [p["verdict"] for p in saved["paths"]]


def test_pick_shows_one_path():
    data = kube("--from", "10.244.1.9", "--to", "10.96.0.50:80", "--proto", "tcp",
                "--pick", "2")
    assert len(data["paths"]) == 1
    everything = kube("--from", "10.244.1.9", "--to", "10.96.0.50:80", "--proto", "tcp")
    assert data["paths"][0] == everything["paths"][1]


# --- Docker: --iface, DNAT to a bridge ---------------------------------------------------------

def test_docker_port_mapping_with_interfaces():
    data = trace_json("--iface", "eth0=192.168.1.2/24", "--iface", "docker0=172.17.0.1/16",
                      "--from", "192.168.1.3", "--to", "192.168.1.2:8080", "--proto", "tcp",
                      save=DOCKER_SAVE)
    assert len(data["paths"]) == 1
    path = data["paths"][0]
    assert ends(data) == {("172.17.0.2", 80)}
    assert path["verdict"] == "exited"
    assert [h["dev"] for h in path["hops"] if h["event"] == "exit"] == ["docker0"]
    filters = [h for h in netfilter_hops(path) if h["table"] == "filter"]
    assert any(h["chain"] == "DOCKER" and h.get("action", "").upper().startswith("ACCEPT")
               for h in filters), filters


def test_docker_unpublished_port_is_dropped_by_the_forward_policy():
    data = trace_json("--iface", "eth0=192.168.1.2/24", "--iface", "docker0=172.17.0.1/16",
                      "--from", "192.168.1.3", "--to", "172.17.0.2:22", "--proto", "tcp",
                      "--in-iface", "eth0", save=DOCKER_SAVE)
    path = data["paths"][0]
    assert path["verdict"] == "dropped"
    assert path["outcome"] == "timeout"


# --- the text a person reads --------------------------------------------------------------------

def test_text_shows_positions_nat_and_probabilities():
    result = invoke("--save", str(KUBE_SAVE), "--local-ip", NODE_IP, "--from", "10.244.1.9",
                    "--to", "10.96.0.50:80", "--proto", "tcp")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "3 paths" in out
    assert "probability 0.3333 (1/3)" in out
    assert "nat/KUBE-SERVICES #2" in out               # the web Service is the 2nd rule there
    assert "DNAT 10.96.0.50:80 → 10.244.1.5:8080" in out
    assert "verdict: exited" in out


# --- bad input: one line, exit 2 -------------------------------------------------------------

def test_missing_file():
    one_line_error(invoke("--save", "no-such.save", "--local-ip", NODE_IP, "--from", "1.2.3.4",
                          "--to", "10.96.0.10:53", "--proto", "udp"), "no-such.save")


def test_a_dump_line_that_fails_names_the_file_and_line(tmp_path: Path):
    lines = KUBE_SAVE.read_text().splitlines()
    number = next(i for i, l in enumerate(lines, 1) if "--dport 30080" in l)
    lines[number - 1] = lines[number - 1].replace("--dport 30080", "--dportx 30080")
    bad = tmp_path / "bad.save"
    bad.write_text("\n".join(lines) + "\n")
    error = one_line_error(invoke("--save", str(bad), "--local-ip", NODE_IP, "--from",
                                  "1.2.3.4", "--to", "10.96.0.10:53", "--proto", "udp"))
    assert f"bad.save:{number}:" in error


def test_not_a_dump(tmp_path: Path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    one_line_error(invoke("--save", str(bad), "--local-ip", NODE_IP, "--from", "1.2.3.4",
                          "--to", "10.96.0.10:53", "--proto", "udp"), "notes.txt")


@pytest.mark.parametrize("args, words", [
    (("--to", "10.96.0.10:99999", "--proto", "udp"), ("--to",)),
    (("--to", "ten.96.0.10:53", "--proto", "udp"), ("--to",)),
    (("--to", "10.96.0.10", "--proto", "udp"), ("port",)),
    (("--to", "10.96.0.10:53", "--proto", "sctp"), ("--proto",)),
], ids=["port-too-big", "not-an-ip", "udp-without-port", "unknown-proto"])
def test_bad_to(args, words):
    one_line_error(invoke("--save", str(KUBE_SAVE), "--local-ip", NODE_IP, "--from", "1.2.3.4",
                          *args), *words)


@pytest.mark.parametrize("args, words", [
    (("--iface", "eth0"), ("--iface",)),
    (("--iface", "eth0=192.168.1.300/24"), ("--iface",)),
    (("--iface", "eth0=192.168.1.1"), ("--iface", "prefix")),
    (("--local-ip", "nope"), ("--local-ip",)),
    ((), ("--local-ip",)),
    (("--local-ip", NODE_IP, "--in-iface", "eth7"), ("--in-iface", "eth7")),
    (("--local-ip", NODE_IP, "--from", "1.2.3"), ("--from",)),
], ids=["iface-without-address", "iface-bad-ip", "iface-without-prefix", "bad-local-ip",
        "no-address-at-all", "unknown-in-iface", "bad-from"])
def test_bad_node_description(args, words):
    base = {"--from": "1.2.3.4"}
    argv = list(args)
    if "--from" not in argv:
        argv += ["--from", base["--from"]]
    one_line_error(invoke("--save", str(KUBE_SAVE), *argv, "--to", "10.96.0.10:53",
                          "--proto", "udp"), *words)


def test_pick_past_the_last_path():
    one_line_error(invoke("--save", str(KUBE_SAVE), "--local-ip", NODE_IP, "--from",
                          "10.244.1.9", "--to", "10.96.0.50:80", "--proto", "tcp", "--pick", "4"),
                   "--pick 4")


# --- no traceback, whatever the dump says ----------------------------------------------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

WORDS = st.sampled_from(["-A", "-I", "-N", "-j", "-m", "-p", "tcp", "udp", "--dport", "80",
                         "!", "-s", "10.0.0.0/8", "KUBE-SERVICES", "DNAT", "--to-destination",
                         "1.2.3.4:5", "COMMIT", "*nat", ":X - [0:0]", "statistic", "--mode",
                         "random", "--probability", "0.5", "\"", "-g", "MASQUERADE", ""])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(WORDS, min_size=1, max_size=8).map(" ".join), min_size=1, max_size=4),
       st.integers(min_value=0, max_value=80))
def test_a_mangled_dump_is_bad_input_or_traced_never_a_traceback(tmp_path_factory, lines, at):
    text = KUBE_SAVE.read_text().splitlines()
    at = min(at, len(text))
    mangled = tmp_path_factory.mktemp("dump") / "mangled.save"
    mangled.write_text("\n".join(text[:at] + lines + text[at:]) + "\n")
    result = invoke("--save", str(mangled), "--local-ip", NODE_IP, "--from", "10.244.1.9",
                    "--to", "10.96.0.50:80", "--proto", "tcp")
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "mangled.save" in result.stderr
